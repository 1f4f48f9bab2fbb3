"""Golden-structure tests of the three report formats on runs written by the real wandb library (offline)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re

import jsonschema
import pytest
from markdown_it import MarkdownIt
from PIL import Image

from analysis.core.errors import AnalyzerError
from analysis.demo import DEFECTS
from analysis.reporting.report import (
    SCHEMA_PATH,
    SCHEMA_VERSION,
    THUMBNAIL_SIDE,
    Report,
    fmt,
    md_escape,
    normalise_formats,
    write_reports,
)
from tests.report_runs import (
    LOWER_BETTER_METRICS,
    SECRET,
    WEBHOOK,
    XSS_METRIC,
    XSS_NAME,
    XSS_PATH,
    demo_analysis,
    hostile_analysis,
    lower_better_analysis,
)

pytestmark = pytest.mark.slow  # analyses of wandb runs written for the module


def _no_constants(name: str):
    raise AssertionError(f"invalid JSON constant {name} in report")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    analysis = demo_analysis(tmp_path_factory.mktemp("demo"))
    return analysis, Report.from_analysis(analysis)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    analysis = hostile_analysis(tmp_path_factory.mktemp("hostile"))
    return analysis, Report.from_analysis(analysis)


@pytest.fixture(scope="module")
def hostile_images(tmp_path_factory):
    analysis = hostile_analysis(tmp_path_factory.mktemp("hostile-img"), with_images=True)
    return analysis, Report.from_analysis(analysis)


# ------------------------------------------------------------------------------------------------ JSON


def test_json_validates_against_the_documented_schema(demo, hostile):
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for _, report in (demo, hostile):
        doc = json.loads(report.to_json(), parse_constant=_no_constants)
        jsonschema.validate(doc, schema)
        assert doc["schema_version"] == "1.4"


def test_json_golden_structure_on_the_demo_run(demo):
    analysis, report = demo
    doc = json.loads(report.to_json())
    assert doc["run"]["name"] == "demo-ocr-run" and doc["run"]["source"] == "local"
    assert doc["summary"]["verdict"] == analysis.verdict
    assert doc["summary"]["n_anomalies"] == len(doc["anomalies"]) == len(analysis.anomalies)
    assert len(doc["change_points"]) == len(analysis.change_points)
    assert len(doc["root_causes"]) == len(analysis.root_causes)
    by_batch = {p["batch"]: p for p in doc["problematic_batches"]}
    assert [p["batch"] for p in doc["problematic_batches"]] == analysis.problematic_batches
    recall = analysis.batches[analysis.batches["metric"] == "recall"]
    for d in DEFECTS:  # every injected defect is a problematic batch, reported with the pipeline's numbers
        p = by_batch[d.batch]
        assert p["first_bad_step"] == min(
            a.step for a in analysis.anomalies if a.batch == d.batch and a.severity != "info"
        )
        assert p["severity"] == "critical"
        assert p["worst_recall"] == pytest.approx(recall[recall["batch"] == d.batch]["value"].min())
        assert p["worst_values"]["recall"]["value"] == pytest.approx(p["worst_recall"])
        assert p["quality_reasons"], f"batch {d.batch} should carry image-quality reasons"
        assert p["root_causes"], f"batch {d.batch} should have a root-cause sentence"
    q = doc["quality"]
    assert q["n_images"] == len(analysis.quality)
    assert q["n_acceptable"] + q["n_rejected"] == q["n_images"]
    assert q["n_rejected"] == int((~analysis.quality["is_acceptable"]).sum()) > 0
    assert {w["batch"] for w in q["worst_images"]} <= {d.batch for d in DEFECTS}


def test_json_encodes_nan_and_infinity_explicitly(hostile):
    _, report = hostile
    text = report.to_json()
    doc = json.loads(text, parse_constant=_no_constants)  # strict JSON: no NaN / Infinity literals
    worst = {p["batch"]: p for p in doc["problematic_batches"]}[1]["worst_values"]
    assert worst["recall"]["value"] == "NaN"
    assert worst["precision"]["value"] == "Infinity"
    assert worst["hmean"]["value"] == "-Infinity"
    assert worst["recall"]["step"] == 170


def test_json_round_trips_into_the_same_markdown(demo):
    _, report = demo
    again = Report.from_json(report.to_json())
    assert again.to_markdown() == report.to_markdown()
    with pytest.raises(AnalyzerError, match="schema"):
        Report.from_json(json.dumps({"schema_version": "2.0"}))
    with pytest.raises(AnalyzerError):
        Report.from_json("{not json")


# ------------------------------------------------------------------------------------------------ Markdown


def test_markdown_golden_structure(demo):
    analysis, report = demo
    md = report.to_markdown()
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings == [
        "# Experiment report: demo-ocr-run",
        f"## Events ({len(analysis.alarm_events)})",
        f"## Problematic batches ({len(analysis.problematic_batches)})",
        f"## Root causes ({len(analysis.root_causes)})",
        "## Findings",
        f"### Anomalies ({len(analysis.anomalies)})",
        f"### Change points ({len(analysis.change_points)})",
        "## Data quality",
        "## Configuration",
    ]
    assert md_escape(analysis.verdict) in md
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>\s*<td>(\w+)</td>\s*<td>(\d+)</td>", html)
    assert [(int(b), sev, int(step)) for b, sev, step in rows[: len(report.problematic_batches)]] == [
        (p["batch"], p["severity"], p["first_bad_step"]) for p in report.problematic_batches
    ]
    for rc in analysis.root_causes:  # root-cause sentences survive escaping as the same text
        assert rc.sentence.replace("<", "&lt;").replace(">", "&gt;") in html


def test_markdown_escapes_untrusted_text(hostile_images):
    _, report = hostile_images
    md = report.to_markdown()
    assert XSS_NAME not in md and XSS_METRIC not in md and XSS_PATH not in md
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    assert "&lt;img src=x onerror=alert(2)&gt;" in html  # the metric key, in the anomalies table
    assert "imgs/&lt;b&gt;bold&lt;/b&gt;&amp;amp;.png" in html  # the file name, in the worst images


# ------------------------------------------------------------------------------------------------ HTML


def _script_tags(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", html, flags=re.I)


def test_html_is_self_contained_with_plotly_inlined_once(demo):
    from plotly.offline import get_plotlyjs

    _, report = demo
    html = report.to_html()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, flags=re.I)
    assert "<link" not in html.lower() and "@import" not in html
    blobs = re.findall(r'<script type="application/octet-stream" id="plotly-gz">([^<]+)</script>', html)
    assert len(blobs) == 1
    assert gzip.decompress(base64.b64decode(blobs[0])).decode() == get_plotlyjs()
    charts = re.findall(r'<div class="chart" id="([^"]+)"', html)
    assert charts[:2] == ["chart-curves", "chart-heatmap"] and "chart-hist-blur_score" in charts
    for cid in charts:  # each chart's figure is valid JSON with data
        m = re.search(rf'<script type="application/json" id="{cid}-data">(.*?)</script>', html, flags=re.S)
        assert m is not None
        assert json.loads(m.group(1))["data"]


def test_html_tables_match_the_json_numbers(demo):
    analysis, report = demo
    html = report.to_html()
    assert f"Problematic batches ({len(report.problematic_batches)})" in html
    assert f"Anomalies ({len(analysis.anomalies)})" in html
    for p in report.problematic_batches:
        assert f"{fmt(p['worst_recall'])} @ {fmt(p['worst_step'])}" in html
    assert html.count('<tr><td class="num">') >= len(report.anomalies) + len(report.change_points)


def test_html_escapes_untrusted_text(hostile_images):
    _, report = hostile_images
    html = report.to_html()
    assert XSS_NAME not in html and XSS_METRIC not in html and XSS_PATH not in html
    assert 'alt="imgs/&lt;b&gt;bold&lt;/b&gt;&amp;amp;.png"' in html
    assert "<title>Experiment report: &lt;script&gt;alert(1)&lt;/script&gt;</title>" in html
    allowed = ('<script type="application/json"', '<script type="application/octet-stream"', "<script>")
    tags = _script_tags(html)
    assert all(t.startswith(allowed) for t in tags), tags
    assert sum(t == "<script>" for t in tags) == 1  # only our loader executes
    for body in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, flags=re.S):
        assert "<" not in body  # embedded JSON cannot close its script element


def test_thumbnails_are_small_jpegs_of_the_worst_images(demo):
    _, report = demo
    q = report.quality
    assert 0 < len(report.thumbnails) == min(100, q["n_rejected"])
    assert [t.path for t in report.thumbnails] == [w["path"] for w in q["worst_images"]][: len(report.thumbnails)]
    html = report.to_html()
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(uris) == len(report.thumbnails)
    for uri in uris:
        im = Image.open(io.BytesIO(base64.b64decode(uri)))
        assert im.format == "JPEG" and max(im.size) <= THUMBNAIL_SIDE


# ------------------------------------------------------------------------------------------------ files, secrets


def test_secrets_are_never_written(hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", WEBHOOK)
    analysis, _ = hostile
    report = Report.from_analysis(analysis)
    paths = write_reports(report, tmp_path)
    for path in paths.values():
        text = path.read_text()
        assert WEBHOOK not in text and SECRET not in text and "XXXXSECRETXXXX" not in text
    doc = json.loads(paths["json"].read_text())
    assert doc["run"]["config"]["api_key"] == "<redacted>"
    assert doc["config"]["experiment_monitoring"]["alerts"]["slack_webhook"] == "<from environment>"


def test_write_reports_names_formats_and_errors(hostile, tmp_path):
    _, report = hostile
    paths = write_reports(report, tmp_path / "out", formats=("md", "json"))
    # the hostile name made safe, then the run id (reports of two runs never overwrite each other)
    names = sorted(p.name for p in paths.values())
    assert [
        re.fullmatch(r"script_alert_1_script-([A-Za-z0-9._-]+)_report\.(json|md)", n) is not None for n in names
    ] == [
        True,
        True,
    ]
    assert names[0].removesuffix(".json") == names[1].removesuffix(".md")
    assert set(paths) == {"markdown", "json"}
    assert not list((tmp_path / "out").glob("*.tmp"))
    assert normalise_formats("md, html,md") == ["markdown", "html"]
    with pytest.raises(AnalyzerError, match="unknown report format 'pdf'"):
        write_reports(report, tmp_path, formats=("pdf",))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(AnalyzerError, match="cannot create output directory"):
        write_reports(report, blocker / "sub")


def test_report_without_data_dir_says_so(hostile):
    _, report = hostile
    assert report.quality is None and json.loads(report.to_json())["quality"] is None
    assert "No data directory was given" in report.to_markdown()
    assert "No data directory was given" in report.to_html()


@pytest.mark.parametrize(
    "rows",
    [
        [],  # a run that logged nothing
        [{"val/recall": 0.9 - 0.01 * s, "train/loss": 1.0 / (s + 1)} for s in range(12)],  # no batch_{i}/ keys
    ],
)
def test_degenerate_runs_still_give_valid_reports(tmp_path, rows):
    from analysis.core.config import AnalyzerConfig
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run
    from tests.wandb_writer import write_run

    empty_data = tmp_path / "data"
    empty_data.mkdir()
    run = open_run(write_run(tmp_path, "degenerate", rows), cache=False)
    report = Report.from_analysis(analyze_run(run, AnalyzerConfig(), data_dir=empty_data))
    doc = json.loads(report.to_json(), parse_constant=_no_constants)
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    assert doc["problematic_batches"] == [] and doc["summary"]["n_batches"] == 0
    # the steps of a run without batch_{i}/ keys are its run-level metrics' steps, not "0 (– – –)"
    expected = (len(rows), 0, len(rows) - 1) if rows else (0, None, None)
    assert tuple(doc["summary"][k] for k in ("n_steps", "first_step", "last_step")) == expected
    assert doc["quality"]["n_images"] == 0 and doc["quality"]["acceptable_rate"] is None
    assert "No per-batch metrics" in report.to_markdown()
    html = report.to_html()
    assert "No problematic batches." in html
    assert ("chart-global" in html) == bool(rows)


def test_markdown_drops_terminal_control_and_bidi_characters():
    """QA: a run named 'a\\x1b[31mb' kept its ESC in the Markdown, so `cat report.md` recoloured the terminal;
    U+202E (right-to-left override) could make a name display reversed."""
    text = md_escape("run\x1b[31m\x07red\u202eevil\x9b\r\nnext\x00")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text)
    assert text.startswith("run \\[31m red evil") and "next" in text


def test_read_notes_are_shown_and_escaped(hostile):
    """QA: what the reader noted (a resumed run merged from several folders, a damaged chunk) reached the JSON
    only; Markdown and HTML readers never saw it."""
    import copy

    report = copy.deepcopy(hostile[1])
    report.run["read_status"]["errors"] = ["resumed run: merged 1 earlier session folder(s)", "<b>chunk</b> lost"]
    md = report.to_markdown()
    assert "| Read notes | resumed run: merged 1 earlier session folder(s); \\<b\\>chunk\\</b\\> lost |" in md
    html = report.to_html()
    assert "read notes: resumed run: merged 1 earlier session folder(s); &lt;b&gt;chunk&lt;/b&gt; lost" in html


# ------------------------------------------------------------------------------------------------ vocabulary


@pytest.fixture(scope="module")
def lower_better(tmp_path_factory):
    analysis = lower_better_analysis(tmp_path_factory.mktemp("lower-better"))
    return analysis, Report.from_analysis(analysis)


def _batch_values(analysis, batch: int, metric: str) -> list[float]:
    b = analysis.batches
    rows = b[(b["batch"] == batch) & (b["metric"] == metric)].sort_values("step")
    return rows["value"].astype(float).tolist()


@pytest.mark.parametrize("metric", LOWER_BETTER_METRICS)
def test_worst_value_of_a_lower_is_better_metric_is_its_highest(lower_better, metric):
    """Issue 12: the report's own direction check (substring loss/error/cer/wer) took the LOWEST perplexity, nll
    and rmse of a batch as its worst value, i.e. the best one."""
    analysis, report = lower_better
    batch = {p["batch"]: p for p in report.problematic_batches}[2]
    values = _batch_values(analysis, 2, metric)
    assert batch["worst_values"][metric]["value"] == pytest.approx(max(values)) != pytest.approx(min(values))


def test_primary_metric_worst_value_names_its_metric(lower_better):
    analysis, report = lower_better
    assert analysis.primary_metric == "errors"
    p = {p["batch"]: p for p in report.problematic_batches}[2]
    values = _batch_values(analysis, 2, "errors")
    assert p["metric"] == "errors"
    assert p["worst_value"] == pytest.approx(max(values)) and p["worst_recall"] == p["worst_value"]
    assert p["last_value"] == pytest.approx(values[-1]) and p["last_recall"] == p["last_value"]
    steps = analysis.batches[(analysis.batches["batch"] == 2) & (analysis.batches["metric"] == "errors")]
    assert p["worst_step"] == int(steps.loc[steps["value"].idxmax(), "step"])
    md = report.to_markdown()
    assert "| Worst errors @ step | Last errors |" in md and "recall" not in md.split("## Root causes")[0]
    html = report.to_html()
    assert "<th>Worst errors @ step</th><th>Last errors</th>" in html
    assert f"{fmt(p['worst_value'])} @ {fmt(p['worst_step'])}" in html


@pytest.mark.parametrize("metric", ["perplexity", "errors"])
def test_heatmap_reduces_lower_is_better_metrics_with_max(lower_better, metric):
    """Issue 12: the heatmap squeezed perplexity columns with min, hiding the very rise it should show."""
    import numpy as np

    from analysis.reporting.figures import heatmap_figure

    analysis, _ = lower_better
    fig = heatmap_figure(analysis, metric=metric, max_columns=5)
    trace = fig.data[0]
    row = list(trace.y).index("batch 2")
    values = np.array(_batch_values(analysis, 2, metric))
    expected = [chunk.max() for chunk in np.array_split(values, 5)]
    assert np.asarray(trace.z[row], dtype=float) == pytest.approx(expected, rel=1e-6)


def test_heatmap_colours_follow_the_direction(lower_better):
    from analysis.reporting.figures import heatmap_figure

    analysis, _ = lower_better
    # plotly expands named scales: red first for higher-is-better (low = bad), last for lower-is-better
    fig = heatmap_figure(analysis, metric="perplexity", max_columns=5)
    reds = [c for _, c in fig.data[0].colorscale]
    assert reds[-1] == "rgb(165,0,38)" and reds[0] != "rgb(165,0,38)"


def _contrast_quality(analysis, with_codes: bool = True):
    """8 of the 8 images logged for batch 2 fail contrast (messages as quality/ words them), 4 of batch 0 pass."""
    import pandas as pd

    from analysis.core.vocabulary import QualityReason

    rows = [
        {
            "path": f"b2/img_{i}.png",
            "batch": 2,
            "is_acceptable": False,
            "contrast": 0.02 + 0.01 * i,
            "blur_score": 500.0,
            "reasons": [f"{'too dark, ' if i % 2 else ''}low contrast {0.02 + 0.01 * i:.2f} below 0.2"],
            "reason_codes": [QualityReason.CONTRAST.value],
        }
        for i in range(8)
    ] + [
        {
            "path": f"b0/img_{i}.png",
            "batch": 0,
            "is_acceptable": True,
            "contrast": 0.6,
            "blur_score": 800.0,
            "reasons": [],
            "reason_codes": [],
        }
        for i in range(4)
    ]
    q = pd.DataFrame(rows)
    q["batch"] = q["batch"].astype("Int64")
    return q if with_codes else q.drop(columns="reason_codes")


def test_quality_reasons_are_grouped_by_code(lower_better):
    """Issue 12: reasons were grouped by the message's first word, so 'low contrast ...' counted under 'low'
    and 'too dark, low contrast ...' under 'too'."""
    import dataclasses

    analysis, _ = lower_better
    report = Report.from_analysis(dataclasses.replace(analysis, quality=_contrast_quality(analysis)), charts=False)
    assert report.quality is not None
    assert report.quality["reasons"] == {"contrast": 8}
    assert {p["batch"]: p for p in report.problematic_batches}[2]["quality_reasons"] == {"contrast": 8}
    assert all(w["reason_codes"] == ["contrast"] for w in report.quality["worst_images"])
    jsonschema.validate(json.loads(report.to_json()), json.loads(SCHEMA_PATH.read_text()))
    md = report.to_markdown()
    assert "| low contrast | 8 |" in md  # the code's human label
    assert "low contrast 8" in md.split("## Root causes")[0]  # the batch's image issues
    html = report.to_html()
    assert '<tr><td>low contrast</td><td class="num">8</td></tr>' in html


def test_quality_without_reason_codes_groups_nothing(lower_better):
    """Old quality data (no reason_codes column): no grouping, and the message text is never parsed."""
    import dataclasses

    analysis, _ = lower_better
    q = _contrast_quality(analysis, with_codes=False)
    report = Report.from_analysis(dataclasses.replace(analysis, quality=q), charts=False)
    assert report.quality is not None
    assert report.quality["reasons"] == {}
    assert {p["batch"]: p for p in report.problematic_batches}[2]["quality_reasons"] == {}
    assert report.quality["worst_images"][0]["reasons"]  # the messages are still listed per image


# ------------------------------------------------------------------------------------------------ schema 1.1


def test_json_names_the_metric_and_keeps_the_deprecated_alias(demo, lower_better):
    schema = json.loads(SCHEMA_PATH.read_text())
    item = schema["properties"]["problematic_batches"]["items"]
    assert {"metric", "worst_value", "worst_recall"} <= set(item["required"])
    assert item["properties"]["worst_recall"]["deprecated"] is True
    assert "DEPRECATED alias of worst_value" in item["properties"]["worst_recall"]["description"]
    for analysis, report in (demo, lower_better):
        doc = json.loads(report.to_json(), parse_constant=_no_constants)
        jsonschema.validate(doc, schema)
        assert doc["schema_version"] == SCHEMA_VERSION == "1.4"
        assert doc["problematic_batches"]
        for p in doc["problematic_batches"]:
            assert p["metric"] == analysis.primary_metric
            assert p["worst_recall"] == p["worst_value"] and p["last_recall"] == p["last_value"]


def test_schema_1_0_reports_still_render(demo):
    """A 1.0 JSON (only worst_recall / last_recall) reads back and renders with the recall headers."""
    _, report = demo
    doc = json.loads(report.to_json())
    doc["schema_version"] = "1.0"
    del doc["events"]  # 1.0 and 1.1 documents have no events
    for p in doc["problematic_batches"]:
        for key in ("metric", "worst_value", "last_value"):
            del p[key]
    old = Report.from_json(json.dumps(doc))
    md = old.to_markdown()
    assert "Worst recall @ step" in md
    html = old.to_html()
    for p in doc["problematic_batches"]:
        assert f"{fmt(p['worst_recall'])} @ {fmt(p['worst_step'])}" in html


# ------------------------------------------------------------------------------------------------ schema 1.2: events


def test_events_come_first_in_every_format_with_their_evidence(demo):
    """The demo's three defects are three events, listed before the batches and the detector hits."""
    _, report = demo
    doc = json.loads(report.to_json(), parse_constant=_no_constants)
    alarms = [e for e in doc["events"] if e["severity"] in ("warning", "critical")]
    assert {e["batch"] for e in alarms} == {3, 7, 12} and len(alarms) == 3
    assert doc["summary"]["n_events"] == 3
    for e in alarms:
        assert e["metrics"][0] == "recall" and len(e["detectors"]) >= 2
        assert {h["detector"] for h in e["evidence"]} == set(e["detectors"])
    md = report.to_markdown()
    assert md.index("## Events (3)") < md.index("## Problematic batches") < md.index("### Anomalies")
    html = report.to_html()
    assert html.index('id="events"') < html.index('id="problematic-batches"') < html.index('id="findings"')
    assert html.count('<tr class="event">') == 3


def test_a_1_1_report_without_events_still_reads_and_renders(demo):
    _, report = demo
    doc = json.loads(report.to_json())
    doc["schema_version"] = "1.1"
    del doc["events"]
    old = Report.from_json(json.dumps(doc))
    assert old.events == []
    assert "## Events (0)" in old.to_markdown() and "No events" in old.to_html()


def test_worst_values_per_batch_follow_direction_and_put_nan_first():
    """The per-batch worst values are built from one conversion of the whole frame (wide runs): rows of other
    batches never leak in, NaN beats any finite value, recall's worst is its lowest and loss's its highest."""
    import numpy as np
    import pandas as pd

    from analysis.reporting.sections import _primary_values, rows_by_batch, worst_values

    frame = pd.DataFrame(
        {
            "batch": [0, 0, 0, 0, 1, 1, 1, 0],
            "metric": ["recall", "recall", "loss", "loss", "recall", "recall", "loss", "recall"],
            "step": [2, 1, 1, 2, 1, 2, 1, 3],
            "value": [0.5, 0.9, 0.3, 0.8, 0.1, float("nan"), 7.0, 0.7],
        }
    )
    by_batch = rows_by_batch(frame)
    assert set(by_batch) == {0, 1}
    assert worst_values(by_batch[0], {}) == {"loss": {"value": 0.8, "step": 2}, "recall": {"value": 0.5, "step": 2}}
    nan_first = worst_values(by_batch[1], {})["recall"]
    assert np.isnan(nan_first["value"]) and nan_first["step"] == 2
    # primary metric in step order: worst 0.5 at step 2, last finite value 0.7 (step 3), not the last row logged
    assert _primary_values(by_batch[0], "recall", "higher_is_better") == (0.5, 2, 0.7)
    assert _primary_values(by_batch[0], "hmean", "higher_is_better")[1] is None


def test_a_folder_of_text_line_crops_gets_a_hint_to_lower_the_minimum_resolution(tmp_path):
    """Real line and word crops of the image benchmark (benchmarks/data/images): the handbook's 100 x 100 minimum
    flags every one; the report says they are line crops and which minimum keeps them, and passes the schema."""
    import shutil
    from pathlib import Path

    from analysis.core.config import AnalyzerConfig
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run
    from tests.wandb_writer import write_run

    source = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "images" / "rotation"
    data = tmp_path / "data"
    data.mkdir()
    for name in ("aocr-arabic-2.png", "dkocr-dd.jpg", "fel-tamil-text.png", "dkocr-japnese.png", "chw-Fonts.tif"):
        shutil.copy(source / name, data / name)
    run = open_run(write_run(tmp_path, "lines", [{"val/recall": 0.9} for _ in range(5)]), cache=False)
    report = Report.from_analysis(analyze_run(run, AnalyzerConfig(), data_dir=data))
    doc = json.loads(report.to_json(), parse_constant=_no_constants)
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    (hint,) = doc["quality"]["hints"]
    assert hint.startswith("5 of the 5 images below the minimum resolution are text-line crops") and "22 px" in hint
    assert "text-line crops" in report.to_markdown()


def test_the_events_count_and_its_detail_add_up_when_there_are_info_notes():
    """A real Darknet log (test batch 24) has alarms and info notes: its header read "Events | 4 (info 4, warning 2,
    critical 2)", a detail adding up to 8. Info notes are not counted and are said apart."""
    from pathlib import Path

    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_table

    path = Path(__file__).resolve().parent.parent / "benchmarks/data/curves/darknet_buddyzhu/train0723.csv"
    analysis = analyze_run(open_table(str(path)))
    md = Report.from_analysis(analysis).to_markdown()
    (row,) = [line for line in md.splitlines() if line.startswith("| Events |")]
    numbers = [int(n) for n in re.findall(r"(?:warning|critical) (\d+)", row)]
    assert int(row.split("|")[2].split()[0]) == sum(numbers) == len(analysis.alarm_events), row
    notes = sum(1 for e in analysis.events if not e.is_alarm)
    assert notes and f"{notes} info notes not counted" in row and "info 4" not in row, row
