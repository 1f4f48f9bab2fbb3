"""Data quality: audit a data directory, see every score's distribution, tune thresholds and watch the flags.

Scores are computed once per directory (and cached on disk by file size + mtime); the sliders only re-threshold
the cached scores (`apply_thresholds`, vectorised) and redraw pre-binned histograms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from analysis.core.config import DataQualityConfig
from analysis.core.errors import AnalyzerError
from quality.scores import BLUR_CAP
from ui import charts, state
from ui.format import md_escape

# score column -> (threshold slider key or None, side that fails)
HISTOGRAMS = {
    "blur_score": ("dq_blur", "below"),
    "abs_rotation": ("dq_rotation", "above"),
    "width": ("dq_min_w", "below"),
    "height": ("dq_min_h", "below"),
}
BASE_COLUMNS = {
    "path",
    "width",
    "height",
    "blur_score",
    "rotation_angle",
    "error",
    "batch",
    "is_acceptable",
    "reasons",
    "abs_rotation",
}
REJECTED_ROWS_SHOWN = 500


def audit_with_progress(data_dir: str) -> pd.DataFrame:
    from quality.audit import audit_folder

    bar = st.progress(0.0, text="Scoring images…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scoring images… {done:,}/{total:,}")

    scores = audit_folder(data_dir, progress=progress, cache_dir=state.QUALITY_CACHE_DIR)
    bar.empty()
    return scores.assign(abs_rotation=scores["rotation_angle"].abs())


def reasons_text(reasons: pd.Series) -> pd.Series:
    return reasons.map(lambda r: "; ".join(r) if isinstance(r, (list, tuple, np.ndarray)) else str(r))


st.title("Data quality")
sel = state.selection()
cfg = state.config().data_quality
default_dir = (sel.data_dir if sel else None) or ""
data_dir = st.text_input("Data directory to audit", value=default_dir, key="dq_dir").strip()
if not data_dir:
    st.info("Enter a data directory (or set one in the sidebar).")
    st.stop()
folder = Path(data_dir).expanduser()
if not folder.is_dir():
    st.error(f"Not a directory: {md_escape(data_dir)}")
    st.stop()

audited = state.audit_scores(data_dir)
if audited is None or st.button("Re-audit", key="dq_reaudit", help="Score new or changed files again."):
    try:
        scores = audit_with_progress(str(folder))
    except AnalyzerError as exc:
        st.error(str(exc))
        st.stop()
    audited = (scores, state.set_audit_scores(data_dir, scores))
scores, audit_id = audited
if scores.empty:
    st.info("No images found under this directory.")
    st.stop()


@st.fragment
def thresholds_and_flags(scores: pd.DataFrame, audit_id: str, cfg: DataQualityConfig) -> None:
    """Sliders and everything they change. A fragment: moving a slider reruns only this part of the page
    (no sidebar, no audit), and the scores are only re-thresholded, never re-computed."""
    from quality.audit import apply_thresholds

    c1, c2, c3, c4 = st.columns(4)
    min_w = c1.slider("Min width (px)", 0, 1000, int(cfg.min_resolution[0]), 10, key="dq_min_w")
    min_h = c2.slider("Min height (px)", 0, 1000, int(cfg.min_resolution[1]), 10, key="dq_min_h")
    max_rot = c3.slider("Max rotation (°)", 0.0, 45.0, float(cfg.max_rotation_degrees), 0.5, key="dq_rotation")
    blur_max = max(BLUR_CAP, float(cfg.blur_threshold))  # blur_score never exceeds BLUR_CAP
    blur = c4.slider(
        "Blur threshold",
        0.0,
        blur_max,
        float(cfg.blur_threshold),
        5.0,
        key="dq_blur",
        help=f"blur_score units; images below are flagged (higher = sharper, at most {BLUR_CAP:g}).",
    )

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

    thresholds = {"dq_blur": blur, "dq_rotation": max_rot, "dq_min_w": min_w, "dq_min_h": min_h}
    numeric_extra = [c for c in scores.columns if c not in BASE_COLUMNS and pd.api.types.is_numeric_dtype(scores[c])]
    bins = charts.score_bins(audit_id, scores, tuple(list(HISTOGRAMS) + numeric_extra))
    fails = {
        "blur_score": lambda v: v < blur,
        "abs_rotation": lambda v: v > max_rot,
        "width": lambda v: v < min_w,
        "height": lambda v: v < min_h,
    }

    def draw_histograms(names: list[str]) -> None:
        cols = st.columns(2)
        for i, column in enumerate(names):
            key, side = HISTOGRAMS.get(column, (None, "below"))
            counts, edges, values = bins[column]
            n_fail = None
            if column in fails:
                with np.errstate(invalid="ignore"):
                    n_fail = int(np.sum(fails[column](values) & ~errors))
            with cols[i % 2]:
                st.plotly_chart(
                    charts.histogram(counts, edges, column, thresholds.get(key), side, n_fail), key=f"dq_hist_{column}"
                )

    draw_histograms([c for c in HISTOGRAMS if c in bins])
    others = [c for c in numeric_extra if c in bins]
    if others:
        more = st.expander(f"Other scores ({', '.join(others)})", key="dq_more", on_change="rerun")
        with more:
            if more.open:  # drawn on demand: a slider move redraws only the thresholded scores
                draw_histograms(others)

    st.subheader("Rejected images")
    rejected = flagged.loc[~ok].drop(columns=["batch", "abs_rotation"], errors="ignore")
    if rejected.empty:
        st.success("No image fails these thresholds.")
    else:
        if len(rejected) > REJECTED_ROWS_SHOWN:
            st.caption(f"Showing the first {REJECTED_ROWS_SHOWN:,} of {len(rejected):,}; the CSV has them all.")
            rejected = rejected.head(REJECTED_ROWS_SHOWN)
        rejected = rejected.assign(reasons=reasons_text(rejected["reasons"]))
        st.dataframe(rejected, hide_index=True, key="dq_rejected", width="stretch")

    def scores_csv() -> str:
        """Built only when the download is clicked."""
        return (
            flagged.drop(columns=["abs_rotation"], errors="ignore")
            .assign(reasons=reasons_text(flagged["reasons"]))
            .to_csv(index=False)
        )

    st.download_button(
        "Download scores (CSV)",
        scores_csv,
        file_name="image_quality_scores.csv",
        mime="text/csv",
        key="dq_csv",
        on_click="ignore",
    )
    state.fragment_marker()


thresholds_and_flags(scores, audit_id, cfg)
