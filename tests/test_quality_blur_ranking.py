"""Blur that ranks: monotone in defocus over its whole range, on generated pages and on a real focus series."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np

from benchmarks.labelled_images import gaussian_blur, motion_blur, render_text_page
from quality import scores as S

BLUR = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "images" / "blur"


def test_score_keeps_falling_with_defocus_and_never_collapses_to_zero():
    page = render_text_page(800, 600, size=22, seed=3)
    sigmas = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]
    values = [S.blur_score(gaussian_blur(page, s) if s else page) for s in sigmas]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[-1] > 0.0  # heavy blur is a small score, not "unmeasurable"
    # No floor: strong defocus keeps separating (the old scorer sat at ~60-66 from σ 3 px on).
    assert values[sigmas.index(8.0)] < 0.6 * values[sigmas.index(4.0)], values


def test_motion_blur_is_still_caught():
    page = render_text_page(640, 480, size=20, seed=5)
    assert S.blur_score(page) > 130
    assert S.blur_score(motion_blur(page, 9, 0.0)) < 100
    assert S.blur_score(motion_blur(page, 9, 90.0)) < 100


def _frame(step: int) -> np.ndarray:
    img = cv2.imread(str(BLUR / f"focusstack-pcb_depthmap_{step:03d}.jpg"), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_real_focus_series_falls_on_both_sides_of_the_focused_frames():
    """A real focus stack of a deep scene (tune split; frames 3-4 labelled sharp): sharpness falls step by step on
    either side. Frame 6 is focused on a deeper part (a dusty metal disc, crisp at 100 %, defocused in frames 4-5), so
    a sharp region again: it outranks its neighbours, and the fall resumes after it."""
    score = {step: S.blur_score(_frame(step)) for step in range(10)}
    left = [score[s] for s in (3, 2, 1, 0)]
    right = [score[s] for s in (6, 7, 8, 9)]
    assert all(a > b for a, b in itertools.pairwise(left)), score
    assert score[4] > score[5] < score[6], score
    assert all(a > b for a, b in itertools.pairwise(right)), score
    assert min(score.values()) > 0.0


def test_flat_image_has_no_edges_and_scores_zero():
    assert S.blur_score(np.full((300, 300), 128, np.uint8)) == 0.0


ROTATION = BLUR.parent / "rotation"


def test_real_page_defocus_series_is_strictly_monotone_without_floor_or_collapse():
    """A real photographed page (tesseract's phototest, tune split) under graded Gaussian defocus: the score falls at
    every step over the whole range, keeps separating strong defocus (no floor), and heavy blur is a small positive
    score rather than 0 ("unmeasurable")."""
    page = cv2.imread(str(ROTATION / "tess-phototest.png"), cv2.IMREAD_COLOR)
    assert page is not None
    sigmas = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]
    values = [S.blur_score(cv2.GaussianBlur(page, (0, 0), s) if s else page) for s in sigmas]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[sigmas.index(8.0)] < 0.6 * values[sigmas.index(4.0)], values  # no floor
    assert values[sigmas.index(16.0)] < 0.7 * values[sigmas.index(8.0)], values
    assert values[-1] > 0.0, values  # no collapse to 0
    assert values[0] > 100.0 > values[sigmas.index(3.0)], values  # the sharp page passes, σ 3 px does not
