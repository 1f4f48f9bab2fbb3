"""Batches: worst batches ranked; one batch's curves, findings, root causes and a gallery of its problematic images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from ui import charts, state
from ui.format import fmt_value, md_escape

GALLERY_PAGE = 24
SORT_KEYS = {
    "blur (blurriest first)": ("blur_score", True),
    "rotation (most rotated first)": ("abs_rotation", False),
    "resolution (smallest first)": ("pixels", True),
    "path": ("path", True),
}


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


def badge_line(row: pd.Series | None) -> str:
    if row is None:
        return "not scored"
    if isinstance(row.get("error"), str) and row["error"]:
        return f"unreadable: {row['error']}"
    ok = "✓ ok" if row.get("is_acceptable") else "✗ fails"
    line = (
        f"{ok} blur {fmt_value(float(row['blur_score']), 0)} · rot {fmt_value(float(row['rotation_angle']), 1)}° "
        f"· {int(row['width'])}×{int(row['height'])}"
    )
    reasons = row.get("reasons")
    if isinstance(reasons, (list, tuple, np.ndarray)) and len(reasons):
        line += " — " + "; ".join(md_escape(r) for r in reasons)
    return line


@st.dialog("Image details", width="large")
def image_dialog(data_dir: str, path: str, row: pd.Series | None) -> None:
    st.caption(md_escape(path))
    try:
        st.image(thumbnail(data_dir, path, max_side=2000), output_format="PNG")
    except AnalyzerError as exc:
        st.error(str(exc))
    if row is not None:
        reasons = row.get("reasons")
        if isinstance(reasons, (list, tuple, np.ndarray)) and len(reasons):
            st.markdown("**Fails:** " + "; ".join(md_escape(r) for r in reasons))
        shown = row.drop(labels=["abs_rotation", "pixels"], errors="ignore")
        st.dataframe(
            pd.DataFrame({"score": shown.index, "value": [fmt_value(v) for v in shown.values]}),
            hide_index=True,
            key="b_dialog_scores",
        )


analysis = state.current_analysis()
if analysis is None:
    st.stop()
key = state.analysis_key()

st.title("Batches")
summary = analysis.batch_summary
if summary.empty:
    st.info("This run logged no per-batch metrics.")
    st.stop()
st.dataframe(summary, hide_index=True, key="b_ranking", width="stretch")

batches = [int(b) for b in summary["batch"]]
focus = state.focus_batch()
default = batches.index(focus) if focus in batches else 0
batch = st.selectbox(
    "Batch",
    batches,
    index=default,
    key="b_batch",
    format_func=lambda b: f"batch {b} ({summary.set_index('batch').loc[b, 'severity']})",
)
state.focus_batch(batch)

facts = charts.run_facts(key, analysis)
metrics = sorted(facts.metrics, key=lambda m: (m != facts.primary_metric, m))  # the primary metric's tab first
tabs = st.tabs(metrics)
for tab, metric in zip(tabs, metrics):
    with tab:
        st.plotly_chart(charts.batch_curves(key, analysis, metric, (batch,)), key=f"b_curve_{metric}")

st.subheader(f"Findings for batch {batch}")
found = charts.findings_table(key, analysis, batch)
if len(found):
    st.dataframe(found.drop(columns="batch"), hide_index=True, key="b_findings", width="stretch")
else:
    st.success("No findings for this batch.")
causes = [c for c in analysis.root_causes if c.batch == batch]
if causes:
    st.subheader("Root causes")
    for c in causes:
        st.markdown(f"- **{c.side}-side** · {md_escape(c.sentence)}")

st.subheader("Problematic images")
imgs = analysis.images[analysis.images["batch"] == batch]
if imgs.empty:
    st.info("No `problematic_batch_%d` image lists were logged for this batch." % batch)
    st.stop()
if analysis.data_dir is None:
    st.warning("Set the data directory in the sidebar to see the images and their scores.")
    st.stop()
steps = sorted(imgs["step"].unique())
step = st.select_slider("Step", options=steps, value=steps[-1], key="b_step") if len(steps) > 1 else steps[0]
sort_label = st.selectbox("Sort by", list(SORT_KEYS), key="b_sort")
at_step = imgs[imgs["step"] == step][["path"]]
scores = analysis.quality
if scores is not None:
    at_step = at_step.merge(scores.drop(columns=["batch"], errors="ignore"), on="path", how="left")
    if "blur_score" in at_step:
        at_step["abs_rotation"] = at_step["rotation_angle"].abs()
        at_step["pixels"] = at_step["width"] * at_step["height"]
col, asc = SORT_KEYS[sort_label]
if col in at_step:
    at_step = at_step.sort_values(col, ascending=asc, na_position="last")
n_bad = int((~at_step["is_acceptable"].astype("boolean").fillna(True)).sum()) if "is_acceptable" in at_step else 0
st.caption(f"{len(at_step)} images at step {step}; {n_bad} fail the quality thresholds.")
data_dir = str(analysis.data_dir)
if len(at_step) > GALLERY_PAGE:
    pages = (len(at_step) + GALLERY_PAGE - 1) // GALLERY_PAGE
    page_no = st.number_input(f"Page (of {pages})", 1, pages, 1, key="b_gallery_page")
    at_step = at_step.iloc[(page_no - 1) * GALLERY_PAGE : page_no * GALLERY_PAGE]
grid = st.columns(4)
for i, (_, row) in enumerate(at_step.iterrows()):
    with grid[i % 4]:
        path = row["path"]
        try:
            st.image(thumbnail(data_dir, path), caption=md_escape(path), output_format="PNG")
        except AnalyzerError as exc:
            st.error(f"{md_escape(path)}: {exc}")
        st.caption(badge_line(row if "blur_score" in row else None))
        if st.button("Details", key=f"b_detail_{i}"):
            image_dialog(data_dir, path, row)
