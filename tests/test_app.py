"""AppTest tier: every page renders on the demo run without an exception, widgets found by key."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis.core.vocabulary import severity_rank

pytestmark = pytest.mark.slow  # the whole app runs per test (AppTest) on the demo

APP = "../app.py"  # relative to this file


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()


def _arr(a):
    if isinstance(a, dict) and "bdata" in a:
        return np.frombuffer(base64.b64decode(a["bdata"]), dtype=a["dtype"])
    return np.asarray(a)


@pytest.fixture
def app(demo_root):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.text_input(key="wandb_dir").set_value(str(demo_root / "wandb")).run()
    assert not at.exception, at.exception
    return at


def images_scored(at: AppTest, timeout: float = 120) -> AppTest:
    """Rerun until the Batches page is drawn with the image analysis: the page draws the metrics first while the
    images are scored in the background (a browser reruns it by itself when they are ready; AppTest does not)."""
    deadline = time.monotonic() + timeout
    while any("Scoring this run's images" in i.value for i in at.info) and time.monotonic() < deadline:
        time.sleep(0.2)
        at.run()
    return at


def figures(at):
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def vega_specs(at):
    """The Vega-Lite charts of the page (the Overview's curves), each with its named data sets read back from the
    Arrow bytes Streamlit sends them as."""
    import pyarrow as pa

    specs = []
    for el in at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        spec["datasets"] = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pylist() for d in el.proto.datasets}
        specs.append(spec)
    return specs


def layers(spec: dict) -> list[tuple[str, dict, list[dict]]]:
    """(mark type, encoding, rows of its named data set) of every layer."""
    return [
        (layer["mark"]["type"], layer.get("encoding", {}), spec["datasets"].get(layer["data"]["name"], []))
        for layer in spec["layer"]
    ]


def curve_rows(spec: dict) -> list[dict]:
    return [r for mark, _enc, rows in layers(spec) if mark == "line" for r in rows if "series" in r]


def marker_rows(spec: dict) -> list[dict]:
    return [r for mark, _enc, rows in layers(spec) if mark == "point" for r in rows]


def test_overview_shows_flagged_batches(app):
    assert app.title[0].value == "Overview"
    assert "demo-ocr-run" in app.markdown[0].value
    bad = app.multiselect(key="ov_batches").value
    assert {7, 12, 3} <= set(bad)
    assert figures(app) == []  # the first view needs no plotly.js: its curves are drawn by Vega-Lite
    (curves,) = vega_specs(app)  # the other views are lazy tabs
    lines, marks = curve_rows(curves), marker_rows(curves)
    assert {"batch 7", "batch 12", "batch 3"} <= {r["series"] for r in lines}
    events = [m for m in marks if m["kind"] == "event"]
    assert len(events) >= 3  # batches 7, 12 and 3, one marker each
    # each event marker sits on its batch's line, at the step it describes
    on_line = {(r["step"], r["value"]) for r in lines}
    assert all((e["step"], e["value"]) in on_line for e in events)
    assert not [m for m in marks if m["kind"].startswith("detector")]  # one toggle deeper
    # change points are drawn as vertical lines with their labels, and a hover marker each
    rules = next(rows for mark, enc, rows in layers(curves) if mark == "rule" and "x" in enc)
    assert len(rules) >= 3 and any(r["label"].startswith("b7: ") for r in rules)
    assert "change point" in next(m for m in marks if m["kind"] == "change point")["finding"]
    assert curves["datasets"]["threshold"] == [{"value": 0.8, "label": "recall threshold 0.8"}]  # the config's bound
    app.toggle(key="ov_show_hits").set_value(True).run()
    hits = [m for m in marker_rows(vega_specs(app)[0]) if m["kind"].startswith("detector hit")]
    assert hits and all(h["finding"].startswith("batch ") for h in hits)
    app.session_state["ov_view"] = "Batch × step heatmap"
    app.run()
    heat = figures(app)[0]
    assert heat["data"][0]["type"] == "heatmap"
    assert len(heat["data"][0]["y"]) == 16  # every batch is a row
    app.session_state["ov_view"] = "Findings"
    app.run()
    table = app.dataframe[0].value  # the events: one per defect, detector hits one level deeper
    assert sorted(table["batch"]) == [3, 7, 12] and set(table["severity"]) == {"critical"}
    assert all(len(e.split(", ")) >= 2 for e in table["evidence"])
    assert app.metric[3].label == "Anomalies" and app.metric[3].value == "3"
    assert app.metric[4].label == "Change points" and app.metric[4].value == "3"  # events, not detector hits
    app.session_state["ov_hits"] = True
    app.run()
    hits = app.dataframe[1].value
    assert len(hits) > 3 and (hits["batch"] == 7).any()
    rank = hits["severity"].map(severity_rank)
    assert rank.is_monotonic_decreasing  # sorted by severity
    app.session_state["ov_view"] = "Run-level metrics"
    app.run()
    assert not app.exception
    assert app.multiselect(key="ov_global_metrics")


def test_overview_controls_rerender(app):
    app.selectbox(key="ov_metric").select("hmean").run()
    app.multiselect(key="ov_batches").set_value([7]).run()
    app.slider(key="ov_smoothing").set_value(0.6).run()
    app.toggle(key="ov_ignore_outliers").set_value(True).run()
    assert not app.exception
    (curves,) = vega_specs(app)
    assert curves["title"]["text"] == "hmean per batch"
    lines = curves["datasets"]["lines"]
    assert {r["series"] for r in lines} == {"batch 7"}
    raw = [r for r in lines if r["line"] == "raw"]  # smoothing keeps the raw line, faint
    smooth = [r for r in lines if r["line"] == "smoothed"]
    assert raw and all(r["alpha"] < 1 for r in raw) and [r["value"] for r in raw] != [r["value"] for r in smooth]
    domains = [enc["y"]["scale"].get("domain") for _mark, enc, _rows in layers(curves) if "y" in enc]
    assert domains and all(d is not None and d == domains[0] for d in domains)  # the clipped axis


def test_batches_page_shows_images_with_scores(app):
    images_scored(app.switch_page("pages/batches_page.py").run())
    assert not app.exception, app.exception
    assert app.title[0].value == "Batches"
    assert app.selectbox(key="b_batch").value == app.session_state["focus_batch"]
    app.selectbox(key="b_batch").select(7).run()
    assert not app.exception
    assert any("blur" in c.value.lower() for c in app.caption), "score badges expected"
    assert len(app.image) >= 8
    assert any("blur" in m.value.lower() for m in app.markdown), "root-cause sentence expected"


def test_data_quality_sliders_reflag_without_rescoring(app, monkeypatch):
    import quality.audit

    calls = []
    real = quality.audit.audit_folder

    def counting_audit(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(quality.audit, "audit_folder", counting_audit)
    app.switch_page("pages/data_quality_page.py").run()
    assert not app.exception, app.exception
    assert len(calls) == 1
    flagged = lambda: int(app.metric[1].value.replace(",", ""))  # noqa: E731
    before = flagged()
    assert before >= 24  # the three defective refresh folders
    hists = {f["layout"]["title"]["text"].split(" ·")[0]: f for f in figures(app)}
    assert {"blur_score", "abs_rotation", "width", "height"} <= set(hists)
    assert hists["blur_score"]["layout"]["shapes"][0]["x0"] == app.slider(key="dq_blur").value
    app.slider(key="dq_blur").set_value(0.0).run()
    app.slider(key="dq_rotation").set_value(45.0).run()
    app.slider(key="dq_min_w").set_value(0).run()
    app.slider(key="dq_min_h").set_value(0).run()
    assert flagged() < before
    blur = next(f for f in figures(app) if f["layout"]["title"]["text"].startswith("blur_score"))
    assert blur["layout"]["shapes"][0]["x0"] == 0.0
    assert len(calls) == 1, "a slider move must not re-score the images"
    assert app.download_button(key="dq_csv").label == "Download scores (CSV)"


def test_data_quality_shows_the_rejected_images_a_page_at_a_time_when_asked(app):
    """The audit listed the rejected images as a table only: no way to look at them from this page."""
    app.switch_page("pages/data_quality_page.py").run()
    assert not app.exception, app.exception
    n_flagged = int(app.metric[1].value.replace(",", ""))
    (gallery,) = [e for e in app.expander if e.label.startswith("See the rejected images")]
    assert gallery.label == f"See the rejected images ({n_flagged:,})"
    before = len(app.get("image"))  # the duplicates section's thumbnails, if any: the closed gallery reads none
    assert not [b for b in app.button if b.key and b.key.startswith("dq_detail_")]
    app.session_state["dq_gallery"] = True
    app.run()
    assert not app.exception, app.exception
    shown = len(app.get("image")) - before
    assert shown == min(n_flagged, 24)  # one page
    badges = [c.value for c in app.caption if c.value.startswith(("✗ fails", "unreadable"))]
    assert len(badges) == shown and app.button(key="dq_detail_0").label == "Details"
    if n_flagged > 24:
        app.number_input(key="dq_gallery_page").set_value(2).run()
        assert len(app.get("image")) - before == min(n_flagged - 24, 24)


def test_reports_page_offers_three_downloads(app):
    app.switch_page("pages/reports_page.py").run()
    assert not app.exception, app.exception
    labels = {b.label for b in app.get("download_button")}
    assert {"Download Markdown", "Download HTML", "Download JSON"} <= labels


def test_monitor_page_lists_sinks_and_strategies(app):
    app.switch_page("pages/monitor_page.py").run()
    assert not app.exception, app.exception
    assert app.title[0].value == "Monitor settings"
    assert app.button(key="mon_test_alert")


def test_bad_wandb_dir_is_a_message_not_a_traceback(app, tmp_path):
    app.text_input(key="wandb_dir").set_value(str(tmp_path / "nope")).run()
    assert not app.exception
    assert any("Not a directory" in e.value for e in app.sidebar.error)


def test_batch_choice_survives_a_page_switch(app):
    app.multiselect(key="ov_batches").set_value([12]).run()
    app.switch_page("pages/monitor_page.py").run()
    app.switch_page("pages/overview_page.py").run()
    assert not app.exception
    assert app.multiselect(key="ov_batches").value == [12]
    names = {r["series"] for r in curve_rows(vega_specs(app)[0])}
    assert "batch 12" in names and "batch 7" not in names
