"""Plotly figure builders shared by the dashboard pages and the HTML report, and `curve_marks`: what a curves chart
marks and where, which the Overview's Vega-Lite chart (`vega.py`) draws too.

Analysis always uses the full history; only what is *drawn* is decimated (`decimate` keeps each bucket's min and
max, so spikes and drops stay visible). Findings are always drawn exactly, each at the step and value it
describes: events (diamonds, on their batch's line), detector hits (x, one legend click away), change-point lines
(never on a NaN/Inf gap), and NaN/Inf values as markers on the axis (they have no y). About 500 lines: the
figures share the curve splitting (`MetricCurves`) and these marker rules, so they live together.
"""

from __future__ import annotations

import colorsys
import html
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.core.vocabulary import Severity, is_lower_better, marks_restarts, nonfinite_severity, severity_rank

if TYPE_CHECKING:
    from analysis.core.records import ChangePoint
    from analysis.findings.events import Event
    from analysis.findings.pipeline import RunAnalysis

SEVERITY_COLOURS: dict[str, str] = {
    Severity.CRITICAL: "#d62728",
    Severity.WARNING: "#ff7f0e",
    Severity.INFO: "#7f7f7f",
}
RESTART_COLOUR = "#b0b0b0"  # the line at a restart: lighter than an info finding's grey, drawn behind the findings
MAX_RESTART_LINES = 50  # restarts drawn on a chart at most (`_restart_marks`)
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e")


def plotly_text(text: object) -> str:
    """Untrusted text (metric names, run names, messages) for plotly: plotly renders a subset of HTML in titles,
    axis titles, legend names, tick labels, hover text and annotations (`<a href>` becomes a live link, `<b>`
    bold), so `&`, `<` and `>` are escaped; plotly shows the entities as the characters."""
    return html.escape(str(text), quote=False)


def series_colours(n: int) -> list[str]:
    """`n` distinct line colours: the familiar palette up to its length, beyond that evenly spaced hues with
    alternating lightness (two of twenty batches never share a colour)."""
    if n <= len(_PALETTE):
        return list(_PALETTE[:n])
    out = []
    for i in range(n):
        r, g, b = colorsys.hls_to_rgb(i / n, 0.38 if i % 2 else 0.55, 0.75)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


def decimate(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max envelope decimation: at most ~max_points points, keeping every bucket's extremes in order.

    A bucket whose values are all NaN/Inf keeps its first point (so gaps stay gaps)."""
    n = len(x)
    if n <= max_points or max_points < 4:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    bucket = np.repeat(np.arange(buckets), np.diff(edges))
    yy = np.asarray(y, dtype=float)
    finite = np.isfinite(yy)
    lo_key = np.where(finite, yy, np.inf)
    hi_key = np.where(finite, yy, -np.inf)
    # stable sorts by (bucket, value) and (bucket, -value): the first of each bucket is its first min / max
    order_lo = np.lexsort((lo_key, bucket))
    order_hi = np.lexsort((-hi_key, bucket))
    starts = edges[:-1][np.diff(edges) > 0]
    first = np.searchsorted(bucket[order_lo], np.unique(bucket), side="left")
    mins, maxs = order_lo[first], order_hi[first]
    has_finite = np.add.reduceat(finite.astype(int), starts) > 0
    mins = np.where(has_finite, mins, starts)
    maxs = np.where(has_finite, maxs, starts)
    idx = np.unique(np.concatenate([mins, maxs]))
    return x[idx], y[idx]


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard-style exponential moving average with debiasing; NaN/Inf points are skipped (they show the
    average so far)."""
    values = np.asarray(values, dtype=float)
    if weight <= 0:
        return values.astype(float)
    from scipy.signal import lfilter

    out = np.full(len(values), np.nan)
    idx = np.flatnonzero(np.isfinite(values))
    if idx.size == 0:
        return out
    acc = lfilter([1 - weight], [1, -weight], values[idx])
    norm = 1 - weight ** np.arange(1, idx.size + 1)
    out[idx] = acc / norm
    filled = np.maximum.accumulate(np.where(np.isfinite(out), np.arange(len(out)), -1))
    return np.where(filled >= 0, out[np.maximum(filled, 0)], np.nan)


def robust_range(values: np.ndarray, lo_q: float = 2.0, hi_q: float = 98.0) -> tuple[float, float] | None:
    """A y-range that ignores outliers: the central percentiles plus a margin."""
    finite = values[np.isfinite(values)]
    if finite.size < 5:
        return None
    lo, hi = np.percentile(finite, [lo_q, hi_q])
    pad = (hi - lo) * 0.15 or abs(hi) * 0.05 or 0.05
    return float(lo - pad), float(hi + pad)


def _series(batches: pd.DataFrame, metric: str) -> pd.DataFrame:
    return batches[batches["metric"] == metric]


@dataclass(frozen=True)
class MetricCurves:
    """One metric of the BatchMetrics frame split once: each batch's (steps, values) in step order and the band
    (min / median / max over batches per step). Building figures from it costs no scan of the long frame, so a
    dashboard can keep it and redraw on every widget change."""

    metric: str
    series: dict[int | None, tuple[np.ndarray, np.ndarray]]  # None: a run-level metric's one series
    band: pd.DataFrame  # step, min, median, max (finite values only)

    @classmethod
    def from_batches(cls, batches: pd.DataFrame, metric: str) -> MetricCurves:
        data = _series(batches, metric)
        if data.empty:
            return cls(metric, {}, pd.DataFrame(columns=["step", "min", "median", "max"]))
        data = data.sort_values(["batch", "step"], kind="stable")
        b = data["batch"].to_numpy()
        x, y = data["step"].to_numpy(), data["value"].to_numpy(dtype=float)
        cuts = np.flatnonzero(np.diff(b)) + 1
        parts = zip(np.split(b, cuts), np.split(x, cuts), np.split(y, cuts))
        series: dict[int | None, tuple[np.ndarray, np.ndarray]] = {int(bb[0]): (xx, yy) for bb, xx, yy in parts}
        finite = data[np.isfinite(data["value"])]
        band = finite.groupby("step")["value"].agg(["min", "median", "max"]).reset_index()
        return cls(metric, series, band)

    def grid(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(batches, steps, values[batch, step]) with NaN where a batch has no value at a step."""
        batches = sorted(b for b in self.series if b is not None)
        steps = np.unique(np.concatenate([self.series[b][0] for b in batches])) if batches else np.array([])
        z = np.full((len(batches), len(steps)), np.nan)
        for i, b in enumerate(batches):
            x, y = self.series[b]
            z[i, np.searchsorted(steps, x)] = y  # a repeated step keeps its last value
        return batches, steps, z


def batch_curves_figure(
    analysis: RunAnalysis,
    metric: str = "recall",
    batches: Sequence[int] | None = None,
    max_points: int = 2000,
    smoothing: float = 0.0,
    ignore_outliers: bool = False,
    show_band: bool = True,
    curves: MetricCurves | None = None,
) -> go.Figure:
    """Per-batch curves of one metric with anomalies (markers) and change points (dotted lines).

    `batches=None` draws the problematic batches (up to 8). `show_band` adds the min-max range and median over
    all batches, so 200 batches stay readable. Smoothing keeps the raw line visible (faint). `curves` is the
    metric already split (`MetricCurves.from_batches`); without it the frame is split here.
    """
    curves = (
        curves
        if curves is not None and curves.metric == metric
        else MetricCurves.from_batches(analysis.batches, metric)
    )
    if batches is None:
        batches = analysis.problematic_batches[:8]
    chosen = [int(b) for b in batches]
    label = plotly_text(metric)
    fig = go.Figure()
    all_y: list[np.ndarray] = []
    band = curves.band
    if show_band and not band.empty:
        bx = band["step"].to_numpy()
        for col, name, fill in (("max", "all batches: max", None), ("min", "all batches: min", "tonexty")):
            x, y = decimate(bx, band[col].to_numpy(), max_points)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    line={"width": 0},
                    name=name,
                    fill=fill,
                    fillcolor="rgba(31,119,180,0.12)",
                    hoverinfo="skip",
                    showlegend=fill is None,
                )
            )
        x, y = decimate(bx, band["median"].to_numpy(), max_points)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name="all batches: median",
                line={"color": "rgba(31,119,180,0.6)", "dash": "dot", "width": 1.5},
            )
        )
        all_y.append(band["median"].to_numpy())
    colours = series_colours(len(chosen))
    for i, b in enumerate(chosen):
        if b not in curves.series:
            continue
        sx, sy = curves.series[b]
        colour = colours[i]
        all_y.append(sy)
        x, y = decimate(sx, sy, max_points)
        raw_style = {"color": colour, "width": 1 if smoothing > 0 else 2}
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=f"batch {b}" + (" (raw)" if smoothing else ""),
                line=raw_style,
                opacity=0.35 if smoothing > 0 else 1.0,
                legendgroup=f"b{b}",
                hovertemplate=f"batch {b}<br>step %{{x}}<br>{label} %{{y:.4f}}<extra></extra>",
            )
        )
        if smoothing > 0:
            x2, y2 = decimate(sx, ema(sy, smoothing), max_points)
            fig.add_trace(
                go.Scatter(
                    x=x2, y=y2, mode="lines", name=f"batch {b}", legendgroup=f"b{b}", line={"color": colour, "width": 2}
                )
            )
    _add_findings(fig, analysis, curves, metric, set(chosen))
    yr = robust_range(np.concatenate(all_y)) if ignore_outliers and all_y else None
    if yr is not None:
        _mark_outside(fig, curves, chosen, yr, metric)
        fig.update_yaxes(range=list(yr))
    fig.update_layout(
        title=f"{label} per batch",
        xaxis_title="step",
        yaxis_title=label,
        hovermode="closest",
        height=480,
        # The legend sits at the figure's bottom edge, under the axis title, in up to three rows (1024 px): placed
        # in plot units it moved with the plot's height and covered the title at some widths.
        margin={"l": 50, "r": 20, "t": 50, "b": 120},
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
    )
    return fig


def _value_at(curves: MetricCurves, batch: int | None, step: int, fallback: float) -> float | None:
    """The curve's own value at `step` (so a marker sits on the line it describes); `fallback` off the curve."""
    if batch in curves.series:
        x, y = curves.series[batch]
        i = int(np.searchsorted(x, step))
        if i < x.size and x[i] == step:
            return float(y[i]) if np.isfinite(y[i]) else None
    return fallback if np.isfinite(fallback) else None


def line_mode(y: np.ndarray) -> str:
    """The plotly mode of a line: "lines+markers" when some finite value has no finite neighbour, which a line
    draws nothing of (a Darknet IoU that is NaN at 95 % of its iterations showed as a few strokes)."""
    ok = np.isfinite(np.asarray(y, dtype=float))
    if ok.size < 2:
        return "lines+markers"
    alone = ok & ~np.r_[False, ok[:-1]] & ~np.r_[ok[1:], False]
    return "lines+markers" if alone.any() else "lines"


def nonfinite_points(
    curves: MetricCurves, batches: Iterable[int | None]
) -> list[tuple[int | None, int, float, Severity]]:
    """(batch, step, value, severity) of every logged NaN/Inf of the drawn batches: they have no y, so they are
    drawn on the axis, coloured by `vocabulary.nonfinite_severity` (a series that is NaN now and then: a warning; no
    value yet: a note)."""
    from analysis.findings.series_stats import nonfinite_stretches

    out = []
    no_value_yet = nonfinite_severity(curves.metric, leading=True)
    for b in batches:
        if b in curves.series:
            x, y = curves.series[b]
            bad = ~np.isfinite(y)
            lead, recoveries = nonfinite_stretches(bad)
            later = nonfinite_severity(curves.metric, recoveries)
            out += [
                (b, int(st), float(v), no_value_yet if first else later)
                for st, v, first in zip(x[bad], y[bad], lead[bad], strict=True)
            ]
    return out


def on_nonfinite_gap(curves: MetricCurves, batch: int | None, step: int) -> bool:
    """A change point whose step, or the gap just before it, holds a NaN/Inf of its batch (never drawn there)."""
    if batch not in curves.series:
        return False
    x, y = curves.series[batch]
    i = int(np.searchsorted(x, step))
    lo = i - 1
    while lo >= 0 and not np.isfinite(y[lo]):
        lo -= 1
    window = y[max(lo + 1, 0) : min(i + 1, y.size)]
    return bool((~np.isfinite(window)).any())


def _axis_floor(curves: MetricCurves, batches: Iterable[int | None]) -> float:
    """The lowest finite value drawn (NaN markers sit there, on the axis); 0 when nothing is finite."""
    lows = [float(np.nanmin(np.where(np.isfinite(y), y, np.nan))) for b in batches if b in curves.series
            for y in [curves.series[b][1]] if np.isfinite(y).any()]  # fmt: skip
    return min(lows) if lows else 0.0


def _vline(x: float, colour: str, axis: str = "") -> dict[str, object]:
    """A dotted vertical line across the plot at `x` (the shape `fig.add_vline` makes); `axis` is the subplot's axis
    number ("" for the first, "2", ...)."""
    return {"type": "line", "x0": x, "x1": x, "xref": f"x{axis}", "y0": 0, "y1": 1, "yref": f"y{axis} domain",
            "line": {"dash": "dot", "color": colour}}  # fmt: skip


def _vline_label(x: float, text: str, axis: str = "") -> dict[str, object]:
    """The label `fig.add_vline(annotation_text=...)` puts at the line's top right."""
    return {"x": x, "xref": f"x{axis}", "y": 1, "yref": f"y{axis} domain", "xanchor": "left", "yanchor": "top",
            "showarrow": False, "text": text, "font": {"size": 10}}  # fmt: skip


@dataclass(frozen=True)
class Marker:
    """One finding drawn on a curves chart: its step, the value it sits at (None: on no line), its colour and
    its hover lines (plain, untrusted text: each renderer escapes it its own way)."""

    x: int
    y: float | None
    colour: str
    lines: tuple[str, ...]
    label: str = ""  # the short label beside a change line


@dataclass(frozen=True)
class CurveMarks:
    """What a curves chart marks, whatever draws it (plotly here and in the HTML report, Vega-Lite on the
    Overview): events on their batch's line, detector hits by severity and the detectors' own change points (one
    level deeper), NaN/Inf values on the axis, a line at each event that starts a new regime, and a grey line at
    each restart that a progress counter or run label shows (`marks_restarts`: a log of runs one after another)."""

    events: list[Marker]
    hits: dict[Severity, list[Marker]]
    nonfinite: list[Marker]
    changes: list[Marker]
    detector_changes: list[Marker]
    restarts: list[Marker] = field(default_factory=list)


def curve_marks(analysis: RunAnalysis, curves: MetricCurves, metric: str, batches: set[int | None]) -> CurveMarks:
    """The findings of `metric` on `batches`, each at the step and value it describes (see `CurveMarks`); no change
    line on a NaN gap. `batches` {None} marks a run-level metric (its findings have no batch, its name is exact)."""

    def matches(m: str) -> bool:
        return m == metric or (None not in batches and m.endswith("/" + metric))

    def colour(sev: str) -> str:
        return SEVERITY_COLOURS.get(sev, "#7f7f7f")

    events = [e for e in analysis.events if e.batch in batches and any(matches(m) for m in e.metrics)]
    shown = [e for e in events if e.kind != "nonfinite"]
    event_marks = [
        Marker(e.start_step, _value_at(curves, e.batch, e.start_step, e.value_after), colour(e.severity),
               (f"{e.kind} ({e.severity})", e.message, "evidence: " + (", ".join(e.detectors) or "-")))
        for e in shown
    ]  # fmt: skip
    picked = [a for a in analysis.anomalies if a.batch in batches and matches(a.metric) and np.isfinite(a.value)]
    hits = {
        sev: [Marker(a.step, _value_at(curves, a.batch, a.step, a.value), SEVERITY_COLOURS[sev],
                     (f"{_where(a.batch)} · {a.detector}", a.message)) for a in picked if a.severity == sev]
        for sev in (Severity.WARNING, Severity.CRITICAL)
    }  # fmt: skip
    floor = _axis_floor(curves, batches)
    nonfinite = [
        Marker(st, floor, SEVERITY_COLOURS[sev], (f"{_where(b)}: {metric} = {v}",))
        for b, st, v, sev in nonfinite_points(curves, sorted(batches, key=lambda b: -1 if b is None else b))
    ]

    def lead(e: Event) -> str:  # the values of an event are its first metric's: named on another metric's chart
        return "" if matches(e.metric) else f"{e.metric}: "

    starting = [e for e in shown if e.is_change and not on_nonfinite_gap(curves, e.batch, e.start_step)]
    changes = [
        Marker(e.start_step, _value_at(curves, e.batch, e.start_step, e.value_after), colour(e.severity),
               (f"{_where(e.batch)} · change point: {e.kind.replace('_', ' ')} ({e.severity})",
                f"{lead(e)}{e.value_before:.3f} → {e.value_after:.3f} (Δ {e.magnitude:+.3f})"),
               label=("" if e.batch is None else f"b{e.batch}: ") + f"{lead(e)}{e.value_before:.2f}→{e.value_after:.2f}")
        for e in starting
    ]  # fmt: skip
    changes = _spaced_labels(changes, [severity_rank(e.severity) for e in starting], _step_span(curves))
    detector_changes = [
        Marker(c.step, _value_at(curves, c.batch, c.step, c.mean_after), "#7f7f7f",
               (f"{_where(c.batch)} · {c.metric} ({c.severity})",
                f"mean {c.mean_before:.3f} → {c.mean_after:.3f} (Δ {c.delta:+.3f})"))
        for c in analysis.change_points
        if c.batch in batches and matches(c.metric) and not on_nonfinite_gap(curves, c.batch, c.step)
    ]  # fmt: skip
    return CurveMarks(
        event_marks, hits, nonfinite, changes, detector_changes, _restart_marks(analysis, curves, matches)
    )


LABEL_CHAR_SHARE = 0.0065  # of a chart's step range: the width of one character of a change line's label (a
# 1,000-px chart and 10-px text; a label is drawn to the right of its line)


def _step_span(curves: MetricCurves) -> float:
    """The step range the curves cover (1 when they cover none)."""
    ends = [(float(x[0]), float(x[-1])) for x, _ in curves.series.values() if len(x)]
    return max(1.0, max(b for _, b in ends) - min(a for a, _ in ends)) if ends else 1.0


def _spaced_labels(changes: list[Marker], ranks: list[int], span: float) -> list[Marker]:
    """`changes` with the labels that would overlap a more severe one (or, at one severity, an earlier one) blanked:
    a label covers ``LABEL_CHAR_SHARE`` of `span` per character to the right of its line. The lines and their hover
    stay; only the text goes (a log of 30 runs wrote "0.27→0.00val_iou_12: 0.21→0.00…" into one smear)."""
    taken: list[tuple[float, float]] = []
    keep: set[int] = set()
    for i in sorted(range(len(changes)), key=lambda i: (-ranks[i], changes[i].x)):
        lo = float(changes[i].x)
        hi = lo + LABEL_CHAR_SHARE * span * len(changes[i].label)
        if all(hi <= a or lo >= b for a, b in taken):
            taken.append((lo, hi))
            keep.add(i)
    return [m if i in keep else replace(m, label="") for i, m in enumerate(changes)]


def _restart_marks(analysis: RunAnalysis, curves: MetricCurves, drawn: Callable[[str], bool]) -> list[Marker]:
    """One grey line per step where a progress counter or run label other than the charted metric (`drawn`) says
    the run started again; none beyond ``MAX_RESTART_LINES`` (a log of 161 restarts would be a grey wall; the run's
    notes say how often its counter goes back)."""
    at: dict[int, list[ChangePoint]] = {}
    for c in analysis.change_points:
        if c.batch is None and marks_restarts(c.metric) and not drawn(c.metric):
            at.setdefault(c.step, []).append(c)
    if len(at) > MAX_RESTART_LINES:
        return []
    return [
        Marker(step, _value_at(curves, None, step, float("nan")), RESTART_COLOUR,
               (f"restart: {', '.join(c.metric for c in cs)} started again",
                *(f"{c.metric} {c.mean_before:g} → {c.mean_after:g}" for c in cs)))
        for step, cs in sorted(at.items())
    ]  # fmt: skip


def _where(batch: int | None) -> str:
    return "run-level" if batch is None else f"batch {batch}"


def _hover(m: Marker) -> str:
    return "<br>".join(plotly_text(line) for line in m.lines)


def _marker_trace(marks: list[Marker], name: str, marker: dict, hovertemplate: str, **kw: object) -> go.Scatter:
    return go.Scatter(
        x=[m.x for m in marks],
        y=[m.y for m in marks],
        mode="markers",
        name=name,
        marker=marker,
        text=[_hover(m) for m in marks],
        hovertemplate=hovertemplate,
        **kw,
    )


def _add_findings(
    fig: go.Figure,
    analysis: RunAnalysis,
    curves: MetricCurves,
    metric: str,
    batches: set[int | None],
    prefix: str = "",
    row: int | None = None,
) -> None:
    """Events (diamonds), a line at each event that starts a new regime (level, slope or noise change, collapse),
    detector hits and the detectors' own change points (one click deeper: hidden until picked in the legend), each
    at the step and value it describes; NaN/Inf as markers on the axis; no line drawn on a NaN gap. `prefix` starts
    every legend name (a chart of several run-level metrics); `row` is the metric's panel in a figure of stacked
    subplots (None: a single plot)."""
    marks = curve_marks(analysis, curves, metric, batches)
    at = "step %{x}<br>%{text}<extra></extra>"
    where = {} if row is None else {"row": row, "col": 1}
    axis = "" if row is None or row == 1 else str(row)
    if marks.events:
        fig.add_trace(_marker_trace(marks.events, f"{prefix}event", {"symbol": "diamond", "size": 13, "color": [
            m.colour for m in marks.events], "line": {"width": 1, "color": "#222"}}, at), **where)  # fmt: skip
    for sev, sel in marks.hits.items():
        if sel:  # one level deeper: the events speak first
            fig.add_trace(_marker_trace(sel, f"{prefix}detector hit ({sev})", {"color": SEVERITY_COLOURS[sev], "size": 9,
                "symbol": "x"}, "step %{x}<br>%{y:.4f}<br>%{text}<extra></extra>", visible="legendonly"), **where)  # fmt: skip
    if marks.nonfinite:
        fig.add_trace(_marker_trace(marks.nonfinite, f"{prefix}NaN/Inf (no value)", {"symbol": "triangle-up", "size": 12,
            "color": [m.colour for m in marks.nonfinite]}, at), **where)  # fmt: skip
    if marks.changes:  # as `add_vline` draws them, added at once (add_vline re-validates the layout per line: slow)
        fig.update_layout(
            shapes=[*fig.layout.shapes, *(_vline(m.x, m.colour, axis) for m in marks.changes)],
            annotations=[
                *fig.layout.annotations,
                *(_vline_label(m.x, m.label, axis) for m in marks.changes if m.label),
            ],
        )
        fig.add_trace(  # shapes carry no hover: a marker on each line does
            _marker_trace(marks.changes, f"{prefix}change point", {"symbol": "line-ns-open", "size": 14, "color": [
                m.colour for m in marks.changes]}, at), **where)  # fmt: skip
    if marks.restarts:  # behind the findings: grey lines without labels (30 restarts would bury the change labels)
        fig.update_layout(shapes=[*fig.layout.shapes, *(_vline(m.x, m.colour, axis) for m in marks.restarts)])
        on_line = [m for m in marks.restarts if m.y is not None]
        if on_line:  # one legend entry for every panel's restarts: they are the same steps on each
            first = not any(t.legendgroup == "restart" for t in fig.data)
            fig.add_trace(_marker_trace(on_line, "restart", {"symbol": "line-ns-open", "size": 10,
                "color": RESTART_COLOUR}, at, legendgroup="restart", showlegend=first), **where)  # fmt: skip
    if marks.detector_changes:  # the detectors' own change points, one level deeper (as the detector hits)
        fig.add_trace(_marker_trace(marks.detector_changes, f"{prefix}detector change point", {"symbol": "line-ns-open",
            "size": 14, "color": "#7f7f7f"}, at, visible="legendonly"), **where)  # fmt: skip


def outside_points(
    curves: MetricCurves, chosen: Sequence[int], yr: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(batch, step, value) of the drawn points outside the clipped y-range `yr` (drawn at its edge)."""
    lo, hi = yr
    parts = []
    for b in chosen:
        if b in curves.series:
            x, v = curves.series[b]
            out = (v < lo) | (v > hi)
            if out.any():
                parts.append((np.full(int(out.sum()), b), x[out], v[out]))
    if not parts:
        return np.empty(0, int), np.empty(0), np.empty(0)
    bs, xs, v = (np.concatenate(p) for p in zip(*parts, strict=True))
    return bs, xs, v


def _mark_outside(
    fig: go.Figure, curves: MetricCurves, chosen: Sequence[int], yr: tuple[float, float], metric: str
) -> None:
    """Points outside the clipped y-range are drawn at the edge as triangles, with their real value on hover."""
    lo, hi = yr
    bs, xs, v = outside_points(curves, chosen, yr)
    if not v.size:
        return
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=np.clip(v, lo, hi),
            mode="markers",
            name="outside axis",
            marker={"symbol": np.where(v < lo, "triangle-down", "triangle-up"), "size": 9, "color": "#444"},
            customdata=np.column_stack([bs, v]),
            hovertemplate=f"batch %{{customdata[0]}}<br>step %{{x}}<br>{plotly_text(metric)} %{{customdata[1]:.4f}} "
            "(outside axis)<extra></extra>",
        )
    )


def heatmap_figure(
    analysis: RunAnalysis, metric: str = "recall", max_columns: int = 400, curves: MetricCurves | None = None
) -> go.Figure:
    """Batch x step heatmap; with more steps than `max_columns`, each column shows its bucket's worst value.

    Worst and the colours follow the metric's direction (`is_lower_better` with the config's `metric_directions`):
    the highest loss / perplexity is worst and red, the lowest recall is worst and red."""
    curves = (
        curves
        if curves is not None and curves.metric == metric
        else MetricCurves.from_batches(analysis.batches, metric)
    )
    label = plotly_text(metric)
    fig = go.Figure()
    if not curves.series:
        fig.update_layout(title=f"{label}: no data")
        return fig
    batches, steps, z = curves.grid()
    z = np.where(np.isfinite(z), z, np.nan)
    lower_better = is_lower_better(metric, analysis.config.anomaly.metric_directions)
    if len(steps) > max_columns:
        edges = np.linspace(0, len(steps), max_columns + 1).astype(int)
        reducer = np.nanmax if lower_better else np.nanmin
        with warnings.catch_warnings():  # all-NaN buckets are expected (late/missing batches)
            warnings.simplefilter("ignore", RuntimeWarning)
            z = np.column_stack([reducer(z[:, lo:hi], axis=1) for lo, hi in pairwise(edges)])
        steps = steps[edges[:-1]]
    fig.add_trace(
        go.Heatmap(
            z=z.astype(np.float32),
            x=steps,
            y=[f"batch {b}" for b in batches],
            colorscale="RdYlGn_r" if lower_better else "RdYlGn",  # red = bad either way
            colorbar={"title": label},
            hovertemplate="%{y}<br>step %{x}<br>" + label + " %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{label}: batch × step",
        xaxis_title="step",
        height=min(900, max(300, 18 * len(batches) + 120)),
        margin={"l": 80, "r": 20, "t": 50, "b": 40},
    )
    return fig


GLOBAL_PANEL_PX = 170  # height of one run-level metric's panel
_LEGEND_ROW_PX, _LEGEND_PER_ROW = 22, 4  # a legend row's height, and entries per row on a chart ~1000 px wide


def global_metrics_figure(analysis: RunAnalysis, metrics: Sequence[str], max_points: int = 2000) -> go.Figure:
    """Run-level metrics (`val/*`, `train/*`) over steps with their findings, marked as on the batch curves
    (`_add_findings`): events on the line at the step they start, detector hits one click deeper, NaN/Inf on the
    axis, a line at each change of regime.

    One panel per metric, stacked on a shared step axis, each with its own y-axis: a YOLOv5 log's recall (0-1) and
    its box / object / class losses (0.01-0.07) on one axis left the losses as flat lines at 0."""
    from plotly.subplots import make_subplots  # plotly's subplots module is only needed here

    metrics = list(metrics)
    names = [plotly_text(m) for m in metrics]
    rows = max(len(metrics), 1)
    # plotly refuses a spacing over 1 / (rows - 1): a user may pick dozens of metrics
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=min(0.06, 0.3 / max(rows - 1, 1)),
                        subplot_titles=names or None)  # fmt: skip
    fig.update_annotations(font_size=12)  # the panel titles (the change lines' labels come later)
    g = analysis.global_metrics
    colours = series_colours(len(metrics))
    empty_band = pd.DataFrame(columns=["step", "min", "median", "max"])
    for i, (m, name) in enumerate(zip(metrics, names, strict=True)):
        s = g[g["metric"] == m].sort_values("step")
        x, y = decimate(s["step"].to_numpy(), s["value"].to_numpy(), max_points)
        fig.add_trace(go.Scatter(x=x, y=y, mode=line_mode(y), name=name, line={"color": colours[i]},
                                 marker={"size": 3}), row=i + 1, col=1)  # fmt: skip
        one = MetricCurves(m, {None: (s["step"].to_numpy(), s["value"].to_numpy(dtype=float))}, empty_band)
        _add_findings(fig, analysis, one, m, {None}, prefix=f"{name}: ", row=i + 1)
    # The legend sits at the figure's bottom edge, under the axis title, in a margin sized for its rows (as on the
    # batch curves): placed in plot units, under one short panel it covered the axis title.
    entries = sum(1 for t in fig.data if t.showlegend is not False)
    bottom = 60 + _LEGEND_ROW_PX * math.ceil(entries / _LEGEND_PER_ROW)
    fig.update_xaxes(title_text=_step_title(analysis), row=rows, col=1)
    fig.update_layout(
        title="run-level metrics",
        height=70 + GLOBAL_PANEL_PX * rows + bottom,
        margin={"l": 50, "r": 20, "t": 60, "b": bottom},
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
    )
    return fig


def _step_title(analysis: RunAnalysis) -> str:
    """The x-axis title: what a step counts ("epoch" for a table whose steps are its epoch column)."""
    axis = analysis.run.step_axis
    return "step" if axis in ("_step", "row", "") else axis


def score_histogram_figure(
    scores: pd.DataFrame, column: str, threshold: float | None = None, threshold_side: str = "below"
) -> go.Figure:
    """Histogram of one quality score with the threshold drawn; `threshold_side` says which side fails."""
    vals = pd.to_numeric(scores.get(column, pd.Series(dtype=float)), errors="coerce")
    vals = vals[np.isfinite(vals)]
    fig = go.Figure(go.Histogram(x=vals, nbinsx=40, name=plotly_text(column), marker={"color": "#1f77b4"}))
    return style_score_histogram(fig, column, threshold, threshold_side, title=column, bargap=0.05)


def style_score_histogram(
    fig: go.Figure, column: str, threshold: float | None, side: str, *, title: str, bargap: float
) -> go.Figure:
    """The threshold line and layout every quality-score histogram shares (report and dashboard). `column` and
    `title` are plain text (escaped here)."""
    if threshold is not None:
        fig.add_vline(
            x=threshold,
            line={"color": "#d62728", "width": 2},
            annotation_text=plotly_text(f"threshold {threshold:g} (fail {side})"),
        )
    fig.update_layout(
        title=plotly_text(title),
        height=300,
        bargap=bargap,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
        xaxis_title=plotly_text(column),
        yaxis_title="images",
        showlegend=False,
    )
    return fig
