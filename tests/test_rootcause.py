"""Root causes: data-side vs model-side, quality evidence with Mann-Whitney U, ranking and plain sentences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.core.config import AnalyzerConfig
from analysis.findings.anomalies import find_anomalies
from analysis.findings.changepoints import find_change_points
from analysis.findings.rootcause import compare_quality, explain

N_BATCHES, N_STEPS = 12, 40


def run_frames(
    bad: dict[int, tuple[int, float]], all_drop_at: int | None = None, seed: int = 0, lr_halved_at: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Batch metrics (recall, precision), global metrics and problematic images of a simulated run.

    bad: batch -> (step index from which recall falls, recall after).
    """
    rng = np.random.default_rng(seed)
    rows, imgs = [], []
    for s in range(N_STEPS):
        step = 100 * (s + 1)
        for b in range(N_BATCHES):
            recall = 0.93 + rng.normal(0, 0.006)
            if b in bad and s >= bad[b][0]:
                recall = bad[b][1] + rng.normal(0, 0.006)
            if all_drop_at is not None and s >= all_drop_at:
                recall -= 0.25
            rows += [(step, b, "recall", recall), (step, b, "precision", recall + 0.02)]
            if recall < 0.8:
                imgs += [(step, b, f"batch_{b:02d}/img_{j}.png") for j in range(6)]
    g = pd.DataFrame(
        {
            "step": 100 * np.arange(1, N_STEPS + 1),
            "metric": "train/lr",
            "value": [3e-4 * (0.1 if lr_halved_at is not None and s >= lr_halved_at else 1.0) for s in range(N_STEPS)],
        }
    )
    return (
        pd.DataFrame(rows, columns=["step", "batch", "metric", "value"]),
        g,
        pd.DataFrame(imgs, columns=["step", "batch", "path"]),
    )


def quality_frame(blurry_batch: int, rng: np.random.Generator) -> pd.DataFrame:
    """A QualityScores frame (as quality/ produces it) for 6 images per batch plus 20 unlogged images."""
    rows: list[dict[str, Any]] = []
    for b in list(range(N_BATCHES)) + [None] * 20:
        for j in range(6 if b is not None else 1):
            blur = rng.normal(40, 8) if b == blurry_batch else rng.normal(400, 60)
            reasons = [f"blurry: blur score {blur:.0f} below 100"] if blur < 100 else []
            rows.append(
                {
                    "path": f"batch_{b}/img_{j}.png" if b is not None else f"other/{len(rows)}.png",
                    "width": 480,
                    "height": 160,
                    "blur_score": blur,
                    "rotation_angle": rng.normal(0, 1),
                    "error": None,
                    "is_acceptable": not reasons,
                    "reasons": reasons,
                    "reason_codes": ["blur"] * len(reasons),
                    "batch": b,
                }
            )
    q = pd.DataFrame(rows)
    q["batch"] = q["batch"].astype("Int64")
    return q


def findings(batches: pd.DataFrame, g: pd.DataFrame, cfg: AnalyzerConfig):
    return find_anomalies(batches, g, cfg.anomaly), find_change_points(batches, g, cfg.anomaly)


def test_single_bad_batch_with_blurry_images_is_data_side_with_numbers():
    cfg = AnalyzerConfig()
    batches, g, images = run_frames({7: (20, 0.62)})
    anomalies, cps = findings(batches, g, cfg)
    quality = quality_frame(7, np.random.default_rng(1))
    causes = explain(batches, anomalies, cps, quality, images, cfg)
    assert causes and causes[0].batch == 7 and causes[0].side == "data"
    top = causes[0]
    assert top.step == 2100
    s = top.sentence
    assert s.startswith("batch 7: recall fell 0.93 → 0.62 at step 2100")
    assert "blurrier" in s and "p < 0.001" in s and "6 of 6 fail the blur threshold" in s
    blur = top.evidence["quality"]["scores"]["blur_score"]
    assert blur["p"] < 0.001 and blur["effect"] == pytest.approx(-1.0)
    assert blur["median"] < 100 < blur["median_other"]


def test_without_quality_it_still_explains_from_metrics():
    cfg = AnalyzerConfig()
    batches, g, images = run_frames({3: (30, 0.70)})
    anomalies, cps = findings(batches, g, cfg)
    causes = explain(batches, anomalies, cps, None, images, cfg)
    assert [c.batch for c in causes] == [3]
    assert causes[0].side == "data"
    assert "recall fell 0.93 → 0.70 at step 3100" in causes[0].sentence
    assert "other batches held steady" in causes[0].sentence


def test_every_batch_falling_at_once_with_an_lr_change_is_model_side():
    cfg = AnalyzerConfig()
    batches, g, images = run_frames({}, all_drop_at=25, lr_halved_at=25)
    anomalies, cps = findings(batches, g, cfg)
    causes = explain(batches, anomalies, cps, None, images, cfg)
    assert len(causes) == 1
    c = causes[0]
    assert (c.side, c.batch, c.step) == ("model", None, 2600)
    assert c.evidence["batches"] == list(range(N_BATCHES))
    assert "learning rate" in c.sentence and f"{N_BATCHES} of {N_BATCHES} batches" in c.sentence


def test_causes_are_ranked_by_the_size_of_the_fall():
    cfg = AnalyzerConfig()
    batches, g, images = run_frames({2: (10, 0.75), 9: (15, 0.40)})
    anomalies, cps = findings(batches, g, cfg)
    causes = explain(batches, anomalies, cps, None, images, cfg)
    assert [c.batch for c in causes] == [9, 2]
    assert causes[0].score > causes[1].score


def test_healthy_run_has_no_root_causes():
    cfg = AnalyzerConfig()
    batches, g, images = run_frames({})
    anomalies, cps = findings(batches, g, cfg)
    assert explain(batches, anomalies, cps, quality_frame(0, np.random.default_rng(2)), images, cfg) == []


def test_compare_quality_handles_missing_and_failed_rows():
    rng = np.random.default_rng(3)
    q = quality_frame(4, rng)
    q.loc[0, "blur_score"] = np.nan
    q.loc[0, "error"] = "cannot decode image"
    ev = compare_quality(q, 4)
    assert ev["n"] == 6 and ev["scores"]["blur_score"]["p"] < 0.01
    assert compare_quality(q, 99)["n"] == 0
    assert compare_quality(pd.DataFrame(), 1) == {"n": 0}


def test_early_training_below_the_threshold_is_not_a_root_cause():
    """Every batch starts below recall 0.8 and climbs: that is learning, not a problem; batch 5's fall is."""
    cfg = AnalyzerConfig()
    rng = np.random.default_rng(6)
    rows = []
    for s in range(60):
        step = 50 * (s + 1)
        for b in range(N_BATCHES):
            recall = 0.93 - 0.35 * np.exp(-s / 6) + rng.normal(0, 0.005)
            if b == 5 and s >= 40:
                recall -= 0.2
            rows.append((step, b, "recall", recall))
    batches = pd.DataFrame(rows, columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(batches, pd.DataFrame(columns=["step", "metric", "value"]), cfg)
    assert any(a.detector == "threshold" and a.batch == 0 for a in anomalies)  # early training is flagged
    causes = explain(batches, anomalies, cps, None, None, cfg)
    assert [(c.batch, c.step, c.side) for c in causes] == [(5, 2050, "data")]


def test_demo_run_root_causes_name_each_defect(demo_analysis):
    """The demo written by real wandb: each injected defect is the data-side cause of its batch's fall."""
    from analysis.demo import DEFECTS

    kinds = {"blur": "blur", "rotation": "rotation", "low_resolution": "resolution"}
    by_batch = {c.batch: c for c in demo_analysis.root_causes}
    assert set(by_batch) == {d.batch for d in DEFECTS}
    for d in DEFECTS:
        cause = by_batch[d.batch]
        assert cause.side == "data" and cause.step == d.start_step
        assert next(iter(cause.evidence["quality"]["failures"])) == kinds[d.kind]
        assert f"fail the {kinds[d.kind]} threshold" in cause.sentence
    # ranked by the size of the fall: blur (0.60) before rotation (0.64) before low resolution (0.70)
    assert [c.batch for c in demo_analysis.root_causes] == [7, 12, 3]


def test_odd_runs_give_findings_not_exceptions():
    """Constant, all-NaN, one-point, Inf, late and duplicated series; odd quality frames."""
    cfg = AnalyzerConfig()
    rows = [(s, 0, "recall", 0.9) for s in range(50)]  # constant and healthy
    rows += [(s, 1, "recall", np.nan) for s in range(50)]  # never finite
    rows += [(7, 2, "recall", 0.85)]  # one point
    rows += [(0, 3, "recall", 0.9), (1, 3, "recall", np.inf)]  # Inf
    rows += [(s, 4, "recall", 0.5) for s in range(40, 90)]  # late, below its bound
    rows += [(5, 5, "recall", 0.9), (5, 5, "recall", 0.91)]  # duplicated cell
    batches = pd.DataFrame(rows, columns=["step", "batch", "metric", "value"])
    g = pd.DataFrame({"step": [0, 1, 2], "metric": "train/lr", "value": [np.nan, np.inf, 1.0]})
    anomalies, cps = findings(batches, g, cfg)
    odd_quality = pd.DataFrame(
        {
            "path": ["a", "b"],
            "batch": pd.array([4, pd.NA], dtype="Int64"),
            "blur_score": [np.nan, np.inf],
            "reasons": [None, []],
            "is_acceptable": [pd.NA, True],
        }
    )
    for quality in (None, pd.DataFrame(), odd_quality):
        causes = {c.batch: c for c in explain(batches, anomalies, cps, quality, None, cfg)}
        assert set(causes) == {1, 3, 4}
        # the sentence names the non-finite value itself, not a finite before/after around it
        assert "recall is NaN at steps 0-49" in causes[1].sentence and "recall is Inf" in causes[3].sentence
        assert "recall at 0.50 from step 40 (below its 0.80 bound)" in causes[4].sentence
    assert explain(None, [], [], None, None, cfg) == []


def test_run_without_batch_metrics_is_explained_from_run_level_changes():
    cfg = AnalyzerConfig()
    rng = np.random.default_rng(11)
    n = 60
    recall = np.r_[np.full(30, 0.9), np.full(30, 0.7)] + rng.normal(0, 0.005, n)
    lr = np.where(np.arange(n) < 30, 1e-3, 1e-2)  # someone raised the learning rate tenfold
    g = pd.DataFrame(
        {
            "step": np.r_[np.arange(n), np.arange(n)] * 100,
            "metric": ["val/recall"] * n + ["train/lr"] * n,
            "value": np.r_[recall, lr],
        }
    )
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(empty, g, cfg)
    causes = explain(empty, anomalies, cps, None, None, cfg)
    assert len(causes) == 1 and causes[0].side == "model" and causes[0].step == 3000
    assert causes[0].sentence.startswith("val/recall fell 0.90 → 0.70 at step 3000; train/lr changed")


def test_a_run_level_cause_quotes_small_values_with_the_digits_that_tell_them_apart():
    """A validation loss of 0.0106 that rose to 0.0123 was quoted "0.01 → 0.01"."""
    cfg = AnalyzerConfig()
    rng = np.random.default_rng(3)
    loss = np.r_[np.full(30, 0.0106), np.full(30, 0.0123)] + rng.normal(0, 0.00005, 60)
    g = pd.DataFrame({"step": np.arange(60) * 100, "metric": ["val/loss"] * 60, "value": loss})
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(empty, g, cfg)
    (cause,) = explain(empty, anomalies, cps, None, None, cfg)
    assert cause.sentence.startswith("val/loss rose 0.011 → 0.012 at step 3000")


def test_unreadable_images_are_counted_against_every_image_of_the_batch():
    """QA: 10 unreadable + 2 scored images used to read '10 of 2 fail the unreadable threshold'."""
    batches, g, images = run_frames({3: (20, 0.40)})
    rng = np.random.default_rng(5)
    q = quality_frame(blurry_batch=-1, rng=rng)
    q = q[q["batch"] != 3]
    broken: list[dict[str, Any]] = [
        {
            "path": f"batch_03/bad_{j}.png",
            "width": np.nan,
            "height": np.nan,
            "blur_score": np.nan,
            "rotation_angle": np.nan,
            "error": "not an image or unreadable header",
            "is_acceptable": False,
            "reasons": ["unreadable: not an image or unreadable header"],
            "reason_codes": ["unreadable"],
            "batch": 3,
        }
        for j in range(10)
    ]
    ok: list[dict[str, Any]] = [
        {
            "path": f"batch_03/ok_{j}.png",
            "width": 480,
            "height": 160,
            "blur_score": 400.0,
            "rotation_angle": 0.0,
            "error": None,
            "is_acceptable": True,
            "reasons": [],
            "reason_codes": [],
            "batch": 3,
        }
        for j in range(2)
    ]
    q = pd.concat([q, pd.DataFrame(broken + ok)], ignore_index=True)
    q["batch"] = q["batch"].astype("Int64")
    ev = compare_quality(q, 3)
    assert ev["n"] == 2 and ev["n_images"] == 12
    cfg = AnalyzerConfig()
    anomalies, cps = findings(batches, g, cfg)
    cause = next(c for c in explain(batches, anomalies, cps, q, images, cfg) if c.batch == 3)
    assert "10 of 12 images cannot be read" in cause.sentence and "of 2 " not in cause.sentence


def test_a_single_batch_run_does_not_claim_its_peers_held_steady():
    """QA: with one batch there are no peers; the sentence must not say 'the other batches held steady'."""
    rows = [(100 * (s + 1), 0, "recall", 0.93 if s < 20 else 0.4) for s in range(40)]
    batches = pd.DataFrame(rows, columns=["step", "batch", "metric", "value"])
    g = pd.DataFrame(columns=["step", "metric", "value"])
    cfg = AnalyzerConfig()
    anomalies, cps = findings(batches, g, cfg)
    (cause,) = explain(batches, anomalies, cps, None, None, cfg)
    assert cause.batch == 0 and cause.side == "unknown"
    assert "other batches" not in cause.sentence and "only batch" in cause.sentence


def test_failures_are_counted_by_reason_code_not_by_message():
    """Issue 12: 8 of 8 dark, flat images read '2 of 8 fail the too dark, low contrast 0.05 below 0.1 threshold'
    (the messages differ by their numbers, and the kind was parsed back out of the text)."""
    from quality.audit import apply_thresholds

    batches, g, images = run_frames({7: (20, 0.62)})
    rng = np.random.default_rng(7)
    rows = []
    for b in range(N_BATCHES):
        for j in range(8):
            dark = b == 7
            rows.append(
                {
                    "path": f"batch_{b:02d}/img_{j}.png",
                    "width": 480,
                    "height": 160,
                    "blur_score": rng.normal(400, 40),
                    "rotation_angle": rng.normal(0, 1),
                    "rotation_confidence": 0.9,
                    "brightness": 0.15 if dark else 0.6,
                    "contrast": rng.uniform(0.02, 0.08) if dark else rng.normal(0.5, 0.05),
                    "noise": 0.01,
                    "error": None,
                    "batch": b,
                }
            )
    q = apply_thresholds(pd.DataFrame(rows), min_contrast=0.1)
    assert all(codes == ["contrast"] for codes in q.loc[q["batch"] == 7, "reason_codes"])
    ev = compare_quality(q, 7)
    assert ev["failures"] == {"contrast": 8}
    cfg = AnalyzerConfig()
    anomalies, cps = findings(batches, g, cfg)
    cause = next(c for c in explain(batches, anomalies, cps, q, images, cfg) if c.batch == 7)
    assert "8 of 8 fail the contrast threshold" in cause.sentence
    assert "too dark" not in cause.sentence and "below 0.1" not in cause.sentence


def _diverging_run(n: int = 60, nan_from: int = 30, acc_falls: bool = True) -> pd.DataFrame:
    """Run-level rows only: a train loss that turns NaN at `nan_from` and an accuracy that falls one step later."""
    rng = np.random.default_rng(5)
    loss = np.linspace(2.0, 1.2, n) + rng.normal(0, 0.01, n)
    loss[nan_from:] = np.nan
    acc = np.full(n, 94.0) + rng.normal(0, 0.3, n)
    if acc_falls:
        acc[nan_from + 1 :] = 27.0 + rng.normal(0, 0.3, n - nan_from - 1)
    steps = np.arange(n) * 50
    return pd.DataFrame(
        {
            "step": np.r_[steps, steps, steps],
            "metric": ["loss"] * n + ["loss_mask"] * n + ["acc"] * n,
            "value": np.r_[loss, loss * 0.5, acc],
        }
    )


def test_a_run_level_fall_after_losses_turned_nan_is_told_as_a_divergence():
    """A Mask R-CNN log (real, test batch 22) whose losses turned NaN at step 750 was explained by its accuracy's
    fall at step 800 alone: "no batch metrics were logged to tell data from model"."""
    cfg = AnalyzerConfig()
    g = _diverging_run()
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(empty, g, cfg)
    causes = explain(empty, anomalies, cps, None, None, cfg)
    assert causes and causes[0].side == "model", causes
    sentence = causes[0].sentence
    assert sentence.startswith("acc fell"), sentence
    assert "loss turned NaN at step 1500 (also loss_mask)" in sentence and "diverged" in sentence, sentence
    assert causes[0].evidence["nonfinite_before"] is True


def test_losses_that_turn_nan_with_nothing_falling_are_a_cause_of_their_own():
    cfg = AnalyzerConfig()
    g = _diverging_run(acc_falls=False)
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(empty, g, cfg)
    causes = explain(empty, anomalies, cps, None, None, cfg)
    assert [c.sentence for c in causes] == ["loss turned NaN at step 1500 (also loss_mask): the run diverged"]
    assert causes[0].side == "model" and causes[0].step == 1500
    assert causes[0].evidence["nonfinite"][0] == {"step": 1500, "end_step": 2950, "metric": "loss", "value": "nan"}


def _sparse_iou_run(n: int = 400, one_nan_at: int | None = None) -> pd.DataFrame:
    """Run-level rows: a falling loss, and a layer IoU that is NaN at most steps (Darknet prints `-nan` where no
    object was assigned) with finite values between; optionally a second IoU that is NaN at one step only."""
    rng = np.random.default_rng(3)
    loss = 2.0 * np.exp(-np.arange(n) / 80) + 0.5 + rng.normal(0, 0.01, n)
    iou = 0.55 + rng.normal(0, 0.08, n)
    iou[rng.random(n) < 0.9] = np.nan
    other = 0.6 + rng.normal(0, 0.01, n)
    if one_nan_at is not None:
        other[one_nan_at] = np.nan
    steps = np.arange(n)
    return pd.DataFrame(
        {
            "step": np.r_[steps, steps, steps],
            "metric": ["loss"] * n + ["r16_avg_iou"] * n + ["r23_avg_iou"] * n,
            "value": np.r_[loss, iou, other],
        }
    )


def test_a_metric_that_is_nan_now_and_then_is_no_divergence():
    """Real test batch 24 (Darknet `train0723`): r16_avg_iou is NaN at 5,707 of 6,000 iterations in 271 stretches.
    Its NaNs were 271 critical events and the root cause "after r16_avg_iou turned NaN at step 1: the run diverged"."""
    cfg = AnalyzerConfig()
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(empty, _sparse_iou_run(), cfg)
    nan_hits = [a for a in anomalies if a.detector == "nonfinite"]
    # warnings, and a note for the first ones, before the IoU has any value
    assert nan_hits and {str(a.severity) for a in nan_hits if a.step > 0} == {"warning"}, nan_hits
    assert not any("diverged" in c.sentence for c in explain(empty, anomalies, cps, None, None, cfg))


def test_a_nan_at_one_step_only_is_told_as_such_not_as_a_divergence():
    cfg = AnalyzerConfig()
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(empty, _sparse_iou_run(one_nan_at=250), cfg)
    causes = explain(empty, anomalies, cps, None, None, cfg)
    sentences = [c.sentence for c in causes]
    assert "r23_avg_iou was NaN at step 250 only (one logged step), not a lasting divergence" in sentences, sentences
    assert not any("diverged" in s for s in sentences), sentences


def _stepped_run(reset_iter: bool) -> pd.DataFrame:
    """Run-level rows of a per-iteration log: a loss that jumps up at step 300, an epoch column that counts up
    every 50 steps, and an iteration counter that starts again at 300 when `reset_iter` (a restart)."""
    n = 600
    rng = np.random.default_rng(4)
    steps = np.arange(n)
    loss = np.where(steps < 300, 1.0, 1.6) + rng.normal(0, 0.02, n)
    epoch = (steps // 50).astype(float)
    it = np.where(steps < 300, steps, steps - 300).astype(float) if reset_iter else steps.astype(float)
    return pd.DataFrame(
        {
            "step": np.r_[steps, steps, steps],
            "metric": ["loss"] * n + ["epoch"] * n + ["iter"] * n,
            "value": np.r_[loss, epoch, it],
        }
    )


def test_an_epoch_counter_that_counts_is_no_suspect_but_a_counter_that_starts_again_is():
    """Real corpus root causes read "train_loss_bbox rose 0.92 -> 1.24 at step 12; epoch changed at that step, so the
    training setup is the suspect": the epoch had started again (runs appended to one log), which is the cause to
    name; an epoch column that steps at every epoch "changes" next to any fall and names nothing."""
    cfg = AnalyzerConfig()
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    for reset, expected in ((False, None), (True, "iter started again at that step: a restart is the suspect")):
        anomalies, cps = findings(empty, _stepped_run(reset), cfg)
        (cause,) = [c for c in explain(empty, anomalies, cps, None, None, cfg) if c.sentence.startswith("loss rose")]
        assert "epoch" not in cause.sentence, cause.sentence
        assert (expected in cause.sentence) if expected else ("suspect" not in cause.sentence), cause.sentence


def test_a_metric_that_never_had_a_value_is_no_divergence_and_no_cause_of_a_later_fall():
    """A real ST-GCN log (corpus batch 3) logs its training loss as NaN for the whole run while its accuracy trains:
    the root cause read "top1 fell 40.68 -> 18.64 at step 191; after train_loss turned NaN at step 0: the run
    diverged"."""
    cfg = AnalyzerConfig()
    g = _diverging_run(nan_from=0)  # loss and loss_mask NaN from the first step; acc falls at step 50
    empty = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    anomalies, cps = findings(empty, g, cfg)
    sentences = [c.sentence for c in explain(empty, anomalies, cps, None, None, cfg)]
    assert not any("diverged" in s and "turned NaN" in s for s in sentences), sentences
    assert any(s.startswith("loss, loss_mask never had a finite value") for s in sentences), sentences


def test_a_restart_150_records_before_a_fall_is_not_its_suspect(tmp_path):
    """A YOLACT log of batch 26 (yolact_athnzc) restarts at record 294 and its semantic-segmentation loss moves at
    record 446: "S ... at step 446; epoch, iter started again and lr changed at that step: a restart is the suspect".
    What changed "at that step" was looked for within two median gaps between the run's change points (here
    150 steps); it is now max(5, 2 % of the values) logging intervals of the metrics (here 9 steps), and a restart
    at the fall is still named."""
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_table

    rng = np.random.default_rng(7)
    n = 450
    steps = np.arange(n)
    loss = np.where(steps < 300, 1.0, 1.6) + rng.normal(0, 0.02, n)
    for reset_at, named in ((150, False), (300, True)):
        it = np.where(steps < reset_at, steps, steps - reset_at)
        path = tmp_path / f"log_{reset_at}.csv"
        pd.DataFrame({"step": steps, "iter": it, "loss": loss}).to_csv(path, index=False)
        (cause,) = [c for c in analyze_run(open_table(str(path))).root_causes if c.sentence.startswith("loss rose")]
        assert ("iter started again at that step" in cause.sentence) is named, cause.sentence


def test_restarts_are_read_from_counters_going_back_and_run_labels_changing():
    """`changepoints.restart_points`: a counter that goes back once is a restart; one that starts again at every step
    up of another counter, or at a regular pace with no other counter, counts epochs; a run label restarts at each
    change of value."""
    from analysis.findings.changepoints import restart_points

    steps = np.arange(12)
    epoch_iter = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], dtype=float)
    epoch = np.repeat([0.0, 1.0, 2.0, 3.0], 3)
    once = np.array([0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4], dtype=float)
    session = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=float)
    found = restart_points(
        {
            "iter": (steps, epoch_iter),
            "epoch": (steps, epoch),
            "global_step": (steps, once),
            "session": (steps, session),
        }
    )
    assert found == {"global_step": [7], "session": [7]}
    assert restart_points({"iter": (steps, epoch_iter)}) == {}  # every 3 rows: epochs, with no epoch column
    # An epoch counter never starts again within a run: at a regular pace it is runs of one length, one after another.
    assert restart_points({"epoch": (steps, epoch_iter)}) == {"epoch": [3, 6, 9]}
    # A run that starts again starts every counter of training again: RLlib's `episodes_total` (the episodes of each
    # iteration) goes back while `training_iteration` counts on, and that is no restart ...
    episodes = np.array([68, 140, 139, 117, 129, 137, 117, 102, 107, 120, 131, 128], dtype=float)
    assert restart_points({"training_iteration": (steps, steps + 1.0), "episodes_total": (steps, episodes)}) == {}
    # ... but a record number counts on through one (a converted log's `record` column)
    assert restart_points({"record": (steps, steps.astype(float)), "epoch": (steps, epoch_iter)}) == {
        "epoch": [3, 6, 9]
    }


def test_runs_of_one_length_logged_one_after_another_are_read_as_restarts(tmp_path):
    """Sneakycloud/Conformal_seg_with_RGB's log.csv (batch 28) holds 30 runs of 50 epochs one after another. Its
    `epoch` column went back every 50 rows, which was read as an iteration counter starting again every epoch: no
    restart was recorded, and the falls at those steps were told "no batch metrics were logged to tell data from
    model" instead of naming the restart. Now every new run is an info change point of `epoch`, and healthy runs
    raise no alarm."""
    from analysis.findings.events import count_alarms
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_table

    rng = np.random.default_rng(3)
    runs, epochs = 6, 40
    epoch = np.tile(np.arange(epochs), runs)
    iou = 0.3 * (1 - np.exp(-epoch / 4.0)) + rng.normal(0, 0.003, epoch.size)
    loss = 0.06 + 2000 * np.exp(-1.5 * epoch) + rng.normal(0, 0.002, epoch.size)
    path = tmp_path / "log.csv"
    pd.DataFrame({"epoch": epoch, "val_iou": iou, "loss": loss}).to_csv(path, index=False)
    analysis = analyze_run(open_table(str(path)))
    restarts = [c for c in analysis.change_points if c.metric == "epoch"]
    assert [c.step for c in restarts] == [40, 80, 120, 160, 200]
    assert {c.severity for c in restarts} == {"info"} and {c.mean_after for c in restarts} == {0.0}
    assert count_alarms(analysis.events) == 0


def test_a_restart_40_iterations_after_the_last_is_named_as_the_suspect():
    """shangjie-li/dual_modal_yolact's YOLACT log (batch 26) restarts at record 606, 41 records after the previous
    restart: its `iter` column went from 40 back to 0, too little for a level shift, and the root cause of `S` jumping
    from 1.7 to 53 there read "elapsed changed at the same step"."""
    from pathlib import Path

    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_table

    path = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/yolact_shangjieli/yolact_base.csv"
    causes = [c.sentence for c in analyze_run(open_table(str(path))).root_causes if c.step == 606]
    assert causes and all("iter started again" in s and "a restart is the suspect" in s for s in causes), causes


def test_change_tolerance_is_a_few_logging_intervals_of_each_metric():
    """`batches.change_tolerance`: max(5, 2 % of its values) median gaps between a metric's steps; a step logged
    twice counts once, and a metric logged once has no interval."""
    from analysis.findings.batches import change_tolerance

    val = pd.DataFrame({"step": np.arange(0, 10_000, 10), "metric": "val/acc", "value": 0.5})  # 1,000 values
    loss = pd.DataFrame({"step": np.r_[np.arange(50), np.arange(50)], "metric": "loss", "value": 1.0})
    once = pd.DataFrame({"step": [7], "metric": ["final"], "value": [1.0]})
    assert change_tolerance(pd.concat([loss, val, once])) == {"loss": 5.0, "val/acc": 200.0}
