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
