"""Up or down in scripts other than Latin (issue 13): Cyrillic and Greek pages have more descenders than ascenders,
so counting ascenders read them upside down; the glyph-shape votes must not. The sentences here are not the
passages the orientation model was trained on (benchmarks/data/glyph_texts)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from quality.filter import MIN_ORIENTATION_CONFIDENCE
from quality.orientation import (
    FRAME,
    ORIENTATION_MODEL,
    glyph_frames,
    glyph_scores,
    glyphs,
    line_glyphs,
    max_glyph_side,
)
from quality.rotation import _stroke_mask
from quality.scores import rotation

FONTS = Path("/usr/share/fonts/truetype")
RUSSIAN = (
    "Сегодня утром поезд опоздал на сорок минут, и мы успели выпить кофе в буфете вокзала. Проводница рассказала, "
    "что ночью выпал снег и дорогу пришлось расчищать вручную. В вагоне было тепло, за окном тянулись леса и "
    "деревни, а к обеду мы уже подъезжали к городу, где нас ждали друзья с машиной."
)
GREEK = (
    "Χθες το απόγευμα περπατήσαμε στο λιμάνι και είδαμε τα καράβια να φεύγουν για τα νησιά. Ο καιρός ήταν ζεστός, "
    "αλλά φυσούσε δυνατός αέρας από τη θάλασσα. Στο καφενείο δίπλα στην προβλήτα ο ιδιοκτήτης μας έφερε γλυκό και "
    "νερό, και μιλήσαμε για το ταξίδι που σχεδιάζουμε τον άλλο μήνα."
)


def _page(text: str, font: str, size: int, width: int = 760) -> np.ndarray:
    f = ImageFont.truetype(str(FONTS / font), size)
    img = Image.new("L", (width, 900), 250)
    draw = ImageDraw.Draw(img)
    lines, line = [], ""
    for word in text.split():
        longer = f"{line} {word}".strip()
        if draw.textlength(longer, font=f) > width - 80:
            lines.append(line)
            line = word
        else:
            line = longer
    lines.append(line)
    for i, line in enumerate(lines):
        draw.text((40, 40 + i * int(size * 1.6)), line, font=f, fill=20)
    return np.asarray(img)[: 80 + len(lines) * int(size * 1.6)]


@pytest.mark.parametrize(
    ("text", "font", "size"),
    [
        (RUSSIAN, "dejavu/DejaVuSans.ttf", 18),
        (RUSSIAN, "liberation/LiberationSerif-Regular.ttf", 22),
        (GREEK, "dejavu/DejaVuSerif.ttf", 18),
        (GREEK, "liberation/LiberationSans-Regular.ttf", 22),
    ],
)
def test_cyrillic_and_greek_pages_read_the_right_way_up_at_every_turn(text, font, size):
    page = _page(text, font, size)
    for turns in range(4):
        r = rotation(np.ascontiguousarray(np.rot90(page, turns)))
        assert r.orientation == 90 * turns, (turns, r)
        if turns:  # a turned page is flagged (`orientation_reason`) only when the answer is confident
            assert r.orientation_confidence >= MIN_ORIENTATION_CONFIDENCE, (turns, r)


def test_a_single_line_crop_is_read_as_text():
    """A recogniser's line crop (one line, 40 px tall): its glyphs are most of the image's height, which the old
    size rule (a fifth of the short side) threw away, so the crop got no answer or a line-periodicity guess."""
    strip = _page("Славянские языки большая семья", "dejavu/DejaVuSans.ttf", 24, width=460)[28:72]
    assert max_glyph_side(*strip.shape) >= 0.8 * strip.shape[0]
    for turns in (0, 2):
        r = rotation(np.ascontiguousarray(np.rot90(strip, turns)))
        assert r.orientation == 90 * turns, (turns, r)


def test_a_long_rule_is_still_no_glyph():
    assert max_glyph_side(40, 1000) < 100  # a rule spanning a tenth of a strip's length is not a glyph
    assert max_glyph_side(800, 600) == pytest.approx(120)  # a page keeps a fifth of its short side


def test_glyph_scores_turn_sign_when_the_page_is_turned_over():
    page = _page(RUSSIAN, "dejavu/DejaVuSans.ttf", 20)
    mask = _stroke_mask(page, True)
    found = glyphs(mask)
    lines = line_glyphs(found.labels, found.stats, np.flatnonzero(found.kept), max_glyph_side(*mask.shape))
    assert lines is not None
    frames = glyph_frames(lines)
    turned = np.ascontiguousarray(frames.reshape(-1, FRAME, FRAME)[:, ::-1, ::-1]).reshape(len(frames), -1)
    np.testing.assert_allclose(glyph_scores(turned), -glyph_scores(frames), atol=1e-5)
    assert (glyph_scores(frames) > 0).mean() > 0.6  # most Russian glyphs read upright the way they were printed


def test_the_model_file_names_the_scripts_it_knows():
    with np.load(ORIENTATION_MODEL) as z:
        scripts = set(z["scripts"].tolist())
        assert z["w1"].shape[0] == FRAME * FRAME
    assert {"Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "CJK", "Devanagari"} <= scripts


def _frames(page: np.ndarray) -> np.ndarray:
    mask = _stroke_mask(page, True)
    found = glyphs(mask)
    lines = line_glyphs(found.labels, found.stats, np.flatnonzero(found.kept), max_glyph_side(*mask.shape))
    assert lines is not None
    return glyph_frames(lines, limit=10**6)


@pytest.mark.parametrize("size", [15, 18, 23])
def test_the_frames_of_a_page_turned_over_are_its_frames_turned_over(size):
    """Exact equivariance: if a frame's window could round differently on the turned page, a model trained on
    frames and their flips would learn that rounding instead of the glyphs (and read every page as upright)."""
    page = _page(RUSSIAN, "liberation/LiberationSans-Regular.ttf", size)
    frames = _frames(page)
    of_turned = _frames(np.ascontiguousarray(page[::-1, ::-1]))
    turned = frames.reshape(-1, FRAME, FRAME)[:, ::-1, ::-1].reshape(len(frames), -1)

    def rows(a: np.ndarray) -> np.ndarray:
        return a[np.lexsort(a.T[::-1])]

    assert len(frames) == len(of_turned) > 100
    np.testing.assert_allclose(rows(of_turned), rows(turned), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "axis"), [("rig-catena_rot90.png", 90), ("rig-AhcOAAAAYAAJ-00000018_rot270.png", 270)]
)
def test_a_page_on_its_side_that_only_line_periodicity_finds_gets_its_axis(name, axis):
    """Real tune pages (dense Greek print whose glyphs merge at the search scale): only the line-periodicity search
    finds their lines, and it searched within 45° of horizontal only, so these pages on their side got no answer
    (NaN, accepted) while the same pages upright got one. The quarter-turned search finds the lines; up or down is
    then read from the glyphs, at a confidence too low to flag the page unless the glyphs agree."""
    import cv2

    from benchmarks.real_images import DATA

    g = cv2.imread(str(DATA / "rotation" / name), cv2.IMREAD_GRAYSCALE)
    assert g is not None, name
    r = rotation(g)
    assert abs(r.angle - 0.1) < 0.5, r
    assert r.orientation in (90.0, 270.0), r
    assert r.orientation == axis or r.orientation_confidence < MIN_ORIENTATION_CONFIDENCE, r


def test_a_thin_long_line_crop_is_not_shrunk_below_reading_size():
    """A 38 x 798 line crop was shrunk by 2 for the rotation search (longest side over 640 px), leaving a 19-px strip
    of 4-px letters and no answer; the strip now keeps at least ROT_MIN_SHORT px across."""
    from quality.scores import ROT_MIN_SHORT

    strip = _page(
        "A pretty long line of plain text that a recogniser was given as one crop", "dejavu/DejaVuSans.ttf", 17
    )
    strip = np.ascontiguousarray(strip[30:68, :798])
    assert strip.shape[0] < 2 * ROT_MIN_SHORT < strip.shape[1]
    for turns in (0, 1, 2, 3):
        r = rotation(np.ascontiguousarray(np.rot90(strip, turns)))
        assert not np.isnan(r.angle), turns
        assert r.orientation == 90 * turns, (turns, r)


@pytest.mark.parametrize("name", ["vrd-5-in.jpg", "vrd-5-in_rot270.png"])
def test_glyphs_too_small_to_read_are_never_flagged_as_a_turned_page(name):
    """A 320 x 350 phone photo of a Russian book page (images batch 6): its letters are 3 px across and no finer copy
    exists, so their shapes cannot say up from down. Version 12 flagged it, and its quarter turn, as turned over at
    0.93 / 0.97; glyphs under READABLE_GLYPH_PX now give a direction worth a single vote, below the filter's gate."""
    import cv2

    from benchmarks.real_images import DATA

    g = cv2.imread(str(DATA / "rotation" / name), cv2.IMREAD_GRAYSCALE)
    assert g is not None, name
    r = rotation(g)
    assert not math.isnan(r.angle), r
    assert r.orientation_confidence < MIN_ORIENTATION_CONFIDENCE, r


@pytest.mark.parametrize("turn", [0, 1, 2, 3])
def test_a_page_of_tiny_print_keeps_its_direction_at_a_confidence_below_the_gate(turn):
    from benchmarks.labelled_images import font_paths, render_text_page

    font = next(p for p in font_paths() if p.endswith("/DejaVuSans.ttf"))
    page = np.ascontiguousarray(np.rot90(render_text_page(300, 200, font=font, size=7, seed=1), turn))
    r = rotation(page)
    # Its glyphs' direction is a single vote: upside down (turn 2) never reaches the flag's confidence, so since
    # version 27 such a page reads upright, as a near-even vote does (`orientation._way_up`).
    assert r.orientation == (0.0 if turn == 2 else 90.0 * turn)
    assert 0.5 < r.orientation_confidence < MIN_ORIENTATION_CONFIDENCE
