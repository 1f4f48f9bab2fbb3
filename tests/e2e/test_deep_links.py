"""Deep links on a freshly started server, in real Chromium: every page URL opened as the server's first session
shows the sidebar (run controls) and the navigation and the page asked for; so does a tab that stays open while
the server restarts (it reconnects with its page) and a reload after a restart.

Why a fresh server per URL: with a `pages/` folder beside app.py, Streamlit routes the first script run of a process
the legacy way (see ui/routing.py); only a new process shows whether a deep link survives it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.st_helpers import (
    collect_errors,
    free_port,
    run_tracker,
    start_streamlit,
    stop,
    wait_run_finished,
)

ROOT = Path(__file__).resolve().parents[2]
NAV_LINKS = [
    "Overview",
    "Batches",
    "Data quality",
    "Reports",
    "Monitor settings",
    "Compare",
    "Runs",
]  # /compare, /runs: test_compare_journey
# URL path -> the page title it must show
DEEP_LINKS = {
    "/": "Overview",
    "/batches": "Batches",
    "/data-quality": "Data quality",
    "/reports": "Reports",
    "/monitor": "Monitor settings",
}

# The open tab still shows the previous process' images for a moment: their /media/ URLs died with that process.
STALE_MEDIA = (
    "Image source error - http://127.0.0.1:",
    # while the server is down the tab's health checks get no answer (what the test does on purpose)
    "Client Error in reaching server endpoint",
    "server is not responding",
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@contextmanager
def fresh_server(demo_root: Path, log_dir: Path, port: int | None = None) -> Iterator[str]:
    """A new `streamlit run app.py` process (nothing has run in it yet); yields its base URL."""
    port = port or free_port()
    env = {**os.environ, "EXPERIMENT_ANALYZER_DEMO": str(demo_root)}
    proc = start_streamlit(ROOT / "app.py", port, log_dir / f"server-{port}-{os.urandom(3).hex()}.log", env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@contextmanager
def new_tab(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(90_000)
    page = ctx.new_page()
    collect_errors(page)
    run_tracker(page)
    try:
        yield page
    finally:
        ctx.close()


def wait_first_run(page: Page, runs_before: int = 0) -> None:
    """Until a script run finished after `runs_before` (the page's first one by default) and the app is idle."""
    wait_run_finished(page, runs_before, timeout=120_000)


def settled(page: Page) -> None:
    """Until the Batches page is drawn with its image analysis (it draws the metrics first while the images are
    scored in the background, then reruns) and nothing is loading: a server stopped earlier would cut a page
    in the middle of loading its scripts."""
    expect(page.get_by_text("Scoring this run's images")).to_have_count(0, timeout=120_000)
    wait_run_finished(page, 0, timeout=120_000)
    page.wait_for_load_state("networkidle")


def assert_full_app(page: Page, title: str, path: str, ignored_errors: tuple[str, ...] = ()) -> None:
    """The sidebar's run controls, the navigation and the page's title; no 'Page not found', no exception, no
    browser error (but those containing one of `ignored_errors`)."""
    expect(page.get_by_test_id("stHeading").filter(has_text=title).first).to_be_visible(timeout=90_000)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("textbox", name="wandb directory")).to_be_visible()
    nav = page.get_by_test_id("stSidebarNav")
    for name in NAV_LINKS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert nav.get_by_role("link").count() == len(NAV_LINKS), nav.inner_text()  # no legacy `pages/` entries
    assert run_tracker(page).pages_not_found == [], run_tracker(page).pages_not_found
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert urlparse(page.url).path.rstrip("/").endswith(path.rstrip("/")), page.url  # the view's state follows `?`
    errors = [e for e in collect_errors(page) if not any(part in e for part in ignored_errors)]
    assert errors == [], errors


@pytest.mark.parametrize("path", list(DEEP_LINKS))
def test_deep_link_on_a_fresh_server(chromium_browser, demo_root, tmp_path, artifacts_dir, path):
    with fresh_server(demo_root, tmp_path) as url, new_tab(chromium_browser) as page:
        page.goto(url + path)  # the first session of the server process
        wait_first_run(page)
        assert_full_app(page, DEEP_LINKS[path], path)
        name = path.strip("/") or "overview"
        page.screenshot(path=str(artifacts_dir / f"deep_link_{name}.png"))


def test_open_tab_survives_a_server_restart(chromium_browser, demo_root, tmp_path):
    """A tab left on /batches while the server restarts reconnects; its next rerun (the new process' first script
    run, sent with the tab's page hash) draws the same page with sidebar and navigation. A reload after a second
    restart (the tab's first request to that process) does too."""
    port = free_port()
    with new_tab(chromium_browser) as page:
        with fresh_server(demo_root, tmp_path, port) as url:
            page.goto(url + "/batches")
            wait_first_run(page)
            assert_full_app(page, "Batches", "/batches")
            settled(page)
        expect(page.get_by_test_id("stApp")).not_to_have_attribute(
            "data-test-connection-state", "CONNECTED", timeout=30_000
        )
        runs = run_tracker(page).finished
        with fresh_server(demo_root, tmp_path, port):
            expect(page.get_by_test_id("stApp")).to_have_attribute(
                "data-test-connection-state", "CONNECTED", timeout=60_000
            )
            page.get_by_test_id("stHeading").filter(has_text="Batches").first.click()
            page.keyboard.press("r")  # Streamlit's rerun key: what any widget change would send, with the page hash
            wait_first_run(page, runs)
            assert_full_app(page, "Batches", "/batches", STALE_MEDIA)
            settled(page)
        runs = run_tracker(page).finished
        with fresh_server(demo_root, tmp_path, port):
            page.reload()
            wait_first_run(page, runs)
            assert_full_app(page, "Batches", "/batches", STALE_MEDIA)
