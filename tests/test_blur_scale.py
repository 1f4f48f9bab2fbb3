"""Blur that does not depend on the input size (issue 13): the same photo at three sizes gets the same verdict and
nearly the same score; graded defocus ranks monotonically; a low-texture sharp photo passes; motion blur is still
flagged.

Real photos are tune-split images of benchmarks/data/images (labels and sources in its PROVENANCE.md): frames of
PetteriAimonen/focus-stack's `pcb_depthmap` focus stack (1280 px), a graded defocus series of a resolution chart
(arnaud-nt2i/SharpnessEvaluationDataset, 1198 px), a scanned page of sbrunner/deskew's tests (1415 px) and
jiangsutx/SRN-Deblur's real motion-blurred photos. Up to
scorer version 9 an image between 1025 and 2048 px was read at half size and its edge spread scaled back up, which
magnified the measure's ~1 px floor: frame 4 below scored 63 at its native 1280 px and 134 shrunk to 1024 px.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.labelled_images import gaussian_blur, motion_blur, render_text_page
from quality import scores as S

BLUR = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "images" / "blur"
ROTATION = BLUR.parent / "rotation"
THRESHOLD = 100.0  # ImageQualityFilter's default blur_threshold
SCORE_RATIO = 1.15  # largest / smallest score of one photo over its sizes (the measure's own noise is ~5 %)


def _load(name: str) -> np.ndarray:
    img = cv2.imread(str(BLUR / name), cv2.IMREAD_UNCHANGED)
    assert img is not None, name
    return img


def _resized(img: np.ndarray, longest: int) -> np.ndarray:
    """`img` with its longer side `longest` px: area average to shrink, bicubic to enlarge (as an upscaled copy)."""
    f = longest / max(img.shape[:2])
    if f == 1.0:
        return img
    size = (round(img.shape[1] * f), round(img.shape[0] * f))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)


def _at_sizes(img: np.ndarray, sizes: tuple[int, ...]) -> list[float]:
    return [S.blur_score(_resized(img, n)) for n in sizes]


# (file, label): sharp frames and blurred ones, clear of the threshold; all at least VIEW_SIDE px long.
REAL = [
    ("focusstack-pcb_depthmap_004.jpg", "sharp"),  # mostly flat black plastic: little texture
    ("focusstack-pcb_depthmap_008.jpg", "blurred"),
    ("sed-chart_p0.jpg", "sharp"),
    ("sed-chart_p5.jpg", "blurred"),
]


@pytest.mark.parametrize(("name", "label"), REAL)
def test_real_photo_at_three_sizes_gets_the_same_verdict_and_nearly_the_same_score(name: str, label: str) -> None:
    """1024 px (the viewing size), native, and enlarged 2x: all are judged at the viewing scale, and now also
    measured there, so the score barely moves. Version 9 gave frame 4 134 / 63 / 103."""
    img = _load(name)
    native = max(img.shape[:2])
    scores = _at_sizes(img, (S.VIEW_SIDE, native, 2 * native))
    assert {s >= THRESHOLD for s in scores} == {label == "sharp"}, scores
    assert max(scores) / min(scores) < SCORE_RATIO, scores


def test_generated_page_at_three_sizes_gets_nearly_the_same_score() -> None:
    """A page with optics-like softness (σ 1 px at the viewing scale) rendered at 2560 px, then shrunk to 1280 and
    1024 px: 1280 px is the size class whose blur was read at half size (version 9: 143 / 105 / 132)."""
    page = gaussian_blur(render_text_page(2560, 1920, size=64, seed=4), 2.5)
    scores = _at_sizes(page, (S.VIEW_SIDE, 1280, 2560))
    assert min(scores) > THRESHOLD, scores
    assert max(scores) / min(scores) < SCORE_RATIO, scores


def test_a_smaller_copy_keeps_a_clear_verdict() -> None:
    """Below VIEW_SIDE an image is judged at its own pixels (never enlarged): a sharp photo stays at the measure's
    floor and passes, and a blurred one keeps failing although its blur now spans fewer pixels."""
    sharp, blurred = _load("focusstack-pcb_depthmap_004.jpg"), _load("focusstack-pcb_depthmap_008.jpg")
    assert S.blur_score(_resized(sharp, 512)) > THRESHOLD
    at_view, half = S.blur_score(_resized(blurred, S.VIEW_SIDE)), S.blur_score(_resized(blurred, 512))
    assert at_view < half < THRESHOLD / 2, (at_view, half)


def test_real_graded_defocus_series_ranks_monotonically() -> None:
    """The chart series (1198 px, read at exactly the viewing scale) falls at every focus step, and a scanned page
    (1415 px) under growing Gaussian defocus falls at every step too, with no floor and no collapse to 0."""
    chart = [S.blur_score(_load(f"sed-chart_p{i}.jpg")) for i in range(6)]
    assert all(a > b for a, b in itertools.pairwise(chart)), chart

    page = cv2.imread(str(ROTATION / "deskew-6.png"), cv2.IMREAD_COLOR)
    assert page is not None
    per_view_px = max(page.shape[:2]) / S.VIEW_SIDE  # σ below is in px of the 1024-px view
    sigmas = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
    values = [S.blur_score(cv2.GaussianBlur(page, (0, 0), s * per_view_px) if s else page) for s in sigmas]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[sigmas.index(16.0)] < 0.8 * values[sigmas.index(8.0)] < 0.8 * values[sigmas.index(4.0)], values
    assert values[-1] > 0.0, values  # heavy blur is a small score, not "unmeasurable"
    assert values[0] > THRESHOLD > values[sigmas.index(2.0)], values


def test_low_texture_sharp_photo_is_not_called_blurry() -> None:
    """Frame 4 of the focus stack is in focus but mostly flat black plastic with a few crisp edges and specks: it
    passes at its native size (version 9: 63) and at the viewing size."""
    frame = _load("focusstack-pcb_depthmap_004.jpg")
    assert S.blur_score(frame) > THRESHOLD
    assert S.blur_score(_resized(frame, S.VIEW_SIDE)) > THRESHOLD


@pytest.mark.parametrize("longest", [1280, 1600, 2048])
def test_real_motion_blurred_photo_is_flagged_at_every_size(longest: int) -> None:
    """A real hand-held photo with strong motion blur (1024 px), enlarged: far below the threshold at every size."""
    assert S.blur_score(_resized(_load("srn-deblur_01.jpg"), longest)) < THRESHOLD / 2


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 135.0])
def test_motion_blur_on_a_large_page_is_flagged_and_mild_motion_is_not(angle: float) -> None:
    """A 1600-px page (read at exactly the viewing scale) smeared over 13 px of the view in any direction is
    flagged; a smear of 2 px of the view leaves it readable and it passes."""
    page = render_text_page(1600, 1200, size=28, seed=5)
    factor = 1600 / S.VIEW_SIDE
    assert S.blur_score(motion_blur(page, round(13 * factor) | 1, angle)) < THRESHOLD
    assert S.blur_score(motion_blur(page, round(2 * factor) | 1, angle)) > THRESHOLD


def test_view_windows_are_the_image_shrunk_to_the_viewing_scale() -> None:
    """The windows cut from a 2000-px image are the same cells of the whole image area-averaged to 1024 px: the same
    size (±1 px) and the same edge spread, so what is read does not depend on how the view was decoded."""
    page = gaussian_blur(render_text_page(2000, 1500, size=48, seed=2), 2.0)  # σ 1 px at the viewing scale
    whole = cv2.resize(page, (1024, 768), interpolation=cv2.INTER_AREA)
    cells = [0, 5, 10, 15]
    windows = S._view_windows(page, cells, S.VIEW_SIDE / 2000, pre=0.0)
    same_cells = [(whole, wy, wx) for wy, wx in S._cell_windows(whole.shape, cells)]
    for (img, ys, xs), (_, wy, wx) in zip(windows, same_cells):
        got, want = img[ys, xs].shape, whole[wy, wx].shape
        assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1, (got, want)
    spread, reference = S._spread_of_windows(windows, 0.0, 0.0), S._spread_of_windows(same_cells, 0.0, 0.0)
    assert spread == pytest.approx(reference, rel=0.1), (spread, reference)
    assert spread == pytest.approx(1.0, abs=0.3), spread
