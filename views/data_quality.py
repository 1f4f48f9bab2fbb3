"""Data quality: audit a data directory, see every score's distribution, tune thresholds and watch the flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from analysis.errors import AnalyzerError
from analysis.figures import score_histogram_figure
from ui import state
from ui.format import md_escape

# score column -> (threshold slider key or None, side that fails)
HISTOGRAMS = {"blur_score": ("dq_blur", "below"), "abs_rotation": ("dq_rotation", "above"),
              "width": ("dq_min_w", "below"), "height": ("dq_min_h", "below")}
BASE_COLUMNS = {"path", "width", "height", "blur_score", "rotation_angle", "error", "batch", "is_acceptable",
                "reasons", "abs_rotation"}


def audit_with_progress(data_dir: str) -> pd.DataFrame:
    from quality.audit import audit_folder

    bar = st.progress(0.0, text="Scoring images…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Scoring images… {done}/{total}")

    scores = audit_folder(data_dir, progress=progress)
    bar.empty()
    return scores


st.title("Data quality")
sel = state.selection()
cfg = state.config().data_quality
default_dir = (sel.data_dir if sel else None) or ""
data_dir = st.text_input("Data directory to audit", value=default_dir, key="dq_dir")
if not data_dir:
    st.info("Enter a data directory (or set one in the sidebar).")
    st.stop()
if not Path(data_dir).expanduser().is_dir():
    st.error(f"Not a directory: {md_escape(data_dir)}")
    st.stop()

cached = st.session_state.get("dq_scores")
if cached is None or cached[0] != data_dir or st.button("Re-audit", key="dq_reaudit"):
    try:
        st.session_state["dq_scores"] = (data_dir, audit_with_progress(str(Path(data_dir).expanduser())))
    except AnalyzerError as exc:
        st.error(str(exc))
        st.stop()
scores: pd.DataFrame = st.session_state["dq_scores"][1]
if scores.empty:
    st.info("No images found under this directory.")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
min_w = c1.slider("Min width (px)", 0, 1000, int(cfg.min_resolution[0]), 10, key="dq_min_w")
min_h = c2.slider("Min height (px)", 0, 1000, int(cfg.min_resolution[1]), 10, key="dq_min_h")
max_rot = c3.slider("Max rotation (°)", 0.0, 45.0, float(cfg.max_rotation_degrees), 0.5, key="dq_rotation")
blur = c4.slider("Blur threshold", 0.0, 1000.0, float(cfg.blur_threshold), 5.0, key="dq_blur",
                 help="blur_score units; images below are flagged (higher = sharper).")

from quality.audit import apply_thresholds  # noqa: E402  (after the early stops: nothing to import otherwise)

flagged = apply_thresholds(scores, min_resolution=(min_w, min_h), max_rotation=max_rot, blur_threshold=blur)
errors = flagged["error"].notna() & (flagged["error"].astype(str) != "")
n_bad = int((~flagged["is_acceptable"]).sum())
m1, m2, m3 = st.columns(3)
m1.metric("Images", f"{len(flagged):,}")
m2.metric("Flagged", f"{n_bad:,}")
m3.metric("Unreadable", f"{int(errors.sum()):,}")
st.markdown(f"**{n_bad} flagged** of {len(flagged)} images at these thresholds.")

view = flagged.assign(abs_rotation=flagged["rotation_angle"].abs())
thresholds = {"dq_blur": blur, "dq_rotation": max_rot, "dq_min_w": min_w, "dq_min_h": min_h}
cols = st.columns(2)
numeric_extra = [c for c in view.columns if c not in BASE_COLUMNS and pd.api.types.is_numeric_dtype(view[c])]
for i, (column, (key, side)) in enumerate(list(HISTOGRAMS.items()) + [(c, (None, "")) for c in numeric_extra]):
    with cols[i % 2]:
        st.plotly_chart(score_histogram_figure(view, column, thresholds.get(key), side or "below"),
                        key=f"dq_hist_{column}")

st.subheader("Rejected images")
rejected = flagged[~flagged["is_acceptable"]].copy()
rejected["reasons"] = rejected["reasons"].map(lambda r: "; ".join(r) if isinstance(r, (list, tuple, np.ndarray))
                                              else str(r))
st.dataframe(rejected.drop(columns=["batch"], errors="ignore"), hide_index=True, key="dq_rejected",
             width="stretch")
export = flagged.copy()
export["reasons"] = export["reasons"].map(lambda r: "; ".join(r) if isinstance(r, (list, tuple, np.ndarray))
                                          else str(r))
st.download_button("Download scores (CSV)", export.to_csv(index=False), file_name="image_quality_scores.csv",
                   mime="text/csv", key="dq_csv", on_click="ignore")
