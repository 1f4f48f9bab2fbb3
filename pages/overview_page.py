"""Overview: run identity, per-batch curves with events and change points, heatmap, events (detector hits one level
deeper), global metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from analysis.core.redaction import redact
from analysis.core.vocabulary import Severity
from ui import charts, state, tables
from ui.format import jsonable, md_escape
from ui.navigation import first_bad_step, parse_int
from ui.state import AnalysisKey

if TYPE_CHECKING:
    from analysis.findings.pipeline import RunAnalysis

VIEWS = ["Per-batch curves", "Batch × step heatmap", "Findings", "Run-level metrics"]


def global_metrics_view(key: AnalysisKey, analysis: RunAnalysis) -> None:
    """Run-level metrics (val/*, train/*) with their findings."""
    globals_ = analysis.global_metrics
    if globals_.empty:
        st.info("No run-level metrics (e.g. `val/recall`, `train/loss`) in this run.")
        return
    names = sorted(globals_["metric"].unique())
    state.reset_per_run("ov_global_metrics", tables.default_global_metrics(names, analysis.alarmed_run_metrics))
    picked = st.multiselect("Metrics", names, key="ov_global_metrics")
    if picked:
        st.plotly_chart(charts.global_metrics(key, analysis, tuple(picked)), key="ov_global_chart")


def open_picked_row(table: pd.DataFrame, rows: list[int]) -> None:
    """A clicked event or detector hit opens Batches on its batch, at its step, with its images."""
    if not rows or rows[0] >= len(table):
        return
    row = table.iloc[rows[0]]
    batch, step = parse_int(str(row.get("batch"))), parse_int(str(row.get("step")))
    if batch is None:  # a run-level finding: no batch to open
        st.toast("This finding is about a run-level metric: no batch to open.")
        return
    open_batch(batch, step)


def open_batch(batch: int, step: int | None) -> None:
    state.focus_batch(batch)
    state.focus_step(step, clear=step is None)
    for widget in ("b_batch", "b_step"):
        st.session_state.pop(widget, None)
    st.switch_page("pages/batches_page.py")


# Curves first: the metrics' analysis alone (no image scores are drawn here); the full one is computed at the end.
analysis = state.current_analysis(images=False)
key = state.analysis_key(images=False)
if analysis is None or key is None:
    st.stop()
run = analysis.run

st.title("Overview")
st.markdown(f"### {md_escape(run.ref.name or run.ref.run_id)}")
st.caption(
    f"id {md_escape(run.ref.run_id)} · project {md_escape(run.ref.project or '—')} · state "
    f"{md_escape(run.ref.state)}"
    + (f" · created {run.ref.created:%Y-%m-%d %H:%M}" if run.ref.created else "")
    + (f" · tags {', '.join(md_escape(t) for t in run.tags)}" if run.tags else "")
)
if run.notes:
    st.caption(md_escape(run.notes))
for badge in run.status.badges():
    st.warning(f"Run file {badge}: everything readable was loaded.")

facts = charts.run_facts(key, analysis)
bad, n_steps = facts.problematic, facts.n_steps
cols = st.columns(5)
cols[0].metric("Steps", f"{n_steps:,}")
cols[1].metric("Batches", f"{len(facts.batches):,}")
cols[2].metric("Problematic batches", len(bad))
cols[3].metric(
    "Anomalies",
    len(analysis.alarm_events),
    help="Events: one per real change of a batch (warnings and criticals; info notes are not counted). "
    f"The {len(analysis.anomalies):,} detector hits behind them are under Findings.",
)
cols[4].metric(
    "Change points",
    sum(1 for e in analysis.events if e.is_change),
    help="Events where a new regime starts: level shifts, collapses, slope and noise changes (info ones included), "
    f"one per real change. The {len(analysis.change_points):,} change points the detectors found are under "
    "Findings.",
)
# A run without batch metrics has no problematic batches: its run-level warnings colour the verdict instead.
warned = bad or (not facts.metrics and facts.worst_severity is Severity.WARNING)
(st.error if facts.worst_severity is Severity.CRITICAL else st.warning if warned else st.success)(
    md_escape(facts.verdict), icon=None
)

if not facts.metrics:
    st.info("This run logged no `batch_{i}/…` metrics; run-level metrics are shown below.")
else:
    metrics, all_batches = facts.metrics, facts.batches
    c1, c2, c3 = st.columns([1, 3, 2])  # smoothing and outliers share a column: their labels stay whole at 1024 px
    linked_metric = state.url_take("metric")
    if linked_metric in metrics:
        state.seed("ov_metric", linked_metric)
    elif st.session_state.get("ov_metric") not in metrics:
        shared = state.focus_metric()  # the metric last shown on Batches
        state.seed("ov_metric", shared if shared in metrics else charts.overview_defaults(facts)[0])
    metric = c1.selectbox("Metric", metrics, key="ov_metric")
    state.focus_metric(metric)
    state.url_put("metric", metric)
    state.reset_per_run("ov_batches", charts.overview_defaults(facts)[1])
    chosen = c2.multiselect(
        "Batches", all_batches, key="ov_batches", help="Problematic batches are preselected; the band shows all."
    )
    smoothing = c3.slider(
        "Smoothing",
        0.0,
        0.99,
        0.0,
        0.01,
        key="ov_smoothing",
        help="Exponential moving average; the raw line stays visible (faint).",
    )
    ignore_outliers = c3.toggle(
        "Ignore outliers",
        key="ov_ignore_outliers",
        help="Clip the y-axis to the central values; points outside stay visible at "
        "the edge with their real value on hover.",
    )
    show_hits = c3.toggle(
        "Detector hits",
        key="ov_show_hits",
        help="Also mark every detector hit and the detectors' own change points: the evidence behind the events.",
    )
    # One chart at a time: the other views render only when their tab is opened (lazy tabs), so the first
    # paint of a 10,000-step x 200-batch run draws one decimated chart.
    curves_tab, heat_tab, findings_tab, global_tab = st.tabs(VIEWS, key="ov_view", on_change="rerun")
    with curves_tab:
        if curves_tab.open:
            st.vega_lite_chart(
                charts.overview_curves(key, analysis, metric, chosen, smoothing, ignore_outliers, show_hits),
                key="ov_curves",
                width="stretch",
            )
            if n_steps > charts.CURVE_POINTS:
                st.caption(
                    f"Curves drawn as min/max envelopes of {n_steps:,} steps (every spike and drop kept);"
                    " the analysis uses every step."
                )
    with heat_tab:
        if heat_tab.open:
            st.plotly_chart(charts.heatmap(key, analysis, metric), key="ov_heatmap")
    with findings_tab:
        if findings_tab.open:
            events = charts.events_table(key, analysis)
            if len(events):
                st.caption(
                    f"{len(events):,} events (one per real change), most severe first. Click a row to open that"
                    " batch at that step with its images."
                )
                picked = st.dataframe(
                    events,
                    hide_index=True,
                    key="ov_events",
                    width="stretch",
                    on_select="rerun",
                    selection_mode="single-row",
                    column_order=[c for c in ("severity", "batch", "message") if c in events.columns]
                    + [c for c in events.columns if c not in ("severity", "batch", "message")],
                    column_config={"message": st.column_config.TextColumn(width="large")},
                )
                open_picked_row(events, picked.selection.rows)
            else:
                st.success("No anomalies: no metric changed in a way that needs attention.")
            table = charts.findings_table(key, analysis)
            hits = st.expander(f"Detector hits ({len(table):,})", key="ov_hits", on_change="rerun")
            with hits:
                if hits.open and len(table):
                    st.caption("Every detector hit and change point, most severe first: the evidence behind events.")
                    picked = st.dataframe(
                        table,
                        hide_index=True,
                        key="ov_findings",
                        width="stretch",
                        on_select="rerun",
                        selection_mode="single-row",
                    )
                    open_picked_row(table, picked.selection.rows)
    with global_tab:
        if global_tab.open:
            global_metrics_view(key, analysis)

    if bad:
        c1, c2 = st.columns([1, 3])
        pick = c1.selectbox("Drill into batch", bad, key="ov_drill")
        if c2.button("Open in Batches", key="ov_open_batch"):
            open_batch(int(pick), first_bad_step(analysis.batch_summary, int(pick)))

if not facts.metrics:
    global_metrics_view(key, analysis)

config_box = st.expander("Config and summary", key="ov_config", on_change="rerun")
with config_box:
    if config_box.open:  # rendered only when opened (a summary can hold thousands of keys)
        c1, c2 = st.columns(2)
        c1.markdown("**Config**")
        c1.json(jsonable(redact(run.config)), expanded=False)  # secrets never reach the page
        c2.markdown("**Summary**")
        shown, hidden = tables.summary_without_batches(run.summary)
        c2.json(jsonable(redact(shown)), expanded=False)
        if hidden:
            c2.caption(f"{hidden:,} per-batch summary keys not listed (the Batches page has every batch).")

# Image scores for Batches, Data quality and Reports, started once the browser has had time to draw the first view.
state.warm_analysis(delay=state.FIRST_VIEW_GRACE)
