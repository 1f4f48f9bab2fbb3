"""Batches: worst batches ranked; one batch's curves, findings, root causes and a gallery of its problematic images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from ui import charts, navigation, state, tables
from ui.duplicates import render_batch_duplicates
from ui.format import md_escape
from ui.images import image_grid, show_images
from ui.navigation import first_bad_step
from ui.state import AnalysisKey

if TYPE_CHECKING:
    from analysis.findings.pipeline import RunAnalysis


def pick_ranking_row() -> None:
    """A click on a ranking row opens that batch at its first bad step."""
    rows = st.session_state["b_ranking"].selection.rows
    summary = st.session_state.get("_b_summary")
    if rows and summary is not None and rows[0] < len(summary):
        row = summary.iloc[rows[0]]
        state.seed("b_batch", int(row["batch"]))
        open_step(first_bad_step(summary, int(row["batch"])))


def pick_event_row(table_key: str) -> None:
    """A click on an event or detector hit of this batch opens its step."""
    rows = st.session_state[table_key].selection.rows
    table = st.session_state.get(f"_{table_key}_rows")
    if rows and table is not None and rows[0] < len(table):
        open_step(navigation.parse_int(str(table.iloc[rows[0]]["step"])))


def step_table(frame: pd.DataFrame, key: str, column_config: dict[str, Any] | None = None) -> None:
    """One batch's events or detector hits; clicking a row opens its step (`pick_event_row`)."""
    st.session_state[f"_{key}_rows"] = frame
    st.dataframe(
        frame.drop(columns="batch"),
        hide_index=True,
        key=key,
        width="stretch",
        on_select=lambda: pick_event_row(key),
        selection_mode="single-row",
        column_config=column_config,
    )


def open_step(step: int | None) -> None:
    state.focus_step(step, clear=step is None)
    st.session_state.pop("b_step", None)  # the step slider follows the link (nearest logged step)


def rerun_when_images_scored() -> None:
    """While the image scores are computed in the background: redraw the page with them once they are ready."""
    if state.analysis_ready():
        st.rerun(scope="app")


@st.fragment
def batch_view(key: AnalysisKey, analysis: RunAnalysis, images_ready: bool, metrics: list[str]) -> None:
    """Everything that depends on the picked batch and metric. A fragment: picking another batch or metric reruns
    this part alone (not the sidebar, the title and the ranking table above it), and sends only what it draws."""
    summary = analysis.batch_summary
    labels = tables.batch_labels(summary)
    c1, c2 = st.columns([2, 1])
    batch = c1.selectbox(
        "Batch", list(labels), key="b_batch", format_func=labels.__getitem__, on_change=open_step, args=(None,)
    )  # another batch picked by hand: its last image step
    metric = c2.selectbox("Metric", metrics, key="b_metric")
    state.focus_batch(batch)
    state.focus_metric(metric)
    state.url_put("batch", batch)
    state.url_put("metric", metric)
    st.plotly_chart(charts.batch_curves(key, analysis, metric, (batch,)), key="b_curve")

    st.subheader(f"Events for batch {batch}")
    events = charts.events_table(key, analysis, batch)
    if len(events):
        step_table(events, "b_events", column_config={"message": st.column_config.TextColumn(width="large")})
        # in full (a table cell cuts long ones off), as one list: one element for the browser, not one per event
        st.markdown("\n".join(f"- {md_escape(m)}" for m in dict.fromkeys(events["message"].astype(str))))
    else:
        st.success("No anomalies for this batch.")
    found = charts.findings_table(key, analysis, batch)
    hits = st.expander(f"Detector hits for batch {batch} ({len(found):,})", key="b_hits", on_change="rerun")
    with hits:
        if hits.open and len(found):
            step_table(found, "b_findings")
    if not images_ready:
        st.subheader("Root causes and problematic images")
        st.info("Scoring this run's images: root causes, image counts and the gallery appear when they are ready.")
        return
    causes = [c for c in analysis.root_causes if c.batch == batch]
    if causes:
        st.subheader("Root causes")
        for c in causes:
            st.markdown(f"- **{c.side}-side** · {md_escape(c.sentence)}")
    render_batch_duplicates(analysis, batch)
    gallery(analysis, batch)


@st.fragment
def gallery(analysis: RunAnalysis, batch: int) -> None:
    """The batch's problematic images at one step, and its "before" strip. A fragment of its own: another step,
    sort order or gallery page redraws the images alone."""
    st.subheader("Problematic images")
    state.url_put("step", None)  # set again below when this batch has images
    imgs = analysis.images[analysis.images["batch"] == batch]
    if imgs.empty:
        st.info(f"No `problematic_batch_{batch}` image lists were logged for this batch.")
        return
    if analysis.data_dir is None:
        st.warning("Set the data directory in the sidebar to see the images and their scores.")
        return
    steps = sorted(int(s) for s in imgs["step"].unique())
    if st.session_state.get("b_step") not in steps:
        state.seed("b_step", navigation.nearest_step(steps, state.focus_step()))
    step = st.select_slider("Step", options=steps, key="b_step") if len(steps) > 1 else steps[0]
    state.url_put("step", step)
    sort_label = st.selectbox("Sort by", list(tables.SORT_KEYS), key="b_sort")
    at_step = tables.images_at_step(imgs, step, analysis.quality, sort_label)
    st.caption(f"{len(at_step)} images at step {step}; {tables.count_failing(at_step)} fail the quality thresholds.")
    data_dir = str(analysis.data_dir)
    before = navigation.before_strip(
        analysis.images, batch, step, navigation.first_bad_step(analysis.batch_summary, batch), analysis.quality
    )
    if before is not None:
        with st.expander(f"Before: {len(before.paths)} images of batch {batch} from before the problem", expanded=True):
            st.caption(md_escape(before.caption))
            show_images(data_dir, before.paths)
    if len(at_step) > tables.GALLERY_PAGE:
        n_pages = tables.gallery_pages(len(at_step))
        page_no = st.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="b_gallery_page")
        at_step = tables.gallery_page(at_step, int(page_no))
    image_grid(data_dir, at_step, "b")


def take_linked_view(batches: list[int], metrics: list[str]) -> None:
    """A reloaded or shared URL's batch, step and metric, seeded into the widgets before they are drawn; else the
    batch and metric last looked at (on this page or the Overview)."""
    linked_batch = navigation.parse_int(state.url_take("batch"))
    linked_step = navigation.parse_int(state.url_take("step"))
    if linked_batch is not None:
        if linked_batch in batches:
            state.seed("b_batch", linked_batch)
            if linked_step is not None:
                open_step(linked_step)
        else:
            st.warning(f"The linked batch {linked_batch} is not in this run: showing {batches[0]}.")
    elif linked_step is not None:
        open_step(linked_step)
    if st.session_state.get("b_batch") not in batches:
        focus = state.focus_batch()
        state.seed("b_batch", focus if focus in batches else batches[0])
    linked_metric = state.url_take("metric")
    if linked_metric in metrics:
        state.seed("b_metric", linked_metric)
    elif st.session_state.get("b_metric") not in metrics:
        focus_metric = state.focus_metric()
        state.seed("b_metric", focus_metric if focus_metric in metrics else metrics[0])


def main() -> None:
    # Progressive: while the images are still being scored (in the background, see state.warm_analysis) the page
    # is drawn from the metrics' analysis (ranking, curves, events) and redrawn with the images when they are ready.
    state.warm_analysis()
    images_ready = state.analysis_ready(wait=1.5)  # nearly done: drawn once, whole
    analysis = state.current_analysis(images=images_ready)
    key = state.analysis_key(images=images_ready)
    if analysis is None or key is None:
        return
    st.title("Batches")
    summary = analysis.batch_summary
    if summary.empty:
        st.info("This run logged no per-batch metrics.")
        return
    facts = charts.run_facts(key, analysis)
    st.session_state["_b_summary"] = summary
    st.caption("Click a row to open that batch at its first bad step.")
    st.dataframe(
        tables.ranking_table(summary, facts.primary_metric),
        placeholder="—",  # a healthy batch has no first bad step
        hide_index=True,
        key="b_ranking",
        width="stretch",
        on_select=pick_ranking_row,
        selection_mode="single-row",
    )
    metrics = tables.primary_first(facts.metrics, facts.primary_metric)
    take_linked_view(list(tables.batch_labels(summary)), metrics)
    batch_view(key, analysis, images_ready, metrics)
    if not images_ready:
        rerun_when_images_scored()


main()
