"""BatchMetrics beyond the handbook's key names: detected layouts and a configurable key pattern."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.core.config import config_from_dict
from analysis.core.errors import ConfigError
from analysis.findings.batches import batch_metrics, batch_pattern, global_metrics, problematic_images
from analysis.sources import open_run
from tests.wandb_writer import write_run


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory):
    rows: list[dict[str, Any]] = []
    for s in range(6):
        rows.append(
            {
                "global_step": s * 100,
                "val/loss": 1.0 / (s + 1),
                **{f"val/batch_{b}/recall": 0.9 - 0.01 * s * b for b in range(3)},
                **{f"test/batch_{b}/recall": 0.8 for b in range(3)},
            }
        )
        if s == 3:
            rows[-1]["val/problematic_batch_2"] = ["data/x.png", "data/y.png"]
    return open_run(write_run(tmp_path_factory.mktemp("prefixed"), "prefixed", rows), cache=False)


@pytest.fixture(scope="module")
def suffixed(tmp_path_factory):
    rows = [
        {
            "global_step": s,
            "recall_batch3": 0.5 + s / 10,
            "hmean_batch_12": 0.4,
            "b7.precision": 0.25 * s,
            "val/recall": 0.7,
        }
        for s in range(4)
    ]
    return open_run(write_run(tmp_path_factory.mktemp("suffixed"), "suffixed", rows), cache=False)


def test_prefixed_layout_is_detected_and_prefixes_kept_apart(prefixed):
    bm = batch_metrics(prefixed)
    assert set(bm["metric"]) == {"val/recall", "test/recall"}  # two prefixes: folded into the metric name
    assert set(bm["batch"]) == {0, 1, 2}
    b2 = bm[(bm["batch"] == 2) & (bm["metric"] == "val/recall")]
    assert list(b2["step"]) == [0, 100, 200, 300, 400, 500]
    assert b2["value"].iloc[-1] == pytest.approx(0.9 - 0.01 * 5 * 2)
    g = global_metrics(prefixed)
    assert set(g["metric"]) == {"val/loss"}  # batch keys and problematic lists are not run-level metrics
    imgs = problematic_images(prefixed)
    assert imgs.to_dict("records") == [
        {"step": 300, "batch": 2, "path": "data/x.png"},
        {"step": 300, "batch": 2, "path": "data/y.png"},
    ]


def test_suffixed_layout_is_detected(suffixed):
    bm = batch_metrics(suffixed)
    assert sorted(set(zip(bm["batch"], bm["metric"]))) == [(3, "recall"), (12, "hmean")]
    r3 = bm[bm["batch"] == 3].sort_values("step")
    assert list(r3["value"]) == pytest.approx([0.5, 0.6, 0.7, 0.8])
    assert {"val/recall", "b7.precision"} <= set(global_metrics(suffixed)["metric"])


def test_custom_pattern_from_the_config(suffixed):
    cfg = config_from_dict({"training_config": {"batch_key_pattern": r"^b(?P<batch>\d+)\.(?P<metric>\w+)$"}})
    pattern = cfg.training_config.batch_key_pattern
    bm = batch_metrics(suffixed, pattern=pattern)
    assert set(bm["batch"]) == {7} and set(bm["metric"]) == {"precision"}
    assert list(bm.sort_values("step")["value"]) == [0.0, 0.25, 0.5, 0.75]
    assert "b7.precision" not in set(global_metrics(suffixed, pattern=pattern)["metric"])


def test_handbook_layout_still_the_default(tmp_path):
    run = open_run(
        write_run(tmp_path, "hb", [{"global_step": 10, "batch_0/recall": 0.9, "x_batch1": 0.1}]), cache=False
    )
    assert batch_pattern(run.history.columns).pattern == r"^batch_(?P<batch>\d+)/(?P<metric>[^/]+)$"
    assert batch_metrics(run)[["batch", "metric"]].values.tolist() == [[0, "recall"]]


@pytest.mark.parametrize("bad", [r"batch_(\d+)", r"(?P<batch>\d+", r"^(?P<batch>\d+)$"])
def test_bad_patterns_are_config_errors(suffixed, bad):
    with pytest.raises(ConfigError):
        batch_metrics(suffixed, pattern=bad)
    with pytest.raises(ConfigError, match="batch_key_pattern"):
        config_from_dict({"training_config": {"batch_key_pattern": bad}})
