"""Isolated point outliers (spikes and dips) in one series, judged after the fact from both sides.

Unlike the run-level z-scores (which only see the past), `outlier_indices` knows the neighbours on both sides of a
point, so the first point of a new level is not mistaken for a spike. Change-point detection uses it to leave
spikes out before segmenting.

Calibration on real curves (tuned on the `tune` split of `benchmarks/data/curves`, see `benchmarks/real_curves.py`):
the local noise is the running median |first difference| (trend- and step-free), but it is never taken below a
series-wide tail floor: the (1 - q) quantile of |residual|, q = max(`TAIL_SHARE`, `TAIL_POINTS` / n), divided by
the same quantile of |N(0, 1)|. On Gaussian noise the floor equals the noise and changes nothing; on a floor of
identical values with frequent small blips the median difference is 0, the floor is the blip size, and the blips
are the series' ordinary noise, not dozens of outliers; on heavy-tailed per-step losses it lifts the scale to the
tail. At least `TAIL_POINTS` points stay above the floor, so a short series keeps its few real spikes. The bar is
sqrt(2 ln n) + 1 (at least 4): the expected maximum of n Gaussian values plus one sigma of margin for real noise,
which is never exactly Gaussian. The first `WARMUP_POINTS` points are never outliers (a warm-up transient has
only one side to compare).
"""

from __future__ import annotations

import math

import bottleneck as bn
import numpy as np
from scipy import stats

__all__ = ["outlier_indices", "point_outlier_z"]

_ABS_DIFF_TO_SIGMA = 1.0 / 0.9539  # median |x_t - x_{t-1}| of Gaussian noise is 0.9539 sigma
TAIL_SHARE = 0.01  # the series-wide scale floor is the (1 - share) quantile of |residual| ...
TAIL_POINTS = 5  # ... leaving at least this many points above it (short series), scaled to its Gaussian value
_BAR_MARGIN = 1.0  # sigmas added to sqrt(2 ln n)
_MIN_BAR = 4.0
WARMUP_POINTS = 3


def _side_medians(x: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of the h points before and of the h points after every point (NaN-aware; NaN off the ends)."""
    n = x.size
    pad = np.r_[np.full(h, np.nan), x, np.full(h, np.nan)]
    m = bn.move_median(pad, h, min_count=1)  # m[k] = median of pad[k-h+1 .. k]
    return m[h - 1 : h - 1 + n], m[2 * h : 2 * h + n]


def _centred_move_median(x: np.ndarray, half: int) -> np.ndarray:
    n = x.size
    pad = np.r_[x, np.full(half, np.nan)]
    return bn.move_median(pad, min(2 * half + 1, pad.size), min_count=1)[half : half + n]


def point_outlier_z(x: np.ndarray, half: int = 5, scale_half: int = 25) -> np.ndarray:
    """How far each point stands out from *both* sides, in units of the local noise (NaN where unknown).

    A spike is far from the median of the points before it and from the median of the points after it; the
    first point of a new level is close to the points after it, so level shifts are not outliers. The noise is
    the local median |first difference| (trend- and step-free, and it follows a variance increase).
    """
    with np.errstate(all="ignore"):  # huge values (1e308) may overflow to Inf: they are outliers anyway
        return _point_outlier_z(x, half, scale_half)


def _point_outlier_z(x: np.ndarray, half: int, scale_half: int) -> np.ndarray:
    h = max(1, min(half, x.size - 1))
    left, right = _side_medians(x, h)
    dl, dr = x - left, x - right
    one_sided = np.where(np.isnan(dl), dr, np.where(np.isnan(dr), dl, np.nan))
    same_side = np.sign(dl) == np.sign(dr)
    resid = np.where(
        np.isnan(one_sided), np.where(same_side, np.sign(dl) * np.fmin(np.abs(dl), np.abs(dr)), 0.0), one_sided
    )
    diffs = np.abs(np.diff(x, prepend=np.nan))
    scale = _centred_move_median(diffs, scale_half) * _ABS_DIFF_TO_SIGMA
    # The side medians carry noise as well: x - median of h points has variance sigma^2 (1 + pi / 2h).
    scale = scale * math.sqrt(1.0 + math.pi / (2.0 * h))
    spread = np.abs(resid[np.isfinite(resid)])
    if spread.size >= 10:
        q = 1.0 - max(TAIL_SHARE, TAIL_POINTS / spread.size)
        scale = np.fmax(scale, float(np.quantile(spread, q)) / float(stats.norm.isf((1.0 - q) / 2.0)))
    finite = x[np.isfinite(x)]
    level = float(np.max(np.abs(finite))) if finite.size else 1.0
    with np.errstate(all="ignore"):
        return resid / np.fmax(scale, 1e-9 * max(level, 1.0))


def outlier_indices(values: np.ndarray, *, threshold: float | None = None) -> list[int]:
    """Indices of isolated anomalous points (spikes/dips) in a 1-D series, plus NaN/Inf positions.

    The threshold defaults to the larger of 4 and sqrt(2 ln n) + 1 (sqrt(2 ln n) is the expected maximum of n
    Gaussian noise values), so long healthy series do not raise a false alarm every few hundred points. NaN/Inf
    positions are always returned; finite points among the first `WARMUP_POINTS` never are.
    """
    x = np.asarray(values, dtype=float).ravel()
    n = x.size
    if n == 0:
        return []
    bad = ~np.isfinite(x)
    if n < 5:
        return [int(i) for i in np.flatnonzero(bad)]
    z = point_outlier_z(np.where(bad, np.nan, x))
    thr = threshold if threshold is not None else max(_MIN_BAR, math.sqrt(2.0 * math.log(n)) + _BAR_MARGIN)
    flags = bad | (np.abs(np.nan_to_num(z, nan=0.0)) > thr)
    flags[:WARMUP_POINTS] &= bad[:WARMUP_POINTS]
    return [int(i) for i in np.flatnonzero(flags)]
