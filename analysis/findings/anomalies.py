"""Anomaly detectors over metric series -> `Anomaly` records.

Each metric of a run becomes one matrix (rows = steps, columns = batches; one column for a global metric), and
every detector is a handful of vectorised numpy/bottleneck operations over the whole matrix, so a run with
200 batches x 3 metrics x 10,000 steps takes about a second. The series-level `outlier_indices` is separate: it
flags isolated points in one series after the fact (neighbours on both sides are known).

Detectors (names as in `Anomaly.detector`):
- `threshold`: direction-aware absolute bound (`metric_thresholds`; `{"recall": 0.8}` means every `*/recall` must
  stay >= 0.8; a loss-like metric must stay <= its bound). Early training that has not reached the bound yet is
  `info`; later, small violations must persist (see `_threshold`).
- `zscore`: |z| against the mean/std of the *previous* `zscore_window` points, after `warmup_steps`, so early
  training does not dominate the statistics. Reported as the Gaussian z of the same tail probability (a std from
  20 points makes the raw ratio Student-t, which would flag three times too often).
- `robust_zscore`: the same against the median of the previous window, scaled by the median deviation from the
  trailing medians over `_SCALE_FACTOR` windows (outliers barely move it; a healthy rising curve widens it).
- `drop_from_best`: relative drop of the series (smoothed by a centred 5-point median, so single-point blips are
  left to the z-scores) from its running best (max for recall-like, min for loss-like), after warm-up.
- `nonfinite`: NaN / Inf values as logged (the only detector run on schedule values such as the learning rate,
  see `is_schedule`: they change on purpose).
- `cross_batch`: a batch far worse than its peers at the same step (robust z across batches above
  `cross_batch_mad`, raised like the z bar on big runs, *and* a relative gap above `performance_drop_threshold`).

On a series of n points the z bar is max(statistical_anomaly_zscore, sqrt(2 ln n)) when `zscore_length_adjusted`
(the expected maximum of n Gaussian noise values): a healthy 10,000-step series does not raise dozens of alarms.
Flags of one detector on one series that are at most `_MERGE_GAP` observed points apart (`_SUSTAINED_GAP`, or
half the z window for thresholds, for the level detectors) merge into an episode (`step`..`end_step`, worst
value, strongest score). Severity: `critical` for NaN/Inf and degradations of at least
`critical_drop_threshold` (relative), `warning` for other degradations, `info` for unusual improvements.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import bottleneck as bn
import numpy as np
import pandas as pd
from scipy import stats

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.records import Anomaly

Direction = Literal["higher_is_better", "lower_is_better"]

_LOWER_HINTS = ("loss", "error", "err", "cer", "wer", "perplexity", "ppl", "mse", "mae", "rmse", "nll")
_MAD_TO_SIGMA = 1.4826
_ABS_DIFF_TO_SIGMA = 1.0 / 0.9539  # median |x_t - x_{t-1}| of Gaussian noise is 0.9539 sigma
_SMOOTH = 5  # points in the running median behind drop_from_best
_SCALE_FACTOR = 4  # the spread behind a z-score is estimated on this many windows of past points
_MERGE_GAP = 2  # point detectors: flags this many observed points apart still belong to one episode
_SUSTAINED_GAP = 5  # threshold / drop / cross-batch: a level hovering at the bound makes one episode, not ten
# (threshold episodes use half the z-score window when that is longer: noisy values crossing a fixed bound
# back and forth for hundreds of steps are one episode to a reader)
_EPS = 1e-12


# ----------------------------------------------------------------------------------------------- metric meta
def _last_part(metric: str) -> str:
    return metric.rsplit("/", 1)[-1]


def metric_direction(metric: str, cfg: AnomalyDetectionConfig | None = None) -> Direction:
    """Whether a metric should go up (recall) or down (loss): config override first, then the name."""
    if cfg is not None:
        for key in (metric, _last_part(metric)):
            if key in cfg.metric_directions:
                return cfg.metric_directions[key]
    tokens = [t for t in _last_part(metric).lower().replace("-", "_").split("_") if t]
    if any(t in _LOWER_HINTS for t in tokens):
        return "lower_is_better"
    return "higher_is_better"


_NEUTRAL_NAMES = {
    "lr",
    "learning_rate",
    "momentum",
    "epoch",
    "step",
    "global_step",
    "weight_decay",
    "wd",
    "batch_size",
    "beta1",
    "beta2",
    "warmup",
    "lr_scale",
    "grad_scale",
    "loss_scale",
}


def is_schedule(metric: str, cfg: AnomalyDetectionConfig | None = None) -> bool:
    """Training-setup values (learning rate, epoch, momentum, ...): they change on purpose, so a change is a
    fact (useful to explain a fall), never a degradation. A direction set in the config wins."""
    if cfg is not None and (metric in cfg.metric_directions or _last_part(metric) in cfg.metric_directions):
        return False
    last = _last_part(metric).lower().replace("-", "_")
    return last in _NEUTRAL_NAMES or last.endswith("_lr") or last.startswith("lr_")


def metric_threshold(metric: str, cfg: AnomalyDetectionConfig) -> float | None:
    """The absolute bound for a metric: exact name wins over its last part (`val/recall` over `recall`)."""
    for key in (metric, _last_part(metric)):
        if key in cfg.metric_thresholds:
            return float(cfg.metric_thresholds[key])
    return None


# ------------------------------------------------------------------------------------------ matrix statistics
def _move(fn: Callable, x: np.ndarray, window: int, min_count: int, **kw) -> np.ndarray:
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


def _floor(scale: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Keep denominators away from zero: constant stretches still flag real jumps, not float dust.

    An unknown scale (NaN: too few points yet) stays unknown, so no z is computed there.
    """
    return np.maximum(scale, 1e-6 * np.fmax(np.abs(level), 1.0))


def _seen(values: np.ndarray) -> np.ndarray:
    """How many finite points each series has shown up to and including each row."""
    return np.cumsum(np.isfinite(values), axis=0)


def rolling_zscore(values: np.ndarray, window: int, warmup: int) -> np.ndarray:
    """z of each point against the mean/std of the previous `window` finite points (NaN before warm-up).

    `values` is (steps,) or (steps, series) with NaN for missing points. A std from a few points makes
    (x - mean) / std Student-t distributed, with far heavier tails than a Gaussian; the result is therefore
    the Gaussian z with the same tail probability, so "|z| > 3" means the same rarity for any window.
    """
    return _rolling_zscore(values, window, warmup)[0]


def _rolling_zscore(values: np.ndarray, window: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """(z, the window mean each point was compared with)."""
    x = np.asarray(values, dtype=float)
    minc = _min_count(window, warmup)
    mean = _shift(_move(bn.move_mean, x, window, minc))
    std = _shift(_move(bn.move_std, x, window, minc, ddof=1))
    count = _shift(_move(bn.move_sum, np.isfinite(x).astype(float), window, 1))
    # x - mean has variance sigma^2 (1 + 1/count): the window mean carries noise too.
    with np.errstate(all="ignore"):
        t = (x - mean) / (_floor(std, mean) * np.sqrt(1.0 + 1.0 / np.fmax(count, 1.0)))
    z = _t_to_z(t, count - 1.0)
    return np.where(_seen(x) > warmup, z, np.nan), mean


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
            z = stats.norm.isf(stats.t.sf(np.abs(tt), dd))
        # Beyond float precision the tail probability underflows: keep t, which is already enormous there.
        z = np.where(np.isfinite(z), z, np.abs(tt))
        out[ok] = np.sign(tt) * np.minimum(z, np.abs(tt))
    return out


def rolling_robust_zscore(values: np.ndarray, window: int, warmup: int) -> np.ndarray:
    """Robust z against the median of the previous `window` points (NaN before warm-up).

    The scale is the median absolute deviation of the recent points from their own trailing medians, over
    `_SCALE_FACTOR` windows: outliers barely move it, while a steadily rising learning curve (whose points sit
    above a lagging median) widens it, so healthy trends are not flagged as improvements.
    """
    return _rolling_robust_zscore(values, window, warmup)[0]


def _rolling_robust_zscore(values: np.ndarray, window: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """(robust z, the window median each point was compared with)."""
    x = np.asarray(values, dtype=float)
    minc = _min_count(window, warmup)
    med = _shift(_move(bn.move_median, x, window, minc))
    dev = np.abs(x - med)
    scale = _shift(_move(bn.move_median, dev, _SCALE_FACTOR * window, 3)) * _MAD_TO_SIGMA
    # A locally constant window (scale 0) falls back to the mean deviation (still 0 if truly flat).
    mean_scale = _shift(_move(bn.move_mean, dev, _SCALE_FACTOR * window, 3)) * 1.2533
    scale = np.where(scale > 0, scale, mean_scale)
    z = (x - med) / _floor(scale, med)
    # A MAD from k points is about as reliable as a standard deviation from 0.37 k points (its Gaussian
    # efficiency): convert like a t with that many degrees of freedom, so the tail rate matches the bar.
    k = _shift(_move(bn.move_sum, np.isfinite(dev).astype(float), _SCALE_FACTOR * window, 1))
    z = _t_to_z(z, np.maximum(0.37 * k - 1.0, 1.0))
    return np.where(_seen(x) > warmup, z, np.nan), med


def _centred_median(x: np.ndarray, window: int) -> np.ndarray:
    """Running median centred on each row (post-hoc: a sustained drop shows from its first point on).

    Near the ends the window shrinks to the points that exist.
    """
    n = x.shape[0]
    h = window // 2
    if n == 0 or h == 0:
        return x.copy()
    padded = np.concatenate([x, np.full((h,) + x.shape[1:], np.nan)], axis=0)
    return _move(bn.move_median, padded, 2 * h + 1, 1)[h:]


def drop_from_best(
    values: np.ndarray, direction: Direction, smooth: int = _SMOOTH, smoothed: np.ndarray | None = None
) -> np.ndarray:
    """Relative degradation (>= 0) of the running median from its running best; NaN where undefined."""
    x = np.asarray(values, dtype=float)
    sm = smoothed if smoothed is not None else (_centred_median(x, smooth) if smooth > 1 else x)
    with np.errstate(all="ignore"):
        if direction == "higher_is_better":
            best = np.fmax.accumulate(sm, axis=0)
            drop = (best - sm) / np.abs(best)
        else:
            best = np.fmin.accumulate(sm, axis=0)
            drop = (sm - best) / np.abs(best)
    return np.where((np.abs(best) > _EPS) & np.isfinite(x), drop, np.nan)


def z_bar(cfg: AnomalyDetectionConfig, n: int | np.ndarray) -> np.ndarray:
    """The |z| a point must exceed on a series of n points (see module docstring)."""
    base = np.full(np.shape(n), cfg.statistical_anomaly_zscore, dtype=float)
    if not cfg.zscore_length_adjusted:
        return base
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    return np.fmax(base, np.sqrt(2.0 * np.log(n)))


# --------------------------------------------------------------------------------------- point outliers
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
    finite = x[np.isfinite(x)]
    level = float(np.max(np.abs(finite))) if finite.size else 1.0
    with np.errstate(all="ignore"):
        return resid / np.fmax(scale, 1e-9 * max(level, 1.0))


def outlier_indices(values: np.ndarray, *, threshold: float | None = None) -> list[int]:
    """Indices of isolated anomalous points (spikes/dips) in a 1-D series, plus NaN/Inf positions.

    The threshold defaults to the larger of 3.0 and sqrt(2 ln n), the expected maximum of n Gaussian noise
    values, so long healthy series do not raise a false alarm every few hundred points.
    """
    x = np.asarray(values, dtype=float).ravel()
    n = x.size
    if n == 0:
        return []
    bad = ~np.isfinite(x)
    if n < 5:
        return np.flatnonzero(bad).tolist()
    z = point_outlier_z(np.where(bad, np.nan, x))
    thr = threshold if threshold is not None else max(3.0, math.sqrt(2.0 * math.log(n)))
    flags = bad | (np.abs(np.nan_to_num(z, nan=0.0)) > thr)
    return np.flatnonzero(flags).tolist()


# ------------------------------------------------------------------------------------------ run-level API
@dataclass
class MetricMatrix:
    """One metric of a run as a matrix: rows = sorted steps, columns = batches (or [None] for a global metric)."""

    metric: str
    steps: np.ndarray  # (n,) int64
    columns: list[int | None]
    raw: np.ndarray  # (n, k) values as logged (NaN where not logged; NaN/Inf kept)
    logged: np.ndarray  # (n, k) bool: a value was logged at this step

    @property
    def values(self) -> np.ndarray:
        """Finite values only (NaN elsewhere): what the statistics see."""
        return np.where(np.isfinite(self.raw), self.raw, np.nan)

    @property
    def nonfinite(self) -> np.ndarray:
        return self.logged & ~np.isfinite(self.raw)


def metric_matrices(long: pd.DataFrame | None, key: str | None) -> list[MetricMatrix]:
    """Split a long frame (step, [batch,] metric, value) into one matrix per metric; the last duplicate wins."""
    if long is None or long.empty:
        return []
    step_all = pd.to_numeric(long["step"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(step_all)
    codes, names = pd.factorize(long["metric"], sort=True)  # on the Series: Arrow strings stay fast
    codes = codes[ok]
    step_all = step_all[ok].astype(np.int64)
    value_all = pd.to_numeric(long["value"], errors="coerce").to_numpy(dtype=float)[ok]
    key_all = long[key].to_numpy(dtype=np.int64)[ok] if key else None
    order = np.argsort(codes, kind="stable")  # stable: the last duplicate of a cell stays last
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out = []
    for k, metric in enumerate(names):
        idx = order[bounds[k] : bounds[k + 1]]
        if idx.size == 0:
            continue  # a metric logged only on rows without a step
        si, steps = pd.factorize(step_all[idx], sort=True)
        if key_all is not None:
            ci, cols = pd.factorize(key_all[idx], sort=True)
            columns: list[int | None] = [int(c) for c in cols]
        else:
            ci = np.zeros(idx.size, dtype=np.int64)
            columns = [None]
        raw = np.full((steps.size, len(columns)), np.nan)
        logged = np.zeros(raw.shape, dtype=bool)
        raw[si, ci] = value_all[idx]
        logged[si, ci] = True
        out.append(MetricMatrix(str(metric), np.asarray(steps, dtype=np.int64), columns, raw, logged))
    return out


def _episodes(rows: np.ndarray, gap: int = _MERGE_GAP) -> list[tuple[int, int]]:
    """Group sorted observed-row positions into (first, last) index pairs, allowing `gap` missing ones."""
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > gap + 1)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, rows.size - 1]
    return list(zip(starts.tolist(), ends.tolist()))


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def _span(start: int, end: int) -> str:
    return f"step {start}" if start == end else f"steps {start}-{end}"


def _who(batch: int | None) -> str:
    return f"batch {batch} " if batch is not None else ""


Describe = Callable[[int | None, float, float, int, int], str]


class _Emitter:
    """Turns a flag matrix into merged episode records for one metric matrix and one detector."""

    def __init__(self, m: MetricMatrix, direction: Direction, cfg: AnomalyDetectionConfig) -> None:
        self.m, self.direction, self.cfg = m, direction, cfg
        self.observed = m.logged
        self.out: list[Anomaly] = []

    def emit(
        self,
        detector: str,
        flags: np.ndarray,
        score: np.ndarray,
        rel_worse: np.ndarray | float,
        describe: Describe,
        gap: int = _MERGE_GAP,
        at_least: int = 0,
        at_most: int = 2,
    ) -> None:
        """flags/score are (n, k); rel_worse is the relative degradation per cell (or one number for all).

        An episode's severity comes from its largest degradation (see `_severity`), kept within
        `at_least`..`at_most` (0 info, 1 warning, 2 critical).
        """
        flags = flags & self.observed
        if not flags.any():
            return
        names = ("info", "warning", "critical")
        rel_matrix = isinstance(rel_worse, np.ndarray)
        for j in np.flatnonzero(flags.any(axis=0)):
            batch = self.m.columns[j]
            observed_rows = np.flatnonzero(self.observed[:, j])
            pos = np.flatnonzero(flags[observed_rows, j])  # positions among the observed points
            for a, b in _episodes(pos, gap):
                rows = observed_rows[pos[a : b + 1]]
                raw = self.m.raw[rows, j]
                sc = score[rows, j]
                worst = self._worst(raw)
                strongest = float(np.nanmax(sc)) if np.isfinite(sc).any() else float("inf")
                start, end = int(self.m.steps[rows[0]]), int(self.m.steps[rows[-1]])
                rel = rel_worse[rows, j] if rel_matrix else np.asarray([rel_worse])
                level = max(at_least, _severity(float(np.nanmax(rel)) if not np.isnan(rel).all() else 0.0, self.cfg))
                level = min(level, at_most)
                self.out.append(
                    Anomaly(
                        step=start,
                        metric=self.m.metric,
                        value=worst,
                        detector=detector,
                        score=strongest,
                        severity=names[level],  # type: ignore[arg-type]
                        message=describe(batch, worst, strongest, start, end),
                        batch=batch,
                        end_step=end if end != start else None,
                    )
                )

    def _worst(self, v: np.ndarray) -> float:
        fin = v[np.isfinite(v)]
        if fin.size == 0:
            nonfin = v[~np.isnan(v)]
            return float(nonfin[0]) if nonfin.size else float("nan")
        return float(fin.min() if self.direction == "higher_is_better" else fin.max())


def _bad_sign(direction: Direction) -> float:
    """+1 when larger values are worse (loss-like), -1 when smaller values are worse (recall-like)."""
    return -1.0 if direction == "higher_is_better" else 1.0


def _severity(rel_worse: float, cfg: AnomalyDetectionConfig) -> int:
    """0 info (not worse), 1 warning, 2 critical (relative degradation >= critical_drop_threshold)."""
    if rel_worse >= cfg.critical_drop_threshold:
        return 2
    return 1 if rel_worse > 0 else 0


def _matrix_findings(m: MetricMatrix, cfg: AnomalyDetectionConfig) -> list[Anomaly]:
    """All per-series detectors for one metric matrix."""
    direction = metric_direction(m.metric, cfg)
    sign = _bad_sign(direction)
    worse_word = "below" if direction == "higher_is_better" else "above"
    x = m.values
    em = _Emitter(m, direction, cfg)
    if is_schedule(m.metric, cfg):
        _nonfinite(m, em)
        return em.out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        smooth = _centred_median(x, _SMOOTH)  # shared by the threshold and drop-from-best detectors
        thr = metric_threshold(m.metric, cfg)
        if thr is not None:
            _threshold(m, x, smooth, thr, sign, worse_word, cfg, em)

        n_points = np.isfinite(x).sum(axis=0)
        bar = z_bar(cfg, n_points)[None, :]
        for name, fn, word in (
            ("zscore", _rolling_zscore, "sigma"),
            ("robust_zscore", _rolling_robust_zscore, "robust sigma"),
        ):
            if name == "robust_zscore" and not cfg.robust:
                continue
            z, centre = fn(x, cfg.zscore_window, cfg.warmup_steps)
            worse_z = sign * z
            flags = (worse_z > bar) if cfg.drop_only else (np.abs(z) > bar)
            # Severity from the relative distance to the window's centre, in the bad direction.
            rel = sign * (x - centre) / np.fmax(np.abs(centre), _EPS)
            em.emit(
                name,
                flags,
                np.abs(z),
                rel,
                lambda b, v, s, a, e, word=word: (
                    f"{_who(b)}{m.metric} = {_fmt(v)} is {s:.1f} {word} from its recent values at {_span(a, e)}"
                ),
            )

        drop = drop_from_best(x, direction, smoothed=smooth)
        drop = np.where(_seen(x) > cfg.warmup_steps, drop, np.nan)
        verb = "fell" if direction == "higher_is_better" else "rose"
        em.emit(
            "drop_from_best",
            drop > cfg.performance_drop_threshold,
            drop,
            drop,
            lambda b, v, s, a, e: f"{_who(b)}{m.metric} {verb} {s:.0%} from its best (to {_fmt(v)}) at {_span(a, e)}",
            gap=_SUSTAINED_GAP,
            at_least=1,
        )

        _nonfinite(m, em)

        if len(m.columns) >= 3 and m.columns[0] is not None:
            _cross_batch(m, x, direction, cfg, em)
    return em.out


def _threshold(
    m: MetricMatrix,
    x: np.ndarray,
    smooth: np.ndarray,
    thr: float,
    sign: float,
    worse_word: str,
    cfg: AnomalyDetectionConfig,
    em: _Emitter,
) -> None:
    """Values on the wrong side of the bound, in two kinds of episode.

    Before a series has clearly passed its bound once (its smoothed value better than the bound by
    `performance_drop_threshold`; early training), being short of it is expected: those episodes are `info`
    ("has not reached 0.8 yet"). Afterwards a small violation must persist (the centred 5-point median is
    past the bound too) while a large one (at least `performance_drop_threshold`, relative) counts at once:
    noise around the bound does not flap into dozens of episodes, and a single bad value is still caught.
    """
    gap = sign * (x - thr)  # > 0 means on the wrong side of the bound
    rel = gap / max(abs(thr), _EPS)
    bad = gap > 0
    smoothed_gap = sign * (smooth - thr)
    # "Reached" = the smoothed series was clearly on the good side once (by performance_drop_threshold).
    clear = np.nan_to_num(smoothed_gap, nan=np.inf) <= -cfg.performance_drop_threshold * abs(thr)
    reached = np.fmax.accumulate(clear.astype(float), axis=0) > 0
    after = bad & reached & ((smoothed_gap > 0) | (rel >= cfg.performance_drop_threshold))
    em.emit(
        "threshold",
        bad & ~reached,
        gap,
        rel,
        lambda b, v, s, a, e: (
            f"{_who(b)}{m.metric} has not reached its threshold {_fmt(thr)} yet (at most {_fmt(v)}) at {_span(a, e)}"
        ),
        gap=x.shape[0],
        at_most=0,
    )  # one episode per series: the whole approach to the bound
    em.emit(
        "threshold",
        after,
        gap,
        rel,
        lambda b, v, s, a, e: f"{_who(b)}{m.metric} = {_fmt(v)} {worse_word} threshold {_fmt(thr)} at {_span(a, e)}",
        gap=max(_SUSTAINED_GAP, cfg.zscore_window // 2),
        at_least=1,
    )


def _nonfinite(m: MetricMatrix, em: _Emitter) -> None:
    nf = m.nonfinite
    if nf.any():
        em.emit(
            "nonfinite",
            nf,
            np.ones(nf.shape),
            math.inf,
            lambda b, v, s, a, e: f"{_who(b)}{m.metric} is not finite ({v}) at {_span(a, e)}",
        )


def _cross_batch(
    m: MetricMatrix, x: np.ndarray, direction: Direction, cfg: AnomalyDetectionConfig, em: _Emitter
) -> None:
    """A batch far worse than its peers at the same step."""
    sign = _bad_sign(direction)
    count = np.isfinite(x).sum(axis=1)
    med = bn.nanmedian(x, axis=1)
    mad = bn.nanmedian(np.abs(x - med[:, None]), axis=1)
    scale = _floor(_MAD_TO_SIGMA * np.nan_to_num(mad), np.nan_to_num(med))
    z = (x - med[:, None]) / scale[:, None]
    rel = sign * (x - med[:, None]) / np.fmax(np.abs(med[:, None]), _EPS)
    # Every (step, batch) cell is a test: on a big run the bar rises like the z bar (see `z_bar`).
    bar = cfg.cross_batch_mad
    if cfg.zscore_length_adjusted:
        bar = max(bar, math.sqrt(2.0 * math.log(max(int(count.sum()), 1))))
    flags = (sign * z > bar) & (rel > cfg.performance_drop_threshold) & (count[:, None] >= 3)
    peers = dict(zip(m.steps.tolist(), med.tolist()))
    word = "below" if direction == "higher_is_better" else "above"
    em.emit(
        "cross_batch",
        flags,
        np.abs(z),
        rel,
        lambda b, v, s, a, e: (
            f"batch {b} {m.metric} = {_fmt(v)} is far {word} its peers "
            f"(median {_fmt(peers.get(a, float('nan')))}) at {_span(a, e)}"
        ),
        gap=_SUSTAINED_GAP,
        at_least=1,
    )


def find_anomalies(
    batches: pd.DataFrame | None, global_metrics: pd.DataFrame | None, cfg: AnomalyDetectionConfig | None = None
) -> list[Anomaly]:
    """Every anomaly of a run: per-batch series, cross-batch comparisons and global metrics.

    `batches` is the long frame (step, batch, metric, value); `global_metrics` is (step, metric, value).
    Results are sorted by step, then severity (critical first). Drop-only mode keeps degradations only.
    """
    cfg = cfg or AnomalyDetectionConfig()
    found: list[Anomaly] = []
    for key, long in (("batch", batches), (None, global_metrics)):
        for m in metric_matrices(long, key):
            found.extend(_matrix_findings(m, cfg))
    if cfg.drop_only:
        found = [a for a in found if a.severity != "info"]
    rank = {"critical": 0, "warning": 1, "info": 2}
    found.sort(
        key=lambda a: (a.step, rank.get(a.severity, 3), -1 if a.batch is None else a.batch, a.metric, a.detector)
    )
    return found
