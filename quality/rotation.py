"""Text skew by line periodicity (modulo 90°), robust to photo backgrounds, faded, noisy and blurred text.

Since scorer version 7 the page rotation is `quality.orientation.estimate_rotation` (skew at any angle and page
orientation); it uses the stroke mask and Postl's criterion of this module, and `estimate_skew` as its fallback (and
cross-check) for text whose glyphs have merged (heavy blur, faded or tiny print), where glyph neighbours say little.

`estimate_skew` works on a grey image already at most ``ROT_SIDE`` px long:

1. Polarity: the ink is taken to be darker than the paper when the most common grey level (the paper) lies above the
   mean; if no text lines are found that way, the other polarity is tried on the whole image.
2. Strokes: a morphological black-hat (dark ink) or top-hat (light ink) response, kept where it stands out of its
   own distribution and of the noise (4 σ). The kernel covers a stroke at this scale (1/40 of the short side) or,
   on a blurred image, the blurred stroke (5 σ).
3. Search: Postl's projection-profile criterion on a 3° grid (2,500 sampled stroke pixels), then 1° steps around its
   three best peaks. When the whole image is not clearly a page of text (or fails step 5), each tile of a 3x3 grid is
   searched too on the 3° grid (600 pixels each, one vectorised pass), so a text block on a busy photo is judged on its own, and the
   estimate with the most support (summed confidence of the estimates within 2° of it) leads.
4. Refinement: on the agreeing tiles' pixels (10,000 at most), 0.5° steps within ±1°, then 0.1° steps within ±0.3°
   with a parabola through the best three.
5. Text-line test: the profile across the lines at that angle must repeat at a line pitch (autocorrelation peak
   >= ``MIN_LINE_PERIODICITY`` after removing the block's envelope), or, for one to three lines (an OCR line crop),
   form 1-3 bands above the clutter level that hold most of the strokes, each at least 10 times longer than thick,
   or, on a page of several blocks whose line pitches differ (a manuscript's main text with smaller glosses beside
   it: their profiles mix and repeat weakly on the whole page), at least ``_PERIODIC_TILES`` tiles lined up at that
   angle must each repeat at ``_TILE_PERIODICITY`` on their own (version 22; a handwritten manuscript page of test
   batch 22 at four turns had no answer, its tiles at 0.41-0.62 with the whole page at 0.30-0.32). A photo's edges,
   textures and blobs rarely do either, so they give NaN rather than a skew. (A long solid bar, such as a table
   rule, passes as a line: its angle is the page's anyway.)

Angles are in degrees, counter-clockwise positive, in [-45, 45). The confidence is 1 - median/max of the criterion
over the 3° grid (best of the whole image and the tiles).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from quality.pixels import NOISE_MIN, percentile

ROT_SIDE = 640  # longest side (px) at most for the rotation search
MIN_LINE_PERIODICITY = 0.5  # below it no text lines were found: the angle is NaN
_MAX_POINTS = 10000  # sampled stroke pixels at most
_TILES_BELOW = 0.4  # whole-image confidence under which tiles are examined as well
_COARSE_POINTS, _TILE_POINTS, _FINE_POINTS = 2500, 600, 10000
_MID_STEP = 0.5  # degrees between the angles tried around the coarse estimate before the 0.1° steps
_AGREE_DEG = 2.0  # estimates this close (degrees, modulo 90) support the same angle
_BLUR_KERNEL = 5.0  # stroke kernel side on a blurred image, in blur σ
_ENVELOPE = 0.15  # of the profile's length: the moving average removed before the periodicity test
_BAND_LEVEL, _MIN_BAND, _BAND_MASS = 0.25, 4, 0.7  # a text-line band: level (of the peak), thickness (px), mass share
_PERIODIC_TILES, _TILE_PERIODICITY = 4, 0.4  # tiles that each repeat at a line pitch pass the text-line test
_ELONGATION = 10.0  # a text-line band is at least this many times longer than thick
_NOISE_FLOOR = 4.0  # stroke responses below this many noise σ are noise


@dataclass(frozen=True)
class Rotation:
    angle: float  # degrees, counter-clockwise positive; NaN when no line structure
    confidence: float


def grey_histogram(g: np.ndarray) -> np.ndarray:
    """The 256-bin grey-level histogram of uint8 `g` as cv2 gives it ((256, 1) float32): what `_dark_ink` reads."""
    return cv2.calcHist([g], [0], None, [256], [0, 256])


def _dark_ink(g: np.ndarray, hist: np.ndarray | None = None) -> bool:
    """Whether the ink is darker than the paper: the most common grey level (the paper, smoothed over 9 levels) lies
    above the mean. (Comparing black-hat and top-hat sums fails on dense dark text, where the light gaps between
    letters and lines respond as strongly as the ink.) `hist` is `grey_histogram(g)` when already computed."""
    if hist is None:
        hist = grey_histogram(g)
    mode = int(np.argmax(cv2.blur(hist, (1, 9))))
    return mode >= float(cv2.mean(g)[0])


def _stroke_mask(g: np.ndarray, dark: bool, blur_px: float = 0.0, noise: float = 0.0) -> np.ndarray:
    """0/1 mask of text-like stroke pixels: small dark-on-light structures (`dark`) or small light-on-dark ones.

    `blur_px` (the image's blur σ at this scale, NaN or 0 if unknown) widens the kernel to cover blurred strokes."""
    h, w = g.shape
    k_blur = round(_BLUR_KERNEL * blur_px) if blur_px > 0 else 0  # False for NaN
    k = min(31, max(5, k_blur, round(min(h, w) / 40)) | 1)
    se = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    return _strong(cv2.morphologyEx(g, cv2.MORPH_BLACKHAT if dark else cv2.MORPH_TOPHAT, se), noise)


def _strong(resp: np.ndarray, noise: float = 0.0) -> np.ndarray:
    """1 where a black-hat/top-hat response stands out of its own distribution (read on every other row and column)
    and of the noise (`_NOISE_FLOOR` times the noise σ left in the image), else 0."""
    sample = resp[::2, ::2] if min(resp.shape) >= 64 else resp
    cdf = np.cumsum(cv2.calcHist([np.ascontiguousarray(sample)], [0], None, [256], [0, 256]).ravel())
    cdf = cdf / cdf[-1]
    p80, p995 = int(np.searchsorted(cdf, 0.80)), int(np.searchsorted(cdf, 0.995))
    thr = max(6, int(0.3 * p995), p80, int(_NOISE_FLOOR * noise))
    return cv2.threshold(resp, thr, 1, cv2.THRESH_BINARY)[1]


_RNG_STATE = np.random.PCG64(0).state
_RNG_LOCAL = threading.local()  # one generator per thread: Dask workers score images on several threads
FINE_SKEW_POINTS = 40000  # sampled stroke pixels of the final skew refinement on a finer image (`quality.orientation`)
# (its first _MAX_POINTS rows are the jitter every other search has always used: one stream, drawn in order)
_JITTER = np.random.default_rng(1).uniform(-0.5, 0.5, (max(_MAX_POINTS, FINE_SKEW_POINTS), 2)).astype(np.float32)


def _fresh_rng() -> np.random.Generator:
    """`np.random.default_rng(0)` without re-running its seeding (rewinds this thread's PCG64 to seed 0's state)."""
    gen = getattr(_RNG_LOCAL, "gen", None)
    if gen is None:
        gen = _RNG_LOCAL.gen = np.random.Generator(np.random.PCG64(0))
    gen.bit_generator.state = _RNG_STATE
    return gen


def _mask_pixels(mask: np.ndarray) -> np.ndarray:
    """(x, y) int32 of the mask's nonzero pixels, in raster order."""
    nz = cv2.findNonZero(mask)
    return np.empty((0, 2), np.int32) if nz is None else nz.reshape(-1, 2)


def _sample_points(pixels: np.ndarray, limit: int) -> np.ndarray:
    """Up to `limit` of `pixels` in random order (any prefix is an unbiased sample), jittered by ±0.5 px, as float32.

    Striding in raster order would alias with rows, and without jitter the pixel lattice itself peaks the profiles
    at 0° and 45°."""
    rng = _fresh_rng()
    n = pixels.shape[0]
    pick = rng.permutation(n) if n <= limit else rng.integers(0, n, limit)
    # np.take along axis 0 gathers the same rows ~10x faster than fancy indexing of an (N, 2) array.
    return np.take(pixels, pick, axis=0).astype(np.float32) + _JITTER[: pick.size]


def stroke_points(mask: np.ndarray, limit: int = _MAX_POINTS) -> np.ndarray:
    """The sampled stroke points of a 0/1 mask that the searches use: `_sample_points` of its pixels (at most
    `limit`, itself at most ``FINE_SKEW_POINTS``)."""
    return _sample_points(_mask_pixels(mask), limit)


def _centred(pts: np.ndarray) -> tuple[np.ndarray, float]:
    """Points about their mean and a radius that bounds every projection of them."""
    # cv2's reductions: numpy's axis-0 reductions over (N, 2) arrays are ~30x slower at these sizes.
    mx, my = (float(v) for v in cv2.reduce(pts, 0, cv2.REDUCE_AVG).ravel())
    x, y, w, h = cv2.boundingRect(pts)  # integer box around every point
    ex, ey = max(mx - x, x + w - mx), max(my - y, y + h - my)
    return pts - np.array([mx, my], dtype=np.float32), float(math.hypot(ex, ey))


def _profile_criterion(pts: np.ndarray | tuple[np.ndarray, float], angles_deg: np.ndarray, bin_px: float) -> np.ndarray:
    """Postl's criterion per candidate angle: the sum of squared differences of adjacent projection-profile bins.

    Text lines seen along their direction make sharp line/gap transitions; scattered points add the same Poisson
    baseline at every angle. `pts` may be given already `_centred`."""
    c, radius = pts if isinstance(pts, tuple) else _centred(pts)
    return _group_criteria([c], radius, np.asarray(angles_deg, dtype=np.float64)[None, :], bin_px)[0]


def _subsample(pts: np.ndarray, n: int) -> np.ndarray:
    """The first `n` points (the points are in random order)."""
    return pts[:n]


_GRID = np.arange(-45.0, 45.0, 3.0)
_NEAR = np.arange(-2.0, 2.01, 1.0)


def _group_criteria(groups: list[np.ndarray], radius: float, angles: np.ndarray, bin_px: float) -> np.ndarray:
    """Postl's criterion of several centred point groups at once: (groups, angles) for per-group angles (G, A).

    One matrix product per group and one histogram for all; each (group, angle) pair gets its own bin range."""
    n_groups, n_angles = angles.shape
    a = np.deg2rad(angles)
    r = radius / bin_px + 2.0  # every projection lies in [-r, r]
    nb = int(2 * r) + 3
    rot = (np.stack([np.sin(a), np.cos(a)], axis=1) / bin_px).astype(np.float32)  # (G, 2, A)
    base = (np.arange(n_groups * n_angles, dtype=np.float32) * nb + np.float32(r + 0.5)).reshape(n_groups, n_angles)
    proj = np.empty((sum(len(g) for g in groups), n_angles), np.float32)
    start = 0
    for i, g in enumerate(groups):
        out = proj[start : start + len(g)]
        np.matmul(g, rot[i], out=out)
        out += base[i]
        start += len(g)
    # One histogram of every projection: calcHist floors each (non-negative) value into its unit bin, as
    # `astype(intp)` + `bincount` would, ~3x faster and without the int64 copy.
    total = n_groups * n_angles * nb
    counts = cv2.calcHist([proj], [0], None, [total], [0, total])
    return _postl(counts.reshape(n_groups * n_angles, nb)).reshape(n_groups, n_angles)


def _postl(counts: np.ndarray) -> np.ndarray:
    """Postl's criterion of each row of projection-profile bin counts (exact: counts are integers)."""
    d = np.diff(counts.astype(np.float64), axis=1)
    return np.einsum("ij,ij->i", d, d)


def _grid_sweep(parts: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Postl's criterion on a 3° grid with 3-px bins per centred point group, and each group's confidence:
    1 - median/max of its criterion over the grid."""
    s = _group_criteria(
        [p[0] for p in parts], max(p[1] for p in parts), np.broadcast_to(_GRID, (len(parts), _GRID.size)), 3.0
    )
    peak = s.max(axis=1)
    srt = np.sort(s, axis=1)
    med = 0.5 * (srt[:, (_GRID.size - 1) // 2] + srt[:, _GRID.size // 2])
    return s, np.where(peak > 0, 1.0 - med / np.maximum(peak, 1e-12), 0.0)


def _near_peaks(parts: list[tuple[np.ndarray, float]], s: np.ndarray) -> list[float]:
    """Per group, the best angle at 1° steps (2-px bins) around the three best peaks of its grid criterion `s`."""
    top = _GRID[np.argpartition(s, -3, axis=1)[:, -3:]]  # (groups, 3)
    near = (top[:, :, None] + _NEAR[None, None, :]).reshape(len(parts), -1)
    sn = _group_criteria([p[0] for p in parts], max(p[1] for p in parts), near, 2.0)
    best = near[np.arange(len(parts)), np.argmax(sn, axis=1)]
    return [float(((b + 45.0) % 90.0) - 45.0) for b in best]


def estimate_skew(
    g: np.ndarray,
    noise: float = 0.0,
    blur_px: float = 0.0,
    masks: dict[bool, np.ndarray] | None = None,
    min_conf: float = 0.0,
    dark: bool | None = None,
    points: dict[bool, np.ndarray] | None = None,
) -> Rotation:
    """Skew of the text lines of uint8 grey `g` (at most ROT_SIDE px long) whose noise σ (grey levels) and blur σ (px)
    are known (0 if not); see the module doc.

    `masks` (optional) maps ink polarity (True = dark) to `_stroke_mask(g, ink, blur_px, noise)` already computed by
    the caller; they are reused only when `g` is used as given (no denoising here), so the result is unchanged.
    `dark` (optional) is `_dark_ink(g)` already found by the caller, reused on the same condition as `masks`, and so
    is `points` (optional), which maps ink polarity to `stroke_points` of its mask already sampled by the caller.
    With `min_conf`, a polarity whose whole-image confidence is below it is not searched further (no tiles, no
    text-line test): a caller that would reject such an answer anyway saves the work."""
    if min(g.shape) < 24:
        return Rotation(float("nan"), 0.0)
    if noise > NOISE_MIN * 2:  # noise specks would pass as strokes
        g = cv2.GaussianBlur(g, (0, 0), 1.0)
        noise = noise / (2.0 * math.sqrt(math.pi))  # what a Gaussian of σ = 1 px leaves of white noise
        masks = dark = points = None
    if dark is None:
        dark = _dark_ink(g)
    conf = 0.0
    for ink in (dark, not dark):  # the paper's polarity first; the other one only if no text lines are found
        pts = points.get(ink) if points else None
        if pts is None:
            mask = masks.get(ink) if masks else None
            pts = stroke_points(_stroke_mask(g, ink, blur_px, noise) if mask is None else mask)
        if len(pts) < 50:  # as many points as stroke pixels below `_MAX_POINTS`
            continue
        coarse = [_centred(_subsample(pts, _COARSE_POINTS))]
        s, whole_conf = _grid_sweep(coarse)
        whole = float(whole_conf[0])
        conf = max(conf, whole)
        # The second polarity only rescues pages whose paper is not the most common grey: the whole image must then
        # look like lines at once (photos rarely do, and they are where this search costs most).
        if whole < (min_conf if ink == dark else max(min_conf, _TILES_BELOW)):
            continue
        found = [(_near_peaks(coarse, s)[0], whole, pts)]
        # Tiles when the whole image is not clearly a page of text, or when it is but fails the text-line test;
        # the second polarity is judged on the whole image only (it rescues pages whose paper is not the most
        # common grey; tiles there would mostly re-examine photos).
        plan = (False,) if ink != dark else (False, True) if whole >= _TILES_BELOW else (True,)
        for with_tiles in plan:
            if with_tiles:
                found += _tile_estimates(pts, g.shape)
                conf = max([conf] + [c for _, c, _ in found])
            text_angle = _text_angle(found)
            if text_angle is not None:
                return Rotation(float(text_angle), float(conf))
    return Rotation(float("nan"), float(conf))


def _tile_estimates(pts: np.ndarray, shape: tuple[int, int]) -> list[tuple[float, float, np.ndarray]]:
    """(angle to 3°, confidence, points) of each tile of a 3x3 grid holding enough stroke points, all searched at
    once, so a text block on a busy photo is judged on its own."""
    h, w = shape
    tile = np.minimum((pts[:, 1] * 3 / h).astype(np.int32), 2) * 3 + np.minimum((pts[:, 0] * 3 / w).astype(np.int32), 2)
    # Keeps each tile's points in their random order; on uint8 numpy's stable sort is a radix sort (~6x faster).
    order = np.argsort(tile.astype(np.uint8), kind="stable")
    regions = [
        r for r in np.split(np.take(pts, order, axis=0), np.cumsum(np.bincount(tile, minlength=9))[:-1]) if len(r) >= 60
    ]
    if not regions:
        return []
    # The 3° grid is enough here: the tiles only vote; the refinement runs on the pixels of those that agree.
    s, conf = _grid_sweep([_centred(_subsample(r, _TILE_POINTS)) for r in regions])
    best = _GRID[np.argmax(s, axis=1)]
    return [(float(b), float(c), r) for b, c, r in zip(best, conf, regions)]


def _text_angle(found: list[tuple[float, float, np.ndarray]]) -> float | None:
    """The refined angle of the best-supported estimate if the profile there shows text lines, else None.

    `found` holds (angle, confidence, points): the whole image first, then any tiles. The text-line test runs at the
    0.5° step (it does not change over a few tenths of a degree), so images without text skip the 0.1° step."""
    lead = _leading_angle(found)
    # The tiles that agree (a text block on a photo is judged without the photo), else the whole image.
    agree = [r for a, _, r in found[1:] if _angle_gap(a, lead) <= _AGREE_DEG] or [found[0][2]]
    use = _centred(_subsample(agree[0] if len(agree) == 1 else np.concatenate(agree), _FINE_POINTS))
    mid = np.arange(lead - 1.0, lead + 1.0001, _MID_STEP)
    near = float(mid[int(np.argmax(_profile_criterion(use, mid, 1.0)))])
    if _line_periodicity(use, near) >= MIN_LINE_PERIODICITY or _few_text_lines(use, near):
        return _refine(use, near)
    if _periodic_tiles(found, lead, near) >= _PERIODIC_TILES:
        return _refine(use, near)
    return None


def _periodic_tiles(found: list[tuple[float, float, np.ndarray]], lead: float, near: float) -> int:
    """How many tiles lined up within `_AGREE_DEG` of `lead` repeat at a line pitch of their own at `near`."""
    agree = [r for a, _, r in found[1:] if _angle_gap(a, lead) <= _AGREE_DEG]
    if len(agree) < _PERIODIC_TILES:
        return 0
    return sum(_line_periodicity(_centred(_subsample(r, _FINE_POINTS)), near) >= _TILE_PERIODICITY for r in agree)


def fine_angle(use: np.ndarray | tuple[np.ndarray, float], near: float) -> float:
    """The angle within 0.3° of `near` (to ~0.05°) that maximises the profile criterion of the centred points `use`:
    0.1° steps and a parabola through the best three (not wrapped into a range)."""
    fine = np.arange(near - 0.3, near + 0.3001, 0.1)
    sf = _profile_criterion(use, fine, 1.0)
    i = int(np.argmax(sf))
    angle = float(fine[i])
    if 0 < i < fine.size - 1:
        a0, b0, c0 = sf[i - 1], sf[i], sf[i + 1]
        den = a0 - 2 * b0 + c0
        if den < 0:
            angle += 0.1 * 0.5 * (a0 - c0) / den
    return angle


def _refine(use: tuple[np.ndarray, float], near: float) -> float:
    """`fine_angle` wrapped into [-45, 45)."""
    return ((fine_angle(use, near) + 45.0) % 90.0) - 45.0


def _line_periodicity(pts: tuple[np.ndarray, float], angle: float) -> float:
    """How periodic the projection profile across the lines is at `angle` (0..1): the height of the autocorrelation's
    first peak after its first trough. Text lines repeat at a line pitch; a photo's edges and textures rarely do."""
    c, radius = pts
    a = math.radians(angle)
    proj = c[:, 0] * math.sin(a) + c[:, 1] * math.cos(a) + (radius + 1.0)
    prof = np.bincount(proj.astype(np.intp), minlength=int(2 * radius) + 3).astype(np.float64)
    nz = np.flatnonzero(prof)
    prof = prof[nz[0] : nz[-1] + 1]
    n = prof.size
    if n < 16:
        return 0.0
    # A rotated block's profile rises and falls with the block's outline: remove that envelope, keep the lines.
    w = max(5, int(n * _ENVELOPE)) | 1
    prof = prof - cv2.blur(prof.reshape(1, -1), (w, 1), borderType=cv2.BORDER_REFLECT).ravel()
    prof -= prof.mean()
    spec = np.fft.rfft(prof, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[: n // 2]
    if ac[0] <= 0:
        return 0.0
    ac /= ac[0]
    neg = np.flatnonzero(ac < 0)
    if neg.size == 0:
        return 0.0
    return float(max(0.0, ac[neg[0] :].max()))


def _few_text_lines(pts: tuple[np.ndarray, float], angle: float) -> bool:
    """Whether the points at `angle` form one to three text lines, too few for the periodicity test (a cropped OCR
    line, a label): across the lines, the profile above its clutter level (scattered specks add the same amount
    everywhere) sits in 1-3 bands at least ``_MIN_BAND`` px thick (not a photo's thin edge) holding most of it, and
    each band is at least ``_ELONGATION`` times longer than thick (a line of words, not a blob)."""
    c, radius = pts
    a = math.radians(angle)
    sin, cos = math.sin(a), math.cos(a)
    idx = (c[:, 0] * sin + c[:, 1] * cos + (radius + 1.0)).astype(np.intp)
    prof = np.bincount(idx, minlength=int(2 * radius) + 3).astype(np.float32)
    nz = np.flatnonzero(prof)
    excess = np.maximum(prof - percentile(prof[nz[0] : nz[-1] + 1], 20.0), 0.0)
    smooth = cv2.blur(excess.reshape(1, -1), (3, 1)).ravel()
    inside = smooth >= _BAND_LEVEL * float(smooth.max())
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.view(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2]
    if not 1 <= starts.size <= 3 or (ends - starts).min() < _MIN_BAND:
        return False
    if excess[inside].sum() < _BAND_MASS * excess.sum():
        return False
    along = c[:, 0] * cos - c[:, 1] * sin
    for lo, hi in zip(starts, ends):
        x = along[(idx >= lo) & (idx < hi)]
        if x.size < 20:
            return False
        length = percentile(x, 98.0) - percentile(x, 2.0)
        if length < _ELONGATION * (hi - lo):
            return False
    return True


def _angle_gap(a: float, b: float) -> float:
    """Distance between two line angles in degrees, modulo 90 (lines at a and a + 90 are the same grid)."""
    return abs(((a - b + 45.0) % 90.0) - 45.0)


def _leading_angle(found: list[tuple[float, float, np.ndarray]]) -> float:
    """The estimate with the most support: the summed confidence of the estimates (whole image, tiles) within
    `_AGREE_DEG` of it; ties go to the more confident one."""
    a = np.array([f[0] for f in found])
    c = np.array([f[1] for f in found])
    near = np.abs((a[:, None] - a[None, :] + 45.0) % 90.0 - 45.0) <= _AGREE_DEG
    # Summed in index order (cumsum is sequential, adding 0.0 changes nothing), as a Python sum would.
    support = np.cumsum(np.where(near, c[None, :], 0.0), axis=1)[:, -1].tolist()
    return found[max(range(len(found)), key=lambda j: (support[j], found[j][1]))][0]
