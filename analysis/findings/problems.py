"""Which batches fell, and from when: the problems a root cause explains, built from the detectors' findings.

A batch has a problem when it *fell*: a degrading change point (the best locator), a drop from its best, a fall
below its peers, NaN/Inf, a critical z-score, or when it ends the run still short of its threshold. Early
training below a threshold and logged problematic images only support a problem, they never make one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.core.records import Anomaly, ChangePoint
from analysis.core.vocabulary import Severity, severity_rank
from analysis.findings.series_stats import level_at

__all__ = [
    "P_CHANGE",
    "P_CRITICAL",
    "P_ENDS_BAD",
    "P_WARNING",
    "SEVERITY_WEIGHT",
    "BatchProblem",
    "SeriesIndex",
    "batches_together",
    "before_after",
    "find_problems",
    "step_tolerance",
]

# Onset priorities (lower wins): a degrading change point locates a fall best; then critical and warning
# falls (drop from best, cross-batch, NaN/Inf, critical z); last, a batch that ends the run below its bound.
P_CHANGE, P_CRITICAL, P_WARNING, P_ENDS_BAD = 0, 1, 2, 3
_FALLS = {"drop_from_best", "cross_batch", "nonfinite"}
_ZSCORES = {"zscore", "robust_zscore"}

# How much a problem's worst supporting finding weighs in the ranking (see rootcause.RankingWeights.severity).
SEVERITY_WEIGHT: Mapping[Severity, float] = {Severity.CRITICAL: 2.0, Severity.WARNING: 1.0}


@dataclass
class BatchProblem:
    """What went wrong with one batch: candidate onsets (priority, step, metric) and supporting findings."""

    batch: int
    onsets: list[tuple[int, int, str | None]] = field(default_factory=list)
    severity_weight: float = 0.0
    detectors: set[str] = field(default_factory=set)
    n_findings: int = 0
    # NaN/Inf stretches as logged: (first step, last step, metric, the non-finite value)
    nonfinite: list[tuple[int, int, str, float]] = field(default_factory=list)

    @property
    def _onset(self) -> tuple[int, int, str | None]:
        return min(self.onsets, key=lambda o: (o[0], o[1]))

    @property
    def first_step(self) -> int:
        return self._onset[1]

    @property
    def metric(self) -> str | None:
        return self._onset[2]

    @property
    def ends_below_bound(self) -> bool:
        """The best onset is only that the batch ends the run short of its threshold."""
        return bool(self.onsets) and min(self.onsets)[0] == P_ENDS_BAD


def find_problems(
    anomalies: list[Anomaly], change_points: list[ChangePoint], batches: pd.DataFrame, images: pd.DataFrame | None
) -> dict[int, BatchProblem]:
    """batch -> its problem. Early training below a threshold is not a problem (every batch starts low);
    threshold flags and problematic images only support a problem found by a fall, unless the batch is still
    below its bound at the end of the run."""
    probs: dict[int, BatchProblem] = {}

    def get(batch: int) -> BatchProblem:
        return probs.setdefault(batch, BatchProblem(batch=batch))

    support: dict[int, list[tuple[str, Severity]]] = {}
    last_step = (
        batches.groupby(["batch", "metric"])["step"].max().to_dict()
        if batches is not None and not batches.empty
        else {}
    )
    for a in anomalies:
        if a.batch is None:
            continue
        b = int(a.batch)
        falls = a.detector in _FALLS or (a.detector in _ZSCORES and a.severity == Severity.CRITICAL)
        if falls:
            p = get(b)
            p.onsets.append((P_CRITICAL if a.severity == Severity.CRITICAL else P_WARNING, int(a.step), a.metric))
            if a.detector == "nonfinite":
                p.nonfinite.append((int(a.step), int(a.end_step or a.step), a.metric, float(a.value)))
        elif a.detector == "threshold" and (a.end_step or a.step) == last_step.get((b, a.metric)):
            get(b).onsets.append((P_ENDS_BAD, int(a.step), a.metric))
        if a.severity == Severity.INFO:
            continue
        support.setdefault(b, []).append((a.detector, a.severity))
    for c in change_points:
        if c.batch is not None and severity_rank(c.severity) >= Severity.WARNING.rank:
            get(int(c.batch)).onsets.append((P_CHANGE, int(c.step), c.metric))
            support.setdefault(int(c.batch), []).append(("change_point", c.severity))
    if images is not None and not images.empty and "batch" in images.columns:
        for b in images["batch"].dropna().unique():
            support.setdefault(int(b), []).append(("problematic_images", Severity.WARNING))
    for b, p in probs.items():
        for detector, sev in support.get(b, []):
            p.detectors.add(detector)
            p.severity_weight = max(p.severity_weight, SEVERITY_WEIGHT.get(sev, 0.0))
            p.n_findings += 1
    return {b: p for b, p in probs.items() if p.onsets}


class SeriesIndex:
    """(batch, metric) -> (steps, finite values), grouped once so a run with 200 problem batches stays fast."""

    def __init__(self, batches: pd.DataFrame) -> None:
        empty = batches.empty
        self._rows = batches.groupby(["batch", "metric"], sort=False).indices if not empty else {}
        self.metrics = {str(m) for m in batches["metric"].dropna().unique()} if not empty else set()
        # converted once: per-call column conversion cost ~0.4 ms x thousands of (batch, metric) lookups
        self._steps = batches["step"].to_numpy() if not empty else np.zeros(0, dtype=np.int64)
        self._values = (
            pd.to_numeric(batches["value"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if not empty
            else np.zeros(0)
        )
        self._cache: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    def get(self, batch: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
        key = (batch, metric)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rows = self._rows.get(key)
        if rows is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        steps, vals = self._steps[rows], self._values[rows]
        ok = np.isfinite(vals)
        order = np.argsort(steps[ok], kind="stable")
        out = self._cache[key] = (steps[ok][order], vals[ok][order])
        return out


def before_after(series: SeriesIndex, batch: int, metric: str, step: int, window: int) -> tuple[float, float]:
    """The batch's metric level at `step` from up to `window` points before it and from it on (NaN when a side is
    empty): their medians, carried to `step` along a clear trend (`series_stats.level_at`, as the events read
    their levels). Local windows: on a rising learning curve the level just before the fall is what fell."""
    steps, vals = series.get(batch, metric)
    before, after = steps < step, steps >= step
    return (
        level_at(steps[before][-window:], vals[before][-window:], step),
        level_at(steps[after][:window], vals[after][:window], step),
    )


def step_tolerance(batches: pd.DataFrame) -> float:
    """Two logging intervals: batches 'change together' when their first bad steps are this close."""
    if batches is None or batches.empty:
        return 0.0
    steps = np.unique(batches["step"].dropna().to_numpy())
    if steps.size < 2:
        return 0.0
    return 2.0 * float(np.median(np.diff(steps)))


def batches_together(probs: Mapping[int, BatchProblem], step: int, tol: float) -> list[int]:
    """The batches whose problem starts within `tol` steps of `step`, sorted."""
    return sorted(b for b, p in probs.items() if abs(p.first_step - step) <= tol)
