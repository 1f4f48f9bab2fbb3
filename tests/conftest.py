from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Decoded runs and image scores are cached on disk; tests (and the app servers they start) use a fresh cache so
# they never read a developer's cache nor leave files in ~/.cache.
_TEST_CACHE = None
if "EXPERIMENT_ANALYZER_CACHE" not in os.environ:
    _TEST_CACHE = os.environ["EXPERIMENT_ANALYZER_CACHE"] = tempfile.mkdtemp(prefix="experiment-analyzer-tests-")
    os.environ.setdefault("WANDB_CACHE_DIR", os.path.join(_TEST_CACHE, "wandb"))  # wandb-core's Parquet downloads


def pytest_sessionfinish(session, exitstatus):
    if _TEST_CACHE:
        import shutil

        shutil.rmtree(_TEST_CACHE, ignore_errors=True)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest leaves its generated script installed as `__main__`; later tests that start their own
    spawned processes (a Dask LocalCluster) would re-run it in every worker. Put the real one back after each test."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def _settle_background_analyses():
    """An in-process page (AppTest) may leave a delayed background analysis behind (the Overview's
    `warm_analysis(delay=FIRST_VIEW_GRACE)`); run what still waits and wait for it after the test, so it never
    runs inside a later test (which may have pointed the cache somewhere else, e.g. tests/test_cache_dir.py)."""
    import sys

    yield
    state = sys.modules.get("ui.state")
    if state is None:
        return
    _pool, started, lock = state._background()
    with lock:
        jobs = list(started.values())
    for job in jobs:
        job.go.set()
    for job in jobs:
        job.future.exception(timeout=600)  # the job swallows analysis errors itself; this only waits


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The bundled demo (ROOT/demo, git-ignored), written once with the real wandb library if missing."""
    from analysis.demo import ensure_demo

    ensure_demo(ROOT / "demo")
    return ROOT / "demo"


@pytest.fixture(scope="session")
def demo_analysis(demo_root):
    """analyze_run on the demo run with its data directory (shared, read-only)."""
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import list_runs, open_run

    refs = [r for r in list_runs(demo_root / "wandb") if r.name == "demo-ocr-run"]
    return analyze_run(open_run(refs[-1].locator), data_dir=demo_root / "data")


@pytest.fixture(scope="session")
def chromium_browser():
    """One Playwright session and Debian Chromium for every browser test (two sync sessions cannot coexist).

    Without Chromium the browser tests are skipped locally; under CI=true they fail instead.
    """
    import os

    from tests.e2e.st_helpers import CHROMIUM, CHROMIUM_ARGS, chromium_available

    if not chromium_available():
        msg = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def pytest_collection_modifyitems(config, items):
    """Every test that drives Chromium (the e2e journeys, the report pages) is a `browser` test."""
    for item in items:
        uses_browser = "chromium_browser" in getattr(item, "fixturenames", ()) or "tests/e2e/" in item.nodeid
        if uses_browser:
            item.add_marker(pytest.mark.browser)
