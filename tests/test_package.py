"""The installed product: the wheel holds the app, the templates and the console script; the commands start."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from analysis.cli import dashboard_script

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# not part of the package: kept out of the copy the wheel is built from (the demo and benchmarks are large)
_NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".git", "demo", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "artifacts", "wandb",
    "experiment_reports", "benchmarks", "tests", "docs",
)  # fmt: skip


def _build_wheel(tmp_path: Path) -> zipfile.ZipFile:
    """Build the wheel from a copy of the checkout (the build writes build/ and *.egg-info beside the sources).

    Without build isolation when the environment can build wheels itself (setuptools with `wheel`); otherwise pip
    installs the [build-system] requirements into an isolated environment from its configured index."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCES)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(src)]
    if importlib.util.find_spec("wheel") is not None:
        command.insert(5, "--no-build-isolation")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (wheel,) = (tmp_path / "dist").glob("experiment_analyzer-*.whl")
    return zipfile.ZipFile(wheel)


@pytest.mark.slow
def test_the_wheel_holds_the_app_templates_vocabulary_and_console_script(tmp_path):
    with _build_wheel(tmp_path) as wheel:
        names = set(wheel.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = wheel.read(entry_points).decode()
    for required in (
        "app.py",
        "analyze_experiment.py",
        "experiment_analyzer.py",
        "data_quality.py",
        "analysis/core/vocabulary.py",
        "analysis/reporting/templates/report.html.j2",
        "analysis/reporting/templates/report.schema.json",
    ):
        assert required in names, f"{required} is not in the wheel"
    for folder in ("pages", "ui"):  # every module of the dashboard, whatever the pages are named
        modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob("*.py"))
        assert modules and set(modules) <= names, f"missing from the wheel: {sorted(set(modules) - names)}"
    assert any(n.startswith("pages/") and n.endswith("_page.py") for n in names)
    assert "[console_scripts]" in scripts and "experiment-analyzer = analysis.cli:main" in scripts
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_the_console_script_and_the_module_answer_help():
    script = BIN / "experiment-analyzer"
    assert script.is_file(), f"{script} is missing: install the package (pip install -e .)"
    for command in ([str(script), "--help"], [sys.executable, "-m", "experiment_analyzer", "--help"]):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "--run-name" in proc.stdout and "exit codes" in proc.stdout


def test_the_ui_subcommand_finds_the_dashboard():
    app = dashboard_script()
    assert app.name == "app.py" and app.is_file()
    assert (app.parent / "ui").is_dir() and (app.parent / "pages").is_dir()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_ui_subcommand_starts_a_healthy_dashboard(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "experiment-analyzer"), "ui", "--server.port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # streamlit runs as a child: stop the whole group
    )
    try:
        body = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    body = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body == "ok", proc.stderr.read().decode()[-2000:] if proc.poll() is not None and proc.stderr else body
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
