"""The dashboard's logic without Streamlit: tables the pages draw, the config editor, where the demo goes, and the
legacy-route files that hand deep links to app.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.core.config import AnalyzerConfig, config_from_dict
from analysis.core.records import Anomaly, ChangePoint
from analysis.core.run import RunRef
from analysis.core.vocabulary import Severity
from ui import config_edit, tables

ROOT = Path(__file__).resolve().parents[1]


def test_logic_modules_import_no_streamlit():
    code = "import sys, ui.tables, ui.config_edit, ui.routing, ui.navigation; sys.exit('streamlit' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# ------------------------------------------------------------------------------------------------ sidebar
def test_filter_runs_needs_every_word_in_name_id_project_or_state():
    runs = [
        RunRef("local", "a", "abc123", "baseline", project="ocr", state="finished"),
        RunRef("local", "b", "def456", "lr-sweep", project="ocr", state="running"),
        RunRef("local", "c", "ghi789", "lr-sweep-2", project="det", state="crashed"),
    ]
    assert [r.run_id for r in tables.filter_runs(runs, "")] == ["abc123", "def456", "ghi789"]
    assert [r.run_id for r in tables.filter_runs(runs, "LR ocr")] == ["def456"]
    assert [r.run_id for r in tables.filter_runs(runs, "crashed")] == ["ghi789"]
    assert tables.filter_runs(runs, "nothing") == []


# ----------------------------------------------------------------------------------------------- overview
def test_findings_table_ranks_by_severity_then_step_and_filters_a_batch():
    anomalies = [
        Anomaly(30, "recall", 0.5, "zscore", 4.0, Severity.WARNING, "w", batch=1),
        Anomaly(20, "recall", 0.2, "threshold", 1.0, Severity.CRITICAL, "c", batch=2, end_step=40),
        Anomaly(10, "recall", 0.7, "zscore", 3.0, Severity.WARNING, "w0", batch=1),
        Anomaly(5, "loss", 9.0, "nonfinite", 1.0, Severity.INFO, "i", batch=None),
    ]
    cps = [ChangePoint(25, "recall", 0.9, 0.6, -0.3, batch=1, severity=Severity.CRITICAL)]
    table = tables.findings_table(anomalies, cps)
    assert list(table.columns) == tables.FINDINGS_COLUMNS
    assert list(table["severity"]) == ["critical", "critical", "warning", "warning", "info"]
    assert list(table["step"]) == [20, 25, 10, 30, 5]  # equal severities by step
    assert table["until"].iloc[0] == 40 and bool(table["until"].isna().iloc[1])
    assert table["detector"].iloc[1] == "change_point" and "0.900 → 0.600" in str(table["message"].iloc[1])
    assert str(table["batch"].dtype) == "Int64"
    one = tables.findings_table(anomalies, cps, batch=1)
    assert list(one["step"]) == [25, 10, 30]
    empty = tables.findings_table([], [], batch=3)
    assert empty.empty and list(empty.columns) == tables.FINDINGS_COLUMNS


def test_overview_defaults():
    assert tables.default_batches([7, 12, 3, 99], [3, 7, 12]) == [7, 12, 3]
    assert tables.default_batches(list(range(20)), list(range(20))) == list(range(8))
    names = ["train/loss", "val/a", "val/b", "val/c", "val/d", "val/e"]
    assert tables.default_global_metrics(names) == ["val/a", "val/b", "val/c", "val/d"]
    assert tables.default_global_metrics(["a", "b", "c", "d"]) == ["a", "b", "c"]
    # metrics with events come first (an SRGAN log: the collapsed PSNR, not the alphabetical Learning_Rate)
    srgan = ["Learning_Rate", "Loss_D", "Loss_G", "PSNR", "SSIM"]
    assert tables.default_global_metrics(srgan, ["PSNR", "SSIM", "PSNR", "gone"]) == ["PSNR", "SSIM"]
    assert tables.default_global_metrics(names, ["train/loss"]) == ["train/loss", "val/a", "val/b", "val/c"]
    # a YOLOX log's counters and learning rate come first alphabetically; the losses are what a user looks at
    assert tables.default_global_metrics(["epoch", "iter", "lr", "loss", "run", "acc"]) == ["loss", "acc"]
    shown, hidden = tables.summary_without_batches({"acc": 1, "batch_0/recall": 0.9, "batch_1/x": 2, "nested": {}})
    assert shown == {"acc": 1} and hidden == 2


# ------------------------------------------------------------------------------------------------ batches
def scores_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": ["a.png", "b.png", "c.png"],
            "batch": [1, 1, 1],
            "width": [100, 400, 50],
            "height": [100, 200, 50],
            "blur_score": [300.0, 20.0, 150.0],
            "rotation_angle": [-12.0, 1.0, 3.0],
            "error": [None, None, None],
            "is_acceptable": [False, False, True],
            "reasons": [["rotated"], ["blurry"], []],
        }
    )


def test_images_at_step_merges_scores_and_sorts():
    images = pd.DataFrame({"batch": 1, "step": [10, 10, 10, 20], "path": ["a.png", "b.png", "c.png", "a.png"]})
    blurriest = tables.images_at_step(images, 10, scores_frame(), "blur (blurriest first)")
    assert list(blurriest["path"]) == ["b.png", "c.png", "a.png"]
    assert "batch" not in blurriest and list(blurriest["pixels"]) == [80_000, 2_500, 10_000]
    rotated = tables.images_at_step(images, 10, scores_frame(), "rotation (most rotated first)")
    assert list(rotated["path"]) == ["a.png", "c.png", "b.png"]
    smallest = tables.images_at_step(images, 10, scores_frame(), "resolution (smallest first)")
    assert list(smallest["path"]) == ["c.png", "a.png", "b.png"]
    assert tables.count_failing(blurriest) == 2
    unscored = tables.images_at_step(images, 20, None, "blur (blurriest first)")
    assert list(unscored.columns) == ["path"] and tables.count_failing(unscored) == 0


def test_gallery_pages_and_batch_labels():
    table = pd.DataFrame({"path": [f"{i}.png" for i in range(50)]})
    assert tables.gallery_pages(50) == 3 and tables.gallery_pages(24) == 1 and tables.gallery_pages(0) == 1
    assert list(tables.gallery_page(table, 3)["path"]) == ["48.png", "49.png"]
    summary = pd.DataFrame({"batch": [7, 3], "severity": ["critical", "ok"]})
    assert tables.batch_labels(summary) == {7: "batch 7 (critical)", 3: "batch 3 (ok)"}
    assert tables.primary_first(["precision", "recall", "hmean"], "recall") == ["recall", "hmean", "precision"]


def test_badge_line_and_score_table():
    row = scores_frame().iloc[0].copy()
    line = tables.badge_line(row)
    assert line.startswith("✗ fails blur 300 · rot -12.0° · 100×100") and line.endswith("— rotated")
    assert tables.badge_line(None) == "not scored"
    broken = row.copy()
    broken["error"] = "cannot decode"
    assert tables.badge_line(broken) == "unreadable: cannot decode"
    assert tables.failing_reasons_line(row) == "**Fails:** rotated"
    assert tables.failing_reasons_line(scores_frame().iloc[2]) is None
    scored = tables.image_score_table(pd.concat([row, pd.Series({"abs_rotation": 12.0, "pixels": 1})]))
    assert "abs_rotation" not in set(scored["score"]) and "blur_score" in set(scored["score"])


# ------------------------------------------------------------------------------------------- data quality
def test_data_quality_tables():
    scores = tables.with_abs_rotation(scores_frame().assign(contrast=[0.1, 0.5, 0.9], note=["x", "y", "z"]))
    assert list(scores["abs_rotation"]) == [12.0, 1.0, 3.0]
    assert tables.extra_score_columns(scores) == ["contrast"]
    values = np.array([1.0, np.nan, 5.0])
    assert list(tables.failing_mask(values, 2.0, "below")) == [True, False, False]
    assert list(tables.failing_mask(values, 2.0, "above")) == [False, False, True]
    flagged = scores.assign(reason_codes=pd.Series([["rotation"], ["blur"], []], dtype=object))
    rejected, total = tables.rejected_table(flagged, limit=1)
    assert total == 2 and len(rejected) == 1
    assert rejected.iloc[0]["reasons"] == "rotated" and rejected.iloc[0]["reason_codes"] == "rotation"
    assert "batch" not in rejected and "abs_rotation" not in rejected and "is_acceptable" not in rejected
    assert list(rejected.columns[:2]) == ["path", "reasons"]  # why an image fails, next to which image
    csv = tables.scores_csv(flagged)
    assert "abs_rotation" not in csv.splitlines()[0] and ",blurry," in csv


def test_report_file_stem():
    assert tables.report_file_stem("run <1> (abc)") == "run_1_abc"
    assert tables.report_file_stem("...") == "run"


def test_monitor_tables_hide_the_webhook(monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    cfg = config_from_dict(
        {
            "experiment_monitoring": {
                "alerts": {
                    "slack_webhook": "https://hooks.example/secret",
                    "email_recipients": ["a@b.c"],
                    "apprise_urls": ["discord://1234567/secrettoken"],
                }
            }
        }
    )
    sinks = tables.alert_sinks_table(cfg.experiment_monitoring.alerts)
    assert list(sinks["sink"]) == ["Slack webhook", "Email (SMTP)", "Apprise", "wandb.alert", "log"]
    assert bool(sinks["configured"].all())
    assert "secret" not in sinks.to_string() and "a@b.c" in str(sinks["detail"].iloc[1])
    assert "1234567" not in sinks.to_string() and "discord://" in str(sinks["detail"].iloc[2])
    detection = tables.detection_table(cfg.experiment_monitoring.anomaly_detection)
    assert "statistical_anomaly_zscore" in set(detection["setting"])
    assert list(tables.strategies_table(["rollback"])["strategy"]) == ["rollback"]


# ------------------------------------------------------------------------------------------- config editor
def test_threshold_values_read_the_config():
    cfg = config_from_dict(
        {"experiment_monitoring": {"anomaly_detection": {"statistical_anomaly_zscore": 4.5, "drop_only": True}}}
    )
    values = config_edit.threshold_values(cfg)
    assert values["cfg_z"] == 4.5 and values["cfg_drop_only"] is True
    assert values["cfg_recall_min"] == config_edit.DEFAULT_RECALL_MIN
    assert set(values) == set(config_edit.THRESHOLD_FIELDS)


def test_edited_config_writes_the_fields_and_keeps_the_rest():
    cfg = AnalyzerConfig()
    assert config_edit.edited_config(cfg, config_edit.threshold_values(cfg)) == cfg  # untouched fields: same config
    no_recall = config_from_dict(
        {"experiment_monitoring": {"anomaly_detection": {"metric_thresholds": {"hmean": 0.7}}}}
    )
    untouched = config_edit.edited_config(no_recall, {"cfg_z": 5.0})  # the field left alone adds no recall bound
    assert untouched.experiment_monitoring.anomaly_detection.metric_thresholds == {"hmean": 0.7}
    moved = config_edit.edited_config(no_recall, {"cfg_recall_min": 0.6})
    assert moved.experiment_monitoring.anomaly_detection.metric_thresholds == {"hmean": 0.7, "recall": 0.6}
    new = config_edit.edited_config(cfg, {"cfg_z": 6.0, "cfg_drop": 0.3, "cfg_drop_only": True, "cfg_recall_min": 0.9})
    ad = new.experiment_monitoring.anomaly_detection
    assert (ad.statistical_anomaly_zscore, ad.performance_drop_threshold, ad.drop_only) == (6.0, 0.3, True)
    assert ad.metric_thresholds["recall"] == 0.9
    assert new.data_quality == cfg.data_quality and new.training_config == cfg.training_config
    with_recall = config_from_dict(
        {"experiment_monitoring": {"anomaly_detection": {"metric_thresholds": {"recall": 0.8, "hmean": 0.7}}}}
    )
    kept = config_edit.edited_config(with_recall, {"cfg_z": 5.0})
    assert kept.experiment_monitoring.anomaly_detection.metric_thresholds == {"recall": 0.8, "hmean": 0.7}


# ------------------------------------------------------------------------------------------- demo location
def test_demo_lives_in_the_checkout_when_it_can(tmp_path):
    from ui.state import resolve_demo_root

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text("")
    assert resolve_demo_root(checkout, tmp_path / "cache") == checkout / "demo"
    assert resolve_demo_root(checkout, tmp_path / "cache", str(tmp_path / "mine")) == tmp_path / "mine"
    assert resolve_demo_root(ROOT, tmp_path / "cache") == ROOT / "demo"  # `make run` writes demo/ here


def test_an_installed_package_writes_the_demo_to_the_cache(tmp_path, monkeypatch):
    """app.py in site-packages: no pyproject.toml beside it, and the folder may be read-only."""
    from ui import state

    site = tmp_path / "site-packages"
    site.mkdir()
    assert state.resolve_demo_root(site, tmp_path / "cache") == tmp_path / "cache" / "demo"
    checkout = tmp_path / "readonly-checkout"
    checkout.mkdir()
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.setattr(state, "_writable", lambda folder: False)  # a read-only mount (root ignores chmod)
    assert state.resolve_demo_root(checkout, tmp_path / "cache") == tmp_path / "cache" / "demo"
    (checkout / "demo" / "wandb").mkdir(parents=True)  # a demo written before the mount went read-only is used
    assert state.resolve_demo_root(checkout, tmp_path / "cache") == checkout / "demo"


# ------------------------------------------------------------------------------------------- legacy routes
@pytest.mark.parametrize("url_path", ["batches", "data-quality", "reports", "monitor"])
def test_every_page_url_has_a_legacy_route_that_runs_app_py(url_path):
    """Streamlit's first run on a fresh server routes by `pages/<file name>`: each URL needs a file of that name,
    and that file must only hand over to app.py (see ui/routing.py; the Chromium proof is tests/e2e)."""
    import ast

    source = (ROOT / "pages" / f"{url_path}.py").read_text()
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
    assert [ast.unparse(c) for c in calls] == ["run_app()"]
    app_source = (ROOT / "app.py").read_text()
    assert f'url_path="{url_path}"' in app_source


def test_run_app_executes_app_py(monkeypatch, tmp_path):
    from ui import routing

    fake = tmp_path / "app.py"
    fake.write_text("from pathlib import Path\nPath(__file__).with_suffix('.ran').write_text(__name__)\n")
    monkeypatch.setattr(routing, "APP_SCRIPT", fake)
    routing.run_app()
    assert (tmp_path / "app.ran").read_text() == "__main__"


# ------------------------------------------------------------------------------------ thresholds and the URL
def test_quality_sliders_edit_the_one_config_and_keep_it_when_unmoved():
    cfg = AnalyzerConfig()
    assert config_edit.edited_quality(cfg, config_edit.quality_values(cfg)) is cfg  # same key: no re-analysis
    moved = config_edit.edited_quality(cfg, {"dq_blur": 365.0, "dq_min_w": 40})
    assert moved.data_quality.blur_threshold == 365.0 and moved.data_quality.min_resolution == (40, 100)
    assert moved.experiment_monitoring == cfg.experiment_monitoring
    assert config_edit.quality_values(moved)["dq_blur"] == 365.0


def test_save_to_config_replaces_the_threshold_sections_and_keeps_the_rest():
    import yaml

    original = (
        "experiment_monitoring:\n  alerts:\n    slack_webhook: https://hooks.example/T0/B0/secret\n"
        "  anomaly_detection:\n    statistical_anomaly_zscore: 4.0\nnotes: keep me\n"
    )
    cfg = config_edit.edited_quality(AnalyzerConfig(), {"dq_blur": 365.0})
    saved = yaml.safe_load(config_edit.merged_yaml(original, cfg))
    assert saved["data_quality"]["blur_threshold"] == 365.0
    assert saved["experiment_monitoring"]["alerts"]["slack_webhook"].endswith("/secret")  # not the placeholder
    assert saved["notes"] == "keep me"
    assert saved["experiment_monitoring"]["anomaly_detection"]["statistical_anomaly_zscore"] == 3.0  # the active one
    from analysis.core.errors import ConfigError

    with pytest.raises(ConfigError):
        config_edit.merged_yaml("- a list\n", cfg)


def test_url_values_name_runs_sources_and_numbers():
    from ui import navigation

    runs = [
        RunRef("local", "/w/wandb/offline-run-2026-abc123", "abc123", "baseline"),
        RunRef("local", "/w/wandb/offline-run-2026-def456", "def456", "sweep"),
    ]
    assert navigation.find_run(runs, "def456") is runs[1]
    assert navigation.find_run(runs, "offline-run-2026-abc123") is runs[0]
    assert navigation.find_run(runs, "sweep") is runs[1]
    assert navigation.find_run(runs, "gone") is None
    assert navigation.source_label("cloud") == "wandb cloud" and navigation.source_label("nonsense") is None
    assert navigation.source_param("Upload history") == "upload"
    assert [navigation.parse_int(v) for v in ("12", "12.0", "seven", "nan", None)] == [12, 12, None, None, None]
    assert navigation.nearest_step([300, 100, 200], 150) == 200  # images are logged once the problem shows
    assert navigation.nearest_step([100, 200], 900) == 200 and navigation.nearest_step([100, 200], None) == 200
    assert navigation.nearest_step([], 5) is None


def test_before_strip_prefers_logged_earlier_images_then_same_file_names():
    from ui import navigation

    images = pd.DataFrame(
        {"step": [20, 20, 30, 30], "batch": [7, 7, 7, 7], "path": ["bad/b7/a.png", "bad/b7/b.png"] * 2}
    )
    audit = pd.DataFrame(
        {
            "path": ["bad/b7/a.png", "bad/b7/b.png", "clean/b7/a.png", "clean/b7/b.png", "clean/b8/a.png"],
            "is_acceptable": [False, False, True, True, True],
        }
    )
    strip = navigation.before_strip(images, 7, 30, 20, audit)
    assert strip is not None and strip.paths == ["clean/b7/a.png", "clean/b7/b.png"]
    assert "clean/b7" in strip.caption
    earlier = pd.concat([images, pd.DataFrame({"step": [10], "batch": [7], "path": ["old/b7/a.png"]})])
    strip = navigation.before_strip(earlier, 7, 30, 20, audit)
    assert strip is not None and strip.paths == ["old/b7/a.png"] and "step 10" in strip.caption
    assert navigation.before_strip(images, 8, 30, None, audit) is None  # no images of that batch
    assert navigation.before_strip(images, 7, 30, 20, None) is None  # nothing earlier, no audit


def test_first_bad_step_of_healthy_batches_is_none():
    from ui import navigation

    summary = pd.DataFrame({"batch": [7, 3, 4], "first_bad_step": [2000, -1, np.nan]})
    assert navigation.first_bad_step(summary, 7) == 2000
    assert navigation.first_bad_step(summary, 3) is None and navigation.first_bad_step(summary, 4) is None
    assert navigation.first_bad_step(summary, 99) is None


def test_the_default_chart_shows_each_alarm_events_own_metric_before_the_others_it_names():
    """A Mask R-CNN log (real, test batch 22): six losses turn NaN at step 750 (one event naming six metrics) and
    the accuracy falls at step 800; the chart of four showed four of the losses and not the accuracy."""
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/mmdet_jjho1314/mask_rcnn_20230203_000907.csv"
    analysis = analyze_run(open_table(path))
    names = sorted(analysis.global_metrics["metric"].unique())
    leads = [e.metric for e in analysis.alarm_events if e.batch is None]
    assert "acc" in leads and len(leads) >= 2
    assert analysis.alarmed_run_metrics[: len(leads)] == leads
    shown = tables.default_global_metrics(names, analysis.alarmed_run_metrics)
    assert set(leads) <= set(shown) and len(shown) == 4
