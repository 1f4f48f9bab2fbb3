"""Events: one record per real change of a series, detector hits as evidence (analysis/findings/events.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.core.vocabulary import Severity
from analysis.findings.changepoints import change_points
from analysis.findings.events import Event, count_alarms, series_events
from analysis.findings.outliers import outlier_indices
from analysis.findings.pipeline import analyze_run
from analysis.reporting import figures, vega
from analysis.sources import open_run
from tests.wandb_writer import write_run


def _noise(n: int, sd: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, n)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def test_a_level_shift_is_one_event_with_its_levels():
    x = np.r_[np.full(150, 0.9), np.full(150, 0.7)] + _noise(300, 0.01)
    events = series_events(x, metric="recall")
    assert kinds(events) == ["level_shift"]
    (ev,) = events
    assert abs(ev.start_step - 150) <= 2
    assert ev.value_before == pytest.approx(0.9, abs=0.01) and ev.value_after == pytest.approx(0.7, abs=0.01)
    assert ev.magnitude == pytest.approx(-0.2, abs=0.02)
    assert ev.severity == "critical"  # a 22 % fall of recall


@pytest.mark.parametrize("n_before", [11, 30, 97])
def test_a_noiseless_step_is_one_change_at_the_step_and_no_turn(n_before):
    """Exported or quantised metrics can be exactly flat: float rounding left after removing the step must not read
    as a trend that turns (it once gave a zero-size slope_change at step 11 that swallowed the real fall)."""
    x = np.r_[np.full(n_before, 0.9), np.full(60, 0.3)]
    events = series_events(x, metric="recall")
    assert [e.kind for e in events if e.kind != "spike"] in (["level_shift"], ["collapse"])
    assert events[0].start_step == n_before and events[0].severity == "critical"


def test_a_spike_is_one_spike_event_not_a_change():
    x = 0.9 + _noise(400, 0.01, seed=1)
    x[200] = 0.5
    events = series_events(x, metric="recall")
    assert kinds(events) == ["spike"]
    assert events[0].start_step == 200 and events[0].value_after == pytest.approx(0.5)
    assert events[0].severity == "warning"


def test_a_nan_stretch_is_one_critical_event_and_no_change_point_beside_it():
    x = 0.9 + _noise(300, 0.01, seed=2)
    x[100:105] = np.nan
    events = series_events(x, metric="recall")
    assert kinds(events) == ["nonfinite"]
    assert (events[0].start_step, events[0].end_step, events[0].severity) == (100, 104, "critical")
    assert "NaN" in events[0].message
    assert change_points(x) == []


def test_a_flat_floor_with_small_blips_is_not_dozens_of_outliers():
    rng = np.random.default_rng(3)
    x = np.zeros(600)
    blips = rng.choice(600, 60, replace=False)
    x[blips] = rng.uniform(0.1, 0.4, blips.size)
    assert len(outlier_indices(x)) <= 1  # was one "outlier" per blip
    assert count_alarms(series_events(x, metric="loss")) == 0


@pytest.mark.parametrize("kind", ["recall", "loss"])
def test_a_smooth_learning_curve_has_no_event(kind):
    t = np.arange(1000, dtype=float)
    if kind == "recall":
        x = 0.93 - 0.5 * np.exp(-t / 150) + _noise(1000, 0.005, seed=4)
    else:  # a loss with a steep warm-up start, like the real per-step losses
        x = 3.0 + 8.0 / (1.0 + t / 5.0) + _noise(1000, 0.02, seed=4)
    assert series_events(x, metric=kind) == []


def test_a_collapse_after_a_plateau_is_a_collapse():
    x = np.r_[np.full(200, 0.9) + _noise(200, 0.01, seed=5), np.zeros(100)]
    events = series_events(x, metric="recall")
    assert kinds(events) == ["collapse"]
    assert abs(events[0].start_step - 200) <= 2 and events[0].severity == "critical"
    assert events[0].value_after == 0.0


def test_steps_map_events_to_the_run_axis_and_bad_lengths_are_refused():
    x = np.r_[np.full(60, 0.9), np.full(60, 0.5)] + _noise(120, 0.01, seed=6)
    (ev,) = series_events(x, np.arange(120) * 10, metric="recall")
    assert ev.start_step % 10 == 0 and abs(ev.start_step - 600) <= 20
    with pytest.raises(ValueError, match="120 values but 3 steps"):
        series_events(x, [1, 2, 3])
    assert series_events([]) == []


def test_event_json_keeps_its_evidence():
    x = np.r_[np.full(100, 0.9), np.full(100, 0.5)] + _noise(200, 0.01, seed=7)
    d = series_events(x, metric="recall")[0].to_dict()
    assert d["kind"] == "level_shift" and d["severity"] == "critical" and d["metrics"] == ["recall"]
    assert d["evidence"] == [] and d["detectors"] == []


def test_nan_points_are_found_and_a_change_point_after_a_nan_gap_is_recognised():
    steps = np.arange(10) * 10
    values = np.array([0.9, 0.9, 0.9, np.nan, np.nan, 0.9, 0.9, np.inf, 0.9, 0.9])
    curves = figures.MetricCurves("recall", {4: (steps, values)}, figures.pd.DataFrame())
    points = figures.nonfinite_points(curves, [4])
    assert [(b, st, str(sev)) for b, st, _, sev in points] == [
        (4, 30, "critical"),
        (4, 40, "critical"),
        (4, 70, "critical"),
    ]
    # a series that keeps coming back from NaN is drawn in the warning colour, as its event is graded
    sparse = np.where(np.arange(40) % 4 == 0, np.nan, 0.5)
    sparse_curves = figures.MetricCurves("iou", {None: (np.arange(40), sparse)}, figures.pd.DataFrame())
    # (its first value, NaN before any finite one, is "no value yet": a note)
    assert [str(sev) for *_, sev in figures.nonfinite_points(sparse_curves, [None])] == ["info"] + ["warning"] * 9
    assert figures.on_nonfinite_gap(curves, 4, 50)  # first finite step after the NaN gap
    assert figures.on_nonfinite_gap(curves, 4, 40)  # on the gap itself
    assert not figures.on_nonfinite_gap(curves, 4, 20) and not figures.on_nonfinite_gap(curves, 4, 90)
    assert not figures.on_nonfinite_gap(curves, 5, 50)  # a batch not drawn


# ------------------------------------------------------------------------------ runs written by real wandb
def _rows(n_steps: int, nan_at: tuple[int, int] | None = None) -> list[dict]:
    """Four healthy batches (recall and precision logged together, so a NaN recall is kept as logged)."""
    rng = np.random.default_rng(8)
    rows = []
    for s in range(n_steps):
        for b in range(4):
            recall: float | str = round(0.9 + float(rng.normal(0, 0.004)), 4)
            if nan_at == (b, s):
                recall = "NaN"
            rows.append({f"batch_{b}/recall": recall, f"batch_{b}/precision": 0.95, "global_step": s * 10})
    return rows


@pytest.mark.slow
def test_a_healthy_run_has_no_event_and_says_so(tmp_path):
    analysis = analyze_run(open_run(write_run(tmp_path, "healthy", _rows(40))))
    assert analysis.alarm_events == [] and count_alarms(analysis.events) == 0
    assert analysis.problematic_batches == [] and analysis.worst_severity == "ok"
    assert analysis.verdict.startswith("No problematic batches")


@pytest.mark.slow
def test_one_nan_recall_gets_a_marker_on_the_axis_no_change_point_and_a_cause_that_names_it(tmp_path):
    analysis = analyze_run(open_run(write_run(tmp_path, "one-nan", _rows(40, nan_at=(2, 20)))))
    (ev,) = analysis.events
    assert (ev.kind, ev.batch, ev.start_step, ev.severity) == ("nonfinite", 2, 200, "critical")
    assert "nonfinite" in ev.detectors
    assert not [c for c in analysis.change_points if c.batch == 2]
    (cause,) = [c for c in analysis.root_causes if c.batch == 2]
    assert "recall is NaN at step 200" in cause.sentence
    fig = figures.batch_curves_figure(analysis, "recall", batches=[2])
    (nan_trace,) = [t for t in fig.data if t.name == "NaN/Inf (no value)"]
    assert list(nan_trace.x) == [200] and all(math.isfinite(y) for y in nan_trace.y)
    assert not fig.layout.shapes  # no change-point line anywhere on this straight curve
    # the Overview's Vega-Lite chart: the same marker on the axis, a gap in the line, no change line, strict JSON
    spec = vega.batch_curves_spec(analysis, "recall", [2])
    json.dumps(spec, allow_nan=False)
    (nan_mark,) = [r for r in spec["datasets"]["marks"] if r["kind"] == "NaN/Inf (no value)"]
    assert nan_mark["step"] == 200 and math.isfinite(nan_mark["value"]) and "= nan" in nan_mark["finding"]
    assert [r["value"] for r in spec["datasets"]["lines"] if r["series"] == "batch 2" and r["step"] == 200] == [None]
    assert "changes" not in spec["datasets"]  # no change-point line anywhere


def test_the_curves_draw_one_line_per_change_event_and_keep_detector_change_points_a_click_deeper(demo_analysis):
    """The demo's three falls (batches 7, 12, 3) are three events; each gets its line, label and hover marker at
    the event's step, whichever detectors found it. The detectors' own change points (one per metric and more)
    are a hidden legend entry."""
    changes = [e for e in demo_analysis.events if e.is_change and "recall" in e.metrics]
    assert sorted(e.batch for e in changes) == [3, 7, 12]
    fig = figures.batch_curves_figure(demo_analysis, "recall", batches=[3, 7, 12])
    assert sorted(s.x0 for s in fig.layout.shapes) == sorted(e.start_step for e in changes)
    labels = {a.text for a in fig.layout.annotations if a.text and a.text.startswith("b")}
    assert {f"b{e.batch}: {e.value_before:.2f}→{e.value_after:.2f}" for e in changes} <= labels
    (line_marks,) = [t for t in fig.data if t.name == "change point"]
    assert sorted(line_marks.x) == sorted(e.start_step for e in changes)
    (detector_cps,) = [t for t in fig.data if t.name == "detector change point"]
    assert detector_cps.visible == "legendonly" and len(detector_cps.x) == len(
        [c for c in demo_analysis.change_points if c.batch in (3, 7, 12) and c.metric.endswith("recall")]
    )


def test_root_causes_quote_the_levels_of_their_events(demo_analysis):
    """One level before and after a change, read one way (`series_stats.level_at`): the root cause of each
    demo batch says the same numbers as its event (it said "fell 0.92 → 0.60" beside "falls from 0.947")."""
    events = {e.batch: e for e in demo_analysis.events if e.is_change}
    for cause in demo_analysis.root_causes:
        m = re.search(r"fell ([\d.]+) → ([\d.]+) at step (\d+)", cause.sentence)
        assert m, cause.sentence
        event = events[cause.batch]
        assert int(m.group(3)) == event.start_step
        assert (
            abs(float(m.group(1)) - event.value_before) <= 0.005 and abs(float(m.group(2)) - event.value_after) <= 0.005
        )


@pytest.mark.slow
def test_run_level_findings_sit_on_their_line_and_detector_hits_are_a_click_deeper(tmp_path):
    """A run without batch keys (an SRGAN log: PSNR collapses at step 48 and stays there): the chart of run-level
    metrics marks the collapse on the PSNR line at its step and draws its change line, and keeps the detectors'
    hits one click deeper, on the line (an episode's worst value drawn at its first step floated above the line)."""
    rng = np.random.default_rng(9)
    psnr = np.r_[36.5 + 0.1 * rng.normal(size=47), np.full(53, 9.58)]
    rows = [{"PSNR": float(v), "loss": float(0.5 / (s + 1)), "global_step": s + 1} for s, v in enumerate(psnr)]
    analysis = analyze_run(open_run(write_run(tmp_path, "srgan", rows)))
    (ev,) = [e for e in analysis.alarm_events if e.metrics == ("PSNR",)]
    assert ev.kind == "collapse" and ev.batch is None and abs(ev.start_step - 48) <= 1
    fig = figures.global_metrics_figure(analysis, ["PSNR", "loss"])
    g = analysis.global_metrics
    line = dict(zip(g.loc[g["metric"] == "PSNR", "step"], g.loc[g["metric"] == "PSNR", "value"], strict=True))
    (events,) = [t for t in fig.data if t.name == "PSNR: event"]
    assert list(events.x) == [ev.start_step] and list(events.y) == [line[ev.start_step]]
    assert ev.start_step in [s.x0 for s in fig.layout.shapes]
    hits = [t for t in fig.data if t.name.startswith("PSNR: detector hit")]
    assert hits and all(t.visible == "legendonly" for t in hits)
    for t in hits:
        assert all(y == line[x] for x, y in zip(t.x, t.y, strict=True))
    assert not [t for t in fig.data if t.name.startswith("loss: event")]  # a healthy curve beside it: nothing


def test_each_run_level_metric_has_its_own_panel_and_y_axis_and_its_marks_stay_in_it():
    """A real YOLOv5 `results.csv`: recall (0-1) and the box / class / object losses (0.004-0.07) on one axis left
    the losses as flat lines at 0. Each metric now has its panel, all on one step axis; a metric's findings and
    change lines are drawn in its own panel."""
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/yolov5_kelompok20/exp_results.csv"
    analysis = analyze_run(open_table(path))
    names = ["metrics/recall", "val/box_loss", "val/cls_loss", "val/obj_loss"]
    fig = figures.global_metrics_figure(analysis, names)
    lines = {t.name: t for t in fig.data if t.name in names}
    assert [lines[n].yaxis for n in names] == ["y", "y2", "y3", "y4"]
    for n, axis in zip(names, ("y", "y2", "y3", "y4"), strict=True):
        assert all(t.yaxis == axis for t in fig.data if t.name.startswith(f"{n}: ")), n
        lo, hi = float(np.nanmin(lines[n].y)), float(np.nanmax(lines[n].y))
        assert hi - lo > 0.001  # each line spans its own axis, not a sliver of recall's
    assert fig.layout.yaxis2.domain[1] < fig.layout.yaxis.domain[0]  # stacked, not overlaid
    assert {fig.layout.xaxis.matches, fig.layout.xaxis2.matches, fig.layout.xaxis3.matches} == {"x4"}  # one step axis
    assert [a.text for a in fig.layout.annotations][:4] == names
    for shape in fig.layout.shapes:  # a change line spans its own panel only
        assert shape.yref == f"{shape.xref.replace('x', 'y')} domain", (shape.xref, shape.yref)


def test_a_rise_that_accelerates_away_from_a_floor_is_read_as_a_rise_from_the_floor():
    # PaddleOCR's CRNN log: the train edit distance sits at 2e-06 for 14 evaluations and then climbs faster and
    # faster; its level after the exit was read by carrying the stretch back along its steep median slope: -3e-04.
    floor = np.full(14, 2e-6)
    climb = np.array([1.17e-4, 9.7e-5, 8.21e-4, 7.81e-4, 9.43e-4, 1.287e-3, 1.627e-3, 2.613e-3, 4.243e-3, 5.995e-3])
    climb = np.r_[climb, 6e-3 + np.cumsum(np.linspace(1e-3, 3e-3, 30))]
    events = series_events(np.r_[floor, climb], metric="train_norm_edit_dis")
    assert events and events[0].start_step == 14
    assert events[0].value_before == pytest.approx(2e-6) and 0 < events[0].value_after <= climb[:10].max()
    assert "rises" in events[0].message


@pytest.mark.slow
def test_a_return_that_falls_and_a_gradient_norm_that_explodes_are_alarms(tmp_path):
    """The fall of a return is an alarm; so is the jump of a gradient norm, which the default direction (higher is
    better) read as an improvement ("grad_norm rises from 1.0 to 6.0", info)."""
    rng = np.random.default_rng(10)
    reward = np.r_[np.full(60, 93.0), np.full(40, 84.0), np.full(60, 93.5)] + rng.normal(0, 0.4, 160)
    grad = np.r_[np.full(80, 1.0), np.full(80, 6.0)] + rng.normal(0, 0.05, 160)
    rows = [
        {"episode_reward": float(r), "grad_norm": float(g), "global_step": s}
        for s, (r, g) in enumerate(zip(reward, grad))
    ]
    analysis = analyze_run(open_run(write_run(tmp_path, "recovery", rows)))
    fall = [e for e in analysis.alarm_events if e.metrics == ("episode_reward",)]
    assert fall and fall[0].value_after < fall[0].value_before and abs(fall[0].start_step - 60) <= 3
    grad_events = [e for e in analysis.alarm_events if e.metrics == ("grad_norm",)]
    assert grad_events and abs(grad_events[0].start_step - 80) <= 3 and grad_events[0].severity == "critical"


def test_the_climbs_of_a_real_return_back_up_are_no_alarms():
    """drl_pchrist's SAC MountainCar return (benchmarks/data/curves, a real log): it sags and climbs back twice;
    the climbs ("rises from 84.5 to 93.8") were warnings, escalated by the detector hits of the sag beside them.
    The column is named after the algorithm, so its direction comes from the config; without it nothing is known
    and the detectors' hits still escalate (a rise of an unknown metric may be its failure)."""
    from analysis.core.config import AnalyzerConfig
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/drl_pchrist/mountain_car_run0.csv"
    run = open_table(path)

    def climbs(analysis) -> tuple[list, list]:
        sac = [e for e in analysis.events if e.metrics == ("SAC",) and e.is_change]
        up = [e for e in sac if e.value_after > e.value_before]
        return up, [e for e in up if e.is_alarm]

    up, alarms = climbs(
        analyze_run(
            run,
            AnalyzerConfig.model_validate(
                {"experiment_monitoring": {"anomaly_detection": {"metric_directions": {"SAC": "higher_is_better"}}}}
            ),
        )
    )
    assert up and not alarms  # the climbs are still events, not alarms
    up, alarms = climbs(analyze_run(run))
    assert up and alarms


def test_a_return_that_becomes_calmer_is_a_note_not_a_critical_alarm():
    """RL Baselines3 Zoo's SAC LunarLanderContinuous episode returns (benchmarks/data/curves, a real monitor log):
    the frequent crashes stop at episode 410. Calmer noise is an improvement whatever the metric's direction; the
    return's name ("r") says nothing, and the crashes' detector hits made it a critical event."""
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/rl_trained_agents"
    analysis = analyze_run(open_table(path / "sac_LunarLanderContinuous-v2_monitor0.csv"))
    calmer = [e for e in analysis.events if e.metrics == ("r",) and e.kind == "noise_change"]
    assert calmer and calmer[0].value_after < calmer[0].value_before and abs(calmer[0].start_step - 410) <= 12
    assert not any(e.is_alarm for e in calmer)


def test_a_rise_of_a_metric_of_unknown_direction_is_not_raised_by_hits_that_only_flag_falls():
    """Dopamine's C51 AirRaid return (benchmarks/data/curves, a real log; the column is named after the agent, so
    the default direction applies): the curve turns up and keeps rising; the running-best detector's hits of the
    dip before it made the rise a critical event. `drop_from_best` flags falls only: it vouches for no rise. (Its
    direction is now read from its learning curve, `directions.directions_read_from_curves`, so it has a best to
    fall from again, and a dip of 16 % late in the run is one.)"""
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/dopamine_baselines/atari_airraid_run0.csv"
    analysis = analyze_run(open_table(path))
    assert analysis.config.anomaly.metric_directions.get("C51") == "higher_is_better"
    rises = [e for e in analysis.events if e.metrics == ("C51",) and e.is_change and "rising" in e.message]
    assert not any(e.is_alarm or "drop_from_best" in e.detectors for e in rises)


@pytest.mark.slow
def test_a_log_of_runs_appended_shows_the_restarts_and_no_alarm_for_a_slightly_noisier_loss():
    """A D-FINE MMDetection scalars log (benchmarks/data/curves, real; six runs appended, each restarting its step
    counter): read in file order, the restart at data row 153 lifts the total loss; a noise change of x1.2 was a
    critical event on the running-best hits of that restart, which are evidence of falls, not of noise."""
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/dfine_mmdet_pkurnikov/scalars.csv"
    analysis = analyze_run(open_table(path))
    lifted = [e for e in analysis.alarm_events if "loss" in e.metrics and e.kind == "level_shift"]
    assert any(abs(e.start_step - 152) <= 2 and e.value_after > e.value_before for e in lifted)
    (restart,) = [e for e in lifted if e.start_step == 152]  # the restart lifts every loss: one event names them
    assert {"loss", "loss_fgl", "grad_norm"} <= set(restart.metrics) and restart.message.endswith(" more)")
    mild = [e for e in analysis.alarm_events if e.kind == "noise_change" and e.value_after < 2 * e.value_before]
    assert not [e for e in mild if "drop_from_best" in e.detectors]


def test_a_nan_logged_in_a_run_level_metric_of_a_table_gets_its_event_and_marker_and_no_change_point(tmp_path):
    """An SRGAN-style statistics file whose PSNR is written `nan` at epoch 30: one critical NaN event, a marker on
    the run-level chart's axis and no change point beside it (a wandb run's: `test_sources_logged_nan.py`)."""
    from analysis.sources import open_table

    p = tmp_path / "stats.csv"
    p.write_text("epoch,PSNR,loss\n" + "".join(f"{e},{'nan' if e == 30 else 36.5},{1 / e:.4f}\n" for e in range(1, 61)))
    analysis = analyze_run(open_table(p))
    (ev,) = [e for e in analysis.events if e.metrics == ("PSNR",)]
    assert (ev.kind, ev.start_step, ev.severity) == ("nonfinite", 30, "critical")
    assert not [c for c in analysis.change_points if c.metric == "PSNR"]
    fig = figures.global_metrics_figure(analysis, ["PSNR"])
    (nan_trace,) = [t for t in fig.data if t.name == "PSNR: NaN/Inf (no value)"]
    assert list(nan_trace.x) == [30] and all(math.isfinite(y) for y in nan_trace.y)


def test_a_real_segmentation_log_alarms_on_gradient_spikes_only():
    """A Mask2Former training log of 3,200 logged iterations (FreeMask, benchmarks/data/curves; MIT): its losses keep
    falling under heavy noise, its data-loading time drifts, its gradient norm spikes. The running-best and z-score
    hits of the noisy loss made a critical "decode.loss_mask rises to 0.7746 (from 0.768)" (0.06 noise sigmas),
    and a faster data loader was a warning ("data_time falls from 0.0106 to 0.01")."""
    from analysis.sources import open_table

    path = Path(__file__).parent.parent / "benchmarks/data/curves/freemask_liheyoung/coco_mask2former_swin-s.csv"
    analysis = analyze_run(open_table(path))
    alarmed = {m for e in analysis.alarm_events for m in e.metrics}
    assert alarmed == {"grad_norm"}
    assert all(e.kind == "spike" for e in analysis.alarm_events)
    assert not [e for e in analysis.events if {"time", "data_time", "memory"} & set(e.metrics) and e.is_alarm]


def test_run_level_metrics_that_are_nan_in_one_record_are_one_event(tmp_path):
    """RLlib writes episode_reward_mean / _min / _max and episode_len_mean as NaN in every record in which no
    episode ended: one event per record, naming every metric, not one per metric (16 criticals on one Ape-X log)."""
    from analysis.sources import open_table

    rows = ["training_iteration,episode_reward_mean,episode_reward_max,episode_len_mean,loss"]
    for i in range(1, 81):
        empty = i in (30, 55)
        reward = "nan" if empty else f"{10 + i / 4:.2f}"
        rows.append(f"{i},{reward},{reward if empty else f'{15 + i / 4:.2f}'},{'nan' if empty else 900},{1 / i:.4f}")
    rows[70] = rows[70].rsplit(",", 1)[0] + ",nan"  # the loss NaN on its own at iteration 70
    p = tmp_path / "progress.csv"
    p.write_text("\n".join(rows) + "\n")
    nan_events = [e for e in analyze_run(open_table(p)).events if e.kind == "nonfinite"]
    assert [(e.start_step, sorted(e.metrics)) for e in sorted(nan_events, key=lambda e: e.start_step)] == [
        (30, ["episode_len_mean", "episode_reward_max", "episode_reward_mean"]),
        (55, ["episode_len_mean", "episode_reward_max", "episode_reward_mean"]),
        (70, ["loss"]),
    ]


def test_a_run_level_verdict_names_first_the_metric_whose_trouble_starts_at_the_step_it_quotes(tmp_path):
    """The verdict said "critical findings in loss, loss_ddf_aux_0, … from step 49", the step of loss_vfl_pre (last)."""
    from analysis.sources import open_table

    rows = ["epoch,alpha_acc,zeta_acc"]
    for e in range(1, 61):
        rows.append(f"{e},{0.9 if e < 40 else 0.2},{0.9 if e < 20 else 0.1}")
    p = tmp_path / "log.csv"
    p.write_text("\n".join(rows) + "\n")
    verdict = analyze_run(open_table(p)).verdict
    assert "run-level critical findings in zeta_acc, alpha_acc from step 20" in verdict, verdict


def test_a_collapse_keeps_the_evidence_of_the_spikes_just_before_it():
    """A real SRGAN log (benchmarks/data/curves, srgan_sudoxda): the discriminator score swings for ten epochs, then
    collapses to ~0 (1e-38) at epoch 14. Read in step order, the two spikes before it took the change-point and
    z-score hits of the collapse as their own evidence, and the collapse, left with none, was never raised."""
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/srgan_sudoxda/srf_2_train_results.csv"
    analysis = analyze_run(open_table(path))
    collapses = [e for e in analysis.alarm_events if "Score_D" in e.metrics and e.kind == "collapse"]
    assert collapses and abs(collapses[0].start_step - 14) <= 1 and collapses[0].severity == "critical"
    assert "change_point" in collapses[0].detectors


def test_a_yolov5_log_is_judged_on_its_metrics_not_on_its_learning_rates_or_counters():
    """Real logs (benchmarks/data/curves): a YOLOv5 `results.csv` carries its three learning rates as `x/lr0`..
    `x/lr2`, whose warm-up and decay made the run's verdict "critical findings in x/lr0"; a YOLOX log of three
    appended runs carries `iter` and `run` counters, whose restart was a critical "iter fell 67 % from its best"."""
    from analysis.sources import open_table

    root = Path(__file__).resolve().parents[1] / "benchmarks/data/curves"
    yolo = analyze_run(open_table(root / "yolov5_kelompok20/exp_results.csv"))
    named = {m for e in yolo.events for m in e.metrics} | {a.metric for a in yolo.anomalies}
    assert not {m for m in named if m.startswith("x/lr")}
    assert "x/lr" not in yolo.verdict
    yolox = analyze_run(open_table(root / "yolox_fire_kunwoopark/yolox_voc_s_train_log.csv"))
    assert not {a.metric for a in yolox.anomalies} & {"iter", "run", "epoch"}
    restart = [c for c in yolox.root_causes if c.step == 1483]
    assert restart and all(w in restart[0].sentence for w in ("iter", "run", "started again", "a restart"))


def test_an_imagenet_error_that_falls_at_a_learning_rate_step_is_no_alarm():
    """A real ShuffleNetV2 ImageNet log (benchmarks/data/curves): `val_error1` / `val_error5` are top-1 / top-5
    errors; read as higher-is-better, their falls at the learning-rate steps were critical events."""
    from analysis.sources import open_table

    path = (
        Path(__file__).resolve().parents[1] / "benchmarks/data/curves/shufflenetv2_randl/shufflenet_v2_0.5_results.csv"
    )
    analysis = analyze_run(open_table(path))
    falls = [
        e
        for e in analysis.alarm_events
        if e.metric.startswith(("val_error", "train_error")) and e.value_after < e.value_before
    ]
    assert not falls, [(e.metric, e.start_step, e.value_before, e.value_after) for e in falls]
    assert any(e.metric.startswith("val_error") and e.value_after < e.value_before for e in analysis.events)


def test_the_run_level_chart_takes_dozens_of_metrics_and_none(tmp_path):
    """plotly refuses a vertical spacing over 1 / (rows - 1): a user who picks 40 metrics still gets a chart."""
    import pandas as pd

    from analysis.sources import open_table

    rows = [{f"m{k}": float(np.sin(s / (k + 1))) for k in range(40)} | {"global_step": s} for s in range(30)]
    pd.DataFrame(rows).to_csv(tmp_path / "forty.csv", index=False)
    analysis = analyze_run(open_table(tmp_path / "forty.csv"))
    names = sorted(analysis.global_metrics["metric"].unique().tolist())
    fig = figures.global_metrics_figure(analysis, names)
    assert len([t for t in fig.data if t.name in names]) == 40 and fig.layout.height > 40 * 100
    assert len(figures.global_metrics_figure(analysis, []).data) == 0


def test_the_report_charts_the_alarmed_metrics_not_the_counters():
    """The HTML report draws at most six run-level metrics: on a real YOLOX log (epoch, iter, run and lr beside the
    losses) two of its panels went to `epoch` and `iter`, and the alarmed `total_loss` was left out."""
    from analysis.reporting.html import MAX_GLOBAL_METRICS, build_charts
    from analysis.sources import open_table

    path = (
        Path(__file__).resolve().parents[1] / "benchmarks/data/curves/yolox_fire_kunwoopark/yolox_voc_s_train_log.csv"
    )
    analysis = analyze_run(open_table(path))
    names = set(analysis.global_metrics["metric"].unique().tolist())
    (chart,) = [c for c in build_charts(analysis) if c["id"] == "chart-global"]
    drawn = [t["name"] for t in json.loads(chart["figure"])["data"] if t.get("name") in names]
    assert set(drawn) == {"cls_loss", "conf_loss", "iou_loss", "total_loss", "l1_loss"}  # every loss, no counter
    assert len(names) > MAX_GLOBAL_METRICS
    alarmed = {m for e in analysis.alarm_events for m in e.metrics}
    assert alarmed <= set(drawn) and set(drawn[: len(alarmed)]) == alarmed  # the alarmed panels on top


def test_an_event_raised_by_a_running_best_hit_says_how_far_below_its_best_the_metric_is():
    """A 4x Faster R-CNN schedule (zhaoyang97/mmdetection, real, test batch 22): after the LR step the mAP peaks at
    0.279 and declines to 0.240. The event at step 93750 read "falls from 0.266 to 0.261" and was a warning only
    because the mAP stood 13 % below its best, which the message did not say."""
    from analysis.sources import open_table

    path = (
        Path(__file__).resolve().parents[1] / "benchmarks/data/curves/mmdet_zhaoyang97/faster_rcnn_r50_fpn_4x_tct.csv"
    )
    (event,) = [e for e in analyze_run(open_table(path)).alarm_events if e.metric == "bbox_mAP"]
    assert "drop_from_best" in event.detectors and event.severity == "warning"
    assert "from its best (to 0.239)" in event.message and event.message.startswith("bbox_mAP falls from")


def test_a_gradient_norms_mixed_precision_overflow_is_a_warning_and_no_divergence():
    """A Swin-T CIFAR-10 log (YeSh1ne/Swin-TransformerUsed, real, test batch 23): the grad norm is `inf` at one
    printout (a mixed-precision overflow; the loss scaler skips the step) and training goes on. It was a critical
    event and a root cause "grad_norm turned Inf at step 19050: the run diverged"."""
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/swin_yesh1ne/swin_tiny_cifar10.csv"
    analysis = analyze_run(open_table(path))
    overflow = [e for e in analysis.events if e.kind == "nonfinite" and e.metric == "grad_norm"]
    assert overflow and all(e.severity == "warning" for e in overflow)
    assert not [c for c in analysis.root_causes if "diverged" in c.sentence]
    assert analysis.worst_severity != "critical"


def test_a_series_that_is_nan_now_and_then_is_one_warning_event_not_one_per_stretch():
    """Darknet prints a layer's IoU as `-nan` at iterations with no object assigned (real test batch 24: 271
    stretches in one run, each a critical event). Coming back to finite values again and again is no divergence."""
    rng = np.random.default_rng(0)
    x = 0.55 + rng.normal(0, 0.05, 300)
    x[rng.random(300) < 0.8] = np.nan
    events = series_events(x, metric="r16_avg_iou")
    nan_events = [e for e in events if e.kind == "nonfinite"]
    assert len(nan_events) == 1, [e.message for e in nan_events]
    (ev,) = nan_events
    assert ev.severity == "warning" and "now and then" in ev.message
    assert f"at {int(np.isnan(x).sum())} of 300 points" in ev.message
    # two stretches a metric came back from are still two critical events (not yet "now and then")
    y = np.linspace(1.0, 0.5, 100)
    y[20:25] = np.nan
    y[60:62] = np.nan
    two = [e for e in series_events(y, metric="loss") if e.kind == "nonfinite"]
    assert [(e.start_step, e.end_step, str(e.severity)) for e in two] == [(20, 24, "critical"), (60, 61, "critical")]


def test_a_value_between_two_nans_is_drawn_as_a_marker_since_a_line_shows_nothing_of_it():
    assert figures.line_mode(np.array([0.5, 0.6, 0.7])) == "lines"
    assert figures.line_mode(np.array([0.5, np.nan, 0.6, 0.7])) == "lines+markers"  # the first value stands alone
    assert figures.line_mode(np.array([np.nan, 0.5, 0.6, np.nan, np.nan])) == "lines"


def test_nan_before_a_metrics_first_value_is_a_note_and_nan_at_every_step_is_critical():
    """RLlib's mean episode reward is NaN until the first episode ends; an ST-GCN log's first 228 rows carry no
    training loss (real corpus). Each read "the run diverged". A loss that is never finite stays critical."""
    x = np.r_[np.full(3, np.nan), np.linspace(10.0, 50.0, 60)]
    (ev,) = [e for e in series_events(x, metric="episode_reward_mean") if e.kind == "nonfinite"]
    assert (str(ev.severity), ev.start_step, ev.end_step) == ("info", 0, 2) and "no value yet" in ev.message
    assert not ev.is_alarm
    (never,) = series_events(np.full(20, np.nan), metric="loss")
    assert str(never.severity) == "critical" and never.end_step == 19


def test_a_small_change_near_one_is_shown_with_the_digits_that_tell_before_from_after():
    """An SSH face detector's background accuracy (real batch 24) "falls to 0.999 (from 0.999)"."""
    from analysis.core.numbers import shown_apart
    from analysis.reporting.values import fmt_change

    assert shown_apart(0.99896, 0.99904) == ("0.99896", "0.99904")
    assert shown_apart(0.5, 0.25) == ("0.5", "0.25") and shown_apart(math.nan, 1.0) == ("nan", "1")
    assert fmt_change(0.99896, 0.99904) == "0.99896 → 0.99904" and fmt_change(0.5, 0.5) == "0.5 → 0.5"
    x = np.r_[np.full(100, 0.99896), np.full(100, 0.99904)] + _noise(200, 0.000005, seed=3)
    (ev,) = [e for e in series_events(x, metric="acc_bg") if e.kind == "level_shift"]
    assert "0.999 to 0.999 " not in ev.message and "0.9990" in ev.message, ev.message


def test_a_merged_event_that_is_a_collapse_speaks_with_the_collapse():
    from analysis.findings.events import _combine

    rise = Event("level_shift", "R", 10, 20, 0.1, 0.3, 0.2, Severity.CRITICAL, "R rises from 0.1 to 0.3 at step 10")
    fall = Event(
        "collapse", "loss_D", 10, 20, 1.0, 0.0, -1.0, Severity.WARNING, "loss_D collapses from 1 to 0 at step 10"
    )
    for a, b in ((rise, fall), (fall, rise)):
        merged = _combine(a, b)
        assert merged.kind == "collapse" and merged.message.startswith("loss_D collapses"), merged
        assert merged.metrics == ("loss_D", "R") and merged.severity == "critical"


def test_a_flat_stretch_that_turns_noisy_says_so_and_a_break_with_equal_levels_is_no_event():
    """Real corpus messages: "FP becomes noisier at step 1115 (noise xinf)" (a YOLOv3 count that sat at 0) and
    "seed_0 falls from 1000 to 1000 at step 25000" (an RL return at its cap of 1000, whose dips change)."""
    rng = np.random.default_rng(2)
    x = np.r_[np.zeros(150), 3.0 + rng.normal(0, 1.0, 150)]
    for ev in series_events(x, metric="FP"):
        assert "xinf" not in ev.message and "inf)" not in ev.message, ev.message
    capped = np.full(300, 1000.0)
    capped[150:][rng.random(150) < 0.3] = 950.0  # dips below the cap from step 150 on; the median stays 1000
    for ev in series_events(capped, metric="episode_return"):
        assert not (ev.kind == "level_shift" and ev.value_before == ev.value_after), ev.message


def test_a_metric_that_slides_to_zero_and_holds_it_exactly_is_a_collapse_not_a_calmer_curve():
    """uncertain-factor/occluded-person-reid's log (batch 27): the stage-2 training accuracy slides from 0.63 to 0.004
    over 18 records and then reads exactly 0 for 215. Found as a settling on one value (a noise change), it was
    "becomes flat", a note, and the run "had no alarms". A loss that settles on exactly 0 is no collapse."""
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/reid_uncertainfactor/train_log.csv"
    analysis = analyze_run(open_table(path))
    (collapse,) = [e for e in analysis.alarm_events if e.metrics == ("stage2_acc",)]
    assert collapse.kind == "collapse" and collapse.severity == "critical" and collapse.value_after == 0.0
    assert (collapse.start_step, collapse.end_step) == (124, 339)  # held to the log's last record
    assert "stage2_acc" in analysis.verdict
    (fall,) = [a for a in analysis.anomalies if a.metric == "stage2_acc" and a.detector == "drop_from_best"]
    assert "fell 100% from its best (to 0)" in fall.message, fall.message  # it read "fell to 0, 2 times its best"

    steps = np.arange(200)
    loss = np.r_[np.linspace(1.0, 0.01, 60) + np.random.default_rng(2).normal(0, 0.01, 60), np.zeros(140)]
    settled = series_events(loss, steps, metric="train/loss")
    assert not [e for e in settled if e.kind == "collapse" or e.is_alarm], settled
