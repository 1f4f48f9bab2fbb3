"""Untrusted text (logged image paths, metric keys, run names, YAML key names, error messages) is escaped at every
sink: Streamlit Markdown (errors, captions, tab labels, badges), plotly text (titles, axis titles, legend names,
hover text, annotations, tick labels) in the dashboard and the HTML report, and the Markdown report. Plus the
dashboard's smaller display fixes of issue 15 (ranking headers, badges, colours, test-alert boxes, run state).

Markdown is checked by rendering it with a CommonMark renderer (markdown-it): an escaped string renders as its
own text, with no image, link or HTML element. The browser-level proof (no request reaches a logging server) is
tests/e2e/test_escaping_browser.py.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from analysis.core.config import AlertsConfig, AnalyzerConfig, parse_config_text
from analysis.core.errors import ConfigError, ImageLoadError
from analysis.findings.compare import CompareConfig, compare_runs, run_side
from analysis.findings.pipeline import RunAnalysis, analyze_run
from analysis.reporting import figures
from analysis.reporting.figures import plotly_text, series_colours
from analysis.reporting.report import Report
from analysis.sources import open_run
from analysis.sources._rundir import CRASH_EXIT_CODE, STALE_AFTER_S, run_state
from ui import compare_tables, tables
from ui.format import error_text, md_escape, md_labels

IMAGE_MD = "../![x](http://127.0.0.1:9/p.png)"
LINK_HTML = '<a href="http://127.0.0.1:9/a">click</a>'
BOLD_HTML = "<b>bold</b>"
IMG_HTML = "<img src=http://127.0.0.1:9/i.png>"
HOSTILE = [IMAGE_MD, LINK_HTML, BOLD_HTML, IMG_HTML, "[link](http://127.0.0.1:9/l)", "`code` *em* _u_ <http://x>"]
BATCH_PATTERN = r"^batch_(?P<batch>\d+)/(?P<metric>.+)$"  # any text after the batch is the metric's name

_MD = MarkdownIt("commonmark")


def rendered(markdown: str) -> str:
    return _MD.render(markdown)


def assert_literal(markdown: str, original: str) -> None:
    """`markdown` renders as `original`'s text inside one paragraph: no image, link, emphasis or HTML."""
    out = rendered(markdown)
    assert "<img" not in out and "<a " not in out and "<em>" not in out and "<code>" not in out, out
    assert "<b>" not in out and "<strong>" not in out, out
    text = html.unescape(re.sub(r"</?p>", "", out)).strip()
    assert text == original, (text, original)


# --------------------------------------------------------------------------------------------- markdown
@pytest.mark.parametrize("text", HOSTILE)
def test_md_escape_renders_untrusted_text_literally(text):
    assert_literal(md_escape(text), text)
    assert_literal(error_text(ImageLoadError(text)), text)
    assert md_labels([text, "val/recall"]) == [md_escape(text), md_escape("val/recall")]


def test_md_escape_drops_line_breaks_that_would_start_new_blocks():
    out = rendered(md_escape("a\n\n# heading\n\n    code"))
    assert "<h1>" not in out and "<pre>" not in out and out.count("<p>") == 1


def test_badge_caption_escapes_an_unreadable_image_s_path():
    row = pd.Series({"error": f"cannot decode {IMAGE_MD}", "blur_score": np.nan})
    line = tables.badge_line(row)
    assert_literal(line, f"unreadable: cannot decode {IMAGE_MD}")


def test_unknown_yaml_key_in_the_config_error_is_escaped():
    with pytest.raises(ConfigError) as info:
        parse_config_text(f'data_quality:\n  "{IMAGE_MD}": 1\n', source="cfg.yaml")
    assert IMAGE_MD in str(info.value)  # the message names the key ...
    out = rendered(f"Config not loaded: {error_text(info.value)}")  # ... and the sidebar shows it escaped
    assert "<img" not in out and "<a " not in out and IMAGE_MD in html.unescape(out)


# ------------------------------------------------------------------------------------------------- plotly
def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in _strings(v)]
    return []


def assert_no_markup(fig: Any) -> list[str]:
    """No string of the figure carries a tag plotly would render (<a>, <b>, <img>, ...), except our own <br>."""
    texts = _strings(fig.to_plotly_json())
    for t in texts:
        tags = {m.lower() for m in re.findall(r"<\s*/?\s*([a-zA-Z]+)", t)} - {"br", "extra"}
        assert not tags, t
    return texts


@pytest.fixture(scope="module")
def hostile_analysis(tmp_path_factory) -> RunAnalysis:
    """A run whose per-batch and run-level metric names are markup (read from a CSV export: no wandb needed for
    the names; the browser test uses a wandb-written run)."""
    rows = []
    for step in range(1, 41):
        row: dict[str, Any] = {"_step": step}
        for b in range(12):
            bad = b == 1 and step > 20
            row[f"batch_{b}/recall"] = 0.5 if bad else 0.9 + 0.001 * (step % 3)
            row[f"batch_{b}/{LINK_HTML}"] = 0.2 if bad else 0.9 + 0.001 * (step % 2)
        row[f"val/{IMG_HTML}"] = 0.8 if step < 30 else float("nan")
        row[f"val/{BOLD_HTML}"] = 0.8 if step != 25 else 0.1
        rows.append(row)
    path = tmp_path_factory.mktemp("hostile") / f"run {BOLD_HTML}.csv".replace("/", "_")
    pd.DataFrame(rows).to_csv(path, index=False)
    config = AnalyzerConfig()
    config.training_config.batch_key_pattern = BATCH_PATTERN
    return analyze_run(open_run(str(path)), config)


def test_plotly_text_escapes_what_plotly_renders_as_html():
    assert plotly_text(LINK_HTML) == '&lt;a href="http://127.0.0.1:9/a"&gt;click&lt;/a&gt;'
    assert plotly_text("a & b") == "a &amp; b"


def test_dashboard_and_report_figures_show_metric_names_as_text(hostile_analysis):
    a = hostile_analysis
    assert LINK_HTML in set(a.batches["metric"])  # the hostile name really is a per-batch metric
    texts = assert_no_markup(figures.batch_curves_figure(a, metric=LINK_HTML, batches=[0, 1], ignore_outliers=True))
    assert any(plotly_text(LINK_HTML) in t for t in texts)  # title / axis / hover carry it, escaped
    assert_no_markup(figures.heatmap_figure(a, metric=LINK_HTML))
    names = sorted(a.global_metrics["metric"].unique())
    texts = assert_no_markup(figures.global_metrics_figure(a, names))
    assert any(plotly_text(f"val/{IMG_HTML}") in t for t in texts)
    hist = figures.score_histogram_figure(pd.DataFrame({BOLD_HTML: [1.0, 2.0]}), BOLD_HTML, threshold=1.5)
    assert_no_markup(hist)


def test_html_report_chart_json_carries_no_markup(hostile_analysis):
    report = Report.from_analysis(hostile_analysis)
    page = report.to_html()
    blobs = re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', page, flags=re.S)
    assert blobs
    for blob in blobs:
        fig = json.loads(blob)  # \u003c-escaped JSON: decoding gives the strings plotly receives
        for t in _strings(fig):
            tags = {m.lower() for m in re.findall(r"<\s*/?\s*([a-zA-Z]+)", t)} - {"br", "extra"}
            assert not tags, t
    assert "<img src=http" not in page and '<a href="http://127.0.0.1' not in page


def test_markdown_report_escapes_link_and_image_syntax(hostile_analysis):
    md = Report.from_analysis(hostile_analysis).to_markdown()
    out = rendered(md)
    assert "<img" not in out and 'href="http://127.0.0.1' not in out and "<b>bold" not in out
    assert "http://127.0.0.1:9" in html.unescape(out)  # the names are still there, as text


def test_compare_figures_escape_run_and_metric_names(hostile_analysis):
    side = run_side(hostile_analysis)
    comparison = compare_runs(side, side, CompareConfig(analyzer=hostile_analysis.config))
    assert_no_markup(compare_tables.delta_heatmap(comparison))
    fig = compare_tables.overlay_figure(side, side, 1, LINK_HTML, 20, "step")
    texts = assert_no_markup(fig)
    assert any(plotly_text(LINK_HTML) in t for t in texts)


# ------------------------------------------------------------------------------- issue 15: smaller things
def shown(styled: Any) -> pd.DataFrame:
    """The frame behind a Styler (what st.dataframe sorts on)."""
    return styled.data


def test_ranking_table_headers_in_words_and_no_minus_one_step():
    summary = pd.DataFrame(
        {"batch": [7, 3], "worst_recall": [0.41, np.nan], "worst_step": [30, 10], "first_bad_step": [22, -1],
         "last_recall": [0.5, 0.9], "n_anomalies": [4, 0], "n_change_points": [1, 0], "n_problem_images": [8, 0],
         "severity": ["critical", "ok"], "n_events": [2, 0]}
    )  # fmt: skip
    styled = tables.ranking_table(summary, "hmean")
    headers = list(shown(styled).columns)
    assert headers[:4] == ["Batch", "Severity", "First bad step", "Worst hmean"]
    assert not any("_" in h for h in headers)
    steps = shown(styled)["First bad step"]
    assert steps.iloc[0] == 22 and pd.isna(steps.iloc[1]) and -1 not in steps.dropna().tolist()
    page = styled.to_html()
    assert "—" in page and ">-1<" not in page and "NaN" in page  # a NaN worst value stays visible


def test_runs_table_headers_in_words():
    table = pd.DataFrame({"run": ["a"], "run_id": ["x1"], "first_bad_step": pd.array([None], dtype="Int64")})
    styled = tables.runs_table(table)
    assert list(shown(styled).columns) == ["Run", "Run id", "First bad step"] and "—" in styled.to_html()


@pytest.mark.parametrize(
    ("angle", "text"), [(float("nan"), "rot —"), (-0.0, "rot 0.0°"), (-0.04, "rot 0.0°"), (-12.0, "rot -12.0°")]
)
def test_badge_rotation_never_nan_or_negative_zero(angle, text):
    row = pd.Series({"error": None, "is_acceptable": True, "blur_score": 120.0, "rotation_angle": angle,
                     "width": 80, "height": 26, "reasons": []})  # fmt: skip
    line = tables.badge_line(row)
    assert f" · {text} · 80×26" in line and "NaN" not in line and "-0.0" not in line


def test_more_than_ten_batches_never_share_a_colour(hostile_analysis):
    for n in (1, 9, 10, 12, 24, 60):
        colours = series_colours(n)
        assert len(colours) == n and len(set(colours)) == n
    fig = figures.batch_curves_figure(hostile_analysis, metric="recall", batches=list(range(12)), show_band=False)
    lines = [t for t in fig.data if (t.name or "").startswith("batch ")]
    assert len(lines) == 12 and len({t.line.color for t in lines}) == 12  # batches 3 and 12 were both purple


def test_skipped_test_alert_is_neutral_not_green():
    assert tables.alert_result_style(True, "skipped: no active wandb run") == "info"
    assert tables.alert_result_style(True, "HTTP 200") == "success"
    assert tables.alert_result_style(False, "skipped") == "error"


def test_alert_destinations_name_the_webhook_and_smtp_host(monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    alerts = AlertsConfig(slack_webhook="https://hooks.slack.com/services/T/B/x", email_recipients=["a@b.c"],
                          smtp_host="mail.internal")  # fmt: skip
    assert tables.alert_destinations(alerts) == ["https://hooks.slack.com/services/T/B/x", "mail.internal"]
    assert tables.alert_destinations(AlertsConfig()) == []


def test_run_state_as_wandb_defines_it():
    now = 1_000_000.0
    assert STALE_AFTER_S == 600
    assert run_state(None, now - 9 * 60, now) == "running"
    assert run_state(None, now - 11 * 60, now) == "crashed"  # killed: no exit record, not grown for 10 minutes
    assert run_state(CRASH_EXIT_CODE, now, now) == "crashed"
    assert run_state(0, now - 3600, now) == "finished" and run_state(1, now, now) == "failed"


@pytest.mark.slow
def test_killed_and_254_runs_are_listed_as_crashed(tmp_path):
    """Real runs written by wandb: one killed (no exit record), one that recorded exit code 254."""
    from analysis.sources import list_runs
    from tests.wandb_writer import write_run

    rows = [{"batch_0/recall": 0.9}] * 3
    killed = Path(write_run(tmp_path, "killed", rows, crash=True))
    oom = Path(write_run(tmp_path, "oom", rows, exit_code=CRASH_EXIT_CODE))

    def states() -> dict[Path, str]:
        return {Path(r.locator): r.state for r in list_runs(tmp_path / "wandb")}

    assert states() == {killed: "running", oom: "crashed"}  # killed a moment ago: it may still be writing
    wfile = next(killed.glob("*.wandb"))
    for minutes, state in ((9, "running"), (11, "crashed")):
        then = time.time() - minutes * 60
        os.utime(wfile, (then, then))
        assert states()[killed] == state
