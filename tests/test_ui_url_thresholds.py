"""Thresholds in the URL (issue 15): a shared link carries the thresholds that differ from the defaults, and opening
it makes them the session's config, so the same flags, badges and findings are shown."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis.core.config import AnalyzerConfig
from ui.config_edit import URL_THRESHOLDS, config_from_params, edited_config, edited_quality, threshold_params

APP = "../app.py"  # relative to this file


def test_default_thresholds_leave_the_url_clean():
    assert set(threshold_params(AnalyzerConfig())) == set(URL_THRESHOLDS)
    assert all(v is None for v in threshold_params(AnalyzerConfig()).values())


def test_edited_thresholds_round_trip_through_the_url():
    cfg = edited_quality(AnalyzerConfig(), {"dq_blur": 365.0, "dq_rotation": 2.5, "dq_min_w": 120.0})
    cfg = edited_config(cfg, {"cfg_recall_min": 0.85, "cfg_drop_only": True, "cfg_z": 4.5})
    params = threshold_params(cfg)
    assert params == {
        "recall_min": "0.85",
        "z": "4.5",
        "drop": None,
        "drops_only": "1",
        "blur": "365",
        "max_rot": "2.5",
        "min_w": "120",
        "min_h": None,
    }
    back, bad = config_from_params(AnalyzerConfig(), {k: v for k, v in params.items() if v is not None})
    assert bad == [] and back == cfg


@pytest.mark.parametrize(
    "param, text",
    [("blur", "sharp"), ("max_rot", "90"), ("min_w", "-5"), ("z", "1e9"), ("recall_min", "nan"), ("drops_only", "x")],
)
def test_unusable_values_are_refused_one_by_one(param, text):
    cfg, bad = config_from_params(AnalyzerConfig(), {param: text, "blur": "200"} if param != "blur" else {param: text})
    assert bad == [param]
    if param != "blur":
        assert cfg.data_quality.blur_threshold == 200  # the usable one is taken
    assert threshold_params(cfg).get(param) is None  # the refused one keeps the default


def test_unknown_parameters_are_ignored():
    cfg, bad = config_from_params(AnalyzerConfig(), {"page": "batches", "batch": "7"})
    assert bad == [] and cfg == AnalyzerConfig()


@pytest.mark.slow  # the whole app runs (AppTest) on the demo
def test_a_link_with_thresholds_sets_the_sessions_config_and_keeps_them_in_the_url(demo_root):
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["dir"] = str(demo_root / "wandb")
    at.query_params["blur"] = "365"
    at.query_params["recall_min"] = "0.9"
    at.query_params["max_rot"] = "ninety"
    at.run()
    assert not at.exception, at.exception
    cfg = AnalyzerConfig.model_validate_json(at.session_state["config_json"])
    assert cfg.data_quality.blur_threshold == 365
    assert cfg.experiment_monitoring.anomaly_detection.metric_thresholds["recall"] == 0.9
    assert cfg.data_quality.max_rotation_degrees == AnalyzerConfig().data_quality.max_rotation_degrees
    assert any("max_rot" in w.value.replace("\\", "") for w in at.sidebar.warning)  # the unusable one is named
    assert at.query_params["blur"] == "365" and at.query_params["recall_min"] == "0.9"
    assert "max_rot" not in at.query_params
    # the Data quality sliders show the linked threshold
    at.switch_page("pages/data_quality_page.py").run()
    assert not at.exception, at.exception
    assert at.slider(key="dq_blur").value == 365
    st.cache_data.clear()
    st.cache_resource.clear()
