"""The edge read behind blur_score: the neighbourhood contrast it uses bounds every edge's own profile contrast, so
the profile itself (no longer sampled) could never have raised it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.labelled_images import add_noise, gaussian_blur, motion_blur, render_text_page
from quality import scores as S


def _profile_contrast(g: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(max - min along each Canny edge's ±_REACH px normal profile, linearly interpolated; the 9x9 box contrast
    at the same edges), the edges chosen exactly as `_edge_samples` chooses them."""
    dx = cv2.Sobel(g, cv2.CV_16S, 1, 0, ksize=3)
    dy = cv2.Sobel(g, cv2.CV_16S, 0, 1, ksize=3)
    edges = cv2.Canny(dx, dy, 8.0 * floor, 16.0 * floor, L2gradient=True)
    r = S._REACH + 1
    edges[:r, :] = edges[-r:, :] = 0
    edges[:, :r] = edges[:, -r:] = 0
    ys, xs = np.nonzero(edges)
    gx, gy = dx[ys, xs].astype(np.float32), dy[ys, xs].astype(np.float32)
    m = np.maximum(np.hypot(gx, gy), 1e-6)
    t = np.arange(-S._REACH, S._REACH + 1, dtype=np.float32)[None, :]
    mx = xs[:, None].astype(np.float32) + t * (gx / m)[:, None]
    my = ys[:, None].astype(np.float32) + t * (gy / m)[:, None]
    prof = cv2.remap(g, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    own = prof.max(axis=1) - prof.min(axis=1)
    box = cv2.morphologyEx(g, cv2.MORPH_GRADIENT, np.ones((2 * S._REACH + 1,) * 2, np.uint8))[ys, xs]
    return own, box.astype(np.float32)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p,
        lambda p: gaussian_blur(p, 2.0),
        lambda p: motion_blur(p, 9, 30.0),
        lambda p: add_noise(p, 8.0, seed=1),
    ],
    ids=["sharp", "defocus", "motion", "noise"],
)
def test_box_contrast_bounds_the_profile_contrast(make):
    g = S.to_gray(make(render_text_page(320, 240, size=18, seed=4)))
    own, box = _profile_contrast(g, 2.0)
    assert own.size > 100
    assert (own <= box).all()
    assert (own < box).any()  # the bound is not trivially an equality


def test_edge_samples_read_the_box_contrast_at_the_canny_edges():
    g = S.to_gray(render_text_page(320, 240, size=18, seed=4))
    m, hood, direction = S._edge_samples(g, 2.0, 10**6)
    _, box = _profile_contrast(g, 2.0)
    assert m.size == hood.size == direction.size == box.size
    np.testing.assert_array_equal(np.sort(hood), np.sort(box))
    assert set(np.unique(direction)) <= {0, 1, 2, 3}


def test_direction_bins_do_not_depend_on_the_gradient_length():
    rng = np.random.default_rng(0)
    gx, gy = rng.normal(size=1000).astype(np.float32), rng.normal(size=1000).astype(np.float32)
    np.testing.assert_array_equal(S._direction_bin(gx, gy), S._direction_bin(3.7 * gx, 3.7 * gy))
    # Horizontal normal (vertical edge) -> 0, vertical normal -> 2, the diagonals -> 1 and 3.
    np.testing.assert_array_equal(
        S._direction_bin(np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0, -1.0])), [0, 2, 1, 3]
    )
