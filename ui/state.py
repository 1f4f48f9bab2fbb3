"""The one place pages read and write `st.session_state`, plus the cached loaders they share.

Pages stay thin: they call `current_analysis()` (cached on what the data depends on: the run file's size and
mtime, the config, the data directory) and draw. Nothing here computes analysis itself.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import sys
import tempfile
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from analysis.core.config import AnalyzerConfig
from analysis.core.errors import AnalyzerError
from analysis.sources.cache import cache_root
from ui.config_edit import URL_THRESHOLDS, config_from_params, threshold_params, threshold_values
from ui.format import md_escape

if TYPE_CHECKING:  # the analysis modules (and the detectors' scipy / ruptures) load when a run is analysed
    import pandas as pd

    from analysis.core.run import Run, RunRef
    from analysis.findings.pipeline import RunAnalysis

ROOT = Path(__file__).resolve().parents[1]  # the checkout (or site-packages, when installed from a wheel)
CACHE_DIR = cache_root()  # $EXPERIMENT_ANALYZER_CACHE, else the platform's user cache directory


def _writable(folder: Path) -> bool:
    """Whether a file can be created in `folder` (os.access says yes to root on a read-only mount)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def resolve_demo_root(root: Path, cache_dir: Path, override: str | None = None) -> Path:
    """Where the bundled demo lives: `$EXPERIMENT_ANALYZER_DEMO` when set; `<checkout>/demo` in a source checkout
    (`make run` writes it there) that holds it or can; else `<cache dir>/demo` (an installed package: app.py then
    sits in site-packages, which is no place to write, and may be read-only)."""
    if override:
        return Path(override)
    local = root / "demo"
    if (local / "wandb").is_dir() or ((root / "pyproject.toml").is_file() and _writable(root)):
        return local
    return cache_dir / "demo"


DEMO_ROOT = resolve_demo_root(ROOT, CACHE_DIR, os.environ.get("EXPERIMENT_ANALYZER_DEMO"))
UPLOAD_DIR = CACHE_DIR / "uploads"
QUALITY_CACHE_DIR = CACHE_DIR / "quality"


@dataclass(frozen=True)
class Selection:
    """What the sidebar picked: where the run is, how to fingerprint it, and the data directory."""

    location: str  # run folder, history file, or wandb://entity/project/run_id
    fingerprint: str  # changes whenever the run's data changes (size + mtime, upload hash, refresh counter)
    data_dir: str | None
    label: str


AnalysisKey = tuple[str, str, str, str | None]  # location, fingerprint, config json, data dir


def default_wandb_dir() -> str:
    """`./wandb` when it holds runs, else `$WANDB_DIR/wandb`, else the bundled demo."""
    if (Path.cwd() / "wandb").is_dir() and any((Path.cwd() / "wandb").glob("*run-*")):
        return str(Path.cwd() / "wandb")
    env = os.environ.get("WANDB_DIR")
    if env and (Path(env) / "wandb").is_dir():
        return str(Path(env) / "wandb")
    return str(DEMO_ROOT / "wandb")


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
    """Store an uploaded history file under the cache dir as `<content hash>/<its file name>` (same bytes, same
    path; the run is named after the file). `#` and path characters are replaced (`#` selects a run)."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "._-() " else "_" for c in Path(name).name).strip(" .") or "upload"
    target = UPLOAD_DIR / digest / (safe if Path(safe).suffix else f"{safe}.csv")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


@st.cache_data(show_spinner=False, ttl=30)
def cached_list_runs(wandb_dir: str, listing_key: str) -> list[RunRef]:
    from analysis.sources import list_runs

    return list_runs(wandb_dir)


@st.cache_data(show_spinner="Listing wandb cloud runs…", ttl=60)
def cached_cloud_runs(entity: str, project: str, refresh: int = 0) -> list[RunRef]:
    """Cloud listings are network calls: once a minute, or when the user presses Refresh."""
    from analysis.sources import list_cloud_runs

    return list_cloud_runs(entity, project)


def listing_key(wandb_dir: str) -> str:
    """Changes when a run folder is added or removed (the listing's cache key; states refresh every 30 s)."""
    try:
        names = sorted(p.name for p in Path(wandb_dir).iterdir())
    except OSError:
        return "missing"
    return hashlib.sha1("\n".join(names).encode()).hexdigest()


@st.cache_resource
def _last_runs() -> tuple[dict[str, Run], threading.Lock]:
    """The last Run loaded per location, so a live run grows by reading only its appended bytes."""
    return {}, threading.Lock()


@st.cache_resource(show_spinner="Reading run…", max_entries=4)
def cached_run(location: str, fingerprint: str) -> Run:
    """Loaded runs are shared read-only across reruns and sessions; the fingerprint invalidates them.

    A local run still being written (no exit record) that was loaded before is brought up to date with
    `refresh_run` (decodes only the new bytes) instead of being read again from the start.
    """
    from analysis.sources import open_run, refresh_run

    store, lock = _last_runs()
    with lock:
        prev = store.get(location)
    if prev is not None and prev.ref.source == "local" and prev.exit_code is None:
        run = refresh_run(prev)
    else:
        run = open_run(location)
    with lock:
        store[location] = run
        while len(store) > 4:
            store.pop(next(iter(store)))
    return run


@st.cache_resource(show_spinner=False, max_entries=8)  # the spinner is the caller's (none in the background)
def cached_analysis(location: str, fingerprint: str, config_json: str, data_dir: str | None) -> RunAnalysis:
    """The analysis of one run under one config; with a data directory it extends the cached metrics-only analysis
    (what the Overview draws first) with the images, so the detectors run once per run and config."""
    from analysis.findings.pipeline import with_image_quality

    if data_dir:
        return with_image_quality(cached_analysis(location, fingerprint, config_json, None), data_dir)
    return _metrics_analysis(location, fingerprint, config_json)


def _metrics_analysis(location: str, fingerprint: str, config_json: str) -> RunAnalysis:
    """The metrics' analysis, read back from the on-disk cache when an earlier server computed it (ui/analysis_cache:
    a fresh server then neither runs the detectors nor imports scipy and ruptures for the first view)."""
    from ui.analysis_cache import load_analysis, store_analysis

    run = cached_run(location, fingerprint)
    stored = load_analysis(location, fingerprint, config_json, run)
    if stored is not None:
        return stored
    from analysis.findings.pipeline import analyze_metrics

    analysis = analyze_metrics(run, AnalyzerConfig.model_validate_json(config_json))
    store_analysis(location, fingerprint, config_json, analysis)
    return analysis


_FROZEN: list[bool] = []


def freeze_loaded_objects() -> None:
    """Once per server process, after a script run has loaded the pages' modules: move every object alive now out
    of the garbage collector's sweeps (`gc.freeze`). Streamlit runs a full collection after every script run; with
    pandas, plotly and scipy loaded that walks millions of objects and holds the interpreter lock for a tenth of a
    second or more, in the middle of sending the page. Frozen objects (modules, classes, caches) live as long as the
    server anyway. `python -m ui.serve` does the same once its warm-up imports are done."""
    if not _FROZEN:
        _FROZEN.append(True)
        gc.freeze()


def set_selection(sel: Selection | None) -> None:
    st.session_state["selection"] = sel


def selection() -> Selection | None:
    return st.session_state.get("selection")


def set_config(config: AnalyzerConfig, path: str | None = None) -> None:
    """Make `config` the session's one active config: every page, figure and report reads it (the analysis cache
    is keyed on its JSON, so whatever depends on a threshold is recomputed). `path` is the file it was loaded
    from, when it was (Save to config writes there); it is kept when not given."""
    st.session_state["config_json"] = config.model_dump_json()
    if path is not None:
        st.session_state["config_file"] = path


def config_file() -> str | None:
    """The path of the config file the active config was loaded from, if it came from a path (not an upload)."""
    return st.session_state.get("config_file") or None


def config() -> AnalyzerConfig:
    raw = st.session_state.get("config_json")
    return AnalyzerConfig.model_validate_json(raw) if raw else AnalyzerConfig()


def analysis_key(images: bool = True) -> AnalysisKey | None:
    """What the current analysis depends on; cached figures and tables are keyed on it. `images=False`: the
    analysis of the metrics alone (no data directory: no image scores), what the Overview draws."""
    sel = selection()
    if sel is None:
        return None
    return (sel.location, sel.fingerprint, config().model_dump_json(), sel.data_dir if images else None)


def load_run() -> tuple[Run | None, str | None]:
    """The selected run, or (None, message) when it cannot be read. Draws nothing (the sidebar uses it)."""
    sel = selection()
    if sel is None:
        return None, None
    try:
        return cached_run(sel.location, sel.fingerprint), None
    except AnalyzerError as exc:
        return None, str(exc)


def current_analysis(images: bool = True) -> RunAnalysis | None:
    """The analysis of the selected run under the active config, or None (with a message) when unavailable.
    `images=False` (the Overview): the metrics' analysis alone, drawn first, while the image scores are computed
    in the background (`warm_analysis`) for the pages that show them."""
    key = analysis_key(images)
    if key is None:
        st.info("Pick a run in the sidebar.")
        return None
    try:
        with st.spinner("Analysing run…"):  # shown after half a second, so not on a cached analysis
            return cached_analysis(*key)
    except AnalyzerError as exc:
        st.error(md_escape(str(exc)))  # messages quote untrusted paths and names
        return None


@dataclass
class _Warming:
    """A background analysis: its future, and the event that starts it before its delay is over."""

    future: Future[None]
    go: threading.Event


@st.cache_resource
def _background() -> tuple[ThreadPoolExecutor, dict[AnalysisKey, _Warming], threading.Lock]:
    """One worker thread for analyses started ahead of need (one at a time: the machine draws pages meanwhile)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="analysis-warm"), {}, threading.Lock()


def _analyse_quietly(key: AnalysisKey, go: threading.Event | None = None, delay: float = 0.0) -> None:
    """The background job: after `delay` seconds (or as soon as `go` is set), the full analysis, then the display
    copies of the images the Batches page shows first (its gallery and duplicate groups), so picking a batch
    encodes no thumbnail. At a lower CPU priority (Linux): on a small machine it runs while the browser draws the
    page that started it."""
    if go is not None and delay > 0:
        go.wait(delay)
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only
    try:
        analysis = cached_analysis(*key)
    except AnalyzerError:  # the page that needs it shows the error
        return
    if analysis.data_dir is not None:
        warm_thumbnails(analysis)


THUMBNAILS_WARMED = 200  # at most this many display copies encoded ahead per analysis (the cache keeps 512)


def warm_thumbnails(analysis: RunAnalysis, limit: int = THUMBNAILS_WARMED) -> int:
    """Encode the display copies of the run's logged images (gallery size) and of its duplicate groups (their
    thumbnail size) into the `thumbnail` cache; unreadable files are skipped (the page shows why). Returns how many
    were encoded or found cached."""
    from ui.duplicates import THUMB_SIDE, THUMBS_PER_GROUP

    data_dir = str(analysis.data_dir)
    wanted = [(p, GALLERY_SIDE) for p in dict.fromkeys(analysis.images["path"].astype(str))]
    if analysis.duplicates is not None:
        wanted += [(p, THUMB_SIDE) for g in analysis.duplicates.groups for p in g.paths[:THUMBS_PER_GROUP]]
    done = 0
    for path, side in wanted[:limit]:
        with contextlib.suppress(AnalyzerError):
            thumbnail(data_dir, path, max_side=side)
            done += 1
    return done


# How long the Overview's background image analysis waits before it starts. When the script run ends, the browser
# still has a second or more of drawing ahead (plotly.js is most of it); the image scoring (worker processes, file
# reads) would take that CPU from it on a small machine. A lower priority does not prevent that when the browser and
# the server run in different scheduling groups (Linux autogroups: a desktop session and a terminal), where nice only
# ranks the server's own threads. A page that shows images starts it at once (`warm_analysis()` without delay).
FIRST_VIEW_GRACE = 3.0


def warm_analysis(delay: float = 0.0) -> None:
    """Start the full analysis (image scores included) of the current selection in a background thread, so the
    Batches, Data quality and Reports pages find it ready while the Overview's script run ends at once (the curves
    are drawn from the metrics' analysis). `delay`: seconds to wait first (the Overview: `FIRST_VIEW_GRACE`, so the
    browser draws the first view undisturbed); a later call without delay starts a waiting job at once. A page
    that needs it before it is done waits for the same computation (the cache computes one key once); a no-op when
    it is cached or under way."""
    key = analysis_key()
    if key is None or key[3] is None:
        return
    pool, started, lock = _background()
    with lock:
        if key in started:
            if delay <= 0:
                started[key].go.set()
            return
        while len(started) >= 8:  # as many as cached_analysis keeps
            started.pop(next(iter(started))).go.set()  # a forgotten job that still waits runs now, not later
        go = threading.Event()
        if delay <= 0:
            go.set()
        started[key] = _Warming(pool.submit(_analyse_quietly, key, go, delay), go)


def warm_default_view() -> str | None:
    """Outside any session (the launcher, `ui/serve.py`, at server start): read and analyse the run a new tab shows
    first (the newest run of `default_wandb_dir()`, the active config's defaults, no data directory: what the
    Overview draws) and build its first chart, into the same caches the pages use. Returns its location, or None
    when there is none."""
    from analysis.core.paths import confine

    try:
        folder = confine(default_wandb_dir())
        if not folder.is_dir():
            return None
        runs = cached_list_runs(str(folder), listing_key(str(folder)))
        if not runs:
            return None
        ref = runs[0]  # what the run picker selects first (newest first)
        key: AnalysisKey = (ref.locator, file_fingerprint(ref.locator), AnalyzerConfig().model_dump_json(), None)
        analysis = cached_analysis(*key)
        from ui.charts import warm_first_view  # ui.charts imports this module

        warm_first_view(key, analysis)
    except AnalyzerError:
        return None  # the sidebar says why when a tab opens
    return ref.locator


def analysis_ready(images: bool = True, wait: float = 0.0) -> bool:
    """Whether the analysis of the current selection is computed (drawing it will not wait), after waiting up to
    `wait` seconds for the background one (a page that would be ready in a moment is drawn once, whole)."""
    key = analysis_key(images)
    if key is None or not images or key[3] is None:
        return True
    _pool, started, lock = _background()
    with lock:
        job = started.get(key)
    if job is None:
        return True
    future = job.future
    with contextlib.suppress(FutureTimeout):
        future.result(timeout=wait)
    return future.done()


def focus_batch(batch: int | None = None) -> int | None:
    """Get (or, with an argument, set) the batch the user drilled into; shared by Overview and Batches."""
    if batch is not None:
        st.session_state["focus_batch"] = int(batch)
    return st.session_state.get("focus_batch")


@st.cache_data(show_spinner="Rendering reports…", max_entries=8)
def cached_reports(location: str, fingerprint: str, config_json: str, data_dir: str | None) -> dict[str, str]:
    """Markdown, JSON and HTML texts of the current run's report (rendered once per run + config)."""
    from analysis.reporting.report import Report

    report = Report.from_analysis(cached_analysis(location, fingerprint, config_json, data_dir))
    report.run["locator"] = shown_locator(str(report.run.get("locator") or ""))
    return {"markdown": report.to_markdown(), "json": report.to_json(), "html": report.to_html()}


def shown_locator(locator: str) -> str:
    """A run's locator as a downloaded report shows it: an uploaded file by its own name (`uploaded log.csv`), not
    by the server's cache path it was saved under (a report shared with others named the server's home folder)."""
    try:
        path = Path(locator.split("#", 1)[0]).resolve()
        if path.is_relative_to(UPLOAD_DIR.resolve()):
            return f"uploaded {path.name}" + (f"#{locator.split('#', 1)[1]}" if "#" in locator else "")
    except (OSError, ValueError):
        pass
    return locator


def current_reports() -> dict[str, str] | None:
    key = analysis_key()
    if key is None:
        return None
    try:
        return cached_reports(*key)
    except AnalyzerError as exc:
        st.error(md_escape(str(exc)))  # messages quote untrusted paths and names
        return None


def audit_scores(data_dir: str) -> tuple[pd.DataFrame, str] | None:
    """(scores, audit token) of `data_dir` audited in this session, if any; the token keys derived caches."""
    cached = st.session_state.get("dq_scores")
    return (cached[1], cached[2]) if cached is not None and cached[0] == data_dir else None


def set_audit_scores(data_dir: str, scores: pd.DataFrame) -> str:
    token = uuid.uuid4().hex
    st.session_state["dq_scores"] = (data_dir, scores, token)
    return token


def reset_per_run(widget_key: str, default: object, run_location: str | None = None) -> None:
    """Give a keyed widget `default` whenever the selected run changes (a batch picked on one run means
    nothing on another; a data directory of one run is not another's). Within one run the user's choice is
    kept, also across page switches (Streamlit drops the state of widgets not drawn in a run, so the last value
    is kept aside here). `run_location` names the run when the selection is not made yet (the sidebar)."""
    sel = selection()
    scope = run_location if run_location is not None else (sel.location if sel else None)
    marker, shadow = f"_run_of_{widget_key}", f"_last_{widget_key}"
    if st.session_state.get(marker) != scope:
        st.session_state[widget_key] = default
        st.session_state[marker] = scope
    elif widget_key in st.session_state:
        st.session_state[shadow] = st.session_state[widget_key]
    else:
        st.session_state[widget_key] = st.session_state.get(shadow, default)


# ------------------------------------------------------------------------------------------------ state in the URL
URL_KEYS = ("source", "dir", "entity", "project", "run", "data", "metric", "batch", "step", *URL_THRESHOLDS)


def url_read() -> None:
    """At the start of every script run: the URL parameters this session did not write itself (a reload, a shared
    link, a hand-edited or back-button URL) become pending, for the widgets to take (`url_take`) before they are
    drawn. A page switch through the navigation clears the URL (Streamlit 1.67 keeps no parameter across a page
    switch); the pages write theirs again (`url_put`), so a reload always finds the current view."""
    written: dict[str, str] = st.session_state.setdefault("_url_written", {})
    st.session_state["_url_pending"] = {
        k: st.query_params[k] for k in URL_KEYS if k in st.query_params and written.get(k) != st.query_params[k]
    }


def url_take(name: str) -> str | None:
    """The pending URL value of `name` (then no longer pending), or None."""
    pending: dict[str, str] = st.session_state.get("_url_pending", {})
    value = pending.pop(name, None)
    if value is not None:
        st.session_state.setdefault("_url_written", {})[name] = value
    return value


def url_put(name: str, value: object | None) -> None:
    """Show `value` as the URL parameter `name` (None removes it); the browser URL changes without a rerun."""
    written: dict[str, str] = st.session_state.setdefault("_url_written", {})
    if value is None or value == "":
        written.pop(name, None)
        if name in st.query_params:
            del st.query_params[name]
        return
    text = str(value)
    written[name] = text
    if st.query_params.get(name) != text:
        st.query_params[name] = text


def take_linked_thresholds() -> list[str]:
    """Make the thresholds a reloaded or shared URL carries (`blur=365&recall_min=0.85`, see
    config_edit.URL_THRESHOLDS) the session's active config; the names of the parameters that were not usable."""
    linked = {param: value for param in URL_THRESHOLDS if (value := url_take(param)) is not None}
    if not linked:
        return []
    active = config()
    edited, bad = config_from_params(active, linked)
    if edited != active:
        set_config(edited)
        st.session_state.update(threshold_values(edited))  # the sidebar's fields show them (Data quality syncs itself)
    return bad


def put_thresholds() -> None:
    """Show the active config's thresholds that differ from the defaults in the URL (the others are left out)."""
    for param, value in threshold_params(config()).items():
        url_put(param, value)


def set_notice(message: str | None, while_key: str | None = None) -> None:
    """A warning shown above every page (e.g. "the linked run is not there") while the widget `while_key` keeps
    the value it has now (the user picking something else dismisses it)."""
    if message is None:
        st.session_state.pop("_notice", None)
        return
    st.session_state["_notice"] = (message, while_key, st.session_state.get(while_key) if while_key else None)


def notice() -> str | None:
    held = st.session_state.get("_notice")
    if held is None:
        return None
    message, while_key, value = held
    if while_key is not None and st.session_state.get(while_key) != value:
        st.session_state.pop("_notice", None)
        return None
    return str(message)


def seed(widget_key: str, value: object) -> None:
    """Give the keyed widget `value` (call before the widget is drawn in this script run)."""
    st.session_state[widget_key] = value


def focus_step(step: int | None = None, *, clear: bool = False) -> int | None:
    """Get (or set) the step the user asked to see on Batches (a finding's or event's step)."""
    if clear:
        st.session_state.pop("focus_step", None)
    elif step is not None:
        st.session_state["focus_step"] = int(step)
    return st.session_state.get("focus_step")


def focus_metric(metric: str | None = None) -> str | None:
    """Get (or set) the metric shown on Overview and Batches (one choice for both pages)."""
    if metric is not None:
        st.session_state["focus_metric"] = metric
    return st.session_state.get("focus_metric")


GALLERY_SIDE = 320  # the longer side of a gallery image's display copy


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(data_dir: str, path: str, max_side: int = GALLERY_SIDE) -> bytes:
    """A display copy (RGB, longer side at most `max_side`, never enlarged) of one image as PNG bytes, loaded only
    from under the data root; an unreadable or outside path raises the AnalyzerError the caller shows. Encoded
    once: `st.image` takes the bytes as they are, so a rerun (another batch, another step) re-encodes nothing."""
    import io

    from PIL import Image

    from quality.io import load_image, resolve_under_root
    from quality.pixels import display_rgb

    out = io.BytesIO()
    Image.fromarray(display_rgb(load_image(resolve_under_root(data_dir, path)), max_side)).save(
        out, format="PNG", compress_level=1
    )
    return out.getvalue()
