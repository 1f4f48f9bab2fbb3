"""The page head the app sends first: a constant style sheet, and a late start on the plotly.js chunk.

Streamlit's browser code loads its plotly.js chunk (about 4.7 MB of JavaScript) only when the first plotly chart
arrives. The Overview, the page a new tab opens, draws its curves with Vega-Lite (`analysis.reporting.vega`), so
the first view needs no plotly at all; the Batches, Data quality and Compare pages do. `head_html` asks the browser
to import that chunk once the first view has had time to draw (``PLOTLY_PRELOAD_DELAY_S`` after the page loaded,
then when the browser is idle), from the same URL Streamlit loads it from (the directory of Streamlit's own entry
module), so a later page finds it compiled. Started at once, its compilation took the CPU the first view needed
(benchmarks/dashboard.py: a fresh tab's Overview 1.7 s without it, 1.8-2.6 s with it, on two cores). Nothing in
the head comes from a run or a user: the chunk's file name is read from the installed Streamlit package.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import streamlit as st

__all__ = ["PLOTLY_PRELOAD_DELAY_S", "STYLE", "head_html", "plotly_chunk"]

PLOTLY_PRELOAD_DELAY_S = 4.0  # after the page loads: a fresh tab's first view is drawn by then

# Markdown tables (the Reports preview, findings text) scroll inside their own box instead of running past a narrow
# window; a metric's label wraps onto a second line in a narrow column instead of being cut ("Problematic b…").
STYLE = (
    "<style>[data-testid='stMarkdownContainer'] table{display:block;max-width:100%;overflow-x:auto}"
    "[data-testid='stMetricLabel'] *{white-space:normal !important;text-overflow:clip !important;"
    "overflow:visible !important}</style>"
)


@functools.cache
def plotly_chunk() -> str | None:
    """File name of the installed Streamlit's plotly chart chunk (`PlotlyChart.<hash>.js`), or None."""
    folder = Path(st.__file__).parent / "static" / "static" / "js"
    found = sorted(folder.glob("PlotlyChart.*.js"))
    return found[0].name if found else None


@functools.cache
def head_html() -> str:
    """The style sheet, plus the script that loads the plotly chunk after the first view (none when not found)."""
    chunk = plotly_chunk()
    if chunk is None:
        return STYLE
    script = (
        "<script>(() => {const m = document.querySelector('script[type=module][src*=\"static/js/\"]');"
        f"const load = () => import(new URL({json.dumps(chunk)}, m.src).href).catch(() => {{}});"
        "const idle = window.requestIdleCallback || ((f) => f());"
        f"if (m) setTimeout(() => idle(load, {{timeout: 2000}}), {round(PLOTLY_PRELOAD_DELAY_S * 1000)});}})();</script>"
    )
    return STYLE + script
