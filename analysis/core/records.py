"""Finding records shared by the detectors, the root-cause analysis, the reports and the app.

Steps are in the run's step axis (`global_step` when logged, `_step` otherwise); `batch` is None for
run-level metrics such as `val/recall`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from analysis.core.vocabulary import Severity

__all__ = ["Anomaly", "ChangePoint", "RootCause", "Severity"]


def _as_severity(record: object) -> None:
    """Frozen records accept a severity name and store the Severity member (same string, ordered)."""
    object.__setattr__(record, "severity", Severity.parse(record.severity))  # type: ignore[attr-defined]


def _flat_dict(record: Any) -> dict[str, Any]:
    """`asdict` for a record whose fields are all scalars: the same dict without asdict's recursive deep copy
    (a 100,000-column run has ~10^5 anomalies to serialise)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


@dataclass(frozen=True)
class Anomaly:
    step: int
    metric: str
    value: float
    detector: str  # threshold | zscore | robust_zscore | drop_from_best | nonfinite | cross_batch | ...
    score: float  # detector-specific strength (|z|, relative drop, distance below threshold, ...)
    severity: Severity
    message: str
    batch: int | None = None
    end_step: int | None = None  # set when consecutive flags were merged into an episode

    def __post_init__(self) -> None:
        _as_severity(self)

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)


@dataclass(frozen=True)
class ChangePoint:
    step: int  # first step of the new segment
    metric: str
    mean_before: float
    mean_after: float
    delta: float  # mean_after - mean_before
    batch: int | None = None
    severity: Severity = Severity.INFO

    def __post_init__(self) -> None:
        _as_severity(self)

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)


@dataclass(frozen=True)
class RootCause:
    """One ranked explanation of a problematic batch or episode, with its numbers and one plain sentence."""

    batch: int | None
    step: int | None  # first bad step
    side: Literal["data", "model", "unknown"]
    sentence: str
    score: float  # ranking key, higher = more important
    evidence: dict[str, Any] = field(default_factory=dict)  # numbers behind the sentence (medians, p-values, counts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
