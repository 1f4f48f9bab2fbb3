"""What makes the first page fast (issue 15): the dashboard's modules load without the heavy libraries the first
view does not need, the launcher loads the rest ahead, the browser is told to fetch plotly.js once the first view
is drawn, and gallery images are encoded once."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter in the checkout; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    return done.stdout.strip()


@pytest.mark.slow  # a fresh interpreter
def test_dashboard_modules_load_without_scipy_ruptures_cv2_or_wandb():
    loaded = _python(
        "import sys, json\n"
        "import ui.state, ui.charts, ui.tables, ui.navigation, ui.run_inputs, ui.upload, ui.config_edit, "
        "ui.data_dir, ui.assets, analysis.findings.pipeline\n"
        "print(json.dumps([m for m in ('scipy', 'ruptures', 'cv2', 'wandb') if m in sys.modules]))"
    )
    assert json.loads(loaded.splitlines()[-1]) == []


@pytest.mark.slow  # a fresh interpreter
def test_warm_imports_loads_the_modules_and_freezes_them():
    out = _python(
        "import gc, json, sys\n"
        "from ui.serve import warm_imports\n"
        "seconds = warm_imports(('plotly.graph_objects',), ('ui.charts',), runtime_wait=0)\n"
        "print(json.dumps([seconds, 'plotly.graph_objects' in sys.modules, 'ui.charts' in sys.modules, "
        "gc.get_freeze_count()]))"
    )
    seconds, libs, dashboard, frozen = json.loads(out.splitlines()[-1])
    assert seconds > 0 and libs and dashboard
    assert frozen > 10_000  # the loaded modules' objects are out of the collector's sweeps


def test_head_html_loads_the_plotly_chunk_of_the_installed_streamlit_after_the_first_view():
    from ui.assets import PLOTLY_PRELOAD_DELAY_S, STYLE, head_html, plotly_chunk

    chunk = plotly_chunk()
    assert chunk is not None and chunk.startswith("PlotlyChart.") and chunk.endswith(".js")
    assert (Path(st.__file__).parent / "static" / "static" / "js" / chunk).is_file()
    html = head_html()
    assert html.startswith(STYLE)
    assert json.dumps(chunk) in html and "import(" in html
    # deferred: compiling it at once took the CPU the first view (drawn without plotly) needed
    assert f"setTimeout(() => idle(load, {{timeout: 2000}}), {round(PLOTLY_PRELOAD_DELAY_S * 1000)})" in html
    assert PLOTLY_PRELOAD_DELAY_S >= 3


def test_thumbnails_are_png_bytes_never_enlarged(tmp_path):
    from ui.state import thumbnail

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 200, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8)).save(tmp_path / "small.png")
    wide = thumbnail(str(tmp_path), "wide.png", max_side=100)
    assert wide[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(wide)) as im:
        assert im.size == (100, 30) and im.mode == "RGB"
    with Image.open(io.BytesIO(thumbnail(str(tmp_path), "small.png", max_side=100))) as im:
        assert im.size == (30, 20)  # a small scan stays small
