"""The one place pages read and write `st.session_state`, plus the cached loaders they share.

Pages stay thin: they call `current_analysis()` (cached on what the data depends on: the run file's size and
mtime, the config, the data directory) and draw. Nothing here computes analysis itself.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from analysis.config import AnalyzerConfig
from analysis.errors import AnalyzerError
from analysis.pipeline import RunAnalysis, analyze_run
from analysis.run import Run, RunRef

ROOT = Path(__file__).resolve().parents[1]
DEMO_ROOT = Path(os.environ.get("EXPERIMENT_ANALYZER_DEMO", ROOT / "demo"))
UPLOAD_DIR = Path(os.environ.get("EXPERIMENT_ANALYZER_CACHE", Path.home() / ".cache" / "experiment-analyzer")) / "uploads"


@dataclass(frozen=True)
class Selection:
    """What the sidebar picked: where the run is, how to fingerprint it, and the data directory."""

    location: str  # run folder, history file, or wandb://entity/project/run_id
    fingerprint: str  # changes whenever the run's data changes (size + mtime, upload hash, refresh counter)
    data_dir: str | None
    label: str


def default_wandb_dir() -> str:
    """`./wandb` when it holds runs, else `$WANDB_DIR/wandb`, else the bundled demo."""
    if (Path.cwd() / "wandb").is_dir() and any((Path.cwd() / "wandb").glob("*run-*")):
        return str(Path.cwd() / "wandb")
    env = os.environ.get("WANDB_DIR")
    if env and (Path(env) / "wandb").is_dir():
        return str(Path(env) / "wandb")
    return str(DEMO_ROOT / "wandb")


def default_data_dir(wandb_dir: str) -> str:
    """`<parent of the wandb dir>/data` when it exists (the demo's layout), else empty."""
    cand = Path(wandb_dir).expanduser().parent / "data"
    return str(cand) if cand.is_dir() else ""


def file_fingerprint(path: str | Path) -> str:
    """size + mtime of a run file (or of the newest .wandb file in a run folder)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("run-*.wandb"))
        p = files[-1] if files else p
    try:
        st_ = p.stat()
    except OSError:
        return "missing"
    return f"{st_.st_size}:{st_.st_mtime_ns}"


def save_upload(name: str, data: bytes) -> Path:
    """Store an uploaded history file under the cache dir, named by content hash (same bytes, same path)."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    suffix = "".join(Path(name).suffixes[-2:]) or ".csv"
    target = UPLOAD_DIR / f"{digest}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


@st.cache_data(show_spinner=False, ttl=30)
def cached_list_runs(wandb_dir: str, listing_key: str) -> list[RunRef]:
    from analysis.sources import list_runs

    return list_runs(wandb_dir)


@st.cache_resource(show_spinner="Reading run…", max_entries=4)
def cached_run(location: str, fingerprint: str) -> Run:
    """Loaded runs are shared read-only across reruns and sessions; the fingerprint invalidates them."""
    from analysis.sources import open_run

    return open_run(location)


@st.cache_resource(show_spinner="Analysing run…", max_entries=8)
def cached_analysis(location: str, fingerprint: str, config_json: str, data_dir: str | None) -> RunAnalysis:
    run = cached_run(location, fingerprint)
    config = AnalyzerConfig.model_validate_json(config_json)
    return analyze_run(run, config, data_dir=data_dir or None)


def set_selection(sel: Selection | None) -> None:
    st.session_state["selection"] = sel


def selection() -> Selection | None:
    return st.session_state.get("selection")


def set_config(config: AnalyzerConfig) -> None:
    st.session_state["config_json"] = config.model_dump_json()


def config() -> AnalyzerConfig:
    raw = st.session_state.get("config_json")
    return AnalyzerConfig.model_validate_json(raw) if raw else AnalyzerConfig()


def current_analysis() -> RunAnalysis | None:
    """The analysis of the selected run under the active config, or None (with a message) when unavailable."""
    sel = selection()
    if sel is None:
        st.info("Pick a run in the sidebar.")
        return None
    try:
        return cached_analysis(sel.location, sel.fingerprint, config().model_dump_json(), sel.data_dir)
    except AnalyzerError as exc:
        st.error(str(exc))
        return None


def current_run() -> Run | None:
    sel = selection()
    if sel is None:
        return None
    try:
        return cached_run(sel.location, sel.fingerprint)
    except AnalyzerError as exc:
        st.error(str(exc))
        return None


def focus_batch(batch: int | None = None) -> int | None:
    """Get (or, with an argument, set) the batch the user drilled into; shared by Overview and Batches."""
    if batch is not None:
        st.session_state["focus_batch"] = int(batch)
    return st.session_state.get("focus_batch")


@st.cache_data(show_spinner="Rendering reports…", max_entries=8)
def cached_reports(location: str, fingerprint: str, config_json: str, data_dir: str | None) -> dict[str, str]:
    """Markdown, JSON and HTML texts of the current run's report (rendered once per run + config)."""
    from analysis.report import Report

    report = Report.from_analysis(cached_analysis(location, fingerprint, config_json, data_dir))
    return {"markdown": report.to_markdown(), "json": report.to_json(), "html": report.to_html()}


def current_reports() -> dict[str, str] | None:
    sel = selection()
    if sel is None:
        return None
    try:
        return cached_reports(sel.location, sel.fingerprint, config().model_dump_json(), sel.data_dir)
    except AnalyzerError as exc:
        st.error(str(exc))
        return None
