"""Pixel plumbing shared by the scores: grey conversion of any dtype, integer-factor downscales, a noise estimate."""

from __future__ import annotations

import math

import cv2
import numpy as np

NOISE_MIN = 1.5  # grey levels: below this no denoising


# ----------------------------------------------------------------------------------------------- helpers
def percentile(x: np.ndarray, q: float) -> float:
    """`np.percentile(x, q)` (linear interpolation) of a non-empty 1-D array, without its per-call overhead."""
    pos = (x.size - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, x.size - 1)
    part = np.partition(x, (lo, hi)) if hi != lo else np.partition(x, lo)
    a, b = float(part[lo]), float(part[hi])
    return a + (b - a) * (pos - lo)


# ----------------------------------------------------------------------------------------------- conversions
def to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance as uint8 (0..255) from grey/BGR/BGRA of any dtype (uint16 and floats in [0, 1] are rescaled)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"expected a grey, BGR or BGRA image array, got shape {img.shape}")
    if img.dtype != np.uint8:
        img = _to_uint8(img)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return img


def display_rgb(image: np.ndarray, max_side: int) -> np.ndarray:
    """An RGB uint8 copy of a grey/BGR/BGRA image of any dtype for display, shrunk (never enlarged) so that its
    longer side is at most `max_side`."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.dtype != np.uint8:
        img = _to_uint8(img)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    scale = max_side / max(img.shape[:2])
    if scale < 1:
        size = (max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        f = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if f.size and float(f.max()) <= 1.0 else 1.0
        return np.clip(f * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(img.dtype, np.signedinteger):
        return np.clip(img, 0, 255).astype(np.uint8)
    info = np.iinfo(img.dtype)
    return (img.astype(np.float64) * (255.0 / info.max) + 0.5).astype(np.uint8)


def downscale(gray: np.ndarray, side: int) -> tuple[np.ndarray, int]:
    """Area-average by the smallest integer factor k that brings the longest side to at most `side`: (image, k)."""
    h, w = gray.shape[:2]
    k = max(1, math.ceil(max(h, w) / side))
    return downscale_by(gray, k), k


def downscale_by(img: np.ndarray, k: int) -> np.ndarray:
    """Area-average by the integer factor `k` (grey or colour), dropping the last rows/columns that do not fill a
    k x k block. Powers of two are done as repeated halvings: OpenCV's 2x area path is ~10x faster than its generic
    integer one, and the result differs from a single k x k average only by rounding."""
    if k == 1:
        return img
    h, w = img.shape[:2]
    img = img[: h - h % k, : w - w % k]
    if k & (k - 1) == 0:
        while k > 1:
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
            k //= 2
        return img
    return cv2.resize(img, (img.shape[1] // k, img.shape[0] // k), interpolation=cv2.INTER_AREA)


_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Noise standard deviation (grey levels): Immerkær's Laplacian-difference estimate, made robust with a median."""
    g = to_gray(gray)
    if min(g.shape) < 3:
        return 0.0
    h, w = g.shape
    step = max(1, int(math.sqrt((h - 2) * (w - 2) / 20000)))
    if step == 1:
        r = cv2.filter2D(g, cv2.CV_16S, _LAPLACE_DIFF)[1:-1, 1:-1]
    else:
        # The kernel evaluated only at the sampled pixels (every `step`-th row and column of the interior): the same
        # values as filtering the whole image, ~step² less work. It is the outer product of [1, -2, 1] with itself,
        # so it is applied as a second difference down the sampled rows, then across at the sampled columns.
        n = (h - 3) // step + 1  # sampled interior rows
        r0, r1, r2 = (g[dy : dy + (n - 1) * step + 1 : step].astype(np.int16) for dy in range(3))
        v = r0 + r2 - 2 * r1
        r = v[:, 0 : w - 2 : step] + v[:, 2:w:step] - 2 * v[:, 1 : w - 1 : step]
    # For Gaussian noise the response has std 6σ; the median of |r| is 0.6745 of that std.
    return _median_abs(r) / (0.6745 * 6.0)


def _median_abs(r: np.ndarray) -> float:
    """`np.median(np.abs(r))` of a non-empty int16 array, from a 256-bin histogram of |r| clipped at 255 (exact
    whenever the median is below 255, i.e. for noise σ up to ~60 grey levels)."""
    a = cv2.convertScaleAbs(r)  # |r| saturated to uint8
    cdf = np.cumsum(cv2.calcHist([a], [0], None, [256], [0, 256]).ravel())
    n = int(cdf[-1])
    lo = int(np.searchsorted(cdf, (n - 1) // 2, side="right"))
    hi = int(np.searchsorted(cdf, n // 2, side="right"))
    return (lo + hi) / 2.0
