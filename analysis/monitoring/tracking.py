"""Per-metric tracking for the real-time monitor: rolling statistics and the detectors run on each observation.

Detection is O(1) per metric and per observation (running sums over a bounded window), so it fits in the hot loop
of a million-step run:

- ``threshold``: direction-aware absolute bounds (recall below 0.75, loss above 2.0);
- ``zscore``: |z| of the new value against the rolling window before it, after a warm-up, above
  ``statistical_anomaly_zscore`` and, when ``zscore_length_adjusted``, above sqrt(2 ln n) after n observations (the
  expected largest |z| of n noise values, the analysis's bar for a series of n points, `series_stats.z_bar`): on the
  heavy-tailed per-step losses of the real-curve corpus a bar of 3 flagged 0.9 % of the healthy `tune` observations;
- ``drop_from_best``: relative degradation of the level (the mean of the last 3 values, this one included) from
  the running best level (``performance_drop_threshold``): the best of 3-point means, because the best single value
  of a noisy metric is an outlier of its noise, and a single wild value is the z-score's to report. The drop must
  also stand out of that noise: ``statistical_anomaly_zscore`` standard errors of a 3-point mean, plus the expected
  lead of the best of n of them over their average, sqrt(2 ln n) more (`noise_bar`). Sigma is read from second
  differences x_t - 2 x_t-k + x_t-2k, in which a steady trend cancels (a learning curve's start no longer reads as
  noise): their median |d2| / (0.6745 sqrt(6)) for Gaussian noise, 0 when most values repeat exactly (any drop past
  the threshold then stands out). Without the bar a per-iteration training loss, whose values swing 10-30 % around
  its level, was "worse than its best" at 38 % of the observations of the healthy `tune` series of the real-curve
  corpus and 63 % of the `test` ones (`python -m benchmarks.alarms --monitor`). When the best is the mean of the metric's
  first values, the message says so ("its first values: never as good since"): a component loss of a detector that
  rises while the run learns is not a fall from what training had reached.
  The lag k runs over 1, 4 and 16. For white noise every lag gives the same sigma, but a logged running
  average or windowed median is smooth from one value to the next and wanders over tens of them (an SSD log's
  per-epoch bumps of 10-20 %), which only the longer lags see: a longer lag's median replaces lag 1's when it is at
  least 1.5 times as large (a smaller excess is the sampling noise of a median, and taking the largest of three noisy
  medians would blunt the bar on white noise: a loss climbing to 3 times its best was flagged 20 steps later). With
  lag 1 alone that SSD loss was "worse than its best" at 31 % of the observations of the three healthy series;
  the lags cut the healthy-series alarm episodes of the whole corpus from 2.19 to 1.55 per series on `tune` (2.59
  to 1.62 on `test`) and kept 52 of the 55 `tune` falls that alarmed (158 of 159 on `test`); lags 1, 2, 4, 8, 16
  did little better (1.48) for twice the cost. A lag-k median reads the last max(window - 2, 6k) differences, so
  that a step, which disturbs 2k of them, stays a minority and does not blind the monitor to the next fall; it
  counts once that many are in;
- ``nonfinite``: NaN / +-Inf (critical; a warning in a gradient norm, and once the metric has come back to finite
  values after `vocabulary.INTERMITTENT_RECOVERIES` NaN/Inf stretches; info before its first finite value, until
  ``warmup_steps`` observations in a row were NaN/Inf: `vocabulary.nonfinite_severity`);
- ``plateau``: no improvement for ``plateau_patience`` observations;
- ``collapse`` (a metric with no best, below): the last 3 values all within 10 % of the older half of the window's
  mean from 0, where none of those older values was (a GAN's discriminator and generator scores that fall to ~1e-5
  and stay: three collapses of the real-curve corpus that the drop-from-best no longer watches). A warning.

A metric with no best to fall from (`vocabulary.has_best`: its name does not say which way is better, as a GAN's
`G_A` / `loss_D`, and no `metric_directions` entry does either; or a gradient norm) gets no drop-from-best and no
plateau, only the threshold it is given, the z-score, the collapse and NaN/Inf. A column that describes the run
rather than grades it (an epoch or iteration counter, the learning rate, a time: `vocabulary.is_context`) gets NaN/Inf
only, as in the analysis.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from collections.abc import Mapping

from analysis.core.config import AnalyzerConfig
from analysis.core.numbers import worse_than_best
from analysis.core.vocabulary import (
    Severity,
    has_best,
    is_context,
    known_direction,
    metric_threshold,
    nonfinite_severity,
)
from analysis.monitoring.records import MetricStatus, MonitorAnomaly

__all__ = ["MetricState", "MetricTracker"]

log = logging.getLogger(__name__)

_BATCH_KEY = re.compile(r"^batch_(\d+)/")
_REL_EPS = 1e-4  # an improvement must beat the best by this fraction (plateau detection)
# said of a drop from a best that is the metric's first values: it rose (fell) from its start, as a component loss
# of a detector can while the run learns (a D-FINE `loss_fgl`), not a fall from what training had reached
_FIRST_VALUES = ", its first values: never as good since"
_RESUM_EVERY = 1024  # pushes between exact recomputations of a window's running sums
_CANCELLED = 1e-6  # ... and sooner when the sum of squares fell below this fraction of its peak
_COLLAPSE_SHARE = 0.1  # a collapse: the last 3 values within this share of the earlier level from 0 ...
_COLLAPSE_MIN_WINDOW = 10  # ... with at least this many values in the window (its older half is the earlier level)
_D2_LAGS = (1, 4, 16)  # lags of the second differences the noise sigma is read from (`noise_sigma`) ...
_LAG_MID, _LAG_LONG = _D2_LAGS[1:]
_D2_SPAN = 6  # ... each lag k from its last max(window - 2, 6k): a step disturbs 2k of them, a minority ...
_D2_EXCESS = 1.5  # ... and counted only when its median is this many times lag 1's (white noise: about 1)
_MEDIAN_ABS_D2_TO_SIGMA = 1.0 / (0.6745 * math.sqrt(6.0))  # Gaussian noise: median |x_t - 2x_t-1 + x_t-2| = 1.65 sigma


class MetricState:
    """Bounded per-metric state: a deque window with running (shifted) sums, the best so far and counters."""

    __slots__ = (
        "abs_d2",
        "bad_streak",
        "batch",
        "best",
        "best_first",
        "best_step",
        "context",
        "higher",
        "history",
        "in_nonfinite",
        "known",
        "last_good_step",
        "n",
        "plateau_reported",
        "pushes",
        "recent",
        "recoveries",
        "s1",
        "s2",
        "s2_peak",
        "shift",
        "stale",
        "threshold",
        "window",
    )

    def __init__(
        self,
        window: int,
        history: int,
        higher: bool,
        threshold: float | None,
        known: bool = True,
        context: bool = False,
    ) -> None:
        self.window: deque[float] = deque(maxlen=window)
        # |second differences| at each lag of `_D2_LAGS`, as many as a window holds at lag 1
        self.abs_d2: tuple[deque[float], ...] = tuple(
            deque(maxlen=max(window - 2, _D2_SPAN * lag, 1)) for lag in _D2_LAGS
        )
        self.recent: deque[float] = deque(maxlen=2 * _D2_LAGS[-1] + 1)  # the values those differences need
        self.history: deque[tuple[int, float]] = deque(maxlen=history)
        self.shift: float | None = None  # subtracted before summing, to keep the variance numerically stable
        self.s1 = 0.0
        self.s2 = 0.0
        self.s2_peak = 0.0  # largest s2 since the last exact recomputation (how much precision s2 may have lost)
        self.best: float | None = None
        self.best_step: int | None = None
        self.stale = 0
        self.bad_streak = 0
        self.last_good_step: int | None = None
        self.n = 0  # finite observations
        self.higher = higher
        self.known = known  # a best to fall from exists (`vocabulary.has_best`)
        self.context = context  # a counter, schedule or resource column: only NaN/Inf is watched
        self.recoveries = 0  # NaN/Inf stretches this metric came back from (intermittent NaNs are warnings) ...
        self.in_nonfinite = False  # ... and whether its latest value was one
        self.threshold = threshold
        self.plateau_reported = False
        self.batch: int | None = None  # from a `batch_{i}/...` name
        self.pushes = 0
        self.best_first = False  # the best level is the mean of the metric's first values

    def zscore(self, value: float) -> float | None:
        """z of `value` against the current window (None when the window has no spread)."""
        k = len(self.window)
        if k < 3 or self.shift is None:
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

    def noise_sigma(self) -> float:
        """Noise sigma of one observation from the median |second difference| at lag 1 (0 without any), or at a
        longer lag of `_D2_LAGS` whose deque is full and whose median is at least `_D2_EXCESS` times lag 1's (the
        largest such). When most lag-1 differences are exactly 0 (a metric that repeats its values) it is 0."""
        first = self.abs_d2[0]
        if not first:
            return 0.0
        lag1 = sorted(first)[len(first) // 2]
        widest = lag1
        if lag1 > 0.0:
            for d2 in self.abs_d2[1:]:
                if len(d2) == d2.maxlen:
                    median = sorted(d2)[len(d2) // 2]
                    if median >= _D2_EXCESS * lag1:
                        widest = max(widest, median)
        return _MEDIAN_ABS_D2_TO_SIGMA * widest

    def noise_bar(self, z: float) -> float:
        """The smallest gap between the level and the best level that stands out of the noise: z standard errors of
        a 3-point mean, plus the sqrt(2 ln n) by which the best of n such means of pure noise leads their average."""
        sigma = self.noise_sigma()
        if sigma <= 0.0:
            return 0.0
        return sigma / math.sqrt(3.0) * (z + math.sqrt(2.0 * math.log(max(self.n, 2))))

    def collapsed_from(self, value: float) -> float | None:
        """The earlier level this metric collapsed from, or None: with `value` as the newest, the last 3 values all
        lie within `_COLLAPSE_SHARE` of the mean of the window's older half from 0, and none of those older values
        did (a metric that fell to ~0 from a level it held, not one that swings through 0)."""
        w = self.window
        if len(w) < _COLLAPSE_MIN_WINDOW:
            return None
        shift = self.shift if self.shift is not None else 0.0
        before = [w[i] + shift for i in range(len(w) // 2)]
        reference = sum(before) / len(before)
        floor = _COLLAPSE_SHARE * abs(reference)
        recent = (value, w[-1] + shift, w[-2] + shift)
        if floor <= 0.0 or max(abs(v) for v in recent) >= floor or min(abs(v) for v in before) < floor:
            return None
        return reference

    def level(self, value: float) -> float:
        """The mean of the last (up to) 3 values with `value` as the newest (before it is pushed)."""
        w = self.window
        shift = self.shift if self.shift is not None else 0.0
        if len(w) >= 2:
            return (value + w[-1] + w[-2] + 2.0 * shift) / 3.0
        if w:
            return (value + w[-1] + shift) / 2.0
        return value

    def breaches(self, value: float) -> bool:
        """True when a finite `value` is on the wrong side of the metric's threshold."""
        thr = self.threshold
        if thr is None or not math.isfinite(value):
            return False
        return value < thr if self.higher else value > thr

    def update_best(self, step: int) -> bool:
        """Fold the mean of the last (up to) 3 points into the best; True when it improved."""
        w = self.window
        shift = self.shift if self.shift is not None else 0.0
        if len(w) >= 3:
            mean = (w[-1] + w[-2] + w[-3]) / 3 + shift
        else:
            mean = sum(w) / len(w) + shift
        best = self.best
        if best is None or (mean > best + _REL_EPS * abs(best) if self.higher else mean < best - _REL_EPS * abs(best)):
            self.best, self.best_step, self.stale = mean, step, 0
            self.best_first = self.pushes <= 3
            return True
        self.stale += 1
        return False

    def push(self, value: float) -> None:
        if self.shift is None:
            self.shift = value
        x = value - self.shift
        r = self.recent
        n = len(r)
        if n >= 2:  # unrolled over `_D2_LAGS`: this runs for every metric at every step
            d1, d_mid, d_long = self.abs_d2
            d1.append(abs(value - 2.0 * r[-1] + r[-2]))
            if n >= 2 * _LAG_MID:
                d_mid.append(abs(value - 2.0 * r[-_LAG_MID] + r[-2 * _LAG_MID]))
                if n >= 2 * _LAG_LONG:
                    d_long.append(abs(value - 2.0 * r[-_LAG_LONG] + r[-2 * _LAG_LONG]))
        r.append(value)
        if len(self.window) == self.window.maxlen:
            old = self.window[0]
            self.s1 -= old
            self.s2 -= old * old
        self.window.append(x)
        self.s1 += x
        self.s2 += x * x
        self.pushes += 1
        if self.s2 > self.s2_peak:
            self.s2_peak = self.s2
        # recompute when the sums cancelled (a spike left the window: s2 fell far below its peak, so its rounding
        # error, ~1e-16 of the peak, would swamp the variance and hide later spikes), and periodically anyway
        if self.s2 < self.s2_peak * _CANCELLED or self.pushes % _RESUM_EVERY == 0:
            self._resum()

    def _resum(self) -> None:
        """Re-centre on the window mean and recompute the sums exactly: no drift over millions of updates,
        and no cancellation when a metric wanders far from its first value (a loss going from 10 to 0.01)."""
        shift = self.shift if self.shift is not None else 0.0
        vals = [x + shift for x in self.window]
        self.shift = sum(vals) / len(vals)
        self.window.clear()
        self.window.extend(v - self.shift for v in vals)
        self.s1 = math.fsum(self.window)
        self.s2 = math.fsum(x * x for x in self.window)
        self.s2_peak = self.s2


class MetricTracker:
    """Every metric's `MetricState` (at most `max_metrics` names) and the detectors run on each observation.

    `thresholds` maps a metric name (or its last part) to an absolute bound: a floor for higher-is-better
    metrics, a ceiling for lower-is-better ones (`analysis.core.vocabulary.metric_direction`).
    """

    def __init__(
        self, config: AnalyzerConfig, thresholds: Mapping[str, float], *, history_size: int, max_metrics: int
    ) -> None:
        mon = config.experiment_monitoring
        self.detection = mon.anomaly_detection
        self.thresholds = dict(thresholds)
        self.history_size = min(max(int(history_size), 1), 10_000_000)  # a deque maxlen must fit a C long
        self.max_metrics = max_metrics  # distinct names tracked; bounds memory when keys are unbounded
        self.states: dict[str, MetricState] = {}
        self._overflow_warned = False
        # hot-path copies of the detection settings
        self._warmup = self.detection.warmup_steps
        self._zmax = self.detection.statistical_anomaly_zscore
        self._z_length_adjusted = self.detection.zscore_length_adjusted
        self._drop_only = self.detection.drop_only
        self._drop = self.detection.performance_drop_threshold
        self._severe = mon.auto_recovery.severe_drop_threshold
        self._patience = mon.auto_recovery.plateau_patience

    def state(self, name: str) -> MetricState | None:
        """The state of `name`, created on first sight; None once `max_metrics` names are tracked."""
        st = self.states.get(name)
        if st is None:
            if len(self.states) >= self.max_metrics:
                if not self._overflow_warned:
                    self._overflow_warned = True
                    log.warning(
                        "TrainingMonitor tracks at most %d metrics; ignoring new ones such as %r",
                        self.max_metrics,
                        name,
                    )
                return None
            directions = self.detection.metric_directions
            known = known_direction(name, directions)
            st = MetricState(
                self.detection.zscore_window,
                self.history_size,
                known != "lower_is_better",
                metric_threshold(name, self.thresholds),
                known=has_best(name, directions),
                context=is_context(name, directions),
            )
            m = _BATCH_KEY.match(name)
            st.batch = int(m.group(1)) if m else None
            self.states[name] = st
        return st

    def status(self, name: str) -> MetricStatus | None:
        """The current view of one metric (None if never seen)."""
        st = self.states.get(name)
        if st is None or not st.history:
            return None
        step, value = st.history[-1]
        return self._status(name, st, step, value, nonfinite=not math.isfinite(value), below=st.breaches(value))

    def observe(
        self, name: str, step: int, value: float, batch: int | None, out: list[MonitorAnomaly], want_status: bool
    ) -> MetricStatus | None:
        """Record one value, append its anomalies to `out`; the metric's status when `want_status`."""
        st = self.state(name)
        if st is None:
            return None
        st.history.append((step, value))
        b = st.batch if st.batch is not None else batch

        if value != value or value in (math.inf, -math.inf):
            st.bad_streak += 1
            st.in_nonfinite = True
            # before its first finite value, a metric may simply not be computed yet (RLlib's episode reward before
            # the first episode ends): a note, until `warmup_steps` observations in a row have been NaN/Inf
            leading = st.n == 0 and st.bad_streak <= self._warmup
            severity = nonfinite_severity(name, st.recoveries, leading=leading)
            out.append(
                MonitorAnomaly(
                    step, name, value, "nonfinite", math.inf, severity, f"{name} is {value} at step {step}", b
                )
            )
            return self._status(name, st, step, value, nonfinite=True, below=False) if want_status else None

        if st.in_nonfinite:
            st.in_nonfinite = False
            st.recoveries += st.n > 0  # the leading stretch is no recovery
        if st.context:
            st.n += 1
            return self._status(name, st, step, value, nonfinite=False, below=False) if want_status else None
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
                    Severity.CRITICAL if rel >= sev_cut else Severity.WARNING,
                    f"{name} = {value:.4g} is {word} its threshold {thr:.4g} at step {step}",
                    b,
                )
            )

        if warmed:
            # rolling z-score against the window before this point
            z = st.zscore(value)
            if (
                z is not None
                and abs(z) > self._zmax
                and (not self._z_length_adjusted or z * z > 2.0 * math.log(max(st.n, 1)))
            ):
                bad_side = (z < 0) if st.higher else (z > 0)
                if bad_side or not self._drop_only:
                    if not bad_side:
                        sev = Severity.INFO
                    else:
                        sev = Severity.CRITICAL if abs(z) > 2 * self._zmax else Severity.WARNING
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
            # collapse of a metric with no best (a GAN's scores falling to ~0 and staying there)
            reference = st.collapsed_from(value) if not st.known else None
            if reference is not None:
                level = st.level(value)
                out.append(
                    MonitorAnomaly(
                        step,
                        name,
                        value,
                        "collapse",
                        abs(level / reference),
                        Severity.WARNING,
                        f"{name} = {value:.4g} collapsed: its last 3 values average {level:.4g}, under "
                        f"{_COLLAPSE_SHARE:.0%} of the {reference:.4g} it averaged {len(st.window) // 2} values before",
                        b,
                    )
                )
            # drop from the running best: the value itself (what the recovery policy's streak counts) and the level
            # (what an alarm needs) both worse by the threshold, the level by more than the noise too
            value_drop = st.drop(value) if st.known else 0.0
            value_degraded = value_drop >= self._drop and value_drop > 0
            degraded = degraded or value_degraded
            level = st.level(value)
            rel_drop = st.drop(level) if value_degraded else 0.0
            severity = Severity.CRITICAL if rel_drop >= sev_cut else Severity.WARNING
            if rel_drop >= self._drop and st.best is not None and abs(level - st.best) >= st.noise_bar(self._zmax):
                out.append(
                    MonitorAnomaly(
                        step,
                        name,
                        value,
                        "drop_from_best",
                        rel_drop,
                        severity,
                        f"{name} = {value:.4g}: its last 3 values average {level:.4g}, "
                        f"{worse_than_best(rel_drop, f'its best 3-point mean {st.best:.4g}', '.1%', falling=st.higher)} "
                        f"(ending at step {st.best_step}{_FIRST_VALUES if st.best_first else ''})",
                        b,
                    )
                )

        st.push(value)
        st.n += 1
        # running best of the mean of the last 3 points (a raw best is an outlier of the noise) and plateau
        if st.update_best(step):
            st.plateau_reported = False
        elif st.known and warmed and st.stale >= self._patience and not st.plateau_reported:
            st.plateau_reported = True
            out.append(
                MonitorAnomaly(
                    step,
                    name,
                    value,
                    "plateau",
                    float(st.stale),
                    Severity.INFO,
                    f"{name} has not improved for {st.stale} observations (best {st.best:.4g} at step {st.best_step})",
                    b,
                )
            )
        st.bad_streak = st.bad_streak + 1 if degraded else 0
        if not degraded:
            st.last_good_step = step
        return self._status(name, st, step, value, nonfinite=False, below=below) if want_status else None

    def _status(
        self, name: str, st: MetricState, step: int, value: float, *, nonfinite: bool, below: bool
    ) -> MetricStatus:
        rel = st.drop(value) if math.isfinite(value) else 0.0  # the recovery policy's single-value reading
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
            st.n >= self._warmup,
        )
