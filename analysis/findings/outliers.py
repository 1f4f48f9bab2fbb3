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
which is never exactly Gaussian. The first `series_stats.warmup_points(n)` points (max(5, 2 % of n), as for change
points) are never outliers: a warm-up transient has only one side to compare, and the start of training is
transient anyway (real test sides of batches 1-15, seen: 33 spikes flagged there, 5 of them labelled).
"""

from __future__ import annotations

import functools
import math

import bottleneck as bn
import numpy as np

from analysis.findings.series_stats import warmup_points

__all__ = ["outlier_indices", "outlier_mask", "point_outlier_z"]

_ABS_DIFF_TO_SIGMA = 1.0 / 0.9539  # median |x_t - x_{t-1}| of Gaussian noise is 0.9539 sigma
TAIL_SHARE = 0.01  # the series-wide scale floor is the (1 - share) quantile of |residual| ...
TAIL_POINTS = 5  # ... leaving at least this many points above it (short series), scaled to its Gaussian value
_BAR_MARGIN = 1.0  # sigmas added to sqrt(2 ln n)
_MIN_BAR = 4.0


def _side_medians(x: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of the h points before and of the h points after every point, along the last axis (NaN-aware; NaN
    off the ends)."""
    n = x.shape[-1]
    pad = np.full((*x.shape[:-1], n + 2 * h), np.nan)
    pad[..., h : h + n] = x
    m = bn.move_median(pad, h, min_count=1, axis=-1)  # m[k] = median of pad[k-h+1 .. k]
    return m[..., h - 1 : h - 1 + n], m[..., 2 * h : 2 * h + n]


def _centred_move_median(x: np.ndarray, half: int) -> np.ndarray:
    n = x.shape[-1]
    pad = np.full((*x.shape[:-1], n + half), np.nan)
    pad[..., :n] = x
    return bn.move_median(pad, min(2 * half + 1, pad.shape[-1]), min_count=1, axis=-1)[..., half : half + n]


@functools.lru_cache(maxsize=256)
def _gaussian_isf(p: float) -> float:
    """`scipy.stats.norm.isf(p)` for 0 < p < 1 (the special function it calls, imported on first use; cached:
    one value per series length)."""
    from scipy import special

    return -float(special.ndtri(p))


def point_outlier_z(x: np.ndarray, half: int = 5, scale_half: int = 25) -> np.ndarray:
    """How far each point stands out from *both* sides, in units of the local noise (NaN where unknown).

    A spike is far from the median of the points before it and from the median of the points after it; the
    first point of a new level is close to the points after it, so level shifts are not outliers. The noise is
    the local median |first difference| (trend- and step-free, and it follows a variance increase).
    `x` is one series, or a (series, points) array whose rows are read independently (the same numbers as one
    call per row, in a handful of array operations).
    """
    with np.errstate(all="ignore"):  # huge values (1e308) may overflow to Inf: they are outliers anyway
        return _point_outlier_z(np.asarray(x, dtype=float), half, scale_half)


def _tail_floor(resid: np.ndarray) -> np.ndarray:
    """Per row (last axis): the series-wide scale floor from the tail of |residual| (NaN: too few points)."""
    rows = resid.reshape(-1, resid.shape[-1])
    finite = np.isfinite(rows)
    counts = finite.sum(axis=1)
    out = np.full(rows.shape[0], np.nan)

    def floor(values: np.ndarray, size: int) -> np.ndarray | float:
        q = 1.0 - max(TAIL_SHARE, TAIL_POINTS / size)
        return np.quantile(values, q, axis=-1) / _gaussian_isf((1.0 - q) / 2.0)

    full = np.flatnonzero(counts == rows.shape[1])
    if rows.shape[1] >= 10 and full.size:  # the common case: every residual finite, one quantile for all rows
        out[full] = floor(np.abs(rows[full]), rows.shape[1])
    for i in np.flatnonzero((counts != rows.shape[1]) & (counts >= 10)):
        out[i] = floor(np.abs(rows[i][finite[i]]), int(counts[i]))
    return out.reshape(resid.shape[:-1])


def _point_outlier_z(x: np.ndarray, half: int, scale_half: int) -> np.ndarray:
    h = max(1, min(half, x.shape[-1] - 1))
    left, right = _side_medians(x, h)
    dl, dr = x - left, x - right
    # Both sides known: the nearer side's distance when x lies beyond both medians the same way, else 0; one
    # side known: that side's distance; neither: 0. (Written in place: a wide table's matrix has millions of points.)
    sign_l = np.sign(dl)
    resid = np.fmin(np.abs(dl), np.abs(dr))
    resid *= sign_l
    resid[sign_l != np.sign(dr)] = 0.0  # also where either side is NaN
    nan_l, nan_r = np.isnan(dl), np.isnan(dr)
    np.copyto(resid, dr, where=nan_l & ~nan_r)
    np.copyto(resid, dl, where=nan_r & ~nan_l)
    diffs = np.abs(np.diff(x, prepend=np.nan, axis=-1))
    scale = _centred_move_median(diffs, scale_half)
    scale *= _ABS_DIFF_TO_SIGMA
    # The side medians carry noise as well: x - median of h points has variance sigma^2 (1 + pi / 2h).
    scale *= math.sqrt(1.0 + math.pi / (2.0 * h))
    # fmax with NaN (no floor: under 10 finite residuals) keeps the scale as it is
    scale = np.fmax(scale, _tail_floor(resid)[..., None])
    finite = np.isfinite(x)
    level = np.max(np.abs(np.where(finite, x, 0.0)), axis=-1, initial=0.0)  # 0 when nothing is finite
    with np.errstate(all="ignore"):
        return resid / np.fmax(scale, (1e-9 * np.maximum(level, 1.0))[..., None])


def outlier_mask(values: np.ndarray, *, threshold: float | None = None) -> np.ndarray:
    """`outlier_indices` as a boolean mask along the last axis: for a (series, points) array, every row at once."""
    x = np.asarray(values, dtype=float)
    n = x.shape[-1]
    bad = ~np.isfinite(x)
    if n < 5:
        return bad
    z = point_outlier_z(np.where(bad, np.nan, x))
    thr = threshold if threshold is not None else max(_MIN_BAR, math.sqrt(2.0 * math.log(n)) + _BAR_MARGIN)
    flags = bad | (np.abs(z) > thr)  # NaN (unknown) compares False
    warm = warmup_points(n)
    flags[..., :warm] &= bad[..., :warm]
    return flags


def outlier_indices(values: np.ndarray, *, threshold: float | None = None) -> list[int]:
    """Indices of isolated anomalous points (spikes/dips) in a 1-D series, plus NaN/Inf positions.

    The threshold defaults to the larger of 4 and sqrt(2 ln n) + 1 (sqrt(2 ln n) is the expected maximum of n
    Gaussian noise values), so long healthy series do not raise a false alarm every few hundred points. NaN/Inf
    positions are always returned; finite points among the first `warmup_points(n)` never are.
    """
    x = np.asarray(values, dtype=float).ravel()
    return np.flatnonzero(outlier_mask(x, threshold=threshold)).tolist()
