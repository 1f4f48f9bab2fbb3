"""`python -m ui.serve [streamlit options]`: `streamlit run app.py` with the dashboard's modules loaded ahead.

Streamlit runs app.py only when the first browser tab connects, so on a freshly started server that tab waits for
every import the pages need (pandas, plotly, pydantic, the detectors' scipy and ruptures: seconds on a small
machine). This launcher starts the server as `streamlit run app.py` does and, in a background thread, imports
those modules meanwhile, freezes them out of the garbage collector's sweeps (Streamlit runs a full collection after
every script run), then reads and analyses the run a new tab shows first (`state.warm_default_view`: the newest run
of the default wandb directory, the demo on a fresh checkout) into the pages' caches. It prints one line when done,
`dashboard modules loaded in N s, first run analysed in M s`; the server answers from the start (a tab opened
earlier waits only for what is still loading). `make run` uses it.
"""

from __future__ import annotations

import gc
import importlib
import sys
import threading
import time
from pathlib import Path

__all__ = ["DASHBOARD_MODULES", "LIBRARIES", "READY_LINE", "main", "warm_imports"]

APP = Path(__file__).resolve().parents[1] / "app.py"
READY_LINE = "dashboard modules loaded in"
# What the first view of a run imports (the Overview's curves: the run reader, the metric detectors, plotly), then
# what the other pages and the image analysis import. Third-party libraries first; the dashboard's own modules
# (whose Streamlit caches want the server's runtime) once the server has started.
LIBRARIES = (
    "pandas",
    "pydantic",
    "plotly.graph_objects",
    "plotly.io",
    "scipy.stats",
    "ruptures",
    "cv2",
)
DASHBOARD_MODULES = (
    "ui.state",
    "ui.charts",
    "ui.tables",
    "ui.navigation",
    "ui.run_inputs",
    "ui.upload",
    "ui.config_edit",
    "ui.data_dir",
    "analysis.sources",
    "analysis.core.redaction",
    "analysis.findings.pipeline",
    "analysis.findings.anomalies",
    "analysis.findings.changepoints",
    "analysis.findings.events",
    "quality.duplicates",
    "quality.audit",
    "ui.duplicates",
)


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module is the page's to report
            continue


def warm_imports(
    libraries: tuple[str, ...] = LIBRARIES, dashboard: tuple[str, ...] = DASHBOARD_MODULES, runtime_wait: float = 60.0
) -> float:
    """Import `libraries`, then (once Streamlit's runtime exists, waiting at most `runtime_wait` s) `dashboard` (a
    module that fails is skipped: the page that needs it shows the error), then move everything loaded so far out
    of the collector's sweeps. Returns the seconds it took."""
    from streamlit import runtime

    t0 = time.perf_counter()
    _import_all(libraries)
    deadline = time.monotonic() + runtime_wait
    while not runtime.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    _import_all(dashboard)
    from streamlit import env_util

    # Streamlit's first element of the process asks whether it runs in a REPL (`inspect.stack()`), which maps every
    # loaded module to its file (a realpath each: a tenth of a second or more with the libraries above): done here,
    # inspect's cache makes that first element cheap.
    env_util.is_repl()
    gc.collect()
    gc.freeze()  # module objects live as long as the server: Streamlit's gc.collect(2) per rerun skips them
    return time.perf_counter() - t0


def _warm_and_say() -> None:
    seconds = warm_imports()
    t0 = time.perf_counter()
    from ui.state import warm_default_view

    shown = warm_default_view()
    analysed = f", first run analysed in {time.perf_counter() - t0:.1f} s" if shown else ""
    print(f"{READY_LINE} {seconds:.1f} s{analysed}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Start the warm-up thread, then `streamlit run app.py <argv>` in this process."""
    from streamlit.web import cli

    threading.Thread(target=_warm_and_say, name="dashboard-warm-up", daemon=True).start()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(["run", str(APP), *args], prog_name="streamlit", standalone_mode=False)
    except SystemExit as exc:  # click exits with the server's code
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
