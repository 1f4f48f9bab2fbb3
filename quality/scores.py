"""Image quality scores: small pure functions on one image, each independent of any dataset.

Every function takes a numpy image as OpenCV loads it (grey ``HxW``, BGR ``HxWx3`` or BGRA ``HxWx4``, any dtype
OpenCV produces) and returns plain floats. Work happens on integer-factor downscales (OpenCV's fast path) and, for
the blur of large images, on four windows shrunk to the viewing scale, so the cost grows slowly with image size.

Units and direction:

- ``blur_score`` (higher = sharper): ``150 / σ`` where σ (pixels) is the Gaussian spread of an ideal step edge that
  is as steep, relative to its contrast, as the image's edges. It is measured on strong edges only (per-edge contrast
  normalises away lighting and ink), in four orientations, and the *least sharp* orientation counts, so motion blur
  is caught. So 100 means edges as soft as a step blurred by a Gaussian of σ = 1.5 px, 150 means σ = 1 px, 50 means
  σ = 3 px, capped at ``BLUR_CAP``. σ is expressed at the *viewing scale*: images longer than ``VIEW_SIDE`` px are
  judged as if shown ``VIEW_SIDE`` px long, so large photos are not called blurry for soft per-pixel edges (see
  "Scale" below). Noise is
  estimated and filtered out first (its filter's known blur is subtracted), so noise and JPEG grain do not pose as
  sharpness. The noise that decides the filter is also read at half scale, since JPEG discards the finest part of
  noise but keeps the coarser grain, and only part (``_PRE_SEEN``) of the filter's variance is subtracted, since
  thin strokes show added blur less than a lone step does. On images over 0.3 MP (at the viewing scale) only the 4
  of 4x4 windows with the most fine detail (Laplacian energy) are read, each on its own, and the median window
  counts: a photo whose subject is in focus is sharp even if its background is not, while one crisp spot does not
  make a blurred photo sharp. The noise filter is applied only there, and the coarser re-reads below use the same
  windows.
- ``rotation_angle`` (degrees, counter-clockwise positive, in (-45, 45]): skew of the text lines, and
  ``orientation`` (0, 90, 180 or 270: how far the upright page was turned counter-clockwise), estimated separately
  at most ``ROT_SIDE`` px long from the directions between neighbouring glyphs, Postl's projection-profile criterion
  and the ascender/descender asymmetry of Latin text; both NaN when there is no text (blank pages, photos). Details
  in `quality.orientation` (and `quality.rotation`, its fallback for text whose glyphs have merged). The measured
  blur and noise tune the stroke filter.
- ``rotation_confidence`` (0..1): how clearly the glyphs line up (0 without text); ``orientation_confidence``
  (0..1): sign-test probability that the orientation is not chance (0.5 = no evidence).
- The blur estimate saturates for edges wider than ~2 px (they outgrow the ±4 px read around each edge), so soft
  images are read again on 2x, 4x, ... coarser copies and the larger spread counts: the score keeps falling with
  defocus. An image without any edge at every scale (flat) scores 0.
- Scale: an image longer than ``VIEW_SIDE`` px is also *measured* at exactly the viewing scale, so its score is
  that of the same image resized to ``VIEW_SIDE`` px, whatever its input size (within the measure's noise: scores
  of real tune-split photos at 1024 px, native size, 1.5x and 2x differ by a median 6 %, σ by a median 0.1 px).
  The windows are chosen on the integer-factor view (``ceil(longest / VIEW_SIDE)``, shared with the rotation), then
  cut from the full image and shrunk by exactly ``VIEW_SIDE / longest`` (area averages: power-of-two halvings, then
  the remaining factor in (0.5, 1]); the coarser re-reads use ``VIEW_SIDE``/2, /4, ... copies made from the view.
  Why: in-focus real photos measure ~1.1 px at their own pixels whatever their size (sampling, demosaicing, JPEG),
  and reading the integer-factor view (512-1024 px long) and scaling σ back up by up to 2x magnified that floor: up
  to scorer version 9 a sharp 1280-px photo scored 63 and the same photo shrunk to 1024 px 134. Where the view is
  within 5 % of the viewing scale (``_EXACT_ABOVE``) it is read directly. Images up to ``VIEW_SIDE`` px are judged
  at their own pixels, never enlarged: a smaller copy cannot show finer detail, so a copy shrunk below
  ``VIEW_SIDE`` keeps a sharp photo's score (the floor) but scores a blurred one higher than its original (its blur
  spans fewer pixels).
- ``brightness`` (0..1): mean luminance. ``contrast`` (0..1): 99th minus 1st percentile of luminance, or, when
  more, how much farther the darkest (or lightest) 0.05 % of the pixels lie from the most common grey than the
  opposite 0.05 % do (`_tone`): a page of one word or a few short lines has under 1 % ink, so its percentiles are
  all paper, and eight such real pages (batches 2-23) were "washed out, low contrast 0.00" (version 23). Noise
  spreads both ways from the paper's grey and cancels; a low-contrast page stays low.
- ``noise`` (grey levels on 0..255): estimated standard deviation of pixel noise at the blur working scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from quality.orientation import MIN_ROT_SHORT, PageRotation, estimate_rotation
from quality.pixels import NOISE_MIN, downscale, downscale_by, noise_sigma, percentile, to_gray
from quality.rotation import ROT_SIDE, Rotation, grey_histogram

__all__ = [
    "BLUR_CAP",
    "ROT_SIDE",
    "SCORER_VERSION",
    "VIEW_SIDE",
    "PageRotation",
    "Rotation",
    "blur_score",
    "blur_sigma",
    "brightness",
    "contrast",
    "downscale",
    "downscale_by",
    "noise_sigma",
    "rotation",
    "rotation_angle",
    "score_from_sigma",
    "score_image",
    "to_gray",
    "view_gray",
]

_STRIP_ASPECT = 4  # a crop at least this many times longer than it is wide is a line (`_small_and_skew`)
_MIN_LINE_PX = 8  # ... read enlarged when it is at least this many px across (thinner holds no legible letters)
_MAX_ROT_LONG = 8192  # px: the rotation image is never longer than this (a 30 x 40,000 sliver is averaged down)
ROT_MIN_SHORT = 48  # px: the rotation image of a strip keeps at least this much across (see `_small_and_skew`)
_SPARSE_INK_SHARE = 0.0005  # the tails compared for the contrast of a page with little ink (`_tone`)
SCORER_VERSION = "27"  # part of the audit cache key: bump when any score changes
VIEW_SIDE = 1024  # blur is judged at this viewing size (longest side, px)
BLUR_CAP = 400.0
SIGMA_AT_100 = 1.5  # edge spread (px) that scores exactly 100

_PRE_A, _PRE_B, _PRE_MAX = 0.8, 0.05, 2.5  # Gaussian pre-filter σ = min(A + B * noise σ, MAX)
# Share of the pre-filter's σ² that shows in the measured spread: 1 for a lone step, less for thin strokes (a blurred
# line's flanks are ~1.5x steeper than a step's of the same σ, so its measured spread grows slower than σ).
_PRE_SEEN = 0.7
_REACH = 4  # px either side of an edge over which its contrast is measured
_MAX_EDGES = 4000
_WINDOW_ABOVE, _WINDOWS_KEPT = 300_000, 4  # pixels above which only the busiest windows are read
_COARSEN_ABOVE, _MIN_COARSE_SIDE = 2.0, 48  # spread (px) above which a 2x coarser copy is read too; its side
# Magnification (px of the viewing scale per px of the integer-factor view) above which the blur is read on windows
# made at exactly the viewing scale (below it the view is read, off by at most this factor at the pixel floor).
_EXACT_ABOVE = 1.05
_MIN_CELL_SIDE = 64  # px: a coarser copy is read in the chosen cells only while they are at least this long
_EDGE_PERCENTILE = 85.0  # of edge steepness per orientation: in-focus edges count, soft backgrounds do not


# ----------------------------------------------------------------------------------------------- blur
def view_gray(image: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int]]:
    """(luminance at the viewing scale, its integer factor k, full (height, width)).

    8-bit colour is area-averaged before the grey conversion (both are linear, so only rounding differs), which
    converts k² fewer pixels."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    # Never more than the short side: a 2 x 3,000 sliver averaged by 3 would have no rows left.
    k = max(1, min(math.ceil(max(h, w) / VIEW_SIDE), min(h, w)))
    if img.ndim == 3 and img.dtype == np.uint8 and img.shape[2] in (3, 4) and k > 1:
        return to_gray(downscale_by(img, k)), k, (h, w)
    return downscale_by(to_gray(img), k), k, (h, w)


def _sharp_cells(g: np.ndarray, half: np.ndarray, pixels: float | None = None) -> list[int] | None:
    """Which cells of a 4x4 grid to read edges in: None (the whole image) for a small image, else the
    `_WINDOWS_KEPT` cells with the most fine detail (sum of absolute Laplacian values), so cost stays flat as images
    grow.

    Fine detail, not gradient energy: a photo that is only partly in focus is judged by its in-focus part (a sharp
    subject makes the photo sharp), and a defocused high-contrast background has large gradients but little fine
    detail. It is read on `half`, the 2x area-average of `g` that the noise estimate computes anyway."""
    if (g.size if pixels is None else pixels) <= _WINDOW_ABOVE:
        return None
    energy = cv2.convertScaleAbs(cv2.Laplacian(half, cv2.CV_16S, ksize=1))
    eh, ew = energy.shape[0] // 4, energy.shape[1] // 4
    cells = energy[: 4 * eh, : 4 * ew].reshape(4, eh, 4, ew).sum(axis=(1, 3), dtype=np.int64).ravel()
    return [int(i) for i in np.argsort(cells)[::-1][:_WINDOWS_KEPT]]


def _busy_cells(g: np.ndarray) -> list[int] | None:
    """The `_WINDOWS_KEPT` cells of a 4x4 grid with the most gradient energy (None for a small image): where the
    rotation's stroke filter has always read its blur (`_blur_at_view`)."""
    h, w = g.shape
    if h * w <= _WINDOW_ABOVE:
        return None
    thumb = np.ascontiguousarray(g[::4, ::4])
    energy = cv2.Sobel(thumb, cv2.CV_32F, 1, 0, ksize=3) ** 2 + cv2.Sobel(thumb, cv2.CV_32F, 0, 1, ksize=3) ** 2
    cells = cv2.resize(energy, (4, 4), interpolation=cv2.INTER_AREA).ravel()
    return [int(i) for i in np.argsort(cells)[::-1][:_WINDOWS_KEPT]]


def _cell_windows(shape: tuple[int, ...], cells: list[int] | None, pad: int = _REACH + 2) -> list[tuple[slice, slice]]:
    """The (rows, columns) slices of `cells` of a 4x4 grid over an image of `shape` (plus a margin for the edge
    reach); the whole image when `cells` is None. The same cells can be read on a coarser copy of the image."""
    h, w = shape[:2]
    if cells is None:
        return [(slice(0, h), slice(0, w))]
    out = []
    for i in cells:
        r, c = divmod(i, 4)
        out.append(
            (
                slice(max(0, r * h // 4 - pad), min(h, (r + 1) * h // 4 + pad)),
                slice(max(0, c * w // 4 - pad), min(w, (c + 1) * w // 4 + pad)),
            )
        )
    return out


def _window(g: np.ndarray, ys: slice, xs: slice, pre: float) -> np.ndarray:
    """`g[ys, xs]`, smoothed by a Gaussian of σ `pre` (if > 0) computed with enough context around the window that
    the result equals smoothing the whole image (except at the image's own borders)."""
    if pre <= 0:
        return np.ascontiguousarray(g[ys, xs])
    m = math.ceil(4.0 * pre) + 1
    y0, y1 = max(0, ys.start - m), min(g.shape[0], ys.stop + m)
    x0, x1 = max(0, xs.start - m), min(g.shape[1], xs.stop + m)
    smooth = cv2.GaussianBlur(np.ascontiguousarray(g[y0:y1, x0:x1]), (0, 0), pre)
    return np.ascontiguousarray(smooth[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0])


Samples = tuple[np.ndarray, np.ndarray, np.ndarray]  # gradient magnitude, neighbourhood contrast, orientation bin


def _edge_samples(g: np.ndarray, floor: float, budget: int) -> Samples:
    """Gradient magnitude, neighbourhood contrast and orientation bin at Canny edges of uint8 `g`."""
    dx = cv2.Sobel(g, cv2.CV_16S, 1, 0, ksize=3)
    dy = cv2.Sobel(g, cv2.CV_16S, 0, 1, ksize=3)
    edges = cv2.Canny(dx, dy, 8.0 * floor, 16.0 * floor, L2gradient=True)  # Sobel's 3x3 kernel reads 8x the slope
    r = _REACH + 1
    edges[:r, :] = 0
    edges[-r:, :] = 0
    edges[:, :r] = 0
    edges[:, -r:] = 0
    nz = cv2.findNonZero(edges)
    if nz is None:
        return np.empty(0, np.float32), np.empty(0, np.float32), np.empty(0, np.int8)
    at = nz[:, 0, 1].astype(np.intp) * g.shape[1] + nz[:, 0, 0]  # flat indices (a `take` beats 2-D fancy indexing)
    if at.size > budget:
        at = at[(np.arange(budget) * (at.size / budget)).astype(np.int64)]
    gx = dx.ravel().take(at).astype(np.float32)
    gy = dy.ravel().take(at).astype(np.float32)
    m = np.hypot(gx, gy) / 8.0
    # Contrast around each edge: max - min over the (2 * _REACH + 1)² box. It bounds the contrast along the edge's
    # own profile (±_REACH px across the edge, linearly interpolated, so within the box's values), so that profile
    # need not be read. The bins compare |gy| with |gx|, which needs no normalisation.
    hood = cv2.morphologyEx(g, cv2.MORPH_GRADIENT, _HOOD).ravel().take(at).astype(np.float32)
    return m, hood, _direction_bin(gx, gy)


_TAN_22_5 = math.tan(math.radians(22.5))
_HOOD = np.ones((2 * _REACH + 1, 2 * _REACH + 1), np.uint8)


def _direction_bin(nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Orientation of the edge normal (nx, ny) (any length) in four 45° bins (0 = normal near horizontal, 2 = near vertical, 1 and 3 diagonals),
    from comparisons instead of arctan: bin k covers orientations (mod 180°) within 22.5° of k * 45°."""
    ax, ay = np.abs(nx), np.abs(ny)
    out = np.where(nx * ny > 0, 1, 3).astype(np.int8)
    out[ay <= _TAN_22_5 * ax] = 0
    out[ax < _TAN_22_5 * ay] = 2
    return out


def _cell_samples(g: np.ndarray, cell: int | None, resid_noise: float, pre: float, budget: int) -> Samples:
    """Raw edge samples of 4x4-grid `cell` of uint8 `g` (the whole image when None), at most `budget` of them.

    `pre` > 0 smooths `g` by a Gaussian of that σ first, only where edges are read (the window plus a margin)."""
    ((ys, xs),) = _cell_windows(g.shape, None if cell is None else [cell])
    return _edge_samples(_window(g, ys, xs, pre), max(2.0, 2.0 * resid_noise), budget)


def _strong_ratios(parts: list[Samples], resid_noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Steepness (gradient / contrast around it) and orientation bin (0..3) of the strong edges among `parts`."""
    m, hood, ang = (np.concatenate([p[i] for p in parts]) for i in range(3))
    if m.size == 0:
        return np.empty(0, np.float32), np.empty(0, np.int8)
    # Steepness is measured against the neighbourhood's contrast, not only the edge's own: a thin stroke smeared by
    # motion blur keeps short steep flanks but loses most of its contrast, which the neighbourhood still shows.
    # Edges are kept by that contrast too, so a direction that blur has flattened still takes part.
    strong = hood >= max(20.0, 8.0 * resid_noise, 0.3 * percentile(hood, 95.0))
    ratio = m[strong] / hood[strong]
    return ratio, ang[strong]


def _edge_ratios(g: np.ndarray, resid_noise: float, pre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Steepness and orientation bin of the strong edges of the whole uint8 `g` (see `_strong_ratios`)."""
    return _strong_ratios([_cell_samples(g, None, resid_noise, pre, _MAX_EDGES)], resid_noise)


def _worst_direction(ratio: np.ndarray, direction: np.ndarray) -> float:
    """Steepness (upper percentile) of the least steep edge orientation with enough edges.

    "Enough" is a small share (2 %): the orientation that motion blur flattens also loses most of its edges (with
    noise, fewer of them pass the edge thresholds), and it is the one that must count."""
    worst = None
    for d in range(4):
        r = ratio[direction == d]
        if r.size < max(12, 0.02 * ratio.size):
            continue
        v = percentile(r, _EDGE_PERCENTILE)
        worst = v if worst is None else min(worst, v)
    return percentile(ratio, _EDGE_PERCENTILE) if worst is None else worst


def _steepness(sigma: float, size: int = 200) -> float:
    """Measured steepness of an ideal step (a disc, all orientations) blurred by a Gaussian of `sigma` px."""
    up = 8
    big = np.zeros((size * up, size * up), np.float32)
    cv2.circle(big, (size * up // 2, size * up // 2), size * up // 3, 200.0, -1)
    img = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA) + 20.0
    box = 1.0 / math.sqrt(12.0)  # the area-average sampling above blurs by this much
    extra = math.sqrt(max(sigma * sigma - box * box, 0.0))
    if extra > 0.05:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), extra), dtype=np.float32)
    ratio, direction = _edge_ratios(np.clip(img + 0.5, 0, 255).astype(np.uint8), 0.0)
    return _worst_direction(ratio, direction)


def compute_calibration() -> tuple[np.ndarray, np.ndarray]:
    """Steepness of ideal blurred steps over a grid of σ, to convert a measured steepness back to σ (px).

    Costs ~40 ms, so its result is stored below as `_CALIBRATION`; tests check that the two still agree."""
    sigmas = np.array([0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0])
    steep = np.maximum.accumulate(np.array([_steepness(s) for s in sigmas[::-1]]))[::-1]
    order = np.argsort(steep, kind="stable")
    return steep[order], sigmas[order]


# compute_calibration() of this scorer version (steepness ascending, σ in px).
_CALIBRATION = (
    np.array(
        [
            0.1009669303894043,
            0.10604412108659744,
            0.10988287627696991,
            0.11997714824974537,
            0.12786481902003288,
            0.14002694189548492,
            0.1590297266840935,
            0.19101748019456863,
            0.2133255898952484,
            0.2434578411281109,
            0.28278387188911436,
            0.33251526951789856,
            0.3686436742544174,
            0.41282420307397844,
            0.44959830194711686,
            0.49216277748346327,
            0.5159042119979859,
            0.5159042119979859,
        ]
    ),
    np.array([8.0, 6.0, 5.0, 4.0, 3.5, 3.0, 2.5, 2.0, 1.75, 1.5, 1.25, 1.0, 0.85, 0.7, 0.6, 0.5, 0.3, 0.4]),
)


def edge_sigma(ratio: float) -> float:
    """Gaussian σ (px) of an ideal step with this measured steepness (interpolated on the calibration)."""
    steep, sigmas = _CALIBRATION
    if ratio <= steep[0]:
        return float(sigmas[0] * steep[0] / max(ratio, 1e-6))
    return float(np.interp(ratio, steep, sigmas))


def score_from_sigma(sigma: float) -> float:
    """The blur_score of an edge spread σ (px): SIGMA_AT_100 * 100 / σ, capped at BLUR_CAP; 0 when unmeasurable."""
    if math.isnan(sigma):
        return 0.0
    if sigma <= SIGMA_AT_100 * 100.0 / BLUR_CAP:
        return BLUR_CAP
    return float(SIGMA_AT_100 * 100.0 / sigma)


def blur_sigma(gray: np.ndarray) -> tuple[float, float]:
    """(edge spread σ in px at the viewing scale, noise σ); σ is NaN when the image has no measurable edges."""
    g, k, (h, w) = view_gray(gray)
    sigma, noise, _ = _blur_at_view(g, k, max(h, w), need_fine=False, image=gray)
    return sigma, noise


def _blur_at_view(
    g: np.ndarray, k: int, longest: int, need_fine: bool = True, image: np.ndarray | None = None
) -> tuple[float, float, float]:
    """`blur_sigma` of an image already at the viewing scale (factor `k` of an image `longest` px long), and the
    spread read at the viewing scale alone (what the rotation's stroke filter expects; see `_small_and_skew`).

    Edges softer than ``_COARSEN_ABOVE`` px spread past the ±``_REACH`` px over which their contrast is read, so the
    estimate saturates there (and strong blur leaves no edge at all): they are read again on 2x, 4x, ... area-averaged
    copies, where the same blur spans fewer pixels, and the larger spread counts. So the score keeps falling with
    defocus instead of flattening or dropping to 0. Without `need_fine` (blur only) the third value is a blur
    estimate, not the rotation's.

    With `image` (the full-resolution input of `g`) and a view more than ``_EXACT_ABOVE`` off the viewing scale, the
    blur is read at exactly the viewing scale: the chosen windows are cut from `image` and area-averaged to
    ``VIEW_SIDE / longest`` (see `_view_windows`), and the coarser copies are made from `g` at ``VIEW_SIDE``/2, /4,
    ...; so the pixel-level floor of the edge measure is not magnified by ``k * VIEW_SIDE / longest``. The rotation's
    read (`fine`) stays on `g`, exactly as without `image`."""
    if min(g.shape) < 2 * _REACH + 4:
        return float("nan"), 0.0, float("nan")
    sigma_n = noise_sigma(g)
    pyramid = [g]  # g, g/2, g/4, ...: each computed once, shared by the grain estimates and the coarser re-reads

    def level(i: int) -> np.ndarray:
        while len(pyramid) <= i:
            pyramid.append(downscale_by(pyramid[-1], 2))
        return pyramid[i]

    view = min(1.0, VIEW_SIDE / longest)
    mag = k * view  # px of the viewing scale per px of g: 1 when k == 1, else in [1, 2)
    if image is None or mag <= _EXACT_ABOVE:
        cells = _sharp_cells(g, level(1))
        # The rotation's stroke filter was tuned on the spread of the edges of the busiest windows read together:
        # it keeps getting that (`fine`), from the same edge samples where the windows coincide.
        busy = None if cells is None or not need_fine else _busy_cells(g)
        sigma, fine = _edge_spread(g, sigma_n, cells, busy, level(1))
        if busy is None:
            fine = sigma
        sigma = _coarser_reads(sigma, level, min(g.shape), cells, sigma_n)
        return sigma * k * view, sigma_n, fine * k * view  # (the rotation's `fine` exactly as before)
    # The image at exactly the viewing scale, of which only the chosen windows are made at full detail; its coarser
    # copies (/2, /4, ...) are made from g, which is finer than them.
    h, w = image.shape[:2]
    shape = (max(1, round(h * view)), max(1, round(w * view)))
    view_pyramid: dict[int, np.ndarray] = {}

    def view_level(i: int) -> np.ndarray:
        if i not in view_pyramid:
            if i == 1:
                size = (max(1, round(shape[1] / 2)), max(1, round(shape[0] / 2)))
                view_pyramid[1] = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
            else:
                view_pyramid[i] = downscale_by(view_level(i - 1), 2)
        return view_pyramid[i]

    cells = _sharp_cells(g, level(1), shape[0] * shape[1])
    noise = sigma_n * mag  # area-averaging fewer pixels than g leaves more (white) noise
    pre, resid = _prefilter(_grain_sigma(g, sigma_n, level(1)) * mag, noise)
    sigma = _spread_of_windows(_view_windows(image, cells, view, pre), resid, pre)
    sigma = _coarser_reads(sigma, view_level, min(shape), cells, noise)
    fine = sigma / mag
    if need_fine:  # the rotation's read, exactly as without `image`
        if g.size <= _WINDOW_ABOVE:
            fine = _edge_spread(g, sigma_n, None, None, level(1))[0]
        else:
            fine = _edge_spread(g, sigma_n, [], _busy_cells(g), level(1))[1]
    return sigma, sigma_n, fine * k * view


def _coarser_reads(
    sigma: float, level: Callable[[int], np.ndarray], side: int, cells: list[int] | None, noise: float
) -> float:
    """`sigma` (px of level 0, an image whose shorter side is `side`) after the coarser re-reads: while the spread is
    past what a level's ±``_REACH`` px read can see, the next 2x coarser level (`level(i)`) is read too, in the same
    (in-focus) `cells` while they are large enough to hold edges, and the larger spread counts."""
    step, depth = 1, 0
    while (math.isnan(sigma) or sigma > _COARSEN_ABOVE * step) and side >= 2 * step * _MIN_COARSE_SIDE:
        step, depth = step * 2, depth + 1
        small = level(depth)
        coarse_cells = cells if min(small.shape) >= 4 * _MIN_CELL_SIDE else None
        # Averaging step x step pixels divides white noise by about step.
        coarse = _edge_spread(small, noise / step, coarse_cells, None, level(depth + 1))[0] * step
        if not math.isnan(coarse):
            sigma = coarse if math.isnan(sigma) else max(sigma, coarse)
    return sigma


Window = tuple[np.ndarray, slice, slice]  # an image and the part of it to read edges in (the rest is context)


def _view_windows(image: np.ndarray, cells: list[int] | None, scale: float, pre: float = _PRE_MAX) -> list[Window]:
    """The 4x4-grid `cells` of the full-resolution `image` (all of it when None) as grey windows shrunk by `scale`
    (< 1), each with the edge-reach pad and enough context around it for a pre-filter of σ `pre`.

    Cost stays small: only the cells are converted, first by the largest power-of-two area average that stays at or
    above the target (OpenCV's fast path, colour before grey as in `view_gray`), then by an area average over the
    remaining factor in (0.5, 1]. Area averages throughout, so white noise falls by the linear factor, as the noise
    estimate carried over from the view assumes."""
    img = np.asarray(image)
    if img.dtype != np.uint8:  # rescaled to 8 bits as a whole (a float image's range is read from all of it)
        img = to_gray(img)
    h, w = img.shape[:2]
    pad = _REACH + 2
    margin = math.ceil((pad + math.ceil(4.0 * pre) + 1) / scale)
    pow2 = 1
    while pow2 * 2 * scale <= 1.0:
        pow2 *= 2
    out = []
    for ys, xs in _cell_windows((h, w), cells, pad=0):
        y0, y1 = max(0, ys.start - margin), min(h, ys.stop + margin)
        x0, x1 = max(0, xs.start - margin), min(w, xs.stop + margin)
        crop = img[y0:y1, x0:x1]
        if crop.ndim == 3 and crop.shape[2] in (3, 4):  # 8-bit colour: averaged before the grey conversion
            grey = to_gray(downscale_by(crop, pow2))
        else:
            grey = downscale_by(to_gray(crop), pow2)
        size = (max(1, round(grey.shape[1] * pow2 * scale)), max(1, round(grey.shape[0] * pow2 * scale)))
        if size != (grey.shape[1], grey.shape[0]):
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        gy0 = round((ys.start - y0) * scale) - (pad if ys.start > 0 else 0)
        gy1 = round((ys.stop - y0) * scale) + (pad if ys.stop < h else 0)
        gx0 = round((xs.start - x0) * scale) - (pad if xs.start > 0 else 0)
        gx1 = round((xs.stop - x0) * scale) + (pad if xs.stop < w else 0)
        gh, gw = grey.shape
        out.append((grey, slice(max(0, gy0), min(gh, gy1)), slice(max(0, gx0), min(gw, gx1))))
    return out


def _prefilter(grain: float, sigma_n: float) -> tuple[float, float]:
    """(σ of the Gaussian pre-filter, noise left after it) for an image with this grain and per-pixel noise."""
    if grain > NOISE_MIN:  # denoise so noise does not pose as steepness; its known blur is removed later
        pre = min(_PRE_A + _PRE_B * grain, _PRE_MAX)
        return pre, sigma_n / (2.0 * pre * math.sqrt(math.pi))  # noise left after a Gaussian of σ = pre
    return 0.0, sigma_n


def _spread(parts: list[Samples], resid: float, pre: float) -> float:
    """Edge spread σ (px) of pooled edge samples, the pre-filter's share removed; NaN without enough edges."""
    ratio, direction = _strong_ratios(parts, resid)
    if ratio.size < 12:
        return float("nan")
    sigma = edge_sigma(_worst_direction(ratio, direction))
    return math.sqrt(max(sigma * sigma - _PRE_SEEN * pre * pre, 0.0))


def _spread_of_windows(wins: list[Window], resid: float, pre: float) -> float:
    """Median over `wins` of each window's edge spread (px at the windows' scale) after a pre-filter of σ `pre`
    that leaves noise `resid`; NaN when no window has enough edges."""
    budget = _MAX_EDGES // max(1, len(wins))
    floor = max(2.0, 2.0 * resid)
    per = []
    for img, ys, xs in wins:
        if min(ys.stop - ys.start, xs.stop - xs.start) < 2 * _REACH + 4:
            continue
        s = _spread([_edge_samples(_window(img, ys, xs, pre), floor, budget)], resid, pre)
        if not math.isnan(s):
            per.append(s)
    return float(np.median(per)) if per else float("nan")


def _edge_spread(
    g: np.ndarray,
    sigma_n: float,
    cells: list[int] | None = None,
    pooled: list[int] | None = None,
    half: np.ndarray | None = None,
) -> tuple[float, float]:
    """Edge spread σ (px, at the scale of `g`) of uint8 `g` whose noise σ is `sigma_n`, NaN without enough edges:
    (the median over the 4x4-grid `cells` each read on its own, or the whole image when None; the spread of the
    edges of the `pooled` cells read together, NaN when None). Cells in both are read once. `half` is
    `downscale_by(g, 2)` when already computed."""
    nan = float("nan")
    if min(g.shape) < 2 * _REACH + 4:
        return nan, nan
    pre, resid = _prefilter(_grain_sigma(g, sigma_n, half), sigma_n)
    if cells is None:
        return _spread([_cell_samples(g, None, resid, pre, _MAX_EDGES)], resid, pre), nan
    budget = _MAX_EDGES // _WINDOWS_KEPT
    samples = {c: _cell_samples(g, c, resid, pre, budget) for c in {*cells, *(pooled or [])}}
    # Each cell is judged on its own and the median cell counts: the in-focus cells decide, while a cell that looks
    # sharp by chance (a highlight, a few crisp specks in a motion-blurred photo) does not.
    per = [s for s in (_spread([samples[c]], resid, pre) for c in cells) if not math.isnan(s)]
    together = _spread([samples[c] for c in pooled], resid, pre) if pooled else nan
    return (float(np.median(per)) if per else nan), together


def _grain_sigma(g: np.ndarray, sigma_n: float, half: np.ndarray | None = None) -> float:
    """Noise σ (grey levels) that can pose as steepness: the larger of the per-pixel estimate `sigma_n` and the
    same estimate on a 2x area-average (times 2, as averaging 2x2 halves white noise). JPEG discards the finest
    frequencies of noise, which hides it from the per-pixel estimate, but keeps the coarser grain that the
    half-scale one still sees. `half` is `downscale_by(g, 2)` when already computed."""
    if min(g.shape) < 8:
        return sigma_n
    return max(sigma_n, 2.0 * noise_sigma(downscale_by(g, 2) if half is None else half))


def blur_score(gray: np.ndarray) -> float:
    """Sharpness, higher = sharper: 150 / (edge spread σ in px at the viewing scale); see the module doc."""
    return score_from_sigma(blur_sigma(gray)[0])


# ----------------------------------------------------------------------------------------------- tone
def _tone(g: np.ndarray, hist: np.ndarray | None = None) -> tuple[float, float]:
    """(brightness, contrast) of a uint8 grey image from its histogram (`grey_histogram(g)` when already computed);
    see the module doc for the contrast of a sparse page."""
    hist = (grey_histogram(g) if hist is None else hist).ravel()
    total = float(hist.sum())
    if total <= 0:
        return 0.0, 0.0
    cdf = np.cumsum(hist) / total
    spread = int(np.searchsorted(cdf, 0.99)) - int(np.searchsorted(cdf, 0.01))
    paper = int(np.argmax(hist))
    darkest = int(np.searchsorted(cdf, _SPARSE_INK_SHARE))
    lightest = int(np.searchsorted(cdf, 1.0 - _SPARSE_INK_SHARE))
    sparse_ink = abs((paper - darkest) - (lightest - paper))  # one-sided tail: ink; both-sided: noise
    return float((hist * np.arange(256)).sum() / total / 255.0), max(spread, sparse_ink) / 255.0


def brightness(gray: np.ndarray) -> float:
    """Mean luminance on 0..1."""
    return _tone(downscale(to_gray(gray), ROT_SIDE)[0])[0]


def contrast(gray: np.ndarray) -> float:
    """Spread of luminance on 0..1: 99th minus 1st percentile (robust to a few hot or dead pixels), or the ink of a
    sparse page against its paper (module doc)."""
    return _tone(downscale(to_gray(gray), ROT_SIDE)[0])[1]


def _small_and_skew(
    image: np.ndarray, view: np.ndarray, k_blur: int, longest: int, sigma: float, noise: float
) -> tuple[np.ndarray, np.ndarray, PageRotation]:
    """(grey image at most ROT_SIDE px long, its grey histogram, text skew and orientation) from the viewing-scale
    image and its measured blur and noise."""
    # At most ROT_SIDE px long, but a strip (a text-line crop) keeps at least ROT_MIN_SHORT px across: shrinking a
    # 38 x 798 line by 2 left 19-px-tall lines of 4-px letters, which no search could read.
    k_small = max(1, min(math.ceil(longest / ROT_SIDE), min(image.shape[:2]) // ROT_MIN_SHORT))
    # OpenCV's warps take sides under 32,767 px; never more than the short side (no rows would be left).
    k_small = min(max(k_small, math.ceil(longest / _MAX_ROT_LONG)), max(1, min(image.shape[:2])))
    # The rotation image is made from the viewing-scale one when the factors divide (one area average of the same
    # pixels), else from the full image.
    full: list[np.ndarray] = []  # the full image in grey, made once: the finer reads may ask for several copies

    def full_gray() -> np.ndarray:
        if not full:
            full.append(to_gray(image))
        return full[0]

    small = downscale_by(view, k_small // k_blur) if k_small % k_blur == 0 else downscale_by(full_gray(), k_small)
    blur_small = sigma * max(small.shape) / min(longest, VIEW_SIDE)  # σ is measured at the viewing scale

    def finer(factor: float) -> np.ndarray | None:
        k = max(1, math.floor(k_small / factor))
        return downscale_by(full_gray(), k) if k < k_small else None

    hist = grey_histogram(small)  # shared by the ink-polarity check and the tone scores
    # Averaging k x k pixels divides noise by about k.
    rot_noise = noise * k_blur / k_small
    up = math.ceil(MIN_ROT_SHORT / max(min(small.shape), 1))
    if (
        _MIN_LINE_PX <= min(small.shape) < MIN_ROT_SHORT
        and _STRIP_ASPECT * min(small.shape) <= max(small.shape) <= _MAX_ROT_LONG // up
    ):
        # A line crop under MIN_ROT_SHORT px across (a 318 x 22 crop for a recogniser) is read at an integer
        # multiple of its size: too thin for the stroke masks as it is, it had no answer at all.
        big = cv2.resize(small, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR)
        return small, hist, estimate_rotation(big, rot_noise, blur_small * up, None)
    return small, hist, estimate_rotation(small, rot_noise, blur_small, finer, hist=hist)


def rotation(gray: np.ndarray) -> PageRotation:
    """Skew of the text lines in degrees (counter-clockwise positive, (-45, 45]), page orientation (0/90/180/270)
    and their confidences; NaN when there is no text. See `quality.orientation`."""
    view, k_blur, (h, w) = view_gray(gray)
    _, noise, fine = _blur_at_view(view, k_blur, max(h, w))
    return _small_and_skew(gray, view, k_blur, max(h, w), fine, noise)[2]


def rotation_angle(gray: np.ndarray) -> float:
    """Text skew in degrees, counter-clockwise positive; NaN when no text lines are found."""
    return rotation(gray).angle


def score_image(image: np.ndarray) -> dict[str, float | int]:
    """All scores of one image as a flat dict (the QualityScores columns without path/error)."""
    view, k_blur, (h, w) = view_gray(image)
    sigma, noise, fine = _blur_at_view(view, k_blur, max(h, w), image=image)
    # The stroke filter was tuned with the spread read at the viewing scale alone (which saturates at ~5 px).
    small, hist, rot = _small_and_skew(image, view, k_blur, max(h, w), fine, noise)
    bright, spread = _tone(small, hist)
    return {
        "width": int(w),
        "height": int(h),
        "blur_score": score_from_sigma(sigma),
        "rotation_angle": rot.angle,
        "rotation_confidence": rot.confidence,
        "orientation": rot.orientation,
        "orientation_confidence": rot.orientation_confidence,
        "brightness": bright,
        "contrast": spread,
        "noise": float(noise),
    }
