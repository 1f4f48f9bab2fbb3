"""The HTML report opened from disk in Debian Chromium (Playwright), with the network blocked.

Charts draw (plotly.js unpacked from the inlined gzip), thumbnails decode, no console errors, and no dialog fires
for the injected `<script>alert(1)</script>` run name, HTML metric key or file name.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from analysis.reporting.report import Report, write_reports
from tests.report_runs import XSS_METRIC, XSS_NAME, XSS_PATH, demo_analysis, hostile_analysis


@pytest.fixture(scope="module")
def browser(chromium_browser):
    """The session's shared Chromium (tests/conftest.py): one Playwright session per pytest process."""
    return chromium_browser


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    demo = Report.from_analysis(demo_analysis(tmp_path_factory.mktemp("demo")))
    hostile = Report.from_analysis(hostile_analysis(tmp_path_factory.mktemp("hostile"), with_images=True))
    return {
        "demo": (demo, write_reports(demo, out / "demo", ["html"])["html"]),
        "hostile": (hostile, write_reports(hostile, out / "hostile", ["html"])["html"]),
    }


@contextmanager
def _open(browser, path):
    """Open a report with every non-file request aborted and errors, dialogs and requests recorded; yields
    (page, seen) and closes the browser context afterwards."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    seen: dict[str, list[str]] = {"errors": [], "dialogs": [], "remote": []}

    def on_console(m):
        if m.type == "error":
            seen["errors"].append(m.text)

    def on_dialog(d):
        seen["dialogs"].append(d.message)
        d.dismiss()

    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", on_console)
    page.on("dialog", on_dialog)

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            seen["remote"].append(r.request.url)
            r.abort()

    try:
        page.route("**/*", route)
        page.goto(path.as_uri())
        page.wait_for_function("document.body.dataset.chartsDrawn !== undefined", timeout=60_000)
        yield page, seen
    finally:
        ctx.close()


@pytest.mark.parametrize("name", ["demo", "hostile"])
def test_charts_draw_offline_without_errors(browser, reports, name):
    report, path = reports[name]
    with _open(browser, path) as (page, seen):
        assert page.evaluate("document.body.dataset.chartsDrawn") == str(len(report.charts))
        for chart in report.charts:
            div = page.locator(f"#{chart['id']}")
            assert div.get_attribute("data-drawn") == "true"
            assert div.locator(".main-svg").first.is_visible()
        assert page.locator("#chart-curves .scatterlayer .trace, #chart-curves canvas").count() > 0
        assert page.locator("#chart-heatmap .heatmaplayer, #chart-heatmap canvas").count() > 0
        assert seen == {"errors": [], "dialogs": [], "remote": []}


def test_thumbnails_and_histograms_render(browser, reports):
    report, path = reports["demo"]
    with _open(browser, path) as (page, seen):
        imgs = page.locator("#thumbnails img")
        assert imgs.count() == len(report.thumbnails) > 0
        imgs.last.scroll_into_view_if_needed()
        page.wait_for_function("[...document.querySelectorAll('#thumbnails img')].every(i => i.complete)")
        widths = page.eval_on_selector_all("#thumbnails img", "els => els.map(e => e.naturalWidth)")
        assert all(0 < w <= 160 for w in widths)
        hist = page.locator("#chart-hist-blur_score .main-svg").first
        assert hist.is_visible()
        assert page.locator("#chart-hist-blur_score .bars path, #chart-hist-blur_score .point path").count() > 0
        assert seen["errors"] == [] and seen["dialogs"] == []


def test_injected_markup_renders_as_text_and_never_runs(browser, reports):
    _, path = reports["hostile"]
    with _open(browser, path) as (page, seen):
        assert page.title() == f"Experiment report: {XSS_NAME}"
        assert page.locator("#run-name").inner_text() == f"Experiment report: {XSS_NAME}"
        assert XSS_METRIC in page.locator("#findings").inner_text()
        assert XSS_PATH in page.locator("#thumbnails").inner_text()
        assert page.locator("#thumbnails img").first.get_attribute("alt") == XSS_PATH
        assert page.locator("img[src=x]").count() == 0 and page.locator("#findings b").count() == 0
        page.wait_for_timeout(300)  # give any injected handler a chance to fire
        assert seen["dialogs"] == [] and seen["errors"] == []
        # the only executing script is the report's own loader
        assert page.evaluate("[...document.scripts].filter(s => !s.type && !s.src).length") == 1
