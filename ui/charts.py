"""Figures and tables the pages draw, cached on what they depend on.

Every builder takes the analysis key (run location + fingerprint + config + data dir, see `state.analysis_key`)
and the widget values; the analysis object itself is passed as `_analysis` (not hashed: the key stands for it).
A slider or page switch that changes nothing a figure depends on reuses the cached figure. The run's figures are
shared read-only (`cache_resource`: no copy is unpickled per rerun; `st.plotly_chart` does not change them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis.core.config import AnalyzerConfig
from analysis.core.vocabulary import Severity, metric_threshold, worst_severity
from analysis.reporting import figures, vega
from ui import tables
from ui.state import AnalysisKey

if TYPE_CHECKING:
    from analysis.findings.pipeline import RunAnalysis

# What the dashboard draws per curve / heatmap row: enough for a ~1,400 px wide chart (min/max envelope keeps
# every spike); the analysis itself always uses every step.
CURVE_POINTS = 1200
HEATMAP_COLUMNS = 240


@dataclass(frozen=True)
class RunFacts:
    """What the pages show about a run's batch metrics, computed once per analysis (scans of the long frame)."""

    metrics: list[str]
    batches: list[int]
    n_steps: int
    primary_metric: str
    verdict: str
    worst_severity: Severity
    problematic: list[int]


@st.cache_data(show_spinner=False, max_entries=16)
def run_facts(key: AnalysisKey, _analysis: RunAnalysis) -> RunFacts:
    b = _analysis.batches
    if b.empty:
        return RunFacts(
            [],
            [],
            int(_analysis.logged_steps.size),
            _analysis.primary_metric,
            _analysis.verdict,
            worst_severity([_analysis.worst_severity]),
            _analysis.problematic_batches,
        )
    return RunFacts(
        metrics=sorted(b["metric"].unique()),
        batches=sorted(int(x) for x in b["batch"].unique()),
        n_steps=int(_analysis.logged_steps.size),
        primary_metric=_analysis.primary_metric,
        verdict=_analysis.verdict,
        worst_severity=worst_severity([_analysis.worst_severity]),
        problematic=_analysis.problematic_batches,
    )


@st.cache_resource(show_spinner=False, max_entries=16)
def metric_curves(key: AnalysisKey, _analysis: RunAnalysis, metric: str) -> figures.MetricCurves:
    """One metric split by batch, shared read-only by every figure of that metric."""
    return figures.MetricCurves.from_batches(_analysis.batches, metric)


@st.cache_resource(show_spinner=False, max_entries=64)
def batch_curves(
    key: AnalysisKey,
    _analysis: RunAnalysis,
    metric: str,
    batches: tuple[int, ...],
    smoothing: float = 0.0,
    ignore_outliers: bool = False,
    show_band: bool = True,
) -> go.Figure:
    fig = figures.batch_curves_figure(
        _analysis,
        metric,
        list(batches),
        smoothing=smoothing,
        ignore_outliers=ignore_outliers,
        show_band=show_band,
        curves=metric_curves(key, _analysis, metric),
        max_points=CURVE_POINTS,
    )
    return with_metric_threshold(fig, metric, _analysis.config)


def overview_curves(
    key: AnalysisKey,
    analysis: RunAnalysis,
    metric: str,
    chosen: Sequence[int],
    smoothing: float = 0.0,
    ignore_outliers: bool = False,
    show_hits: bool = False,
) -> dict[str, Any]:
    """The Overview's curves chart as a Vega-Lite spec (`analysis.reporting.vega`: a new tab draws it much sooner
    than a plotly chart), called the same way by the page and by `warm_first_view`."""
    return _overview_spec(
        key, analysis, metric, selected_batches(chosen), float(smoothing), bool(ignore_outliers), bool(show_hits)
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _overview_spec(
    key: AnalysisKey,
    _analysis: RunAnalysis,
    metric: str,
    batches: tuple[int, ...],
    smoothing: float,
    ignore_outliers: bool,
    show_hits: bool,
) -> dict[str, Any]:
    bound = metric_threshold(metric, _analysis.config.experiment_monitoring.anomaly_detection.metric_thresholds)
    return vega.batch_curves_spec(
        _analysis,
        metric,
        batches,
        max_points=CURVE_POINTS,
        smoothing=smoothing,
        ignore_outliers=ignore_outliers,
        show_hits=show_hits,
        threshold=bound,
        curves=metric_curves(key, _analysis, metric),
    )


def overview_defaults(facts: RunFacts) -> tuple[str, list[int]]:
    """The metric and the batches a new Overview tab shows: the primary metric, the problematic batches."""
    return tables.primary_first(facts.metrics, facts.primary_metric)[0], tables.default_batches(
        facts.problematic, facts.batches
    )


def warm_first_view(key: AnalysisKey, analysis: RunAnalysis) -> None:
    """Outside any session (the launcher): build the chart a new Overview tab draws first (cached), and one plotly
    figure of the Batches page: the first plotly figure of a process costs a third of a second (plotly loads its
    validators on first use), which the first visit to Batches would otherwise wait for."""
    facts = run_facts(key, analysis)
    if facts.metrics:
        metric, chosen = overview_defaults(facts)
        overview_curves(key, analysis, metric, chosen)
        batch_curves(key, analysis, metric, selected_batches(chosen[:1]))


def with_metric_threshold(fig: go.Figure, metric: str, config: AnalyzerConfig) -> go.Figure:
    """The active config's absolute bound for `metric` (e.g. `recall must stay ≥ 0.8`) as a dashed line."""
    bound = metric_threshold(metric, config.experiment_monitoring.anomaly_detection.metric_thresholds)
    if bound is not None:
        fig.add_hline(
            y=bound,
            line={"color": "#d62728", "dash": "dash", "width": 1},
            annotation_text=f"{metric} threshold {bound:g}",
            annotation_position="bottom right",
            annotation_font={"color": "#d62728", "size": 11},
        )
    return fig


@st.cache_resource(show_spinner=False, max_entries=16)
def heatmap(key: AnalysisKey, _analysis: RunAnalysis, metric: str) -> go.Figure:
    return figures.heatmap_figure(
        _analysis, metric, curves=metric_curves(key, _analysis, metric), max_columns=HEATMAP_COLUMNS
    )


@st.cache_resource(show_spinner=False, max_entries=16)
def global_metrics(key: AnalysisKey, _analysis: RunAnalysis, metrics: tuple[str, ...]) -> go.Figure:
    return figures.global_metrics_figure(_analysis, list(metrics), max_points=CURVE_POINTS)


@st.cache_data(show_spinner=False, max_entries=16)
def events_table(key: AnalysisKey, _analysis: RunAnalysis, batch: int | None = None) -> pd.DataFrame:
    """Events (warnings and criticals: one per real change), worst first; one batch's when given."""
    return tables.events_table(_analysis.events, batch)


@st.cache_data(show_spinner=False, max_entries=64)
def findings_table(key: AnalysisKey, _analysis: RunAnalysis, batch: int | None = None) -> pd.DataFrame:
    """Anomalies and change points as one table, most severe first (then by step); one batch's when given."""
    return tables.findings_table(_analysis.anomalies, _analysis.change_points, batch)


@st.cache_data(show_spinner=False, max_entries=8)
def score_bins(
    audit_id: str, _scores: pd.DataFrame, columns: tuple[str, ...], bins: int = 40
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(counts, edges, values as float) of each score column, computed once per audit (thresholds do not change
    them), so a slider move sends 40 bars per chart instead of every image's value."""
    out = {}
    for col in columns:
        vals = pd.to_numeric(_scores[col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finite = vals[np.isfinite(vals)]
        if finite.size:
            counts, edges = np.histogram(finite, bins=bins)
            out[col] = (counts, edges, vals)
    return out


@st.cache_data(show_spinner=False, max_entries=256)
def histogram(
    counts: np.ndarray,
    edges: np.ndarray,
    column: str,
    threshold: float | None,
    side: str = "below",
    n_failing: int | None = None,
) -> go.Figure:
    """A pre-binned histogram with the threshold line; bins on the failing side are red."""
    centres = (edges[:-1] + edges[1:]) / 2
    colour = np.full(len(counts), "#1f77b4", dtype=object)
    if threshold is not None:
        fails = centres < threshold if side == "below" else centres > threshold
        colour[fails] = "#d62728"
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=counts,
            width=np.diff(edges),
            marker={"color": colour.tolist()},
            name=column,
            customdata=np.column_stack([edges[:-1], edges[1:]]),
            hovertemplate="%{customdata[0]:.3g} – %{customdata[1]:.3g}: %{y} images<extra></extra>",
        )
    )
    title = column if threshold is None or n_failing is None else f"{column} · {n_failing:,} fail"
    return figures.style_score_histogram(fig, column, threshold, side, title=title, bargap=0.02)


def selected_batches(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(int(v) for v in values))
