"""A NaN a wandb run logged is told from a key it did not log (`Run.logged_nan`), through the decoder, the cache,
a `keys=` read, a resumed run's merge and a live refresh; the run-level NaN then gets its critical event."""

from __future__ import annotations

import math

import pytest

from analysis.findings.pipeline import analyze_run
from analysis.reporting import figures
from analysis.sources import open_run, refresh_run
from tests.wandb_synth import history_record_ends
from tests.wandb_writer import write_run, write_sessions

pytestmark = pytest.mark.slow  # real wandb offline runs written in subprocesses


def _rows(n: int, nan_at: int) -> list[dict]:
    rows = []
    for s in range(n):
        row: dict = {"train/loss": "NaN" if s == nan_at else round(1.0 / (s + 1), 5)}
        if s % 10 == 0:
            row["val/acc"] = 0.5 + s / 1000  # logged every 10 steps: absent, not NaN, in between
        rows.append(row)
    return rows


def test_a_nan_loss_logged_by_wandb_is_a_logged_nan_and_gets_its_critical_event(tmp_path):
    run_dir = write_run(tmp_path, "nan-loss", _rows(60, nan_at=30))
    for run in (open_run(run_dir, cache=False), open_run(run_dir), open_run(run_dir)):  # decoded, saved, cached
        assert {k: v.tolist() for k, v in run.logged_nan.items()} == {"train/loss": [30]}
        assert math.isnan(run.history.loc[run.history["_step"] == 30, "train/loss"].iloc[0])
    assert open_run(run_dir, keys=["val/acc"]).logged_nan == {}
    assert list(open_run(run_dir, keys=["train/loss"]).logged_nan) == ["train/loss"]
    analysis = analyze_run(open_run(run_dir))
    (ev,) = analysis.events  # val/acc's 54 steps without a value are no event
    assert (ev.kind, ev.metrics, ev.start_step, ev.severity) == ("nonfinite", ("train/loss",), 30, "critical")
    assert not analysis.change_points
    fig = figures.global_metrics_figure(analysis, ["train/loss"])
    (nan_trace,) = [t for t in fig.data if t.name == "train/loss: NaN/Inf (no value)"]
    assert list(nan_trace.x) == [30] and all(math.isfinite(y) for y in nan_trace.y)


def test_a_metric_logged_as_nan_now_and_then_is_one_warning_event_drawn_in_the_warning_colour(tmp_path):
    """A layer IoU that Darknet prints as `-nan` whenever no object was assigned (real test batch 24), here logged
    through wandb as NaN at every fourth step: one warning event, no divergence, orange markers on the axis."""
    rows = [
        {"train/loss": round(1.0 / (s + 1), 5), "r16_iou": "NaN" if s % 4 == 1 else 0.5 + (s % 7) / 100}
        for s in range(80)
    ]
    analysis = analyze_run(open_run(write_run(tmp_path, "sparse-iou", rows)))
    nan_events = [e for e in analysis.events if e.kind == "nonfinite"]
    assert [(e.metric, str(e.severity)) for e in nan_events] == [("r16_iou", "warning")]
    assert "now and then: at 20 of 80 points, in 20 stretches" in nan_events[0].message
    assert not any("diverged" in c.sentence for c in analysis.root_causes)
    fig = figures.global_metrics_figure(analysis, ["r16_iou"])
    (nan_trace,) = [t for t in fig.data if t.name == "r16_iou: NaN/Inf (no value)"]
    assert len(nan_trace.x) == 20 and set(nan_trace.marker.color) == {figures.SEVERITY_COLOURS["warning"]}


_RESUMED = r"""
import sys, wandb
d, phase = sys.argv[1], int(sys.argv[2])
run = wandb.init(project="tests", id="nanresume1", name="preempted", resume="allow", dir=d)
for s in range(10):
    wandb.log({"loss": float("nan") if (phase, s) in ((0, 4), (1, 3)) else 1.0 / (10 * phase + s + 1)})
run.finish()
"""


def test_a_resumed_run_shifts_the_logged_nans_of_its_later_session(tmp_path):
    """The second session restarts `_step` at 0 and follows on after step 9: its NaN at its step 3 is step 13."""
    write_sessions(tmp_path, _RESUMED, [["0"], ["1"]])
    newest = sorted((tmp_path / "wandb").glob("offline-run-*-nanresume1"))[-1]
    for run in (open_run(newest, cache=False), open_run(newest), open_run(newest)):
        assert {k: v.tolist() for k, v in run.logged_nan.items()} == {"loss": [4, 13]}


def test_a_live_refresh_adds_the_nans_logged_since_the_last_read(tmp_path):
    finished = write_run(tmp_path, "live-nan", [{"loss": "NaN" if s in (3, 8) else 1.0 / (s + 1)} for s in range(12)])
    src = next(finished.glob("*.wandb"))
    data = src.read_bytes()
    live = tmp_path / "live" / finished.name
    live.mkdir(parents=True)
    (live / src.name).write_bytes(data[: history_record_ends(src)[5]])
    run = open_run(live, cache=False)
    assert {k: v.tolist() for k, v in run.logged_nan.items()} == {"loss": [3]}
    (live / src.name).write_bytes(data)
    later = refresh_run(run)
    assert len(later.history) == 12 and {k: v.tolist() for k, v in later.logged_nan.items()} == {"loss": [3, 8]}
