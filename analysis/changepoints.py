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
from scipy import stats

from analysis.anomalies import metric_direction, metric_matrices, outlier_indices
from analysis.config import AnomalyDetectionConfig
from analysis.records import ChangePoint, Severity

_MAD_TO_SIGMA = 1.4826
_MAX_POINTS = 500  # longer series are block-averaged to about this many points before segmentation
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


def _refine(x: np.ndarray, guess: int, block: int, min_size: int, lo_bound: int, hi_bound: int) -> int:
    """Best single split (least squares) of the raw points within one block of a coarse break.

    The split is scored on up to `_WINDOW` blocks of context each side, never crossing the neighbouring breaks.
    """
    lo, hi = max(min_size, guess - block), min(x.size - min_size, guess + block)
    if hi <= lo:
        return guess
    ctx = _WINDOW * block
    left, right = max(lo_bound, lo - ctx), min(hi_bound, hi + ctx)
    seg = x[left:right]
    n = seg.size
    ks = np.arange(lo, hi + 1) - left
    ks = ks[(ks > 0) & (ks < n)]
    if ks.size == 0:
        return guess
    cs, cs2 = np.cumsum(seg), np.cumsum(seg * seg)
    s1, q1 = cs[ks - 1], cs2[ks - 1]
    s2, q2 = cs[-1] - s1, cs2[-1] - q1
    cost = (q1 - s1 * s1 / ks) + (q2 - s2 * s2 / (n - ks))
    return int(left + ks[int(np.argmin(cost))])


def step_stats(x: np.ndarray, cands: np.ndarray, window: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Size and t-statistic of a step at each candidate, all candidates solved at once.

    Each candidate t gets a symmetric window t-h .. t+h-1 (h = min(window, t, n - t)); the local model is
    level + slope + curvature + step at t + a step at every other candidate inside the window. The symmetric
    window keeps curvature (even around t) apart from the step (odd), so a smooth learning curve fits with no
    step, and the other candidates' dummies stop a neighbouring real step from leaking into this one.
    """
    t = np.asarray(cands, dtype=np.int64)
    k, n = t.size, x.size
    if k == 0:
        return np.zeros(0), np.zeros(0)
    offs = np.arange(-window, window)
    pos = t[:, None] + offs[None, :]  # (k, 2w)
    half = np.minimum(window, np.minimum(t, n - t))
    inside = (offs[None, :] >= -half[:, None]) & (offs[None, :] < half[:, None])
    w = inside.astype(float)
    y = np.where(inside, x[np.clip(pos, 0, n - 1)], 0.0)
    u = np.broadcast_to(offs / window, pos.shape)
    base = [np.ones(pos.shape), u, u * u, np.broadcast_to((offs >= 0).astype(float), pos.shape)]
    # Other candidates inside each window, gathered into a fixed number of slots (unused slots stay zero).
    within = (np.abs(t[None, :] - t[:, None]) < half[:, None]) & (t[None, :] != t[:, None])
    slots = int(within.sum(axis=1).max()) if k > 1 else 0
    others = np.zeros((k, 2 * window, slots))
    if slots:
        order = np.argsort(~within, axis=1, kind="stable")[:, :slots]  # indices of the True entries first
        valid = np.take_along_axis(within, order, axis=1)
        o_pos = t[order]  # (k, slots)
        others = ((pos[:, :, None] >= o_pos[:, None, :]) & valid[:, None, :]).astype(float)
    design = np.concatenate([np.stack(base, axis=2), others], axis=2) * w[:, :, None]  # (k, 2w, p)
    p = design.shape[2]
    gram = np.einsum("kip,kiq->kpq", design, design) + 1e-9 * np.eye(p)[None]
    rhs = np.einsum("kip,ki->kp", design, y)
    try:
        coef = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
        e3 = np.zeros((k, p, 1))
        e3[:, 3, 0] = 1.0
        var3 = np.linalg.solve(gram, e3)[:, 3, 0]
    except np.linalg.LinAlgError:
        return np.zeros(k), np.zeros(k)
    resid = (y - np.einsum("kip,kp->ki", design, coef)) * w
    used = 4 + (valid.sum(axis=1) if slots else 0)
    dof = 2 * half - used
    with np.errstate(all="ignore"):
        s2 = np.einsum("ki,ki->k", resid, resid) / np.maximum(dof, 1)
        se = np.sqrt(np.maximum(s2 * var3, 0.0))
        tstat = np.where(se > 0, np.abs(coef[:, 3]) / se, np.inf)
    # With few points per side the t-statistic has heavy tails: report the Gaussian z of the same tail
    # probability, so one bar (_MIN_T) means the same rarity near the ends as in the middle.
    z = np.where(dof >= 2, stats.norm.isf(stats.t.sf(np.minimum(tstat, 1e6), np.maximum(dof, 1))), 0.0)
    z = np.where(np.isfinite(z), z, np.where(dof >= 2, tstat, 0.0))
    return coef[:, 3], z


def change_points(values: np.ndarray, *, penalty: float | None = None, min_size: int = 3) -> list[int]:
    """Indices where a new segment starts (no trailing n). Smooth trends are not cut into steps.

    NaN/Inf and isolated spikes (`outlier_indices`) are left out first: a spike is a point anomaly, not a new
    regime. Indices refer to the original series.
    """
    raw = np.asarray(values, dtype=float).ravel()
    usable = np.isfinite(raw)
    usable[outlier_indices(raw)] = False
    keep = np.flatnonzero(usable)
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
        bounds = [0] + [b * block for b in coarse] + [n]
        refined = sorted({_refine(x, bounds[i + 1], block, min_size, bounds[i], bounds[i + 2])
                          for i in range(len(coarse))})
        # A step straddling a block boundary can yield two coarse breaks that refine to neighbours: keep one.
        kept = [b for i, b in enumerate(refined) if i == 0 or b - refined[i - 1] >= max(min_size, block + 1)]
    return [int(keep[t]) for t in kept]


def _validate(x: np.ndarray, candidates: list[int], sigma: float) -> list[int]:
    """Drop candidates without an abrupt step; re-test the survivors until stable."""
    kept = np.array(sorted(set(candidates)), dtype=np.int64)
    for _ in range(8):
        if kept.size == 0:
            break
        step, tstat = step_stats(x, kept, _WINDOW)
        ok = (np.abs(step) >= _MIN_JUMP_SIGMA * sigma) & (tstat >= _MIN_T)
        if ok.all():
            break
        kept = kept[ok]
    return kept.tolist()


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


def find_change_points(batches: pd.DataFrame | None, global_metrics: pd.DataFrame | None,
                       cfg: AnomalyDetectionConfig | None = None) -> list[ChangePoint]:
    """Change points of every batch series (per metric) and every global metric, sorted by step."""
    cfg = cfg or AnomalyDetectionConfig()
    out: list[ChangePoint] = []
    for key, long in (("batch", batches), (None, global_metrics)):
        for m in metric_matrices(long, key):
            values = m.values
            for j, batch in enumerate(m.columns):
                ok = np.isfinite(values[:, j])
                out.extend(series_change_points(m.steps[ok], values[ok, j], m.metric, batch, cfg))
    out.sort(key=lambda c: (c.step, -1 if c.batch is None else c.batch, c.metric))
    return out
