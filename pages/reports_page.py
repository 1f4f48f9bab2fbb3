"""Reports: preview, and downloads of Markdown, HTML and JSON for the current run and config."""

from __future__ import annotations

import streamlit as st

from ui import state, tables

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
st.subheader("Preview")
st.markdown(reports["markdown"])
