"""Anomaly detectors over metric series -> `Anomaly` records.

Each metric of a run becomes one matrix (rows = steps, columns = batches; one column for a global metric), and
every detector is a handful of vectorised numpy/bottleneck operations over the whole matrix, so a run with
200 batches x 3 metrics x 10,000 steps takes about a second. The series-level `outlier_indices` is separate: it
flags isolated points in one series after the fact (neighbours on both sides are known).

This module holds the detectors; the pieces live next to it, one job each: `matrices` (long frame -> matrices),
`series_stats` (rolling z-scores, running medians, drop from best), `episodes` (flags -> merged `Anomaly`
records), `outliers` (series-level point outliers). Their public functions are re-exported here. Metric
direction, schedules, thresholds and severities come from `analysis.core.vocabulary`.

Detectors (names as in `Anomaly.detector`):
- `threshold`: direction-aware absolute bound (`metric_thresholds`; `{"recall": 0.8}` means every `*/recall` must
  stay >= 0.8; a loss-like metric must stay <= its bound). Early training that has not reached the bound yet is
  `info`; later, small violations must persist (see `_threshold`).
- `zscore`: |z| against the mean/std of the *previous* `zscore_window` points, after `warmup_steps`, so early
  training does not dominate the statistics. Reported as the Gaussian z of the same tail probability (a std from
  20 points makes the raw ratio Student-t, which would flag three times too often).
- `robust_zscore`: the same against the median of the previous window, scaled by the median deviation from the
  trailing medians over `series_stats.SCALE_WINDOWS` windows (outliers barely move it; a healthy rising curve widens it).
- `drop_from_best`: relative drop of the series (smoothed by a centred 5-point median, so single-point blips are
  left to the z-scores) from its running best (max for recall-like, min for loss-like), after warm-up; only for a
  metric that has a best to fall from (`vocabulary.has_best`: not a GAN player's loss, not a gradient norm, not a
  name that says nothing of its direction).
- `nonfinite`: NaN / Inf values as logged (the only detector run on context columns: schedules such as the learning
  rate, which change on purpose, and resource figures such as the data-loading time; see `is_context`); its score is
  the share of the series' logged values that are not finite (1: the metric never had a value).
- `cross_batch`: a batch far worse than its peers at the same step (robust z across batches above
  `cross_batch_mad`, raised like the z bar on big runs, *and* a relative gap above `performance_drop_threshold`).

On a series of n points the z bar is max(statistical_anomaly_zscore, sqrt(2 ln n)) when `zscore_length_adjusted`
(the expected maximum of n Gaussian noise values): a healthy 10,000-step series does not raise dozens of alarms.
Flags of one detector on one series that are at most `episodes.MERGE_GAP` observed points apart (`SUSTAINED_GAP`, or
half the z window for thresholds, for the level detectors) merge into an episode (`step`..`end_step`, worst
value, strongest score). Severity: `critical` for NaN/Inf and degradations of at least
`critical_drop_threshold` (relative), `warning` for other degradations, `info` for unusual improvements.
"""

from __future__ import annotations

import math
import warnings

import bottleneck as bn
import numpy as np
import pandas as pd

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.numbers import worse_than_best
from analysis.core.records import Anomaly
from analysis.core.vocabulary import (
    INTERMITTENT_RECOVERIES,
    Direction,
    Severity,
    has_best,
    is_context,
    metric_direction,
    metric_threshold,
    nonfinite_severity,
    severity_rank,
)
from analysis.findings.episodes import SUSTAINED_GAP, Describe, EpisodeEmitter
from analysis.findings.matrices import MetricMatrix, metric_matrices
from analysis.findings.outliers import outlier_indices, point_outlier_z
from analysis.findings.series_stats import (
    EPS,
    MAD_TO_SIGMA,
    SMOOTH_POINTS,
    centred_median,
    drop_from_best,
    floor_scale,
    nonfinite_stretches,
    rolling_robust_zscore,
    rolling_robust_zscore_and_median,
    rolling_zscore,
    rolling_zscore_and_mean,
    seen_count,
    z_bar,
)

# Re-exported: callers import these from here (the public path of the series-level functions).
__all__ = [
    "DIRECTIONAL_DETECTORS",
    "MetricMatrix",
    "drop_from_best",
    "find_anomalies",
    "metric_matrices",
    "outlier_indices",
    "point_outlier_z",
    "rolling_robust_zscore",
    "rolling_zscore",
    "z_bar",
]


# Detectors that flag a metric only when it gets worse (in its direction, `metric_direction`): their hits vouch for
# a fall, never for a rise (`events._attach`). The z-scores flag both ways.
DIRECTIONAL_DETECTORS = frozenset({"threshold", "drop_from_best", "cross_batch"})


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def _span(start: int, end: int) -> str:
    return f"step {start}" if start == end else f"steps {start}-{end}"


def _who(batch: int | None) -> str:
    return f"batch {batch} " if batch is not None else ""


def _z_message(metric: str, word: str) -> Describe:
    def describe(b: int | None, v: float, s: float, a: int, e: int) -> str:
        return f"{_who(b)}{metric} = {_fmt(v)} is {s:.1f} {word} from its recent values at {_span(a, e)}"

    return describe


def _bad_sign(direction: Direction) -> float:
    """+1 when larger values are worse (loss-like), -1 when smaller values are worse (recall-like)."""
    return -1.0 if direction == "higher_is_better" else 1.0


def _matrix_findings(m: MetricMatrix, cfg: AnomalyDetectionConfig) -> list[Anomaly]:
    """All per-series detectors for one metric matrix."""
    direction = metric_direction(m.metric, cfg.metric_directions)
    sign = _bad_sign(direction)
    worse_word = "below" if direction == "higher_is_better" else "above"
    x = m.values
    em = EpisodeEmitter(m, direction, cfg)
    if is_context(m.metric, cfg.metric_directions):
        _nonfinite(m, em)
        return em.out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        smooth = centred_median(x, SMOOTH_POINTS)  # shared by the threshold and drop-from-best detectors
        thr = metric_threshold(m.metric, cfg.metric_thresholds)
        if thr is not None:
            _threshold(m, x, smooth, thr, sign, worse_word, cfg, em)

        n_points = np.isfinite(x).sum(axis=0)
        bar = z_bar(cfg, n_points)[None, :]
        for name, fn, word in (
            ("zscore", rolling_zscore_and_mean, "sigma"),
            ("robust_zscore", rolling_robust_zscore_and_median, "robust sigma"),
        ):
            if name == "robust_zscore" and not cfg.robust:
                continue
            z, centre = fn(x, cfg.zscore_window, cfg.warmup_steps)
            worse_z = sign * z
            flags = (worse_z > bar) if cfg.drop_only else (np.abs(z) > bar)
            # Severity from the relative distance to the window's centre, in the bad direction.
            rel = sign * (x - centre) / np.fmax(np.abs(centre), EPS)
            em.emit(
                name,
                flags,
                np.abs(z),
                rel,
                _z_message(m.metric, word),
            )

        if has_best(m.metric, cfg.metric_directions):
            drop = drop_from_best(x, direction, smoothed=smooth)
            drop = np.where(seen_count(x) > cfg.warmup_steps, drop, np.nan)
            verb = "fell" if direction == "higher_is_better" else "rose"
            em.emit(
                "drop_from_best",
                drop > cfg.performance_drop_threshold,
                drop,
                drop,
                lambda b, v, s, a, e: (
                    f"{_who(b)}{m.metric} {verb} {s:.0%} from its best (to {_fmt(v)}) at {_span(a, e)}"
                    if s < 1.0 or verb == "fell"
                    else f"{_who(b)}{m.metric} {verb} to {_fmt(v)}, {worse_than_best(s)}, at {_span(a, e)}"
                ),
                gap=SUSTAINED_GAP,
                at_least=Severity.WARNING,
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
    em: EpisodeEmitter,
) -> None:
    """Values on the wrong side of the bound, in two kinds of episode.

    Before a series has clearly passed its bound once (its smoothed value better than the bound by
    `performance_drop_threshold`; early training), being short of it is expected: those episodes are `info`
    ("has not reached 0.8 yet"). Afterwards a small violation must persist (the centred 5-point median is
    past the bound too) while a large one (at least `performance_drop_threshold`, relative) counts at once:
    noise around the bound does not flap into dozens of episodes, and a single bad value is still caught.
    """
    gap = sign * (x - thr)  # > 0 means on the wrong side of the bound
    rel = gap / max(abs(thr), EPS)
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
        at_most=Severity.INFO,
    )  # one episode per series: the whole approach to the bound
    em.emit(
        "threshold",
        after,
        gap,
        rel,
        lambda b, v, s, a, e: f"{_who(b)}{m.metric} = {_fmt(v)} {worse_word} threshold {_fmt(thr)} at {_span(a, e)}",
        gap=max(SUSTAINED_GAP, cfg.zscore_window // 2),
        at_least=Severity.WARNING,
    )


def _nonfinite(m: MetricMatrix, em: EpisodeEmitter) -> None:
    """NaN/Inf cells at `nonfinite_severity`, read per series over its logged cells: a leading stretch (no value
    yet) is emitted apart as a note, and the other cells of a series that keeps coming back to finite values
    (intermittent NaNs) apart at their own, lower severity."""
    nf = m.nonfinite
    if not nf.any():
        return
    leading = np.zeros(nf.shape, dtype=bool)
    intermittent = np.zeros(nf.shape[1], dtype=bool)
    share = np.ones(nf.shape)  # the score: the share of its series' logged values that are NaN/Inf (1: never finite)
    for j in np.flatnonzero(nf.any(axis=0)).tolist():
        rows = np.flatnonzero(m.logged[:, j])
        lead, recoveries = nonfinite_stretches(nf[rows, j])
        leading[rows[lead], j] = True
        intermittent[j] = recoveries >= INTERMITTENT_RECOVERIES
        share[:, j] = float(nf[rows, j].mean())
    rest = nf & ~leading
    groups = (
        (leading, nonfinite_severity(m.metric, leading=True)),
        (rest & ~intermittent[None, :], nonfinite_severity(m.metric)),
        (rest & intermittent[None, :], nonfinite_severity(m.metric, INTERMITTENT_RECOVERIES)),
    )
    for flags, severity in groups:
        if flags.any():
            em.emit(
                "nonfinite",
                flags,
                share,
                math.inf,
                lambda b, v, s, a, e: f"{_who(b)}{m.metric} is not finite ({v}) at {_span(a, e)}",
                at_most=severity,
            )


def _cross_batch(
    m: MetricMatrix, x: np.ndarray, direction: Direction, cfg: AnomalyDetectionConfig, em: EpisodeEmitter
) -> None:
    """A batch far worse than its peers at the same step."""
    sign = _bad_sign(direction)
    count = np.isfinite(x).sum(axis=1)
    med = bn.nanmedian(x, axis=1)
    mad = bn.nanmedian(np.abs(x - med[:, None]), axis=1)
    scale = floor_scale(MAD_TO_SIGMA * np.nan_to_num(mad), np.nan_to_num(med))
    z = (x - med[:, None]) / scale[:, None]
    rel = sign * (x - med[:, None]) / np.fmax(np.abs(med[:, None]), EPS)
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
        gap=SUSTAINED_GAP,
        at_least=Severity.WARNING,
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
        found = [a for a in found if a.severity != Severity.INFO]
    found.sort(
        key=lambda a: (a.step, -severity_rank(a.severity), -1 if a.batch is None else a.batch, a.metric, a.detector)
    )
    return found
