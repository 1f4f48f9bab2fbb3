"""Same-sign slope changes and end-of-series collapses (`analysis.findings.trends`): a plateau that ends in a faster
drop and a metric that collapses in its last evaluations are found; the ordinary bend of a learning curve, noisy,
smoothed or wandering healthy curves and a steady fall are not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from analysis.findings.changepoints import change_points, series_changes
from analysis.findings.events import series_events
from analysis.findings.trends import held_value, smooth_jumps, tail_collapse


def _loss_with_late_drop(n: int, knot: int, end: int | None, rng: np.random.Generator) -> np.ndarray:
    """A loss that has settled on a slow plateau, then falls faster from `knot` (until `end`, if given)."""
    t = np.arange(n, dtype=float)
    x = 2.0 + 1.5 * np.exp(-t / (0.05 * n)) - 0.1 * t / n
    ramp = np.clip(t - knot, 0, None if end is None else end - knot)
    return x - 0.6 * ramp / (n - knot) + rng.normal(0, 0.01, n)


@pytest.mark.parametrize("n", [120, 300, 1000])
def test_a_plateau_that_ends_in_a_faster_drop_is_a_change_point(n):
    rng = np.random.default_rng(n)
    knot = int(0.6 * n)
    x = _loss_with_late_drop(n, knot, None, rng)
    assert change_points(x, bends=False) == []  # one sign of slope: the turn test alone never sees it
    found = change_points(x)
    assert len(found) == 1 and abs(found[0] - knot) <= max(5, 0.02 * n)


def test_the_end_of_such_a_drop_is_a_second_change_point():
    rng = np.random.default_rng(5)
    x = _loss_with_late_drop(400, 200, 280, rng)
    found = change_points(x)
    assert len(found) == 2 and abs(found[0] - 200) <= 8 and abs(found[1] - 280) <= 8


def test_a_late_drop_is_one_slope_change_event_that_names_its_direction():
    rng = np.random.default_rng(6)
    x = _loss_with_late_drop(300, 180, None, rng)
    events = series_events(x, metric="train_loss")
    assert [e.kind for e in events] == ["slope_change"]
    assert abs(events[0].start_step - 180) <= 6 and "keeps falling" in events[0].message
    assert events[0].value_after < events[0].value_before


def _healthy(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n, dtype=float)
    tau = rng.uniform(0.03, 0.4) * n
    curve = [0.3 + 2 * np.exp(-t / tau), 0.3 + 2 * (1 + t / tau) ** -0.7, 0.9 - 0.5 * np.exp(-t / tau)][n % 3]
    e = rng.normal(0, 1, n)
    sigma = rng.uniform(0.005, 0.05)
    noise = {
        "white": sigma * e,
        "smoothed": 3 * sigma * lfilter([0.1], [1, -0.9], e),  # an EMA-smoothed wandb export
        "ar": sigma * lfilter([1], [1, -0.7], e),
        "heavy_tailed": sigma * rng.standard_t(3, n),
    }[kind]
    return curve + noise


@pytest.mark.parametrize("kind", ["white", "smoothed", "ar", "heavy_tailed"])
def test_healthy_learning_curves_get_no_bend_and_no_collapse(kind):
    rng = np.random.default_rng(11)
    added = 0
    for n in [50, 200, 1000, 5000] * 5:
        x = _healthy(kind, n, rng)
        added += len(set(change_points(x)) - set(change_points(x, bends=False)))
    assert added <= 1  # 20 healthy curves: the bends add at most one change point in all


def test_a_collapse_in_the_last_evaluations_is_found_and_called_a_collapse():
    rng = np.random.default_rng(1)
    t = np.arange(80)  # (on 40 points the step tests see the fall too: a short series' curvature-free noise)
    acc = 0.75 * (1 - np.exp(-t / 5)) + rng.normal(0, 0.005, 80)
    acc[76:] = 0.0
    assert change_points(acc, bends=False) == []  # four points after the fall: too few for the step tests
    assert change_points(acc) == [76]
    events = series_events(acc, metric="eval_accuracy")
    assert [(e.kind, e.start_step) for e in events] == [("collapse", 76)]
    assert events[0].severity.name == "CRITICAL"


def test_a_loss_that_blows_up_at_the_end_is_found_too():
    rng = np.random.default_rng(2)
    loss = 0.5 + np.exp(-np.arange(60) / 8) + rng.normal(0, 0.01, 60)
    loss[55:] = 9.0 + rng.normal(0, 0.01, 5)
    shifts, _, _ = series_changes(loss)
    assert shifts == [55]


def test_a_steady_fall_and_a_short_dip_are_no_collapse():
    rng = np.random.default_rng(3)
    t = np.arange(80, dtype=float)
    assert tail_collapse(1.0 - 0.01 * t + rng.normal(0, 0.001, 80)) is None  # new lows, but step by step
    flat = 0.8 + rng.normal(0, 0.005, 80)
    flat[-2:] = 0.0  # two points: an outlier pair, not a kept level
    assert tail_collapse(flat) is None
    flat[-12:-9] = 0.0  # a dip that came back
    assert tail_collapse(flat) is None


def test_nan_and_inf_are_skipped_and_indices_stay_in_the_original_series():
    rng = np.random.default_rng(4)
    x = _loss_with_late_drop(300, 180, None, rng)
    x[[50, 51, 120]] = [np.nan, np.inf, np.nan]
    found = change_points(x)
    assert len(found) == 1 and abs(found[0] - 180) <= 6
    acc = 0.7 + rng.normal(0, 0.005, 40)
    acc[10] = np.nan
    acc[35:] = 0.0
    assert tail_collapse(acc) == 35


@pytest.mark.parametrize(("n", "at"), [(12, 8), (20, 10), (20, 7), (30, 12)])
def test_a_collapse_of_a_short_eval_series_is_found_even_when_it_lasts_long(n, at):
    rng = np.random.default_rng(n + at)
    t = np.arange(n)
    acc = 0.76 * (1 - np.exp(-(t + 1) / 2)) + rng.normal(0, 0.003, n)
    acc[at:] = 0.0
    assert change_points(acc) == [at]


@pytest.mark.parametrize("n", [8, 12, 20, 30])
def test_a_short_healthy_eval_series_has_no_collapse(n):
    """Its early rise is a big move to a level it then keeps, but in its biggest steps first, never in one jump."""
    rng = np.random.default_rng(n)
    t = np.arange(n)
    for curve in (0.76 * (1 - np.exp(-(t + 1) / 2)), 3 * np.exp(-t / 3) + 0.5, 0.9 - 0.5 * (1 + t) ** -0.8):
        for _ in range(10):
            x = curve + rng.normal(0, 0.003, n)
            assert change_points(x) == []


def _early_plateau_then_drop(n: int, plateau: int, rng: np.random.Generator) -> np.ndarray:
    """A loss stuck on an early plateau, then a steep drop that decays into saturation (ml-aos-like)."""
    t = np.arange(n, dtype=float)
    x = np.where(t < plateau, 2.3, 0.5 + 1.8 * np.exp(-(t - plateau) / (0.1 * n)))
    return x + rng.normal(0, 0.01, n)


@pytest.mark.parametrize("n", [100, 300, 1000])
def test_an_early_plateau_that_ends_in_a_curved_drop_is_found(n):
    # The drop decays (curved leg): a moving line's residuals read its bend as autocorrelation (rho ~0.95) and
    # blinded the slope tests; the moving quadratic with a robust rho does not.
    rng = np.random.default_rng(n + 3)
    plateau = int(0.25 * n)
    x = _early_plateau_then_drop(n, plateau, rng)
    found = change_points(x)
    assert any(abs(f - plateau) <= max(5, 0.02 * n) for f in found)


def test_inflation_follows_the_noise_not_the_curve():
    from analysis.findings.trends import _inflation

    rng = np.random.default_rng(2)
    t = np.arange(200, dtype=float)
    curve = 0.3 + 2 * np.exp(-t / 30)
    white = _inflation(curve + rng.normal(0, 0.01, 200), 20)
    ar = _inflation(curve + 0.01 * lfilter([1], [1, -0.7], rng.normal(0, 1, 200)), 20)
    assert white < 1.5 < 3.0 < ar  # AR(0.7): (1 + 0.7) / (1 - 0.7) = 5.7


def test_a_noisy_step_blurred_into_two_bends_is_one_level_shift():
    # A learning-rate step on a noisy per-iteration loss: block means and windows blur it into a bend where the
    # fall starts and one where it ends; a jump fits that stretch better than a ramp, so it is one level shift.
    rng = np.random.default_rng(4)
    n = 450
    t = np.arange(n, dtype=float)
    x = 0.12 + 0.08 * np.exp(-t / 60) - 0.025 * (t >= 300) + rng.normal(0, 0.012, n)
    shifts, _, turns = series_changes(x)
    found = sorted(shifts + turns)
    assert len(found) == 1 and abs(found[0] - 300) <= 9


def test_a_ramp_between_two_plateaus_keeps_both_ends():
    rng = np.random.default_rng(8)
    x = _loss_with_late_drop(1000, 500, 700, rng)
    found = change_points(x)
    assert len(found) == 2 and abs(found[0] - 500) <= 20 and abs(found[1] - 700) <= 20


def test_a_collapse_after_a_plateau_is_one_change_point():
    rng = np.random.default_rng(9)
    t = np.arange(200, dtype=float)
    acc = 0.9 - 0.7 * np.exp(-t / 20) + rng.normal(0, 0.01, 200)
    acc[120:] = 0.1 + rng.normal(0, 0.001, 80)
    assert change_points(acc) == [120]


def test_a_metric_that_settles_on_one_exact_value_is_a_noise_change():
    # precision of a detector that reaches exactly 1.0 and stays (YOLO results.csv, tune split): no noise is left
    rng = np.random.default_rng(12)
    x = np.round(0.99 + 0.004 * rng.normal(size=100), 4)
    x[:60] = np.minimum(x[:60], 1.0)
    x[68:] = 1.0
    assert change_points(x, bends=False) == [68]  # the mean moves a little too: a level shift finds it
    x[:68] = np.round(1.0 - 0.004 * np.abs(rng.normal(size=68)), 4)  # the same level all along: only the noise ends
    x[x > 0.9995] = 0.9995
    assert not any(abs(c - 68) <= 5 for c in change_points(x, bends=False))
    assert any(abs(c - 68) <= 5 for c in series_changes(x)[1])  # a noise change: the noise ends


def test_a_floor_with_blips_that_ends_quietly_is_no_change():
    rng = np.random.default_rng(13)
    x = np.zeros(300)
    blips = rng.choice(np.arange(10, 230), 25, replace=False)
    x[blips] = rng.choice([0.1, 0.2, 0.3], 25)  # the last blip well before the end: a long quiet tail
    assert series_changes(x)[1] == [] and change_points(x) == change_points(x, bends=False)


def test_a_fall_that_takes_a_few_points_is_one_change_point():
    # An RL reward that collapses over 8 evaluations: the step tests cut the ramp twice; the level between the two
    # cuts lasts a few points, no regime of its own (LABELLING.md), so it is one change, where the fall starts.
    rng = np.random.default_rng(21)
    n, k = 200, 130
    t = np.arange(n, dtype=float)
    x = 50 * (1 - np.exp(-t / 40)) + rng.normal(0, 3, n)
    x[k:] = -20 + rng.normal(0, 3, n - k) + np.maximum(0.0, 1 - (t[k:] - k) / 8) * (x[k - 1] + 20)
    assert len(change_points(x, bends=False)) == 2  # before: both ends of the ramp
    found = change_points(x)
    assert len(found) == 1 and abs(found[0] - k) <= 5


def _smooth_loss(n: int, rng: np.random.Generator) -> np.ndarray:
    """An epoch-averaged loss: a smooth saturating fall with little noise (rho near 1 for the step tests)."""
    t = np.arange(n, dtype=float)
    return 1.75 + 0.9 * np.exp(-t / 25) + rng.normal(0, 0.002, n)


@pytest.mark.parametrize("seed", range(4))
def test_a_bump_on_a_smooth_curve_is_two_level_shifts(seed):
    """A resumed run's loss jumps above its trend at 30 and drops back at 39 (deperceiver's log, tune split): the
    step tests see a smooth curve's noise as strongly autocorrelated and call neither; `smooth_jumps` does."""
    x = _smooth_loss(150, np.random.default_rng(seed))
    x[30:39] += 0.05
    assert change_points(x, bends=False) == []
    assert change_points(x) == [30, 39]
    events = series_events(x, metric="train_loss")
    assert [(e.kind, e.start_step) for e in events] == [("level_shift", 30), ("level_shift", 39)]
    assert events[0].magnitude > 0 > events[1].magnitude


@pytest.mark.parametrize("kind", ["white", "smoothed", "ar", "heavy_tailed"])
def test_healthy_curves_have_no_smooth_jump(kind):
    rng = np.random.default_rng(21)
    found = [smooth_jumps(_healthy(kind, n, rng)) for n in [50, 200, 1000, 5000] * 5]
    assert found == [[]] * 20
    assert smooth_jumps(_smooth_loss(150, rng)) == []


def test_a_smooth_jump_needs_one_move_and_a_visible_size():
    rng = np.random.default_rng(8)
    ramp = _smooth_loss(150, rng)
    ramp[30:36] += np.linspace(0.0, 0.05, 6)  # the same rise spread over six moves: a ramp, not a jump
    ramp[36:45] += 0.05
    assert all(abs(j - 30) > 2 for j in smooth_jumps(ramp))
    small = _smooth_loss(150, rng)
    small[30:39] += 0.005  # 8 noise sigmas and more, but under 5 % of the curve's range
    assert smooth_jumps(small) == []
    quantised = rng.choice([0.0, 0.5, 1.0, 1.5], 400)  # a noisy band of a few values: no jump anywhere
    assert smooth_jumps(quantised) == []


@pytest.mark.parametrize("at", [40, 90, 130])
def test_a_spike_on_a_falling_curve_is_a_spike_not_a_collapse_after_it(at):
    """A falling learning curve lies below all its earlier values at every point; the jump down from a spike
    (a val loss that spikes once) made `tail_collapse` call the rest of the run a collapse right after it."""
    t = np.arange(150, dtype=float)
    x = 1.8 + 1.7 * np.exp(-t / 6) + 0.4 * np.exp(-t / 60) + np.random.default_rng(3).normal(0, 0.002, 150)
    x[at] += 0.3
    assert tail_collapse(x) is None and change_points(x) == []
    assert [e.kind for e in series_events(x, metric="val_loss")] == ["spike"]


def test_a_level_shift_next_to_a_floor_exit_is_the_exit_placed_where_the_floor_ends():
    # A class accuracy at exactly 0 that climbs out over a few points into a noisy band: the step tests put the
    # shift at the band (3-12 points late), the floor exit at the first point off the floor. The fall onto the
    # floor at 6 is a change too (`trends.held_value`: its entry, in the warm-up).
    for seed in range(10):
        rng = np.random.default_rng(seed)
        ramp = np.abs(np.linspace(0.01, 0.2, 12) + 0.02 * rng.normal(size=12))
        band = 0.35 + 0.2 * (1 - np.exp(-np.arange(150) / 40)) + 0.04 * rng.normal(size=150)
        y = np.r_[0.2 + 0.02 * rng.normal(size=6), np.zeros(30), ramp, band]
        assert series_changes(y)[0] == [6, 36]


def test_an_eval_accuracy_that_drops_to_exactly_zero_after_three_evaluations_is_a_collapse_there():
    # MLPerf Mask R-CNN logs hold this: the drop comes inside the warm-up that the step tests leave out.
    x = np.r_[0.05, 0.17, 0.21, np.zeros(28)]
    assert held_value(x) == (3, None)
    assert change_points(x) == [3]
    assert [(e.kind, e.start_step) for e in series_events(x, metric="eval_accuracy")] == [("collapse", 3)]


def test_a_metric_stuck_at_its_ceiling_for_a_while_has_an_entry_and_an_exit():
    rng = np.random.default_rng(4)
    x = np.r_[0.6 + 0.05 * rng.normal(size=8), np.ones(26), 0.5 + 0.05 * rng.normal(size=60)]
    assert held_value(x) == (8, 34)
    assert [c for c in change_points(x) if c in (8, 34)] == [8, 34]


def test_a_ceiling_resumed_after_a_one_point_dip_has_no_entry_there():
    # A Tianshou InvertedPendulum test return sits at its 1000 ceiling, drops once to ~200 and is back at 1000 the
    # next evaluation: the longest held stretch starts after the dip, but the series never left the value.
    rng = np.random.default_rng(7)
    x = np.r_[50 + 20 * rng.random(5), np.full(40, 1000.0), 194.0, np.full(150, 1000.0), 660.0, np.full(8, 1000.0)]
    assert held_value(x)[0] is None
    assert [c for c in change_points(x) if 40 <= c <= 50] == []
    climbed = np.r_[50 + 20 * rng.random(40), np.full(150, 1000.0), 660.0, np.full(8, 1000.0)]
    assert held_value(climbed)[0] == 40  # arriving from off the value is still an entry


def test_a_held_staircase_and_a_floor_with_blips_hold_no_value():
    stairs = np.repeat(np.linspace(0.3, 0.8, 20), 5)  # validation repeated for 5 steps: every run is as long
    assert held_value(stairs) == (None, None)
    blips = np.zeros(200)
    blips[[140, 146, 151, 160, 171, 180]] = 0.5  # a class error that leaves 0 now and then: no exit
    assert held_value(np.r_[0.4, 0.3, 0.2, blips])[1] is None


def test_a_value_that_is_a_regular_elsewhere_is_not_held():
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(0.5, 0.2, 120), 1)  # quantised: 0.5 comes back all the time
    x[40:48] = 0.5
    assert held_value(x) == (None, None)


def test_a_training_accuracy_at_exactly_zero_for_its_first_four_percent_of_steps_has_its_exit_found():
    # PaddleOCR logs: accuracy 0.0 for the first 23 of 550 logged steps, then it starts to rise (a held value at 2 %).
    rng = np.random.default_rng(6)
    rise = np.clip(0.9 * (1 - np.exp(-np.arange(527) / 120)) + rng.normal(0, 0.003, 527), 1e-4, None)
    x = np.r_[np.zeros(23), rise]
    assert held_value(x) == (None, 23)
    assert any(abs(c - 23) <= 3 for c in change_points(x))
