"""What the monitor's parts hand each other: `MonitorAnomaly` (a finding), `MetricStatus` (one metric's state),
`Alert` (a message for the sinks) and `AlertDeliveryError` (a sink's failure).

They live apart from the code that makes and reads them so that imports point one way: tracking, recovery,
alerting and the `TrainingMonitor` import this module, and it imports none of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from analysis.core.records import Anomaly

__all__ = ["Alert", "AlertDeliveryError", "MetricStatus", "MonitorAnomaly"]


@dataclass(frozen=True)
class MonitorAnomaly(Anomaly):
    """An `Anomaly` found in real time; `kind` is the detector name (the handbook's word for it)."""

    @property
    def kind(self) -> str:
        return self.detector

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.detector
        return data


@dataclass(frozen=True)
class MetricStatus:
    """What the monitor knows about one metric after an observation; the input of recovery strategies."""

    metric: str
    step: int
    value: float
    higher_is_better: bool
    best: float | None  # None until a finite value was seen
    best_step: int | None
    relative_drop: float  # degradation from the best, as a fraction of |best| (0 when at or better than best)
    stale_count: int  # observations since the last improvement
    bad_streak: int  # consecutive observations that were degraded (threshold breach, drop, or non-finite)
    last_good_step: int | None  # last step where the metric was healthy
    nonfinite: bool
    below_threshold: bool
    warmed_up: bool


class AlertDeliveryError(Exception):
    """A sink could not deliver an alert (HTTP error status, SMTP refusal, ...)."""


@dataclass(frozen=True)
class Alert:
    """One message to deliver: a short title (< 64 chars, wandb's limit), a body and a level."""

    title: str
    text: str
    level: str = "warning"  # info | warning | critical
    step: int | None = None
    anomalies: tuple[Anomaly, ...] = ()
    run: str = ""  # the experiment / run name, when known
    link: str = ""  # a URL of the run (the active wandb run's page), when known
