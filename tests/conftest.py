from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The bundled demo (ROOT/demo, git-ignored), written once with the real wandb library if missing."""
    from analysis.demo import ensure_demo

    ensure_demo(ROOT / "demo")
    return ROOT / "demo"


@pytest.fixture(scope="session")
def demo_analysis(demo_root):
    """analyze_run on the demo run with its data directory (shared, read-only)."""
    from analysis.pipeline import analyze_run
    from analysis.sources import list_runs, open_run

    refs = [r for r in list_runs(demo_root / "wandb") if r.name == "demo-ocr-run"]
    return analyze_run(open_run(refs[-1].locator), data_dir=demo_root / "data")
