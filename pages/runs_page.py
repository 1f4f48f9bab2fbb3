"""Runs: every run of the sidebar's wandb directory analysed into one table (verdict, worst batch, first bad step,
regression against a chosen baseline). A run that cannot be read is a row with its error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from analysis.core.run import RunRef
from analysis.findings.compare import CompareConfig, RunSide, run_side
from analysis.findings.project import project_table
from ui import state, tables
from ui.format import error_text, md_escape


@st.cache_resource(show_spinner="Analysing every run…", max_entries=2)
def cached_table(
    wandb_dir: str, listing: str, config_json: str, baseline: str | None, workers: int, _refs: tuple[RunRef, ...]
) -> pd.DataFrame:
    from analysis.core.config import AnalyzerConfig

    config = AnalyzerConfig.model_validate_json(config_json)
    base: RunSide | None = None
    if baseline is not None:
        base = run_side(state.cached_run(baseline, state.file_fingerprint(baseline)), CompareConfig(analyzer=config))
    return project_table(list(_refs), config, baseline=base, workers=workers)


sel = state.selection()
st.title("Runs")
here = Path(sel.location) if sel is not None else None
if here is None or not here.is_dir():
    st.info("Open a run of a local wandb directory in the sidebar: this page analyses every run beside it.")
    st.stop()
wandb_dir = str(here.parent)
listing = state.listing_key(wandb_dir)
refs = tuple(state.cached_list_runs(wandb_dir, listing))
st.caption(f"{len(refs)} runs in {md_escape(wandb_dir)}")
labels = {r.label: r.locator for r in refs}
baseline_label = st.selectbox(
    "Baseline (optional)", list(labels), index=None, key="runs_baseline", placeholder="No baseline"
)
workers = int(st.number_input("Processes", min_value=1, max_value=8, value=1, key="runs_workers"))
if not st.toggle("Analyse every run", key="runs_go", help="Runs the full analysis of each run (cached)."):
    st.stop()
try:
    table = cached_table(
        wandb_dir,
        listing,
        state.config().model_dump_json(),
        labels[baseline_label] if baseline_label else None,
        workers,
        refs,
    )
except AnalyzerError as exc:
    st.error(f"Cannot open the baseline: {error_text(exc)}")
    st.stop()
failed = int(table["error"].notna().sum())
regressed = int(table["regression"].eq(True).sum())
st.markdown(
    f"**{len(table)} runs** analysed · {failed} could not be read"
    + (f" · {regressed} regressed against the baseline" if baseline_label else "")
)
st.dataframe(tables.runs_table(table), hide_index=True, key="runs_table", width="stretch", placeholder="—")
