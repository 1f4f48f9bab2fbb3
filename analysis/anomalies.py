"""Anomaly detectors over metric series -> `Anomaly` records.

Every detector works on a wide frame (rows = steps, columns = series) so a whole run (hundreds of batches x
thousands of steps) is processed with a handful of vectorised pandas/numpy operations instead of a Python loop
per series. The series-level `outlier_indices` is the same code on a one-column frame.

Detectors (names as in `Anomaly.detector`):
- `threshold`: direction-aware absolute bound (`metric_thresholds`, e.g. every `*/recall` must stay >= 0.8).
- `zscore`: |z| against the *previous* `zscore_window` points, after `warmup_steps`, so early training does not
  dominate the statistics.
- `robust_zscore`: the same with median/MAD, immune to the outliers it is looking for.
- `drop_from_best`: relative drop from the running best (max for recall-like, min for loss-like).
- `nonfinite`: NaN / Inf values as logged.
- `cross_batch`: a batch far below its peers at the same step (robust z across batches and a relative gap).

Consecutive flags of one detector on one series merge into an episode (`step` .. `end_step`, worst value).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from analysis.config import AnomalyDetectionConfig
from analysis.records import Anomaly, Severity

Direction = Literal["higher_is_better", "lower_is_better"]

_LOWER_HINTS = ("loss", "error", "err", "cer", "wer", "perplexity", "ppl", "mse", "mae", "rmse")
_MAD_TO_SIGMA = 1.4826
# A relative degradation this many times `performance_drop_threshold` (or more) is critical.
_CRITICAL_FACTOR = 3.0


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


def metric_threshold(metric: str, cfg: AnomalyDetectionConfig) -> float | None:
    """The absolute bound for a metric: exact name wins over its last part (`val/recall` over `recall`)."""
    for key in (metric, _last_part(metric)):
        if key in cfg.metric_thresholds:
            return float(cfg.metric_thresholds[key])
    return None


# ------------------------------------------------------------------------------------------ series statistics
def _noise_floor(scale: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Keep denominators away from zero: constant stretches still flag real jumps, not float dust."""
    return np.maximum(scale, 1e-6 * np.maximum(np.abs(level), 1.0))


def rolling_zscore(wide: pd.DataFrame, window: int, warmup: int) -> pd.DataFrame:
    """z of each point against the mean/std of the previous `window` finite points (NaN before warm-up)."""
    past = wide.shift(1)
    minp = max(3, min(window, warmup if warmup > 0 else 3))
    roll = past.rolling(window, min_periods=minp)
    mean, std = roll.mean(), roll.std()
    z = (wide - mean) / _noise_floor(std.to_numpy(), mean.to_numpy())
    return _after_warmup(z, wide, warmup)


def rolling_robust_zscore(wide: pd.DataFrame, window: int, warmup: int) -> pd.DataFrame:
    """Robust z against the median/MAD of the previous `window` points (NaN before warm-up)."""
    past = wide.shift(1)
    minp = max(3, min(window, warmup if warmup > 0 else 3))
    med = past.rolling(window, min_periods=minp).median()
    # MAD of the past window around its own median, approximated by the rolling median of |x - median|.
    dev = (past - med).abs()
    mad = dev.rolling(window, min_periods=minp).median()
    # A locally constant window (MAD = 0) falls back to the window's mean absolute deviation.
    mean_dev = dev.rolling(window, min_periods=minp).mean()
    scale = np.where(mad.to_numpy() > 0, _MAD_TO_SIGMA * mad.to_numpy(), 1.2533 * mean_dev.to_numpy())
    z = (wide - med) / _noise_floor(scale, med.to_numpy())
    return _after_warmup(z, wide, warmup)


def _after_warmup(z: pd.DataFrame, wide: pd.DataFrame, warmup: int) -> pd.DataFrame:
    """Blank the first `warmup` observed points of every series (a batch may appear late)."""
    seen = wide.notna().cumsum()
    return z.where(seen > warmup)


def drop_from_best(wide: pd.DataFrame, direction: Direction) -> pd.DataFrame:
    """Relative degradation from the running best (>= 0; NaN where undefined)."""
    if direction == "higher_is_better":
        best = wide.cummax()
        drop = (best - wide) / best.abs()
    else:
        best = wide.cummin()
        drop = (wide - best) / best.abs()
    return drop.where(best.abs() > 1e-12)


def _signed_for_direction(z: pd.DataFrame, direction: Direction) -> pd.DataFrame:
    """Positive when the point is worse than expected (below for recall-like, above for loss-like)."""
    return -z if direction == "higher_is_better" else z


# --------------------------------------------------------------------------------------- point outliers
def _neighbour_median(x: np.ndarray, half: int) -> np.ndarray:
    """Median of the `half` points on each side of every point, the point itself excluded.

    The ends are padded by odd reflection (2*x[0] - x[k]) so a trend continues past the edges.
    """
    n = x.size
    h = min(half, n - 1)
    first = x[np.isfinite(x)][0] if np.isfinite(x).any() else 0.0
    last = x[np.isfinite(x)][-1] if np.isfinite(x).any() else 0.0
    left = 2 * first - x[1:h + 1][::-1]
    right = 2 * last - x[-h - 1:-1][::-1]
    padded = np.r_[left, x, right]
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * h + 1)
    win = np.delete(win, h, axis=1)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(win, axis=1)


def _residual_z(x: np.ndarray, half: int = 5) -> np.ndarray:
    """Robust z of each point against the median of its neighbours, scaled by a global MAD of the residuals.

    A neighbour median follows level shifts and trends but ignores isolated spikes, so residuals isolate points.
    """
    resid = x - _neighbour_median(x, half)
    finite = resid[np.isfinite(resid)]
    if finite.size == 0:
        return np.full_like(x, np.nan)
    scale = _MAD_TO_SIGMA * float(np.median(np.abs(finite - np.median(finite))))
    if scale <= 0:
        scale = 1.2533 * float(np.mean(np.abs(finite - np.median(finite))))
    level = float(np.nanmax(np.abs(x))) if np.isfinite(x).any() else 1.0
    return resid / max(scale, 1e-9 * max(level, 1.0))


def outlier_indices(values: np.ndarray, *, threshold: float | None = None) -> list[int]:
    """Indices of isolated anomalous points (spikes/dips) in a 1-D series, plus NaN/Inf positions.

    The threshold defaults to the larger of 3.0 and the expected maximum of n Gaussian noise values
    (sqrt(2 ln n)), so long healthy series do not raise a false alarm every few hundred points.
    """
    x = np.asarray(values, dtype=float).ravel()
    n = x.size
    if n == 0:
        return []
    bad = ~np.isfinite(x)
    if n < 5:
        return sorted(np.flatnonzero(bad).tolist())
    xf = np.where(bad, np.nan, x)
    z = _residual_z(xf)
    thr = threshold if threshold is not None else max(3.0, math.sqrt(2.0 * math.log(n)))
    flags = bad | (np.abs(np.nan_to_num(z, nan=0.0)) > thr)
    return np.flatnonzero(flags).tolist()


# ------------------------------------------------------------------------------------------ run-level API
def _wide(long: pd.DataFrame, key: str | None) -> dict[str, pd.DataFrame]:
    """metric -> wide frame (index = step, columns = batch or the single metric) with Inf as NaN."""
    out: dict[str, pd.DataFrame] = {}
    if long is None or long.empty:
        return out
    cols = ["step", "metric"] + ([key] if key else [])
    frame = long.dropna(subset=["step"]).drop_duplicates(subset=cols, keep="last")
    for metric, part in frame.groupby("metric", sort=True):
        if key:
            w = part.pivot(index="step", columns=key, values="value")
        else:
            w = part.set_index("step")[["value"]].rename(columns={"value": None})
        w = w.sort_index().astype(float)
        out[str(metric)] = w.replace([np.inf, -np.inf], np.nan)
    return out


def _episodes(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) row positions of runs of True in a 1-D mask."""
    if not mask.any():
        return []
    m = np.r_[False, mask, False].astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def _severity(rel_drop: float, cfg: AnomalyDetectionConfig) -> Severity:
    if not math.isfinite(rel_drop) or rel_drop >= _CRITICAL_FACTOR * max(cfg.performance_drop_threshold, 1e-9):
        return "critical"
    return "warning"


def _where(batch: int | None) -> str:
    return f"batch {batch} " if batch is not None else ""


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


class _Collector:
    """Turns per-detector boolean masks over a wide frame into merged episode records."""

    def __init__(self, metric: str, direction: Direction, cfg: AnomalyDetectionConfig) -> None:
        self.metric, self.direction, self.cfg = metric, direction, cfg
        self.out: list[Anomaly] = []

    def add(self, wide: pd.DataFrame, mask: pd.DataFrame, detector: str, score: pd.DataFrame,
            describe, severity_of) -> None:
        """For each column, merge consecutive flagged *observed* points into one record."""
        steps = wide.index.to_numpy()
        m_all = mask.to_numpy(dtype=bool, na_value=False)
        if not m_all.any():
            return
        vals_all, score_all = wide.to_numpy(dtype=float), score.to_numpy(dtype=float)
        for j in np.flatnonzero(m_all.any(axis=0)):
            col = wide.columns[j]
            batch = None if col is None or (isinstance(col, float) and math.isnan(col)) else int(col)
            observed = ~np.isnan(vals_all[:, j]) | m_all[:, j]
            rows = np.flatnonzero(observed)
            sub = m_all[rows, j]
            for a, b in _episodes(sub):
                idx = rows[a:b + 1]
                v, s = vals_all[idx, j], score_all[idx, j]
                k = int(np.nanargmax(np.where(np.isnan(s), -np.inf, s))) if np.isfinite(s).any() else 0
                worst = self._worst(v)
                start, end = int(steps[idx[0]]), int(steps[idx[-1]])
                self.out.append(Anomaly(
                    step=start, metric=self.metric, value=worst, detector=detector,
                    score=float(s[k]) if math.isfinite(float(s[k])) else float("inf"),
                    severity=severity_of(worst, float(s[k])),
                    message=describe(batch, worst, float(s[k]), start, end),
                    batch=batch, end_step=end if end != start else None,
                ))

    def _worst(self, v: np.ndarray) -> float:
        fin = v[np.isfinite(v)]
        if fin.size == 0:
            return float(v[0]) if v.size else float("nan")
        return float(fin.min() if self.direction == "higher_is_better" else fin.max())


def _span(start: int, end: int) -> str:
    return f"step {start}" if start == end else f"steps {start}-{end}"


def _series_findings(metric: str, wide: pd.DataFrame,
                     nonfinite: tuple[pd.DataFrame, pd.DataFrame] | None,
                     cfg: AnomalyDetectionConfig) -> list[Anomaly]:
    """All per-series detectors for one metric (columns = batches, or one column for a global metric)."""
    direction = metric_direction(metric, cfg)
    worse_word = "below" if direction == "higher_is_better" else "above"
    col = _Collector(metric, direction, cfg)
    # threshold
    thr = metric_threshold(metric, cfg)
    if thr is not None:
        gap = (thr - wide) if direction == "higher_is_better" else (wide - thr)
        col.add(wide, gap > 0, "threshold", gap,
                lambda b, v, s, a, e: f"{_where(b)}{metric} = {_fmt(v)} {worse_word} threshold {_fmt(thr)} "
                                      f"at {_span(a, e)}",
                lambda v, s: _severity(s / abs(thr) if thr else s, cfg))

    # rolling z-score and its robust variant
    zthr = cfg.statistical_anomaly_zscore
    detectors = [("zscore", rolling_zscore)]
    if cfg.robust:
        detectors.append(("robust_zscore", rolling_robust_zscore))
    for name, fn in detectors:
        z = fn(wide, cfg.zscore_window, cfg.warmup_steps)
        bad = _signed_for_direction(z, direction) if cfg.drop_only else z.abs()
        col.add(wide, bad > zthr, name, z.abs(),
                lambda b, v, s, a, e, name=name: f"{_where(b)}{metric} = {_fmt(v)} is {s:.1f} "
                                                 f"{'robust ' if name == 'robust_zscore' else ''}sigma from its "
                                                 f"recent values at {_span(a, e)}",
                lambda v, s: "warning")

    # drop from running best (after warm-up)
    drop = drop_from_best(wide, direction)
    drop = _after_warmup(drop, wide, cfg.warmup_steps)
    col.add(wide, drop > cfg.performance_drop_threshold, "drop_from_best", drop,
            lambda b, v, s, a, e: f"{_where(b)}{metric} fell {s:.0%} from its best (to {_fmt(v)}) "
                                  f"at {_span(a, e)}",
            lambda v, s: _severity(s, cfg))

    # NaN / Inf as logged (the raw frame keeps Inf so the message can show it)
    if nonfinite is not None:
        mask, raw = nonfinite
        col.add(raw, mask, "nonfinite", mask.astype(float),
                lambda b, v, s, a, e: f"{_where(b)}{metric} is not finite ({v}) at {_span(a, e)}",
                lambda v, s: "critical")
    return col.out


def _cross_batch(metric: str, wide: pd.DataFrame, cfg: AnomalyDetectionConfig) -> list[Anomaly]:
    """A batch far below (recall-like) / above (loss-like) its peers at the same step."""
    if wide.shape[1] < 3:
        return []
    direction = metric_direction(metric, cfg)
    arr = wide.to_numpy(dtype=float)
    count = np.sum(np.isfinite(arr), axis=1)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(arr, axis=1)
            mad = np.nanmedian(np.abs(arr - med[:, None]), axis=1)
    scale = _noise_floor(_MAD_TO_SIGMA * np.nan_to_num(mad), np.nan_to_num(med))
    z = (arr - med[:, None]) / scale[:, None]
    worse = -z if direction == "higher_is_better" else z
    rel = np.abs(arr - med[:, None]) / np.maximum(np.abs(med[:, None]), 1e-12)
    mask = (worse > cfg.cross_batch_mad) & (rel > cfg.performance_drop_threshold) & (count[:, None] >= 3)
    col = _Collector(metric, direction, cfg)
    peers = pd.Series(med, index=wide.index)
    word = "below" if direction == "higher_is_better" else "above"
    col.add(wide, pd.DataFrame(mask, index=wide.index, columns=wide.columns), "cross_batch",
            pd.DataFrame(np.abs(z), index=wide.index, columns=wide.columns),
            lambda b, v, s, a, e: f"batch {b} {metric} = {_fmt(v)} is far {word} its peers "
                                  f"(median {_fmt(float(peers.loc[a]))}) at {_span(a, e)}",
            lambda v, s: "warning")
    # Severity by the relative gap to the peers' median at the worst point.
    out = []
    for a in col.out:
        level = float(peers.loc[a.step]) if a.step in peers.index else float("nan")
        rel_gap = abs(a.value - level) / abs(level) if math.isfinite(level) and abs(level) > 1e-12 else 0.0
        out.append(Anomaly(**{**a.to_dict(), "severity": _severity(rel_gap, cfg)}))
    return out


def _nonfinite(long: pd.DataFrame, key: str | None, metric: str,
               like: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(mask of logged NaN/Inf, raw values) aligned with `like`, or None when every value is finite."""
    part = long[long["metric"] == metric]
    vals = part["value"].to_numpy(dtype=float)
    bad = ~np.isfinite(vals)
    if not bad.any():
        return None
    part = part.assign(_bad=bad).drop_duplicates(subset=["step", "metric"] + ([key] if key else []), keep="last")
    if key:
        m = part.pivot(index="step", columns=key, values="_bad")
        raw = part.pivot(index="step", columns=key, values="value")
    else:
        m = part.set_index("step")[["_bad"]].rename(columns={"_bad": None})
        raw = part.set_index("step")[["value"]].rename(columns={"value": None})
    m = m.reindex(index=like.index, columns=like.columns).fillna(False).astype(bool)
    raw = raw.reindex(index=like.index, columns=like.columns).astype(float)
    return m, raw


def find_anomalies(batches: pd.DataFrame, global_metrics: pd.DataFrame,
                   cfg: AnomalyDetectionConfig | None = None) -> list[Anomaly]:
    """Every anomaly of a run: per-batch series, cross-batch comparisons and global metrics.

    `batches` is the long frame (step, batch, metric, value); `global_metrics` is (step, metric, value).
    Results are sorted by step, then severity (critical first).
    """
    cfg = cfg or AnomalyDetectionConfig()
    found: list[Anomaly] = []
    for key, long in (("batch", batches), (None, global_metrics)):
        if long is None or long.empty:
            continue
        long = long.assign(value=pd.to_numeric(long["value"], errors="coerce"))
        for metric, wide in _wide(long, key).items():
            nonfinite = _nonfinite(long, key, metric, wide)
            found.extend(_series_findings(metric, wide, nonfinite, cfg))
            if key:
                found.extend(_cross_batch(metric, wide, cfg))
    rank = {"critical": 0, "warning": 1, "info": 2}
    found.sort(key=lambda a: (a.step, rank.get(a.severity, 3), -1 if a.batch is None else a.batch, a.metric))
    return found

