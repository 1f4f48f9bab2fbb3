"""The Overview's curves as a Vega-Lite spec (`analysis.reporting.vega`): the same lines and the same findings,
at the same steps and values, as the plotly chart of the Batches page and the HTML report."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
import pytest

from analysis.reporting import figures, vega

if TYPE_CHECKING:
    from analysis.findings.pipeline import RunAnalysis


def _bare_analysis(frame: pd.DataFrame) -> RunAnalysis:
    """An analysis with curves and no findings: the spec reads only `batches`, `events`, `anomalies` and
    `change_points` of it."""
    return cast("RunAnalysis", SimpleNamespace(events=[], anomalies=[], change_points=[], batches=frame))


def _rows(spec: dict, kind: str | None = None) -> list[dict]:
    """Rows of every named data set; only the marker rows of `kind` when given."""
    out = [row for rows in spec["datasets"].values() for row in rows]
    return out if kind is None else [r for r in out if r.get("kind") == kind]


def _change_rules(spec: dict) -> list[dict]:
    return spec["datasets"].get("changes", [])


def _trace(fig, name: str):
    found = [t for t in fig.data if t.name == name]
    return found[0] if found else None


def test_the_demo_curves_mark_the_same_findings_as_the_plotly_chart(demo_analysis):
    batches = [3, 7, 12]
    spec = vega.batch_curves_spec(demo_analysis, "recall", batches)
    fig = figures.batch_curves_figure(demo_analysis, "recall", batches)
    json.dumps(spec, allow_nan=False)  # strict JSON: no NaN reaches the browser
    events = _trace(fig, "event")
    assert sorted((r["step"], r["value"]) for r in _rows(spec, "event")) == sorted(zip(events.x, events.y))
    assert sorted(r["step"] for r in _change_rules(spec)) == sorted(s.x0 for s in fig.layout.shapes)
    labels = {a.text for a in fig.layout.annotations}
    assert {r["label"] for r in _change_rules(spec)} <= labels
    lines = {r["series"] for r in _rows(spec) if "series" in r}
    assert lines == {"batch 3", "batch 7", "batch 12"}
    # each event sits on its batch's line
    on_line = {(r["step"], r["value"]) for r in _rows(spec) if "series" in r}
    assert _rows(spec, "event") and all((r["step"], r["value"]) in on_line for r in _rows(spec, "event"))
    # detector hits and the detectors' own change points: only when asked for (plotly: a hidden legend entry)
    assert not [r for r in _rows(spec) if str(r.get("kind", "")).startswith("detector")]
    deep = vega.batch_curves_spec(demo_analysis, "recall", batches, show_hits=True)
    hits = [t for t in fig.data if t.name.startswith("detector hit")]
    assert len([r for r in _rows(deep) if str(r.get("kind", "")).startswith("detector hit")]) == sum(
        len(t.x) for t in hits
    )
    assert len(_rows(deep, "detector change point")) == len(_trace(fig, "detector change point").x)


def test_the_band_covers_every_batch_and_the_threshold_is_drawn(demo_analysis):
    spec = vega.batch_curves_spec(demo_analysis, "recall", [7], threshold=0.8)
    area, median = spec["layer"][:2]  # the band's range and its median line share one data set
    assert area["data"] == median["data"] == {"name": "band"} and median["mark"]["strokeDash"]
    band = spec["datasets"]["band"]
    curves = figures.MetricCurves.from_batches(demo_analysis.batches, "recall")
    assert [r["step"] for r in band] == curves.band["step"].tolist()  # 40 steps: nothing decimated
    assert all(r["lo"] <= r["median"] <= r["hi"] for r in band)
    assert spec["datasets"]["threshold"] == [{"value": 0.8, "label": "recall threshold 0.8"}]
    assert [layer["mark"]["type"] for layer in spec["layer"] if layer["data"] == {"name": "threshold"}] == [
        "rule",
        "text",
    ]
    assert spec["title"]["text"] == "recall per batch" and "range of all batches" in spec["title"]["subtitle"]


def _curves_with_spike() -> tuple[RunAnalysis, figures.MetricCurves]:
    steps = np.arange(0, 500, 10)
    rng = np.random.default_rng(3)
    rows = []
    for b in (0, 1):
        y = 0.9 + rng.normal(0, 0.01, steps.size)
        if b == 1:
            y[20] = 0.1  # one far-off point
        rows += [{"step": s, "batch": b, "metric": "recall", "value": v} for s, v in zip(steps, y, strict=True)]
    frame = pd.DataFrame(rows)
    return _bare_analysis(frame), figures.MetricCurves.from_batches(frame, "recall")


def test_ignoring_outliers_clips_the_axis_and_draws_the_far_point_at_its_edge():
    analysis, curves = _curves_with_spike()
    spec = vega.batch_curves_spec(analysis, "recall", [0, 1], ignore_outliers=True, curves=curves)
    domains = [layer["encoding"]["y"]["scale"]["domain"] for layer in spec["layer"] if "y" in layer.get("encoding", {})]
    lo, hi = domains[0]
    assert all(d == [lo, hi] for d in domains) and lo > 0.1
    (edge,) = _rows(spec, "outside axis (below)")
    assert edge["step"] == 200 and edge["value"] == pytest.approx(lo) and "0.1000" in edge["finding"]
    plain = vega.batch_curves_spec(analysis, "recall", [0, 1], curves=curves)
    assert not _rows(plain, "outside axis (below)")
    assert all("domain" not in layer["encoding"]["y"]["scale"] for layer in plain["layer"] if "y" in layer["encoding"])


def test_smoothing_keeps_the_raw_line_faint_beside_the_smoothed_one_and_changes_only_the_data():
    analysis, curves = _curves_with_spike()
    spec = vega.batch_curves_spec(analysis, "recall", [1], smoothing=0.8, curves=curves, show_band=False)
    raw = [r for r in spec["datasets"]["lines"] if r["line"] == "raw"]
    smooth = [r for r in spec["datasets"]["lines"] if r["line"] == "smoothed"]
    assert all(r["alpha"] < 1 and r["width"] == 1 for r in raw) and all(r["alpha"] == 1 for r in smooth)
    assert [r["step"] for r in raw] == [r["step"] for r in smooth]
    assert min(r["value"] for r in raw) == pytest.approx(0.1) and min(r["value"] for r in smooth) > 0.5
    # the chart itself (everything but its data) is the same without smoothing: the browser keeps it and swaps data
    plain = vega.batch_curves_spec(analysis, "recall", [1], curves=curves, show_band=False)
    assert {r["line"] for r in plain["datasets"]["lines"]} == {"raw"}
    assert {k: v for k, v in spec.items() if k != "datasets"} == {k: v for k, v in plain.items() if k != "datasets"}


def test_a_long_run_is_drawn_decimated_but_keeps_every_extreme():
    steps = np.arange(100_000)
    y = np.full(steps.size, 0.9)
    y[54_321] = 0.2
    frame = pd.DataFrame({"step": steps, "batch": 0, "metric": "recall", "value": y})
    curves = figures.MetricCurves.from_batches(frame, "recall")
    spec = vega.batch_curves_spec(_bare_analysis(frame), "recall", [0], max_points=1000, curves=curves)
    line = spec["datasets"]["lines"]
    assert len(line) <= 1000 and any(r["step"] == 54_321 and r["value"] == 0.2 for r in line)
    band = spec["datasets"]["band"]
    assert len(band) <= 1000 and any(r["lo"] == 0.2 for r in band)


def test_every_chart_of_a_log_of_runs_one_after_another_marks_each_restart(tmp_path):
    """A log of runs written one after another (batch 28's 30 runs of 50 epochs in one log.csv) showed its falls
    at each new run with nothing on the charts saying a run started there: the restarts were change points of the
    `epoch` column only, drawn on its own chart. Every chart now has a grey line at each restart (no label: 30 of
    them would bury the change labels), with a hover marker on run-level curves."""
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_table

    rng = np.random.default_rng(5)
    runs, epochs = 3, 40
    epoch = np.tile(np.arange(epochs), runs)
    learnt = 0.9 * (1 - np.exp(-epoch / 5.0))
    frame = pd.DataFrame({"epoch": epoch, "val_loss": 1.0 - learnt + rng.normal(0, 0.01, epoch.size),
                          "val_acc": learnt + rng.normal(0, 0.01, epoch.size)})  # fmt: skip
    for b in range(2):
        frame[f"batch_{b}/recall"] = learnt + rng.normal(0, 0.01, epoch.size)
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    analysis = analyze_run(open_table(str(path)))

    grey = figures.RESTART_COLOUR
    spec = vega.batch_curves_spec(analysis, "recall", [0, 1])
    assert [r["step"] for r in _change_rules(spec) if r["colour"] == grey] == [40, 80]
    assert all(r["label"] == "" for r in _change_rules(spec) if r["colour"] == grey)

    fig = figures.global_metrics_figure(analysis, ["val_loss"])
    assert sorted(s.x0 for s in fig.layout.shapes if s.line.color == grey) == [40, 80]
    hover = _trace(fig, "restart")
    assert hover is not None and list(hover.x) == [40, 80]
    assert "restart: epoch started again" in hover.text[0] and "epoch 39 → 0" in hover.text[0]
    # several panels: one legend entry for all their restart markers
    both = figures.global_metrics_figure(analysis, ["val_loss", "val_acc"])
    assert [t.showlegend for t in both.data if t.legendgroup == "restart"] == [True, False]
    # the counter's own chart shows them as its change points, not twice
    own = figures.global_metrics_figure(analysis, ["epoch"])
    assert not [s for s in own.layout.shapes if s.line.color == grey]


def test_restarts_at_one_step_are_one_line_and_a_log_of_very_many_restarts_draws_none(tmp_path):
    """Two counters that start again at one step (`epoch` back to 0 and a new `run`) are one line naming both; a
    log of more than `MAX_RESTART_LINES` restarts (a real DeblurGAN loss log has 161) draws none: a grey wall says
    nothing, and the run's notes say how often its counter goes back."""
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_table

    rng = np.random.default_rng(6)
    for runs, epochs, lines in ((3, 30, [30, 60]), (figures.MAX_RESTART_LINES + 5, 6, [])):
        epoch = np.tile(np.arange(epochs), runs)
        frame = pd.DataFrame({"run": np.repeat(np.arange(runs), epochs), "epoch": epoch,
                              "val_loss": np.exp(-epoch / 3.0) + rng.normal(0, 0.01, epoch.size)})  # fmt: skip
        path = tmp_path / f"runs_{runs}.csv"
        frame.to_csv(path, index=False)
        fig = figures.global_metrics_figure(analyze_run(open_table(str(path))), ["val_loss"])
        assert sorted(s.x0 for s in fig.layout.shapes if s.line.color == figures.RESTART_COLOUR) == lines
        if lines:
            assert "restart: epoch, run started again" in _trace(fig, "restart").text[0]


def test_change_labels_that_would_overlap_keep_the_more_severe_one_and_every_line():
    """A log of 30 runs one after another (batch 28) put 20 change labels on one chart, many a few steps apart:
    "0.27→0.00val_iou_12: 0.21→0.00…" in one smear. A label that would overlap a more severe one (or an earlier one
    of the same severity) is left out; every change line and its hover stay."""
    from analysis.core.vocabulary import Severity
    from analysis.findings.events import Event

    def change(step: int, severity: str, before: float) -> Event:
        return Event(kind="level_shift", metric="recall", start_step=step, end_step=step, value_before=before,
                     value_after=0.1, magnitude=0.1 - before, severity=Severity(severity), message="")  # fmt: skip

    steps = np.arange(1000)
    curves = figures.MetricCurves("recall", {None: (steps, np.full(steps.size, 0.5))}, pd.DataFrame())
    events = [change(100, "warning", 0.5), change(104, "critical", 0.6), change(500, "warning", 0.7)]
    analysis = cast("RunAnalysis", SimpleNamespace(events=events, anomalies=[], change_points=[]))
    marks = figures.curve_marks(analysis, curves, "recall", {None})
    assert [(m.x, m.label) for m in marks.changes] == [(100, ""), (104, "0.60→0.10"), (500, "0.70→0.10")]
    # far enough apart, both keep their labels
    events[1] = change(200, "critical", 0.6)
    marks = figures.curve_marks(analysis, curves, "recall", {None})
    assert all(m.label for m in marks.changes)
