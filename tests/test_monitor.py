"""TrainingMonitor detection: thresholds, z-score, drop from best, NaN/Inf, plateau, bounded memory."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from analysis.core.config import AnalyzerConfig, AnomalyDetectionConfig, config_from_dict
from analysis.core.vocabulary import metric_direction
from analysis.monitoring.alerts import Alert
from analysis.monitoring.monitor import MonitorAnomaly, TrainingMonitor


def quiet(**anomaly) -> AnalyzerConfig:
    """Config with no alert sinks beyond the log and the given anomaly_detection overrides."""
    return config_from_dict({"experiment_monitoring": {"anomaly_detection": anomaly}})


def kinds(anomalies) -> set[str]:
    return {a.kind for a in anomalies}


def test_handbook_validation_check():
    from experiment_analyzer import TrainingMonitor as Exported

    monitor = Exported({"val/recall": 0.75})
    anomalies = monitor.log_step(100, {"val/recall": 0.70})
    assert len(anomalies) > 0
    a = anomalies[0]
    assert isinstance(a, MonitorAnomaly)
    assert (a.metric, a.value, a.step, a.kind) == ("val/recall", 0.70, 100, "threshold")
    assert a.severity in ("warning", "critical")
    assert "val/recall" in a.message and "0.75" in a.message
    assert a.to_dict()["kind"] == "threshold"


def test_healthy_steps_return_nothing():
    monitor = TrainingMonitor({"val/recall": 0.75})
    rng = np.random.default_rng(0)
    for step in range(200):
        assert monitor.log_step(step, {"val/recall": 0.9 + 0.002 * rng.standard_normal()}) == [] or step > 0
    # a healthy noisy series never crosses the threshold, never drops 5% from best
    found = [a for a in monitor.recent_anomalies if a.kind in ("threshold", "drop_from_best", "nonfinite")]
    assert found == []


def test_threshold_is_direction_aware():
    monitor = TrainingMonitor({"train/loss": 2.0, "val/recall": 0.75})
    assert monitor.log_step(1, {"train/loss": 1.5, "val/recall": 0.8}) == []
    found = monitor.log_step(2, {"train/loss": 2.5, "val/recall": 0.9})
    assert [(a.metric, a.kind) for a in found] == [("train/loss", "threshold")]
    assert "above" in found[0].message
    # severity grows with the distance past the bound (severe_drop_threshold = 15 %)
    assert monitor.log_step(3, {"val/recall": 0.74})[0].severity == "warning"
    assert monitor.log_step(4, {"val/recall": 0.5})[0].severity == "critical"


def test_threshold_matches_last_part_and_config_defaults():
    monitor = TrainingMonitor({"recall": 0.6})
    assert kinds(monitor.log_step(1, {"batch_3/recall": 0.5})) == {"threshold"}
    assert monitor.log_step(1, {"batch_3/recall": 0.5})[0].batch == 3
    # the config's metric_thresholds apply where alert_thresholds say nothing (default recall: 0.8)
    monitor = TrainingMonitor({})
    assert kinds(monitor.log_step(1, {"val/recall": 0.79})) == {"threshold"}


def test_direction_overrides_and_heuristics():
    assert metric_direction("train/loss") == "lower_is_better"
    assert metric_direction("val/cer") == "lower_is_better"
    assert metric_direction("val/recall") == "higher_is_better"
    assert (
        metric_direction("val/score", quiet(metric_directions={"score": "lower_is_better"}).anomaly.metric_directions)
        == "lower_is_better"
    )
    cfg = quiet(metric_directions={"val/score": "lower_is_better"}, metric_thresholds={})
    monitor = TrainingMonitor({"val/score": 1.0}, config=cfg)
    assert kinds(monitor.log_step(1, {"val/score": 1.5})) == {"threshold"}
    assert monitor.log_step(2, {"val/score": 0.5}) == []


def test_nonfinite_values_are_critical_and_do_not_poison_the_window():
    monitor = TrainingMonitor({}, config=quiet(metric_thresholds={}))
    for step in range(10):
        monitor.log_step(step, {"train/loss": 1.0 + 0.01 * (step % 3)})
    for bad in (math.nan, math.inf, -math.inf):
        found = monitor.log_step(11, {"train/loss": bad})
        assert [(a.kind, a.severity) for a in found] == [("nonfinite", "critical")]
    # the next normal value is judged against finite history only
    assert kinds(monitor.log_step(12, {"train/loss": 1.01})) <= {"plateau"}
    status = monitor.status("train/loss")
    assert status is not None and status.best == 1.0


def test_zscore_after_warmup_only():
    cfg = quiet(metric_thresholds={}, warmup_steps=10, performance_drop_threshold=1.0)
    monitor = TrainingMonitor({}, config=cfg)
    # during warm-up a wild value is not a z-score anomaly
    for step, v in enumerate([1.0, 1.1, 0.9, 1.0, 50.0]):
        assert "zscore" not in kinds(monitor.log_step(step, {"m": v}))
    monitor = TrainingMonitor({}, config=cfg)
    rng = np.random.default_rng(1)
    for step in range(30):
        monitor.log_step(step, {"m": 1.0 + 0.01 * rng.standard_normal()})
    found = monitor.log_step(30, {"m": 0.8})
    z = [a for a in found if a.kind == "zscore"]
    assert z and z[0].score > 3 and z[0].severity == "critical"


def test_drop_only_ignores_improvements():
    rng = np.random.default_rng(2)
    series = [*(1.0 + 0.01 * rng.standard_normal(30)), 1.3]
    both = TrainingMonitor({}, config=quiet(metric_thresholds={}))
    only = TrainingMonitor({}, config=quiet(metric_thresholds={}, drop_only=True))
    for step, v in enumerate(series):
        a, b = both.log_step(step, {"val/recall": v}), only.log_step(step, {"val/recall": v})
    assert "zscore" in kinds(a) and a[0].severity == "info"
    assert b == []


def test_a_drop_from_the_first_values_says_so():
    """D-FINE's `loss_fgl` (batch 23, tune) rises over its first epochs while the run learns: "32.2% worse than its
    best 3-point mean 0.7561 (ending at step 2)" read like a fall from what training had reached. A best that is the
    metric's first values is named as such; a fall after an improvement is not."""
    monitor = TrainingMonitor({}, config=quiet(metric_thresholds={}, performance_drop_threshold=0.05))
    rising = [0.75, 0.76, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.0, 1.0]
    found = [a for step, v in enumerate(rising) for a in monitor.log_step(step, {"train/loss_fgl": v})]
    drops = [a for a in found if a.kind == "drop_from_best"]
    assert drops and all("its first values: never as good since" in a.message for a in drops), drops
    learned = TrainingMonitor({}, config=quiet(metric_thresholds={}, performance_drop_threshold=0.05))
    falls = [1.0, 0.9, 0.8, 0.6, 0.5, 0.5, 0.5, 0.7, 0.8, 0.9]
    found = [a for step, v in enumerate(falls) for a in learned.log_step(step, {"train/loss": v})]
    drops = [a for a in found if a.kind == "drop_from_best"]
    assert drops and not any("first values" in a.message for a in drops), drops


def test_drop_from_best():
    monitor = TrainingMonitor({}, config=quiet(metric_thresholds={}, performance_drop_threshold=0.05))
    for step, v in enumerate([0.5, 0.7, 0.9, 0.91, 0.9, 0.9]):
        assert "drop_from_best" not in kinds(monitor.log_step(step, {"val/hmean": v}))
    # one value 6 % below: the level (the mean of the last 3 values) is 2 % below the best, no drop yet
    assert "drop_from_best" not in kinds(monitor.log_step(6, {"val/hmean": 0.85}))
    found = [a for a in monitor.log_step(7, {"val/hmean": 0.80}) if a.kind == "drop_from_best"]
    best = (0.9 + 0.91 + 0.9) / 3  # the best 3-point mean, not the single high point
    level = (0.9 + 0.85 + 0.80) / 3
    assert found and found[0].score == pytest.approx((best - level) / best)
    assert found[0].severity == "warning" and found[0].value == 0.80
    found = [a for a in monitor.log_step(8, {"val/hmean": 0.6}) if a.kind == "drop_from_best"]
    assert found[0].severity == "critical"
    # a value back at the best ends it, though the level still carries the low values
    assert "drop_from_best" not in kinds(monitor.log_step(9, {"val/hmean": 0.91}))
    # for a loss, "drop" means rising above its best (lowest) value
    monitor = TrainingMonitor({}, config=quiet(metric_thresholds={}))
    for step, v in enumerate([2.0, 1.5, 1.0, 1.0, 1.0, 1.0]):
        monitor.log_step(step, {"train/loss": v})
    assert "drop_from_best" in kinds(monitor.log_step(6, {"train/loss": 1.2}))


def test_plateau_reported_once_per_plateau():
    cfg = config_from_dict(
        {
            "experiment_monitoring": {
                "anomaly_detection": {"metric_thresholds": {}, "warmup_steps": 0},
                "auto_recovery": {"plateau_patience": 5},
            }
        }
    )
    monitor = TrainingMonitor({}, config=cfg)
    plateau_steps = []
    for step in range(30):
        v = 0.5 + 0.01 * min(step, 10)  # improves for 10 steps, then flat
        if any(a.kind == "plateau" for a in monitor.log_step(step, {"val/recall": v})):
            plateau_steps.append(step)
    # the 3-point mean last improves at step 12 (0.6, 0.6, 0.6); 5 stale observations later: 17
    assert plateau_steps == [17]
    monitor.log_step(30, {"val/recall": 0.9})  # improvement re-arms it
    status = monitor.status("val/recall")
    assert status is not None and status.stale_count == 0


def test_non_numeric_values_and_bad_step_are_ignored():
    monitor = TrainingMonitor({"val/recall": 0.75})
    assert monitor.log_step(
        1,
        {
            "note": "hello",
            "nan_text": "NaN",
            "num_text": "0.1",
            "paths": ["a.png"],
            "flag": True,
            "none": None,
            "huge": 10**400,
            "arr": np.ones(3),
            "val/recall": np.float32(0.7),
        },
    )
    assert set(monitor.metric_history) == {"val/recall"}
    assert monitor.log_step("not a step", {"val/recall": 0.1}) == []  # type: ignore[arg-type]


def test_memory_is_bounded():
    monitor = TrainingMonitor({}, config=quiet(metric_thresholds={}), history_size=50)
    for step in range(5000):
        monitor.log_step(step, {"a": float(step % 7), "b": 1.0})
    assert all(len(h) == 50 for h in monitor.metric_history.values())
    assert len(monitor.metric_states["a"].window) == monitor.config.anomaly.zscore_window
    assert len(monitor.recent_anomalies) <= (monitor.recent_anomalies.maxlen or 0)


def test_batch_info_is_attached():
    monitor = TrainingMonitor({"val/recall": 0.75})
    assert monitor.log_step(5, {"val/recall": 0.1}, batch_info={"batch": 4})[0].batch == 4


def test_config_forms_are_accepted():
    cfg = AnalyzerConfig()
    assert TrainingMonitor({}, config=cfg.experiment_monitoring).config == cfg
    m = TrainingMonitor({}, config={"anomaly_detection": {"warmup_steps": 2}})
    assert m.config.anomaly.warmup_steps == 2
    m = TrainingMonitor({}, config={"experiment_monitoring": {"enable_real_time_analysis": False}})
    assert m.log_step(1, {"val/recall": 0.0}) == []


@pytest.mark.parametrize(
    "bad",
    [{"val/recall": "high"}, {"val/recall": None}, {"val/recall": float("nan")}, {"val/recall": True}, ["val/recall"]],
)
def test_bad_thresholds_are_config_errors(bad):
    from analysis.core.errors import ConfigError

    with pytest.raises(ConfigError, match="alert_thresholds"):
        TrainingMonitor(bad)


def test_bad_config_is_a_config_error():
    from analysis.core.errors import ConfigError

    with pytest.raises(ConfigError, match="statistical_anomaly_zscore"):
        TrainingMonitor({}, config={"anomaly_detection": {"statistical_anomaly_zscore": -1}})
    with pytest.raises(ConfigError):
        TrainingMonitor({}, config=42)  # type: ignore[arg-type]


def test_zscore_stays_exact_on_a_long_drifting_series():
    """200k points of a loss decaying from 1e3 to 1e-3: the running sums must not drift or cancel."""
    cfg = quiet(metric_thresholds={}, zscore_window=20, warmup_steps=0, statistical_anomaly_zscore=1e9)
    monitor = TrainingMonitor({}, config=cfg, recovery_metrics=[])
    rng = np.random.default_rng(5)
    n = 200_000
    series = np.geomspace(1e3, 1e-3, n) * (1 + 1e-3 * rng.standard_normal(n))
    for i, v in enumerate(series.tolist()):
        monitor.log_step(i, {"train/loss": v})
    st = monitor.metric_states["train/loss"]
    probe = float(series[-1] * 1.01)
    window = series[-20:]
    expected = (probe - window.mean()) / window.std(ddof=1)
    assert st.zscore(probe) == pytest.approx(expected, rel=1e-6)


def test_number_of_tracked_metrics_is_capped(caplog):
    monitor = TrainingMonitor({}, config=quiet(metric_thresholds={}), max_metrics=10)
    with caplog.at_level("WARNING", logger="analysis.monitoring.tracking"):
        for step in range(3):
            monitor.log_step(step, {f"sample_{i}/loss": 1.0 for i in range(100)})
    assert len(monitor.metric_history) == 10
    assert caplog.text.count("tracks at most 10 metrics") == 1


def test_mistakes_in_the_loop_never_raise_into_it(caplog):
    """QA: metrics=None / a list raised AttributeError, an infinite step OverflowError, and a numpy batch index
    was dropped from the anomaly."""
    mon = TrainingMonitor({"recall": 0.8}, sinks=[])
    for bad in (None, [("recall", 0.1)], "recall=0.1", 3.5):
        assert mon.log_step(1, bad) == []  # type: ignore[arg-type]
    assert mon.log_step(float("inf"), {"recall": 0.1}) == []  # type: ignore[arg-type]
    assert "metrics must be a mapping" in caplog.text and "step inf is not an integer" in caplog.text
    (found,) = mon.log_step(2, {"recall": 0.1}, batch_info={"batch": np.int64(7)})
    assert found.batch == 7 and type(found.batch) is int
    assert mon.log_step(3, {"recall": 0.2}, batch_info=["not", "a", "mapping"])[0].batch is None
    import pandas as pd

    assert mon.log_step(4, pd.Series({"recall": 0.1}))[0].metric == "recall"  # dict-likes still work
    mon.close()


class _RecordingSink:
    name = "recording"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> str:
        self.alerts.append(alert)
        return "recorded"


def test_rising_perplexity_is_a_degradation_that_alerts():
    """Regression: `perplexity` is lower-is-better (the shared vocabulary), so a rise breaches its ceiling and
    drops from its best, and the alert goes out."""
    sink = _RecordingSink()
    monitor = TrainingMonitor(
        {"val/perplexity": 20.0}, config=quiet(metric_thresholds={}, warmup_steps=3), sinks=[sink]
    )
    for step, v in enumerate([30.0, 25.0, 18.0, 15.0, 14.0, 14.0, 14.0]):
        monitor.log_step(step, {"val/perplexity": v})
    assert monitor.status("val/perplexity") is not None
    found = monitor.log_step(7, {"val/perplexity": 26.0})
    assert {a.kind for a in found} >= {"threshold", "drop_from_best"}
    threshold = next(a for a in found if a.kind == "threshold")
    assert threshold.severity == "critical" and "above its threshold 20" in threshold.message
    assert monitor.flush(5)
    assert sink.alerts and sink.alerts[-1].level == "critical" and "val/perplexity" in sink.alerts[-1].text
    monitor.close()


# -- reports at close() (reporting.auto_generate_reports) ------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from tests.wandb_writer import write_run

    rows = [
        {f"batch_{b}/recall": (0.5 if b == 1 and s > 6 else 0.9), "val/recall": 0.85, "global_step": s}
        for s in range(1, 13)
        for b in range(3)
    ]
    return write_run(tmp_path_factory.mktemp("monitored"), "monitored_run", rows)


def _fake_wandb(monkeypatch, folder: Path) -> types.SimpleNamespace:
    """`wandb` as the monitor sees it (sys.modules): an active run whose files live under `folder`."""
    fake = types.SimpleNamespace(run=types.SimpleNamespace(dir=str(folder / "files"), id="abc123"))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return fake


def _reporting(enabled: bool) -> AnalyzerConfig:
    return config_from_dict(
        {"experiment_monitoring": {"reporting": {"auto_generate_reports": enabled, "report_formats": ["json"]}}}
    )


def test_close_writes_the_reports_of_the_finished_monitored_run(finished_run, monkeypatch, tmp_path):
    fake = _fake_wandb(monkeypatch, finished_run)
    monitor = TrainingMonitor({"val/recall": 0.8}, config=_reporting(True), sinks=[], report_dir=tmp_path / "r")
    monitor.log_step(1, {"val/recall": 0.85})
    fake.run = None  # run.finish(): its history is complete on disk
    monitor.close()
    assert list(monitor.report_paths) == ["json"]
    (written,) = (tmp_path / "r").iterdir()
    assert written.name.startswith("monitored_run-") and written.name.endswith("_report.json")  # name-<run id>
    doc = json.loads(written.read_text())
    assert doc["run"]["name"] == "monitored_run" and [p["batch"] for p in doc["problematic_batches"]][:1] == [1]
    monitor.close()  # a second close writes nothing again
    assert list((tmp_path / "r").iterdir()) == [written]


def test_close_while_the_run_is_active_or_with_reports_off_writes_nothing(finished_run, monkeypatch, tmp_path, caplog):
    _fake_wandb(monkeypatch, finished_run)
    active = TrainingMonitor({}, config=_reporting(True), sinks=[], report_dir=tmp_path / "active")
    active.log_step(1, {"val/recall": 0.85})
    with caplog.at_level("WARNING", logger="analysis.monitoring.session_reports"):
        active.close()  # the run was not finished: its history may lack the last steps
    assert active.report_paths == {} and not (tmp_path / "active").exists()
    assert "still active" in caplog.text and "run.finish()" in caplog.text

    fake = _fake_wandb(monkeypatch, finished_run)
    off = TrainingMonitor({}, config=_reporting(False), sinks=[], report_dir=tmp_path / "off")
    off.log_step(1, {"val/recall": 0.85})
    fake.run = None
    off.close()
    assert off.report_paths == {} and not (tmp_path / "off").exists()


def test_close_without_a_wandb_run_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    monitor = TrainingMonitor({}, config=_reporting(True), sinks=[], report_dir=tmp_path / "r")
    monitor.log_step(1, {"val/recall": 0.85})
    monitor.close()
    assert monitor.session_run is None and not (tmp_path / "r").exists()


def test_a_metric_that_keeps_coming_back_from_nan_gets_warnings_not_criticals():
    """An IoU that is NaN whenever no object was assigned (real Darknet logs): critical at first, a warning once the
    metric has come back to finite values `INTERMITTENT_RECOVERIES` times."""
    mon = TrainingMonitor(sinks=[])
    severities = []
    for step in range(40):
        value = float("nan") if step % 5 == 1 else 0.5
        severities += [str(a.severity) for a in mon.log_step(step, {"r16_avg_iou": value}) if a.detector == "nonfinite"]
    assert severities == ["critical"] * 3 + ["warning"] * 5


def test_nan_before_a_metrics_first_value_is_a_note_until_the_warm_up_has_passed():
    """RLlib logs the mean episode reward as NaN until the first episode ends: no critical alert for that; a loss
    that has had no finite value through the warm-up is critical."""
    mon = TrainingMonitor(sinks=[])
    seen = []
    for step in range(12):
        reward = float("nan") if step < 2 else 10.0 + step
        loss = float("nan")
        seen += [(a.metric, str(a.severity)) for a in mon.log_step(step, {"episode_reward_mean": reward, "loss": loss})
                 if a.detector == "nonfinite"]  # fmt: skip
    assert [s for m, s in seen if m == "episode_reward_mean"] == ["info", "info"]
    warm = AnomalyDetectionConfig().warmup_steps
    assert [s for m, s in seen if m == "loss"] == ["info"] * warm + ["critical"] * (12 - warm)
