"""The faster paths of the rotation search give the same answers as the plain computations they replace:
the projection-profile histogram, the text-block window pruning, the support vote, and work reused from the caller
(sampled stroke points, the grey histogram)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from benchmarks.labelled_images import add_noise, jpeg, render_text_page, rotate, rotate_expand
from quality import orientation as O
from quality import rotation as R


def _photo(seed: int, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A textured, text-free 'photo': smoothed random noise."""
    rng = np.random.default_rng(seed)
    f = cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), 3)
    return cv2.normalize(f, np.empty_like(f), 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _text_on_photo(angle: float, seed: int = 5) -> np.ndarray:
    """A text block pasted onto one quarter of a busy photo (the case `_text_block` exists for)."""
    canvas = _photo(seed)
    block = rotate(render_text_page(300, 220, size=14, seed=seed), angle, border=0)
    mask = rotate(np.full((220, 300), 255, np.uint8), angle, border=0) > 127
    region = canvas[20:240, 30:330]
    region[mask] = block[mask]
    return canvas


def _reference_criteria(groups: list[np.ndarray], radius: float, angles: np.ndarray, bin_px: float) -> np.ndarray:
    """The computation `_group_criteria` replaced, written out per group and angle: the same float32 projection
    (each (group, angle) pair offset into its own bin range), `astype(intp)` + `bincount`, squared differences."""
    out = np.zeros(angles.shape)
    r = radius / bin_px + 2.0
    nb = int(2 * r) + 3
    for i, g in enumerate(groups):
        for j, a in enumerate(np.deg2rad(angles[i])):
            rot = (np.array([[math.sin(a)], [math.cos(a)]]) / bin_px).astype(np.float32)
            offset = np.float32(i * angles.shape[1] + j) * np.float32(nb) + np.float32(r + 0.5)
            proj = (g @ rot)[:, 0] + offset
            counts = np.bincount(proj.astype(np.intp) - int(offset - (r + 0.5) + 0.5), minlength=nb)
            out[i, j] = float((np.diff(counts) ** 2).sum())
    return out


@pytest.mark.parametrize("bin_px", [1.0, 2.0, 3.0])
def test_projection_criteria_equal_the_plain_bincount_computation(bin_px):
    rng = np.random.default_rng(int(bin_px))
    pts = (rng.random((4000, 2)) * [600.0, 420.0]).astype(np.float32)
    # Points on lines (a page) as well as scattered ones, so the profiles have sharp steps.
    pts[:2000, 1] = np.round(pts[:2000, 1] / 20.0) * 20.0
    c, radius = R._centred(pts)
    groups = [c[:2500], c[2500:3100], c[3100:]]
    angles = np.stack([np.arange(-45.0, 45.0, 3.0), np.arange(-44.0, 46.0, 3.0), np.arange(-30.0, 60.0, 3.0)])
    fast = R._group_criteria(groups, radius, angles, bin_px)
    np.testing.assert_array_equal(fast, _reference_criteria(groups, radius, angles, bin_px))


def _brute_text_block(cen: np.ndarray, directions: np.ndarray, shape: tuple[int, ...]):
    """`_text_block` without the window bound: `_peak` on every window that holds enough glyphs."""
    h, w = shape[:2]
    cy = np.minimum((cen[:, 1] * 4 / h).astype(np.intp), 3)
    cx = np.minimum((cen[:, 0] * 4 / w).astype(np.intp), 3)
    best, alongs = None, {}
    for by in range(3):
        for bx in range(3):
            sel = (cy >= by) & (cy <= by + 1) & (cx >= bx) & (cx <= bx + 1)
            if int(sel.sum()) < O._BLOCK_GLYPHS:
                continue
            phi, along, across = O._peak(directions[sel])
            alongs[by, bx] = along
            if along >= O._BLOCK_ALONG and along >= O._BLOCK_RATIO * across and (best is None or along > best[1]):
                best = (phi, along, slice(by * h // 4, (by + 2) * h // 4), slice(bx * w // 4, (bx + 2) * w // 4))
    return best, alongs


@pytest.mark.parametrize(("image", "has_block"), [(_text_on_photo(12.0), True), (_photo(7), False)])
def test_text_block_window_bound_never_prunes_a_window_that_could_win(image, has_block):
    for ink in (True, False):
        found = O.glyphs(R._stroke_mask(image, ink))
        directions = O.neighbour_directions(found.centroids)
        h, w = image.shape
        cell = np.minimum((found.centroids[:, 1] * 4 / h).astype(np.intp), 3) * 4 + np.minimum(
            (found.centroids[:, 0] * 4 / w).astype(np.intp), 3
        )
        bound = O._window_along_bounds(cell, directions)
        brute, alongs = _brute_text_block(found.centroids, directions, image.shape)
        assert alongs, "the test image should have windows with enough glyphs"
        for (by, bx), along in alongs.items():
            assert along <= bound[by, bx], (by, bx, along, bound[by, bx])
        assert O._text_block(found.centroids, directions, image.shape) == brute
    # The dark-ink block is found on the photo with text, and nothing on the plain photo.
    found = O.glyphs(R._stroke_mask(image, True))
    block = O._text_block(found.centroids, O.neighbour_directions(found.centroids), image.shape)
    assert (block is not None) == has_block


def test_leading_angle_sums_support_in_order_and_breaks_ties_by_confidence():
    pts = np.zeros((1, 2), np.float32)
    found = [(10.0, 0.3, pts), (11.5, 0.2, pts), (-44.0, 0.25, pts), (45.0 - 0.5, 0.26, pts), (30.0, 0.6, pts)]
    # 10 and 11.5 support each other (0.5); -44 and 44.5 are 1.5° apart modulo 90 (0.51); 30 stands alone (0.6).
    assert R._leading_angle(found) == 30.0
    found[4] = (30.0, 0.4, pts)
    assert R._leading_angle(found) == 44.5  # 0.51 beats 0.5; within the pair the more confident one leads
    # A tie in support goes to the more confident estimate, as before.
    tie = [(5.0, 0.2, pts), (6.0, 0.3, pts)]
    assert R._leading_angle(tie) == 6.0


def _pages() -> list[np.ndarray]:
    page = render_text_page(640, 480, size=18, seed=4)
    return [
        rotate(page, 7.3),
        rotate_expand(rotate(page, -3.0), 180),
        jpeg(add_noise(rotate(page, 12.0), 8, seed=1), 35),
        _text_on_photo(-9.0),
        _photo(11),
    ]


@pytest.mark.parametrize("index", range(5))
def test_sampled_points_given_by_the_caller_give_the_same_skew(index):
    g = _pages()[index]
    dark = R._dark_ink(g)
    masks = {ink: R._stroke_mask(g, ink) for ink in (True, False)}
    points = {ink: R.stroke_points(m) for ink, m in masks.items()}
    plain = R.estimate_skew(g, masks=masks, dark=dark)
    reused = R.estimate_skew(g, masks=masks, dark=dark, points=points)
    assert (plain.angle == reused.angle or (math.isnan(plain.angle) and math.isnan(reused.angle))) and (
        plain.confidence == reused.confidence
    )
    # Sampling is deterministic: the same mask gives the same points every time (and on every thread).
    np.testing.assert_array_equal(points[dark], R.stroke_points(masks[dark]))


@pytest.mark.parametrize("index", range(5))
def test_a_histogram_given_by_the_caller_gives_the_same_rotation(index):
    g = _pages()[index]
    plain = O.estimate_rotation(g, noise=1.0, blur_px=1.0)
    given = O.estimate_rotation(g, noise=1.0, blur_px=1.0, hist=R.grey_histogram(g))
    assert repr(plain) == repr(given)  # NaN-safe equality of every field


def test_small_pages_still_get_skew_and_orientation():
    """The reused-work paths on small images (the class where rotation dominates the cost)."""
    page = render_text_page(320, 220, size=12, seed=9)
    for turned in (0, 90, 180, 270):
        img = rotate_expand(rotate(page, 4.0), turned)
        r = O.estimate_rotation(img)
        assert r.orientation == turned, (turned, r)
        assert abs(r.angle - 4.0) < 0.5, (turned, r)
