"""Rolling statistics over metric matrices (rows = steps, columns = series), vectorised with bottleneck.

Every function takes a (steps,) or (steps, series) float array with NaN for missing points and returns an array of
the same shape. The z-scores are calibrated (reported as the Gaussian z of the same tail probability), so one bar
means the same rarity whatever the window; see `rolling_zscore` and `rolling_robust_zscore`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import bottleneck as bn
import numpy as np

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.vocabulary import Direction

__all__ = [
    "EPS",
    "LEVEL_POINTS",
    "MAD_TO_SIGMA",
    "SMOOTH_POINTS",
    "centred_median",
    "drop_from_best",
    "floor_scale",
    "level_at",
    "line_fits",
    "median",
    "move",
    "nonfinite_stretches",
    "rolling_robust_zscore",
    "rolling_robust_zscore_and_median",
    "rolling_zscore",
    "rolling_zscore_and_mean",
    "seen_count",
    "t_to_gaussian_z",
    "window_sums",
    "z_bar",
]

MAD_TO_SIGMA = 1.4826  # median absolute deviation of Gaussian noise x this = its standard deviation
SMOOTH_POINTS = 5  # points in the centred running median behind drop_from_best
SCALE_WINDOWS = 4  # the spread behind a robust z-score is estimated on this many windows of past points
EPS = 1e-12


def median(x: np.ndarray) -> float:
    """`np.median` of a 1-D array, the same value (up to the sign of a zero), without its call overhead: the
    detectors take a few dozen medians of short slices per series, and on 1,000-point series numpy's median
    costs more in argument handling than in selection."""
    return float(bn.median(x))


LEVEL_POINTS = 10  # points each side of a change whose level is the value before / after it (events, root causes)
WARMUP_MIN = 5  # warm-up points at the start of a series, at least ...
WARMUP_SHARE = 0.02  # ... or this share of it, whichever is more (LABELLING.md: a transient, neither regime nor spike)


def nonfinite_stretches(nonfinite: np.ndarray) -> tuple[np.ndarray, int]:
    """Of one series' NaN/Inf mask (its logged values in order): the mask of its leading stretch (NaN/Inf from the
    first value until a finite one; all False when the series starts finite or never turns finite) and how many of
    its other stretches are followed by a finite value: `vocabulary.nonfinite_severity`'s `leading` and
    `recoveries`."""
    nf = np.asarray(nonfinite, dtype=bool).ravel()
    lead = np.zeros(nf.shape, dtype=bool)
    if nf.size and nf[0] and not nf.all():
        lead[: int(np.argmin(nf))] = True
    recoveries = int(np.count_nonzero(nf[:-1] & ~nf[1:])) - int(lead.any())
    return lead, recoveries


def warmup_points(n: int) -> int:
    """Points at the start of a series treated as warm-up: max(5, 2 % of n), never more than a tenth of it."""
    return min(max(WARMUP_MIN, math.ceil(WARMUP_SHARE * n)), n // 10)


TREND_SIGMAS = 3.0  # a stretch whose slope moves it by more than this many noise sigmas trends (see level_at)


def window_sums(y: np.ndarray) -> np.ndarray:
    """Prefix sums of (1, t, t^2, y, t y, y^2), one row per prefix length (row 0 is zeros), for `line_fits`; y is
    centred first so the residual sums do not cancel catastrophically."""
    t = np.arange(y.size, dtype=float)
    y = y - float(np.mean(y))
    cols = np.stack([np.ones_like(t), t, t * t, y, t * y, y * y], axis=1)
    return np.vstack([np.zeros(6), np.cumsum(cols, axis=0)])


def line_fits(sums: np.ndarray, a: np.ndarray, b: np.ndarray, rss: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(OLS slope of y on t, residual sd of that line; empty without `rss`) over each window [a, b)."""
    s0, s1, s2, sy, sty, syy = (sums[b] - sums[a]).T
    det = np.maximum(s0 * s2 - s1 * s1, 1e-300)
    slope = (s0 * sty - s1 * sy) / det
    if not rss:
        return slope, np.empty(0)
    # Residual sum of squares of the line: Syy - Sy^2 / n - slope^2 * (S2 - S1^2 / n).
    resid = syy - sy * sy / s0 - slope * slope * det / s0
    return slope, np.sqrt(np.maximum(resid, 0.0) / np.maximum(s0 - 2.0, 1.0))


def level_at(positions: np.ndarray, values: np.ndarray, at: float) -> float:
    """The level of a short stretch (`values` at `positions`, NaN/Inf left out) at position `at`, for the values
    before and after a change: their median, or where the stretch clearly trends (its Theil-Sen slope moves it by
    more than `TREND_SIGMAS` noise sigmas over its length: a learning curve still rising or falling) its points
    carried along that slope to `at`, then their median. On a curve still falling, the medians of the stretches
    before and after a jump above it read the trend, not the jump, and called a rise a fall. The level stays within
    the stretch's own values: a curve that accelerates away from a floor (a PaddleOCR edit distance leaving 2e-06)
    has a steep median slope that, carried back, read a level of -3e-04 and called the rise a fall. NaN when empty."""
    ok = np.isfinite(values)
    t, v = np.asarray(positions, dtype=np.float64)[ok], np.asarray(values, dtype=np.float64)[ok]
    if v.size < 4:
        return float(np.median(v)) if v.size else float("nan")
    dt, dv = np.subtract.outer(t, t), np.subtract.outer(v, v)
    later = dt > 0
    slope = float(np.median(dv[later] / dt[later])) if later.any() else 0.0
    resid = v - slope * t
    noise = MAD_TO_SIGMA * float(np.median(np.abs(resid - np.median(resid))))
    if abs(slope) * float(t[-1] - t[0]) <= TREND_SIGMAS * noise:
        return float(np.median(v))
    return float(np.clip(np.median(v + slope * (at - t)), v.min(), v.max()))


def move(fn: Callable[..., np.ndarray], x: np.ndarray, window: int, min_count: int, **kw: Any) -> np.ndarray:
    """A bottleneck moving-window function along axis 0 that accepts windows longer than the series."""
    n = x.shape[0]
    if n == 0:
        return x.copy()
    w = max(1, min(window, n))
    return fn(x, w, min_count=max(1, min(min_count, w)), axis=0, **kw)


def _shift(a: np.ndarray) -> np.ndarray:
    """Row i gets row i-1 (statistics of the window *before* each point)."""
    out = np.empty_like(a)
    if a.shape[0]:
        out[0] = np.nan
        out[1:] = a[:-1]
    return out


def _min_count(window: int, warmup: int) -> int:
    return max(3, min(window, max(warmup, 3)))


def floor_scale(scale: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Keep denominators away from zero: constant stretches still flag real jumps, not float dust.

    An unknown scale (NaN: too few points yet) stays unknown, so no z is computed there.
    """
    return np.maximum(scale, 1e-6 * np.fmax(np.abs(level), 1.0))


def seen_count(values: np.ndarray) -> np.ndarray:
    """How many finite points each series has shown up to and including each row."""
    return np.cumsum(np.isfinite(values), axis=0)


def rolling_zscore(values: np.ndarray, window: int, warmup: int) -> np.ndarray:
    """z of each point against the mean/std of the previous `window` finite points (NaN before warm-up).

    `values` is (steps,) or (steps, series) with NaN for missing points. A std from a few points makes
    (x - mean) / std Student-t distributed, with far heavier tails than a Gaussian; the result is therefore
    the Gaussian z with the same tail probability, so "|z| > 3" means the same rarity for any window.
    """
    return rolling_zscore_and_mean(values, window, warmup)[0]


def rolling_zscore_and_mean(values: np.ndarray, window: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """(z, the window mean each point was compared with)."""
    x = np.asarray(values, dtype=float)
    minc = _min_count(window, warmup)
    mean = _shift(move(bn.move_mean, x, window, minc))
    std = _shift(move(bn.move_std, x, window, minc, ddof=1))
    count = _shift(move(bn.move_sum, np.isfinite(x).astype(float), window, 1))
    # x - mean has variance sigma^2 (1 + 1/count): the window mean carries noise too.
    with np.errstate(all="ignore"):
        t = (x - mean) / (floor_scale(std, mean) * np.sqrt(1.0 + 1.0 / np.fmax(count, 1.0)))
    z = _t_to_z(t, count - 1.0)
    return np.where(seen_count(x) > warmup, z, np.nan), mean


def _t_to_z(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Gaussian z with the same two-sided tail probability as Student t with `df` degrees of freedom.

    Only |t| > 1.5 is converted (the two agree closely below, far under any sensible bar): this keeps a
    run-level pass over millions of points fast.
    """
    out = np.array(t, dtype=float, copy=True)
    ok = np.isfinite(t) & (df >= 1) & (np.abs(t) > 1.5)
    if ok.any():
        tt, dd = t[ok], df[ok]
        with np.errstate(all="ignore"):
            z = t_to_gaussian_z(np.abs(tt), dd)
        # Beyond float precision the tail probability underflows: keep t, which is already enormous there.
        z = np.where(np.isfinite(z), z, np.abs(tt))
        out[ok] = np.sign(tt) * np.minimum(z, np.abs(tt))
    return out


def t_to_gaussian_z(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """`stats.norm.isf(stats.t.sf(t, df))` for df >= 1: the Gaussian z with the upper tail of Student t. The
    special functions those distributions call, without their per-call argument checks (a wide table makes
    thousands of small calls); scipy is imported on first use, so importing the findings stays cheap."""
    from scipy import special

    return -special.ndtri(special.stdtr(df, -np.asarray(t, dtype=float)))


def rolling_robust_zscore(values: np.ndarray, window: int, warmup: int) -> np.ndarray:
    """Robust z against the median of the previous `window` points (NaN before warm-up).

    The scale is the median absolute deviation of the recent points from their own trailing medians, over
    `SCALE_WINDOWS` windows: outliers barely move it, while a steadily rising learning curve (whose points sit
    above a lagging median) widens it, so healthy trends are not flagged as improvements.
    """
    return rolling_robust_zscore_and_median(values, window, warmup)[0]


def rolling_robust_zscore_and_median(values: np.ndarray, window: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """(robust z, the window median each point was compared with)."""
    x = np.asarray(values, dtype=float)
    minc = _min_count(window, warmup)
    med = _shift(move(bn.move_median, x, window, minc))
    dev = np.abs(x - med)
    scale = _shift(move(bn.move_median, dev, SCALE_WINDOWS * window, 3)) * MAD_TO_SIGMA
    # A locally constant window (scale 0) falls back to the mean deviation (still 0 if truly flat).
    mean_scale = _shift(move(bn.move_mean, dev, SCALE_WINDOWS * window, 3)) * 1.2533
    scale = np.where(scale > 0, scale, mean_scale)
    z = (x - med) / floor_scale(scale, med)
    # A MAD from k points is about as reliable as a standard deviation from 0.37 k points (its Gaussian
    # efficiency): convert like a t with that many degrees of freedom, so the tail rate matches the bar.
    k = _shift(move(bn.move_sum, np.isfinite(dev).astype(float), SCALE_WINDOWS * window, 1))
    z = _t_to_z(z, np.maximum(0.37 * k - 1.0, 1.0))
    return np.where(seen_count(x) > warmup, z, np.nan), med


def centred_median(x: np.ndarray, window: int) -> np.ndarray:
    """Running median centred on each row (post-hoc: a sustained drop shows from its first point on).

    Near the ends the window shrinks to the points that exist.
    """
    n = x.shape[0]
    h = window // 2
    if n == 0 or h == 0:
        return x.copy()
    padded = np.concatenate([x, np.full((h, *x.shape[1:]), np.nan)], axis=0)
    return move(bn.move_median, padded, 2 * h + 1, 1)[h:]


def drop_from_best(
    values: np.ndarray, direction: Direction, smooth: int = SMOOTH_POINTS, smoothed: np.ndarray | None = None
) -> np.ndarray:
    """Relative degradation (>= 0) of the running median from its running best; NaN where undefined."""
    x = np.asarray(values, dtype=float)
    sm = smoothed if smoothed is not None else (centred_median(x, smooth) if smooth > 1 else x)
    with np.errstate(all="ignore"):
        if direction == "higher_is_better":
            best = np.fmax.accumulate(sm, axis=0)
            drop = (best - sm) / np.abs(best)
        else:
            best = np.fmin.accumulate(sm, axis=0)
            drop = (sm - best) / np.abs(best)
    return np.where((np.abs(best) > EPS) & np.isfinite(x), drop, np.nan)


def z_bar(cfg: AnomalyDetectionConfig, n: int | np.ndarray) -> np.ndarray:
    """The |z| a point must exceed on a series of n points.

    max(statistical_anomaly_zscore, sqrt(2 ln n)) when `zscore_length_adjusted` (the expected maximum of n
    Gaussian noise values): a healthy 10,000-step series does not raise dozens of alarms.
    """
    base = np.full(np.shape(n), cfg.statistical_anomaly_zscore, dtype=float)
    if not cfg.zscore_length_adjusted:
        return base
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    return np.fmax(base, np.sqrt(2.0 * np.log(n)))
