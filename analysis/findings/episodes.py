"""Flags -> episodes -> `Anomaly` records: neighbouring flags of one detector on one series merge into one record.

An episode spans `step`..`end_step` and carries the worst value, the strongest score and one severity: from the
largest relative degradation in it (`degradation_severity`), kept within the bounds the detector sets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.records import Anomaly
from analysis.core.vocabulary import Direction, Severity
from analysis.findings.matrices import MetricMatrix

__all__ = ["MERGE_GAP", "SUSTAINED_GAP", "Describe", "EpisodeEmitter", "degradation_severity", "merge_episodes"]

MERGE_GAP = 2  # point detectors: flags this many observed points apart still belong to one episode
SUSTAINED_GAP = 5  # threshold / drop / cross-batch: a level hovering at the bound makes one episode, not ten

# describe(batch, worst value, strongest score, first step, last step) -> the record's message
Describe = Callable[[int | None, float, float, int, int], str]


def merge_episodes(rows: np.ndarray, gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Group sorted observed-row positions into (first, last) index pairs, allowing `gap` missing ones."""
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) > gap + 1)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, rows.size - 1]
    return list(zip(starts.tolist(), ends.tolist()))


def degradation_severity(rel_worse: float, cfg: AnomalyDetectionConfig) -> Severity:
    """Info when not worse, critical from `critical_drop_threshold` (relative degradation), warning between."""
    if rel_worse >= cfg.critical_drop_threshold:
        return Severity.CRITICAL
    return Severity.WARNING if rel_worse > 0 else Severity.INFO


def _clamp(level: Severity, at_least: Severity, at_most: Severity) -> Severity:
    return min(max(level, at_least, key=lambda s: s.rank), at_most, key=lambda s: s.rank)


class EpisodeEmitter:
    """Turns a flag matrix into merged episode records for one metric matrix (any number of detectors)."""

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
        gap: int = MERGE_GAP,
        at_least: Severity = Severity.INFO,
        at_most: Severity = Severity.CRITICAL,
    ) -> None:
        """flags/score are (n, k); rel_worse is the relative degradation per cell (or one number for all).

        An episode's severity comes from its largest degradation (see `degradation_severity`), kept within
        `at_least`..`at_most`.
        """
        flags = flags & self.observed
        if not flags.any():
            return
        # Every flagged cell at once, by column then row (a wide run has thousands of flagged series): its
        # position among the observed points of its series, and where a new episode starts.
        rank = np.cumsum(self.observed, axis=0) - 1
        cols, rows = np.nonzero(flags.T)
        pos = rank[rows, cols]
        starts = np.flatnonzero(np.r_[True, (cols[1:] != cols[:-1]) | (np.diff(pos) > gap + 1)])
        ends = np.r_[starts[1:], cols.size] - 1
        raw = self.m.raw[rows, cols]
        finite = np.isfinite(raw)
        if self.direction == "lower_is_better":
            worst = np.maximum.reduceat(np.where(finite, raw, -np.inf), starts)
        else:
            worst = np.minimum.reduceat(np.where(finite, raw, np.inf), starts)
        any_finite = np.logical_or.reduceat(finite, starts)
        sc = score[rows, cols]
        # the strongest score ignoring NaN (inf when no score is finite), the largest degradation (0 when unknown)
        strongest = np.where(np.logical_or.reduceat(np.isfinite(sc), starts), np.fmax.reduceat(sc, starts), np.inf)
        rel = rel_worse[rows, cols] if isinstance(rel_worse, np.ndarray) else np.full(cols.size, rel_worse)
        largest = np.fmax.reduceat(rel, starts)
        largest = np.where(np.isnan(largest), 0.0, largest)
        steps = self.m.steps
        for e, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            batch = self.m.columns[int(cols[a])]
            value = float(worst[e]) if any_finite[e] else self._worst(raw[a : b + 1])
            start, end = int(steps[rows[a]]), int(steps[rows[b]])
            self.out.append(
                Anomaly(
                    step=start,
                    metric=self.m.metric,
                    value=value,
                    detector=detector,
                    score=float(strongest[e]),
                    severity=_clamp(degradation_severity(float(largest[e]), self.cfg), at_least, at_most),
                    message=describe(batch, value, float(strongest[e]), start, end),
                    batch=batch,
                    end_step=end if end != start else None,
                )
            )

    def _worst(self, v: np.ndarray) -> float:
        """The worst finite value of an episode (lowest recall, highest loss); else its first NaN/Inf.

        Vectorised (an episode may hold thousands of points); `vocabulary.worst_index` is the scalar rule.
        """
        fin = v[np.isfinite(v)]
        if fin.size == 0:
            nonfin = v[~np.isnan(v)]
            return float(nonfin[0]) if nonfin.size else float("nan")
        return float(fin.max() if self.direction == "lower_is_better" else fin.min())
