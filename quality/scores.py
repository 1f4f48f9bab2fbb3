"""Image quality scores: small pure functions on one image, each independent of any dataset.

Every function takes a numpy image as OpenCV loads it (grey ``HxW``, BGR ``HxWx3`` or BGRA ``HxWx4``, any dtype
OpenCV produces) and returns plain floats.

Units and direction:

- ``blur_score`` (higher = sharper): ``150 / σ`` where σ (pixels) is the estimated Gaussian spread of the image's
  *least sharp* edge direction, measured on strong edges only and normalised by each edge's own contrast. So 100 means
  edges as soft as an ideal step blurred by a Gaussian of σ = 1.5 px, 150 means σ = 1 px, 50 means σ = 3 px.
  Contrast, content (text, photos, plain areas), noise and JPEG blocking do not move it much; motion blur is caught
  because the worst direction counts. Images wider than ``WORK_SIDE`` are measured at that scale (what a reader of
  the whole image sees), so large photos are not called blurry for soft per-pixel edges. Capped at ``BLUR_CAP``.
- ``rotation_angle`` (degrees, counter-clockwise positive, in [-45, 45]): skew of the text lines, found by the
  projection-profile method on text-like strokes. NaN when the image shows no line structure.
- ``rotation_confidence`` (0..1): how much more peaked the line profile is at the found angle than on average.
- ``brightness`` (0..1): mean luminance. ``contrast`` (0..1): 99th minus 1st percentile of luminance.
- ``noise`` (grey levels, 0..255 scale): estimated standard deviation of pixel noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SCORER_VERSION = "1"
WORK_SIDE = 1024  # longest side (px) at which blur and rotation are measured
BLUR_CAP = 400.0
_SIGMA_AT_100 = 1.5


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luminance as float32 on the 0..255 scale, from grey/BGR/BGRA of any dtype."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {img.shape}")
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    if img.dtype == np.uint8:
        scale = 1.0
    elif img.dtype == np.uint16:
        scale = 255.0 / 65535.0
    elif np.issubdtype(img.dtype, np.floating):
        finite = img[np.isfinite(img)]
        scale = 255.0 if finite.size == 0 or float(finite.max()) <= 1.0 else 1.0
    else:
        info = np.iinfo(img.dtype)
        scale = 255.0 / float(info.max)
    f = img.astype(np.float32, copy=False)
    if img.ndim == 3:
        if f.shape[2] == 4:
            f = f[:, :, :3]
        if f.shape[2] == 3:
            f = cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_BGR2GRAY)
        else:
            f = f.mean(axis=2)
    f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
    if scale != 1.0:
        f = f * np.float32(scale)
    return np.ascontiguousarray(f, dtype=np.float32)


def working_gray(gray: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """Downscale (area-averaging, never upscale) so the longest side is at most `side`."""
    h, w = gray.shape
    longest = max(h, w)
    if longest <= side:
        return gray
    f = side / longest
    return cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def noise_sigma(gray: np.ndarray) -> float:
    """Noise standard deviation (grey levels), Immerkær's Laplacian-difference estimate made robust with a median."""
    if min(gray.shape) < 3:
        return 0.0
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    r = cv2.filter2D(gray, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    # For pure Gaussian noise the response has std 6σ; the median of |r| is 0.6745 of that std.
    return float(np.median(np.abs(r)) / (0.6745 * 6.0))


def blur_score(gray: np.ndarray) -> float:
    """Sharpness, higher = sharper: 150 / (edge spread σ in px) of the least sharp edge direction (see module doc)."""
    g = working_gray(gray)
    if min(g.shape) < 8:
        return 0.0
    sigma_n = noise_sigma(g)
    # Denoise just enough that noise does not pose as edge steepness; its known blur is removed below.
    pre = 0.0
    if sigma_n > 2.0:
        pre = min(0.6 + 0.08 * sigma_n, 2.0)
        g = cv2.GaussianBlur(g, (0, 0), pre)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    mag = cv2.magnitude(gx, gy)
    kernel = np.ones((9, 9), np.uint8)
    local_range = cv2.dilate(g, kernel) - cv2.erode(g, kernel)
    peak = mag >= cv2.dilate(mag, np.ones((3, 3), np.uint8))
    min_contrast = max(20.0, 6.0 * sigma_n)
    cand = peak & (local_range >= min_contrast) & (mag > 0)
    cand[:4, :] = cand[-4:, :] = False
    cand[:, :4] = cand[:, -4:] = False
    if int(cand.sum()) < 20:
        return 0.0 if float(local_range.max(initial=0.0)) < min_contrast else _score_from_ratio(0.0, pre)
    ratio = mag[cand] / local_range[cand]
    angle = np.arctan2(gy[cand], gx[cand])  # gradient direction
    bins = ((angle + np.pi) / (np.pi / 4)).astype(np.int32) % 4  # 4 undirected orientations
    strength = local_range[cand]
    worst = None
    for b in range(4):
        sel = bins == b
        n = int(sel.sum())
        if n < max(10, 0.04 * ratio.size):
            continue
        r = ratio[sel]
        s = strength[sel]
        # strongest-contrast half of this direction's edges: steadier than all of them
        keep = s >= np.median(s)
        val = float(np.median(r[keep]))
        worst = val if worst is None else min(worst, val)
    if worst is None:
        worst = float(np.median(ratio))
    return _score_from_ratio(worst, pre)


def _score_from_ratio(ratio: float, pre_sigma: float) -> float:
    # Ideal step blurred by σ: max gradient / contrast = 1 / (σ √(2π)); Sobel adds ~0.5 px of its own spread.
    if ratio <= 0:
        return 0.0
    sigma = 1.0 / (ratio * math.sqrt(2 * math.pi))
    sigma2 = sigma * sigma - pre_sigma * pre_sigma
    sigma = math.sqrt(max(sigma2, 0.0))
    if sigma <= 150.0 / BLUR_CAP:
        return BLUR_CAP
    return float(min(BLUR_CAP, 150.0 / sigma))


@dataclass(frozen=True)
class Rotation:
    angle: float  # degrees, counter-clockwise positive; NaN when no line structure
    confidence: float


def _text_points(g: np.ndarray) -> np.ndarray:
    """Coordinates (x, y) of text-like stroke pixels: small dark-on-light or light-on-dark structures."""
    h, w = g.shape
    k = max(3, int(round(min(h, w) / 40)) | 1)
    k = min(k, 31)
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    black = cv2.morphologyEx(g, cv2.MORPH_BLACKHAT, se)
    white = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, se)
    resp = black if float(black.sum()) >= float(white.sum()) else white
    thr = max(15.0, float(np.percentile(resp, 90)))
    ys, xs = np.nonzero(resp > thr)
    return np.stack([xs, ys], axis=1).astype(np.float32) if xs.size else np.empty((0, 2), np.float32)


def _profile_sharpness(pts: np.ndarray, angles_deg: np.ndarray, bin_px: float) -> np.ndarray:
    """Sum of squared projection-profile counts per candidate angle (peaks when lines align with the axis)."""
    out = np.empty(angles_deg.size, dtype=np.float64)
    x = pts[:, 0] - pts[:, 0].mean()
    y = pts[:, 1] - pts[:, 1].mean()
    for i, a in enumerate(np.deg2rad(angles_deg)):
        proj = (x * math.sin(a) + y * math.cos(a)) / bin_px
        idx = np.round(proj - proj.min()).astype(np.int64)
        counts = np.bincount(idx)
        out[i] = float(np.dot(counts, counts))
    return out


def rotation(gray: np.ndarray) -> Rotation:
    """Skew of the text lines in degrees (counter-clockwise positive, [-45, 45]) by projection profiles."""
    g = working_gray(gray, 800)
    if min(g.shape) < 16:
        return Rotation(float("nan"), 0.0)
    pts = _text_points(g)
    if pts.shape[0] < 50:
        return Rotation(float("nan"), 0.0)
    rng = np.random.default_rng(0)
    if pts.shape[0] > 40000:
        pts = pts[rng.choice(pts.shape[0], 40000, replace=False)]
    coarse = np.arange(-45.0, 45.01, 1.0)
    s = _profile_sharpness(pts, coarse, 2.0)
    best = float(coarse[int(np.argmax(s))])
    fine = np.arange(best - 1.0, best + 1.0001, 0.1)
    sf = _profile_sharpness(pts, fine, 1.0)
    i = int(np.argmax(sf))
    angle = float(fine[i])
    if 0 < i < fine.size - 1:
        a, b, c = sf[i - 1], sf[i], sf[i + 1]
        den = a - 2 * b + c
        if den < 0:
            angle += 0.1 * 0.5 * (a - c) / den
    conf = float(1.0 - np.mean(s) / np.max(s)) if np.max(s) > 0 else 0.0
    if angle > 45.0:
        angle -= 90.0
    elif angle < -45.0:
        angle += 90.0
    return Rotation(float(angle), conf)


def rotation_angle(gray: np.ndarray) -> float:
    """Text skew in degrees, counter-clockwise positive; NaN when no line structure is found."""
    return rotation(gray).angle


def brightness(gray: np.ndarray) -> float:
    """Mean luminance on 0..1."""
    return float(gray.mean() / 255.0) if gray.size else 0.0


def contrast(gray: np.ndarray) -> float:
    """Spread of luminance on 0..1: 99th minus 1st percentile (robust to a few hot or dead pixels)."""
    if gray.size == 0:
        return 0.0
    small = gray if gray.size <= 1_000_000 else working_gray(gray, 1000)
    lo, hi = np.percentile(small, [1, 99])
    return float((hi - lo) / 255.0)


def score_image(image: np.ndarray) -> dict[str, float | int]:
    """All scores of one image as a flat dict (the QualityScores columns without path/error)."""
    gray = to_gray(image)
    h, w = gray.shape
    rot = rotation(gray)
    return {
        "width": int(w),
        "height": int(h),
        "blur_score": blur_score(gray),
        "rotation_angle": rot.angle,
        "rotation_confidence": rot.confidence,
        "brightness": brightness(gray),
        "contrast": contrast(gray),
        "noise": noise_sigma(working_gray(gray)),
    }
