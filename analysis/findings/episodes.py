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
        for j in np.flatnonzero(flags.any(axis=0)):
            batch = self.m.columns[j]
            observed_rows = np.flatnonzero(self.observed[:, j])
            pos = np.flatnonzero(flags[observed_rows, j])  # positions among the observed points
            for a, b in merge_episodes(pos, gap):
                rows = observed_rows[pos[a : b + 1]]
                raw = self.m.raw[rows, j]
                sc = score[rows, j]
                worst = self._worst(raw)
                strongest = float(np.nanmax(sc)) if np.isfinite(sc).any() else float("inf")
                start, end = int(self.m.steps[rows[0]]), int(self.m.steps[rows[-1]])
                rel = rel_worse[rows, j] if isinstance(rel_worse, np.ndarray) else np.asarray([rel_worse])
                largest = float(np.nanmax(rel)) if not np.isnan(rel).all() else 0.0
                self.out.append(
                    Anomaly(
                        step=start,
                        metric=self.m.metric,
                        value=worst,
                        detector=detector,
                        score=strongest,
                        severity=_clamp(degradation_severity(largest, self.cfg), at_least, at_most),
                        message=describe(batch, worst, strongest, start, end),
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
