"""Notebooks: `analyze()` in one line, and `Report` / `RunAnalysis` showing themselves through `_repr_html_`."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from analysis.core.errors import RunNotFound
from analysis.findings.notebook import KeyFigure, figure_svg
from analysis.findings.pipeline import analyze_run
from analysis.reporting.model import Report
from analysis.sources import open_run
from experiment_analyzer import analyze
from tests.report_runs import XSS_METRIC, XSS_NAME, write_hostile_run

pytestmark = pytest.mark.slow  # a real offline wandb run is written for the module


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A real offline run named `<script>alert(1)</script>` with a markup metric key; (wandb parent, run dir)."""
    base = tmp_path_factory.mktemp("notebook")
    return base, write_hostile_run(base)


def _cells(fragment: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", fragment)


def test_analyze_resolves_a_name_in_a_wandb_dir_and_a_run_folder(hostile, monkeypatch):
    base, run_dir = hostile
    by_name = analyze(XSS_NAME, wandb_dir=base / "wandb")
    assert isinstance(by_name, Report) and by_name.run_name == XSS_NAME
    assert by_name.severity == "critical" and [b["batch"] for b in by_name.problematic_batches][:1] == [1]
    monkeypatch.chdir(base)  # the default wandb dir is ./wandb
    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert analyze(XSS_NAME).run["id"] == by_name.run["id"]
    by_folder = analyze(run_dir)
    assert by_folder.run["id"] == by_name.run["id"] and by_folder.summary["verdict"] == by_name.summary["verdict"]
    by_file = analyze(str(next(run_dir.glob("*.wandb"))))
    assert by_file.run["id"] == by_name.run["id"]
    with pytest.raises(RunNotFound, match="no_such_run"):
        analyze("no_such_run")


def test_repr_html_escapes_the_run_and_shows_verdict_events_and_batches(hostile):
    base, _ = hostile
    report = analyze(XSS_NAME, wandb_dir=base / "wandb")
    page = report._repr_html_()
    assert "<script" not in page and "onerror" not in page.replace("onerror=alert(2)&gt;", "")
    assert html.escape(XSS_NAME) in page
    assert "<img" not in page and html.escape(XSS_METRIC) in page  # the markup metric, as text
    assert html.escape(report.summary["verdict"]) in page and ">critical<" in page
    cells = _cells(page)
    alarms = [e for e in report.events if e["severity"] in ("warning", "critical")]
    for event in alarms[:10]:
        assert html.escape(event["message"]) in cells
    # the problematic batches table: batch numbers in order, worst first
    batches_table = page.split("Problematic batches", 1)[1]
    assert [c for c in _cells(batches_table)[::6]] == [str(b["batch"]) for b in report.problematic_batches][:10]
    # the key figure: one line per problematic batch plus the median, a marker per event on those batches
    svg = page[page.index("<svg") : page.index("</svg>")]
    shown = [b["batch"] for b in report.problematic_batches][:4]
    assert svg.count("<polyline") == 1 + len(shown)
    marked = [e for e in report.events if e["batch"] in shown and "recall" in e["metrics"]]
    assert svg.count("<circle") == len(marked) >= 1


def test_run_analysis_shows_the_same_summary(hostile):
    _, run_dir = hostile
    analysis = analyze_run(open_run(run_dir))
    page = analysis._repr_html_()
    report_page = Report.from_analysis(analysis, charts=False)._repr_html_()
    assert html.escape(analysis.verdict) in page and html.escape(XSS_NAME) in page and "<script" not in page
    assert _cells(page.split("<b>Events</b>", 1)[1]) == _cells(report_page.split("<b>Events</b>", 1)[1])
    assert page[page.index("<svg") :].split("</svg>")[0] == report_page[report_page.index("<svg") :].split("</svg>")[0]


def test_analyze_reads_a_csv_export(tmp_path):
    steps = np.arange(1, 41) * 10
    frame = pd.DataFrame({"step": steps})
    for b in range(3):
        frame[f"batch_{b}/recall"] = np.where((b == 1) & (steps > 200), 0.4, 0.9 + 0.001 * (steps % 3))
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    report = analyze(path)
    assert [b["batch"] for b in report.problematic_batches] == [1]
    page = report._repr_html_()
    assert "export" in page and "batch 1" in page and report.summary["verdict"] in page


def test_figure_svg_escapes_labels_and_marks_nonfinite_events_on_the_axis():
    fig = KeyFigure(
        metric="<b>m</b>",
        lines=(("batch <i>1</i>", "#1f77b4", ((0.0, 1.0), (10.0, 0.5))),),
        markers=((10.0, float("nan"), "critical", "went <NaN>"),),
    )
    svg = figure_svg(fig)
    assert "<b>" not in svg and "<i>" not in svg and "&lt;b&gt;m&lt;/b&gt;" in svg and "went &lt;NaN&gt;" in svg
    assert svg.count("<circle") == 1


def test_jupyter_display_formatter_renders_the_report_as_html(hostile):
    """What Jupyter itself calls: IPython's display formatter picks `_repr_html_` for the text/html output."""
    from IPython.core.formatters import DisplayFormatter

    base, _ = hostile
    report = analyze(XSS_NAME, wandb_dir=base / "wandb")
    data, _ = DisplayFormatter().format(report)
    assert data["text/html"] == report._repr_html_() and "<svg" in data["text/html"]
    assert "<script" not in data["text/html"]
