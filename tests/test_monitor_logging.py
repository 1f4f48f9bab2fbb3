"""log_batch_metrics writes what the analyzer reads back: a real offline wandb run, read with our own reader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analysis.core.config import config_from_dict
from analysis.findings.batches import batch_metrics, problematic_images
from analysis.monitoring.batch_logging import batch_log_rows, log_batch_metrics
from analysis.sources import open_run
from tests.wandb_writer import wandb_env

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import sys, wandb
from analysis.core.config import config_from_dict
from experiment_analyzer import log_batch_metrics
cfg = config_from_dict({"training_config": {"problematic_recall_threshold": 0.7}})
run = wandb.init(project="logging", name="helper-run", dir=sys.argv[1])
for step in (100, 200, 300):
    for b in range(3):
        recall = 0.9 if not (b == 2 and step >= 200) else 0.6 + step / 10000
        m = {"recall": recall, "precision": 0.95, "hmean": 2 * recall * 0.95 / (recall + 0.95)}
        log_batch_metrics(b, step, m, [f"images/b{b}_{i}.png" for i in range(2)], config=cfg)
run.finish()
"""


def test_rows_follow_the_handbook_and_config_threshold():
    rows = batch_log_rows(3, 100, {"recall": 0.79, "precision": 0.9, "hmean": 0.84}, ["a.png", Path("b/c.png")])
    assert rows == [
        {"batch_3/recall": 0.79, "batch_3/precision": 0.9, "batch_3/hmean": 0.84, "global_step": 100},
        {"problematic_batch_3": ["a.png", "b/c.png"], "global_step": 100},
    ]
    cfg = config_from_dict({"training_config": {"problematic_recall_threshold": 0.7}})
    assert len(batch_log_rows(3, 100, {"recall": 0.79}, ["a.png"], config=cfg)) == 1
    assert len(batch_log_rows(3, 100, {"recall": 0.69}, ["a.png"], config=cfg)) == 2
    assert len(batch_log_rows(3, 100, {"recall": 0.1})) == 1  # no paths given: nothing to list
    assert len(batch_log_rows(3, 100, {"recall": float("nan")}, ["a.png"])) == 1


@pytest.mark.parametrize("args", [(-1, 0, {}), ("1", 0, {}), (True, 0, {}), (1, 2.5, {}), (1, 0, {"a/b": 1.0})])
def test_bad_arguments_raise_value_error(args):
    with pytest.raises(ValueError):
        batch_log_rows(*args)


def test_without_an_active_run_the_error_says_what_to_do(monkeypatch):
    import wandb

    monkeypatch.setattr(wandb, "run", None)
    with pytest.raises(RuntimeError, match=r"wandb\.init"):
        log_batch_metrics(0, 1, {"recall": 0.9})


def test_round_trip_through_a_real_offline_run(tmp_path):
    env = wandb_env(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder,) = (tmp_path / "wandb").glob("offline-run-*")
    run = open_run(folder, cache=False)
    bm = batch_metrics(run)
    assert set(bm["batch"]) == {0, 1, 2} and set(bm["metric"]) == {"recall", "precision", "hmean"}
    assert sorted(set(bm["step"])) == [100, 200, 300]  # global_step, not wandb's _step
    recall2 = bm[(bm.batch == 2) & (bm.metric == "recall")].set_index("step")["value"]
    assert recall2.to_dict() == pytest.approx({100: 0.9, 200: 0.62, 300: 0.63})
    imgs = problematic_images(run)
    assert imgs.to_dict("records") == [
        {"step": s, "batch": 2, "path": f"images/b2_{i}.png"} for s in (200, 300) for i in range(2)
    ]


def test_numpy_indices_and_a_single_path_are_what_the_user_meant():
    """QA: `batch_idx=np.int64(3)` (from an index array) raised ValueError, and `images_paths="img.png"` logged
    one 'path' per character."""
    import numpy as np

    rows = batch_log_rows(np.int64(3), np.int32(40), {"recall": np.float32(0.5)}, "imgs/a.png")
    assert rows[0]["global_step"] == 40 and type(rows[0]["global_step"]) is int and "batch_3/recall" in rows[0]
    assert rows[1] == {"problematic_batch_3": ["imgs/a.png"], "global_step": 40}
    assert batch_log_rows(0, 1, {"recall": 0.1}, [b"raw/b.png", Path("p/c.png")])[1]["problematic_batch_0"] == [
        "raw/b.png",
        "p/c.png",
    ]


class _RecordingRun:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def log(self, row: dict) -> None:
        self.rows.append(row)


def test_validation_interval_decides_which_steps_are_logged():
    cfg = config_from_dict({"training_config": {"validation_interval": 50}})
    run = _RecordingRun()
    logged = {step: log_batch_metrics(0, step, {"recall": 0.9}, config=cfg, run=run) for step in (25, 50, 75, 100)}
    assert [step for step, rows in logged.items() if rows] == [50, 100]
    assert [row["global_step"] for row in run.rows] == [50, 100]
    # without a config every call logs: the caller decides when to validate
    assert log_batch_metrics(0, 75, {"recall": 0.9}, run=run) and run.rows[-1]["global_step"] == 75


def test_batch_logging_false_logs_nothing_and_needs_no_run(monkeypatch):
    import wandb

    monkeypatch.setattr(wandb, "run", None)
    cfg = config_from_dict({"training_config": {"batch_logging": False}})
    run = _RecordingRun()
    assert log_batch_metrics(0, 100, {"recall": 0.1}, ["a.png"], config=cfg, run=run) == []
    assert run.rows == []
    assert log_batch_metrics(0, 100, {"recall": 0.1}, config=cfg) == []  # no wandb run: no error either
    with pytest.raises(ValueError):  # the arguments are still checked
        log_batch_metrics(-1, 100, {"recall": 0.1}, config=cfg)
