"""Recovery strategies on scripted metric sequences: severe drop -> rollback, plateau -> LR, degradation -> stop."""

from __future__ import annotations

import logging
import math

import numpy as np

from analysis.core.config import config_from_dict
from analysis.monitoring.monitor import TrainingMonitor
from analysis.monitoring.recovery import RecoveryAction, RecoveryPolicy, checkpoint_step, find_checkpoint


def make_monitor(tmp_path, thresholds=None, callbacks=None, **recovery):
    cfg = config_from_dict(
        {
            "experiment_monitoring": {
                "auto_recovery": recovery,
                "anomaly_detection": {"warmup_steps": 3, "metric_thresholds": {}},
            },
            "training_config": {"checkpoint_dir": str(tmp_path / "ckpt")},
        }
    )
    return TrainingMonitor(thresholds or {"val/recall": 0.5}, config=cfg, sinks=[], recovery_callbacks=callbacks)


def run(monitor, values, start=0, every=100, metric="val/recall"):
    """Feed `values` at steps start, start+every, ...; return {step: [actions]} for steps with actions."""
    out = {}
    for i, v in enumerate(values):
        step = start + i * every
        monitor.log_step(step, {metric: v})
        if monitor.last_actions:
            out[step] = list(monitor.last_actions)
    return out


def save_checkpoints(tmp_path, steps):
    d = tmp_path / "ckpt"
    d.mkdir(exist_ok=True)
    for s in steps:
        (d / f"ckpt_step_{s}.npz").write_bytes(b"weights")
    (d / "notes.txt").write_text("no step in this name")
    return d


def test_severe_drop_rolls_back_to_last_good_checkpoint(tmp_path):
    d = save_checkpoints(tmp_path, [0, 200, 400, 600])
    seen: list[RecoveryAction] = []
    monitor = make_monitor(tmp_path, callbacks={"rollback": seen.append})
    acts = run(monitor, [0.80, 0.85, 0.88, 0.90, 0.90, 0.91, 0.70])  # steps 0..600; the drop is at step 600
    (action,) = acts[600]
    assert action.kind == "rollback" and action.strategy == "rollback_on_severe_drop"
    assert action.checkpoint == str(d / "ckpt_step_400.npz")  # saved at or before the last good step (500)
    assert "last good step 500" in action.reason and "rollback 1 of 3" in action.reason
    assert seen == [action]


def test_registered_checkpoints_and_missing_checkpoint(tmp_path):
    monitor = make_monitor(tmp_path)
    monitor.register_checkpoint(300, "s3://bucket/ckpt-300")
    acts = run(monitor, [0.9] * 5 + [0.5])
    assert acts[500][0].checkpoint == "s3://bucket/ckpt-300"
    monitor = make_monitor(tmp_path)  # no checkpoint dir at all
    acts = run(monitor, [0.9] * 5 + [0.5])
    assert acts[500][0].checkpoint is None and "no checkpoint at or before step 400" in acts[500][0].reason


def test_one_rollback_per_episode_and_bounded_rollbacks(tmp_path):
    save_checkpoints(tmp_path, range(0, 5000, 100))
    monitor = make_monitor(tmp_path, max_rollbacks=2, early_stop_patience=100)
    episode = [0.9, 0.9, 0.9, 0.6, 0.6, 0.6]  # healthy, then a severe drop lasting 3 observations
    acts = run(monitor, [0.9, 0.9] + episode * 3)
    kinds = [(s, a.kind) for s, lst in acts.items() for a in lst]
    rollbacks = [s for s, k in kinds if k == "rollback"]
    assert rollbacks == [500, 1100]  # once per episode, at most max_rollbacks
    # the third severe episode cannot roll back any more: the run is stopped instead
    assert kinds[-1] == (1700, "early_stop") and "rollback limit (2) is spent" in acts[1700][-1].reason
    assert monitor.should_stop and monitor.recovery.rollbacks == 2


def test_nonfinite_value_triggers_rollback(tmp_path):
    save_checkpoints(tmp_path, [100])
    monitor = make_monitor(tmp_path, thresholds={"train/loss": 5.0})
    acts = run(monitor, [2.0, 1.5, 1.2, 1.0, math.nan], metric="train/loss")
    (action,) = acts[400]
    assert action.kind == "rollback" and action.checkpoint.endswith("ckpt_step_100.npz")
    assert "nan" in action.reason


def test_plateau_suggests_lr_factor_every_patience(tmp_path):
    seen: list[RecoveryAction] = []
    monitor = make_monitor(tmp_path, plateau_patience=4, lr_factor=0.3, callbacks={"adjust_lr_on_plateau": seen.append})
    values = [0.6, 0.7, 0.8] + [0.8] * 14
    acts = run(monitor, values, every=1)
    lr = [(s, a.lr_factor) for s, lst in acts.items() for a in lst if a.kind == "adjust_lr"]
    # the best 3-point mean last improves at step 4 (0.7, 0.8, 0.8 -> 0.8, 0.8, 0.8); then every 4 stale points
    assert lr == [(8, 0.3), (12, 0.3), (16, 0.3)]
    assert len(seen) == 3 and "not improved for 4 observations" in seen[0].reason
    assert not monitor.should_stop


def test_sustained_degradation_triggers_early_stopping_once(tmp_path):
    seen: list[RecoveryAction] = []
    monitor = make_monitor(
        tmp_path, early_stop_patience=5, strategies=["trigger_early_stopping"], callbacks={"early_stop": seen.append}
    )
    acts = run(monitor, [0.9, 0.9, 0.9, 0.9] + [0.4] * 10, every=1)
    assert list(acts) == [8] and acts[8][0].kind == "early_stop"
    assert "5 consecutive observations" in acts[8][0].reason
    assert monitor.should_stop and len(seen) == 1


def test_intermittent_badness_does_not_stop(tmp_path):
    monitor = make_monitor(tmp_path, early_stop_patience=5, strategies=["trigger_early_stopping"])
    run(monitor, [0.9, 0.9, 0.9] + [0.4, 0.4, 0.4, 0.4, 0.9] * 5, every=1)
    assert not monitor.should_stop


def test_only_recovery_metrics_drive_actions(tmp_path):
    save_checkpoints(tmp_path, [0])
    monitor = make_monitor(tmp_path)  # recovery metrics default to the alert_thresholds keys
    acts = run(monitor, [0.9] * 5 + [0.1], metric="batch_3/recall")
    assert acts == {}
    monitor = make_monitor(tmp_path)
    monitor.recovery.metrics.add("batch_3/recall")
    monitor._status_metrics = frozenset(monitor.recovery.metrics)
    assert run(monitor, [0.9] * 5 + [0.1], metric="batch_3/recall")


def test_disabled_recovery_and_strategy_subset(tmp_path):
    save_checkpoints(tmp_path, [0])
    monitor = make_monitor(tmp_path, enable=False)
    assert run(monitor, [0.9] * 5 + [0.1] + [0.1] * 40, every=1) == {}
    monitor = make_monitor(tmp_path, strategies=["adjust_lr_on_plateau"], plateau_patience=3)
    acts = run(monitor, [0.9] * 5 + [0.1] * 5, every=1)
    assert {a.kind for lst in acts.values() for a in lst} == {"adjust_lr"}


def test_a_failing_callback_is_logged_not_raised(tmp_path, caplog):
    def broken(action):
        raise OSError("disk full")

    monitor = make_monitor(tmp_path, callbacks={"rollback": broken})
    with caplog.at_level(logging.ERROR, logger="analysis.monitoring.recovery"):
        acts = run(monitor, [0.9] * 5 + [0.2])
    assert acts[500][0].kind == "rollback"
    assert "recovery callback for rollback failed" in caplog.text and "disk full" in caplog.text


def test_checkpoint_helpers(tmp_path):
    from pathlib import Path

    assert checkpoint_step(Path("ckpt_step_1200.pt")) == 1200
    assert checkpoint_step(Path("epoch3-step-450")) == 450
    assert checkpoint_step(Path("latest.pt")) is None
    d = save_checkpoints(tmp_path, [10, 20, 30])
    assert find_checkpoint(d, 25) == str(d / "ckpt_step_20.npz")
    assert find_checkpoint(d, None) == str(d / "ckpt_step_30.npz")
    assert find_checkpoint(d, 5) is None
    assert find_checkpoint(tmp_path / "missing", 5) is None


def test_policy_works_standalone_on_a_recall_curve(tmp_path):
    """A realistic noisy curve: improves, then collapses; the policy rolls back near the collapse."""
    save_checkpoints(tmp_path, range(0, 10000, 500))
    rng = np.random.default_rng(3)
    curve = np.concatenate([np.linspace(0.5, 0.9, 40), np.full(40, 0.9), np.full(20, 0.6)])
    curve += 0.005 * rng.standard_normal(curve.size)
    monitor = make_monitor(tmp_path, plateau_patience=1000)
    acts = run(monitor, curve.tolist())
    first = min(acts)
    assert first == 8000 and acts[first][0].kind == "rollback"
    assert acts[first][0].checkpoint.endswith("ckpt_step_7500.npz")
    assert isinstance(monitor.recovery, RecoveryPolicy)


def test_a_threshold_on_the_last_part_also_drives_recovery(tmp_path):
    """QA: `TrainingMonitor({"recall": 0.8})` alerted on `val/recall` (thresholds match the last part) but recovery
    watched only the exact name, so a collapse of `val/recall` never rolled back."""
    save_checkpoints(tmp_path, [0, 200, 400])
    monitor = make_monitor(tmp_path, thresholds={"recall": 0.5})
    acts = run(monitor, [0.80, 0.85, 0.88, 0.90, 0.90, 0.91, 0.40], metric="val/recall")
    assert acts[600][0].kind == "rollback" and acts[600][0].metric == "val/recall"


def test_hidden_and_half_written_checkpoints_are_not_rollback_targets(tmp_path):
    """QA: `ckpt_step_500.pt.tmp` (a save interrupted by the crash) was picked as the newest good checkpoint."""
    d = tmp_path / "ckpt"
    d.mkdir()
    for name in ("ckpt_step_300.pt", "ckpt_step_500.pt.tmp", ".ckpt_step_450.pt", "ckpt_step_480.pt.partial"):
        (d / name).write_bytes(b"x")
    assert find_checkpoint(d, 500) == str(d / "ckpt_step_300.pt")
    assert find_checkpoint(tmp_path / "missing", 500, {100: "registered.pt"}) == "registered.pt"
