"""The run-level metrics figure drawn by plotly.js in Debian Chromium: its legend stays clear of the step axis's title,
whatever the number of panels.

Under one short panel (an RLlib `progress.csv` uploaded, batch 11) the legend, placed in plot units below the plot,
sat on top of the axis title "training_iteration"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.findings.pipeline import analyze_run
from analysis.reporting.figures import global_metrics_figure
from analysis.sources import open_table


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    rng = np.random.default_rng(2)
    it = np.arange(1, 201)
    frame = pd.DataFrame(
        {
            "training_iteration": it,
            **{f"metric_{k}": np.cumsum(rng.normal(0, 1, it.size)) for k in range(5)},
        }
    )
    path = tmp_path_factory.mktemp("layout") / "progress.csv"
    frame.to_csv(path, index=False)
    return analyze_run(open_table(str(path)))


@pytest.mark.parametrize("panels", [1, 5])
def test_the_legend_stays_under_the_step_axis_title(chromium_browser, analysis, tmp_path, panels):
    fig = global_metrics_figure(analysis, [f"metric_{k}" for k in range(panels)])
    html = tmp_path / "figure.html"
    fig.write_html(html, include_plotlyjs=True, full_html=True)
    for width in (700, 1000):
        ctx = chromium_browser.new_context(viewport={"width": width, "height": 1200})
        try:
            page = ctx.new_page()
            page.goto(html.as_uri())
            page.wait_for_selector(".legend")
            title = page.locator("svg text", has_text="training_iteration").last.bounding_box()
            legend = page.locator(".legend").bounding_box()
            svg = page.locator(".main-svg").first.bounding_box()
            assert title and legend and svg
            assert title["y"] + title["height"] <= legend["y"] + 1, (width, title, legend)
            assert legend["y"] + legend["height"] <= svg["y"] + svg["height"] + 1, (width, legend, svg)
        finally:
            ctx.close()
