"""The "Upload history" source of the sidebar: a CSV / TSV / Parquet / JSONL export saved into the uploads folder.

The file keeps its name (the run is named after it). A wandb UI export of several runs gets a run picker and
opens `path#run`. A file that cannot be read shows one error here, with the problem and the columns found, and
selects nothing, so no page draws an empty run with a green verdict ("Steps 0").
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from analysis.core.run import Run
from analysis.core.vocabulary import is_context, known_direction
from analysis.sources.tabular import export_runs
from ui import state
from ui.format import md_escape
from ui.run_inputs import data_dir_input

__all__ = ["read_summary", "upload_source"]

UPLOAD_TYPES = ["csv", "tsv", "parquet", "jsonl", "json"]


def upload_source() -> state.Selection | None:
    up = st.sidebar.file_uploader(
        "History export (CSV, Parquet, JSONL)",
        type=UPLOAD_TYPES,
        key="history_upload",
        help="A wandb chart's 'Download CSV', a history table (`_step` or `step` plus metric columns), or a "
        "spreadsheet's CSV (`;` or tab separated, decimal commas, UTF-8 / cp1252 / UTF-16).",
    )
    if up is None:
        return None
    path = state.save_upload(up.name, up.getvalue())
    fingerprint = path.parent.name  # the content hash
    try:
        runs = export_runs(path)
    except AnalyzerError as exc:
        st.sidebar.error(md_escape(str(exc)))
        return None
    location, label = str(path), up.name
    if len(runs) > 1:
        chosen = st.sidebar.selectbox(
            f"Run in this export ({len(runs)} runs)",
            runs,
            index=None,
            placeholder="Choose a run",
            key=f"upload_run_pick_{fingerprint}",
            help="A wandb chart export holds one line per run; each is analysed on its own.",
        )
        if chosen is None:
            st.sidebar.info(f"{md_escape(up.name)} holds {len(runs)} runs: choose one above.")
            return None
        location, label = f"{path}#{chosen}", f"{up.name} · {chosen}"
    try:
        run = state.cached_run(location, fingerprint)  # read once here: a bad file is one error, nothing selected
    except AnalyzerError as exc:
        st.sidebar.error(md_escape(str(exc)))
        return None
    st.sidebar.caption(md_escape(read_summary(run)))
    return state.Selection(
        location=location,
        fingerprint=fingerprint,
        data_dir=data_dir_input("", "upload_data_dir", location),
        label=label,
    )


def read_summary(run: Run) -> str:
    """What was read, so a wrong parse shows at once: steps (and what they count), metrics, the last values,
    and how the file was read (delimiter, encoding, decimal commas, export notes)."""
    h = run.history
    metrics = [c for c in h.columns if c != "_step" and pd.api.types.is_numeric_dtype(h[c])]
    axis = {"row": "row numbers", "_step": "_step"}.get(run.step_axis, run.step_axis)
    parts = [f"{len(h):,} steps" + (f" ({h['_step'].min()}–{h['_step'].max()}, from {axis})" if len(h) else "")]
    parts.append(f"{len(metrics):,} metric{'s' if len(metrics) != 1 else ''}")
    # The metrics that grade the run first (a loss, an accuracy), context columns (time, memory, lr) last.
    headline = sorted(metrics, key=lambda k: (is_context(k), known_direction(k) is None))
    last = [
        f"{k} {run.summary[k]:.4g}"
        for k in headline[:3]
        if isinstance(run.summary.get(k), (int, float)) and not isinstance(run.summary.get(k), bool)
    ]
    if last:
        parts.append("last " + ", ".join(last))
    if run.notes:
        parts.append(run.notes)
    return " · ".join(parts)
