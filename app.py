"""Streamlit entry point: navigation, and the sidebar (source, run picker, data directory, config). Nothing else.

streamlit run app.py
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from analysis.core.config import parse_config_text
from analysis.core.errors import AnalyzerError
from analysis.core.paths import confine
from analysis.core.run import Run, RunRef
from ui import state
from ui.assets import head_html
from ui.config_edit import FIELD_RANGES, edited_config, threshold_values
from ui.data_dir import suggest_data_dir
from ui.format import md_escape
from ui.navigation import SOURCE_LABELS, find_run, source_label, source_param
from ui.run_inputs import data_dir_input, pick_run, save_config_controls
from ui.upload import upload_source

st.set_page_config(page_title="Experiment analyzer", layout="wide")
# A constant style sheet and a late start on plotly.js, once the first view is drawn (ui/assets.py); no run data.
st.html(head_html(), unsafe_allow_javascript=True)

PAGES = [
    st.Page("pages/overview_page.py", title="Overview", url_path="overview", default=True),
    st.Page("pages/batches_page.py", title="Batches", url_path="batches"),
    st.Page("pages/data_quality_page.py", title="Data quality", url_path="data-quality"),
    st.Page("pages/reports_page.py", title="Reports", url_path="reports"),
    st.Page("pages/compare_page.py", title="Compare", url_path="compare"),
    st.Page("pages/runs_page.py", title="Runs", url_path="runs"),
    st.Page("pages/monitor_page.py", title="Monitor settings", url_path="monitor"),
]
STATE_BADGES = {
    "finished": ":green[● finished]",
    "running": ":blue[● running]",
    "failed": ":red[● failed]",
    "crashed": ":orange[● crashed]",
    "unknown": ":gray[● unknown]",
}
AUTO_REFRESH_SECONDS = float(os.environ.get("EXPERIMENT_ANALYZER_REFRESH_SECONDS", "5"))


def local_source() -> state.Selection | None:
    wanted_dir = state.url_take("dir")
    if wanted_dir is not None:
        state.seed("wandb_dir", wanted_dir)
    wandb_dir = st.sidebar.text_input(
        "wandb directory",
        value=state.default_wandb_dir(),
        key="wandb_dir",
        help="A folder holding offline-run-*/ or run-*/ folders.",
    ).strip()
    state.url_put("dir", wandb_dir)
    if Path(wandb_dir) == state.DEMO_ROOT / "wandb":
        from analysis.demo import ensure_demo

        with st.spinner("Writing the demo run…"):
            ensure_demo(state.DEMO_ROOT)
    folder = confine(wandb_dir)  # under the data roots when the server confines paths (analysis/core/paths.py)
    if not wandb_dir or not folder.is_dir():
        st.sidebar.error(f"Not a directory: {md_escape(wandb_dir)}")
        if wanted_dir is not None:
            state.set_notice(f"The linked wandb directory {md_escape(wanted_dir)} does not exist here.", "wandb_dir")
        return None
    runs = state.cached_list_runs(str(folder), state.listing_key(str(folder)))
    if not runs:
        st.sidebar.warning("No runs in this directory.")
        return None
    take_linked_run(runs, "run_pick", str(folder))
    ref = pick_run(runs, "run_pick")  # list_runs gives newest first
    if ref is None:
        return None
    state.url_put("run", ref.run_id)
    fingerprint = state.file_fingerprint(ref.locator)
    suggested = suggest_data_dir(folder, run_config(ref.locator, fingerprint))
    data_dir = data_dir_input(suggested, "data_dir", ref.locator, wanted=state.url_take("data"))
    state.url_put("data", data_dir if data_dir and data_dir != suggested else None)
    return state.Selection(location=ref.locator, fingerprint=fingerprint, data_dir=data_dir, label=ref.label)


def take_linked_run(runs: list[RunRef], key: str, where: str) -> None:
    """Select the run a reloaded or shared URL names; a run that is not there is said so (the newest is shown)."""
    wanted = state.url_take("run")
    if wanted is None:
        return
    found = find_run(runs, wanted)
    if found is None:
        state.seed(key, runs[0].label)
        state.set_notice(
            f"The linked run {md_escape(wanted)} is not in {md_escape(where)}: showing {md_escape(runs[0].label)}.",
            key,
        )
        return
    state.seed(f"{key}_search", "")
    state.seed(key, found.label)


def run_config(location: str, fingerprint: str) -> dict[str, object]:
    """The chosen run's config (it may name its data directory); empty when the run cannot be read (the run
    status below says why)."""
    try:
        return state.cached_run(location, fingerprint).config
    except AnalyzerError:
        return {}


def cloud_source() -> state.Selection | None:
    if not os.environ.get("WANDB_API_KEY"):
        st.sidebar.info("Set WANDB_API_KEY (or run `wandb login`) to browse wandb cloud runs.")
    for param, key in (("entity", "cloud_entity"), ("project", "cloud_project")):
        wanted = state.url_take(param)
        if wanted is not None:
            state.seed(key, wanted)
    entity = st.sidebar.text_input("Entity", key="cloud_entity").strip()
    project = st.sidebar.text_input("Project", key="cloud_project").strip()
    state.url_put("entity", entity)
    state.url_put("project", project)
    if not (entity and project):
        return None
    runs = state.cached_cloud_runs(entity, project, st.session_state.get("cloud_refresh", 0))
    if not runs:
        st.sidebar.warning("No runs in this project.")
        return None
    take_linked_run(runs, "cloud_run_pick", f"{entity}/{project}")
    ref = pick_run(runs, "cloud_run_pick")
    if ref is None:
        return None
    state.url_put("run", ref.run_id)
    refresh = st.session_state.get("cloud_refresh", 0)
    return state.Selection(
        location=f"wandb://{ref.locator}",
        fingerprint=f"cloud:{refresh}",
        data_dir=data_dir_input(
            suggest_data_dir(None, run_config(f"wandb://{ref.locator}", f"cloud:{refresh}")),
            "cloud_data_dir",
            ref.locator,
        ),
        label=ref.label,
    )


def bump_refresh() -> None:
    """Before the rerun: cloud runs are fetched again (new fingerprint), local listings re-read their states."""
    st.session_state["cloud_refresh"] = st.session_state.get("cloud_refresh", 0) + 1
    state.cached_list_runs.clear()


def run_status(run: Run | None, error: str | None) -> None:
    """State badge (finished / running / crashed / failed, plus truncated / skipped records) and live controls."""
    if error is not None:
        st.sidebar.error(md_escape(error))
        return
    if run is None:
        return
    badges = [STATE_BADGES.get(run.ref.state, md_escape(run.ref.state))]
    badges += [f":orange[{b}]" for b in run.status.badges()]
    st.sidebar.markdown(" · ".join(badges) + f" · project {md_escape(run.ref.project or '—')}")
    live = run.ref.state == "running"
    cloud = run.ref.source == "cloud"
    if not (live or cloud):
        return
    c1, c2 = st.sidebar.columns(2)
    c1.button("Refresh", key="run_refresh", help="Read what the run logged since it was loaded.", on_click=bump_refresh)
    if live and c2.toggle(
        "Auto-refresh",
        key="run_auto_refresh",
        help=f"Check the run file every {AUTO_REFRESH_SECONDS:g} s; redraw when it grew.",
    ):
        sel = state.selection()
        if sel is not None and not cloud:
            watch_run_file(sel.location, sel.fingerprint)


@st.fragment(run_every=AUTO_REFRESH_SECONDS)
def watch_run_file(location: str, fingerprint: str) -> None:
    """Reruns the app when the live run's file changed (the cached loaders then read only the new bytes)."""
    if state.file_fingerprint(location) != fingerprint:
        st.rerun(scope="app")


def load_config_file() -> None:
    """A YAML config from an upload or a path; on success the threshold fields below follow it."""
    up = st.file_uploader("Load YAML config", type=["yaml", "yml"], key="config_upload")
    path = st.text_input("…or a config file path", key="config_path", placeholder="config.yaml").strip()
    if up is not None:
        token, source, read = f"upload:{up.file_id}", up.name, lambda: up.getvalue().decode("utf-8", "replace")
    elif path:
        try:
            p = confine(path)
            stat = p.stat()
        except AnalyzerError as exc:
            st.error(md_escape(str(exc)))
            return
        except OSError:
            st.error(f"Config file not found: {md_escape(path)}")
            return
        token, source, read = (
            f"path:{p}:{stat.st_size}:{stat.st_mtime_ns}",
            str(p),
            lambda: p.read_text(encoding="utf-8", errors="replace"),
        )
    else:
        return
    if st.session_state.get("config_loaded") == token:
        if st.session_state.get("config_error"):
            st.error(st.session_state["config_error"])
        return
    st.session_state["config_loaded"] = token
    try:
        cfg = parse_config_text(read(), source=source)
    except AnalyzerError as exc:
        st.session_state["config_error"] = f"Config not loaded: {md_escape(str(exc))}"
        st.error(st.session_state["config_error"])
        return
    st.session_state["config_error"] = None
    state.set_config(cfg, path=str(source) if up is None else "")
    st.session_state.update(threshold_values(cfg))  # the widgets below show the loaded values
    st.success(f"Loaded {md_escape(Path(source).name)}")


def config_panel() -> None:
    box = st.sidebar.expander("Config", expanded=False, key="cfg_panel", on_change="rerun")
    with box:
        if not box.open:  # drawn when opened; the active config lives in the session meanwhile
            return
        load_config_file()
        cfg = state.config()
        for key, value in threshold_values(cfg).items():
            st.session_state.setdefault(key, value)
        values = {
            "cfg_recall_min": st.number_input(
                "recall must stay ≥", *FIELD_RANGES["cfg_recall_min"], step=0.01, key="cfg_recall_min"
            ),
            "cfg_z": st.number_input("z-score threshold", *FIELD_RANGES["cfg_z"], step=0.5, key="cfg_z"),
            "cfg_drop": st.number_input(
                "drop from best (relative)", *FIELD_RANGES["cfg_drop"], step=0.01, key="cfg_drop"
            ),
            "cfg_drop_only": st.checkbox("report drops only", key="cfg_drop_only"),
        }
        new = edited_config(cfg, values)
        if new != cfg:
            state.set_config(new)
        save_config_controls("side")


def sidebar() -> None:
    st.sidebar.title("Experiment analyzer")
    state.url_read()
    refused = state.take_linked_thresholds()
    if refused:
        st.sidebar.warning(
            "The link's " + ", ".join(f"`{md_escape(p)}`" for p in refused) + " could not be used: the config's "
            "value is kept."
        )
    linked = source_label(state.url_take("source"))
    if linked is not None:
        state.seed("source", linked)
    source = st.sidebar.radio("Source", list(SOURCE_LABELS.values()), key="source")
    state.url_put("source", source_param(source))
    for param in ("dir", "entity", "project", "run", "data"):  # each source writes its own again
        if (
            (param in ("dir", "data") and source != SOURCE_LABELS["local"])
            or (param in ("entity", "project") and source != SOURCE_LABELS["cloud"])
            or (param == "run" and source == SOURCE_LABELS["upload"])
        ):
            state.url_put(param, None)
    try:
        if source == "Local wandb dir":
            sel = local_source()
        elif source == "wandb cloud":
            sel = cloud_source()
        else:
            sel = upload_source()
    except AnalyzerError as exc:
        st.sidebar.error(md_escape(str(exc)))
        sel = None
    if sel is None:
        state.url_put("run", None)
    state.set_selection(sel)
    run_status(*state.load_run())
    config_panel()
    state.put_thresholds()
    message = state.notice()
    if message is not None:
        st.warning(message)


nav = st.navigation(PAGES)
sidebar()
nav.run()
state.freeze_loaded_objects()  # after the first full run: Streamlit's per-rerun gc.collect(2) skips what is loaded
