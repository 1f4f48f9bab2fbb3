"""Reports: preview, downloads of Markdown, HTML and JSON for the current run and config, and logging the
analysis back into wandb as an analysis run.

The preview is the Markdown report drawn with HTML off (`st.markdown` escapes it); its `<details>` blocks become
expanders (ui/report_preview.py), so no HTML from the report reaches the page.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from analysis.cli import DEFAULT_OUTPUT_DIR
from analysis.core.errors import AnalyzerError
from ui import state, tables
from ui.format import error_text
from ui.report_preview import preview_sections

WANDB_LOG_TIMEOUT = 120.0  # seconds; offline logging takes a few, and a wandb service that stopped answering never ends

st.title("Reports")
sel = state.selection()
reports = state.current_reports()
if sel is None or reports is None:
    st.info("Pick a run in the sidebar.")
    st.stop()
stem = tables.report_file_stem(sel.label)
DOWNLOADS = (  # (label, format key, extension, mime type)
    ("Download Markdown", "markdown", "md", "text/markdown"),
    ("Download HTML", "html", "html", "text/html"),
    ("Download JSON", "json", "json", "application/json"),
)
for column, (label, fmt, ext, mime) in zip(st.columns(len(DOWNLOADS)), DOWNLOADS):
    column.download_button(
        label, reports[fmt], file_name=f"{stem}_report.{ext}", mime=mime, key=f"rep_{ext}", on_click="ignore"
    )
st.caption(f"HTML report: {len(reports['html'].encode()) / 1e6:.2f} MB, self-contained (works offline).")

with st.expander("Log analysis to wandb", expanded=False):
    wandb_home = os.environ.get("WANDB_DIR") or str(DEFAULT_OUTPUT_DIR.resolve())
    st.caption(
        "Writes an analysis run (job_type `analysis`, tagged `analysed:<run id>`) with the events and problematic "
        "batches as tables, this HTML report as a file and an artifact, and the verdict in its summary. "
        f"Mode: {os.environ.get('WANDB_MODE') or 'offline'} (WANDB_MODE); folder: {wandb_home} (WANDB_DIR)."
    )
    project = st.text_input("wandb project (empty: the analysed run's project)", key="rep_wandb_project")
    if st.button("Log analysis to wandb", key="rep_wandb"):
        from analysis.reporting.model import Report
        from analysis.reporting.wandb_log import forget_inherited_wandb_service, log_analysis_to_wandb

        forget_inherited_wandb_service()  # this long-lived server logs through a wandb service of its own

        with st.spinner("Logging the analysis to wandb…"):
            try:
                logged = log_analysis_to_wandb(
                    Report.from_json(reports["json"]),  # the very report offered for download
                    project=project.strip() or None,
                    wandb_dir=Path(DEFAULT_OUTPUT_DIR).resolve(),
                    html=reports["html"],
                    timeout=WANDB_LOG_TIMEOUT,
                )
            except AnalyzerError as exc:
                st.error(error_text(exc))
            else:
                st.success(logged.describe())

st.subheader("Preview")
for title, body in preview_sections(reports["markdown"]):
    if title is None:
        st.markdown(body)
    else:
        with st.expander(title):
            st.markdown(body)
