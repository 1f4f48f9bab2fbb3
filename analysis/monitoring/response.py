"""What the monitor does about the anomalies of a step: queue an alert, evaluate the recovery strategies.

`MonitorResponse.after_step` is called once per `log_step`. Alerts pass a severity floor
(`alerts.min_severity`) and a per-metric throttle, then go to the sinks from background threads
(`analysis.monitoring.alerts`); recovery actions come from `analysis.monitoring.recovery`. Nothing here may raise
into, or block, the training loop.
"""

from __future__ import annotations

import logging
import reprlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from analysis.core.config import AnalyzerConfig
from analysis.core.vocabulary import Severity, severity_rank, worst_severity
from analysis.monitoring.alerts import (
    Alert,
    AlertDispatcher,
    AlertSink,
    AlertThrottle,
    SinkResult,
    active_run_link,
)
from analysis.monitoring.records import MetricStatus, MonitorAnomaly
from analysis.monitoring.recovery import RecoveryAction, RecoveryPolicy

__all__ = ["MonitorResponse"]

log = logging.getLogger(__name__)

_MAX_ALERT_LINES = 20


class MonitorResponse:
    """Alerting and recovery for one monitor: the dispatcher, the throttle, the recovery policy and their results."""

    def __init__(
        self,
        config: AnalyzerConfig,
        sinks: Sequence[AlertSink],
        recovery_metrics: Iterable[str],
        recovery_callbacks: Mapping[str, Callable[[RecoveryAction], Any]] | None = None,
    ) -> None:
        alerts = config.experiment_monitoring.alerts
        self.experiment_name = config.training_config.experiment_name
        self.sinks = list(sinks)
        self.dispatcher = AlertDispatcher(
            self.sinks, max_retries=alerts.max_retries, backoff=alerts.retry_backoff_seconds
        )
        self.throttle = AlertThrottle(alerts.throttle_seconds)
        self.min_rank = severity_rank(alerts.min_severity)
        self.recovery = RecoveryPolicy(config, recovery_metrics, recovery_callbacks)
        self.last_actions: list[RecoveryAction] = []  # recovery actions of the latest step
        self.actions: deque[RecoveryAction] = deque(maxlen=1000)

    def after_step(
        self,
        step: int,
        found: list[MonitorAnomaly],
        statuses: list[MetricStatus],
        batch_info: Mapping[str, Any] | None,
    ) -> None:
        """Queue an alert for what passes the severity floor and the throttle; evaluate recovery strategies."""
        try:
            if found:
                self.handle_anomalies(step, found, batch_info)
            if self.recovery.enabled:
                self.last_actions = self.recovery.evaluate(step, statuses)
                self.actions.extend(self.last_actions)
            elif self.last_actions:
                self.last_actions = []
        except Exception:  # alerting and recovery must never break the training loop
            log.exception("TrainingMonitor: alerting/recovery failed at step %s", step)

    def handle_anomalies(
        self, step: int, anomalies: list[MonitorAnomaly], batch_info: Mapping[str, Any] | None = None
    ) -> None:
        """Send one alert for the anomalies of this step that pass the severity floor and per-metric throttle."""
        send = [a for a in anomalies if a.severity.rank >= self.min_rank and self.throttle.allow(a.metric, a.severity)]
        if send:
            self.dispatcher.submit(self.alert(step, send, batch_info))

    def alert(self, step: int, anomalies: list[MonitorAnomaly], batch_info: Mapping[str, Any] | None) -> Alert:
        """One alert for the anomalies of a step: title < 64 characters, one line per anomaly (at most 20)."""
        level: Severity = worst_severity(a.severity for a in anomalies)
        name = self.experiment_name
        if len(anomalies) == 1:
            title = f"{name}: {anomalies[0].metric} {anomalies[0].kind} at step {step}"
        else:
            title = f"{name}: {len(anomalies)} anomalies at step {step}"
        title = " ".join(title.split())  # metric names are untrusted: no newlines into email headers
        lines = [f"- [{a.severity}] {a.message}" for a in anomalies[:_MAX_ALERT_LINES]]
        if len(anomalies) > _MAX_ALERT_LINES:
            lines.append(f"- ... and {len(anomalies) - _MAX_ALERT_LINES} more")
        info = _describe(batch_info)
        if info:
            lines.append(f"batch info: {info}"[:500])
        return Alert(
            title=title[:63],
            text="\n".join(lines),
            level=level.value,
            step=step,
            anomalies=tuple(anomalies),
            run=name,
            link=active_run_link(),
        )

    @property
    def delivery_results(self) -> list[SinkResult]:
        return self.dispatcher.snapshot()

    @property
    def stats(self) -> dict[str, int]:
        d = self.dispatcher
        return {
            "delivered": d.delivered,
            "failed": d.failed,
            "dropped": d.dropped,
            "throttled": self.throttle.suppressed,
        }


def _describe(batch_info: Any) -> str:
    """A short text of `batch_info` for an alert ("" for none); never raises (a DataFrame, an array, a Series or
    a user's object whose truth value or repr fails)."""
    if batch_info is None:
        return ""
    try:
        if isinstance(batch_info, Mapping):
            if not batch_info:
                return ""
            return reprlib.repr(dict(batch_info))
        return reprlib.repr(batch_info)
    except Exception:
        return f"<{type(batch_info).__name__}>"
