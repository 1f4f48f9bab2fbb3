"""The cache directory (issue 16, item 8): the platform's user cache directory (`platformdirs`, XDG on Linux) unless
`$EXPERIMENT_ANALYZER_CACHE` is set; one function (`analysis.sources.cache.cache_root`) decides for the run cache,
the image-score cache and the dashboard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from analysis.findings.pipeline import analyze_run
from analysis.sources import cache, list_runs, open_run
from analysis.sources._rundir import resolve
from quality.score_cache import CACHE_FILE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_and_images(demo_root, tmp_path_factory) -> tuple[Path, Path]:
    """The demo run (written by the real wandb library, shared) and a small folder of images."""
    (ref,) = [r for r in list_runs(demo_root / "wandb") if r.name == "demo-ocr-run"][-1:]
    data = tmp_path_factory.mktemp("cachedir") / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(data / name), rng.integers(0, 255, (120, 160), dtype=np.uint8))
    return Path(ref.locator), data


@pytest.fixture
def xdg(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("EXPERIMENT_ANALYZER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache, "CACHE_ROOT_OVERRIDE", None)
    return tmp_path / "xdg" / "experiment-analyzer"


def test_run_and_score_caches_land_under_xdg_cache_home(run_and_images, xdg):
    run_dir, data = run_and_images
    assert cache.cache_root() == xdg
    run = open_run(run_dir)
    _, run_file = resolve(run_dir)
    entry = cache.entry_path(run_file, None)  # this run's entry (a test never owns the whole folder)
    assert entry.parent == xdg / "runs" and entry.is_file()
    analyze_run(run, data_dir=data)
    assert (xdg / "quality" / CACHE_FILE).is_file()


def test_the_environment_variable_wins(run_and_images, xdg, tmp_path, monkeypatch):
    chosen = tmp_path / "chosen"
    monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(chosen))
    assert cache.cache_root() == chosen
    run_dir, data = run_and_images
    analyze_run(open_run(run_dir), data_dir=data)
    assert list((chosen / "runs").glob("*.parquet")) and (chosen / "quality" / CACHE_FILE).is_file()
    assert not xdg.exists()


@pytest.mark.slow  # imports Streamlit and the app's state in a fresh interpreter (seconds)
def test_the_dashboard_uses_the_same_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "EXPERIMENT_ANALYZER_CACHE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    code = "import ui.state as s; print(s.CACHE_DIR); print(s.QUALITY_CACHE_DIR); print(s.UPLOAD_DIR)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    base = tmp_path / "xdg" / "experiment-analyzer"
    assert out.stdout.split() == [str(base), str(base / "quality"), str(base / "uploads")]
