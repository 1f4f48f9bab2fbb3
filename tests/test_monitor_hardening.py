"""The monitor never raises into the loop nor loses alerts silently (issue 17, item 11); config numbers are
bounded at load and deep YAML is a ConfigError (item 13)."""

from __future__ import annotations

import threading
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from analysis.core.config import config_from_dict, parse_config_text
from analysis.core.errors import ConfigError
from analysis.monitoring import alerts
from analysis.monitoring.alerts import Alert, AlertDispatcher
from analysis.monitoring.monitor import TrainingMonitor


class Recorder:
    name = "recorder"
    sent: ClassVar[list[Alert]] = []

    def send(self, alert: Alert) -> str:
        self.sent.append(alert)
        return "ok"


@pytest.mark.parametrize(
    "batch_info",
    [
        pd.Series({"batch": 3, "size": 32}),
        np.array([3, 32]),
        pd.DataFrame({"batch": [3, 4]}),
        pd.Series(dtype=float),
        np.array([]),
    ],
    ids=["series", "ndarray", "dataframe", "empty-series", "empty-array"],
)
def test_batch_info_of_any_array_type_never_raises_and_the_alert_is_sent(batch_info):
    Recorder.sent = []
    cfg = config_from_dict({"experiment_monitoring": {"alerts": {"throttle_seconds": 0}}})
    monitor = TrainingMonitor({"val/recall": 0.8}, config=cfg, sinks=[Recorder()])
    found = monitor.log_step(1, {"val/recall": 0.1}, batch_info=batch_info)
    assert [a.kind for a in found] == ["threshold"]
    assert monitor.flush(5)
    assert len(Recorder.sent) == 1
    if isinstance(batch_info, pd.Series) and len(batch_info):
        assert found[0].batch == 3 and "batch info" in Recorder.sent[0].text
    monitor.close()


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("anomaly_detection", "zscore_window", 1e20),
        ("anomaly_detection", "warmup_steps", 10**30),
        ("alerts", "retry_backoff_seconds", 1e300),
        ("alerts", "timeout_seconds", 1e300),
        ("alerts", "max_retries", 10**9),
        ("alerts", "throttle_seconds", 1e300),
        ("auto_recovery", "plateau_patience", 10**30),
    ],
)
def test_every_config_number_is_bounded_at_load(section, key, value):
    with pytest.raises(ConfigError, match=key):
        config_from_dict({"experiment_monitoring": {section: {key: value}}})


def test_out_of_range_constructor_numbers_do_not_raise_later():
    monitor = TrainingMonitor({}, history_size=10**20, sinks=[])
    monitor.log_step(0, {"loss": 1.0})
    disp = AlertDispatcher([], backoff=1e300, max_backoff=1e300, max_retries=10**9)
    assert disp.backoff <= 3600 and disp.max_retries <= 100


def test_one_huge_spike_does_not_hide_later_spikes():
    """After one finite spike >= 1e7 the running sums cancelled and missed 15 of 40 later 50-sigma spikes."""
    cfg = config_from_dict(
        {
            "experiment_monitoring": {
                "anomaly_detection": {"metric_thresholds": {}, "zscore_window": 20, "warmup_steps": 5},
                "auto_recovery": {"enable": False},
            }
        }
    )
    monitor = TrainingMonitor({}, config=cfg, sinks=[])
    rng = np.random.default_rng(0)
    step, caught, spikes = 0, 0, 0
    for i in range(1000):
        value = 0.5 + 0.01 * rng.standard_normal()
        if i == 100:
            value = 1e7
        elif i > 130 and i % 21 == 0 and spikes < 40:
            value, spikes = 0.5 + 50 * 0.01, spikes + 1
            found = monitor.log_step(step, {"train/loss": value})
            caught += any(a.kind == "zscore" for a in found)
            step += 1
            continue
        monitor.log_step(step, {"train/loss": value})
        step += 1
    assert spikes == 40 and caught == 40


def test_a_worker_failure_costs_one_alert_reported_and_flush_says_so(monkeypatch):
    """A sink thread that died (it was killed by a 1e300 s retry wait) dropped every later alert while flush()
    returned True. A failure now costs that alert, reported; the thread goes on; flush() returns False."""
    Recorder.sent = []
    real = alerts.deliver
    calls = {"n": 0}
    lock = threading.Lock()

    def flaky(sink, alert):
        with lock:
            calls["n"] += 1
            first = calls["n"] == 1
        if first:
            raise OverflowError("timeout value is too large")
        return real(sink, alert)

    monkeypatch.setattr(alerts, "deliver", flaky)
    disp = AlertDispatcher([Recorder()], max_retries=0)
    disp.submit(Alert(title="first", text="x"))
    assert not disp.flush(5)  # the first alert was lost: not a clean flush
    assert disp.lost == 1 and not disp.snapshot()[0].ok and "OverflowError" in disp.snapshot()[0].detail
    disp.submit(Alert(title="second", text="x"))
    assert disp.flush(5)
    assert [a.title for a in Recorder.sent] == ["second"]
    disp.close()


@pytest.mark.parametrize(
    "text",
    [
        "a:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(5000)),
        "[" * 5000 + "]" * 5000,
        "{a: " * 5000 + "1" + "}" * 5000,
    ],
    ids=["block", "flow-list", "flow-map"],
)
def test_a_config_nested_5000_levels_is_a_config_error(text):
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_config_text(text)
