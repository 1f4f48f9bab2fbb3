"""Real-time anomaly detection inside a training loop: `TrainingMonitor`.

`TrainingMonitor(alert_thresholds).log_step(step, metrics)` returns the anomalies at this step. Detection is O(1)
per metric and per call (running sums over a bounded window), so it fits in the hot loop of a million-step run:

- ``threshold``: direction-aware absolute bounds (recall below 0.75, loss above 2.0);
- ``zscore``: |z| of the new value against the rolling window before it, after a warm-up;
- ``drop_from_best``: relative degradation from the running best (``performance_drop_threshold``); the best is
  taken over 3-point means, because the best single value of a noisy metric is an outlier of its noise;
- ``nonfinite``: NaN / +-Inf;
- ``plateau``: no improvement for ``plateau_patience`` observations.

Alerts go to sinks (see `analysis.monitoring.alerts`) from background threads; recovery actions come from
`analysis.monitoring.recovery`. Neither can raise into, or block, the caller of `log_step`.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from analysis.core.config import AnalyzerConfig, ExperimentMonitoringConfig
from analysis.core.errors import ConfigError
from analysis.core.records import SEVERITY_RANK, Anomaly
from analysis.findings.anomalies import metric_direction

log = logging.getLogger(__name__)

_BATCH_KEY = re.compile(r"^batch_(\d+)/")
_REL_EPS = 1e-4  # an improvement must beat the best by this fraction (plateau detection)
_RESUM_EVERY = 1024  # pushes between exact recomputations of a window's running sums


@dataclass(frozen=True)
class MonitorAnomaly(Anomaly):
    """An `Anomaly` found in real time; `kind` is the detector name (the handbook's word for it)."""

    @property
    def kind(self) -> str:
        return self.detector

    def to_dict(self) -> dict:
        data = asdict(self)
        data["kind"] = self.detector
        return data


def _lookup(name: str, table: Mapping[str, float]) -> float | None:
    if name in table:
        return table[name]
    return table.get(name.rsplit("/", 1)[-1])


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


class _MetricState:
    """Bounded per-metric state: a deque window with running (shifted) sums, the best so far and counters."""

    __slots__ = (
        "bad_streak",
        "batch",
        "best",
        "best_step",
        "higher",
        "history",
        "last_good_step",
        "n",
        "plateau_reported",
        "pushes",
        "s1",
        "s2",
        "shift",
        "stale",
        "threshold",
        "window",
    )

    def __init__(self, window: int, history: int, higher: bool, threshold: float | None) -> None:
        self.window: deque[float] = deque(maxlen=window)
        self.history: deque[tuple[int, float]] = deque(maxlen=history)
        self.shift: float | None = None  # subtracted before summing, to keep the variance numerically stable
        self.s1 = 0.0
        self.s2 = 0.0
        self.best: float | None = None
        self.best_step: int | None = None
        self.stale = 0
        self.bad_streak = 0
        self.last_good_step: int | None = None
        self.n = 0  # finite observations
        self.higher = higher
        self.threshold = threshold
        self.plateau_reported = False
        self.batch: int | None = None  # from a `batch_{i}/...` name
        self.pushes = 0

    def zscore(self, value: float) -> float | None:
        """z of `value` against the current window (None when the window has no spread)."""
        k = len(self.window)
        if k < 3:
            return None
        mean = self.s1 / k
        var = self.s2 / k - mean * mean
        if var <= 1e-24:
            return None
        std = math.sqrt(var * k / (k - 1))
        return (value - self.shift - mean) / std

    def drop(self, value: float) -> float:
        """Relative degradation of `value` from the best (0 when at or better than it)."""
        if self.best is None:
            return 0.0
        diff = (self.best - value) if self.higher else (value - self.best)
        if diff <= 0:
            return 0.0
        return diff / abs(self.best) if self.best else diff

    def update_best(self, step: int) -> bool:
        """Fold the mean of the last (up to) 3 points into the best; True when it improved."""
        w = self.window
        if len(w) >= 3:
            mean = (w[-1] + w[-2] + w[-3]) / 3 + self.shift
        else:
            mean = sum(w) / len(w) + self.shift
        best = self.best
        if best is None or (mean > best + _REL_EPS * abs(best) if self.higher else mean < best - _REL_EPS * abs(best)):
            self.best, self.best_step, self.stale = mean, step, 0
            return True
        self.stale += 1
        return False

    def push(self, value: float) -> None:
        if self.shift is None:
            self.shift = value
        x = value - self.shift
        if len(self.window) == self.window.maxlen:
            old = self.window[0]
            self.s1 -= old
            self.s2 -= old * old
        self.window.append(x)
        self.s1 += x
        self.s2 += x * x
        self.pushes += 1
        if self.pushes % _RESUM_EVERY == 0:
            self._resum()

    def _resum(self) -> None:
        """Re-centre on the window mean and recompute the sums exactly: no drift over millions of updates,
        and no cancellation when a metric wanders far from its first value (a loss going from 10 to 0.01)."""
        vals = [x + self.shift for x in self.window]
        self.shift = sum(vals) / len(vals)
        self.window.clear()
        self.window.extend(v - self.shift for v in vals)
        self.s1 = sum(self.window)
        self.s2 = sum(x * x for x in self.window)


class TrainingMonitor:
    """Watch metrics as they are logged; return anomalies, send alerts, suggest recovery actions.

    `alert_thresholds` maps a metric name (or its last part, e.g. ``recall``) to an absolute bound; the bound is a
    floor for higher-is-better metrics and a ceiling for lower-is-better ones (names with loss/error/cer/wer).
    `config` is an `AnalyzerConfig` or its `experiment_monitoring` part (defaults when None). `sinks` is a list of
    alert sinks (`analysis.monitoring.alerts`); None builds them from `config.experiment_monitoring.alerts`.
    """

    def __init__(
        self,
        alert_thresholds: Mapping[str, float] | None = None,
        config: AnalyzerConfig | ExperimentMonitoringConfig | Mapping | None = None,
        sinks: list | None = None,
        *,
        recovery_metrics: Iterable[str] | None = None,
        recovery_callbacks: Mapping[str, Callable] | None = None,
        history_size: int = 100,
        max_metrics: int = 10_000,
    ) -> None:
        from analysis.monitoring.alerts import AlertDispatcher, AlertThrottle, sinks_from_config
        from analysis.monitoring.recovery import RecoveryPolicy

        self.config = _as_config(config)
        mon = self.config.experiment_monitoring
        self._det = mon.anomaly_detection
        self.alert_thresholds = _thresholds(alert_thresholds)
        self._thresholds = {**self._det.metric_thresholds, **self.alert_thresholds}
        self._history_size = max(int(history_size), 1)
        self._states: dict[str, _MetricState] = {}
        self.max_metrics = max_metrics  # distinct names tracked; bounds memory when keys are unbounded
        self._overflow_warned = False
        self.enabled = mon.enable_real_time_analysis
        self.anomaly_count = 0
        self.recent_anomalies: deque[MonitorAnomaly] = deque(maxlen=1000)
        self.last_actions: list = []  # recovery actions of the latest log_step
        self.actions: deque = deque(maxlen=1000)
        self._severe = mon.auto_recovery.severe_drop_threshold
        self._warmup = self._det.warmup_steps  # hot-path copies of the detection settings
        self._zmax = self._det.statistical_anomaly_zscore
        self._drop_only = self._det.drop_only
        self._drop = self._det.performance_drop_threshold
        self._patience = mon.auto_recovery.plateau_patience

        # alerts: the sink threads start on the first alert
        alerts = mon.alerts
        self.sinks = list(sinks_from_config(self.config) if sinks is None else sinks)
        self._dispatcher = AlertDispatcher(
            self.sinks, max_retries=alerts.max_retries, backoff=alerts.retry_backoff_seconds
        )
        self.throttle = AlertThrottle(alerts.throttle_seconds)
        self._min_rank = SEVERITY_RANK[alerts.min_severity]

        # recovery watches the metrics that matter: by default those given thresholds
        metrics = self.alert_thresholds.keys() if recovery_metrics is None else recovery_metrics
        self.recovery = RecoveryPolicy(self.config, metrics, recovery_callbacks)
        self._status_metrics = frozenset(self.recovery.metrics) if self.recovery.enabled else frozenset()
        self._watched: dict[str, bool] = {}  # metric name -> recovery watches it (`val/recall` for `recall`)

    @property
    def should_stop(self) -> bool:
        """True once early stopping was triggered."""
        return self.recovery.stopped

    @property
    def delivery_results(self) -> list:
        """Recent alert deliveries (`analysis.monitoring.alerts.SinkResult`), oldest first; failures are here too."""
        return self._dispatcher.snapshot()

    @property
    def alert_stats(self) -> dict[str, int]:
        """Counts: alerts delivered / failed (after retries) / dropped (queue full) per sink, and throttled."""
        d = self._dispatcher
        return {
            "delivered": d.delivered,
            "failed": d.failed,
            "dropped": d.dropped,
            "throttled": self.throttle.suppressed,
        }

    def register_checkpoint(self, step: int, path: str | Path) -> None:
        """Record a checkpoint the loop saved, so a rollback can name it (the checkpoint dir is scanned too)."""
        self.recovery.register_checkpoint(step, path)

    @property
    def metric_history(self) -> dict[str, deque]:
        """Recent (step, value) pairs per metric, bounded by `history_size` (the handbook's attribute)."""
        return {name: st.history for name, st in self._states.items()}

    def status(self, metric: str) -> MetricStatus | None:
        """The monitor's current view of one metric (None if never seen)."""
        st = self._states.get(metric)
        if st is None or not st.history:
            return None
        step, value = st.history[-1]
        return self._status(
            metric, st, step, value, nonfinite=not math.isfinite(value), below=self._breaches(st, value)
        )

    # -- detection ----------------------------------------------------------------------------------------------
    def log_step(
        self, step: int, metrics: Mapping[str, Any], batch_info: Mapping[str, Any] | None = None
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
        batch = _batch_of(batch_info)
        found: list[MonitorAnomaly] = []
        statuses: list[MetricStatus] = []
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
                if len(self._watched) < self.max_metrics:  # bounded like the metric states
                    self._watched[name] = watched
            status = self._observe(name, step, value, batch, found, watched)
            if status is not None:
                statuses.append(status)
        if found:
            self.anomaly_count += len(found)
            self.recent_anomalies.extend(found)
        self._after_detection(step, found, statuses, batch_info)
        return found

    def detect_real_time_anomalies(self, metrics: Mapping[str, Any], step: int = -1) -> list[MonitorAnomaly]:
        """The handbook's name: same as `log_step` (it records the values too)."""
        return self.log_step(step, metrics)

    def _after_detection(
        self, step: int, found: list[MonitorAnomaly], statuses: list[MetricStatus], batch_info: Mapping[str, Any] | None
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
        send = [
            a
            for a in anomalies
            if SEVERITY_RANK[a.severity] >= self._min_rank and self.throttle.allow(a.metric, a.severity)
        ]
        if send:
            self._dispatcher.submit(self._alert(step, send, batch_info))

    def _alert(self, step: int, anomalies: list[MonitorAnomaly], batch_info: Mapping[str, Any] | None):
        from analysis.monitoring.alerts import Alert

        level = max((a.severity for a in anomalies), key=SEVERITY_RANK.__getitem__)
        name = self.config.training_config.experiment_name
        if len(anomalies) == 1:
            title = f"{name}: {anomalies[0].metric} {anomalies[0].kind} at step {step}"
        else:
            title = f"{name}: {len(anomalies)} anomalies at step {step}"
        title = " ".join(title.split())  # metric names are untrusted: no newlines into email headers
        lines = [f"- [{a.severity}] {a.message}" for a in anomalies[:20]]
        if len(anomalies) > 20:
            lines.append(f"- ... and {len(anomalies) - 20} more")
        if batch_info:
            info = dict(batch_info) if isinstance(batch_info, Mapping) else batch_info
            lines.append(f"batch info: {info!r}"[:500])
        return Alert(title=title[:63], text="\n".join(lines), level=level, step=step, anomalies=tuple(anomalies))

    def _state(self, name: str) -> _MetricState | None:
        st = self._states.get(name)
        if st is None:
            if len(self._states) >= self.max_metrics:
                if not self._overflow_warned:
                    self._overflow_warned = True
                    log.warning(
                        "TrainingMonitor tracks at most %d metrics; ignoring new ones such as %r",
                        self.max_metrics,
                        name,
                    )
                return None
            higher = metric_direction(name, self._det) == "higher_is_better"
            st = _MetricState(self._det.zscore_window, self._history_size, higher, _lookup(name, self._thresholds))
            m = _BATCH_KEY.match(name)
            st.batch = int(m.group(1)) if m else None
            self._states[name] = st
        return st

    @staticmethod
    def _breaches(st: _MetricState, value: float) -> bool:
        thr = st.threshold
        if thr is None or not math.isfinite(value):
            return False
        return value < thr if st.higher else value > thr

    def _observe(
        self, name: str, step: int, value: float, batch: int | None, out: list[MonitorAnomaly], want_status: bool
    ) -> MetricStatus | None:
        st = self._state(name)
        if st is None:
            return None
        st.history.append((step, value))
        b = st.batch if st.batch is not None else batch

        if value != value or value in (math.inf, -math.inf):
            st.bad_streak += 1
            out.append(
                MonitorAnomaly(
                    step, name, value, "nonfinite", math.inf, "critical", f"{name} is {value} at step {step}", b
                )
            )
            return self._status(name, st, step, value, nonfinite=True, below=False) if want_status else None

        warmed = st.n >= self._warmup
        degraded = False
        sev_cut = self._severe

        # threshold (direction-aware)
        below = False
        thr = st.threshold
        if thr is not None and (value < thr if st.higher else value > thr):
            below = degraded = True
            gap = (thr - value) if st.higher else (value - thr)
            rel = gap / abs(thr) if thr else gap
            word = "below" if st.higher else "above"
            out.append(
                MonitorAnomaly(
                    step,
                    name,
                    value,
                    "threshold",
                    rel,
                    "critical" if rel >= sev_cut else "warning",
                    f"{name} = {value:.4g} is {word} its threshold {thr:.4g} at step {step}",
                    b,
                )
            )

        if warmed:
            # rolling z-score against the window before this point
            z = st.zscore(value)
            if z is not None and abs(z) > self._zmax:
                bad_side = (z < 0) if st.higher else (z > 0)
                if bad_side or not self._drop_only:
                    sev = ("critical" if abs(z) > 2 * self._zmax else "warning") if bad_side else "info"
                    out.append(
                        MonitorAnomaly(
                            step,
                            name,
                            value,
                            "zscore",
                            abs(z),
                            sev,
                            f"{name} = {value:.4g} is {z:+.1f} standard deviations from its "
                            f"last {len(st.window)} values at step {step}",
                            b,
                        )
                    )
            # drop from the running best
            rel_drop = st.drop(value)
            if rel_drop >= self._drop and rel_drop > 0:
                degraded = True
                out.append(
                    MonitorAnomaly(
                        step,
                        name,
                        value,
                        "drop_from_best",
                        rel_drop,
                        "critical" if rel_drop >= sev_cut else "warning",
                        f"{name} = {value:.4g} is {rel_drop:.1%} worse than its best "
                        f"{st.best:.4g} (3-point mean ending at step {st.best_step})",
                        b,
                    )
                )

        st.push(value)
        st.n += 1
        # running best of the mean of the last 3 points (a raw best is an outlier of the noise) and plateau
        if st.update_best(step):
            st.plateau_reported = False
        elif warmed and st.stale >= self._patience and not st.plateau_reported:
            st.plateau_reported = True
            out.append(
                MonitorAnomaly(
                    step,
                    name,
                    value,
                    "plateau",
                    float(st.stale),
                    "info",
                    f"{name} has not improved for {st.stale} observations (best {st.best:.4g} at step {st.best_step})",
                    b,
                )
            )
        st.bad_streak = st.bad_streak + 1 if degraded else 0
        if not degraded:
            st.last_good_step = step
        return self._status(name, st, step, value, nonfinite=False, below=below) if want_status else None

    def _status(
        self, name: str, st: _MetricState, step: int, value: float, *, nonfinite: bool, below: bool
    ) -> MetricStatus:
        rel = st.drop(value) if math.isfinite(value) else 0.0
        return MetricStatus(
            name,
            step,
            value,
            st.higher,
            st.best,
            st.best_step,
            rel,
            st.stale,
            st.bad_streak,
            st.last_good_step,
            nonfinite,
            below,
            st.n >= self._det.warmup_steps,
        )

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued alerts were delivered or given up; True if everything was handled in time."""
        return self._dispatcher.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush pending alerts (bounded wait) and stop the background threads."""
        self._dispatcher.close(timeout)

    def __enter__(self) -> TrainingMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_config(config: AnalyzerConfig | ExperimentMonitoringConfig | Mapping | None) -> AnalyzerConfig:
    from analysis.core.config import config_from_dict

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


def _batch_of(batch_info: Mapping[str, Any] | None) -> int | None:
    if not batch_info:
        return None
    for key in ("batch", "batch_idx", "batch_index"):
        v = batch_info.get(key) if isinstance(batch_info, Mapping) else None
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):  # also numpy / torch-free ints
            return int(v)
    return None
