"""The on-disk cache of the metrics' analysis (ui/analysis_cache.py): a fresh server reads the demo's analysis back
instead of running the detectors, and never serves an entry of another run version, config, or an untrusted file."""

from __future__ import annotations

import dataclasses
import os

import pandas as pd
import pytest

from analysis.core.config import AnalyzerConfig
from analysis.findings.pipeline import analyze_metrics
from analysis.sources import list_runs, open_run
from ui import analysis_cache

CONFIG = AnalyzerConfig().model_dump_json()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def demo_run(demo_root):
    ref = next(r for r in list_runs(demo_root / "wandb") if r.name == "demo-ocr-run")
    return ref.locator, open_run(ref.locator)


@pytest.fixture(scope="module")
def demo_metrics(demo_run):
    return analyze_metrics(demo_run[1], AnalyzerConfig())


def test_round_trip_gives_the_same_findings_joined_to_the_callers_run(cache_dir, demo_run, demo_metrics):
    location, run = demo_run
    path = analysis_cache.store_analysis(location, "fp-1", CONFIG, demo_metrics)
    assert path is not None and path.is_file() and path.parent == cache_dir / "analysis"
    back = analysis_cache.load_analysis(location, "fp-1", CONFIG, run)
    assert back is not None and back.run is run  # the run is not stored: the caller's (cached) one is used
    pd.testing.assert_frame_equal(back.batch_summary, demo_metrics.batch_summary)
    pd.testing.assert_frame_equal(back.batches, demo_metrics.batches)
    assert back.anomalies == demo_metrics.anomalies and back.change_points == demo_metrics.change_points
    assert [e.message for e in back.events] == [e.message for e in demo_metrics.events]
    assert back.problematic_batches == demo_metrics.problematic_batches and back.verdict == demo_metrics.verdict


def test_another_run_version_or_config_is_not_served(cache_dir, demo_run, demo_metrics):
    location, run = demo_run
    analysis_cache.store_analysis(location, "fp-1", CONFIG, demo_metrics)
    other = AnalyzerConfig.model_validate(
        {"experiment_monitoring": {"anomaly_detection": {"statistical_anomaly_zscore": 9.0}}}
    )
    assert analysis_cache.load_analysis(location, "fp-2", CONFIG, run) is None
    assert analysis_cache.load_analysis(location, "fp-1", other.model_dump_json(), run) is None
    # a newer version of the run file replaces the entry of the older one (same config)
    analysis_cache.store_analysis(location, "fp-2", CONFIG, demo_metrics)
    assert len(list((cache_dir / "analysis").glob("*.pickle"))) == 1
    assert analysis_cache.load_analysis(location, "fp-2", CONFIG, run) is not None


def test_live_cloud_and_image_analyses_are_not_stored(cache_dir, demo_run, demo_metrics):
    location, run = demo_run
    live = dataclasses.replace(demo_metrics, run=dataclasses.replace(run, exit_code=None))
    assert analysis_cache.store_analysis(location, "fp", CONFIG, live) is None
    assert analysis_cache.store_analysis("wandb://me/proj/abc", "cloud:0", CONFIG, demo_metrics) is None
    with_images = dataclasses.replace(demo_metrics, data_dir=cache_dir)
    assert analysis_cache.store_analysis(location, "fp", CONFIG, with_images) is None
    assert not (cache_dir / "analysis").exists() or not list((cache_dir / "analysis").iterdir())


def test_untrusted_or_damaged_entries_are_ignored(cache_dir, demo_run, demo_metrics):
    location, run = demo_run
    path = analysis_cache.store_analysis(location, "fp", CONFIG, demo_metrics)
    assert path is not None
    if hasattr(os, "getuid"):
        path.chmod(0o666)  # anyone could have written it: never unpickled
        assert analysis_cache.load_analysis(location, "fp", CONFIG, run) is None
        path.chmod(0o600)
    assert analysis_cache.load_analysis(location, "fp", CONFIG, run) is not None
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert analysis_cache.load_analysis(location, "fp", CONFIG, run) is None


def test_the_dashboard_reads_the_stored_analysis_instead_of_running_the_detectors(
    cache_dir, demo_run, demo_metrics, monkeypatch
):
    import streamlit as st

    import analysis.findings.pipeline as pipeline
    from ui import state

    location, _run = demo_run
    fingerprint = state.file_fingerprint(location)
    st.cache_resource.clear()
    first = state.cached_analysis(location, fingerprint, CONFIG, None)  # computed, and written to disk
    assert list((cache_dir / "analysis").glob("*.pickle"))
    calls = []
    real = pipeline.analyze_metrics

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "analyze_metrics", counting)
    st.cache_resource.clear()  # as a freshly started server
    again = state.cached_analysis(location, fingerprint, CONFIG, None)
    assert calls == []
    pd.testing.assert_frame_equal(again.batch_summary, first.batch_summary)
    st.cache_resource.clear()


def test_warm_thumbnails_encodes_the_gallery_images(demo_analysis):
    from ui import state

    n = state.warm_thumbnails(demo_analysis)
    logged = demo_analysis.images["path"].nunique()
    assert min(logged, state.THUMBNAILS_WARMED) <= n <= state.THUMBNAILS_WARMED
