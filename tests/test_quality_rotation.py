"""Text skew (quality/rotation.py): the cases the search used to get wrong, and the text-line test that keeps photos
from being called rotated."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from benchmarks.labelled_images import add_noise, gaussian_blur, motion_blur, render_text_page, rotate, rotate_expand
from quality import rotation as R
from quality import scores as S


def _blobs(seed: int, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A textured, text-free 'photo': smoothed random noise."""
    rng = np.random.default_rng(seed)
    f = cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), 4)
    return cv2.normalize(f, np.empty_like(f), 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _paste(canvas: np.ndarray, block: np.ndarray, angle: float, x: int, y: int) -> np.ndarray:
    """`block` rotated by `angle` pasted onto a copy of `canvas` at (x, y) (the rotated corners stay photo)."""
    out = canvas.copy()
    rot = rotate(block, angle, border=0)
    mask = rotate(np.full_like(block, 255), angle, border=0) > 127
    region = out[y : y + block.shape[0], x : x + block.shape[1]]
    region[mask] = rot[mask]
    return out


def test_dense_dark_text_at_a_large_angle():
    """Tightly packed lines: the light gaps between letters and lines respond to the top-hat as strongly as the ink
    does to the black-hat; the polarity is chosen by which strokes line up, not by the responses' sums."""
    page = render_text_page(640, 554, size=16, seed=366, lines=30)
    img = rotate(page, -24.78, border=255)
    assert S.rotation_angle(img) == pytest.approx(-24.78, abs=0.3)


def test_a_long_straight_line_does_not_outvote_the_text():
    """One long photo edge makes the strongest single profile peak; the angle most tiles agree on wins."""
    canvas = _blobs(7, (378, 640))
    canvas[6:9, :] = 20  # a dark straight edge across the whole image, at 0°
    img = _paste(canvas, render_text_page(420, 230, size=24, seed=89, lines=5), 25.95, 130, 60)
    assert S.rotation_angle(img) == pytest.approx(25.95, abs=0.4)


@pytest.mark.parametrize("blur", ["gauss", "motion"])
def test_heavily_blurred_small_text(blur):
    """Blurred strokes are wider than the stroke kernel chosen from the image size; the measured blur widens it."""
    page = rotate(render_text_page(480, 300, size=14, seed=21), 12.0, border=255)
    img = gaussian_blur(page, 3.0) if blur == "gauss" else motion_blur(page, 11, 30.0)
    angle = S.rotation_angle(add_noise(img, 4, seed=2))
    assert angle == pytest.approx(12.0, abs=0.6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_photo_textures_and_edges_have_no_text_lines(seed):
    """A texture with a few strong straight edges is not text: no angle rather than the edges' angle."""
    img = _blobs(seed)
    for k, a in enumerate((20.0, 33.0)):
        c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
        p0 = (int(320 - 400 * c), int(240 + 400 * s + 60 * k))
        p1 = (int(320 + 400 * c), int(240 - 400 * s + 60 * k))
        cv2.line(img, p0, p1, 10, 3)
    assert math.isnan(S.rotation_angle(img))


def test_line_periodicity_separates_repeated_lines_from_a_single_edge():
    rng = np.random.default_rng(0)
    stripes = np.zeros((300, 300), np.uint8)
    for y in range(20, 280, 24):
        stripes[y : y + 10, 30:270] = 1
    single = np.zeros((300, 300), np.uint8)
    single[140:150, 30:270] = 1
    single[rng.integers(0, 300, 800), rng.integers(0, 300, 800)] = 1  # plus scattered specks
    for mask, lo, hi in ((stripes, 0.8, 1.0), (single, 0.0, 0.3)):
        pts = R._centred(R._sample_points(R._mask_pixels(mask), 10000))
        assert lo <= R._line_periodicity(pts, 0.0) <= hi


def test_estimate_skew_takes_an_already_small_image_and_its_measurements():
    img = rotate(render_text_page(400, 300, size=16, seed=5), 6.0, border=255)
    r = R.estimate_skew(img, noise=0.0, blur_px=0.0)
    assert r.angle == pytest.approx(6.0, abs=0.3) and 0 < r.confidence <= 1
    assert math.isnan(R.estimate_skew(np.zeros((20, 20), np.uint8)).angle)
    assert math.isnan(R.estimate_skew(np.full((200, 200), 128, np.uint8), blur_px=float("nan")).angle)


@pytest.mark.parametrize("lines,angle", [(1, 22.0), (2, -18.0), (3, 26.0)])
def test_ocr_line_crops_with_too_few_lines_for_a_period(lines, angle):
    """One to three lines: no line pitch to find, but each line is a long band holding the strokes."""
    page = render_text_page(480, int(lines * 36 * 1.6 + 36), size=36, seed=12, lines=lines)
    assert S.rotation_angle(rotate_expand(page, angle)) == pytest.approx(angle, abs=0.5)


def test_a_noisy_light_on_dark_line_crop():
    page = render_text_page(480, 100, size=32, seed=3, lines=1, background=20, ink=140)
    img = add_noise(rotate_expand(page, -24.0, border=20), 10, seed=5)
    assert S.rotation_angle(img) == pytest.approx(-24.0, abs=0.6)


def test_a_photo_blob_is_not_a_text_line():
    """A single compact structure on a plain background makes one band, but not a long one."""
    img = np.full((300, 400), 200, np.uint8)
    cv2.ellipse(img, (200, 150), (60, 25), 30, 0, 360, 40, -1)
    blurred = cv2.GaussianBlur(img, (0, 0), 1.0)
    assert math.isnan(S.rotation_angle(blurred))
