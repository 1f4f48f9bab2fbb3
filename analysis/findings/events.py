"""Events: one record per real change of a series, with the detector hits that agree as its evidence.

The detectors (`anomalies`, `changepoints`) answer "is this point unusual?" many times over: one fall of a batch's
recall trips the z-score, the robust z-score, drop-from-best and the threshold, in recall, precision and hmean
alike. A user asks "what went wrong, and when?". An `Event` answers that once:

- `series_events(values, steps)` reads one series: NaN/Inf stretches (`nonfinite`), level shifts (`level_shift`,
  or `collapse` when the new level is degenerate: flat, or within 10 % of zero after a fall), noise-level changes
  (`noise_change`) and trends that turn or steepen (`slope_change`: a falling loss starts to rise, or a plateau
  ends in a faster drop (`trends.bends`), graded by the value at the change against the value where the new trend
  ends) from `changepoints.series_changes` (which also finds a collapse in the last few points,
  `trends.tail_collapse`), and isolated spikes
  (`spike`) from `outlier_indices` that are not the edge of a level shift. A smooth learning curve gives none.
  A level shift's values before and after are the medians of up to 10 points each side, except where that
  stretch clearly trends (a loss still falling): then its points are first carried along its slope to the break
  (`series_stats.level_at`), so a jump above a falling curve reads as the rise it is.
- `find_events(batches, global_metrics, anomalies, change_points, cfg)` runs it on every series whose hits could
  make an event (a critical or NaN/Inf hit, or warnings from two detectors; healthy series cost nothing; the series
  of a metric logged at the same steps are read together by `changepoints.series_changes_many`, with exactly the
  result of one `series_events` call each), attaches every hit and change point of that
  series within `evidence_points(n)` observed points of the event as its evidence (`Event.evidence`,
  `Event.detectors`; changes of regime and NaN stretches take theirs before spikes, `_claims_late`: the spikes of
  a GAN score in the epochs before its collapse had taken the collapse's hits, and the collapse went unraised;
  tune split falls alarmed 21 -> 23 of 46, alarms on healthy series unchanged), and merges the events of one batch
  that start together in several metrics (recall, precision and hmean falling at one step are one event). An event's
  severity is the worst of its own and its evidence's: a NaN is critical (a warning in a gradient norm and in a
  series that is NaN now and then, whose stretches are then one event; a note before the series' first value;
  `vocabulary.nonfinite_severity`; the hits around a NaN stretch are its evidence but do not raise it), a fall is
  graded by `critical_drop_threshold` / `performance_drop_threshold`, improvements and calmer noise are info, and
  calmer noise or a change that leaves a metric of known direction better (`vocabulary.known_direction`) keeps its
  own severity (`_improves`: the hits of the fall beside a recovery are that fall's evidence, not the recovery's);
  the hits of detectors that flag falls only (`anomalies.DIRECTIONAL_DETECTORS`) are evidence of falls, collapses,
  spikes and NaNs, never of a rise or a noise change.

The module is longer than most (~620 lines) because the record, the one-series reader and the run-level
attach-and-merge share their private helpers and change together; splitting them would only add imports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.numbers import shown_apart
from analysis.core.records import Anomaly, ChangePoint
from analysis.core.vocabulary import (
    INTERMITTENT_RECOVERIES,
    Severity,
    is_context,
    known_direction,
    metric_direction,
    nonfinite_severity,
    worse,
    worst_severity,
)
from analysis.findings.anomalies import DIRECTIONAL_DETECTORS
from analysis.findings.changepoints import (
    noise_sigma,
    series_changes,
    series_changes_many,
    severity_of_change,
)
from analysis.findings.matrices import metric_matrices, same_rows
from analysis.findings.outliers import outlier_indices, outlier_mask
from analysis.findings.series_stats import LEVEL_POINTS, level_at, nonfinite_stretches, warmup_points
from analysis.findings.step_tests import MIN_JUMP_SIGMA

__all__ = [
    "CHANGE_KINDS",
    "EVENT_KINDS",
    "Event",
    "EventKind",
    "count_alarms",
    "evidence_points",
    "find_events",
    "name_list",
    "series_events",
]

EventKind = Literal["level_shift", "collapse", "slope_change", "noise_change", "spike", "nonfinite"]
EVENT_KINDS: tuple[str, ...] = ("level_shift", "collapse", "slope_change", "noise_change", "spike", "nonfinite")
CHANGE_KINDS: tuple[str, ...] = ("level_shift", "collapse", "slope_change", "noise_change")  # a new regime starts

_COLLAPSE_TO_ZERO = 0.1  # a fall to within this share of the old level's size (towards 0) is a collapse
_SETTLE_BEFORE = 3 * LEVEL_POINTS  # points before a settling on one value whose median is the level it fell from
_SPIKE_MERGE = 2  # spikes this many points apart are one event
_NOISE_WARN_RATIO = 2.0  # noise growing by this factor is a warning (calmer noise is info)
_MIN_AGREEING = 2  # detectors that must agree before hits no series event explains become an event


@dataclass(frozen=True)
class Event:
    """One real change of one series (or of one batch across several of its metrics)."""

    kind: str  # one of EVENT_KINDS
    metric: str
    start_step: int
    end_step: int
    value_before: float
    value_after: float  # the new level; a spike's value; nan for a NaN/Inf stretch
    magnitude: float  # value_after - value_before (nan for a NaN/Inf stretch)
    severity: Severity
    message: str
    batch: int | None = None
    metrics: tuple[str, ...] = ()  # every metric that shows the event (metric first)
    detectors: tuple[str, ...] = ()  # detectors that agree (names as in Anomaly.detector, plus "change_point")
    evidence: tuple[Anomaly | ChangePoint, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        if not self.metrics:
            object.__setattr__(self, "metrics", (self.metric,))

    @property
    def is_change(self) -> bool:
        """A new regime starts here (a level, slope or noise change, a collapse), not a spike or a NaN stretch."""
        return self.kind in CHANGE_KINDS

    @property
    def is_alarm(self) -> bool:
        """Warning or critical: what counts as an anomaly (info notes do not)."""
        return self.severity.rank >= Severity.WARNING.rank

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["severity"] = self.severity.value
        out["metrics"] = list(self.metrics)
        out["detectors"] = list(self.detectors)
        out["evidence"] = [e.to_dict() for e in self.evidence]
        return out


def count_alarms(events: Iterable[Event]) -> int:
    """How many events are warnings or criticals (the "anomalies" a user is shown; info notes are not)."""
    return sum(1 for e in events if e.is_alarm)


def evidence_points(n: int) -> int:
    """How close (in observed points) a detector hit must be to an event to be its evidence: max(5, 2 % of n)."""
    return max(5, math.ceil(0.02 * n))


# ------------------------------------------------------------------------------------------- one series
def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def _who(batch: int | None, metric: str) -> str:
    return f"batch {batch} {metric}" if batch is not None else metric


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of every run of True."""
    if not mask.any():
        return []
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist(), strict=True))


def _level(x: np.ndarray, lo: int, hi: int) -> float:
    seg = x[max(lo, 0) : max(hi, 0)]
    seg = seg[np.isfinite(seg)]
    return float(np.median(seg)) if seg.size else math.nan


def _is_collapse(after_seg: np.ndarray, before: float, after: float, metric: str, cfg: AnomalyDetectionConfig) -> bool:
    """Fell (in the metric's bad direction) to a degenerate value: near zero, or a flat line."""
    direction = metric_direction(metric, cfg.metric_directions)
    if not worse(after, before, direction):
        return False
    flat = after_seg.size >= 3 and float(np.ptp(after_seg)) <= 1e-9 * max(abs(after), 1.0)
    towards_zero = abs(after) <= _COLLAPSE_TO_ZERO * abs(before)
    return flat or towards_zero


def _nonfinite_events(x: np.ndarray, steps: np.ndarray, metric: str, batch: int | None) -> list[Event]:
    """One event per NaN/Inf stretch, at `nonfinite_severity`: a leading stretch (no value yet) is a note, and when
    the series keeps coming back to finite values (`vocabulary.INTERMITTENT_RECOVERIES` times or more) its other
    stretches are one event: it is NaN now and then, and a list of them (271 in one Darknet log) would bury every
    other event."""
    bad = ~np.isfinite(x)
    lead, recoveries = nonfinite_stretches(bad)
    runs = _runs(bad)
    out = []
    if lead.any():
        a, b = runs.pop(0)
        out.append(
            _nonfinite_event(
                x, steps, a, b, metric, batch, nonfinite_severity(metric, leading=True),
                f"{_who(batch, metric)} has no value yet: {_what(x, a, b)} at {_span(steps, a, b)}, before its first "
                "finite value",
            )
        )  # fmt: skip
    if recoveries >= INTERMITTENT_RECOVERIES and runs:
        a, b = runs[0][0], runs[-1][1]
        count = sum(hi - lo + 1 for lo, hi in runs)
        return [
            *out,
            _nonfinite_event(
                x, steps, a, b, metric, batch, nonfinite_severity(metric, recoveries),
                f"{_who(batch, metric)} is {_what(x, a, b)} now and then: at {count} of {x.size} points, in "
                f"{len(runs)} stretches between steps {steps[a]} and {steps[b]}, with finite values between them",
            ),
        ]  # fmt: skip
    severity = nonfinite_severity(metric, recoveries)
    out += [
        _nonfinite_event(
            x,
            steps,
            a,
            b,
            metric,
            batch,
            severity,
            f"{_who(batch, metric)} is {_what(x, a, b)} at {_span(steps, a, b)}",
        )
        for a, b in runs
    ]
    return out


def _what(x: np.ndarray, a: int, b: int) -> str:
    seg = x[a : b + 1]
    return "NaN" if np.isnan(seg[~np.isfinite(seg)]).all() else "NaN/Inf"


def _span(steps: np.ndarray, a: int, b: int) -> str:
    return f"step {steps[a]}" if a == b else f"steps {steps[a]}-{steps[b]} ({b - a + 1} points)"


def _nonfinite_event(
    x: np.ndarray, steps: np.ndarray, a: int, b: int, metric: str, batch: int | None, severity: Severity, message: str
) -> Event:
    """A NaN/Inf event from index a to b: the level before it, no value after."""
    before = _level(x, a - LEVEL_POINTS, a)
    return Event(
        "nonfinite", metric, int(steps[a]), int(steps[b]), before, math.nan, math.nan, severity, message, batch
    )


def _shift_events(
    x: np.ndarray, steps: np.ndarray, shifts: list[int], metric: str, batch: int | None, cfg: AnomalyDetectionConfig
) -> list[Event]:
    out = []
    bounds = [0, *shifts, x.size]
    for k, t in enumerate(shifts):
        lo, hi = max(bounds[k], t - LEVEL_POINTS, 0), min(bounds[k + 2], t + LEVEL_POINTS)
        before = level_at(np.arange(lo, t), x[lo:t], t)
        after_seg = x[t:hi]
        after = level_at(np.arange(t, hi), after_seg, t)
        if not (math.isfinite(before) and math.isfinite(after)) or after == before:
            continue  # a break whose levels read the same each side (an RL return at its cap of 1000) moves nothing
        kind = (
            "collapse" if _is_collapse(after_seg[np.isfinite(after_seg)], before, after, metric, cfg) else "level_shift"
        )
        sev = severity_of_change(metric, before, after, cfg)
        word = "collapses" if kind == "collapse" else ("rises" if after > before else "falls")
        shown_before, shown_after = shown_apart(before, after)
        out.append(
            Event(
                kind,
                metric,
                int(steps[t]),
                int(steps[min(bounds[k + 2], x.size) - 1]),
                before,
                after,
                after - before,
                sev,
                f"{_who(batch, metric)} {word} from {shown_before} to {shown_after} at step {steps[t]}",
                batch,
            )
        )
    return out


def _slope_events(
    x: np.ndarray,
    steps: np.ndarray,
    breaks: list[int],
    turns: set[int],
    metric: str,
    batch: int | None,
    cfg: AnomalyDetectionConfig,
) -> list[Event]:
    """A trend that turns at t: value at the turn (median of `LEVEL_POINTS` around it) against the value where
    the new trend ends (the next break or the end of the series); graded like a level change."""
    out = []
    for k, t in enumerate(breaks):
        if t not in turns:
            continue
        end = breaks[k + 1] if k + 1 < len(breaks) else x.size
        at_turn = _level(x, t - LEVEL_POINTS // 2, t + LEVEL_POINTS // 2 + 1)
        at_end = _level(x, end - LEVEL_POINTS, end)
        if not (math.isfinite(at_turn) and math.isfinite(at_end)) or at_turn == at_end:
            continue  # a turn that moves the curve nowhere is not an event
        sev = severity_of_change(metric, at_turn, at_end, cfg)
        word = "rising" if at_end > at_turn else "falling"
        out.append(
            Event(
                "slope_change",
                metric,
                int(steps[t]),
                int(steps[end - 1]),
                at_turn,
                at_end,
                at_end - at_turn,
                sev,
                f"{_who(batch, metric)} changes trend at step {steps[t]} and keeps {word}: {_fmt(at_turn)} to "
                f"{_fmt(at_end)} by step {steps[end - 1]}",
                batch,
            )
        )
    return out


def _noise_events(
    x: np.ndarray, steps: np.ndarray, changes: list[int], metric: str, batch: int | None, cfg: AnomalyDetectionConfig
) -> list[Event]:
    out = []
    for t in changes:
        held = _held_collapse(x, steps, t, metric, batch, cfg)
        if held is not None:
            out.append(held)
            continue
        left = np.diff(x[max(0, t - 60) : t])
        right = np.diff(x[t : t + 60])
        left, right = left[np.isfinite(left)], right[np.isfinite(right)]
        if left.size < 3 or right.size < 3:
            continue
        sl = float(np.median(np.abs(left - np.median(left))))
        sr = float(np.median(np.abs(right - np.median(right))))
        if sl == sr:
            continue  # the medians of the differences do not see it (both 0 on a quantised series): nothing to tell
        ratio = sr / sl if sl > 0 else math.inf
        sev = Severity.WARNING if ratio >= _NOISE_WARN_RATIO and not is_context(metric) else Severity.INFO
        if sl == 0.0:
            word, detail = "noisy", " (flat before)"  # "noisier (noise xinf)" said it badly
        elif sr == 0.0:
            word, detail = "flat", ""
        else:
            word, detail = ("noisier" if ratio > 1 else "calmer"), f" (noise x{ratio:.2g})"
        out.append(
            Event(
                "noise_change",
                metric,
                int(steps[t]),
                int(steps[t]),
                sl,
                sr,
                sr - sl,
                sev,
                f"{_who(batch, metric)} becomes {word} at step {steps[t]}{detail}",
                batch,
            )
        )
    return out


def _held_collapse(
    x: np.ndarray, steps: np.ndarray, t: int, metric: str, batch: int | None, cfg: AnomalyDetectionConfig
) -> Event | None:
    """A settling on one exact value (`trends.constant_tail`, found as a noise change) at a degenerate level the
    metric fell to: a collapse, not a calmer curve. A re-id log's training accuracy slid from 0.63 to 0.004 over 18
    records and then read exactly 0 for 215: "becomes flat" was a note, and the run "had no alarms"."""
    after_seg = x[t : t + LEVEL_POINTS]
    after_seg = after_seg[np.isfinite(after_seg)]
    before = _level(x, t - _SETTLE_BEFORE, t)  # a slide onto the value is longer than a step
    if after_seg.size < 3 or not math.isfinite(before) or float(np.ptp(after_seg)) != 0.0:
        return None
    after = float(after_seg[0])
    if after == before or not _is_collapse(after_seg, before, after, metric, cfg):
        return None
    shown_before, shown_after = shown_apart(before, after)
    off = np.flatnonzero(np.isfinite(x[t:]) & (x[t:] != after))  # where it leaves the value, if it does
    last = t + int(off[0]) - 1 if off.size else x.size - 1
    return Event(
        "collapse",
        metric,
        int(steps[t]),
        int(steps[last]),
        before,
        after,
        after - before,
        severity_of_change(metric, before, after, cfg),
        f"{_who(batch, metric)} collapses from {shown_before} to {shown_after} at step {steps[t]} and holds it",
        batch,
    )


def _spike_events(
    x: np.ndarray,
    steps: np.ndarray,
    spikes: list[int],
    shifts: list[int],
    metric: str,
    batch: int | None,
    cfg: AnomalyDetectionConfig,
) -> list[Event]:
    direction = metric_direction(metric, cfg.metric_directions)
    finite_spikes = [i for i in spikes if np.isfinite(x[i]) and all(abs(i - s) > 1 for s in shifts)]
    groups: list[list[int]] = []
    for i in finite_spikes:
        if groups and i - groups[-1][-1] <= _SPIKE_MERGE:
            groups[-1].append(i)
        else:
            groups.append([i])
    out = []
    for g in groups:
        a, b = g[0], g[-1]
        around = np.r_[x[max(0, a - LEVEL_POINTS) : a], x[b + 1 : b + 1 + LEVEL_POINTS]]
        around = around[np.isfinite(around)]
        base = float(np.median(around)) if around.size else math.nan
        vals = x[g]
        peak = float(vals[int(np.argmax(np.abs(vals - base)))]) if math.isfinite(base) else float(vals[0])
        rel = abs(peak - base) / max(abs(base), 1e-12) if math.isfinite(base) else 0.0
        bad = math.isfinite(base) and worse(peak, base, direction) and not is_context(metric, cfg.metric_directions)
        sev = Severity.WARNING if bad and rel >= cfg.performance_drop_threshold else Severity.INFO
        shown_peak, shown_base = shown_apart(peak, base)
        out.append(
            Event(
                "spike",
                metric,
                int(steps[a]),
                int(steps[b]),
                base,
                peak,
                peak - base if math.isfinite(base) else math.nan,
                sev,
                f"{_who(batch, metric)} spikes to {shown_peak} (around {shown_base}) at step {steps[a]}",
                batch,
            )
        )
    return out


def series_events(
    values: np.ndarray | Iterable[float],
    steps: np.ndarray | Iterable[int] | None = None,
    *,
    metric: str = "value",
    batch: int | None = None,
    cfg: AnomalyDetectionConfig | None = None,
) -> list[Event]:
    """Events of one series (values in step order; `steps` defaults to the positions), sorted by start step."""
    cfg = cfg or AnomalyDetectionConfig()
    x = np.asarray(values, dtype=float).ravel()
    st = np.arange(x.size, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64).ravel()
    if st.size != x.size:
        raise ValueError(f"{x.size} values but {st.size} steps")
    if x.size == 0:
        return []
    return _series_events(x, st, metric, batch, cfg)


# (the series' outlier indices, its (level shifts, noise changes, slope changes)), computed for many at once
_Found = tuple[list[int], tuple[list[int], list[int], list[int]]]


def _series_events(
    x: np.ndarray,
    st: np.ndarray,
    metric: str,
    batch: int | None,
    cfg: AnomalyDetectionConfig,
    found: _Found | None = None,
) -> list[Event]:
    """`series_events` of one non-empty series; `found` when `find_events` has read it with its neighbours."""
    finite = np.isfinite(x)
    events = [] if finite.all() else _nonfinite_events(x, st, metric, batch)
    # `found` is only given for a metric that is not a schedule (see `_read_many`)
    if finite.sum() >= 5 and (found is not None or not is_context(metric, cfg.metric_directions)):
        if found is None:
            spikes = outlier_indices(x)
            changes = series_changes(
                x, penalty=cfg.change_point_penalty, min_size=cfg.change_point_min_size, outliers=spikes
            )
        else:
            spikes, changes = found
        shifts, noise, turns = changes
        if shifts or noise or turns or spikes:  # most series of a wide table have none: nothing to build
            events += _shift_events(x, st, shifts, metric, batch, cfg)
            events += _noise_events(x, st, noise, metric, batch, cfg)
            events += _slope_events(x, st, sorted([*shifts, *turns]), set(turns), metric, batch, cfg)
            events += _spike_events(x, st, spikes, shifts, metric, batch, cfg)
    return sorted(events, key=lambda e: (e.start_step, EVENT_KINDS.index(e.kind)))


# ------------------------------------------------------------------------------------------- a whole run
def _series_key(rec: Anomaly | ChangePoint) -> tuple[str, int | None]:
    return rec.metric, rec.batch


def _attach(
    ev: Event,
    hits: list[Anomaly | ChangePoint],
    steps: np.ndarray,
    points: int,
    cfg: AnomalyDetectionConfig,
) -> tuple[Event, list[Anomaly | ChangePoint]]:
    """The event with the hits within `points` observed points of it as evidence; the hits left over. Its severity
    is the worst of its own and its evidence's, except for a spike and for a change that `_improves` the metric
    (or is a schedule's): the degradation hits around a recovery describe the fall beside it, which has its own
    event (a return that climbs back from a dip was a warning, "rises from 84.5 to 93.8"). The hits of a detector
    that flags falls only (`DIRECTIONAL_DETECTORS`) are evidence of a fall, a collapse, a spike or a NaN, never of
    a rise or a noise change: they are left over for the fall they saw (a loss that "becomes noisier (x1.2)" was
    critical on the running-best hits of a restart beside it, and a C51 return that keeps rising on those of the
    dip before it)."""
    improves = _improves(ev, cfg)
    takes_falls = ev.kind in ("spike", "nonfinite", "collapse") or (
        ev.kind in ("level_shift", "slope_change") and _worsens(ev, cfg)
    )
    i0 = int(np.searchsorted(steps, ev.start_step))
    i1 = int(np.searchsorted(steps, ev.end_step, side="right")) - 1
    lo = int(steps[max(0, i0 - points)])
    hi = int(steps[min(steps.size - 1, max(i1, i0) + points)])
    mine: list[Anomaly | ChangePoint] = []
    rest: list[Anomaly | ChangePoint] = []
    for h in hits:
        h_end = getattr(h, "end_step", None) or h.step
        near = h.step <= hi and h_end >= lo
        falls_only = getattr(h, "detector", "") in DIRECTIONAL_DETECTORS
        (mine if near and (takes_falls or not falls_only) else rest).append(h)
    if not mine:
        return ev, rest
    detectors = tuple(sorted({getattr(h, "detector", "change_point") for h in mine}))
    escalate = ev.kind != "spike" and not improves
    # a NaN stretch is as bad as `nonfinite_severity` says: the falls around an intermittent one (a sparse IoU's
    # finite values swing) or a gradient norm's overflow are evidence, not a reason to raise it
    severity = worst_severity(
        [ev.severity, *(h.severity for h in mine if escalate and (ev.kind != "nonfinite" or _is_nonfinite_hit(h)))]
    )
    return replace(
        ev, evidence=tuple(mine), detectors=detectors, severity=severity, message=_why(ev, mine, severity)
    ), rest


def _is_nonfinite_hit(hit: Anomaly | ChangePoint) -> bool:
    return getattr(hit, "detector", "") == "nonfinite"


def _why(ev: Event, evidence: list[Anomaly | ChangePoint], severity: Severity) -> str:
    """The event's message, and when a running-best hit raised its severity, that hit's message after it: a step
    from 0.266 to 0.261 inside an overfitting mAP's slow decline was a warning because the mAP stood 14 % below its
    best, which the message did not say."""
    if severity.rank <= ev.severity.rank:
        return ev.message
    drops = [
        h for h in evidence if isinstance(h, Anomaly) and h.detector == "drop_from_best" and h.severity == severity
    ]
    if not drops:
        return ev.message
    return f"{ev.message}; {max(drops, key=lambda h: h.score).message}"


def _claims_late(ev: Event) -> bool:
    """Sort key of the order in which a series' events take their evidence (`_attach`): changes of regime and NaN
    stretches first, spikes last. A hit near a spike and a collapse is the collapse's: read in step order, the spikes
    of a GAN score in the epochs before it collapsed to 1e-38 took the change-point and z-score hits of the collapse,
    which was then left with no evidence and never raised."""
    return ev.kind == "spike"


def _worsens(ev: Event, cfg: AnomalyDetectionConfig) -> bool:
    """The event's level moved the bad way in the metric's (default) direction; True when either level is unknown."""
    if not (math.isfinite(ev.value_before) and math.isfinite(ev.value_after)):
        return True
    return worse(ev.value_after, ev.value_before, metric_direction(ev.metrics[0], cfg.metric_directions))


def _improves(ev: Event, cfg: AnomalyDetectionConfig) -> bool:
    """A change of regime that leaves a metric of known direction (`known_direction`) better, calmer noise, or a
    context column's change (`is_context`): never an alarm by itself. A rise of a metric whose name says nothing is
    no improvement."""
    if not ev.is_change or not (math.isfinite(ev.value_before) and math.isfinite(ev.value_after)):
        return False
    if ev.kind == "noise_change":  # its values are the noise levels: calmer is better, whatever the metric
        return ev.value_after <= ev.value_before
    metric = ev.metrics[0]
    if is_context(metric, cfg.metric_directions):
        return True
    direction = known_direction(metric, cfg.metric_directions)
    return direction is not None and not worse(ev.value_after, ev.value_before, direction)


def _from_hits(
    hits: list[Anomaly | ChangePoint],
    steps: np.ndarray,
    values: np.ndarray,
    metric: str,
    batch: int | None,
    cfg: AnomalyDetectionConfig,
) -> Event | None:
    """An event from warning/critical hits that no series event explains (a fall too close to the end of the run
    for a change point, a slow slide): a level change from the first alarm on, the hits as its evidence. Needs
    `_MIN_AGREEING` different detectors after the warm-up points."""
    after_warmup = int(steps[min(warmup_points(steps.size), steps.size - 1)]) if steps.size else 0
    alarms = [h for h in hits if h.severity.rank >= Severity.WARNING.rank and h.step >= after_warmup]
    # One detector alone on a long noisy series is the noise's own tail: at least two must agree.
    if len({getattr(h, "detector", "change_point") for h in alarms}) < _MIN_AGREEING:
        return None
    start = min(h.step for h in alarms)
    end = max(getattr(h, "end_step", None) or h.step for h in alarms)
    i0 = int(np.searchsorted(steps, start))
    i1 = int(np.searchsorted(steps, end, side="right"))
    before = _level(values, i0 - LEVEL_POINTS, i0)
    direction = metric_direction(metric, cfg.metric_directions)
    after = _level(values, i0, max(i1, i0 + 1))
    if not math.isfinite(before):
        before = _level(values, 0, i0 + 1)
    one_point = i1 - i0 <= 1
    finite = math.isfinite(before) and math.isfinite(after)
    if not one_point and finite:
        # The level got worse, by a step the step tests would keep (`MIN_JUMP_SIGMA` noise sigmas): otherwise the
        # hits were the noise's own tail. A noisy per-iteration loss that keeps falling had a critical "rises to
        # 0.7746 (from 0.768)" from its running-best and z-score hits, a change of 0.06 noise sigmas.
        sigma = noise_sigma(values[np.isfinite(values)])
        if not worse(after, before, direction) or abs(after - before) < MIN_JUMP_SIGMA * sigma:
            return None
    kind = "spike" if one_point else "level_shift"
    if kind == "level_shift" and math.isfinite(before) and math.isfinite(after):
        seg = values[i0:i1]
        if _is_collapse(seg[np.isfinite(seg)], before, after, metric, cfg):
            kind = "collapse"
    evidence = [h for h in hits if h.step <= end and (getattr(h, "end_step", None) or h.step) >= start]
    shift_word = "falls to" if math.isfinite(before) and after < before else "rises to"
    word = {"spike": "jumps to", "collapse": "collapses to", "level_shift": shift_word}[kind]
    return Event(
        kind,
        metric,
        int(start),
        int(end),
        before,
        after,
        after - before,
        worst_severity(h.severity for h in alarms),
        "{} {} {} (from {}) at step {}".format(_who(batch, metric), word, *shown_apart(after, before), start),
        batch,
        detectors=tuple(sorted({getattr(h, "detector", "change_point") for h in evidence})),
        evidence=tuple(evidence),
    )


def _merge_metrics(events: list[Event], points_steps: dict[int | None, int]) -> list[Event]:
    """Events of one batch that start within the batch's evidence window of each other, of the same family
    (a level change, a spike, a NaN stretch, a noise change), are one event shown in several metrics; so are
    run-level events of one family that start at the same step (an RLlib record whose episode reward mean, min and
    max and episode length are all NaN: one event, not four)."""
    family = {"collapse": "level", "level_shift": "level", "slope_change": "level"}
    out: list[Event] = []
    for ev in sorted(events, key=lambda e: (e.batch is None, e.batch or 0, e.start_step)):
        merged = False
        # the window within which this event's group may start: the batch's evidence window, or one step
        window = points_steps.get(ev.batch, 0) if ev.batch is not None else 0
        for k in range(len(out) - 1, -1, -1):
            o = out[k]
            if o.batch != ev.batch:
                break
            if ev.start_step - o.start_step > window:
                if ev.batch is None:
                    break  # run-level events come sorted by step: none further back starts at this one
                continue
            if family.get(o.kind, o.kind) == family.get(ev.kind, ev.kind) and ev.metric not in o.metrics:
                out[k] = _combine(o, ev)
                merged = True
                break
        if not merged:
            out.append(ev)
    return out


def _lead_key(e: Event) -> tuple[int, int, int, str]:
    """Which event of a merge speaks for it: a collapse (the merged event is one, and its message must say so: a
    YOLOv3 log's merge read "collapse: R rises from 0.000754 to 0.002865"), then the worst, then recall (the
    handbook's signal), then by name."""
    return (e.kind != "collapse", -e.severity.rank, 0 if e.metric.rsplit("/", 1)[-1] == "recall" else 1, e.metric)


def _combine(a: Event, b: Event) -> Event:
    first, second = sorted((a, b), key=_lead_key)
    kind = first.kind
    metrics = (*first.metrics, *(m for m in second.metrics if m not in first.metrics))
    base = first.message.split(" (also ")[0]
    return replace(
        first,
        kind=kind,
        start_step=min(a.start_step, b.start_step),
        end_step=max(a.end_step, b.end_step),
        metrics=metrics,
        detectors=tuple(sorted(set(a.detectors) | set(b.detectors))),
        evidence=(*first.evidence, *second.evidence),
        severity=worst_severity([a.severity, b.severity]),
        message=f"{base} (also {name_list(metrics[1:])})",
    )


def name_list(names: Sequence[str], shown: int = 3) -> str:
    """'a, b, c' or 'a, b, c and 17 more': a restart that lifts every loss of a detector names a few (the event's
    `metrics` holds them all)."""
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def _worth_reading(hits: list[Anomaly | ChangePoint]) -> bool:
    """A series is read for events when its hits could make one: a critical or NaN/Inf hit, or warnings from at
    least `_MIN_AGREEING` detectors. One z-score past its bar on a long healthy series costs nothing."""
    alarms = [h for h in hits if h.severity.rank >= Severity.WARNING.rank]
    if any(h.severity is Severity.CRITICAL for h in alarms):
        return True
    return len({getattr(h, "detector", "change_point") for h in alarms}) >= _MIN_AGREEING


def find_events(
    batches: pd.DataFrame | None,
    global_metrics: pd.DataFrame | None,
    anomalies: list[Anomaly],
    change_points: list[ChangePoint],
    cfg: AnomalyDetectionConfig | None = None,
) -> list[Event]:
    """Events of a run: every series with a warning/critical hit (or a NaN) read by `series_events`, with the
    hits of that series as evidence; one batch's metrics that change together give one event. Worst first."""
    cfg = cfg or AnomalyDetectionConfig()
    by_series: dict[tuple[str, int | None], list[Anomaly | ChangePoint]] = {}
    records: list[Anomaly | ChangePoint] = [*anomalies, *change_points]
    for rec in records:
        by_series.setdefault(_series_key(rec), []).append(rec)
    alarmed = {k for k, hits in by_series.items() if _worth_reading(hits)}
    events: list[Event] = []
    window_steps: dict[int | None, int] = {}
    wanted_batches = {b for _, b in alarmed if b is not None}
    wanted_globals = {m for m, b in alarmed if b is None}
    if batches is not None and not batches.empty:
        batches = batches[batches["batch"].isin(wanted_batches)]  # split only the series that need reading
    if global_metrics is not None and not global_metrics.empty:
        global_metrics = global_metrics[global_metrics["metric"].isin(wanted_globals)]
    for key, long in (("batch", batches), (None, global_metrics)):
        for m in metric_matrices(long, key):
            wanted = np.array([j for j, b in enumerate(m.columns) if (m.metric, b) in alarmed], dtype=np.int64)
            # the series logged at the same steps are read together (one (series, points) matrix each)
            for logged, group in same_rows(m.logged[:, wanted]):
                cols = wanted[group]
                steps, matrix = m.steps[logged], np.ascontiguousarray(m.raw[logged][:, cols].T)
                for j, values, found in zip(cols.tolist(), matrix, _read_many(matrix, m.metric, cfg), strict=True):
                    batch = m.columns[j]
                    points = evidence_points(steps.size)
                    span = int(steps[min(points, steps.size - 1)] - steps[0]) if steps.size else 0
                    window_steps[batch] = max(window_steps.get(batch, 0), span)
                    hits = list(by_series.get((m.metric, batch), []))
                    evs = _series_events(values, steps, m.metric, batch, cfg, found) if steps.size else []
                    for ev in sorted(evs, key=_claims_late):
                        ev, hits = _attach(ev, hits, steps, points, cfg)
                        if ev.evidence or ev.kind == "nonfinite":  # no detector agrees: not raised
                            events.append(ev)
                    fallback = _from_hits(hits, steps, values, m.metric, batch, cfg)
                    if fallback is not None:
                        events.append(fallback)
    merged = _merge_metrics(events, window_steps)
    return sorted(merged, key=lambda e: (-e.severity.rank, e.start_step, e.batch is None, e.batch or 0, e.metric))


def _read_many(matrix: np.ndarray, metric: str, cfg: AnomalyDetectionConfig) -> list[_Found | None]:
    """Outliers and changes of every row of a (series, points) matrix at once (`series_changes_many`); None for
    every row of a schedule metric, which `series_events` does not segment."""
    if is_context(metric, cfg.metric_directions) or matrix.shape[1] == 0:
        return [None] * matrix.shape[0]
    spikes = outlier_mask(matrix)
    changes = series_changes_many(
        matrix, penalty=cfg.change_point_penalty, min_size=cfg.change_point_min_size, outliers=spikes
    )
    rows, cols = np.nonzero(spikes)
    per_row = np.split(cols, np.searchsorted(rows, np.arange(1, matrix.shape[0])))
    return [(found_cols.tolist(), found) for found_cols, found in zip(per_row, changes, strict=True)]
