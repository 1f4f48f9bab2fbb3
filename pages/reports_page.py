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
c1, c2, c3 = st.columns(3)
c1.download_button(
    "Download Markdown",
    reports["markdown"],
    file_name=f"{stem}_report.md",
    mime="text/markdown",
    key="rep_md",
    on_click="ignore",
)
c2.download_button(
    "Download HTML",
    reports["html"],
    file_name=f"{stem}_report.html",
    mime="text/html",
    key="rep_html",
    on_click="ignore",
)
c3.download_button(
    "Download JSON",
    reports["json"],
    file_name=f"{stem}_report.json",
    mime="application/json",
    key="rep_json",
    on_click="ignore",
)
st.caption(f"HTML report: {len(reports['html'].encode()) / 1e6:.2f} MB, self-contained (works offline).")
st.subheader("Preview")
st.markdown(reports["markdown"])
