"""Sidebar widgets shared by the run sources: the run picker and the per-run data directory field."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from analysis.core.run import RunRef
from ui import state
from ui.format import md_escape
from ui.tables import filter_runs

__all__ = ["data_dir_input", "pick_run"]


def pick_run(runs: list[RunRef], key: str) -> RunRef | None:
    """Search box + selectbox over `runs` (given newest first)."""
    if len(runs) > 1:
        query = st.sidebar.text_input("Search runs", key=f"{key}_search", placeholder="name, id, project, state")
        shown = filter_runs(runs, query)
        if not shown:
            st.sidebar.warning(f"No run matches “{md_escape(query)}” ({len(runs)} runs).")
            return None
    else:
        shown = runs
    by_label = {r.label: r for r in shown}
    label = st.sidebar.selectbox(
        f"Run ({len(shown)} of {len(runs)})" if len(shown) != len(runs) else "Run",
        list(by_label),
        key=key,
        help="Type to search by name or id.",
    )
    return by_label[label]


def data_dir_input(default: str, key: str, run_location: str) -> str | None:
    """The data directory field of the chosen run: it starts at `default` for each run (see ui/data_dir.py) and
    keeps the user's edit while that run stays chosen. A missing folder is a warning; the run shows without
    images."""
    state.reset_per_run(key, default, run_location=run_location)
    value = st.sidebar.text_input(
        "Data directory", key=key, help="Root that the logged image paths are relative to."
    ).strip()
    if not value:
        st.sidebar.caption("No data directory is known for this run: set one to score its images.")
    elif not Path(value).expanduser().is_dir():
        st.sidebar.warning(f"Data directory not found: {md_escape(value)}. Showing the run without images.")
        return None
    return str(Path(value).expanduser()) if value else None
