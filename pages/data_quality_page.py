"""Data quality: audit a data directory, see every score's distribution, tune thresholds and watch the flags.

Scores are computed once per directory (and cached on disk by file size + mtime); the sliders only re-threshold
the cached scores (`apply_thresholds`, vectorised) and redraw pre-binned histograms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from analysis.core.paths import confine
from quality.scores import BLUR_CAP
from ui import charts, state, tables
from ui.config_edit import FIELD_RANGES, edited_quality, quality_values
from ui.duplicates import render_folder_duplicates
from ui.format import md_escape
from ui.images import image_grid
from ui.run_inputs import save_config_controls

# score column -> (threshold slider key or None, side that fails)
HISTOGRAMS = {
    "blur_score": ("dq_blur", "below"),
    "abs_rotation": ("dq_rotation", "above"),
    "width": ("dq_min_w", "below"),
    "height": ("dq_min_h", "below"),
}
REJECTED_ROWS_SHOWN = 500


def rejected_gallery(data_dir: str, flagged: pd.DataFrame) -> None:
    """The rejected images themselves, a page at a time, with their score badges and reasons (an expander, drawn
    when opened: a folder of thousands of rejects reads no image until asked)."""
    rejected = flagged.loc[~flagged["is_acceptable"].astype(bool)]
    view = st.expander(f"See the rejected images ({len(rejected):,})", key="dq_gallery", on_change="rerun")
    with view:
        if not view.open:
            return
        n_pages = tables.gallery_pages(len(rejected))
        page_no = st.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="dq_gallery_page") if n_pages > 1 else 1
        image_grid(data_dir, tables.gallery_page(rejected, int(page_no)), "dq")


def audit_with_progress(data_dir: str) -> pd.DataFrame:
    from quality.audit import audit_folder

    bar = st.progress(0.0, text="Scoring images…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scoring images… {done:,}/{total:,}")

    scores = audit_folder(data_dir, progress=progress, cache_dir=state.QUALITY_CACHE_DIR)
    bar.empty()
    return tables.with_abs_rotation(scores)


st.title("Data quality")
sel = state.selection()
default_dir = (sel.data_dir if sel else None) or ""
data_dir = st.text_input("Data directory to audit", value=default_dir, key="dq_dir").strip()
if not data_dir:
    st.info("Enter a data directory (or set one in the sidebar).")
    st.stop()
try:  # under the data roots when the server confines paths; checked before the folder is looked at
    folder = confine(data_dir)
except AnalyzerError as exc:
    st.error(md_escape(str(exc)))
    st.stop()
if not folder.is_dir():
    st.error(f"Not a directory: {md_escape(data_dir)}")
    st.stop()

audited = state.audit_scores(data_dir)
if audited is None or st.button("Re-audit", key="dq_reaudit", help="Score new or changed files again."):
    try:
        scores = audit_with_progress(str(folder))
    except AnalyzerError as exc:
        st.error(md_escape(str(exc)))
        st.stop()
    audited = (scores, state.set_audit_scores(data_dir, scores))
scores, audit_id = audited
if scores.empty:
    st.info("No images found under this directory.")
    st.stop()


@st.fragment
def thresholds_and_flags(scores: pd.DataFrame, audit_id: str) -> None:
    """Sliders and everything they change. A fragment: moving a slider reruns only this part of the page
    (no sidebar, no audit), and the scores are only re-thresholded, never re-computed. The sliders edit the
    session's one active config, so Batches, Overview, root causes and every report use the same thresholds."""
    from quality.audit import apply_thresholds, line_crop_hint

    active = state.config()
    stale = st.session_state.get("_dq_synced") != active.model_dump_json()  # a config loaded or edited elsewhere
    for key, value in quality_values(active).items():
        if stale or key not in st.session_state:  # Streamlit drops a widget's value on a page switch
            state.seed(key, int(value) if key in ("dq_min_w", "dq_min_h") else float(value))
    c1, c2, c3, c4 = st.columns(4)
    (w_low, w_high), (h_low, h_high) = FIELD_RANGES["dq_min_w"], FIELD_RANGES["dq_min_h"]
    min_w = c1.slider("Min width (px)", int(w_low), int(w_high), step=10, key="dq_min_w")
    min_h = c2.slider("Min height (px)", int(h_low), int(h_high), step=10, key="dq_min_h")
    max_rot = c3.slider("Max rotation (°)", *FIELD_RANGES["dq_rotation"], step=0.5, key="dq_rotation")
    blur_max = max(BLUR_CAP, float(active.data_quality.blur_threshold))  # blur_score never exceeds BLUR_CAP
    blur = c4.slider(
        "Blur threshold",
        0.0,
        blur_max,
        step=5.0,
        key="dq_blur",
        help=f"blur_score units; images below are flagged (higher = sharper, at most {BLUR_CAP:g}).",
    )
    edited = edited_quality(active, {"dq_min_w": min_w, "dq_min_h": min_h, "dq_rotation": max_rot, "dq_blur": blur})
    if edited is not active:
        state.set_config(edited)
        state.put_thresholds()  # a shared link reproduces these flags
    st.session_state["_dq_synced"] = edited.model_dump_json()
    cfg = edited.data_quality
    st.caption("These thresholds are the session's: the Batches badges, root causes and reports use them too.")
    save_config_controls("dq")

    flagged = apply_thresholds(
        scores, min_resolution=(min_w, min_h), max_rotation=max_rot, blur_threshold=blur, min_contrast=cfg.min_contrast
    )
    ok = flagged["is_acceptable"].to_numpy()
    errors = flagged["error"].notna().to_numpy()
    n_bad = int((~ok).sum())
    m1, m2, m3 = st.columns(3)
    m1.metric("Images", f"{len(flagged):,}")
    m2.metric("Flagged", f"{n_bad:,}")
    m3.metric("Unreadable", f"{int(errors.sum()):,}")
    st.markdown(f"**{n_bad} flagged** of {len(flagged)} images at these thresholds.")
    hint = line_crop_hint(flagged, (min_w, min_h))
    if hint is not None:
        st.info(hint.sentence)

    thresholds: dict[str, float] = {"dq_blur": blur, "dq_rotation": max_rot, "dq_min_w": min_w, "dq_min_h": min_h}
    numeric_extra = tables.extra_score_columns(scores)
    bins = charts.score_bins(audit_id, scores, tuple(list(HISTOGRAMS) + numeric_extra))

    def draw_histograms(names: list[str]) -> None:
        cols = st.columns(2)
        for i, column in enumerate(names):
            key, side = HISTOGRAMS.get(column, (None, "below"))
            counts, edges, values = bins[column]
            threshold = thresholds.get(key) if key is not None else None
            n_fail = None
            if threshold is not None:
                n_fail = int(np.sum(tables.failing_mask(values, threshold, side) & ~errors))
            with cols[i % 2]:
                st.plotly_chart(
                    charts.histogram(counts, edges, column, threshold, side, n_fail), key=f"dq_hist_{column}"
                )

    draw_histograms([c for c in HISTOGRAMS if c in bins])
    others = [c for c in numeric_extra if c in bins]
    if others:
        more = st.expander(f"Other scores ({', '.join(others)})", key="dq_more", on_change="rerun")
        with more:
            if more.open:  # drawn on demand: a slider move redraws only the thresholded scores
                draw_histograms(others)

    st.subheader("Rejected images")
    rejected, n_rejected = tables.rejected_table(flagged, REJECTED_ROWS_SHOWN)
    if rejected.empty:
        st.success("No image fails these thresholds.")
    else:
        if n_rejected > REJECTED_ROWS_SHOWN:
            st.caption(f"Showing the first {REJECTED_ROWS_SHOWN:,} of {n_rejected:,}; the CSV has them all.")
        st.dataframe(rejected, hide_index=True, key="dq_rejected", width="stretch")
        rejected_gallery(str(folder), flagged)

    st.download_button(
        "Download scores (CSV)",
        lambda: tables.scores_csv(flagged),  # built only when the download is clicked
        file_name="image_quality_scores.csv",
        mime="text/csv",
        key="dq_csv",
        on_click="ignore",
    )


thresholds_and_flags(scores, audit_id)
render_folder_duplicates(str(folder), scores, audit_id)
