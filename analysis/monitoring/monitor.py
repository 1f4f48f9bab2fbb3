"""Real-time anomaly detection inside a training loop: `TrainingMonitor`, the public entry point.

`TrainingMonitor(alert_thresholds).log_step(step, metrics)` returns the anomalies at this step. The work is split
by job, and imports point one way (this module -> the others -> `records`):

- `analysis.monitoring.tracking`: per-metric rolling statistics and the detectors (threshold, z-score, drop from
  best, non-finite, plateau), O(1) per metric and per call;
- `analysis.monitoring.response`: alerts to the sinks (`analysis.monitoring.alerts`, background threads) and the
  recovery strategies (`analysis.monitoring.recovery`); neither can raise into, or block, the caller of `log_step`;
- `analysis.monitoring.session_reports`: the reports written by `close()` (`reporting.auto_generate_reports`);
- `analysis.monitoring.records`: `MonitorAnomaly` and `MetricStatus`, shared by all of them.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from analysis.core.config import AnalyzerConfig, ExperimentMonitoringConfig, config_from_dict
from analysis.core.errors import ConfigError
from analysis.monitoring.alerts import AlertSink, AlertThrottle, SinkResult, sinks_from_config
from analysis.monitoring.records import MetricStatus, MonitorAnomaly
from analysis.monitoring.recovery import RecoveryAction, RecoveryPolicy
from analysis.monitoring.response import MonitorResponse
from analysis.monitoring.session_reports import SessionRun, active_wandb_run, write_session_reports
from analysis.monitoring.tracking import MetricState, MetricTracker

__all__ = ["MetricStatus", "MonitorAnomaly", "TrainingMonitor"]

log = logging.getLogger(__name__)

DEFAULT_REPORT_DIR = Path("experiment_reports")  # the CLI's default too


class MetricsLike(Protocol):
    """What `log_step` reads: a dict, a `pd.Series`, anything with `.items()` of (name, value)."""

    def items(self) -> Iterable[tuple[Any, Any]]: ...


class TrainingMonitor:
    """Watch metrics as they are logged; return anomalies, send alerts, suggest recovery actions.

    `alert_thresholds` maps a metric name (or its last part, e.g. ``recall``) to an absolute bound; the bound is a
    floor for higher-is-better metrics and a ceiling for lower-is-better ones (names with loss/error/cer/wer/
    perplexity). `config` is an `AnalyzerConfig` or its `experiment_monitoring` part (defaults when None). `sinks` is
    a list of alert sinks (`analysis.monitoring.alerts`); None builds them from `config.experiment_monitoring.alerts`.
    `report_dir` is where `close()` writes the reports of the monitored wandb run (default ./experiment_reports).
    """

    def __init__(
        self,
        alert_thresholds: Mapping[str, float] | None = None,
        config: AnalyzerConfig | ExperimentMonitoringConfig | Mapping[str, Any] | None = None,
        sinks: Sequence[AlertSink] | None = None,
        *,
        recovery_metrics: Iterable[str] | None = None,
        recovery_callbacks: Mapping[str, Callable[[RecoveryAction], Any]] | None = None,
        history_size: int = 100,
        max_metrics: int = 10_000,
        report_dir: str | Path | None = None,
    ) -> None:
        self.config = _as_config(config)
        mon = self.config.experiment_monitoring
        self.alert_thresholds = _thresholds(alert_thresholds)
        self.tracker = MetricTracker(
            self.config,
            {**mon.anomaly_detection.metric_thresholds, **self.alert_thresholds},
            history_size=history_size,
            max_metrics=max_metrics,
        )
        self.enabled = mon.enable_real_time_analysis
        self.anomaly_count = 0
        self.recent_anomalies: deque[MonitorAnomaly] = deque(maxlen=1000)

        # alerts (the sink threads start on the first alert) and recovery, which by default watches the metrics
        # given thresholds
        metrics = self.alert_thresholds.keys() if recovery_metrics is None else recovery_metrics
        self.response = MonitorResponse(
            self.config,
            sinks_from_config(self.config) if sinks is None else sinks,
            metrics,
            recovery_callbacks,
        )
        self._status_metrics = frozenset(self.recovery.metrics) if self.recovery.enabled else frozenset()
        self._watched: dict[str, bool] = {}  # metric name -> recovery watches it (`val/recall` for `recall`)

        # reports at close(): of the wandb run active while monitoring, once it finished
        self.report_dir = Path(report_dir) if report_dir is not None else DEFAULT_REPORT_DIR
        self._auto_reports = mon.reporting.auto_generate_reports
        self.session_run: SessionRun | None = None
        self.report_paths: dict[str, Path] = {}
        self._closed = False

    # -- the parts' public faces --------------------------------------------------------------------------------
    @property
    def max_metrics(self) -> int:
        """Distinct metric names tracked; bounds memory when keys are unbounded."""
        return self.tracker.max_metrics

    @property
    def sinks(self) -> list[AlertSink]:
        return self.response.sinks

    @property
    def throttle(self) -> AlertThrottle:
        return self.response.throttle

    @property
    def recovery(self) -> RecoveryPolicy:
        return self.response.recovery

    @property
    def last_actions(self) -> list[RecoveryAction]:
        """Recovery actions of the latest `log_step`."""
        return self.response.last_actions

    @property
    def actions(self) -> deque[RecoveryAction]:
        """Recent recovery actions (at most 1000), oldest first."""
        return self.response.actions

    @property
    def should_stop(self) -> bool:
        """True once early stopping was triggered."""
        return self.recovery.stopped

    @property
    def delivery_results(self) -> list[SinkResult]:
        """Recent alert deliveries (`analysis.monitoring.alerts.SinkResult`), oldest first; failures are here too."""
        return self.response.delivery_results

    @property
    def alert_stats(self) -> dict[str, int]:
        """Counts: alerts delivered / failed (after retries) / dropped (queue full) per sink, and throttled."""
        return self.response.stats

    def register_checkpoint(self, step: int, path: str | Path) -> None:
        """Record a checkpoint the loop saved, so a rollback can name it (the checkpoint dir is scanned too)."""
        self.recovery.register_checkpoint(step, path)

    @property
    def metric_states(self) -> dict[str, MetricState]:
        """Every tracked metric's rolling state (read-only use: tests and diagnostics)."""
        return self.tracker.states

    @property
    def metric_history(self) -> dict[str, deque[tuple[int, float]]]:
        """Recent (step, value) pairs per metric, bounded by `history_size` (the handbook's attribute)."""
        return {name: st.history for name, st in self.tracker.states.items()}

    def status(self, metric: str) -> MetricStatus | None:
        """The monitor's current view of one metric (None if never seen)."""
        return self.tracker.status(metric)

    # -- detection ----------------------------------------------------------------------------------------------
    def log_step(
        self, step: int, metrics: MetricsLike, batch_info: Mapping[str, Any] | Any = None
    ) -> list[MonitorAnomaly]:
        """Record one step of metrics and return the anomalies found at this step (may be empty).

        Non-numeric values are ignored. `batch_info` (e.g. ``{'batch': 3}``) is attached to the anomalies.
        """
        if not self.enabled:
            return []
        try:
            step = int(step)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float step
            log.warning("TrainingMonitor.log_step: step %r is not an integer; ignored", step)
            return []
        if not callable(getattr(metrics, "items", None)):  # a dict, a pd.Series, ...; a mistake must not raise
            log.warning(
                "TrainingMonitor.log_step: metrics must be a mapping of name to value, not %s; ignored",
                type(metrics).__name__,
            )
            return []
        if self.session_run is None and self._auto_reports:
            self.session_run = active_wandb_run()
        batch = _batch_of(batch_info)
        found: list[MonitorAnomaly] = []
        statuses: list[MetricStatus] = []
        observe = self.tracker.observe
        for name, raw in metrics.items():
            if isinstance(raw, float):
                value = raw
            elif isinstance(raw, (bool, str, bytes)) or raw is None:
                continue
            else:
                try:
                    value = float(raw)  # ints, numpy scalars, 0-d arrays
                except (TypeError, ValueError, OverflowError):
                    continue
            name = str(name)
            watched = self._watched.get(name)
            if watched is None:
                watched = bool(self._status_metrics) and self.recovery.watches(name)
                if len(self._watched) < self.tracker.max_metrics:  # bounded like the metric states
                    self._watched[name] = watched
            status = observe(name, step, value, batch, found, watched)
            if status is not None:
                statuses.append(status)
        if found:
            self.anomaly_count += len(found)
            self.recent_anomalies.extend(found)
        self.response.after_step(step, found, statuses, batch_info)
        return found

    def detect_real_time_anomalies(self, metrics: MetricsLike, step: int = -1) -> list[MonitorAnomaly]:
        """The handbook's name: same as `log_step` (it records the values too)."""
        return self.log_step(step, metrics)

    def handle_anomalies(
        self, step: int, anomalies: list[MonitorAnomaly], batch_info: Mapping[str, Any] | None = None
    ) -> None:
        """Send one alert for the anomalies of this step that pass the severity floor and per-metric throttle."""
        self.response.handle_anomalies(step, anomalies, batch_info)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued alerts were delivered or given up; True if everything was handled in time."""
        return self.response.dispatcher.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush pending alerts (bounded wait) and stop the background threads; then, with
        `reporting.auto_generate_reports`, write the reports of the wandb run that was active while monitoring
        (into `report_dir`) when that run has finished. Never raises: it runs in the loop's `finally`."""
        self.response.dispatcher.close(timeout)
        if self._closed:
            return
        self._closed = True
        if self._auto_reports and self.session_run is not None:
            try:
                self.report_paths = write_session_reports(self.session_run, self.config, self.report_dir)
            except Exception:  # a report must never hide the training loop's own outcome
                log.exception("TrainingMonitor.close: writing the reports of %s failed", self.session_run.folder)

    def __enter__(self) -> TrainingMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_config(config: AnalyzerConfig | ExperimentMonitoringConfig | Mapping[str, Any] | None) -> AnalyzerConfig:
    if config is None:
        return AnalyzerConfig()
    if isinstance(config, AnalyzerConfig):
        return config
    if isinstance(config, ExperimentMonitoringConfig):
        return AnalyzerConfig(experiment_monitoring=config)
    if isinstance(config, Mapping):
        data = dict(config)
        if not ({"experiment_monitoring", "training_config", "data_quality"} & data.keys()):
            data = {"experiment_monitoring": data}
        return config_from_dict(data)
    raise ConfigError(
        f"config must be an AnalyzerConfig, its experiment_monitoring part or a dict, not {type(config).__name__}"
    )


def _thresholds(alert_thresholds: Mapping[str, float] | None) -> dict[str, float]:
    """Validated `{metric: bound}`; a non-numeric bound is a `ConfigError` naming the metric."""
    if alert_thresholds is None:
        return {}
    if not isinstance(alert_thresholds, Mapping):
        raise ConfigError(
            f"alert_thresholds must be a mapping of metric name to number, not {type(alert_thresholds).__name__}"
        )
    out = {}
    for k, v in alert_thresholds.items():
        try:
            if isinstance(v, bool):
                raise TypeError
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"alert_thresholds[{k!r}]: {v!r} is not a number") from None
        if not math.isfinite(out[str(k)]):
            raise ConfigError(f"alert_thresholds[{k!r}]: {v!r} is not a finite number")
    return out


def _batch_of(batch_info: Any) -> int | None:
    """The batch index in `batch_info` (a dict, a pandas Series, ...; anything else, a DataFrame or an array
    included, gives None: a mistake must not raise into the loop)."""
    if batch_info is None or (not isinstance(batch_info, Mapping) and not _is_series(batch_info)):
        return None
    for key in ("batch", "batch_idx", "batch_index"):
        try:
            v = batch_info.get(key)
        except Exception:  # a user's mapping may raise anything
            return None
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):  # also numpy / torch-free ints
            return int(v)
    return None


def _is_series(obj: Any) -> bool:
    """A pandas Series (checked without importing pandas)."""
    return type(obj).__name__ == "Series" and type(obj).__module__.startswith("pandas")
