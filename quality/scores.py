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

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

SCORER_VERSION = "1"
WORK_SIDE = 1024  # longest side (px) at which blur and rotation are measured
BLUR_CAP = 400.0
SIGMA_AT_100 = 1.5  # edge spread (px) that scores exactly 100
_NOISE_MIN = 1.5
ROTATION_MIN_CONFIDENCE = 0.0  # below it no text lines were found: rotation_angle is NaN
_PRE_A, _PRE_B = 0.8, 0.08


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


_REACH = 4  # px either side of an edge over which its contrast is measured
_MAX_EDGES = 20000
_EDGE_PERCENTILE = 85.0  # of edge steepness per direction: in-focus edges count, soft backgrounds do not


def _nms_edges(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edge pixels (ys, xs), unit normals (nx, ny) and gradient magnitude, thinned by non-maximum suppression."""
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    mag = cv2.magnitude(gx, gy)
    p = np.pad(mag, 1)
    c = p[1:-1, 1:-1]
    theta = np.degrees(np.arctan2(gy, gx)) % 180.0
    q = (((theta + 22.5) // 45).astype(np.int8)) % 4  # 0: E-W, 1: SE-NW, 2: N-S, 3: SW-NE (y grows downwards)
    fwd = (p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2])
    bwd = (p[1:-1, :-2], p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:])
    keep = np.zeros(mag.shape, bool)
    for d in range(4):
        keep |= (q == d) & (c >= fwd[d]) & (c > bwd[d])
    r = _REACH + 1
    keep[:r, :] = keep[-r:, :] = False
    keep[:, :r] = keep[:, -r:] = False
    ys, xs = np.nonzero(keep)
    m = mag[ys, xs]
    return ys, xs, gx[ys, xs] / np.maximum(m, 1e-6), gy[ys, xs] / np.maximum(m, 1e-6), m


def _edge_contrast(g: np.ndarray, ys: np.ndarray, xs: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Grey-level range along each edge's normal within ±_REACH px (the step the edge climbs)."""
    t = np.arange(-_REACH, _REACH + 1, dtype=np.float32)[None, :]
    mx = (xs[:, None].astype(np.float32) + t * nx[:, None]).astype(np.float32)
    my = (ys[:, None].astype(np.float32) + t * ny[:, None]).astype(np.float32)
    prof = cv2.remap(g, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return prof.max(axis=1) - prof.min(axis=1)


def _edge_ratios(g: np.ndarray, sigma_n: float, pre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Steepness (gradient / own contrast) and orientation bin of the image's strong edges."""
    ys, xs, nx, ny, m = _nms_edges(g)
    # Noise left after a Gaussian pre-filter of σp has std ≈ σn / (2 σp √π); Sobel/8 makes ≈0.43 of that.
    resid = sigma_n if pre <= 0 else sigma_n * min(1.0, 1.0 / (2.0 * pre * math.sqrt(math.pi)))
    floor = max(2.0, 2.0 * resid)
    sel = m >= floor
    ys, xs, nx, ny, m = ys[sel], xs[sel], nx[sel], ny[sel], m[sel]
    if ys.size > _MAX_EDGES:
        pick = np.random.default_rng(0).choice(ys.size, _MAX_EDGES, replace=False)
        ys, xs, nx, ny, m = ys[pick], xs[pick], nx[pick], ny[pick], m[pick]
    if ys.size == 0:
        return np.empty(0, np.float32), np.empty(0, np.int8)
    con = _edge_contrast(g, ys, xs, nx, ny)
    strong = con >= max(20.0, 8.0 * resid, 0.3 * float(np.percentile(con, 95)))
    # Steepness is measured against the neighbourhood's contrast, not the edge's own: a thin stroke smeared by
    # motion blur keeps short steep flanks but loses most of its contrast, which the neighbourhood still shows.
    k = np.ones((2 * _REACH + 1, 2 * _REACH + 1), np.uint8)
    hood = (cv2.dilate(g, k) - cv2.erode(g, k))[ys[strong], xs[strong]]
    ratio = m[strong] / np.maximum(hood, con[strong])
    ang = (np.degrees(np.arctan2(ny[strong], nx[strong])) % 180.0 + 22.5) // 45 % 4
    return ratio, ang.astype(np.int8)


def _worst_direction(ratio: np.ndarray, direction: np.ndarray) -> float:
    """Median steepness of the least steep edge orientation that has enough edges (catches motion blur)."""
    worst = None
    for d in range(4):
        r = ratio[direction == d]
        if r.size < max(12, 0.05 * ratio.size):
            continue
        v = float(np.percentile(r, _EDGE_PERCENTILE))
        worst = v if worst is None else min(worst, v)
    return float(np.percentile(ratio, _EDGE_PERCENTILE)) if worst is None else worst


def _steepness(sigma: float, size: int = 160) -> float:
    """Measured steepness of an ideal step edge (a disc, all orientations) blurred by a Gaussian of `sigma` px."""
    up = 8
    big = np.zeros((size * up, size * up), np.float32)
    cv2.circle(big, (size * up // 2, size * up // 2), size * up // 3, 200.0, -1)
    img = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA) + 20.0
    box = 1.0 / math.sqrt(12.0)  # the area-average sampling above blurs by this much
    extra = math.sqrt(max(sigma * sigma - box * box, 0.0))
    if extra > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), extra)
    ratio, _ = _edge_ratios(img, 0.0)
    return _worst_direction(ratio, np.zeros(ratio.size, np.int8))


@functools.lru_cache(maxsize=1)
def _calibration() -> tuple[np.ndarray, np.ndarray]:
    """Steepness of ideal blurred steps over a grid of σ, so a measured steepness converts back to σ (px)."""
    sigmas = np.array([0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0])
    steep = np.array([_steepness(s) for s in sigmas])
    order = np.argsort(steep)
    return steep[order], sigmas[order]


def edge_sigma(ratio: float) -> float:
    """Gaussian σ (px) of an ideal step with this measured steepness (interpolated on the calibration)."""
    steep, sigmas = _calibration()
    if ratio >= steep[-1]:
        return float(sigmas[-1] * steep[-1] / ratio)
    if ratio <= steep[0]:
        return float(sigmas[0] * steep[0] / max(ratio, 1e-6))
    return float(np.interp(ratio, steep, sigmas))


def blur_score(gray: np.ndarray) -> float:
    """Sharpness, higher = sharper: 150 / (edge spread σ in px) of the least sharp edge direction (see module doc)."""
    return score_from_sigma(blur_sigma(gray))


def score_from_sigma(sigma: float) -> float:
    """The blur_score of an edge spread σ (px): SIGMA_AT_100 * 100 / σ, capped at BLUR_CAP; 0 when unmeasurable."""
    if math.isnan(sigma):
        return 0.0
    if sigma <= SIGMA_AT_100 * 100.0 / BLUR_CAP:
        return BLUR_CAP
    return float(SIGMA_AT_100 * 100.0 / sigma)


def blur_sigma(gray: np.ndarray) -> float:
    """Edge spread σ (px, at the working scale) of the least sharp edge direction; NaN when there are no edges."""
    g = working_gray(gray)
    if min(g.shape) < 2 * _REACH + 4:
        return float("nan")
    sigma_n = noise_sigma(g)
    pre = 0.0
    if sigma_n > _NOISE_MIN:  # denoise so noise does not pose as steepness; its known blur is removed below
        pre = min(_PRE_A + _PRE_B * sigma_n, 2.5)
        g = cv2.GaussianBlur(g, (0, 0), pre)
    ratio, direction = _edge_ratios(g, sigma_n, pre)
    if ratio.size < 12:
        return float("nan")
    sigma = edge_sigma(_worst_direction(ratio, direction))
    return math.sqrt(max(sigma * sigma - pre * pre, 0.0))


@dataclass(frozen=True)
class Rotation:
    angle: float  # degrees, counter-clockwise positive; NaN when no line structure
    confidence: float


def _text_points(g: np.ndarray) -> np.ndarray:
    """Coordinates (x, y) of text-like stroke pixels: small dark-on-light or light-on-dark structures."""
    h, w = g.shape
    k = min(31, max(5, int(round(min(h, w) / 40)) | 1))
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    black = cv2.morphologyEx(g, cv2.MORPH_BLACKHAT, se)
    white = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, se)
    resp = black if float(black.sum()) >= float(white.sum()) else white
    top = float(np.percentile(resp, 99.5))
    thr = max(6.0, 0.3 * top, float(np.percentile(resp, 80)))
    ys, xs = np.nonzero(resp > thr)
    return np.stack([xs, ys], axis=1).astype(np.float32) if xs.size else np.empty((0, 2), np.float32)


def _profile_sharpness(pts: np.ndarray, angles_deg: np.ndarray, bin_px: float) -> np.ndarray:
    """Postl's criterion per candidate angle: the sum of squared differences of adjacent projection-profile bins.

    Text lines seen along their direction make sharp line/gap transitions; scattered points give a flat baseline
    (their Poisson noise adds the same amount at every angle)."""
    x = (pts[:, 0] - pts[:, 0].mean()) / bin_px
    y = (pts[:, 1] - pts[:, 1].mean()) / bin_px
    a = np.deg2rad(angles_deg)[:, None]
    proj = np.sin(a) * x[None, :] + np.cos(a) * y[None, :]
    lo = np.floor(proj.min())
    nb = int(np.ceil(proj.max() - lo)) + 2
    idx = (np.rint(proj - lo).astype(np.int64) + np.arange(angles_deg.size)[:, None] * nb).ravel()
    counts = np.bincount(idx, minlength=angles_deg.size * nb).reshape(angles_deg.size, nb).astype(np.float64)
    d = np.diff(counts, axis=1)
    return np.einsum("ij,ij->i", d, d)


def _coarse(pts: np.ndarray, rng: np.random.Generator, n_max: int = 6000) -> tuple[float, float]:
    """(best angle on a 1° grid in [-45, 45], confidence = 1 - median/max of the criterion)."""
    if pts.shape[0] > n_max:
        pts = pts[rng.choice(pts.shape[0], n_max, replace=False)]
    grid = np.arange(-45.0, 45.01, 1.0)
    s = _profile_sharpness(pts, grid, 2.0)
    peak = float(s.max())
    return float(grid[int(np.argmax(s))]), (1.0 - float(np.median(s)) / peak) if peak > 0 else 0.0


def rotation(gray: np.ndarray) -> Rotation:
    """Skew of the text lines in degrees (counter-clockwise positive, [-45, 45]) by projection profiles.

    Text-like strokes are found with morphological top/black-hat filters; the image is also examined in a 3x3 grid
    of tiles so that a text region on a busy photo is judged on its own, and the regions whose line structure is
    nearly as clear as the best one vote. NaN when no region shows line structure (`ROTATION_MIN_CONFIDENCE`)."""
    g = working_gray(gray, 800)
    if min(g.shape) < 24:
        return Rotation(float("nan"), 0.0)
    pts = _text_points(g)
    if pts.shape[0] < 50:
        return Rotation(float("nan"), 0.0)
    rng = np.random.default_rng(0)
    # Sub-pixel jitter: without it the pixel lattice itself peaks the profiles at 0° and 45°.
    pts = pts + rng.uniform(-0.5, 0.5, pts.shape).astype(np.float32)
    h, w = g.shape
    regions = [pts]
    tx = np.minimum((pts[:, 0] * 3 / w).astype(np.int32), 2)
    ty = np.minimum((pts[:, 1] * 3 / h).astype(np.int32), 2)
    tile = ty * 3 + tx
    for t in range(9):
        sel = pts[tile == t]
        if sel.shape[0] >= 50:
            regions.append(sel)
    found = [(_coarse(r, rng), r) for r in regions]
    best_conf = max(c for (_, c), _ in found)
    if best_conf < ROTATION_MIN_CONFIDENCE:
        return Rotation(float("nan"), best_conf)
    votes = [(a, c, r) for (a, c), r in found if c >= 0.85 * best_conf]
    lead = max(votes, key=lambda v: v[1])[0]
    agree = [r for a, _, r in votes if abs(a - lead) <= 2.0]
    use = agree[0] if agree[0] is pts else np.concatenate(agree) if len(agree) > 1 else agree[0]
    if use.shape[0] > 20000:
        use = use[rng.choice(use.shape[0], 20000, replace=False)]
    fine = np.arange(lead - 1.5, lead + 1.5001, 0.1)
    sf = _profile_sharpness(use, fine, 1.0)
    i = int(np.argmax(sf))
    angle = float(fine[i])
    if 0 < i < fine.size - 1:
        a, b, c = sf[i - 1], sf[i], sf[i + 1]
        den = a - 2 * b + c
        if den < 0:
            angle += 0.1 * 0.5 * (a - c) / den
    if angle > 45.0:
        angle -= 90.0
    elif angle < -45.0:
        angle += 90.0
    return Rotation(float(angle), best_conf)


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
