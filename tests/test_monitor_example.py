"""examples/train_loop.py: a real training loop, logged offline with the helper, watched and rescued by the monitor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analysis.findings.batches import batch_metrics, global_metrics, problematic_images
from analysis.sources import open_run
from tests.wandb_writer import wandb_env

pytestmark = pytest.mark.slow  # the example training loop runs in a subprocess

ROOT = Path(__file__).resolve().parents[1]


def run_example(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_loop.py"), "--wandb-dir", str(tmp_path), *args],
        env=wandb_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_lr_spike_is_detected_rolled_back_and_logged(tmp_path):
    proc = run_example(
        tmp_path,
        "--steps",
        "300",
        "--validation-interval",
        "15",
        "--spike-lr-at",
        "150",
        "--data-dir",
        str(tmp_path / "data"),
    )
    out = proc.stdout
    assert "step 150: [critical] val/recall" in out
    rollback = [line for line in out.splitlines() if "recovery -> rollback" in line]
    assert rollback and rollback[0].startswith("step 150:") and "ckpt_step_135.npz" in rollback[0]
    final = float(out.split("final val recall ")[1].split(";")[0])
    assert final > 0.8  # the rollback rescued the run
    assert (
        "ERROR analysis.monitoring.alerts" in proc.stderr or "ERROR analysis.monitoring.alerts" in out
    )  # the log sink alerted

    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    run = open_run(folder, cache=False)
    bm = batch_metrics(run)
    assert sorted(bm["batch"].unique()) == list(range(16))
    assert sorted(bm["step"].unique()) == list(range(15, 301, 15))
    g = global_metrics(run)
    recall = g[g.metric == "val/recall"].set_index("step")["value"]
    assert recall[150] < 0.5 < recall[300]
    imgs = problematic_images(run)
    assert 5 in set(imgs["batch"])  # the noisy batch is listed as problematic
    assert all((tmp_path / "data" / p).is_file() for p in imgs["path"].unique())
    saved = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert saved == {f"ckpt_step_{s}.npz" for s in range(15, 301, 15)}
    # monitor.close() after run.finish() wrote the reports of the finished run (auto_generate_reports)
    reports = sorted(p.name for p in (tmp_path / "experiment_reports").iterdir())
    run_id = next((tmp_path / "wandb").glob("offline-run-*")).name.rsplit("-", 1)[-1]
    assert reports == [f"train-loop-example-{run_id}_report.{ext}" for ext in ("html", "json", "md")]
    assert all(f"report: {tmp_path / 'experiment_reports'}" in out for _ in reports)


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment_monitoring:\n  alerts:\n    throttle_secs: 5\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_loop.py"), "--wandb-dir", str(tmp_path), "--config", str(bad)],
        env=wandb_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "throttle_secs" in proc.stderr and "Traceback" not in proc.stderr
