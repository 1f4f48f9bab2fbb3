"""Change points in metric series with ruptures, used carefully -> `ChangePoint` records.

How `change_points(values)` finds where a new segment starts:
1. NaN/Inf and isolated spikes (`anomalies.outlier_indices`) are left out; indices map back to the original
   positions. A spike is a point anomaly, not a new regime.
2. The noise level sigma comes from the MAD of first differences, which steps and smooth trends barely move.
3. Candidates come from ruptures' C implementation `KernelCPD(kernel="linear")` (the l2 cost) with `jump=1`
   (the default jump=5 misplaces breaks), a minimum segment length and a noise-scaled BIC-like penalty
   `pen = 3 sigma^2 ln n`. Series longer than `_MAX_POINTS` are averaged in blocks first (the noise shrinks,
   steps stay; KernelCPD is quadratic in the length) and each break is refined on the raw points.
4. Every candidate must show an abrupt jump. Locally (`step_stats`): in a symmetric window, level + slope +
   curvature + a step at t (+ steps at the other candidates); the step must be >= 1 sigma and >= 4 standard
   errors (as a Gaussian-equivalent z, so short windows near the ends are not favoured). A healthy learning
   curve is smooth, so its candidates fit slope and curvature, no step, and are dropped. A small step between
   flat stretches gets a second, wide test (`_flat_step_ok`) when neither side trends.
5. Noise-level changes (`variance_changes`): KernelCPD on block means of log(d^2) of the first differences d,
   whose noise variance is known (pi^2 / 2), validated by a MAD ratio test.

`level_shifts` is steps 1-4 alone; the run-level `find_change_points` uses it, because a `ChangePoint` record
describes a level (mean before, mean after, delta).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import ruptures as rpt
from scipy import stats

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.records import ChangePoint, Severity
from analysis.findings.anomalies import is_schedule, metric_direction, metric_matrices, outlier_indices

_MAD_TO_SIGMA = 1.4826
_MAX_POINTS = 500  # longer series are block-averaged to about this many points before segmentation
_PEN_BETA = 3.0  # penalty multiplier of sigma^2 ln n
_MIN_JUMP_SIGMA = 1.0  # a kept step is at least this many noise sigmas ...
_MIN_T = 4.0  # ... and this many standard errors
_WINDOW = 30  # points each side used to validate a step
_LEVEL_POINTS = 10  # points each side whose median is a change point's level before / after
_FLAT_WINDOW = 200  # points each side for the wide test of a small step between flat stretches
_VAR_WINDOW = 150  # differences each side used to validate a noise-level change
_VAR_MIN_SIZE = 20  # minimum points per noise regime
_MIN_VAR_RATIO = 1.8  # noise sd must change at least this much (either way)
_VAR_MERGE = 10  # a noise change this close to a level shift is the same event


def _quiet(fn: Callable) -> Callable:
    """Extreme inputs (1e308, Inf) may overflow inside numpy: the answer is still right, so no warnings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args, **kwargs)

    return wrapper


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


def step_stats(x: np.ndarray, cands: np.ndarray, window: int = 30, with_slope: bool = False) -> tuple[np.ndarray, ...]:
    """Size and t-statistic of a step at each candidate, all candidates solved at once.

    Each candidate t gets a symmetric window t-h .. t+h-1 (h = min(window, t, n - t)); the local model is
    level + slope + curvature + step at t + a step at every other candidate inside the window. The symmetric
    window keeps curvature (even around t) apart from the step (odd), so a smooth learning curve fits with no
    step, and the other candidates' dummies stop a neighbouring real step from leaking into this one.
    """
    t = np.asarray(cands, dtype=np.int64)
    k, n = t.size, x.size
    if k == 0:
        return (np.zeros(0),) * (3 if with_slope else 2)
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
        unit = np.zeros((k, p, 2))
        unit[:, 1, 0] = unit[:, 3, 1] = 1.0
        inv_cols = np.linalg.solve(gram, unit)
        var1, var3 = inv_cols[:, 1, 0], inv_cols[:, 3, 1]
    except np.linalg.LinAlgError:
        return (np.zeros(k),) * (3 if with_slope else 2)
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
    if not with_slope:
        return coef[:, 3], z
    with np.errstate(all="ignore"):
        slope_t = np.abs(coef[:, 1]) / np.sqrt(np.maximum(s2 * var1, 1e-300))
    return coef[:, 3], z, slope_t


def _clean(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(usable values, their original indices): NaN/Inf and isolated spikes left out.

    Values beyond 1e100 are scaled down by a power of two (exact): squared costs of ~1e308 overflow to Inf and
    ruptures then rejects its NaN penalty. Breaks do not depend on the scale (a given penalty then applies to
    the scaled series)."""
    raw = np.asarray(values, dtype=float).ravel()
    usable = np.isfinite(raw)
    usable[outlier_indices(raw)] = False
    keep = np.flatnonzero(usable)
    x = raw[keep]
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if top > 1e100:
        x = np.ldexp(x, -math.frexp(top)[1])
    return x, keep


@_quiet
def level_shifts(values: np.ndarray, *, penalty: float | None = None, min_size: int = 3) -> list[int]:
    """Indices where the level jumps (start of the new segment). Smooth trends are not cut into steps."""
    x, keep = _clean(values)
    return [int(keep[t]) for t in _level_shifts(x, penalty, max(2, int(min_size)))]


def _level_shifts(x: np.ndarray, penalty: float | None, min_size: int) -> list[int]:
    n = x.size
    if n < 2 * min_size or float(np.std(x)) == 0.0:
        return []
    if n <= _MAX_POINTS:
        return _detect(x, penalty, min_size)
    # Long series: find and validate breaks on block means (noise shrinks, steps stay), then refine each
    # break on the raw points. A user penalty is in raw units; the block cost is `block` times smaller.
    block = int(math.ceil(n / _MAX_POINTS))
    m = n // block
    means = x[: m * block].reshape(m, block).mean(axis=1)
    coarse = _detect(means, None if penalty is None else penalty / block, max(2, int(math.ceil(min_size / block))))
    bounds = [0] + [b * block for b in coarse] + [n]
    refined = sorted({_refine(x, bounds[i + 1], block, min_size, bounds[i], bounds[i + 2]) for i in range(len(coarse))})
    # A step straddling a block boundary can yield two coarse breaks that refine to neighbours: keep one.
    return [b for i, b in enumerate(refined) if i == 0 or b - refined[i - 1] >= max(min_size, block + 1)]


@_quiet
def variance_changes(values: np.ndarray, *, min_size: int = 20) -> list[int]:
    """Indices where the noise level changes (e.g. training becomes unstable), spikes and trends ignored.

    Works on first differences d (trend-free): log(d^2) shifts by 2 ln(ratio) when the noise sd changes by
    `ratio`, with a known noise variance (pi^2 / 2 for Gaussian noise), so KernelCPD gets a calibrated penalty
    on block means of log(d^2). Each candidate must then show a noise ratio of at least `_MIN_VAR_RATIO`
    between robust (MAD) scales of the differences on both sides, at `_MIN_T` standard errors.
    """
    x, keep = _clean(values)
    return [int(keep[t]) for t in _variance_changes(x, min_size)]


def _variance_changes(x: np.ndarray, min_size: int) -> list[int]:
    d = np.diff(x)
    n = d.size
    if n < 2 * min_size:
        return []
    med_abs = float(np.median(np.abs(d)))
    if med_abs == 0.0:
        return []
    y = np.log(d * d + (1e-3 * med_abs) ** 2)
    block = max(4, int(math.ceil(n / (_MAX_POINTS / 2))))
    m = n // block
    if m < 4:
        return []
    means = y[: m * block].reshape(m, block).mean(axis=1)
    noise_var = (math.pi**2 / 2.0) / block
    pen = _PEN_BETA * noise_var * math.log(m)
    bmin = max(2, int(math.ceil(min_size / block)))
    if m < 2 * bmin:
        return []
    coarse = rpt.KernelCPD(kernel="linear", min_size=bmin, jump=1).fit(means).predict(pen=pen)[:-1]
    cands = [int(b) * block for b in coarse]
    bounds = [0] + cands + [n]
    kept = []
    for i, c in enumerate(cands):
        lo, hi = max(bounds[i], c - _VAR_WINDOW), min(bounds[i + 2], c + _VAR_WINDOW)
        left, right = d[lo:c], d[c:hi]
        if left.size < min_size // 2 or right.size < min_size // 2:
            continue
        sl = float(np.median(np.abs(left - np.median(left))))
        sr = float(np.median(np.abs(right - np.median(right))))
        if sl <= 0 or sr <= 0:
            continue
        ratio = sr / sl
        # Var(ln MAD) is about 1.36 / n for Gaussian data.
        z = abs(math.log(ratio)) / math.sqrt(1.36 / left.size + 1.36 / right.size)
        if max(ratio, 1 / ratio) >= _MIN_VAR_RATIO and z >= _MIN_T:
            c = _refine_variance(d, c, block, lo, hi)
            kept.append(c + 1)  # d[c] = x[c+1] - x[c]: the first point of the new regime is about x[c + 1]
    return kept


def _refine_variance(d: np.ndarray, guess: int, block: int, lo: int, hi: int) -> int:
    """Maximum-likelihood split of a Gaussian noise variance near `guess` (within two blocks), on d[lo:hi].

    Squared differences are capped (at ~55 x their median) so a leftover level jump cannot pull the split.
    """
    seg = d[lo:hi] ** 2
    seg = np.minimum(seg, 55.0 * max(float(np.median(seg)), 1e-300))
    n = seg.size
    ks = np.arange(guess - 2 * block, guess + 2 * block + 1) - lo
    ks = ks[(ks >= 3) & (ks <= n - 3)]
    if ks.size == 0:
        return guess
    cs = np.cumsum(seg)
    s1 = np.maximum(cs[ks - 1], 1e-300)
    s2 = np.maximum(cs[-1] - cs[ks - 1], 1e-300)
    cost = ks * np.log(s1 / ks) + (n - ks) * np.log(s2 / (n - ks))
    return int(lo + ks[int(np.argmin(cost))])


@_quiet
def change_points(
    values: np.ndarray, *, penalty: float | None = None, min_size: int = 3, variance: bool = True
) -> list[int]:
    """Indices where a new segment starts (no trailing n): level shifts, plus noise-level changes.

    NaN/Inf and isolated spikes (`outlier_indices`) are left out first: a spike is a point anomaly, not a new
    regime. A noise-level change within `_VAR_MERGE` points of a level shift is the same event. Indices refer to
    the original series.
    """
    x, keep = _clean(values)
    min_size = max(2, int(min_size))
    shifts = _level_shifts(x, penalty, min_size)
    found = list(shifts)
    if variance:
        for v in _variance_changes(x, max(_VAR_MIN_SIZE, min_size)):
            if all(abs(v - s) > _VAR_MERGE for s in shifts):
                found.append(v)
    return sorted({int(keep[min(t, keep.size - 1)]) for t in found})


def _validate(x: np.ndarray, candidates: list[int], sigma: float) -> list[int]:
    """Keep candidates with an abrupt step: the local test first (re-run on the survivors until stable), then a
    wide test on flat stretches for the rest."""
    cands = np.array(sorted(set(candidates)), dtype=np.int64)
    kept = cands
    trending: dict[int, bool] = {}
    for _ in range(8):
        if kept.size == 0:
            break
        step, tstat, slope_t = step_stats(x, kept, _WINDOW, with_slope=True)
        trending.update(zip(kept.tolist(), (slope_t > 3.0).tolist()))
        ok = (np.abs(step) >= _MIN_JUMP_SIGMA * sigma) & (tstat >= _MIN_T)
        if ok.all():
            break
        kept = kept[ok]
    accepted = set(kept.tolist())
    # Candidates on a clear local trend (a learning curve still rising) cannot pass the flat test: skip them.
    for t in cands.tolist():
        if t not in accepted and not trending.get(t, False) and _flat_step_ok(x, t, sorted(accepted), sigma):
            accepted.add(t)
    return sorted(accepted)


def _flat_step_ok(x: np.ndarray, t: int, accepted: list[int], sigma: float) -> bool:
    """A small step between two flat stretches: invisible to the local test (slope and step are hard to tell
    apart on 30 points) but clear on up to `_FLAT_WINDOW` points each side, as long as neither side trends.

    Fits level + slope + curvature + step on the window between the neighbouring accepted breaks; the step
    counts when slope and curvature are insignificant and the step alone stands out at `_MIN_T`.
    """
    i = int(np.searchsorted(accepted, t))
    lo = max(accepted[i - 1] if i > 0 else 0, t - _FLAT_WINDOW)
    hi = min(accepted[i] if i < len(accepted) else x.size, t + _FLAT_WINDOW)
    if t - lo < _WINDOW or hi - t < _WINDOW:
        return False
    y = x[lo:hi]
    # Cheap screen first: without a clear difference of means there is no step to find (saves the fits).
    gap = abs(float(np.mean(x[t:hi])) - float(np.mean(x[lo:t])))
    if gap < 0.8 * max(_MIN_JUMP_SIGMA * sigma, _MIN_T * sigma * math.sqrt(1.0 / (t - lo) + 1.0 / (hi - t))):
        return False
    idx = np.arange(lo, hi)
    u = (idx - t) / float(max(t - lo, hi - t))
    step = (idx >= t).astype(float)
    full = np.column_stack([np.ones_like(u), u, u * u, step])
    coef, se, dof = _ols(full, y)
    if dof < 10 or abs(coef[1]) > 3.0 * se[1] or abs(coef[2]) > 3.0 * se[2]:
        return False
    # The step must hold with the trend terms in (a slow drift is not a step) ...
    if abs(coef[3]) < 3.0 * se[3] or abs(coef[3]) < _MIN_JUMP_SIGMA * sigma:
        return False
    # ... and stand out at the full bar once the insignificant trend terms are dropped.
    coef2, se2, _ = _ols(full[:, [0, 3]], y)
    return np.sign(coef2[1]) == np.sign(coef[3]) and abs(coef2[1]) >= _MIN_T * se2[1]


def _ols(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Least-squares coefficients, their standard errors and the residual degrees of freedom."""
    gram = design.T @ design
    dof = y.size - design.shape[1]
    try:
        inv = np.linalg.inv(gram)
    except np.linalg.LinAlgError:
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        return coef, np.full(coef.shape, np.inf), dof
    coef = inv @ (design.T @ y)
    resid = y - design @ coef
    s2 = float(resid @ resid) / max(dof, 1)
    return coef, np.sqrt(np.maximum(np.diag(inv) * s2, 0.0)), dof


# ------------------------------------------------------------------------------------------ run-level API
def _local_levels(x: np.ndarray, t: int, prev: int, nxt: int) -> tuple[float, float]:
    """Levels just before and just after t: medians of up to `_LEVEL_POINTS` points on each side, inside the
    neighbouring segments (on a rising curve, a long mean before the break would mostly measure early training)."""
    before = x[max(prev, t - _LEVEL_POINTS) : t]
    after = x[t : min(nxt, t + _LEVEL_POINTS)]
    return float(np.median(before)), float(np.median(after))


def _severity(metric: str, before: float, after: float, cfg: AnomalyDetectionConfig) -> Severity:
    if is_schedule(metric, cfg):
        return "info"  # a learning-rate step is a fact, not a degradation
    higher = metric_direction(metric, cfg) == "higher_is_better"
    worse = (after < before) if higher else (after > before)
    if not worse:
        return "info"
    rel = abs(after - before) / max(abs(before), 1e-12)
    if rel >= cfg.critical_drop_threshold:
        return "critical"
    return "warning" if rel >= cfg.performance_drop_threshold else "info"


def series_change_points(
    steps: np.ndarray, values: np.ndarray, metric: str, batch: int | None, cfg: AnomalyDetectionConfig
) -> list[ChangePoint]:
    """ChangePoint records for one series (steps and values aligned; non-finite values are skipped)."""
    steps = np.asarray(steps)
    vals = np.asarray(values, dtype=float)
    ok = np.isfinite(vals)
    steps, vals = steps[ok], vals[ok]
    idx = level_shifts(vals, penalty=cfg.change_point_penalty, min_size=cfg.change_point_min_size)
    out = []
    bounds = [0] + idx + [vals.size]
    for k, t in enumerate(idx):
        before, after = _local_levels(vals, t, bounds[k], bounds[k + 2])
        out.append(
            ChangePoint(
                step=int(steps[t]),
                metric=metric,
                mean_before=before,
                mean_after=after,
                delta=after - before,
                batch=batch,
                severity=_severity(metric, before, after, cfg),
            )
        )
    return out


def find_change_points(
    batches: pd.DataFrame | None, global_metrics: pd.DataFrame | None, cfg: AnomalyDetectionConfig | None = None
) -> list[ChangePoint]:
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
