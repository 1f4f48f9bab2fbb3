"""Widgets shared by the sidebar and the pages: the run picker, the per-run data directory field, Save to config."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from analysis.core.errors import AnalyzerError
from analysis.core.paths import confine
from analysis.core.run import RunRef
from ui import state
from ui.format import md_escape
from ui.tables import filter_runs

__all__ = ["data_dir_input", "pick_run", "save_config_controls"]


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


def data_dir_input(default: str, key: str, run_location: str, wanted: str | None = None) -> str | None:
    """The data directory field of the chosen run: it starts at `default` for each run (see ui/data_dir.py) and
    keeps the user's edit while that run stays chosen; `wanted` (a reloaded or shared URL's) overrides both.
    A missing folder is a warning; the run shows without images."""
    state.reset_per_run(key, default, run_location=run_location)
    if wanted is not None:
        state.seed(key, wanted)
    value = st.sidebar.text_input(
        "Data directory", key=key, help="Root that the logged image paths are relative to."
    ).strip()
    try:  # under the data roots when the server confines paths; checked before the folder is looked at
        folder = confine(value) if value else None
    except AnalyzerError as exc:
        st.sidebar.error(f"{md_escape(str(exc))} Showing the run without images.")
        return None
    if folder is None:
        st.sidebar.caption("No data directory is known for this run: set one to score its images.")
    elif not folder.is_dir():
        st.sidebar.warning(f"Data directory not found: {md_escape(value)}. Showing the run without images.")
        return None
    return str(folder) if folder is not None else None


def save_config_controls(key_prefix: str) -> None:
    """ "Save to config": the active config as YAML to download, and written back to the config file it was loaded
    from (when it came from a path): only the threshold sections change, the rest of the file is kept."""
    from analysis.core.config import dump_config
    from analysis.core.errors import AnalyzerError
    from ui.config_edit import merged_yaml

    active = state.config()
    path = state.config_file()
    c1, c2 = st.columns(2)
    c1.download_button(
        "Save to config (download YAML)",
        lambda: dump_config(active),
        file_name=Path(path).name if path else "config.yaml",
        mime="text/yaml",
        key=f"{key_prefix}_cfg_download",
        on_click="ignore",
        help="The active config: these thresholds are the ones every page and report uses.",
    )
    if path is None:
        c2.caption("Load a config from a file path (sidebar, Config) to save the thresholds into it.")
        return
    if c2.button(
        f"Save to {md_escape(Path(path).name)}", key=f"{key_prefix}_cfg_save", help=f"Writes {md_escape(path)}"
    ):
        target = Path(path)
        try:
            original = target.read_text(encoding="utf-8") if target.exists() else ""
            target.write_text(merged_yaml(original, active), encoding="utf-8")
        except (OSError, AnalyzerError) as exc:
            c2.error(f"Config not saved: {md_escape(str(exc))}")
        else:
            c2.success(f"Saved the thresholds to {md_escape(path)}")
