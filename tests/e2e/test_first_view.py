"""The first view in real Chromium (issue 15): the Overview's curves are a Vega-Lite chart, and plotly.js (the
4.7 MB chunk the other pages' charts need) is requested only after the first view had its time to draw."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.e2e.st_helpers import wait_idle
from ui.assets import PLOTLY_PRELOAD_DELAY_S


def test_the_first_view_draws_its_curves_without_plotly_and_loads_plotly_later(app_page):
    page = app_page
    asked: list[float] = []
    t0 = time.monotonic()
    page.on("request", lambda r: asked.append(time.monotonic() - t0) if "/PlotlyChart." in r.url else None)
    page.goto("/")
    chart = page.get_by_test_id("stVegaLiteChart").first
    expect(chart.locator("canvas, svg").first).to_be_visible()
    assert page.get_by_test_id("stPlotlyChart").count() == 0
    wait_idle(page)
    deadline = time.monotonic() + PLOTLY_PRELOAD_DELAY_S + 15
    while not asked and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert asked, "the plotly chunk was never loaded ahead of the other pages"
    assert asked[0] >= PLOTLY_PRELOAD_DELAY_S - 0.2, asked  # not before the first view had its time
    # a later page's plotly chart draws from the chunk already loaded
    page.get_by_role("tab", name="Batch × step heatmap").click()
    expect(page.get_by_test_id("stPlotlyChart").locator(".main-svg").first).to_be_visible()
    assert len(asked) == 1, asked
