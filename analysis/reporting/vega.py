"""The per-batch curves chart as a Vega-Lite spec: the Overview's first chart.

Why a second renderer: a new browser tab spends about a second fetching and compiling Streamlit's plotly.js chunk
(4.7 MB) before it draws a plotly chart, and about 0.4 s for a Vega-Lite one (benchmarks/dashboard.py measures an
empty page, the same page with one small plotly chart and with one small Vega-Lite chart, in one run). The Overview
is the page a user opens first, so its curves are drawn by Vega-Lite; the Batches page and the HTML report keep the
plotly chart. Both draw the same data and the same findings: the curves come from `figures.MetricCurves`, decimated
by `figures.decimate`, and what is marked where from `figures.curve_marks` (events on their batch's line, a line at
each change of regime, NaN/Inf on the axis, detector hits and the detectors' own change points one level deeper).

The spec is plain JSON (no Altair). Its rows sit in named `datasets` ("band", "lines", "changes", "marks",
"threshold") that the layers refer to by name: Streamlit sends named data sets to the browser as Arrow, not as JSON
(a 10,000-step run's chart is about 1 MB of JSON rows). Text from runs (metric names, messages) goes in data fields,
which Vega draws as text (canvas or SVG text, tooltips escaped by vega-tooltip), never as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.reporting.figures import (
    CurveMarks,
    Marker,
    MetricCurves,
    curve_marks,
    decimate,
    ema,
    outside_points,
    robust_range,
    series_colours,
)

if TYPE_CHECKING:
    from analysis.findings.pipeline import RunAnalysis

__all__ = ["MARK_SHAPES", "batch_curves_spec"]

_TICK = "M0,-1L0,1"  # a vertical stroke: the marker on a change line
# Each kind of finding marker: its shape (in the chart and the legend) and its area in square pixels. The
# evidence behind the events (detector hits and change points) is drawn first and smaller, so an event's diamond
# stays on top of the hits at its step.
MARK_SHAPES: dict[str, tuple[str, int]] = {
    "detector hit (warning)": ("cross", 70),
    "detector hit (critical)": ("cross", 70),
    "detector change point": (_TICK, 150),
    "restart": (_TICK, 100),
    "outside axis (above)": ("triangle-up", 80),
    "outside axis (below)": ("triangle-down", 80),
    "change point": (_TICK, 200),
    "NaN/Inf (no value)": ("triangle-up", 140),
    "event": ("diamond", 150),
}
_X = {"field": "step", "type": "quantitative", "title": "step"}


def _y(field: str, scale: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """A y encoding on the chart's one value axis (every layer states the same scale: layers share it)."""
    return {"field": field, "type": "quantitative", "scale": scale, "title": title}


def _number(v: float) -> float | None:
    """A JSON-safe number: NaN/Inf become null (a gap in a line)."""
    return float(v) if math.isfinite(v) else None


def _curve_rows(
    x: np.ndarray, y: np.ndarray, series: str, max_points: int, line: str, alpha: float, width: float
) -> list[dict[str, Any]]:
    """One drawn line's rows: `line` says which ("raw" or "smoothed"), `alpha` and `width` how it is drawn (data,
    not spec: turning smoothing on or off then changes only the data, and the browser keeps its chart)."""
    xs, ys = decimate(x, y, max_points)
    return [
        {"step": _number(a), "value": _number(b), "series": series, "line": line, "alpha": alpha, "width": width}
        for a, b in zip(xs, ys, strict=True)
    ]


def _band_rows(curves: MetricCurves, max_points: int) -> list[dict[str, Any]]:
    """Min, median and max over all batches per step, at the steps `decimate` keeps for the min and the max."""
    band = curves.band
    idx = np.arange(len(band))
    keep = np.union1d(
        decimate(idx, band["min"].to_numpy(), max_points)[0], decimate(idx, band["max"].to_numpy(), max_points)[0]
    )
    step, lo, mid, hi = (band[c].to_numpy()[keep] for c in ("step", "min", "median", "max"))
    return [
        {"step": _number(s), "lo": _number(a), "median": _number(m), "hi": _number(b)}
        for s, a, m, b in zip(step, lo, mid, hi, strict=True)
    ]


def _marker_rows(marks: list[Marker], kind: str) -> list[dict[str, Any]]:
    return [
        {
            "step": int(m.x),
            "value": None if m.y is None else _number(m.y),
            "kind": kind,
            "colour": m.colour,
            "finding": m.lines[0] if m.lines else kind,
            "detail": " · ".join(m.lines[1:]),
        }
        for m in marks
    ]


def _findings_rows(marks: CurveMarks, show_hits: bool) -> list[dict[str, Any]]:
    rows = _marker_rows(marks.events, "event") + _marker_rows(marks.changes, "change point")
    rows += _marker_rows(marks.restarts, "restart")
    rows += _marker_rows(marks.nonfinite, "NaN/Inf (no value)")
    if show_hits:
        for sev, sel in marks.hits.items():
            rows += _marker_rows(sel, f"detector hit ({sev})")
        rows += _marker_rows(marks.detector_changes, "detector change point")
    return rows


def _outside_rows(curves: MetricCurves, chosen: Sequence[int], yr: tuple[float, float], metric: str) -> list[dict]:
    lo, hi = yr
    bs, xs, v = outside_points(curves, chosen, yr)
    return [
        {"step": _number(x), "value": float(np.clip(val, lo, hi)), "colour": "#444444",
         "kind": "outside axis (below)" if val < lo else "outside axis (above)",
         "finding": f"batch {int(b)}: {metric} {val:.4f}", "detail": "outside the clipped axis"}
        for b, x, val in zip(bs, xs, v, strict=True)
    ]  # fmt: skip


def _line_layer(labels: list[str], colours: list[str], metric: str, scale: dict[str, Any]) -> dict:
    """The batches' lines (data set "lines"): one colour per batch, raw and smoothed lines apart (`detail`), each
    with the opacity and width its rows carry. Scroll to zoom, drag to pan."""
    return {
        "data": {"name": "lines"},
        "mark": {"type": "line", "clip": True},
        "params": [{"name": "zoom", "select": "interval", "bind": "scales"}],
        "encoding": {
            "x": _X,
            "y": _y("value", scale, metric),
            "color": {
                "field": "series",
                "type": "nominal",
                "scale": {"domain": labels, "range": colours},
                "legend": {"title": None, "orient": "bottom", "columns": 8},
            },
            "detail": {"field": "line", "type": "nominal"},
            "opacity": {"field": "alpha", "type": "quantitative", "scale": None},
            "strokeWidth": {"field": "width", "type": "quantitative", "scale": None},
            "tooltip": [
                {"field": "series", "title": "batch"},
                {"field": "line"},
                {"field": "step", "type": "quantitative"},
                {"field": "value", "type": "quantitative", "title": metric, "format": ".4f"},
            ],
        },
    }


def batch_curves_spec(
    analysis: RunAnalysis,
    metric: str,
    batches: Sequence[int],
    *,
    max_points: int = 2000,
    smoothing: float = 0.0,
    ignore_outliers: bool = False,
    show_band: bool = True,
    show_hits: bool = False,
    threshold: float | None = None,
    curves: MetricCurves | None = None,
    height: int = 460,
) -> dict[str, Any]:
    """Per-batch curves of one metric with their findings, as a Vega-Lite spec (see the module doc).

    `show_band` adds the min-max range and median over all batches; `smoothing` (an EMA weight) keeps the raw lines
    faint beside the smoothed ones; `ignore_outliers` clips the y-axis to the central values and draws the points
    beyond it at its edge; `show_hits` adds the detector hits and the detectors' own change points behind the
    events; `threshold` draws the metric's absolute bound. Scroll to zoom, drag to pan, double-click to reset."""
    curves = (
        curves
        if curves is not None and curves.metric == metric
        else MetricCurves.from_batches(analysis.batches, metric)
    )
    chosen = [int(b) for b in batches if int(b) in curves.series]
    labels = [f"batch {b}" for b in chosen]
    colours = series_colours(len(chosen))
    band_shown = show_band and not curves.band.empty
    y_values = [curves.series[b][1] for b in chosen]
    if band_shown:
        y_values.append(curves.band["median"].to_numpy(dtype=float))
    yr = robust_range(np.concatenate(y_values)) if ignore_outliers and y_values else None
    scale: dict[str, Any] = {"zero": False} if yr is None else {"zero": False, "domain": list(yr)}
    data: dict[str, list[dict[str, Any]]] = {}  # named data sets: the layers refer to them by name
    layers: list[dict[str, Any]] = []
    if band_shown:
        data["band"] = _band_rows(curves, max_points)
        layers.append({"data": {"name": "band"}, "mark": {"type": "area", "color": "#1f77b4", "opacity": 0.12,
                       "clip": True}, "encoding": {"x": _X, "y": _y("lo", scale, metric), "y2": {"field": "hi"},
                       "tooltip": None}})  # fmt: skip
        layers.append({"data": {"name": "band"}, "mark": {"type": "line", "color": "#1f77b4", "opacity": 0.6,
                       "strokeDash": [2, 3], "clip": True}, "encoding": {"x": _X, "y": _y("median", scale, metric),
                       "tooltip": [{"field": "step", "type": "quantitative"}, {"field": "median", "format": ".4f",
                       "type": "quantitative", "title": "median of all batches"}]}})  # fmt: skip
    lines: list[dict[str, Any]] = []
    for b, label in zip(chosen, labels, strict=True):
        x, y = curves.series[b]
        if smoothing > 0:  # the raw line stays, faint, under the smoothed one
            lines += _curve_rows(x, y, label, max_points, "raw", 0.35, 1)
            lines += _curve_rows(x, ema(y, smoothing), label, max_points, "smoothed", 1.0, 2)
        else:
            lines += _curve_rows(x, y, label, max_points, "raw", 1.0, 2)
    if lines:
        data["lines"] = lines
        layers.append(_line_layer(labels, colours, metric, scale))
    marks = curve_marks(analysis, curves, metric, set(chosen))
    if marks.changes or marks.restarts:  # a restart's line is unlabelled: 30 restarts would bury the change labels
        data["changes"] = [{"step": int(m.x), "label": m.label, "colour": m.colour} for m in marks.changes] + [
            {"step": int(m.x), "label": "", "colour": m.colour} for m in marks.restarts
        ]
        layers += _change_layers()
    points = _findings_rows(marks, show_hits) + (_outside_rows(curves, chosen, yr, metric) if yr else [])
    points = [p for p in points if p["value"] is not None]
    if points:
        order = {k: i for i, k in enumerate(MARK_SHAPES)}
        points.sort(key=lambda p: order[p["kind"]])  # drawn in MARK_SHAPES order: events on top
        present = {p["kind"] for p in points}
        kinds = [k for k in MARK_SHAPES if k in present]
        data["marks"] = points
        layers.append({
            "data": {"name": "marks"},
            "mark": {"type": "point", "filled": True, "opacity": 1, "stroke": "#222222", "strokeWidth": 0.6,
                     "clip": True},
            "encoding": {
                "x": _X,
                "y": _y("value", scale, metric),
                "shape": {"field": "kind", "type": "nominal", "title": None,
                          "scale": {"domain": kinds, "range": [MARK_SHAPES[k][0] for k in kinds]},
                          "legend": {"orient": "bottom", "symbolFillColor": "#7f7f7f"}},
                "size": {"field": "kind", "type": "ordinal", "legend": None,
                         "scale": {"domain": kinds, "range": [MARK_SHAPES[k][1] for k in kinds]}},
                "color": {"field": "colour", "type": "nominal", "scale": None, "legend": None},
                "tooltip": [{"field": "step", "type": "quantitative"}, {"field": "finding"}, {"field": "detail"}],
            },
        })  # fmt: skip
    if threshold is not None and math.isfinite(threshold):
        data["threshold"] = [{"value": float(threshold), "label": f"{metric} threshold {threshold:g}"}]
        layers += _threshold_layers(scale)
    return {
        "title": {
            "text": f"{metric} per batch",
            "subtitle": "shaded: the range of all batches, dotted: their median" if band_shown else "",
            "anchor": "start",
        },
        "height": height,
        "datasets": data,
        "layer": layers or [{"mark": "point"}],
        "resolve": {"scale": {"color": "independent", "shape": "independent"}},
        "config": {"legend": {"orient": "bottom"}},
    }


def _change_layers() -> list[dict[str, Any]]:
    """A dotted vertical line at each change of regime (data set "changes"), its short label at the top."""
    return [
        {"data": {"name": "changes"}, "mark": {"type": "rule", "strokeDash": [2, 2]},
         "encoding": {"x": _X, "color": {"field": "colour", "type": "nominal", "scale": None, "legend": None}}},
        {"data": {"name": "changes"}, "mark": {"type": "text", "align": "left", "baseline": "top", "dx": 3, "y": 2,
         "fontSize": 10}, "encoding": {"x": _X, "text": {"field": "label"}}},
    ]  # fmt: skip


def _threshold_layers(scale: dict[str, Any]) -> list[dict[str, Any]]:
    """The metric's absolute bound (data set "threshold", e.g. `recall must stay >= 0.8`) as a dashed line with its
    label."""
    return [
        {"data": {"name": "threshold"}, "mark": {"type": "rule", "color": "#d62728", "strokeDash": [6, 4]},
         "encoding": {"y": _y("value", scale)}},
        {"data": {"name": "threshold"}, "mark": {"type": "text", "align": "right", "baseline": "bottom", "dy": -2,
         "color": "#d62728", "fontSize": 11},
         "encoding": {"x": {"value": "width"}, "y": _y("value", scale), "text": {"field": "label"}}},
    ]  # fmt: skip
