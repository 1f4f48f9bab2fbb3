"""Untrusted text never makes the user's browser fetch anything (issue 17 item 4), proven in real Chromium.

A request logger (a real HTTP server on 127.0.0.1) counts every request. A run written by the real wandb library
carries `![x](http://127.0.0.1:PORT/…)` and `<img src=…>` / `<a href=…>` in its run name, metric keys and logged
image paths; a YAML config has such an unknown key. The real app shows them on Overview, Batches, Compare and in
the sidebar's config error, and the HTML report is opened from file://. The text appears literally and the
logger sees zero requests.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.st_helpers import (
    act_and_wait_run,
    collect_errors,
    free_port,
    run_tracker,
    start_streamlit,
    stop,
    wait_idle,
    wait_run_finished,
)
from tests.wandb_writer import write_run

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
BATCH_PATTERN = r"^batch_(?P<batch>\d+)/(?P<metric>.+)$"  # metric names may hold `/` (URLs do)


class RequestLogger:
    """A real HTTP server on 127.0.0.1 that records the path of every request it gets."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        logger = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                logger.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            do_POST = do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def logger() -> Iterator[RequestLogger]:
    log = RequestLogger()
    yield log
    log.close()


def hostile(port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}"
    return {
        "run": f'<a href="{url}/run">run</a> ![n]({url}/name.png)',
        "md_metric": f"![m]({url}/metric.png)",
        "html_metric": f"<img src={url}/metric-img.png>",
        "val_metric": f'val/<a href="{url}/val">v</a><img src={url}/val.png>',
        "path": f"../![x]({url}/path.png)",
        "yaml_key": f"![k]({url}/key.png)",
    }


def rows(names: dict[str, str], degrade: bool, n_steps: int = 24) -> list[dict]:
    """Three batches logging recall and two hostile per-batch metrics, plus a hostile run-level metric; with
    `degrade`, batch 1 collapses half way and logs its problematic images (one with a hostile path)."""
    out: list[dict] = []
    for step in range(1, n_steps + 1):
        row: dict = {"global_step": step * 10, names["val_metric"]: 0.8 + 0.002 * step, "val/clean": 0.7}
        for b in range(3):
            bad = degrade and b == 1 and step > n_steps // 2
            row[f"batch_{b}/recall"] = 0.5 if bad else 0.9 + 0.002 * (step % 3)
            row[f"batch_{b}/{names['md_metric']}"] = 0.3 if bad else 0.8 + 0.001 * (step % 2)
            row[f"batch_{b}/{names['html_metric']}"] = 0.4 if bad else 0.7 + 0.001 * (step % 2)
        out.append(row)
        if degrade and step > n_steps // 2:
            out.append({"problematic_batch_1": [names["path"], "ok.png"]})
    return out


hostile_names: dict[str, str] = {}  # filled by the `project` fixture (the logger's port is in every name)


@pytest.fixture(scope="module")
def project(tmp_path_factory, logger) -> Path:
    """<tmp>/wandb with a clean baseline and the hostile run (newest, so the sidebar opens it), <tmp>/data with one
    real image, and two configs: one with an unknown hostile key, one that reads hostile per-batch metric names."""
    hostile_names.update(hostile(logger.port))
    base = tmp_path_factory.mktemp("escaping")
    write_run(base, "baseline", rows(hostile_names, degrade=False), project="esc")
    write_run(base, hostile_names["run"], rows(hostile_names, degrade=True), project="esc")
    (base / "data").mkdir()
    cv2.imwrite(str(base / "data" / "ok.png"), (np.arange(80 * 200 * 3) % 251).reshape(80, 200, 3).astype("uint8"))
    (base / "bad.yaml").write_text(f'data_quality:\n  "{hostile_names["yaml_key"]}": 1\n')
    (base / "good.yaml").write_text(f"training_config:\n  batch_key_pattern: '{BATCH_PATTERN}'\n")
    return base


@pytest.fixture(scope="module")
def app_url(project, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "WANDB_DIR": str(project)}  # the sidebar's default wandb dir: <project>/wandb
    env.pop("EXPERIMENT_ANALYZER_DATA_ROOTS", None)
    proc = start_streamlit(ROOT / "app.py", port, tmp_path_factory.mktemp("srv") / "server.log", env=env)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def nav(page: Page, name: str) -> None:
    act_and_wait_run(page, lambda: page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click())
    wait_idle(page)


def no_live_markup(page: Page, port: int) -> None:
    """No element of the page was made from the text: no image or frame loads from the logger, and no link hides
    its target (GitHub-flavoured Markdown shows a bare URL as a link whose text is that URL: that one is fine, it
    is what the user reads; `<a href=URL>run</a>` rendered as a link named "run" is not)."""
    loads = page.locator(f'img[src*=":{port}"], iframe[src*=":{port}"], [style*=":{port}"], image[href*=":{port}"]')
    assert loads.count() == 0, [loads.nth(i).evaluate("e => e.outerHTML") for i in range(loads.count())]
    disguised = page.locator(f'a[href*=":{port}"]').evaluate_all(
        "links => links.filter(a => !decodeURI(a.getAttribute('href')).startsWith(a.textContent.trim())"
        " || a.textContent.includes('\\\\')).map(a => a.outerHTML)"
    )
    assert disguised == [], disguised


def test_untrusted_text_fetches_nothing(chromium_browser, app_url, project, logger, tmp_path):
    names, port = hostile_names, logger.port
    ctx = chromium_browser.new_context(base_url=app_url, viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(90_000)
    expect.set_options(timeout=90_000)
    page = ctx.new_page()
    errors = collect_errors(page)
    tracker = run_tracker(page)
    try:
        page.goto("/")
        wait_run_finished(page, 0, timeout=120_000)
        # the Overview reruns once after its first run (curves first, then the full analysis): read the sidebar
        # only when that is over, or the field may be read mid-redraw and "changed" to the value it already has
        expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=120_000)
        wait_idle(page, 120_000)
        sidebar = page.get_by_test_id("stSidebar")
        wandb_dir = sidebar.get_by_role("textbox", name="wandb directory")
        if wandb_dir.input_value() != str(project / "wandb"):  # a ./wandb of the checkout would come first
            wandb_dir.fill(str(project / "wandb"))
            act_and_wait_run(page, lambda: wandb_dir.press("Enter"))
        # the sidebar's config error names the unknown key literally
        act_and_wait_run(page, lambda: sidebar.get_by_text("Config", exact=True).click())
        box = sidebar.get_by_placeholder("config.yaml")
        box.fill(str(project / "bad.yaml"))
        act_and_wait_run(page, lambda: box.press("Enter"))
        expect(sidebar.get_by_test_id("stAlert").filter(has_text=names["yaml_key"])).to_be_visible()
        no_live_markup(page, port)
        box.fill(str(project / "good.yaml"))  # per-batch metric names may now hold URLs
        act_and_wait_run(page, lambda: box.press("Enter"))
        expect(sidebar.get_by_text("Loaded good.yaml")).to_be_visible()

        # Overview: the run name as text; the run-level metric's legend and title as text, not a link
        expect(page.get_by_test_id("stHeading").filter(has_text="Overview")).to_be_visible()
        heading = page.get_by_role("heading", level=3).first
        expect(heading).to_be_visible()
        assert names["run"] in heading.inner_text(), heading.inner_text()
        act_and_wait_run(page, lambda: page.get_by_role("tab", name="Run-level metrics").click())
        wait_idle(page)
        legend = page.locator(".legendtext", has_text=names["val_metric"])
        expect(legend.first).to_be_visible()
        no_live_markup(page, port)

        # Batches: the hostile image path in the error and the caption, literally
        nav(page, "Batches")
        batch = page.get_by_role("combobox", name="Batch", exact=True)
        if batch.input_value() != "batch 1 (critical)" and "batch 1" not in batch.input_value():
            page.get_by_test_id("stSelectbox").filter(has_text="Batch").first.click()
            act_and_wait_run(page, lambda: page.get_by_role("option", name=re.compile(r"^batch 1 \(")).click())
            wait_idle(page)
        expect(page.get_by_test_id("stAlert").filter(has_text=names["path"]).first).to_be_visible()
        no_live_markup(page, port)

        # Compare: the per-batch metric names as tab labels, as text
        nav(page, "Compare")
        page.get_by_test_id("stSelectbox").filter(has_text="Baseline").click()
        act_and_wait_run(page, lambda: page.get_by_role("option", name=re.compile(r"^baseline")).click())
        wait_idle(page)
        tabs = page.get_by_role("tab")
        expect(tabs.filter(has_text=names["md_metric"]).first).to_be_visible()
        expect(tabs.filter(has_text=names["html_metric"]).first).to_be_visible()
        no_live_markup(page, port)
        assert page.get_by_test_id("stException").count() == 0
        assert tracker.finished > 5
        page.wait_for_timeout(1000)  # a fetch started by a late render would have arrived by now
        assert logger.paths == [], logger.paths
        assert not [e for e in errors if f":{port}" in e], errors
    finally:
        ctx.close()


def test_html_report_from_file_fetches_nothing(chromium_browser, project, logger, tmp_path):
    from analysis.core.config import load_config
    from analysis.findings.pipeline import analyze_run
    from analysis.reporting.report import Report
    from analysis.sources import list_runs, open_run

    names, port = hostile_names, logger.port
    ref = next(r for r in list_runs(project / "wandb") if r.name == names["run"])
    analysis = analyze_run(open_run(ref.locator), load_config(project / "good.yaml"), data_dir=project / "data")
    path = tmp_path / "report.html"
    path.write_text(Report.from_analysis(analysis).to_html(), encoding="utf-8")
    before = list(logger.paths)
    ctx = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    try:
        page.goto(path.as_uri())
        expect(page.locator("#run-name")).to_contain_text(names["run"])
        expect(page.locator(".gtitle").first).to_be_visible(timeout=60_000)  # the charts were drawn
        expect(page.locator(".legendtext", has_text=names["val_metric"]).first).to_be_attached()
        expect(page.locator("td", has_text=names["md_metric"]).first).to_be_attached()  # events / findings
        no_live_markup(page, port)
        page.wait_for_timeout(1000)
        assert logger.paths == before, logger.paths
    finally:
        ctx.close()
