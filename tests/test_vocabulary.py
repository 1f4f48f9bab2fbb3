"""The shared vocabulary: one ranking of severities, one answer to "which way is better" for a metric."""

from __future__ import annotations

import json
import math

import pytest

from analysis.core.vocabulary import (
    QualityReason,
    Severity,
    is_context,
    is_resource,
    is_schedule,
    known_direction,
    metric_direction,
    metric_threshold,
    severity_rank,
    worst_index,
    worst_severity,
)


def test_severity_is_ordered_and_equals_its_name() -> None:
    assert [s.value for s in sorted(Severity, key=lambda s: s.rank)] == ["ok", "info", "warning", "critical"]
    assert Severity.WARNING == "warning" and json.dumps({"s": Severity.CRITICAL}) == '{"s": "critical"}'
    assert f"{Severity.INFO}" == "info"
    assert severity_rank("critical") > severity_rank("warning") > severity_rank("info") > severity_rank("ok")
    assert severity_rank("nonsense") == 0
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("fatal")
    assert Severity.parse(" Warning ") is Severity.WARNING


def test_worst_severity_is_ok_when_there_is_nothing() -> None:
    assert worst_severity([]) is Severity.OK
    assert worst_severity(["info", "warning", "info"]) is Severity.WARNING
    assert worst_severity([Severity.CRITICAL, "info"]) is Severity.CRITICAL


@pytest.mark.parametrize(
    "metric",
    ["perplexity", "val/nll", "batch_3/rmse", "mse", "train/loss", "batch_0/errors", "val_loss", "trainloss",
     "char-error-rate", "cer", "WER", "losses", "grad_norm", "train/gnorm", "optim/grad-norm"],
)  # fmt: skip
def test_lower_is_better_names(metric: str) -> None:
    assert metric_direction(metric) == "lower_is_better"


@pytest.mark.parametrize("metric", ["recall", "batch_7/hmean", "val/precision", "accuracy", "f1", "terrain_score"])
def test_higher_is_better_names(metric: str) -> None:
    assert metric_direction(metric) == "higher_is_better"


def test_a_direction_is_known_only_when_the_name_or_the_config_says_it() -> None:
    assert (
        known_direction("val/mAP50") == "higher_is_better" and known_direction("episode_reward") == "higher_is_better"
    )
    assert known_direction("train/loss") == "lower_is_better"
    assert known_direction("seed_0") is None and known_direction("SAC") is None
    assert metric_direction("seed_0") == "higher_is_better"  # the default when nothing is known
    assert known_direction("seed_0", {"seed_0": "lower_is_better"}) == "lower_is_better"


def test_config_direction_wins_exact_key_first() -> None:
    overrides = {"val/score": "lower_is_better", "score": "higher_is_better", "loss": "higher_is_better"}
    assert metric_direction("val/score", overrides) == "lower_is_better"
    assert metric_direction("train/score", overrides) == "higher_is_better"
    assert metric_direction("train/loss", overrides) == "higher_is_better"


def test_schedules_are_not_metrics_unless_configured() -> None:
    assert is_schedule("train/lr") and is_schedule("epoch") and is_schedule("encoder_lr")
    assert not is_schedule("val/recall")
    assert not is_schedule("train/lr", {"lr": "lower_is_better"})


@pytest.mark.parametrize(
    ("name", "direction"),
    [("val_error1", "lower_is_better"), ("train_error5", "lower_is_better"), ("G_L1", "lower_is_better"),
     ("fast_rcnn/false_negative", "lower_is_better"), ("mask_rcnn/false_positive", "lower_is_better"),
     ("bbox_AP", "higher_is_better"), ("AP50", "higher_is_better"), ("AP_small", "higher_is_better"),
     ("AR100", "higher_is_better"), ("test_acc1", "higher_is_better"), ("aAcc", "higher_is_better"),
     ("mAcc", "higher_is_better"), ("pixAcc", "higher_is_better"), ("metrics/HBBmAP.5:.95", "higher_is_better"),
     ("maxF1", "higher_is_better"), ("val_dsc", "higher_is_better")],
)  # fmt: skip
def test_real_vision_log_names_have_their_direction(name: str, direction: str) -> None:
    # names of real logs in benchmarks/data/curves whose direction was unknown: an ImageNet top-1 error falling at a
    # learning-rate step, or a pix2pix L1 loss falling, was a critical "fall"; a rotated-box mAP leaving 0 was one
    assert known_direction(name) == direction, name


@pytest.mark.parametrize("name", ["Score_D", "D_real", "norm_ED", "kl", "r", "car", "terrain"])
def test_names_that_say_nothing_keep_no_known_direction(name: str) -> None:
    assert known_direction(name) is None, name


@pytest.mark.parametrize("name", ["x/lr0", "x/lr2", "lr/pg0", "train/lr/pg1", "lr_1", "lr-AdamW", "learning_rate"])
def test_a_learning_rate_per_parameter_group_is_a_schedule(name: str) -> None:
    # YOLOv5 logs x/lr0..x/lr2 and YOLOv8 lr/pg0..lr/pg2: their warm-up and decay were critical "falls"
    assert is_schedule(name) and is_context(name), name


@pytest.mark.parametrize(
    "name",
    ["iter", "iteration", "iters", "epoch_num", "step_num", "episode", "timesteps_total", "run", "seed", "session",
     "record", "row"],
)  # fmt: skip
def test_progress_counters_and_run_labels_are_context(name: str) -> None:
    # a counter that starts again at a restart "fell 67 % from its best" (a YOLOX log of three appended runs); a
    # YOLACT log's `session` and a converted log's row counter `record` got a direction read from their curves
    assert is_context(name), name


@pytest.mark.parametrize("name", ["episode_reward", "lr0_loss", "clr", "iteration_loss", "run_acc", "frame_error"])
def test_metrics_that_share_a_word_with_a_counter_or_a_learning_rate_stay_metrics(name: str) -> None:
    assert not is_context(name), name


def test_a_counter_is_a_metric_when_the_config_gives_it_a_direction() -> None:
    assert not is_context("iter", {"iter": "higher_is_better"})


def test_time_and_memory_columns_are_context_not_metrics_unless_configured() -> None:
    # mmcv / detectron2 logs carry `time`, `data_time` and `memory` beside the losses: what a step cost
    for name in ("time", "data_time", "train/iter_time", "memory", "gpu_mem", "eval/latency", "epoch_duration"):
        assert is_resource(name) and is_context(name) and not is_schedule(name), name
    for name in ("timesteps_total", "train/loss", "val/recall", "timestamp_s"):
        assert not is_resource(name), name
    assert is_context("train/lr") and not is_resource("train/lr")
    assert not is_context("data_time", {"data_time": "lower_is_better"})


def test_threshold_exact_name_wins() -> None:
    assert metric_threshold("val/recall", {"recall": 0.8, "val/recall": 0.7}) == 0.7
    assert metric_threshold("batch_1/recall", {"recall": 0.8}) == 0.8
    assert metric_threshold("batch_1/hmean", {"recall": 0.8}) is None


def test_worst_index_follows_direction_and_skips_non_finite() -> None:
    values = [3.0, math.nan, 9.0, math.inf, 1.0]
    assert worst_index(values, "lower_is_better") == 2  # the highest perplexity
    assert worst_index(values, "higher_is_better") == 4  # the lowest recall
    assert worst_index([math.nan, None, "x"], "higher_is_better") is None


def test_quality_reasons_have_labels() -> None:
    assert QualityReason("contrast").label == "low contrast"
    assert {r.value for r in QualityReason} >= {"resolution", "rotation", "blur", "contrast", "unreadable"}


def test_report_schema_knows_every_reason_code() -> None:
    """The JSON Schema's reason codes are the vocabulary's: a new code must reach the documented contract."""
    from analysis.reporting.report import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert set(schema["$defs"]["reason_code"]["enum"]) == {r.value for r in QualityReason}


@pytest.mark.parametrize(
    "name",
    ["loss_gen", "Loss_D", "G_GAN", "G_2_GAN", "d_acc", "train_gen_loss", "train_disc_loss", "adv_loss", "D_real"],
)
def test_a_gan_players_loss_or_score_has_no_direction_and_no_best(name: str) -> None:
    """A DCGAN's generator loss that climbs from 2 to 13 while it trains well (a real log of the curve corpus)."""
    from analysis.core.vocabulary import has_best, is_adversarial

    assert is_adversarial(name) and known_direction(name) is None and not has_best(name)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("G_L1", "lower_is_better"),
        ("val/loss", "lower_is_better"),
        ("train_norm_edit_dis", None),
        ("recall", "higher_is_better"),
    ],
)
def test_a_generators_own_reconstruction_loss_and_ordinary_names_keep_their_direction(name, direction) -> None:
    from analysis.core.vocabulary import is_adversarial

    assert not is_adversarial(name) and known_direction(name) == direction


def test_a_gradient_norm_is_lower_is_better_but_has_no_best_unless_the_config_says_so() -> None:
    from analysis.core.vocabulary import has_best

    assert known_direction("train_grad_norm") == "lower_is_better" and not has_best("train_grad_norm")
    assert has_best("grad_norm", {"grad_norm": "lower_is_better"})
    assert has_best("val/recall") and has_best("val/loss") and not has_best("seed_0")


def test_a_nan_is_critical_but_a_gradient_norms_overflow_is_a_warning() -> None:
    from analysis.core.vocabulary import nonfinite_severity

    assert nonfinite_severity("train/loss") == "critical" and nonfinite_severity("val/recall") == "critical"
    assert nonfinite_severity("grad_norm") == "warning" and nonfinite_severity("train/gnorm") == "warning"


def test_nan_in_a_metric_that_came_back_from_nan_often_is_a_warning() -> None:
    from analysis.core.vocabulary import INTERMITTENT_RECOVERIES, nonfinite_severity

    assert nonfinite_severity("train/loss", INTERMITTENT_RECOVERIES - 1) == "critical"
    assert nonfinite_severity("train/loss", INTERMITTENT_RECOVERIES) == "warning"


def test_progress_counters_are_told_from_run_labels_and_setup_values() -> None:
    from analysis.core.vocabulary import is_progress

    assert is_progress("epoch") and is_progress("train/iter") and is_progress("global_step")
    assert not is_progress("run") and not is_progress("seed") and not is_progress("lr") and not is_progress("loss")
