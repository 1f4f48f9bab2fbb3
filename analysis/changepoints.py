"""Change points in metric series with ruptures, used carefully -> `ChangePoint` records.

How `change_points` finds level shifts in one series:
1. Non-finite values are dropped (indices map back to the original positions).
2. The noise level sigma comes from the MAD of first differences, which steps and smooth trends barely move.
3. Candidates come from ruptures' C implementation `KernelCPD(kernel="linear")` (the l2 cost) with `jump=1`,
   a minimum segment length and a BIC-like penalty `pen = beta * sigma^2 * ln(n)`. Long series are first
   averaged in blocks (the noise shrinks, steps stay) and each break is refined on the raw points.
4. Every candidate must then show an abrupt jump: in a local window we fit "common slope + step at t" (plus the
   other candidates as steps) and keep t only when the step is large against the noise. A healthy rising learning
   curve changes smoothly, so its candidates fit a slope and no step and are dropped.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import ruptures as rpt

from analysis.anomalies import metric_direction
from analysis.config import AnomalyDetectionConfig
from analysis.records import ChangePoint, Severity

_MAD_TO_SIGMA = 1.4826
_MAX_POINTS = 1000  # longer series are block-averaged to about this many points before segmentation
_PEN_BETA = 3.0  # penalty multiplier of sigma^2 ln n
_MIN_JUMP_SIGMA = 1.0  # a kept step is at least this many noise sigmas ...
_MIN_T = 4.0  # ... and this many standard errors
_WINDOW = 30  # points each side used to validate a step


def noise_sigma(x: np.ndarray) -> float:
    """Robust noise level of a series from the MAD of its first differences (0 for a constant series)."""
    d = np.diff(x)
    if d.size == 0:
        return 0.0
    return float(_MAD_TO_SIGMA * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))


def _segment(x: np.ndarray, pen: float, min_size: int) -> list[int]:
    """Candidate break indices (start of a new segment) from ruptures' C KernelCPD with jump=1."""
    if x.size < 2 * min_size:
        return []
    bkps = rpt.KernelCPD(kernel="linear", min_size=min_size, jump=1).fit(x).predict(pen=pen)
    return [int(b) for b in bkps[:-1]]


def _detect(x: np.ndarray, penalty: float | None, min_size: int) -> list[int]:
    """Segment, then keep only abrupt steps; x is finite and not constant."""
    n = x.size
    sigma = max(noise_sigma(x), 1e-3 * float(np.std(x)))
    # Piecewise-constant data (sigma 0) still needs a finite penalty: hence the floor on sigma above.
    pen = penalty if penalty is not None else _PEN_BETA * sigma * sigma * math.log(n)
    return _validate(x, _segment(x, pen, min_size), sigma)


def _refine(x: np.ndarray, guess: int, block: int, min_size: int) -> int:
    """Best single split (least squares) of the raw points within one block of a coarse break."""
    lo, hi = max(min_size, guess - block), min(x.size - min_size, guess + block)
    if hi <= lo:
        return guess
    left, right = max(0, lo - 2 * block), min(x.size, hi + 2 * block)
    seg = x[left:right]
    cs, cs2 = np.cumsum(seg), np.cumsum(seg * seg)
    total, total2, n = cs[-1], cs2[-1], seg.size
    best, best_cost = guess, math.inf
    for t in range(lo, hi + 1):
        k = t - left
        if k <= 0 or k >= n:
            continue
        s1, q1 = cs[k - 1], cs2[k - 1]
        s2, q2 = total - s1, total2 - q1
        cost = (q1 - s1 * s1 / k) + (q2 - s2 * s2 / (n - k))
        if cost < best_cost:
            best, best_cost = t, cost
    return best


def _step_stats(x: np.ndarray, t: int, others: list[int], window: int) -> tuple[float, float]:
    """(step size, t-statistic) of a step at t in a local fit with a common slope and the other steps."""
    # A symmetric window keeps curvature (even) apart from the step (odd) even near the ends.
    half = min(window, t, x.size - t)
    lo, hi = t - half, t + half
    idx = np.arange(lo, hi)
    y = x[lo:hi]
    u = (idx - t) / max(window, 1)
    # Common level, slope and curvature: a smooth learning curve is explained without any step.
    cols = [np.ones_like(y), u, u * u, (idx >= t).astype(float)]
    cols += [(idx >= o).astype(float) for o in others if lo < o < hi and o != t]
    design = np.column_stack(cols)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = max(1, y.size - design.shape[1])
    s2 = float(resid @ resid) / dof
    try:
        cov = s2 * np.linalg.inv(design.T @ design)
        se = math.sqrt(max(cov[3, 3], 0.0))
    except np.linalg.LinAlgError:
        return float(coef[3]), 0.0
    step = float(coef[3])
    return step, (abs(step) / se if se > 0 else math.inf)


def change_points(values: np.ndarray, *, penalty: float | None = None, min_size: int = 3) -> list[int]:
    """Indices where a new segment starts (no trailing n). Smooth trends are not cut into steps."""
    raw = np.asarray(values, dtype=float).ravel()
    keep = np.flatnonzero(np.isfinite(raw))
    x = raw[keep]
    n = x.size
    min_size = max(2, int(min_size))
    if n < 2 * min_size:
        return []
    if float(np.std(x)) == 0.0:
        return []
    if n <= _MAX_POINTS:
        kept = _detect(x, penalty, min_size)
    else:
        # Long series: find and validate breaks on block means (noise shrinks, steps stay), then refine each
        # break on the raw points. A user penalty is in raw units; the block cost is `block` times smaller.
        block = int(math.ceil(n / _MAX_POINTS))
        m = n // block
        means = x[: m * block].reshape(m, block).mean(axis=1)
        coarse = _detect(means, None if penalty is None else penalty / block,
                         max(2, int(math.ceil(min_size / block))))
        kept = sorted({_refine(x, b * block, block, min_size) for b in coarse})
    return [int(keep[t]) for t in kept]


def _validate(x: np.ndarray, candidates: list[int], sigma: float) -> list[int]:
    """Drop candidates without an abrupt step; re-test the survivors until stable."""
    kept = sorted(set(candidates))
    for _ in range(5):
        nxt = []
        for t in kept:
            step, tstat = _step_stats(x, t, kept, _WINDOW)
            if abs(step) >= _MIN_JUMP_SIGMA * sigma and tstat >= _MIN_T:
                nxt.append(t)
        if nxt == kept:
            break
        kept = nxt
    return kept


# ------------------------------------------------------------------------------------------ run-level API
def _local_means(x: np.ndarray, t: int, prev: int, nxt: int) -> tuple[float, float]:
    """Means of up to `_WINDOW` points before and after t, inside the neighbouring segments."""
    before = x[max(prev, t - _WINDOW):t]
    after = x[t:min(nxt, t + _WINDOW)]
    return float(np.mean(before)), float(np.mean(after))


def _severity(metric: str, before: float, after: float, cfg: AnomalyDetectionConfig) -> Severity:
    higher = metric_direction(metric, cfg) == "higher_is_better"
    worse = (after < before) if higher else (after > before)
    if not worse:
        return "info"
    rel = abs(after - before) / max(abs(before), 1e-12)
    if rel >= 3.0 * cfg.performance_drop_threshold:
        return "critical"
    return "warning" if rel >= cfg.performance_drop_threshold else "info"


def series_change_points(steps: np.ndarray, values: np.ndarray, metric: str, batch: int | None,
                         cfg: AnomalyDetectionConfig) -> list[ChangePoint]:
    """ChangePoint records for one series (steps and values aligned; non-finite values are skipped)."""
    steps = np.asarray(steps)
    vals = np.asarray(values, dtype=float)
    ok = np.isfinite(vals)
    steps, vals = steps[ok], vals[ok]
    idx = change_points(vals, penalty=cfg.change_point_penalty, min_size=cfg.change_point_min_size)
    out = []
    bounds = [0] + idx + [vals.size]
    for k, t in enumerate(idx):
        before, after = _local_means(vals, t, bounds[k], bounds[k + 2])
        out.append(ChangePoint(step=int(steps[t]), metric=metric, mean_before=before, mean_after=after,
                               delta=after - before, batch=batch,
                               severity=_severity(metric, before, after, cfg)))
    return out


def find_change_points(batches: pd.DataFrame, global_metrics: pd.DataFrame,
                       cfg: AnomalyDetectionConfig | None = None) -> list[ChangePoint]:
    """Change points of every batch series (per metric) and every global metric, sorted by step."""
    cfg = cfg or AnomalyDetectionConfig()
    out: list[ChangePoint] = []
    for key, long in (("batch", batches), (None, global_metrics)):
        if long is None or long.empty:
            continue
        frame = long.dropna(subset=["step"]).drop_duplicates(
            subset=["step", "metric"] + ([key] if key else []), keep="last")
        frame = frame.sort_values("step", kind="stable")
        group_cols = ["metric", key] if key else ["metric"]
        for names, part in frame.groupby(group_cols, sort=True):
            names = names if isinstance(names, tuple) else (names,)
            metric = str(names[0])
            batch = int(names[1]) if key else None
            out.extend(series_change_points(part["step"].to_numpy(), part["value"].to_numpy(dtype=float),
                                            metric, batch, cfg))
    out.sort(key=lambda c: (c.step, -1 if c.batch is None else c.batch, c.metric))
    return out
