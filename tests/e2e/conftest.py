from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.st_helpers import (
    CHROMIUM,
    chromium_available,
    collect_errors,
    free_port,
    run_tracker,
    start_streamlit,
    stop,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"


def pytest_collection_modifyitems(config, items):
    if chromium_available():
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(f"CI=true but no Chromium at {CHROMIUM}: install it (apt-get install chromium)")
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium); CI fails instead")
    for item in items:
        if "e2e" in item.nodeid:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server_url(demo_root, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "EXPERIMENT_ANALYZER_DEMO": str(demo_root)}
    proc = start_streamlit(ROOT / "app.py", port, log, env=env)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


@pytest.fixture
def app_page(chromium_browser, server_url, request):
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    ctx = chromium_browser.new_context(
        base_url=server_url, accept_downloads=True, viewport={"width": 1400, "height": 1000}
    )
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    collect_errors(page)
    run_tracker(page)
    yield page
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:  # keep what the browser showed, for the CI artifacts
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
    ctx.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
