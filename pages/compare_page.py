"""Compare: the run open in the sidebar (candidate) against a baseline run or baseline file: which batches got
worse, a batch × metric heatmap, one batch's overlaid curves with the parting step, and its images side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from analysis.core.paths import confine
from analysis.findings.baseline_file import baseline_dict, is_baseline_file, load_baseline
from analysis.findings.compare import CompareConfig, Comparison, RunSide, compare_runs, run_side
from analysis.findings.compare_model import NOTHING_COMPARED
from analysis.findings.pipeline import RunAnalysis
from ui import compare_tables, state
from ui.format import error_text, md_escape, md_labels

OTHER = "Another location…"
MAX_IMAGES = 4


@st.cache_resource(show_spinner="Reading the baseline file…", max_entries=4)
def cached_baseline_file(location: str, fingerprint: str) -> RunSide:
    return load_baseline(location)


@st.cache_resource(show_spinner="Comparing…", max_entries=4)
def cached_comparison(
    base_key: tuple, cand_key: tuple, tolerances: tuple[float, float, int], _base: RunSide, _cand: RunSide
) -> Comparison:
    tol_abs, tol_rel, window = tolerances
    return compare_runs(_base, _cand, CompareConfig(tol_abs, tol_rel, window, analyzer=state.config()))


def pick_baseline(sel: state.Selection) -> str | None:
    """The baseline's location: a run of the candidate's wandb directory, or a typed path."""
    here = Path(sel.location)
    refs = []
    if here.is_dir():
        wandb_dir = str(here.parent)
        refs = [r for r in state.cached_list_runs(wandb_dir, state.listing_key(wandb_dir)) if r.locator != sel.location]
    by_label = {r.label: r.locator for r in refs}
    choice = st.selectbox(
        "Baseline",
        [*by_label, OTHER],
        index=None,
        key="cmp_baseline",
        placeholder="Pick the run you trust",
        help="A run of the same wandb directory, or another location: a run folder, a history export "
        "(.csv / .parquet / .jsonl) or a baseline file saved with --save-baseline.",
    )
    if choice is None:
        return None
    if choice != OTHER:
        return by_label[choice]
    text = st.text_input(
        "Baseline location", key="cmp_location", placeholder="/path/to/run-folder, export.csv or baseline.json"
    ).strip()
    return str(confine(text)) if text else None  # under the data roots when the server confines paths


def load_baseline_side(location: str, sel: state.Selection) -> tuple[RunSide, RunAnalysis | None, tuple]:
    """The baseline as a RunSide (and its analysis when it is a run, scored with the candidate's data dir)."""
    fingerprint = state.file_fingerprint(location)
    if is_baseline_file(location):
        return cached_baseline_file(location, fingerprint), None, (location, fingerprint)
    key = (location, fingerprint, state.config().model_dump_json(), sel.data_dir)
    base = state.cached_analysis(*key)
    return run_side(base), base, key


def image_column(title: str, analysis: RunAnalysis | None, data_dir: str | None, batch: int) -> None:
    st.markdown(f"**{md_escape(title)}**")
    if analysis is None or data_dir is None:
        st.caption("No images: a baseline file, or no data directory set in the sidebar.")
        return
    imgs = analysis.images
    paths = imgs.loc[imgs["batch"] == batch, "path"].drop_duplicates().tolist()[:MAX_IMAGES] if len(imgs) else []
    if not paths:
        st.caption("This run logged no images for the batch.")
        return
    for path in paths:
        try:
            st.image(state.thumbnail(data_dir, path, max_side=360), caption=md_escape(path))
        except AnalyzerError as exc:
            st.warning(error_text(exc))


analysis = state.current_analysis()
cand_key = state.analysis_key()
sel = state.selection()
if analysis is None or cand_key is None or sel is None:
    st.stop()

st.title("Compare")
st.caption(f"Candidate: {md_escape(sel.label or sel.location)} (the run open in the sidebar)")
try:
    location = pick_baseline(sel)
except AnalyzerError as exc:  # a typed location outside the data roots
    st.error(error_text(exc))
    st.stop()
with st.expander("Tolerances"):
    c1, c2, c3 = st.columns(3)
    tol_abs = c1.number_input("Absolute", min_value=0.0, max_value=1e6, value=0.02, step=0.01, format="%.3f")
    tol_rel = c2.number_input("Relative", min_value=0.0, max_value=100.0, value=0.05, step=0.01, format="%.3f")
    window = int(c3.number_input("Last validations", min_value=2, max_value=100_000, value=10, step=1))
st.download_button(
    "Download this run as a baseline file",
    json.dumps(baseline_dict(run_side(analysis))),
    file_name=f"{run_side(analysis).name}-baseline.json",
    mime="application/json",
    help="For CI: experiment-analyzer --run-name NEW --baseline this-file.json --fail-on regression",
)
if location is None:
    st.info("Pick a baseline run to compare the open run against.")
    st.stop()
if location == sel.location:
    st.warning("The baseline is the run open in the sidebar: pick another run.")
    st.stop()
try:
    base_side, base_analysis, base_key = load_baseline_side(location, sel)
except AnalyzerError as exc:
    st.error(f"Cannot open the baseline: {error_text(exc)}")
    st.stop()
cand_side = run_side(analysis)
comparison = cached_comparison(base_key, cand_key, (tol_abs, tol_rel, window), base_side, cand_side)

regs = comparison.regressions
if regs:
    st.error(
        f"{len(regs)} regression(s) against {md_escape(comparison.baseline)}: batch(es) "
        f"{', '.join(map(str, comparison.regressed_batches))}"
    )
    for sentence in comparison.sentences():
        st.markdown(f"- {md_escape(sentence)}")
elif comparison.nothing_compared:
    st.info(f"Against {md_escape(comparison.baseline)}: {md_escape(NOTHING_COMPARED)}.")
else:
    st.success(f"No regression against {md_escape(comparison.baseline)} (aligned on {comparison.alignment}).")
for label, batches in (("New batches (candidate only)", comparison.new_batches),
                       ("Vanished batches (baseline only)", comparison.vanished_batches)):  # fmt: skip
    if batches:
        st.warning(f"{label}: {', '.join(map(str, batches))}")

rows = compare_tables.delta_rows(comparison)
st.dataframe(compare_tables.style_deltas(rows), hide_index=True, key="cmp_table", width="stretch")
st.plotly_chart(compare_tables.delta_heatmap(comparison), key="cmp_heatmap")

if rows.empty:
    st.stop()
order = list(dict.fromkeys(int(b) for b in rows["batch"]))  # worst first
batch = st.selectbox("Batch", order, index=0, key="cmp_batch", format_func=lambda b: f"batch {b}")
metrics = list(dict.fromkeys(str(m) for m in rows.loc[rows["batch"] == batch, "metric"]))
for tab, metric in zip(st.tabs(md_labels(metrics)), metrics, strict=True):
    with tab:
        delta = next(d for d in comparison.deltas if d.batch == batch and d.metric == metric)
        fig = compare_tables.overlay_figure(
            base_side, cand_side, batch, metric, delta.parting_step, comparison.alignment
        )
        st.plotly_chart(fig, key=f"cmp_overlay_{metric}")

shifts = [s for s in comparison.quality if s.batch == batch]
if shifts:
    st.subheader(f"Image-quality scores of batch {batch}")
    st.dataframe(
        pd.DataFrame(
            [
                {"score": s.label, "baseline median": s.median_baseline, "candidate median": s.median_candidate,
                 "q": s.q, "moved": s.words if s.significant else "—"}
                for s in shifts
            ]
        ),
        hide_index=True,
        key="cmp_quality",
    )  # fmt: skip
st.subheader(f"Images of batch {batch}")
left, right = st.columns(2)
with left:
    image_column(f"Baseline · {comparison.baseline}", base_analysis, sel.data_dir, batch)
with right:
    image_column(f"Candidate · {comparison.candidate}", analysis, sel.data_dir, batch)
