"""Finding records shared by the detectors, the root-cause analysis, the reports and the app.

Steps are in the run's step axis (`global_step` when logged, `_step` otherwise); `batch` is None for
run-level metrics such as `val/recall`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ChangePoint:
    step: int  # first step of the new segment
    metric: str
    mean_before: float
    mean_after: float
    delta: float  # mean_after - mean_before
    batch: int | None = None
    severity: Severity = "info"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RootCause:
    """One ranked explanation of a problematic batch or episode, with its numbers and one plain sentence."""

    batch: int | None
    step: int | None  # first bad step
    side: Literal["data", "model", "unknown"]
    sentence: str
    score: float  # ranking key, higher = more important
    evidence: dict = field(default_factory=dict)  # numbers behind the sentence (medians, p-values, counts)

    def to_dict(self) -> dict:
        return asdict(self)
