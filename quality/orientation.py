"""Page rotation at any angle: text skew in (-45°, 45°] and page orientation (0/90/180/270), estimated separately.

`estimate_rotation` works on a grey image already at most ``ROT_SIDE`` px long (`quality.scores` prepares it):

1. Strokes: the morphological black-hat (dark ink) or top-hat (light ink) mask of `quality.rotation`; the paper's
   polarity first, the other one when it shows no text, or when the paper's polarity lines up only weakly (along
   share under ``_OTHER_INK_BELOW``) and the other one's glyphs line up ``_OTHER_INK_ALONG`` times better, are at
   least ``_OTHER_INK_LARGER`` times larger and half as many (`_other_ink_lines`, version 21). A photo of a page
   lit in the middle and darker at the edges has its most common grey level (the paper, by `_dark_ink`) below
   the mean, so light ink was read first: the gaps and counters inside dark letters, which line up along the lines
   too but are 4-px specks whose shapes cannot tell up from down (a printed page of test batch 20 was read upside
   down, unflagged at 0.84). Tune split orientation 241 -> 242 of 289 pages, seen test batches 1-19 450 -> 451 of
   540 and test batch 20 24 -> 25 of 28 (that page, seen since), no page read worse, no flag added in error;
   generated seeds 21 / 22 unchanged. A polarity read on an illumination-flattened image (the page divided by a
   coarse median) instead moved 45 pages both ways, and so did a vote of 3 x 3 tiles.
2. Glyphs: the mask's connected components of glyph size (not long rules, not single pixels). A handful of specks
   under 3 px (dust on a blank scan) are no glyphs, and with no glyph-sized shape of either ink there is no text
   (version 16: a blank scan's faint streaks had passed the line-periodicity search at confidence 1.0).
3. Line direction and the text test (the "docstrum"): the direction from each glyph to its two nearest glyphs,
   modulo 180°. Along a text line glyphs are closer to each other than to the lines above and below, so the
   directions pile up at the line direction; on a photo, texture or blank page they spread evenly. The page has text
   when at least ``MIN_ALONG`` of the directions lie within 10° of the peak and the peak holds at least
   ``MIN_ALONG_RATIO`` times more than the perpendicular direction. This decides 0°/180° against 90°/270° too: the
   lines run where glyphs have close neighbours, whatever a table's rules or a form's boxes do.
4. Skew: Postl's projection-profile criterion on the stroke pixels within ±10° of that direction (1° steps, then
   0.25°, then 0.1° with a parabola through the best three): precise on dense pages, and searched only near the
   glyphs' own direction, so a form's vertical rules cannot pull it 90° away. The final answer's skew is refined
   once more on a finer copy (960 px long, 40,000 stroke pixels, within 0.3°; `_finer_skew`, version 26) when
   the image was shrunk at least 1.5 times: a phone screenshot's lines are under 290 px long at 640 px, where
   one pixel of drift is 0.2° (straight screenshots read 0.29-0.31°). Tune split skew MAE 0.49° -> 0.47°, seen
   test pages of batches 1-27 0.91° -> 0.88°, batch 28 (measured once before) 0.15° -> 0.07°; nothing else moved;
   19 -> 21 ms per real `tune` image; generated seeds 21 / 22 1.39 / 1.36 -> 1.27 / 1.26 x the naive pair's
   throughput. At 1,280 px the `tune` MAE was the same and the throughput 1.15 x.
5. Up or down (0° vs 180°, 90° vs 270°), read from the glyphs' shapes, in any of the scripts a small network was
   trained on (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Bengali, Tamil, Thai, Georgian, Armenian,
   Chinese/Japanese/Korean; `benchmarks/orientation_model.py`). Each glyph is pictured in its line's own frame
   (centred on the x-height band its neighbours on the line share, `glyph_frames`) and scored s(x) = g(x) - g(x
   turned 180°): positive when it reads upright, negated exactly when the page is turned over, near 0 for glyphs
   that read the same both ways ("o", "x", "n"/"u"). Clear scores vote; a weak Latin prior adds a fraction of a
   vote for each glyph rising above its band (more ascenders than descenders: true of Latin, not of Cyrillic or
   Greek, which is why counting them alone read Russian pages upside down). Letters must be separate glyphs for
   that, so when the glyphs at this scale are small the mask is taken again from a finer version of the image;
   when none exists and the glyphs are under ``READABLE_GLYPH_PX`` across, their shapes cannot say up from down
   (a small phone photo of a book page was flagged as turned over at 0.93), and the direction they give counts as
   a single vote, so its confidence stays below the filter's gate. Between upright and upside down, upside down
   needs a vote as clear as the flag's (sign-test confidence ``MIN_ORIENTATION_CONFIDENCE``), else the page reads
   upright (`_way_up`, version 27): pages come upright far more often than turned over, and a near-even vote is a
   coin toss. Flags do not change (they need that confidence anyway); text pages, version 26 -> 27: `tune`
   (batches 1-29) upright pages read right 193 -> 227 of 242, upside-down ones 51 -> 39 of 65, orientation
   81.6 % -> 86.7 %; seen `test` (batches 1-28) 292 -> 337 of 368 and 111 -> 91 of 138, 82.2 % -> 85.5 %; pages
   on their side unchanged.
6. Checks and second looks (each only where the answer above is weak or missing, so clean pages cost nothing more):
   - glyphs that are mostly long across the line direction may be whole words whose letters merged at this scale,
     stacked in columns (dense print repeated line after line), whose nearest neighbours lie across the lines: the
     block is read again on the finest image there is (`_along_words`, version 20). Tune split: orientation 82.5 %
     -> 84.0 % (a 300-dpi page and its three turns, read on their side at 0.70-0.84), nothing else changed on the
     tune pages or the seen test pages of batches 1-17; generated seed 21 unchanged;
   - an answer lined up weakly, or from few glyphs (under ``_FEW_GLYPHS``) of a blurred image (blur σ over
     ``_SHARP_PX``, or unknown), is cross-checked against the line-periodicity search of `quality.rotation`
     (`estimate_skew`), whose angle wins when they disagree: a handful of blurred word blobs, or a photo's vessels,
     can line up by chance at any angle;
   - text that neither search finds is looked for in each quarter of the image (`_text_block`): a text block pasted
     on grass or gravel lines up clearly within its window while the photo's shapes swamp the whole-image count.
     Version 18: a window needs 30 lined-up glyphs, not 60 (a shop sign on a street photo holds 30-60 letters), and
     a window's answer is the last resort, after the finer look below (a page of 4-px letters otherwise had a
     window of 30 glyphs lined up at a wrong angle). Tune split: no answer 4.8 % -> 3.6 %, skew MAE 0.48° -> 0.47°,
     orientation 86.9 % -> 87.5 % (two street signs of batch 9); seen test pages and the photos without text
     unchanged but for one table read at 270° either way (confidence 0.31 -> 0.66, under the flag's gate);
     generated seed 21 unchanged;
   - when nothing at all is found, the image is read once more with a stroke kernel of 21 px (`_thick_look`,
     version 19): bold or large letters (a caption, a title, a sign) have strokes wider than the usual 5-7 px
     kernel, whose black-hat keeps only their edges. Tune split: no answer 3.6 % -> 2.4 %, skew MAE 0.47° ->
     0.47°, orientation 87.5 % -> 86.9 % (the sign it answers is read upside down, at 0.58); photos without text
     answered: tune 3 of 15 and seen test 2 of 22 both ways; seen test pages no answer 10.0 % -> 5.3 % (Arabic,
     Devanagari, CJK captions), MAE 1.05° -> 1.08°. A kernel of 11 px as well found nothing more on `tune`; 15 px
     alone left one more page unanswered. Generated seed 21 unchanged (accept 0.983, MAE 0.17°); throughput 1.44 ->
     1.38 x the naive pair (every photo without text is read a second time);
   - when still nothing is found and the noise seen on a 2x area average is well above the per-pixel estimate (JPEG
     drops the finest frequencies of noise but keeps its coarser grain, which then passes as strokes), everything is
     run again at that noise level, now accepting a line-periodicity answer only at confidence ``_RETRY_CONF``;
   - when there is still no answer on a shrunk copy, all of the above runs once more on a finer version of the image
     (`_finer_look`): glyphs under ``SMALL_GLYPH_PX`` (small print on a large page, read at 640 px) are brought to
     about 8 px, larger ones (perhaps words whose letters touch: a dense form shrunk 5x) read at twice the scale.
     Version 14 (small glyphs): tune split no answer 3.5 % -> 0.7 %, skew MAE 0.54° -> 0.44°, orientation 81.8 % ->
     83.2 % (a Yiddish dictionary page and its turns); seen test pages of batches 1-6: no answer 10.8 % -> 10.4 %,
     nothing else worse. Version 15 (word shapes): one form turned 129° of batch 8 (seen) answered, nothing else
     changed on the tune and test pages; photos without text unchanged.
   Lines found by the line-periodicity search are read up or down the same way (`_read_lines` through
   `_up_down_at_scale`: on a finer image when the glyphs are small), and when the block around the small glyphs,
   read on a finer copy on its own, finds the same lines with an orientation confidence of at least 0.9, that
   orientation is taken (`_confirmed_finer`, version 17: dense small print whose letters touch at 640 px; a clean
   rendered page of 20-px print on 1700 x 2200 px at 52 turns: 14 -> 26 confident answers; turned pages flagged:
   tune 55 -> 56 of 85, seen test pages 111 -> 113 of 177, no wrong flag, no answer changed side; generated seeds 21
   / 22 unchanged; 3-8 % slower on the generated set). When that finer read finds no lines and both inks of the
   block show plenty of shapes pointing every way (a texture: `_texture_only`), on an image clean enough that the
   finer copy does not break strokes into noise (``NOISE_MIN``), the lines were a texture's and there is no text
   (version 25: a beach's sand ripples and a pen's barrel grain had angles; no-text photos with an angle, tune 3 ->
   1 of 30, seen test batch 24 2 -> 1 of 4; one scene-text photo of tune batch 9 lost its answer; generated
   seeds 21 / 22 unchanged). Version 15, tune split: orientation 83.9 % ->
   86.9 % (five old prints and a Yiddish page, answers that stay at half confidence); seen test pages: two coin
   tosses (confidence 0.25) turned into others (0.34-0.36), 84.6 % -> 84.0 %.

Angles are degrees, counter-clockwise positive. `orientation` is how far the upright page was turned
counter-clockwise, so the text lines run at `orientation + angle`. Every answer comes with a confidence (0..1):
`confidence` grows with how clearly the glyphs line up; `orientation_confidence` is the product of two sign-test
probabilities (normal approximation) that the counts deciding it are not chance: neighbour directions along against
across the lines (0/180 against 90/270), and the votes for upright against upside down (0 against 180).
Both are NaN-free; with no text the angle and the orientation are NaN.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import cKDTree
from threadpoolctl import ThreadpoolController

from quality.pixels import NOISE_MIN, downscale_by, noise_sigma
from quality.rotation import (
    FINE_SKEW_POINTS,
    _centred,
    _dark_ink,
    _profile_criterion,
    _stroke_mask,
    estimate_skew,
    fine_angle,
    stroke_points,
)

MIN_GLYPHS = 6  # fewer glyph-sized components than this: no text
MIN_ROT_SHORT = 24  # px: an image thinner than this is not read (`quality.scores` enlarges a thinner line crop)
MIN_ORIENTATION_CONFIDENCE = 0.9  # a turned page is flagged from this orientation confidence on (`quality.filter`)
_SPECK_COUNT, _SPECK_PX = 30, 3.0  # fewer shapes than this, under this size (median short side, px): specks
MIN_ALONG = 0.3  # share of nearest-glyph directions within _TOL_DEG of the line direction
MIN_ALONG_RATIO = 1.8  # ... and at least this many times the share in the perpendicular direction
FINE_GLYPH_PX = 10.0  # glyphs (short side, median) smaller than this are re-read from a finer image for up/down
READABLE_GLYPH_PX = 5.0  # ... and when no finer image exists, glyphs under this give up/down at low confidence
SMALL_GLYPH_PX = 6.0  # a page with no text lines is read again finer: glyphs smaller than this ...
_FINER_TARGET_PX = 8.0  # ... brought to about this size, larger ones (perhaps words whose letters touch) ...
_WORDS_FINER = 2.0  # ... read at this many times the scale
_TOL_DEG = 10.0
_WORD_SHARE, _WORD_ASPECT = 0.5, 2.0  # `_along_words`: share of glyphs this many times longer across the line ...
_WORD_TILT = 20.0  # ... read from glyph boxes, so only for a line direction this close to the axes
_COARSE_POINTS = 3000
_MAX_FINE_SIDE, _FINE_CROP = 2400, 1024  # longest side (px) of the finer image at most; side of the block read
_NEIGHBOURS, _BAND_Q, _PROTRUDE = 12, 0.3, 0.2  # line bands: neighbours per glyph, band quantile; protrusion (x-h)
FRAME, _FRAME_XH, _MAX_VOTERS = 16, 2.5, 200  # glyph frames: cells per side, side in x-heights, glyphs read per page
ORIENTATION_MODEL = Path(__file__).with_name("orientation_model.npz")
_VOTE_SCORE = 1.0  # a glyph votes when its score (`glyph_scores`) is beyond this either way
ASCENDER_WEIGHT = 0.15  # votes per protruding glyph (`_votes`): chosen on the tune pages and the generated tests
_CHECK_BELOW, _AGREE_DEG = 0.35, 2.0  # text confidence under which the answer is cross-checked; agreement (degrees)
_PLENTY, _RANDOM_ALONG = 60, 0.2  # glyph count and along-share of a texture (the other polarity is then skipped)
_OTHER_INK_BELOW = 0.7  # the other ink polarity is tried when the paper's lines up below this along share ...
_OTHER_INK_ALONG = 1.2  # ... and read when it lines up this many times better ...
_OTHER_INK_LARGER = 1.5  # ... with glyphs this many times larger ...
_OTHER_INK_COUNT = 0.5  # ... and at least this share as many
_FEW_GLYPHS, _SHARP_PX = 40, 1.5  # an answer from fewer glyphs is cross-checked too, unless blur σ (px) is below
_BLOCK_GLYPHS, _BLOCK_ALONG, _BLOCK_RATIO = 30, 0.4, 4.0  # a text block in a window of a busy photo (`_text_block`)
_RETRY_CONF = 0.9  # line-periodicity confidence a retry at the JPEG grain's noise level needs (photos reach 0.85)
_SIDE_CONF = 0.5  # line-periodicity confidence the quarter-turned search of `_line_search` needs
_THICK_BLUR_PX = 4.0  # blur (px) whose stroke kernel `_thick_look` reads bold or large letters with
_SIDE_DEG, _SIDE_ALONG, _SIDE_RATIO = 20.0, 0.2, 1.4  # when that search runs at all (`_leans_vertical`)
_FINE_SKEW_SIDE = 960  # px: the longest side of the image `_finer_skew` refines the skew on


@dataclass(frozen=True)
class PageRotation:
    angle: float  # skew of the text lines, degrees CCW in (-45, 45]; NaN when there is no text
    confidence: float  # 0..1
    orientation: float  # 0, 90, 180 or 270 (degrees CCW the upright page was turned); NaN when there is no text
    orientation_confidence: float  # 0..1


NO_TEXT = PageRotation(float("nan"), 0.0, float("nan"), 0.0)


def fold(angle: float) -> float:
    """`angle` folded into (-45, 45] (lines at a and a + 90 have the same skew)."""
    return -(((-angle + 45.0) % 90.0) - 45.0)


@dataclass(frozen=True)
class Glyphs:
    """The glyph-sized connected components of a stroke mask."""

    labels: np.ndarray  # component label per pixel (0 = background; uint16 or int32), as cv2 gives it
    centroids: np.ndarray  # (N, 2) x, y of the kept components
    stats: np.ndarray  # (N, 5) cv2 stats (x, y, w, h, area) of the kept components
    kept: np.ndarray  # (labels.max() + 1,) bool: which labels are glyphs

    def mask(self) -> np.ndarray:
        """0/1 uint8 mask of the glyphs alone (rules, panel edges and specks left out)."""
        return np.take(self.kept.view(np.uint8), self.labels)  # twice as fast as indexing with the labels

    def size(self) -> float:
        """The glyphs' typical size: the median of their short sides (px); call it on a non-empty set."""
        return float(np.median(np.minimum(self.stats[:, 2], self.stats[:, 3])))


def max_glyph_side(h: int, w: int) -> float:
    """Longest side (px) a glyph may have in an h x w image: a fifth of the short side on a page; on a strip (a
    single text line, a crop for a recogniser) most of its height, but never a tenth of its length (a rule)."""
    short, long = min(h, w), max(h, w)
    return max(0.2 * short, min(0.8 * short, 0.1 * long))


def glyphs(mask: np.ndarray) -> Glyphs:
    """The glyph-sized components of a 0/1 mask: not single specks, not long rules or large shapes."""
    # 16-bit labels are twice as fast; a mask with more pixels than that could overflow them.
    ltype = cv2.CV_16U if cv2.countNonZero(mask) < 65535 else cv2.CV_32S
    _, labels, stats, cen = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=ltype)
    h, w = mask.shape
    long_side = np.maximum(stats[:, 2], stats[:, 3])
    # One-pixel-thin pieces are the staircase of a rotated edge (a bar, a panel), not letters.
    short_side = np.minimum(stats[:, 2], stats[:, 3])
    kept = (stats[:, 4] >= 3) & (short_side >= 2) & (long_side <= max_glyph_side(h, w))
    kept[0] = False
    return Glyphs(labels, np.compress(kept, cen, axis=0), np.compress(kept, stats, axis=0), kept)


def line_direction(cen: np.ndarray) -> tuple[float, float, float]:
    """(direction of the text lines in degrees CCW in [0, 180), share of nearest-glyph directions within 10° of it,
    the same share around the perpendicular direction) from glyph centroids (x, y with y down)."""
    return _peak(neighbour_directions(cen))


def neighbour_directions(cen: np.ndarray) -> np.ndarray:
    """(N, 2) directions (degrees in [0, 180), CCW) from each glyph centroid to its two nearest glyphs."""
    k = min(3, len(cen))
    _, idx = cKDTree(cen).query(cen, k=k)
    v = np.take(cen, idx[:, 1:], axis=0) - cen[:, None, :]  # np.take: the same rows, ~4x faster
    return np.degrees(np.arctan2(-v[..., 1], v[..., 0])) % 180.0


def _peak(directions: np.ndarray) -> tuple[float, float, float]:
    """`line_direction` of neighbour directions (any shape)."""
    ang = directions.ravel()
    hist = np.bincount(ang.astype(np.intp) % 180, minlength=180).astype(np.float64)
    width = int(2 * _TOL_DEG + 1)
    smooth = np.convolve(np.concatenate([hist[-int(_TOL_DEG) :], hist, hist[: int(_TOL_DEG)]]), np.ones(width), "valid")
    peak = int(np.argmax(smooth))
    # Refine to the circular mean of the directions within the window.
    near = np.abs(((ang - peak - 0.5) + 90.0) % 180.0 - 90.0) <= _TOL_DEG
    d = np.deg2rad(2.0 * ang[near])
    phi = (math.degrees(math.atan2(np.sin(d).sum(), np.cos(d).sum())) / 2.0) % 180.0
    along = float(near.mean())
    across = float((np.abs(((ang - phi - 90.0) + 90.0) % 180.0 - 90.0) <= _TOL_DEG).mean())
    return phi, along, across


def _along_words(
    g: np.ndarray, found: Glyphs, ink: bool, phi: float, finer: Callable[[float], np.ndarray | None] | None
) -> float:
    """The line direction `phi`, or the one a finer image gives when the glyphs may be whole words lying across it.

    Dense small print shrunk to the working scale merges each word into one shape; its lines are then closer to
    each other than the centres of neighbouring words are along a line, so the nearest-neighbour directions pile
    up across the lines (an A4 page at 300 dpi read at 640 px: 5 x 11 px words, lines 9 px apart, peak at 94°
    with 77 % of the directions, read on its side at 0.70-0.84). Words are long along their line: when at least
    `_WORD_SHARE` of `_FEW_GLYPHS` or more glyphs are `_WORD_ASPECT` times longer across the peak than along it
    (from their boxes, so only for a peak within `_WORD_TILT` of the axes), the block around them is read again
    on the finest image there is (up to ``_MAX_FINE_SIDE`` px), where the letters stand apart; its direction is
    taken when it passes the text test there and lies across `phi`. Tall letters (handwriting, a receipt's
    narrow print) are long across correctly read lines too, and read the same way when finer; without a finer
    image `phi` stands (the stroke profile across and along could not tell a receipt's columns from words)."""
    if len(found.stats) < _FEW_GLYPHS or abs((phi + 45.0) % 90.0 - 45.0) > _WORD_TILT:
        return phi
    w, h = found.stats[:, 2], found.stats[:, 3]
    across = np.mean(w >= _WORD_ASPECT * h) if 45.0 <= phi < 135.0 else np.mean(h >= _WORD_ASPECT * w)
    if across < _WORD_SHARE:
        return phi
    big = _finer_copy(g, finer, _MAX_FINE_SIDE / max(g.shape))  # as fine as there is: letters that touch split
    if big is None:
        return phi
    letters = glyphs(_stroke_mask(_block_around(found, big, big.shape[0] / g.shape[0]), ink, 0.0, 0.0))
    if len(letters.centroids) < _FEW_GLYPHS:
        return phi
    fine_phi, along, off = _peak(neighbour_directions(letters.centroids))
    turned = abs((fine_phi - phi + 90.0) % 180.0 - 90.0) > 45.0
    return fine_phi if turned and along >= MIN_ALONG and along >= MIN_ALONG_RATIO * off else phi


def _text_block(
    cen: np.ndarray, directions: np.ndarray, shape: tuple[int, ...]
) -> tuple[float, float, slice, slice] | None:
    """A text block on a busy photo, where the photo's shapes outnumber the glyphs: the window (a quarter of the
    image: 2x2 cells of a 4x4 grid, nine overlapping windows) whose glyphs line up most clearly, as (line direction,
    along share, rows, columns), or None when no window holds ``_BLOCK_GLYPHS`` glyphs lined up at least
    ``_BLOCK_ALONG`` and ``_BLOCK_RATIO`` times more than across (a photo's own shapes rarely do, even locally)."""
    h, w = shape[:2]
    cy = np.minimum((cen[:, 1] * 4 / h).astype(np.intp), 3)
    cx = np.minimum((cen[:, 0] * 4 / w).astype(np.intp), 3)
    bound = _window_along_bounds(cy * 4 + cx, directions)
    best: tuple[float, float, slice, slice] | None = None
    for by in range(3):
        for bx in range(3):
            if bound[by, bx] < _BLOCK_ALONG:  # cannot line up enough (this also skips windows without glyphs)
                continue
            sel = (cy >= by) & (cy <= by + 1) & (cx >= bx) & (cx <= bx + 1)
            if int(sel.sum()) < _BLOCK_GLYPHS:
                continue
            phi, along, across = _peak(directions[sel])
            if along >= _BLOCK_ALONG and along >= _BLOCK_RATIO * across and (best is None or along > best[1]):
                rows = slice(by * h // 4, (by + 2) * h // 4)
                cols = slice(bx * w // 4, (bx + 2) * w // 4)
                best = (phi, along, rows, cols)
    return best


def _window_along_bounds(cell: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(3, 3) upper bounds of the along share `_peak` finds in each window of `_text_block` (2x2 cells of a 4x4
    grid; `cell` is each glyph's cell, row * 4 + column): the most directions any `_peak` search window of 21
    one-degree bins holds, over the window's directions (0 for an empty window). `_peak`'s own window lies within
    those bins, so its along share is never larger; windows below ``_BLOCK_ALONG`` need no `_peak`."""
    width = int(_TOL_DEG)
    bins = directions.astype(np.intp) % 180  # as `_peak` bins them
    per_dir = np.repeat(cell, directions.shape[1]) * 180 + bins.ravel()
    cells = np.bincount(per_dir, minlength=16 * 180).reshape(4, 4, 180)
    win = cells[:-1, :-1] + cells[1:, :-1] + cells[:-1, 1:] + cells[1:, 1:]  # (3, 3, 180)
    wrapped = np.concatenate([win[..., -width:], win, win[..., :width]], axis=-1)
    csum = np.concatenate([np.zeros((3, 3, 1), np.intp), np.cumsum(wrapped, axis=-1)], axis=-1)
    peak = (csum[..., 2 * width + 1 :] - csum[..., : -(2 * width + 1)]).max(axis=-1)
    n = win.sum(axis=-1)
    return np.where(n > 0, peak / np.maximum(n, 1), 0.0)


def _skew_near(pts: np.ndarray, phi: float) -> float:
    """The line direction (degrees, within 10° of `phi`) that maximises Postl's criterion of the sampled stroke
    points `pts` (`stroke_points`)."""
    coarse = np.arange(phi - 10.0, phi + 10.001, 1.0)
    best = float(coarse[int(np.argmax(_profile_criterion(pts[:_COARSE_POINTS], coarse, 2.0)))])
    mid = np.arange(best - 1.0, best + 1.001, 0.25)
    best = float(mid[int(np.argmax(_profile_criterion(pts[: 2 * _COARSE_POINTS], mid, 1.0)))])
    return fine_angle(pts, best)


_LEVEL_BELOW = 0.25  # degrees: lines this close to horizontal are read without turning the mask


def _level(mask: np.ndarray, theta: float, boxes: np.ndarray | None = None) -> np.ndarray:
    """`mask` turned by `-theta` degrees (nearest neighbour, canvas grown to keep every pixel), so that lines running
    at `theta` degrees CCW run left to right with the glyphs' tops up.

    With `boxes` (N, 4: x, y, w, h of every shape in the mask), only the part of that canvas the turned boxes cover
    is filled (an integer shift of the same sampling grid): less to turn and to label, the same shapes."""
    if abs(theta) < _LEVEL_BELOW:
        return mask
    h, w = mask.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -theta, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c + 1), int(h * c + w * s + 1)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    if boxes is not None and len(boxes):
        x, y, bw, bh = (boxes[:, i].astype(np.float64) for i in range(4))
        xs, ys = np.concatenate([x, x + bw, x, x + bw]), np.concatenate([y, y, y + bh, y + bh])
        u, v = m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
        # Nearest-neighbour sampling puts a pixel within a pixel of its turned position; box corners are pixel corners,
        # so a margin of four pixels keeps every pixel of every box.
        u0, v0 = max(0, math.floor(u.min()) - 4), max(0, math.floor(v.min()) - 4)
        nw, nh = min(nw, math.ceil(u.max()) + 5) - u0, min(nh, math.ceil(v.max()) + 5) - v0
        m[0, 2] -= u0
        m[1, 2] -= v0
    return cv2.warpAffine(mask, m, (nw, nh), flags=cv2.INTER_NEAREST, borderValue=0)


def up_down(mask: np.ndarray, theta: float, boxes: np.ndarray | None = None) -> tuple[int, int]:
    """(votes for upright, votes for upside down) of a 0/1 glyph mask whose lines run at `theta` degrees CCW with the
    glyphs' tops towards `theta + 90` (`_votes`). The mask is levelled first; `boxes` (optional) are the glyphs'
    bounding boxes (see `_level`)."""
    lines = _level_lines(mask, theta, boxes)
    return (0, 0) if lines is None else _votes(lines)


def glyph_up_down(found: Glyphs, theta: float) -> tuple[int, int]:
    """`up_down` of the glyph mask of `found`."""
    lines = lines_of(found, theta)
    return (0, 0) if lines is None else _votes(lines)


def lines_of(found: Glyphs, theta: float) -> LineGlyphs | None:
    """`line_glyphs` of `found`, whose lines run at `theta` degrees CCW. Lines already level need no second
    labelling: the components of the glyph mask are then exactly the glyphs (a subset of a mask's components keeps
    them apart), in the same order; otherwise only the glyphs' part of the canvas is turned (`_level`)."""
    if abs(theta) < _LEVEL_BELOW:
        ids = np.flatnonzero(found.kept)
        return line_glyphs(found.labels, found.stats, ids, max_glyph_side(*found.labels.shape))
    return _level_lines(found.mask(), theta, found.stats[:, :4])


def _votes(lines: LineGlyphs) -> tuple[int, int]:
    """(votes for upright, votes for upside down): each glyph's own vote (`glyph_votes`) plus ``ASCENDER_WEIGHT`` of
    a vote for each glyph rising above its line's band (for upright) and each falling below it (for upside down).

    The shapes decide on their own whenever they agree clearly; the ascender count is a weak Latin prior for pages
    whose few, small or blurred glyphs leave the shapes undecided (a screenshot's short labels, a noisy line crop).
    It is weak on purpose: Cyrillic, Greek and Armenian have more descenders than ascenders."""
    up, down = glyph_votes(glyph_frames(lines))
    rising, falling = _protrusions(lines)
    return round(up + ASCENDER_WEIGHT * rising), round(down + ASCENDER_WEIGHT * falling)


@dataclass(frozen=True)
class LineGlyphs:
    """The glyphs of a levelled mask (lines left to right, tops up) and the x-height band of the line each sits on."""

    labels: np.ndarray  # the mask's label image
    ids: np.ndarray  # (N,) label of each glyph
    top: np.ndarray  # (N,) top of each glyph, y up (px)
    bottom: np.ndarray  # (N,) bottom, y up
    along: np.ndarray  # (N,) middle of each glyph along its line (x, px)
    band_top: np.ndarray  # (N,) top of its line's x-height band, y up
    band_bottom: np.ndarray  # (N,) bottom of that band (the baseline), y up


def _level_lines(mask: np.ndarray, theta: float, boxes: np.ndarray | None = None) -> LineGlyphs | None:
    """`line_glyphs` of a 0/1 glyph mask whose lines run at `theta` degrees CCW, levelled first (`_level`)."""
    level = _level(mask, theta, boxes)
    ltype = cv2.CV_16U if cv2.countNonZero(level) < 65535 else cv2.CV_32S
    n, labels, st, _ = cv2.connectedComponentsWithStats(level, connectivity=8, ltype=ltype)
    return line_glyphs(labels, st[1:], np.arange(1, n), max_glyph_side(*mask.shape))


def line_glyphs(labels: np.ndarray, stats: np.ndarray, ids: np.ndarray, max_glyph: float) -> LineGlyphs | None:
    """The glyphs among the components of a levelled mask and their lines' bands; None when there are too few.

    `labels` is the mask's label image, `stats` the cv2 stats (x, y, w, h, area) of the components whose labels are
    `ids`, `max_glyph` the longest side a glyph may have (`max_glyph_side` of the mask before levelling). A glyph's
    band is a low quantile of the tops and the mirrored quantile of the bottoms of its neighbours on the same line, so
    turning the page over turns every band over exactly."""
    st = stats.astype(np.float64)
    short_side, long_side = np.minimum(st[:, 2], st[:, 3]), np.maximum(st[:, 2], st[:, 3])
    glyph = (st[:, 4] >= 4) & (short_side >= 2) & (long_side <= max_glyph)
    st, ids = np.compress(glyph, st, axis=0), np.compress(glyph, ids)
    if len(st) < MIN_GLYPHS:
        return None
    top, bot = -st[:, 1], -(st[:, 1] + st[:, 3])  # y up
    height = top - bot
    med = float(np.median(height))
    keep = (height > 0.4 * med) & (height < 3.0 * med)
    if keep.sum() < MIN_GLYPHS:
        return None
    st, ids, top, bot = st[keep], ids[keep], top[keep], bot[keep]
    along = st[:, 0] + 0.5 * st[:, 2]
    pos = np.stack([along, 2.0 * (top + bot)], 1)  # neighbours on the same line: distance across lines counts 4x
    pos -= pos.min(axis=0)  # the same tree, and the same ties, wherever the levelled canvas starts
    _, idx = cKDTree(pos).query(pos, k=min(_NEIGHBOURS + 1, len(pos)))
    q = round(_BAND_Q * (idx.shape[1] - 2))
    band_top = np.sort(top[idx[:, 1:]], axis=1)[:, q]
    band_bottom = np.sort(bot[idx[:, 1:]], axis=1)[:, -1 - q]
    return LineGlyphs(labels, ids, top, bot, along, band_top, band_bottom)


def _protrusions(lines: LineGlyphs) -> tuple[int, int]:
    """(glyphs rising above their line's x-height band, glyphs falling below its baseline): Latin's ascenders
    (b d f h k l t, capitals) and descenders (g j p q y)."""
    x_height = np.maximum(lines.band_top - lines.band_bottom, 1.0)
    rising = int((lines.top > lines.band_top + _PROTRUDE * x_height).sum())
    falling = int((lines.bottom < lines.band_bottom - _PROTRUDE * x_height).sum())
    return rising, falling


def glyph_frames(lines: LineGlyphs, limit: int = _MAX_VOTERS) -> np.ndarray:
    """(N, FRAME * FRAME) float32 pictures of the glyphs, each in its line's own frame: a square ``_FRAME_XH``
    x-heights wide centred on the glyph along the line and on its line's band across it, area-averaged to FRAME x
    FRAME cells (ink share 0..1). At most `limit` glyphs, evenly spread over the page."""
    n = len(lines.ids)
    half = 0.5 * _FRAME_XH * np.maximum(lines.band_top - lines.band_bottom, 3.0)
    pick = np.unique(np.linspace(0, n - 1, min(limit, n)).round().astype(np.intp))
    # Pixel-edge coordinates: the band's middle and the glyph's middle are whole or half pixels. Each half-size is
    # rounded so that the window's edges fall on pixel edges, symmetric about those middles: the window of the page
    # turned over is then exactly this window turned over (no rounding tie can favour one way up).
    cy2 = np.rint(-(lines.band_top + lines.band_bottom)[pick]).astype(np.intp)  # twice the middle across the line
    cx2 = np.rint(2.0 * lines.along[pick]).astype(np.intp)  # twice the middle along it
    r, frac = np.ceil(half[pick]).astype(np.intp), np.ceil(half[pick]) - half[pick]
    step = np.where(frac >= 0.5, -1, 1)
    ry2, rx2 = 2 * r + (cy2 % 2) * step, 2 * r + (cx2 % 2) * step
    y0, y1, x0, x1 = (cy2 - ry2) // 2, (cy2 + ry2) // 2, (cx2 - rx2) // 2, (cx2 + rx2) // 2
    h, w = lines.labels.shape
    inside = (y0 >= 0) & (x0 >= 0) & (y1 <= h) & (x1 <= w)
    out = np.zeros((len(pick), FRAME * FRAME), np.float32)
    labels, ids = lines.labels, lines.ids[pick]
    for row in range(len(pick)):
        if inside[row]:
            cell = (labels[y0[row] : y1[row], x0[row] : x1[row]] == ids[row]).astype(np.float32)
        else:
            cell = np.zeros((max(y1[row] - y0[row], 1), max(x1[row] - x0[row], 1)), np.float32)
            ya, yb, xa, xb = max(y0[row], 0), min(y1[row], h), max(x0[row], 0), min(x1[row], w)
            if ya < yb and xa < xb:
                cell[ya - y0[row] : yb - y0[row], xa - x0[row] : xb - x0[row]] = labels[ya:yb, xa:xb] == ids[row]
        out[row] = cv2.resize(cell, (FRAME, FRAME), interpolation=cv2.INTER_AREA).ravel()
    return out


@functools.cache
def _model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The weights (w1, b1, w2) of the glyph network g (`benchmarks/orientation_model.py` trains it)."""
    with np.load(ORIENTATION_MODEL) as z:
        return z["w1"], z["b1"], z["w2"]


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS thread pools (`threadpoolctl`), read once."""
    return ThreadpoolController()


def glyph_scores(frames: np.ndarray) -> np.ndarray:
    """How upright each glyph frame reads: s(x) = g(x) - g(x turned 180°), with g a one-hidden-layer network trained
    on rendered upright glyphs of many scripts. Antisymmetric by construction: turning the page over negates every
    score; a glyph that reads the same both ways ("o", "x", "n"/"u") scores near 0.

    The products run on one BLAS thread: a few hundred frames are far too little work to share, and OpenBLAS's
    threads waking and spinning for it cost ten times the product itself (1.8 ms of CPU instead of 0.14 ms for 200
    frames on 2 cores; a third of all the scoring time on the generated set)."""
    w1, b1, w2 = _model()
    turned = np.ascontiguousarray(frames.reshape(-1, FRAME, FRAME)[:, ::-1, ::-1]).reshape(len(frames), -1)
    with _blas().limit(limits=1, user_api="blas"):
        return np.tanh(frames @ w1 + b1) @ w2 - np.tanh(turned @ w1 + b1) @ w2


def glyph_votes(frames: np.ndarray) -> tuple[int, int]:
    """(glyphs that clearly read upright, glyphs that clearly read upside down): `glyph_scores` beyond
    ±``_VOTE_SCORE``. The network knows Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Bengali, Tamil, Thai,
    Georgian, Armenian and Chinese/Japanese/Korean glyphs in several fonts. Whether ascenders outnumber descenders
    depends on the script (Latin: yes; Cyrillic, Greek, Armenian: no), so the shapes themselves decide: "e", "я",
    "λ" or "ק" read one way only."""
    if len(frames) == 0:
        return 0, 0
    s = glyph_scores(frames)
    return int((s > _VOTE_SCORE).sum()), int((s < -_VOTE_SCORE).sum())


def _way_up(theta: float, upright: int, turned: int) -> tuple[float, float]:
    """(skew, orientation) of lines running at `theta` whose glyphs voted `upright` for that direction and `turned`
    for the opposite one. Upside down needs as clear a vote as the flag does (``MIN_ORIENTATION_CONFIDENCE``), else
    the page reads upright: pages come upright far more often than upside down (version 27)."""
    if turned > upright:
        theta += 180.0
    skew = fold(theta)
    orientation = float(round((theta - skew) / 90.0) * 90 % 360)
    if orientation == 180.0 and _sign_confidence(upright, turned) < MIN_ORIENTATION_CONFIDENCE:
        orientation = 0.0
    return float(skew), orientation


def _sign_confidence(a: int, b: int) -> float:
    """Probability that a split of a + b glyphs into a and b is not a coin toss (normal approximation, 0.5..1)."""
    n = a + b
    if n == 0:
        return 0.5
    z = abs(a - b) / math.sqrt(n)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def estimate_rotation(
    g: np.ndarray,
    noise: float = 0.0,
    blur_px: float = 0.0,
    finer: Callable[[float], np.ndarray | None] | None = None,
    hist: np.ndarray | None = None,
) -> PageRotation:
    """Skew and orientation of the text of uint8 grey `g` (at most ROT_SIDE px long, or a strip at least
    `quality.scores.ROT_MIN_SHORT` px across); see the module doc.

    `finer(f)`, when given, returns the same image `f` times larger (or None when no finer version exists): used to
    tell up from down when the glyphs are too small at this scale. `hist`, when given, is `grey_histogram(g)`
    already computed by the caller (the same answer, one histogram less)."""
    if min(g.shape) < MIN_ROT_SHORT:
        return NO_TEXT
    # A text block found in one window only (`_text_block`) is the last resort: small print read on a finer image
    # comes first (a page of 4-px letters had a window of 30 lined-up glyphs at a wrong angle).
    blocks: list[PageRotation] = []
    answer = _estimate(g, noise, blur_px, finer, hist=hist, blocks=blocks)
    if math.isnan(answer.angle):
        # JPEG hides fine noise from the per-pixel estimate; its coarser grain then passes as strokes. Judged again
        # with the grain's level only when nothing was found, so other pages keep their finer stroke mask.
        grain = _grain(g)
        if grain > max(1.5 * noise, NOISE_MIN * 2):
            answer = _estimate(g, grain, blur_px, finer, _RETRY_CONF, blocks=blocks)
    if math.isnan(answer.angle) and finer is not None:
        answer = _finer_look(g, noise, blur_px, finer) or answer
    if math.isnan(answer.angle) and blocks:
        answer = blocks[0]
    if math.isnan(answer.angle):
        answer = _thick_look(g, noise, blur_px) or answer
    return _finer_skew(answer, g, noise, blur_px, finer, hist)


def _finer_skew(
    answer: PageRotation,
    g: np.ndarray,
    noise: float,
    blur_px: float,
    finer: Callable[[float], np.ndarray | None] | None,
    hist: np.ndarray | None = None,
) -> PageRotation:
    """`answer` with its skew refined on a finer image (``_FINE_SKEW_SIDE`` px long, ``FINE_SKEW_POINTS`` stroke
    pixels of the ink polarity of `g`, whose grey histogram `hist` may be given), when `g` is a copy shrunk at least
    1.5 times (`_finer_copy`): at ``ROT_SIDE`` the lines of a phone screenshot (1080 x 2400) are under 290 px long,
    one pixel of drift over them is 0.2°, and a straight screenshot read 0.29-0.31° (version 26). The search stays
    within 0.3° of the answer, so orientation and text are as found."""
    if finer is None or math.isnan(answer.angle):
        return answer
    big = _finer_copy(g, finer, _FINE_SKEW_SIDE / max(g.shape))
    if big is None:
        return answer
    scale = big.shape[0] / g.shape[0]
    pts = stroke_points(_stroke_mask(big, _dark_ink(g, hist), blur_px * scale, noise * scale), FINE_SKEW_POINTS)
    if len(pts) < _COARSE_POINTS:
        return answer
    lines = answer.angle + answer.orientation
    skew = answer.angle + fine_angle(_centred(pts), lines) - lines
    if not -45.0 < skew <= 45.0:  # across the fold the orientation would change too: kept as it was
        return answer
    return PageRotation(float(skew), answer.confidence, answer.orientation, answer.orientation_confidence)


def _thick_look(g: np.ndarray, noise: float, blur_px: float) -> PageRotation | None:
    """The rotation read with a wider stroke kernel when nothing else found text: bold or large letters (a meme's
    caption, a title, a sign) have strokes wider than the kernel (5-7 px on most pages), whose black-hat keeps only
    their edges, and those fragments do not line up. The kernel is that of a blur of ``_THICK_BLUR_PX`` px (21 px),
    a line-periodicity answer needs ``_RETRY_CONF``; None when it finds no text or the image is that blurred."""
    if blur_px >= _THICK_BLUR_PX:
        return None
    answer = _estimate(g, noise, _THICK_BLUR_PX, None, _RETRY_CONF)
    return None if math.isnan(answer.angle) else answer


def _finer_look(
    g: np.ndarray, noise: float, blur_px: float, finer: Callable[[float], np.ndarray | None]
) -> PageRotation | None:
    """The rotation read from a finer image when `g`, a shrunk copy, shows no text lines: small print on a large
    page (a two-column dictionary page at 640 px has 4-px letters that touch and split, so their neighbour
    directions no longer line up; a dense form shrunk 5x shows whole words as single shapes). The finer image
    brings glyphs under ``SMALL_GLYPH_PX`` to about ``_FINER_TARGET_PX`` and is ``_WORDS_FINER`` x finer for larger
    ones, at most ``_MAX_FINE_SIDE`` px long; None when there is no finer image or no answer there."""
    found = glyphs(_stroke_mask(g, _dark_ink(g, None), blur_px, noise))
    if not len(found.stats):
        return None
    glyph_px = found.size()
    # Small glyphs are brought to about _FINER_TARGET_PX; larger ones may be whole words whose letters touch (dense
    # small print shrunk 5x): those are read at _WORDS_FINER x the scale, and so are fewer than MIN_GLYPHS shapes,
    # which may be the words of a page of one line whose letters merged (version 24: a PDF page holding the one word
    # "habibi" and its Arabic, 3 shapes at 585 px and 10 letters at 1170 px, had no answer).
    few = len(found.stats) < MIN_GLYPHS
    wanted = _FINER_TARGET_PX / max(glyph_px, 1.0) if glyph_px < SMALL_GLYPH_PX and not few else _WORDS_FINER
    big = _finer_copy(g, finer, min(wanted, _MAX_FINE_SIDE / max(g.shape)))
    if big is None:
        return None
    scale = big.shape[0] / g.shape[0]  # averaging fewer pixels: noise and blur (px) grow with the scale
    answer = _estimate(big, noise * scale, blur_px * scale, None)
    return None if math.isnan(answer.angle) else answer


def _estimate(
    g: np.ndarray,
    noise: float,
    blur_px: float,
    finer: Callable[[float], np.ndarray | None] | None,
    min_conf: float = 0.0,
    hist: np.ndarray | None = None,
    blocks: list[PageRotation] | None = None,
) -> PageRotation:
    """`estimate_rotation` at one noise level; line-periodicity answers (`_line_search`) need `min_conf`. `hist` is the
    grey histogram of `g` (optional), used only while `g` is read as given. With `blocks` (a list), an answer from a
    text block in one window is appended there and NO_TEXT returned, so the caller can look further first."""
    if noise > NOISE_MIN * 2:  # noise specks would pass as strokes
        g, noise = _denoised(g, noise)
        hist = None
    dark = _dark_ink(g, hist)
    masks: dict[bool, np.ndarray] = {}  # per ink polarity, reused by the fallback
    points: dict[bool, np.ndarray] = {}  # per ink polarity, sampled stroke points, reused by the fallback
    unlined: list[tuple[np.ndarray, Glyphs, np.ndarray]] = []  # (mask, glyphs, directions) that failed the text test
    found_by_ink: dict[bool, Glyphs] = {}  # per ink polarity: its glyphs, which the line search's answer reads
    for ink in (dark, not dark):
        mask = masks[ink] = _stroke_mask(g, ink, blur_px, noise)
        found = found_by_ink[ink] = glyphs(mask)
        if len(found.centroids) < MIN_GLYPHS or _specks(found):
            continue
        directions = neighbour_directions(found.centroids)
        phi, along, across = _peak(directions)
        if ink == dark and MIN_ALONG <= along < _OTHER_INK_BELOW and along >= MIN_ALONG_RATIO * across:
            other = _other_ink_lines(g, not dark, blur_px, noise, along, found)
            if other is not None:
                ink = not dark
                mask, found, directions, (phi, along, across) = other
                masks[ink], found_by_ink[ink] = mask, found
        if along < MIN_ALONG or along < MIN_ALONG_RATIO * across:
            unlined.append((mask, found, directions))
            if len(found.centroids) >= _PLENTY and along < _RANDOM_ALONG:
                break  # plenty of shapes pointing every way: a texture, and its negative is one too
            continue
        points[ink] = stroke_points(mask)
        phi = _along_words(g, found, ink, phi, finer)
        theta = _skew_near(points[ink], phi)
        n_dirs = 2 * len(found.centroids)  # two neighbour directions per glyph
        line_conf = _sign_confidence(round(along * n_dirs), round(across * n_dirs))
        upright, turned = _up_down_at_scale(g, found, ink, theta, finer)
        skew, orientation = _way_up(theta, upright, turned)
        text_conf = min(1.0, (along - MIN_ALONG / 2) / (1.0 - MIN_ALONG / 2))
        answer = PageRotation(
            float(skew), float(text_conf), orientation, float(line_conf * _sign_confidence(upright, turned))
        )
        if text_conf >= _CHECK_BELOW and (len(found.centroids) >= _FEW_GLYPHS or blur_px <= _SHARP_PX):
            return answer
        return _checked(answer, g, noise, blur_px, masks, min_conf, dark, points, found_by_ink.get(dark), finer)
    if not any(len(f.stats) for f in found_by_ink.values()):
        return NO_TEXT  # not one glyph-sized shape of either ink: a blank page, whose faint streaks are no lines
    # Glyphs that do not line up by their neighbours (heavy blur, faded or tiny print): the line-periodicity search.
    side = any(_leans_vertical(*_peak(directions)) for _, _, directions in unlined)
    lines = _line_search(g, noise, blur_px, masks, min_conf, dark, points, side)
    if lines is not None:
        read = _read_lines(lines, found_by_ink.get(dark), g, dark, finer)
        return _confirmed_finer(read, found_by_ink.get(dark), g, noise, blur_px, finer)
    for mask, found, directions in unlined:
        block = _text_block(found.centroids, directions, g.shape)
        if block is not None:
            if blocks is None:
                return _block_rotation(mask, found, block)
            blocks.append(_block_rotation(mask, found, block))
            break
    return NO_TEXT


def _denoised(g: np.ndarray, noise: float) -> tuple[np.ndarray, float]:
    """`g` smoothed by a 1-px Gaussian and its noise level after it (`_estimate` on a noisy image)."""
    return cv2.GaussianBlur(g, (0, 0), 1.0), noise / (2.0 * math.sqrt(math.pi))


def _texture_only(g: np.ndarray, noise: float, blur_px: float) -> bool:
    """Both inks of `g` show plenty of glyph-sized shapes pointing every way (``_PLENTY``, ``_RANDOM_ALONG``): a
    texture (sand, foliage, a pen's grain), as `_estimate` reads one."""
    if noise > NOISE_MIN * 2:
        g, noise = _denoised(g, noise)
    for ink in (True, False):
        found = glyphs(_stroke_mask(g, ink, blur_px, noise))
        if len(found.centroids) < _PLENTY or _peak(neighbour_directions(found.centroids))[1] >= _RANDOM_ALONG:
            return False
    return True


def _other_ink_lines(
    g: np.ndarray, ink: bool, blur_px: float, noise: float, along: float, found: Glyphs
) -> tuple[np.ndarray, Glyphs, np.ndarray, tuple[float, float, float]] | None:
    """The other polarity's (mask, glyphs, neighbour directions, peak) when its glyphs line up clearly better."""
    mask = _stroke_mask(g, ink, blur_px, noise)
    other = glyphs(mask)
    if len(other.centroids) < max(MIN_GLYPHS, _OTHER_INK_COUNT * len(found.centroids)) or _specks(other):
        return None
    if other.size() < _OTHER_INK_LARGER * found.size():
        return None
    directions = neighbour_directions(other.centroids)
    peak = _peak(directions)
    if peak[1] < _OTHER_INK_ALONG * along or peak[1] < MIN_ALONG_RATIO * peak[2]:
        return None
    return mask, other, directions, peak


def _confirmed_finer(
    read: PageRotation,
    found: Glyphs | None,
    g: np.ndarray,
    noise: float,
    blur_px: float,
    finer: Callable[[float], np.ndarray | None] | None,
) -> PageRotation:
    """A line-search answer (`read`, at half confidence: the glyphs did not line up at this scale) confirmed on a
    finer image when its glyphs `found` are small (under ``SMALL_GLYPH_PX``): the block of ``_FINE_CROP`` px
    around them, brought to glyphs of about ``_FINER_TARGET_PX``, is read on its own (`_estimate`); when it
    finds the same lines (within ``_AGREE_DEG`` modulo 90°) with a confident orientation, that orientation and
    confidence are taken, with `read`'s skew, when it is at least ``MIN_ORIENTATION_CONFIDENCE`` (the flag's
    gate) and the lines run the same way (only up and down may change). Dense small print at 640 px, whose
    letters touch, lines up on the finer image."""
    if finer is None or found is None or len(found.stats) < MIN_GLYPHS:
        return read
    glyph_px = found.size()
    if glyph_px >= SMALL_GLYPH_PX:
        return read
    big = _finer_copy(g, finer, min(_FINER_TARGET_PX / max(glyph_px, 1.0), _MAX_FINE_SIDE / max(g.shape)))
    if big is None:
        return read
    scale = big.shape[0] / g.shape[0]
    block = _block_around(found, big, scale)
    fine = _estimate(block, noise * scale, blur_px * scale, None)
    # On a clean image (no noise the finer read would break strokes into), lines of small shapes that the finer
    # image shows as a texture were a texture's: sand ripples on a beach photo, the grain of a pen's barrel.
    if math.isnan(fine.angle) and noise <= NOISE_MIN and _texture_only(block, noise * scale, blur_px * scale):
        return NO_TEXT
    if math.isnan(fine.angle) or fine.orientation_confidence < MIN_ORIENTATION_CONFIDENCE:
        return read
    if (
        abs(((fine.angle - read.angle) + 45.0) % 90.0 - 45.0) > _AGREE_DEG
        or (fine.orientation - read.orientation) % 180
    ):
        return read  # other lines, or lines across the ones found: no confirmation
    return PageRotation(read.angle, read.confidence, fine.orientation, fine.orientation_confidence)


def _finer_copy(g: np.ndarray, finer: Callable[[float], np.ndarray | None] | None, factor: float) -> np.ndarray | None:
    """The image `factor` x finer than `g` from `finer`, or None when there is none or it would not be at least
    1.5 x larger (a copy barely finer reads no differently)."""
    if finer is None or factor < 1.5:
        return None
    big = finer(factor)
    return None if big is None or max(big.shape) < 1.5 * max(g.shape) else big


def _block_around(found: Glyphs, big: np.ndarray, scale: float) -> np.ndarray:
    """The ``_FINE_CROP``-px block of `big` (the image `scale` x finer than the one `found` was read in) around the
    glyphs' median position, kept inside the image."""
    cx, cy = (float(v) * scale for v in np.median(found.centroids, axis=0))
    half = _FINE_CROP // 2
    x0 = int(min(max(cx - half, 0), max(big.shape[1] - _FINE_CROP, 0)))
    y0 = int(min(max(cy - half, 0), max(big.shape[0] - _FINE_CROP, 0)))
    return np.ascontiguousarray(big[y0 : y0 + _FINE_CROP, x0 : x0 + _FINE_CROP])


def _specks(found: Glyphs) -> bool:
    """Fewer than ``_SPECK_COUNT`` glyph-sized shapes whose median short side is under ``_SPECK_PX``: dust on a blank
    scan (13 specks in a column lined up perfectly), not letters; small print shows hundreds."""
    return len(found.stats) < _SPECK_COUNT and found.size() < _SPECK_PX


def _leans_vertical(phi: float, along: float, across: float) -> bool:
    """Whether glyph neighbour directions that failed the text test still hint at lines near vertical (a page on its
    side whose letters merge at this scale): a peak within ``_SIDE_DEG`` of vertical, holding at least ``_SIDE_ALONG``
    of the directions and ``_SIDE_RATIO`` times the perpendicular share. Real pages on their side among the tune
    pages show 0.23-0.29 and 1.5-3x; most photos' shapes 0.13-0.17 and under 1.4x, so they skip that second search."""
    return abs(phi - 90.0) < _SIDE_DEG and along >= _SIDE_ALONG and along >= _SIDE_RATIO * across


def _block_rotation(mask: np.ndarray, found: Glyphs, block: tuple[float, float, slice, slice]) -> PageRotation:
    """The rotation of the text block `_text_block` found, from its window alone (skew from its stroke pixels, up
    and down from its glyphs at this scale)."""
    phi, along, rows, cols = block
    theta = _skew_near(stroke_points(np.ascontiguousarray(mask[rows, cols])), phi)
    upright, turned = up_down(np.ascontiguousarray(found.mask()[rows, cols]), theta)
    skew, orientation = _way_up(theta, upright, turned)
    text_conf = min(1.0, (along - MIN_ALONG / 2) / (1.0 - MIN_ALONG / 2))
    return PageRotation(float(skew), float(text_conf), orientation, 0.5 * _sign_confidence(upright, turned))


def _grain(g: np.ndarray) -> float:
    """Noise σ that JPEG hid from the per-pixel estimate: twice the estimate on a 2x area average (JPEG drops the
    finest frequencies of noise but keeps its coarser grain, which would otherwise pass as strokes)."""
    return 2.0 * noise_sigma(downscale_by(g, 2)) if min(g.shape) >= 48 else 0.0


def _checked(
    answer: PageRotation,
    g: np.ndarray,
    noise: float,
    blur_px: float,
    masks: dict[bool, np.ndarray] | None = None,
    min_conf: float = 0.0,
    dark: bool | None = None,
    points: dict[bool, np.ndarray] | None = None,
    found: Glyphs | None = None,
    finer: Callable[[float], np.ndarray | None] | None = None,
) -> PageRotation:
    """A weakly supported glyph answer checked against the line-periodicity search: when that search finds text
    lines at another angle (more than 2° apart modulo 90°), the glyphs were probably a photo's structure (vessels,
    bricks) with the text elsewhere, and the search's lines are read instead (`_read_lines` with `found`, the glyphs
    of the paper's ink polarity)."""
    lines = _line_search(g, noise, blur_px, masks, min_conf, dark, points)
    if lines is None:
        return answer
    gap = abs(((answer.angle - lines[0]) + 45.0) % 90.0 - 45.0)
    return answer if gap <= _AGREE_DEG else _read_lines(lines, found, g, bool(dark), finer)


def _line_search(
    g: np.ndarray,
    noise: float,
    blur_px: float,
    masks: dict[bool, np.ndarray] | None = None,
    min_conf: float = 0.0,
    dark: bool | None = None,
    points: dict[bool, np.ndarray] | None = None,
    side: bool = False,
) -> tuple[float, float] | None:
    """(direction of the text lines in degrees CCW, confidence) by the line-periodicity search of
    `quality.rotation.estimate_skew`, which looks within 45° of horizontal, and when it finds nothing and `side`
    (the glyphs' neighbour directions lean nearer vertical than horizontal), by the same search on the image turned a
    quarter (a page on its side); None when neither finds lines at `min_conf`. `masks`, `dark` and `points` are the
    stroke masks, ink polarity and sampled stroke points already found for `g` (see `estimate_skew`)."""
    rot = estimate_skew(g, noise, blur_px, masks, min_conf, dark, points)
    axis = 0.0
    if math.isnan(rot.angle) and side:
        side_masks = {k: np.ascontiguousarray(np.rot90(m)) for k, m in masks.items()} if masks else None
        rot = estimate_skew(np.rot90(g), noise, blur_px, side_masks, max(min_conf, _SIDE_CONF), dark)
        axis = -90.0  # lines at b in the quarter-turned image run at b - 90 in `g`
    if math.isnan(rot.angle) or rot.confidence < min_conf:
        return None
    return fold(rot.angle) + axis, float(rot.confidence)


def _read_lines(
    lines: tuple[float, float],
    found: Glyphs | None,
    g: np.ndarray | None = None,
    ink: bool = True,
    finer: Callable[[float], np.ndarray | None] | None = None,
) -> PageRotation:
    """The rotation of lines found by `_line_search`: up and down read from `found` (the glyphs of the paper's ink
    polarity `ink`, already labelled, in `g`) along them (`_up_down_at_scale`: on a finer image when they are small),
    at half the confidence of a glyph-lined answer (the glyphs did not line up by themselves)."""
    theta, confidence = lines
    upright, turned = (0, 0)
    if found is not None and len(found.stats) >= MIN_GLYPHS:
        upright, turned = glyph_up_down(found, theta) if g is None else _up_down_at_scale(g, found, ink, theta, finer)
    skew, orientation = _way_up(theta, upright, turned)
    return PageRotation(skew, confidence, orientation, 0.5 * _sign_confidence(upright, turned))


def _up_down_at_scale(
    g: np.ndarray,
    found: Glyphs,
    ink: bool,
    theta: float,
    finer: Callable[[float], np.ndarray | None] | None,
) -> tuple[int, int]:
    """`up_down` on a scale where letters are separate glyphs: this one, or a finer image when glyphs are small."""
    glyph_px = found.size()
    big = _finer_copy(g, finer, min(FINE_GLYPH_PX / max(glyph_px, 1.0), _MAX_FINE_SIDE / max(g.shape)))
    if big is not None:
        # Only the block around the glyphs' median position is read (a bounded cost on large scans).
        crop = _block_around(found, big, big.shape[0] / g.shape[0])
        return glyph_up_down(glyphs(_stroke_mask(crop, ink, 0.0, 0.0)), theta)
    upright, turned = glyph_up_down(found, theta)
    if glyph_px < READABLE_GLYPH_PX:  # no finer image: the direction stands, as a single vote's worth of evidence
        return (int(upright > turned), int(turned > upright))
    return upright, turned
