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


def test_overview_shows_flagged_batches(app):
    assert app.title[0].value == "Overview"
    assert "demo-ocr-run" in app.markdown[0].value
    bad = app.multiselect(key="ov_batches").value
    assert {7, 12, 3} <= set(bad)
    figs = figures(app)
    curves = figs[0]
    names = [t.get("name") for t in curves["data"]]
    assert "batch 7" in names and "event" in names
    marker = next(t for t in curves["data"] if t.get("name") == "event")
    assert len(_arr(marker["x"])) >= 3  # batches 7, 12 and 3, one marker each
    # each event marker sits on its batch's line, at the step it describes
    line7 = next(t for t in curves["data"] if t.get("name") == "batch 7")
    on_line = dict(zip(_arr(line7["x"]), _arr(line7["y"])))
    assert any(on_line.get(x) == y for x, y in zip(_arr(marker["x"]), _arr(marker["y"])))
    hits = [t for t in curves["data"] if (t.get("name") or "").startswith("detector hit")]
    assert hits and all(t.get("visible") == "legendonly" for t in hits)  # one click deeper
    # change points are drawn as vertical lines (layout shapes), with hover markers
    assert curves["layout"].get("shapes"), "expected change-point lines"
    cp = next(t for t in curves["data"] if t.get("name") == "change point")
    assert "change point" in cp["text"][0]
    assert len(figs) == 1  # the other views are lazy tabs
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
    curves = figures(app)[0]
    assert curves["layout"]["title"]["text"] == "hmean per batch"
    names = [t.get("name") for t in curves["data"]]
    assert "batch 7 (raw)" in names and "batch 7" in names  # smoothing keeps the raw line
    assert curves["layout"]["yaxis"].get("range")


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
    names = [t.get("name") for t in figures(app)[0]["data"]]
    assert "batch 12" in names and "batch 7" not in names
