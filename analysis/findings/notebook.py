"""How a run's findings show themselves in Jupyter: a compact HTML summary with one small inline SVG figure.

`RunAnalysis._repr_html_` and `Report._repr_html_` both render through `summary_html` here, so a notebook shows
the same summary whichever object it holds. It lives below `reporting/` because `RunAnalysis` (findings) may not
import the reporting layer. The figure is a few kilobytes of SVG (no plotly.js, no network): the primary metric of
the problematic batches against the median of all batches, with the events marked. Every run-supplied string
(run name, metric names, event messages) is escaped with `html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from analysis.core.records import Anomaly
from analysis.core.run import Run
from analysis.core.vocabulary import Severity, severity_rank
from analysis.findings.events import Event

__all__ = ["KeyFigure", "RunAnalysisView", "analysis_html", "figure_svg", "key_figure", "summary_html"]

MAX_ROWS = 10  # events and problematic batches shown; the report has them all
MAX_LINES = 4  # problematic batches drawn in the figure
MAX_POINTS = 300  # per line in the SVG
_SEVERITY_COLOURS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#7f7f7f", "ok": "#2ca02c"}
_LINE_COLOURS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_MEDIAN_COLOUR = "#b0b0b0"


class RunAnalysisView(Protocol):
    """What this module reads of a `pipeline.RunAnalysis` (named structurally: pipeline imports this module)."""

    run: Run
    batches: pd.DataFrame
    global_metrics: pd.DataFrame
    batch_summary: pd.DataFrame
    anomalies: list[Anomaly]
    events: list[Event]

    @property
    def alarm_events(self) -> list[Event]: ...
    @property
    def problematic_batches(self) -> list[int]: ...
    @property
    def primary_metric(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def worst_severity(self) -> Severity: ...


@dataclass(frozen=True)
class KeyFigure:
    """The data of the key figure: lines of (step, value) points and event markers, all plain numbers."""

    metric: str
    lines: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...]  # (label, colour, points)
    markers: tuple[tuple[float, float, str, str], ...]  # (step, value, severity, tooltip); value NaN: off the chart


def _points(steps: Iterable[Any], values: Iterable[Any]) -> tuple[tuple[float, float], ...]:
    pts = [(float(s), float(v)) for s, v in zip(steps, values) if math.isfinite(float(v)) and math.isfinite(float(s))]
    if len(pts) > MAX_POINTS:
        stride = math.ceil(len(pts) / MAX_POINTS)
        pts = pts[::stride] + ([pts[-1]] if (len(pts) - 1) % stride else [])
    return tuple(pts)


def _value_at(series: pd.Series, step: float) -> float:
    """The series' value at `step`, or at the nearest logged step (NaN when the series is empty)."""
    if series.empty:
        return math.nan
    idx = series.index.to_numpy(dtype="float64")
    return float(series.iloc[int(np.argmin(np.abs(idx - step)))])


def key_figure(analysis: RunAnalysisView) -> KeyFigure | None:
    """The primary metric of the worst problematic batches (and the median of all batches) with their events;
    for runs without per-batch metrics, the run-level metric with the worst events. None when nothing is logged."""
    events = sorted(analysis.events, key=lambda e: (-e.severity.rank, e.start_step))
    b = analysis.batches
    lines: list[tuple[str, str, tuple[tuple[float, float], ...]]] = []
    markers: list[tuple[float, float, str, str]] = []
    if len(b):
        metric = analysis.primary_metric
        prim = b[b["metric"] == metric]
        values = pd.to_numeric(prim["value"], errors="coerce").astype("float64")
        finite = prim.assign(value=values.where(np.isfinite(values)))
        median = finite.groupby("step", sort=True)["value"].median().dropna()
        lines.append((f"median of {prim['batch'].nunique()} batches", _MEDIAN_COLOUR, _points(median.index, median)))
        for i, batch in enumerate(analysis.problematic_batches[:MAX_LINES]):
            rows = prim[prim["batch"] == batch].sort_values("step")
            series = pd.Series(
                pd.to_numeric(rows["value"], errors="coerce").to_numpy(dtype="float64"), index=rows["step"].to_numpy()
            )
            lines.append((f"batch {batch}", _LINE_COLOURS[i % len(_LINE_COLOURS)], _points(series.index, series)))
            for e in events:
                if e.batch == batch and metric in e.metrics:
                    markers.append((float(e.start_step), _value_at(series, e.start_step), e.severity.value, e.message))
        return KeyFigure(metric, tuple(lines), tuple(markers))
    g = analysis.global_metrics
    if not len(g):
        return None
    run_events = [e for e in events if e.batch is None]
    names = sorted(g["metric"].unique())
    metric = run_events[0].metric if run_events and run_events[0].metric in names else str(names[0])
    rows = g[g["metric"] == metric].sort_values("step")
    series = pd.Series(
        pd.to_numeric(rows["value"], errors="coerce").to_numpy(dtype="float64"), index=rows["step"].to_numpy()
    )
    for e in run_events:
        if metric in e.metrics:
            markers.append((float(e.start_step), _value_at(series, e.start_step), e.severity.value, e.message))
    return KeyFigure(metric, ((metric, _LINE_COLOURS[0], _points(series.index, series)),), tuple(markers))


def _num(v: Any) -> str:
    """Short number text (4 significant digits); '—' for missing."""
    if v is None or (isinstance(v, str) and not v):
        return "—"
    if isinstance(v, str):
        return html.escape(v)
    f = float(v)
    if math.isfinite(f) and f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.4g}" if math.isfinite(f) else ("NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity"))


def figure_svg(fig: KeyFigure, width: int = 560, height: int = 190) -> str:
    """The key figure as a small self-contained SVG (lines, event markers with tooltips, min/max labels)."""
    left, right, top, bottom = 48, 10, 24, 22
    xs = [p[0] for _, _, pts in fig.lines for p in pts] + [m[0] for m in fig.markers]
    ys = [p[1] for _, _, pts in fig.lines for p in pts] + [m[1] for m in fig.markers if math.isfinite(m[1])]
    if not xs or not ys:
        return ""
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" style="font:11px sans-serif">',
        f"<title>{html.escape(fig.metric)} with events marked</title>",
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ddd"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{_num(y1)}</text>',
        f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">{_num(y0)}</text>',
        f'<text x="{left}" y="{height - 6}">{_num(x0)}</text>',
        f'<text x="{left + pw}" y="{height - 6}" text-anchor="end">step {_num(x1)}</text>',
    ]
    out.append(f'<text x="{left}" y="14" font-weight="bold">{html.escape(fig.metric)}</text>')
    legend_x = left + 12 + 7 * len(fig.metric)
    for label, colour, pts in fig.lines:
        if pts:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            width_px = 1.2 if colour == _MEDIAN_COLOUR else 1.8
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{width_px}" points="{path}"/>')
        out.append(f'<text x="{legend_x}" y="14" fill="{colour}">■ {html.escape(label)}</text>')
        legend_x += 14 + 7 * len(label)
    for x, y, severity, tip in fig.markers:
        colour = _SEVERITY_COLOURS.get(severity, "#7f7f7f")
        cy = sy(y) if math.isfinite(y) else top + ph  # a NaN/Inf stretch: marked on the axis
        out.append(
            f'<circle cx="{sx(x):.1f}" cy="{cy:.1f}" r="5" fill="{colour}" stroke="#222" stroke-width="0.8">'
            f"<title>{html.escape(tip)}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def _badge(severity: str) -> str:
    colour = _SEVERITY_COLOURS.get(severity, "#7f7f7f")
    return (
        f'<span style="background:{colour};color:#fff;border-radius:3px;padding:0 5px">{html.escape(severity)}</span>'
    )


def _table(headers: Sequence[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th style="text-align:left;padding:1px 6px">{h}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="padding:1px 6px">{c}</td>' for c in r) + "</tr>" for r in rows)
    return f'<table style="border-collapse:collapse;font-size:12px"><tr>{head}</tr>{body}</table>'


def summary_html(
    *,
    name: str,
    run_id: str,
    verdict: str,
    severity: str,
    counts: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    problems: Sequence[Mapping[str, Any]],
    figure: KeyFigure | None,
) -> str:
    """The compact summary: run, verdict, counts, the key figure, top events and problematic batches.

    `events` are event dicts (`Event.to_dict`), `problems` problematic-batch dicts (batch, severity, metric,
    first_bad_step, worst_value, worst_step, n_events); every string in them is escaped here."""
    esc = html.escape
    count_text = " · ".join(f"{_num(v)} {esc(k)}" for k, v in counts.items())
    parts = [
        '<div class="experiment-analyzer-summary" style="font-family:sans-serif;max-width:760px">',
        f"<div><b>{esc(name)}</b> <code>{esc(run_id)}</code> {_badge(severity)}</div>",
        f"<div style='margin:4px 0'>{esc(verdict)}</div>",
        f"<div style='color:#555;font-size:12px'>{count_text}</div>",
    ]
    svg = figure_svg(figure) if figure is not None else ""
    if svg:
        parts.append(f"<div>{svg}</div>")
    shown = sorted(events, key=lambda e: (-severity_rank(str(e.get("severity"))), e.get("start_step") or 0))
    alarms = [e for e in shown if severity_rank(str(e.get("severity"))) >= Severity.WARNING.rank] or shown
    if alarms:
        rows = [
            [
                _badge(str(e.get("severity"))),
                _num(e.get("batch")) if e.get("batch") is not None else "run",
                esc(str(e.get("metric", ""))),
                esc(str(e.get("kind", ""))),
                f"{_num(e.get('start_step'))}–{_num(e.get('end_step'))}",
                esc(str(e.get("message", ""))),
            ]
            for e in alarms[:MAX_ROWS]
        ]
        more = f" (top {MAX_ROWS} of {len(alarms)})" if len(alarms) > MAX_ROWS else ""
        parts.append(f"<div style='margin-top:6px'><b>Events</b>{more}</div>")
        parts.append(_table(["Severity", "Batch", "Metric", "Kind", "Steps", "What changed"], rows))
    if problems:
        rows = [
            [
                _num(p.get("batch")),
                _badge(str(p.get("severity"))),
                esc(str(p.get("metric", ""))),
                _num(p.get("first_bad_step")),
                f"{_num(p.get('worst_value'))} @ {_num(p.get('worst_step'))}",
                _num(p.get("n_events")),
            ]
            for p in problems[:MAX_ROWS]
        ]
        more = f" (top {MAX_ROWS} of {len(problems)})" if len(problems) > MAX_ROWS else ""
        parts.append(f"<div style='margin-top:6px'><b>Problematic batches</b>{more}</div>")
        parts.append(_table(["Batch", "Severity", "Metric", "First bad step", "Worst", "Events"], rows))
    parts.append("</div>")
    return "".join(parts)


def analysis_html(analysis: RunAnalysisView) -> str:
    """`summary_html` of a RunAnalysis (what `RunAnalysis._repr_html_` shows)."""
    s = analysis.batch_summary
    bad = set(analysis.problematic_batches)
    metric = analysis.primary_metric
    problems = [
        {
            "batch": int(r["batch"]),
            "severity": str(r["severity"]),
            "metric": metric,
            "first_bad_step": int(r["first_bad_step"]) if int(r["first_bad_step"]) >= 0 else None,
            "worst_value": float(r["worst_recall"]),
            "worst_step": int(r["worst_step"]) if int(r["worst_step"]) >= 0 else None,
            "n_events": int(r["n_events"]),
        }
        for r in s.to_dict("records")
        if int(r["batch"]) in bad
    ]
    b = analysis.batches
    alarms = analysis.alarm_events
    counts = {
        "steps": int(b["step"].nunique()) if len(b) else 0,
        "batches": int(b["batch"].nunique()) if len(b) else 0,
        "events": len(alarms),
        "problematic batches": len(problems),
        "detector hits": len(analysis.anomalies),
    }
    return summary_html(
        name=analysis.run.ref.name or analysis.run.ref.run_id,
        run_id=analysis.run.ref.run_id,
        verdict=analysis.verdict,
        severity=analysis.worst_severity.value,
        counts=counts,
        events=[e.to_dict() for e in analysis.events],
        problems=problems,
        figure=key_figure(analysis),
    )
