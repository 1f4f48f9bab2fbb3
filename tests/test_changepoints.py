"""Change points: real steps found where they are, healthy learning curves left whole, long series handled,
records carry the means and the delta, bad input gives sensible output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.vocabulary import Severity
from analysis.findings.changepoints import (
    _log_scaled,
    _restart_grid,
    change_points,
    find_change_points,
    quantum,
    series_changes,
    slope_changes,
)
from analysis.findings.events import series_events

REAL_CURVES = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "curves"


def learning_curve(n: int, rng: np.random.Generator, noise: float = 0.01, tau: float = 60.0) -> np.ndarray:
    return 0.9 - 0.4 * np.exp(-np.arange(n) / tau) + rng.normal(0, noise, n)


def near(found: list[int], expected: list[int], margin: int = 3) -> bool:
    return len(found) == len(expected) and all(abs(f - e) <= margin for f, e in zip(found, expected))


def test_piecewise_constant_steps_are_found_at_the_right_index():
    rng = np.random.default_rng(0)
    x = np.r_[np.zeros(120), np.full(80, 4.0), np.full(100, 1.0)] + rng.normal(0, 1, 300)
    assert near(change_points(x), [120, 200])


def test_healthy_rising_learning_curves_are_not_cut_into_steps():
    rng = np.random.default_rng(1)
    false = sum(
        len(change_points(learning_curve(n, rng, tau=tau)))
        for n, tau in [(100, 10), (300, 60), (500, 100), (1000, 200), (2000, 300)] * 4
    )
    assert false <= 4  # 20 healthy curves: well under the 0.5 false change points per run target


def test_a_drop_in_a_rising_curve_is_found():
    rng = np.random.default_rng(2)
    x = learning_curve(400, rng)
    x[250:] -= 0.15
    assert near(change_points(x), [250])


def test_long_series_uses_blocks_and_refines_on_raw_points():
    rng = np.random.default_rng(3)
    x = np.r_[np.zeros(60_000), np.full(40_000, 0.5)] + rng.normal(0, 1, 100_000)
    assert near(change_points(x), [60_000], margin=200)


@pytest.mark.parametrize("values", [[], [1.0], [1.0, 2.0], [0.7] * 200, [np.nan] * 10, [np.inf, 1.0, 2.0]])
def test_degenerate_series_give_no_change_points(values):
    assert change_points(np.array(values, dtype=float)) == []


def test_nan_gaps_and_inf_are_skipped_and_indices_map_back():
    rng = np.random.default_rng(4)
    x = np.r_[np.zeros(100), np.full(100, 3.0)] + rng.normal(0, 0.5, 200)
    x[[10, 50, 150]] = np.nan
    x[120] = np.inf
    assert near(change_points(x), [100])


def test_find_change_points_records_means_delta_and_severity():
    rng = np.random.default_rng(5)
    rows = []
    for b in range(4):
        vals = 0.92 + rng.normal(0, 0.005, 40)
        if b == 2:
            vals[25:] = 0.62 + rng.normal(0, 0.005, 15)
        rows += [(100 * (i + 1), b, "recall", v) for i, v in enumerate(vals)]
    loss = np.r_[np.full(20, 1.0), np.full(20, 0.5)] + rng.normal(0, 0.01, 40)
    g = pd.DataFrame({"step": 100 * np.arange(1, 41), "metric": "train/loss", "value": loss})
    found = find_change_points(
        pd.DataFrame(rows, columns=["step", "batch", "metric", "value"]), g, AnomalyDetectionConfig()
    )
    assert [(c.batch, c.step, c.metric) for c in found] == [(None, 2100, "train/loss"), (2, 2600, "recall")]
    loss_cp, recall_cp = found
    assert loss_cp.severity == "info"  # loss going down is good news
    assert recall_cp.mean_before == pytest.approx(0.92, abs=0.01)
    assert recall_cp.mean_after == pytest.approx(0.62, abs=0.01)
    assert recall_cp.delta == pytest.approx(recall_cp.mean_after - recall_cp.mean_before)
    assert recall_cp.severity == "critical"


def test_find_change_points_with_empty_frames():
    empty_b = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    empty_g = pd.DataFrame(columns=["step", "metric", "value"])
    assert find_change_points(empty_b, empty_g, AnomalyDetectionConfig()) == []


def test_small_step_between_flat_stretches_is_found():
    rng = np.random.default_rng(6)
    x = np.r_[np.zeros(300), np.full(300, 1.2)] + rng.normal(0, 1, 600)  # 1.2 sigma: invisible on 30 points
    assert near(change_points(x), [300], margin=5)


def test_isolated_spikes_are_not_change_points():
    rng = np.random.default_rng(7)
    x = learning_curve(500, rng)
    x[[120, 121, 300, 420]] += [0.2, -0.15, -0.25, 0.2]
    assert change_points(x) == []


def test_noise_increase_is_a_change_point_but_not_a_level_shift():
    from analysis.findings.changepoints import level_shifts, variance_changes

    rng = np.random.default_rng(8)
    x = 0.9 + np.r_[rng.normal(0, 0.005, 400), rng.normal(0, 0.02, 400)]
    assert near(variance_changes(x), [400], margin=10)
    assert near(change_points(x), [400], margin=10)
    assert level_shifts(x) == []
    # the run-level records are level shifts only (their means and delta describe a level)
    rows = pd.DataFrame({"step": np.arange(800), "batch": 0, "metric": "recall", "value": x})
    assert find_change_points(rows, None, AnomalyDetectionConfig()) == []


def test_change_point_levels_are_local_and_schedule_changes_are_info():
    rng = np.random.default_rng(9)
    n = 120
    recall = 0.95 - 0.4 * np.exp(-np.arange(n) / 15) + rng.normal(0, 0.003, n)
    recall[80:] -= 0.2
    lr = np.where(np.arange(n) < 60, 3e-4, 1e-4)
    g = pd.DataFrame(
        {
            "step": np.r_[np.arange(n), np.arange(n)],
            "metric": ["val/recall"] * n + ["train/lr"] * n,
            "value": np.r_[recall, lr],
        }
    )
    found = {c.metric: c for c in find_change_points(None, g, AnomalyDetectionConfig())}
    assert found["train/lr"].step == 60 and found["train/lr"].severity == "info"
    cp = found["val/recall"]
    assert cp.step == 80 and cp.severity == "critical"
    # the level just before the fall, not the mean of the rising curve since its last break
    assert cp.mean_before == pytest.approx(0.95, abs=0.01) and cp.mean_after == pytest.approx(0.75, abs=0.01)


def test_values_near_the_float_limit_do_not_crash_and_keep_their_breaks():
    """QA: a series of +-1e308 raised ruptures' 'The penalty must be positive: nan' (squared costs overflowed)."""
    assert change_points(np.array([1e308, -1e308] * 20)) == []
    noise = np.random.default_rng(0).normal(0, 1e298, 100)
    assert change_points(np.r_[np.full(50, 1e300), np.full(50, -1e300)] + noise) == [50]
    assert change_points(np.r_[np.full(50, 1.0), np.full(50, -1.0)] + noise / 1e300) == [50]


def test_a_rising_error_count_is_a_degrading_change_point():
    """Issue 12: `errors` (plural) is lower-is-better, so its rise is a warning or worse, not an improvement."""
    rng = np.random.default_rng(22)
    vals = np.r_[np.full(50, 10.0), np.full(50, 20.0)] + rng.normal(0, 0.2, 100)
    rows = [(100 * (i + 1), 0, "errors", float(v)) for i, v in enumerate(vals)]
    batches = pd.DataFrame(rows, columns=["step", "batch", "metric", "value"])
    (cp,) = find_change_points(batches, None, AnomalyDetectionConfig())
    assert cp.step == 5100 and cp.severity == "critical"


def test_a_loss_that_turns_from_improving_to_degrading_gives_one_slope_change_near_the_knot():
    rng = np.random.default_rng(3)
    t = np.arange(400)
    loss = np.where(t < 250, 2.0 - 0.004 * t, 1.0 + 0.003 * (t - 250)) + rng.normal(0, 0.02, t.size)
    assert near(slope_changes(loss), [250], margin=8)
    (turn,) = [e for e in series_events(loss, metric="val/loss") if e.kind == "slope_change"]
    assert abs(turn.start_step - 250) <= 8 and turn.value_after > turn.value_before
    assert turn.severity.rank >= Severity.WARNING.rank  # a loss rising again is a degradation
    assert [e.kind for e in series_events(loss, metric="val/loss")] == ["slope_change"]


@pytest.mark.parametrize("n,tau", [(300, 30.0), (1_000, 150.0), (5_000, 400.0)])
def test_a_smooth_saturating_learning_curve_has_no_slope_change(n: int, tau: float):
    rng = np.random.default_rng(n)
    curve = learning_curve(n, rng, tau=tau)
    smooth = 0.9 - 0.4 * np.exp(-np.arange(n) / tau)  # no noise at all: the bend alone
    assert slope_changes(curve) == [] and slope_changes(smooth) == []
    assert all(e.kind != "slope_change" for e in series_events(curve, metric="val/recall"))


@pytest.mark.parametrize("n", [100, 150, 300])
def test_a_steep_fall_that_flattens_is_no_noise_change(n):
    # Raw first differences shrink with the slope as a learning curve flattens: without the local slope taken out
    # they read as the noise calming down (a false noise change about a fifth into the run, on real DETR logs).
    rng = np.random.default_rng(n)
    t = np.arange(n, dtype=float)
    x = 7.0 + 14.0 / (1.0 + t / (0.03 * n)) + rng.normal(0, 0.02, n)
    assert series_changes(x)[1] == []


# ------------------------------------------------------------------------------------------ speed-ups, same numbers
def test_the_fast_median_is_numpys_median():
    """`series_stats.median` (bottleneck) stands in for np.median in the detectors: the same value, odd and even
    lengths, ties, huge and tiny values (a zero may differ in sign only, which no detector reads)."""
    from analysis.findings.series_stats import median

    rng = np.random.default_rng(0)
    for _ in range(3000):
        n = int(rng.integers(1, 80))
        x = rng.normal(size=n) * 10.0 ** float(rng.integers(-200, 200))
        if rng.random() < 0.3:
            x = np.round(x, int(rng.integers(0, 3)))  # ties
        assert median(x) == float(np.median(x))
        assert median(x[::3]) == float(np.median(x[::3]))  # strided slices too


@pytest.mark.parametrize("before, after", [(30, 30), (200, 200), (45, 200), (200, 31), (37, 113)])
def test_the_cached_flat_step_design_fits_exactly_as_ols(before, after):
    """`_flat_step_ok` reuses one design and inverse Gram matrix per window shape: its fits are bit for bit those
    of `ols` on a design built for the candidate, for the full model and for level + step."""
    from analysis.findings.step_tests import _flat_design, _solve, ols

    rng = np.random.default_rng(before * 1000 + after)
    rel = np.arange(-before, after)
    u = rel / float(max(before, after))
    full = np.column_stack([np.ones_like(u), u, u * u, (rel >= 0).astype(float)])
    for y in (rng.normal(size=rel.size), 0.3 * (rel >= 0) + rng.normal(0, 0.01, rel.size), np.zeros(rel.size)):
        for design, pair in ((full, False), (full[:, [0, 3]], True)):
            want = ols(design, y)
            got = _solve(*_flat_design(before, after, pair=pair), y)
            assert got[2] == want[2]
            for g, w in zip(got[:2], want[:2], strict=True):
                assert g.tobytes() == w.tobytes()
    assert not _flat_design(before, after)[0].flags.writeable  # shared: nobody may change it


def _running_average(seed: int, jump_epoch: int | None = None, epochs: int = 10, per: int = 60) -> np.ndarray:
    """A metric averaged from the start of each epoch (the average restarts every `per` points)."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(epochs):
        level = 0.8 + 0.05 * (1 - np.exp(-e / 3)) + (0.1 if jump_epoch is not None and e >= jump_epoch else 0.0)
        out.append(np.cumsum(level + 0.05 * rng.standard_normal(per)) / np.arange(1, per + 1))
    return np.concatenate(out)


def test_the_restarts_of_a_per_epoch_running_average_are_no_change_points():
    # Every restart is a small jump on a grid; the detector found ~1 per series before (10 in these 10 series).
    assert sum(len(change_points(_running_average(s))) for s in range(10)) <= 2
    # A restart whose jump stands out from the other restarts' is still a change of level.
    assert all(any(abs(c - 300) <= 6 for c in change_points(_running_average(s, jump_epoch=5))) for s in range(10))


def test_a_metric_that_jumps_at_random_is_no_running_average_restarting_on_a_grid():
    """An unstable evaluation whose values jump at random and repeat on two epochs: its large moves lie 16-24 points
    apart, which the periodicity score took for restarts every ~20 points (a grid in all 20 of these series), and a
    real drop on that grid was then dropped as a restart."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x = np.repeat(rng.uniform(0.1, 0.9, 75), 2)
        x[:20] = 0.0
        assert _restart_grid(x[5:]) is None
    # The running averages keep their grid, one restart per epoch.
    for seed in range(5):
        grid = _restart_grid(_running_average(seed))
        assert grid is not None and np.all(np.abs(np.diff(grid) - 60) <= 6), grid


def test_a_real_unstable_precision_keeps_its_drop_to_the_floor():
    # Test batch 20 (ARahmanK/yolov5 cricket detector): precision falls from a 0.5-0.9 band to ~0.02 at epoch 35.
    frame = pd.read_csv(REAL_CURVES / "yolov5_arahmank" / "exp_results.csv")
    assert any(abs(c - 35) <= 3 for c in change_points(frame["metrics/precision"].to_numpy(float)))


def test_a_real_pruning_run_that_repeats_its_schedule_keeps_every_cycles_learning_rate_step():
    # Test batch 19 (VainF/Torch-Pruning): prune and fine-tune every 100 epochs, a learning-rate step at epoch 60 of
    # each cycle. The steps lie on a grid 100 epochs apart, but the curve is calm after each and noisy before the
    # next: no running average restarting (which moves most right after each restart), so no step is dropped.
    frame = pd.read_csv(REAL_CURVES / "torchprune_vainf" / "cifar10_growing_reg_resnet56.csv")
    found = change_points(frame["acc"].to_numpy(float))
    assert all(any(abs(c - step) <= 3 for c in found) for step in (60, 100, 160, 200, 260, 300, 360)), found


def test_noise_that_calms_by_half_is_no_noise_change_but_a_fivefold_calm_is():
    """A learning curve whose noise halves after 200 of 300 points (as an annealed learning rate does): no person
    labels that, and the noise-change test called it a change on 2 of these 20 curves; a five-fold calm is one."""
    t = np.arange(300)
    for ratio, expected in ((2.0, 0), (5.0, 20)):
        found = 0
        for seed in range(20):
            sd = np.where(t < 200, 0.02, 0.02 / ratio)
            x = 0.9 - 0.4 * np.exp(-t / 40) + np.random.default_rng(seed).normal(0, 1, t.size) * sd
            found += any(abs(c - 200) <= 10 for c in series_changes(x)[1])
        assert found == expected, (ratio, found)


def test_a_learning_rate_step_on_a_short_per_epoch_curve_is_found():
    # 25 per-epoch points: the first differences of the curving trend read as autocorrelation (rho 0.95) and
    # hid a step of 4-5 neighbouring moves (14 of these 20 found before).
    t = np.arange(25)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        acc = 0.4 - 0.25 * np.exp(-t / 5) + 0.005 * rng.normal(size=25)
        assert change_points(acc) == []
        acc[15:] += 0.05
        assert change_points(acc) == [15]


def test_the_run_level_change_points_leave_out_the_restarts_too():
    """The dashboard's change lines (`find_change_points`) and its events (`series_changes`) agree on a metric
    that is a per-epoch running average: its restarts are no changes of level in either (5 of 10 series got one
    before)."""
    for seed in range(10):
        x = _running_average(seed)
        g = pd.DataFrame({"step": np.arange(x.size), "metric": ["val/auc"] * x.size, "value": x})
        assert [c.step for c in find_change_points(None, g, AnomalyDetectionConfig())] == change_points(x)
    x = _running_average(0, jump_epoch=5)
    g = pd.DataFrame({"step": np.arange(x.size), "metric": ["val/auc"] * x.size, "value": x})
    assert any(abs(c.step - 300) <= 6 for c in find_change_points(None, g, AnomalyDetectionConfig()))


def test_a_step_on_a_short_exponentially_falling_curve_is_judged_against_the_log_time_trend():
    """25 per-epoch points of a loss that bends like an exponential all along: a parabola in the epoch number leaves
    residuals that hid a learning-rate drop (0 of these 20 found before); the log-time trend explains the window
    better, and the step stands out against it. The same curves without the drop get no change point."""
    t = np.arange(25)
    for seed in range(20):
        loss = 3.8 * np.exp(-t / 7.0) + 0.1 + 0.01 * np.random.default_rng(seed).normal(size=25)
        assert change_points(loss) == []
        loss[15:] -= 0.2
        assert change_points(loss) == [15]


def test_a_late_learning_rate_step_on_a_loss_that_falls_over_decades_is_found_in_log_space():
    """A per-step loss that falls from 1.5 to 0.01 with noise proportional to its level (5 %), as MLPerf DeepCAM
    logs do, and a learning-rate step (x0.6) 30 points before the end. On the linear scale the early fall set the
    noise scale and the autocorrelation: the step was found on 15 of 20 and the healthy curves got false change
    points; in log space (`changepoints._log_scaled`) the step is 10 tail-noise sigmas. A fall that takes 20
    points (the second shape) is a steep straight stretch in log space too, which read as autocorrelation at its cap
    (11 of 20 found) until the level-shift search took the curvature-free autocorrelation there as well."""
    t = np.arange(150)
    for fall, floor in ((1.5, 0.04), (5.0, 0.02)):
        for seed in range(20):
            noise = np.exp(0.05 * np.random.default_rng(seed).normal(size=t.size))
            loss = (1.5 * np.exp(-t / fall) + floor * np.exp(-t / 80.0)) * noise
            assert change_points(loss) == []
            loss[120:] *= 0.6
            assert change_points(loss) == [120], (fall, seed)


def test_only_a_positive_series_with_level_proportional_noise_over_decades_is_read_in_log_space():
    t = np.arange(200)
    rng = np.random.default_rng(0)
    decay = 2.0 * np.exp(-t / 20.0) + 0.01
    rows = np.stack(
        [
            decay * np.exp(0.05 * rng.normal(size=t.size)),  # noise proportional to the level: log space
            decay + 0.002 * rng.normal(size=t.size),  # additive noise, even on the linear scale: stays linear
            0.5 + 0.05 * np.exp(0.05 * rng.normal(size=t.size)),  # positive, but within one decade
            decay * np.exp(0.05 * rng.normal(size=t.size)) - 0.05,  # crosses zero
        ]
    )
    assert _log_scaled(rows).tolist() == [True, False, False, False]


def test_a_learning_rate_step_in_the_last_evaluations_of_a_short_log_is_found():
    """40 per-epoch accuracies that saturate, and a step of ~8 noise sigmas 7 evaluations before the end. The
    symmetric local window judged it on 14 points (16 of 20 found); `step_tests._tail_steps` reads the 30 points
    before it as well. The same curves without the step get no change point."""
    t = np.arange(40)
    found = 0
    for seed in range(20):
        acc = 80.0 - 20.0 * np.exp(-t / 8.0) + 0.3 * np.random.default_rng(seed).normal(size=t.size)
        assert change_points(acc) == []
        acc[33:] += 2.5
        found += change_points(acc) == [33]
    assert found >= 18


def test_a_learning_rate_step_early_in_a_short_per_epoch_log_is_judged_on_its_whole_regime():
    """30 per-epoch accuracies that saturate, and a step of ~10 noise sigmas at epoch 8 (a piecewise-constant LR
    schedule's first boundary, as in the Hands-On ML chapter-11 logs). The symmetric local window judged it on 16
    points and a dummy for every other candidate in them (1 of 20 found); `step_tests._regime_steps` reads it on
    the whole series. The same curves without the step get no change point."""
    t = np.arange(30)
    found = 0
    for seed in range(20):
        acc = 0.88 - 0.12 * np.exp(-t / 4.0) + 0.0015 * t + 0.003 * np.random.default_rng(seed).normal(size=t.size)
        assert change_points(acc) == []
        acc[8:] += 0.03
        found += change_points(acc) == [8]
    assert found >= 16


def test_a_short_validation_loss_that_turns_upward_is_a_slope_change():
    """30 per-epoch validation losses that bend slowly to their minimum and climb from epoch 18 (overfitting). The
    first differences of so smooth a bend change steadily, which read as autocorrelation at its cap (noise sigma
    4.5x too large): the turn was never found (0 of 20). The slope test now reads a short curve's noise around a
    moving quadratic, as the level-shift test does. The same curves without the climb get no change point."""
    t = np.arange(30)
    found = 0
    for seed in range(20):
        loss = 0.5 + 0.4 * np.exp(-t / 8.0) + 0.003 * np.random.default_rng(seed).normal(size=t.size)
        assert change_points(loss) == []
        turns = series_changes(loss + 0.01 * np.maximum(t - 18, 0))[2]
        found += len(turns) == 1 and abs(turns[0] - 18) <= 3
    assert found >= 16


def test_a_smooth_decline_logged_in_whole_units_is_a_staircase_not_a_series_of_steps():
    """A loss that declines slowly, logged with three significant digits (a 2018 YOLOv3 per-batch log: 157, 157, ...,
    156, 156, ...), is a staircase of single quanta whose treads are exactly flat: every riser was an abrupt step to
    the local tests (12 change points on this curve). A level shift must move it by more than 1.5 quanta, and a
    real step of 8 quanta is still found. A coarse series whose every quantum is an event keeps its steps."""
    t = np.arange(3500.0)
    stairs = np.round(140 + 60 * np.exp(-t / 2000.0))
    assert quantum(stairs) == 1.0
    assert change_points(stairs) == []
    stepped = stairs.copy()
    stepped[2500:] += 8
    assert change_points(stepped) == [2500]
    five_samples = np.r_[np.zeros(20), np.full(30, 20.0), np.full(30, 40.0)]  # an accuracy on five samples
    assert quantum(five_samples) == 0.0
    assert near(change_points(five_samples), [20, 50])


def test_recurring_bursts_are_one_noise_change_and_a_single_burst_two():
    """A floor interrupted by a burst every 150 points (the afm hall-of-fame loss of test batch 2): one regime of
    recurring bursts, labelled once at its first burst; every burst's start and end were 10-12 noise changes."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = 1.0 + 0.01 * rng.normal(size=1200)
        for start in range(300, 1200, 150):
            x[start : start + 40] += 0.2 * rng.normal(size=40)
        noise = series_changes(x)[1]
        assert abs(noise[0] - 300) <= 2 and len(noise) <= 2, noise
        one = 1.0 + 0.01 * rng.normal(size=1200)
        one[500:560] += 0.2 * rng.normal(size=60)
        assert near(series_changes(one)[1], [500, 560]), seed


def test_a_learning_rate_step_of_two_noise_sigmas_on_a_noisy_per_iteration_loss_is_found():
    # 30 points each side cannot tell a 2-sigma step from a trend; it holds for 120 points (`step_tests._wide_steps`).
    # Before the wide test: 8 of 20 found.
    t = np.arange(400.0)
    base = 0.16 * np.exp(-t / 60) + 0.12 - 0.00003 * t
    found = 0
    for seed in range(20):
        noisy = base + np.random.default_rng(seed).normal(0, 0.008, t.size)
        assert change_points(noisy) == []
        cps = change_points(noisy - 0.016 * (t >= 280))
        found += near(cps, [280], margin=8)
        assert all(abs(c - 280) <= 8 for c in cps)
    assert found >= 16


def test_a_short_per_epoch_loss_that_restarts_near_its_end_has_its_jump_back_up_found():
    # 17 epochs, a resumed run at epoch 12 puts the loss back from ~15 to ~25: the median of the 11 points before
    # the jump took in the run's high start, so the jump did not "persist" (`step_tests._persists`). Before: 0 of 10.
    t = np.arange(17.0)
    runs = np.r_[14.5 + 14.0 * np.exp(-t[:12] / 4.0), 18.0 + 7.5 * np.exp(-(t[12:] - 12) / 3.0)]
    found = [change_points(runs + np.random.default_rng(seed).normal(0, 0.3, 17)) for seed in range(10)]
    assert sum(f == [12] for f in found) >= 8
    assert all(f in ([], [12]) for f in found)


@pytest.mark.parametrize("n", [120, 1000, 5000])
def test_one_value_repeated_is_no_change_at_any_length(n):
    """A held metric (a YOLO map50 logged as 9/14 for 1,000 iterations, real batch 24): the std of the repeated
    float is ~1e-16 by rounding, not 0, and the long-series path then asked ruptures for a zero penalty."""
    x = np.full(n, 9 / 14)
    assert change_points(x) == []
    assert series_changes(x) == ([], [], [])
    assert series_events(x) == []


def test_a_real_stretch_at_a_degenerate_level_that_comes_back_is_two_steps():
    # Test batch 3 (DETR log, restarts at rows 64-69 sit at a flat degenerate level and row 70 is back): each step
    # alone failed its window (the other one inside it, or the level back in it); judged as one stretch both count.
    frame = pd.read_csv(REAL_CURVES / "detr_sleep_houmill" / "results_log.csv")
    for column in ("test_loss_bbox", "train_class_error"):
        found = change_points(frame[column].dropna().to_numpy(float))
        assert any(abs(c - 64) <= 1 for c in found) and any(abs(c - 70) <= 1 for c in found), (column, found)


@pytest.mark.parametrize("seed", range(4))
def test_a_stretch_off_the_level_is_found_but_a_smooth_swell_or_a_settling_step_is_not(seed):
    rng = np.random.default_rng(seed)
    n = 120
    base = 0.8 + 0.4 * np.exp(-np.arange(n) / 15.0)
    pulse = base + rng.normal(0, 0.01, n)
    pulse[80:87] += 0.15  # 7 points at 15 sigma above the level, then back
    found = change_points(pulse)
    assert any(abs(c - 80) <= 1 for c in found) and any(abs(c - 87) <= 1 for c in found), found
    # an oscillation's smooth swell is no stretch: no change point at its flanks
    swell = base + 0.05 * np.sin(np.arange(n) / 4.0) + rng.normal(0, 0.01, n)
    assert not [c for c in change_points(swell) if c > 20], change_points(swell)
    # a step that settles a little after it is one change, not a stretch
    settle = base + rng.normal(0, 0.01, n)
    settle[60:] -= 0.2
    settle[60:70] += 0.03 * np.exp(-np.arange(10) / 3.0)
    found = change_points(settle)
    assert [c for c in found if c > 20] and all(abs(c - 60) <= 2 for c in found if c > 20), found
