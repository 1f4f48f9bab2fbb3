"""Batches: worst batches ranked; one batch's curves, findings, root causes and a gallery of its problematic images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from ui import charts, state, tables
from ui.format import md_escape


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(data_dir: str, path: str, max_side: int = 320) -> np.ndarray:
    """A small RGB copy of one image, loaded only from under the data root."""
    import cv2

    from quality.io import load_image, resolve_under_root

    img = load_image(resolve_under_root(data_dir, path))
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    scale = max_side / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return img


@st.dialog("Image details", width="large")
def image_dialog(data_dir: str, path: str, row: pd.Series | None) -> None:
    st.caption(md_escape(path))
    try:
        st.image(thumbnail(data_dir, path, max_side=2000), output_format="PNG")
    except AnalyzerError as exc:
        st.error(str(exc))
    if row is not None:
        fails = tables.failing_reasons_line(row)
        if fails:
            st.markdown(fails)
        st.dataframe(tables.image_score_table(row), hide_index=True, key="b_dialog_scores")


analysis = state.current_analysis()
key = state.analysis_key()
if analysis is None or key is None:
    st.stop()

st.title("Batches")
summary = analysis.batch_summary
if summary.empty:
    st.info("This run logged no per-batch metrics.")
    st.stop()
st.dataframe(summary, hide_index=True, key="b_ranking", width="stretch")

labels = tables.batch_labels(summary)
batches = list(labels)
focus = state.focus_batch()
default = batches.index(focus) if focus in batches else 0
batch = st.selectbox("Batch", batches, index=default, key="b_batch", format_func=labels.__getitem__)
state.focus_batch(batch)

facts = charts.run_facts(key, analysis)
metrics = tables.primary_first(facts.metrics, facts.primary_metric)  # the primary metric's tab opens first
tabs = st.tabs(metrics)
for tab, metric in zip(tabs, metrics):
    with tab:
        st.plotly_chart(charts.batch_curves(key, analysis, metric, (batch,)), key=f"b_curve_{metric}")

st.subheader(f"Events for batch {batch}")
events = charts.events_table(key, analysis, batch)
if len(events):
    st.dataframe(events.drop(columns="batch"), hide_index=True, key="b_events", width="stretch")
else:
    st.success("No anomalies for this batch.")
found = charts.findings_table(key, analysis, batch)
hits = st.expander(f"Detector hits for batch {batch} ({len(found):,})", key="b_hits", on_change="rerun")
with hits:
    if hits.open and len(found):
        st.dataframe(found.drop(columns="batch"), hide_index=True, key="b_findings", width="stretch")
causes = [c for c in analysis.root_causes if c.batch == batch]
if causes:
    st.subheader("Root causes")
    for c in causes:
        st.markdown(f"- **{c.side}-side** · {md_escape(c.sentence)}")

st.subheader("Problematic images")
imgs = analysis.images[analysis.images["batch"] == batch]
if imgs.empty:
    st.info(f"No `problematic_batch_{batch}` image lists were logged for this batch.")
    st.stop()
if analysis.data_dir is None:
    st.warning("Set the data directory in the sidebar to see the images and their scores.")
    st.stop()
steps = sorted(imgs["step"].unique())
step = st.select_slider("Step", options=steps, value=steps[-1], key="b_step") if len(steps) > 1 else steps[0]
sort_label = st.selectbox("Sort by", list(tables.SORT_KEYS), key="b_sort")
at_step = tables.images_at_step(imgs, step, analysis.quality, sort_label)
st.caption(f"{len(at_step)} images at step {step}; {tables.count_failing(at_step)} fail the quality thresholds.")
data_dir = str(analysis.data_dir)
if len(at_step) > tables.GALLERY_PAGE:
    n_pages = tables.gallery_pages(len(at_step))
    page_no = st.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="b_gallery_page")
    at_step = tables.gallery_page(at_step, int(page_no))
grid = st.columns(4)
for i, (_, row) in enumerate(at_step.iterrows()):
    with grid[i % 4]:
        path = row["path"]
        try:
            st.image(thumbnail(data_dir, path), caption=md_escape(path), output_format="PNG")
        except AnalyzerError as exc:
            st.error(f"{md_escape(path)}: {exc}")
        st.caption(tables.badge_line(row if "blur_score" in row else None))
        if st.button("Details", key=f"b_detail_{i}"):
            image_dialog(data_dir, path, row)
