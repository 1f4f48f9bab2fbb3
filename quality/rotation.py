"""Text skew (rotation_angle): the angle of the text lines, robust to photo backgrounds, faded, noisy and blurred text.

``rotation_angle`` (degrees, counter-clockwise positive, in [-45, 45]): see `rotation`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from quality.pixels import NOISE_MIN, downscale, noise_sigma, to_gray

ROT_SIDE = 640  # longest side (px) at most for the rotation search
ROTATION_MIN_CONFIDENCE = 0.0  # below it no text lines were found: rotation_angle is NaN
_MAX_POINTS = 20000
_MIN_AGREEING_TILES, _CLEAR_WHOLE = 3, 0.5
_TILES_BELOW = 0.8  # whole-image confidence under which tiles are examined as well  # below both: no text lines, rotation is NaN
_COARSE_POINTS, _TILE_POINTS, _FINE_POINTS = 2500, 600, 10000
_MID_STEP = 0.5  # degrees between the angles tried around the coarse estimate before the 0.1° steps


@dataclass(frozen=True)
class Rotation:
    angle: float  # degrees, counter-clockwise positive; NaN when no line structure
    confidence: float


def _stroke_mask(g: np.ndarray) -> np.ndarray:
    """0/1 float mask of text-like stroke pixels: small dark-on-light or light-on-dark structures."""
    h, w = g.shape
    k = min(31, max(5, int(round(min(h, w) / 40)) | 1))
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    black = cv2.morphologyEx(g, cv2.MORPH_BLACKHAT, se)
    white = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, se)
    resp = black if cv2.sumElems(black)[0] >= cv2.sumElems(white)[0] else white
    cdf = np.cumsum(cv2.calcHist([resp], [0], None, [256], [0, 256]).ravel())
    cdf /= cdf[-1]
    p80, p995 = int(np.searchsorted(cdf, 0.80)), int(np.searchsorted(cdf, 0.995))
    thr = max(6, int(0.3 * p995), p80)
    return (resp > thr).astype(np.uint8)


_RNG_STATE = np.random.PCG64(0).state
_RNG_LOCAL = threading.local()  # one generator per thread: Dask workers score images on several threads


def _fresh_rng() -> np.random.Generator:
    """`np.random.default_rng(0)` without re-running its seeding (rewinds this thread's PCG64 to seed 0's state)."""
    gen = getattr(_RNG_LOCAL, "gen", None)
    if gen is None:
        gen = _RNG_LOCAL.gen = np.random.Generator(np.random.PCG64(0))
    gen.bit_generator.state = _RNG_STATE
    return gen


def _mask_points(mask: np.ndarray) -> np.ndarray:
    """(x, y) of the mask's pixels in random order (any prefix is an unbiased sample), jittered by ±0.5 px.

    Striding in raster order would alias with rows, and without jitter the pixel lattice itself peaks the profiles
    at 0° and 45°."""
    nz = cv2.findNonZero(mask)
    if nz is None:
        return np.empty((0, 2), np.float32)
    nz = nz.reshape(-1, 2)
    rng = _fresh_rng()
    pick = rng.permutation(nz.shape[0]) if nz.shape[0] <= _MAX_POINTS else rng.integers(0, nz.shape[0], _MAX_POINTS)
    pts = nz[pick].astype(np.float32)
    return pts + rng.uniform(-0.5, 0.5, pts.shape).astype(np.float32)


def _centred(pts: np.ndarray) -> tuple[np.ndarray, float]:
    """Points about their mean and a radius that bounds every projection of them."""
    # cv2's reductions: numpy's axis-0 reductions over (N, 2) arrays are ~30x slower at these sizes.
    mx, my = (float(v) for v in cv2.reduce(pts, 0, cv2.REDUCE_AVG).ravel())
    x, y, w, h = cv2.boundingRect(pts)  # integer box around every point
    ex, ey = max(mx - x, x + w - mx), max(my - y, y + h - my)
    return pts - np.float32([mx, my]), float(math.hypot(ex, ey))


def _profile_criterion(pts: np.ndarray | tuple[np.ndarray, float], angles_deg: np.ndarray,
                       bin_px: float) -> np.ndarray:
    """Postl's criterion per candidate angle: the sum of squared differences of adjacent projection-profile bins.

    Text lines seen along their direction make sharp line/gap transitions; scattered points add the same Poisson
    baseline at every angle. `pts` may be given already `_centred`."""
    c, radius = pts if isinstance(pts, tuple) else _centred(pts)
    scale = np.float32(1.0 / bin_px)
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    r = radius / bin_px + 2.0  # every projection lies in [-r, r]
    nb = int(2 * r) + 3
    rot = (np.stack([np.sin(a), np.cos(a)], axis=1) * scale).astype(np.float32)
    proj = rot @ c.T  # (angles, points)
    proj += (np.arange(a.size, dtype=np.float32) * nb + np.float32(r + 0.5))[:, None]  # one bin range per angle
    counts = np.bincount(proj.astype(np.intp).ravel(), minlength=a.size * nb).reshape(a.size, nb)
    d = counts[:, 1:] - counts[:, :-1]
    return np.einsum("ij,ij->i", d, d).astype(np.float64)


def _subsample(pts: np.ndarray, n: int) -> np.ndarray:
    """The first `n` points (the points are in random order)."""
    return pts[:n]


_GRID = np.arange(-45.0, 45.0, 3.0)
_NEAR = np.arange(-2.0, 2.01, 1.0)


def _group_criteria(c: np.ndarray, gid: np.ndarray, radius: float, angles: np.ndarray, bin_px: float) -> np.ndarray:
    """Postl's criterion of several centred point groups at once: (groups, angles) for per-group angles (G, A).

    One projection and one bincount for all groups; each (group, angle) pair gets its own bin range."""
    n_groups, n_angles = angles.shape
    a = np.deg2rad(angles)
    scale = np.float32(1.0 / bin_px)
    r = radius / bin_px + 2.0
    nb = int(2 * r) + 3
    sin, cos = (np.sin(a) * scale).astype(np.float32), (np.cos(a) * scale).astype(np.float32)
    base = (np.arange(n_groups * n_angles, dtype=np.float32) * nb + np.float32(r + 0.5)).reshape(n_groups, n_angles)
    x, y = c[:, 0:1], c[:, 1:2]
    if n_groups == 1 or (angles == angles[0]).all():  # one angle set: broadcast instead of gathering per point
        proj = x * sin[0] + y * cos[0] + base[0]
        if n_groups > 1:
            proj += (gid.astype(np.float32) * np.float32(n_angles * nb))[:, None]
    else:
        proj = x * sin[gid] + y * cos[gid] + base[gid]
    counts = np.bincount(proj.astype(np.intp).ravel(), minlength=n_groups * n_angles * nb)
    d = np.diff(counts.reshape(n_groups * n_angles, nb), axis=1)
    return np.einsum("ij,ij->i", d, d).astype(np.float64).reshape(n_groups, n_angles)


def _sweeps(groups: list[np.ndarray]) -> list[tuple[float, float]]:
    """(best angle to 1° in [-45, 45), confidence) per point group, all groups searched together.

    A 3° grid with 3-px bins finds the neighbourhood, then 1° steps (2-px bins) around each group's three best
    peaks find the angle. Confidence = 1 - median/max of the criterion over the 3° grid."""
    parts = [_centred(g) for g in groups]
    c = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    gid = np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts])
    radius = max(p[1] for p in parts)
    s = _group_criteria(c, gid, radius, np.broadcast_to(_GRID, (len(parts), _GRID.size)), 3.0)
    peak = s.max(axis=1)
    srt = np.sort(s, axis=1)
    med = 0.5 * (srt[:, (_GRID.size - 1) // 2] + srt[:, _GRID.size // 2])
    conf = np.where(peak > 0, 1.0 - med / np.maximum(peak, 1e-12), 0.0)
    near = []
    for row in s:
        top = _GRID[np.argsort(row)[::-1][:3]]
        near.append(np.unique((top[:, None] + _NEAR[None, :]).ravel()))
    width = max(n.size for n in near)
    near_arr = np.stack([np.concatenate([n, np.full(width - n.size, n[-1])]) for n in near])
    sn = _group_criteria(c, gid, radius, near_arr, 2.0)
    best = near_arr[np.arange(len(parts)), np.argmax(sn, axis=1)]
    return [(float(((b + 45.0) % 90.0) - 45.0), float(k)) for b, k in zip(best, conf)]


def rotation(gray: np.ndarray) -> Rotation:
    """Skew of the text lines in degrees (counter-clockwise positive, [-45, 45]); see the module doc."""
    g, _ = downscale(to_gray(gray), ROT_SIDE)
    return _rotation_small(g, noise_sigma(g) if min(g.shape) >= 3 else 0.0)


def _rotation_small(g: np.ndarray, noise: float) -> Rotation:
    """`rotation` of an image already downscaled to ROT_SIDE whose noise σ is known."""
    if min(g.shape) < 24:
        return Rotation(float("nan"), 0.0)
    if noise > NOISE_MIN * 2:  # noise specks would pass as strokes
        g = cv2.GaussianBlur(g, (0, 0), 1.0)
    pts = _mask_points(_stroke_mask(g))
    if pts.shape[0] < 50:
        return Rotation(float("nan"), 0.0)
    h, w = g.shape
    tile = np.minimum((pts[:, 1] * 3 / h).astype(np.int32), 2) * 3 + np.minimum((pts[:, 0] * 3 / w).astype(np.int32), 2)
    found = [(*_sweeps([_subsample(pts, _COARSE_POINTS)])[0], pts)]
    if found[0][1] < _TILES_BELOW:  # not a clear page of text: judge each tile on its own too
        order = np.argsort(tile, kind="stable")  # keeps each tile's points in their random order
        regions = [r for r in np.split(pts[order], np.cumsum(np.bincount(tile, minlength=9))[:-1]) if len(r) >= 60]
        if regions:
            found += [(*f, r) for f, r in zip(_sweeps([_subsample(r, _TILE_POINTS) for r in regions]), regions)]
    best_conf = max(c for _, c, _ in found)
    if best_conf < ROTATION_MIN_CONFIDENCE:
        return Rotation(float("nan"), best_conf)
    votes = [(a, c, r) for a, c, r in found if c >= 0.85 * best_conf]
    lead = max(votes, key=lambda v: v[1])[0]
    agree = [r for a, _, r in votes if abs(((a - lead + 45.0) % 90.0) - 45.0) <= 2.0]
    # Text lines run through several tiles at one angle; a photo's strongest straight structures rarely do.
    n_tiles = sum(1 for a, _, r in found[1:] if abs(((a - lead + 45.0) % 90.0) - 45.0) <= 2.0)
    if n_tiles < _MIN_AGREEING_TILES and found[0][1] < _CLEAR_WHOLE and len(found) > _MIN_AGREEING_TILES:
        return Rotation(float("nan"), best_conf)
    use = _subsample(agree[0] if len(agree) == 1 else np.concatenate(agree), _FINE_POINTS)
    mid = np.arange(lead - 1.5, lead + 1.5001, _MID_STEP)
    use = _centred(use)
    lead = float(mid[int(np.argmax(_profile_criterion(use, mid, 1.0)))])
    fine = np.arange(lead - 0.4, lead + 0.4001, 0.1)
    sf = _profile_criterion(use, fine, 1.0)
    i = int(np.argmax(sf))
    angle = float(fine[i])
    if 0 < i < fine.size - 1:
        a0, b0, c0 = sf[i - 1], sf[i], sf[i + 1]
        den = a0 - 2 * b0 + c0
        if den < 0:
            angle += 0.1 * 0.5 * (a0 - c0) / den
    angle = ((angle + 45.0) % 90.0) - 45.0
    return Rotation(float(angle), float(best_conf))


def rotation_angle(gray: np.ndarray) -> float:
    """Text skew in degrees, counter-clockwise positive; NaN when no line structure is found."""
    return rotation(gray).angle

