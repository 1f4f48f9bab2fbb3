"""The page head the app sends first: a constant style sheet, and an early start on the plotly.js chunk.

Streamlit's browser code loads its plotly.js chunk (about 4.7 MB of JavaScript) only when the first chart arrives,
so a new tab fetches and compiles it after the server has read and analysed the run. `head_html` asks the browser
to import that chunk as soon as the page's first element arrives, from the same URL Streamlit loads it from (the
directory of Streamlit's own entry module), so the module is fetched and compiled once, while the server works.
Nothing in it comes from a run or a user: the chunk's file name is read from the installed Streamlit package.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import streamlit as st

__all__ = ["STYLE", "head_html", "plotly_chunk"]

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
    """The style sheet, plus the script that starts loading the plotly chunk (none when it is not found)."""
    chunk = plotly_chunk()
    if chunk is None:
        return STYLE
    script = (
        "<script>(() => {const m = document.querySelector('script[type=module][src*=\"static/js/\"]');"
        f"if (m) import(new URL({json.dumps(chunk)}, m.src).href).catch(() => {{}});}})();</script>"
    )
    return STYLE + script
