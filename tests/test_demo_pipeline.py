"""The walking skeleton end to end: the demo run written by real wandb -> reader -> findings -> root causes."""

from __future__ import annotations

import numpy as np

from analysis.demo import DEFECTS, N_BATCHES, N_STEPS, simulate_metrics


def test_demo_metrics_are_deterministic_and_tell_the_story():
    a, b = simulate_metrics(0), simulate_metrics(0)
    assert a == b
    defect = DEFECTS[0]
    before = [m["recall"] for m in a if m["batch"] == defect.batch and m["step"] < defect.start_step]
    after = [m["recall"] for m in a if m["batch"] == defect.batch and m["step"] >= defect.start_step]
    assert np.mean(before) > 0.85 and np.mean(after) < 0.7


def test_demo_run_reads_back_with_every_batch(demo_analysis):
    batches = demo_analysis.batches
    assert sorted(batches["batch"].unique()) == list(range(N_BATCHES))
    assert set(batches["metric"]) == {"recall", "precision", "hmean"}
    # pivoted on global_step: one value per (batch, metric, validation step)
    counts = batches.groupby(["batch", "metric"]).size()
    assert (counts == N_STEPS).all()
    assert batches["step"].min() == 100 and batches["step"].max() == N_STEPS * 100
    assert {"val/recall", "train/loss"} <= set(demo_analysis.global_metrics["metric"])


def test_injected_bad_batches_are_flagged_first(demo_analysis):
    flagged = demo_analysis.problematic_batches
    assert {d.batch for d in DEFECTS} <= set(flagged[: len(DEFECTS)])
    summary = demo_analysis.batch_summary.set_index("batch")
    for d in DEFECTS:
        assert summary.loc[d.batch, "severity"] in ("warning", "critical")
        # flagged at (or within one validation of) the step the defect starts
        assert d.start_step <= summary.loc[d.batch, "first_bad_step"] <= d.start_step + 100
        assert summary.loc[d.batch, "n_problem_images"] > 0


def test_problem_images_point_at_the_defective_scans(demo_analysis):
    imgs = demo_analysis.images
    blurred = imgs[(imgs["batch"] == 7) & (imgs["step"] >= 2000)]
    assert len(blurred) and blurred["path"].str.startswith("refresh_2000/batch_07/").all()


def test_quality_scores_explain_the_blurred_batch(demo_analysis):
    q = demo_analysis.quality
    assert q is not None and len(q) >= N_BATCHES * 8
    bad = q[q["path"].str.startswith("refresh_2000/")]
    assert len(bad) == 8 and (~bad["is_acceptable"]).all()
    assert all(any("blur" in r.lower() for r in reasons) for reasons in bad["reasons"])
    lowres = q[q["path"].str.startswith("refresh_3400/")]
    assert (~lowres["is_acceptable"]).all()
    clean = q[q["path"].str.startswith("clean/")]
    assert clean["is_acceptable"].mean() > 0.95
    causes = [c for c in demo_analysis.root_causes if c.batch == 7]
    assert causes and "blur" in causes[0].sentence.lower()


def test_enable_filtering_sets_failing_images_aside_but_root_causes_keep_them(demo_root, demo_analysis):
    """data_quality.enable_filtering: logged problem images that fail the quality checks leave `images` (and the
    per-batch counts) for `filtered_images`, with their reasons; the audit and the root causes are unchanged."""
    from analysis.core.config import config_from_dict
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run

    assert demo_analysis.filtered_images.empty  # off by default
    cfg = config_from_dict({"data_quality": {"enable_filtering": True}})
    filtered = analyze_run(open_run(demo_analysis.run.ref.locator), cfg, data_dir=demo_root / "data")

    gone = filtered.filtered_images
    blurred = gone[(gone["batch"] == 7) & gone["path"].str.startswith("refresh_2000/")]
    assert len(blurred) and all("blur" in codes for codes in blurred["reason_codes"])
    assert all(reasons for reasons in blurred["reasons"])
    assert not filtered.images["path"].isin(gone["path"]).any()
    failing = set(demo_analysis.quality.loc[~demo_analysis.quality["is_acceptable"], "path"])
    assert set(gone["path"]) == set(demo_analysis.images["path"]) & failing
    assert len(filtered.images) + len(gone) == len(demo_analysis.images)
    before = demo_analysis.batch_summary.set_index("batch")["n_problem_images"]
    after = filtered.batch_summary.set_index("batch")["n_problem_images"]
    assert after[7] < before[7]
    # the audit still lists every image, and batch 7 is still explained by its blurry images
    assert filtered.quality is not None and len(filtered.quality) == len(demo_analysis.quality)
    causes = [c for c in filtered.root_causes if c.batch == 7]
    assert causes and "blur" in causes[0].sentence.lower()


def test_batch_summary_follows_the_metric_direction_and_info_raises_no_alarm():
    import pandas as pd

    from analysis.core.records import Anomaly
    from analysis.core.vocabulary import Severity
    from analysis.findings.pipeline import alarm_severity, summarize_batches

    batches = pd.DataFrame(
        {"step": [1, 2, 1, 2, 1, 2], "batch": [0, 0, 1, 1, 2, 2], "metric": ["cer"] * 6,
         "value": [0.1, 0.3, 0.2, 0.25, 0.1, 0.12]}
    )  # fmt: skip
    info = Anomaly(2, "batch_0/cer", 0.3, "plateau", 1.0, Severity.INFO, "flat", batch=0)
    critical = Anomaly(2, "batch_2/cer", 0.12, "threshold", 0.5, Severity.CRITICAL, "high", batch=2)
    out = summarize_batches(batches, [info, critical], [], pd.DataFrame(columns=["step", "batch", "path"]))
    assert out.set_index("batch")["worst_recall"].to_dict() == {0: 0.3, 1: 0.25, 2: 0.12}  # the highest error
    assert out.set_index("batch")["severity"].to_dict() == {0: "ok", 1: "ok", 2: "critical"}
    assert list(out["batch"]) == [2, 0, 1]  # critical first, then the worst (highest) error rate
    assert alarm_severity([]) is Severity.OK and alarm_severity(["info", "warning"]) is Severity.WARNING


def test_the_three_defects_are_three_events_with_their_detectors_as_evidence(demo_analysis):
    """Not 35 detector hits and 7 change points: one event per defect, batch 7, 12 and 3, in step order of onset."""
    alarms = demo_analysis.alarm_events
    assert sorted((e.start_step, e.batch) for e in alarms) == [(2000, 7), (2800, 12), (3400, 3)]
    for e in alarms:
        assert e.kind in ("level_shift", "collapse") and e.severity == "critical"
        assert e.metrics[0] == "recall" and set(e.metrics) == {"recall", "precision", "hmean"}
        assert len(e.detectors) >= 2 and all(ev.batch == e.batch for ev in e.evidence)
        assert e.value_after < e.value_before - 0.15
    assert len(demo_analysis.anomalies) > 3 * len(alarms)  # the hits stay available, one level deeper
    summary = demo_analysis.batch_summary.set_index("batch")
    assert summary.loc[[7, 12, 3], "n_events"].tolist() == [1, 1, 1]
    assert (summary.drop(index=[7, 12, 3])["severity"] == "ok").all()


def test_images_extend_the_metrics_analysis_without_rerunning_the_detectors(demo_analysis):
    """The dashboard draws the metrics-only analysis first and adds the images to it: the result is the full
    analysis (same causes, summary, quality), and the detector findings are the very same objects."""
    import pandas as pd

    from analysis.findings.pipeline import analyze_metrics, with_image_quality

    metrics = analyze_metrics(demo_analysis.run, demo_analysis.config)
    assert metrics.quality is None and metrics.data_dir is None
    full = with_image_quality(metrics, demo_analysis.data_dir)
    assert full.events is metrics.events and full.anomalies is metrics.anomalies
    assert full.root_causes == demo_analysis.root_causes
    assert any("blurrier" in c.sentence for c in full.root_causes)  # image evidence joined the causes
    pd.testing.assert_frame_equal(full.batch_summary, demo_analysis.batch_summary)
    assert full.quality is not None and demo_analysis.quality is not None
    pd.testing.assert_frame_equal(full.quality, demo_analysis.quality)
