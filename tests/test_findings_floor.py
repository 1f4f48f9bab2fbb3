"""Quantised series and exact floors (issue 18): a class error that sits on an exact 0 and then moves in a band is
one change where it leaves the floor (`trends.floor_exit`); a floor with blips all along, a metric that reaches a
floor, a held (staircase) metric and Gaussian noise are unchanged; the noise sigma of a mostly-constant series is
not 0 (`changepoints.noise_profile`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.findings import changepoints as cp
from analysis.findings.events import series_events
from analysis.findings.series_stats import MAD_TO_SIGMA
from analysis.findings.trends import floor_exit


def _class_error(n: int, exit_at: int, rng: np.random.Generator, blips: int = 3) -> np.ndarray:
    """An eval class error (a DETR log's shape): exactly 0, with a few isolated blips, then a quantised band."""
    x = np.zeros(n)
    x[rng.choice(np.arange(6, exit_at - 6), blips, replace=False)] = rng.choice([0.5, 1.0], blips)
    x[exit_at:] = rng.choice([0.0, 0.5, 1.0, 1.5], n - exit_at, p=[0.1, 0.4, 0.3, 0.2])
    return x


@pytest.mark.parametrize("n, exit_at", [(60, 35), (150, 90), (300, 154), (1000, 640)])
def test_a_band_leaving_an_exact_floor_is_one_level_shift_where_it_leaves(n, exit_at):
    x = _class_error(n, exit_at, np.random.default_rng(n))
    found = cp.change_points(x)
    assert len(found) == 1 and abs(found[0] - exit_at) <= max(5, 0.02 * n)
    events = series_events(x, metric="test_class_error")
    assert [e.kind for e in events if e.kind != "spike"] == ["level_shift"]
    shift = next(e for e in events if e.kind == "level_shift")
    assert shift.value_before == 0.0 and shift.value_after > 0.0


@pytest.mark.parametrize("seed", range(5))
def test_a_floor_with_blips_all_along_has_no_change_point(seed):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(300) < 0.15, rng.choice([0.1, 0.2, 0.4, 0.6], 300), 0.0)
    assert floor_exit(x) is None
    assert cp.change_points(x) == []


def test_reaching_a_floor_and_a_held_staircase_are_no_floor_exit():
    rng = np.random.default_rng(3)
    reaches = np.r_[np.exp(-np.arange(150) / 30) + rng.normal(0, 0.01, 150), np.zeros(50)]
    assert floor_exit(reaches) is None  # a settling (`trends.constant_tail`), not an exit
    stairs = np.repeat(np.linspace(0.3, 0.9, 15) + rng.normal(0, 0.01, 15), 20)  # an eval metric held 20 steps
    assert floor_exit(stairs) is None


def test_a_metric_that_leaves_zero_when_learning_starts_is_found():
    rng = np.random.default_rng(4)
    t = np.arange(200)
    acc = np.where(t < 40, 0.0, 0.9 * (1 - np.exp(-(t - 40) / 30)) + rng.normal(0, 0.01, 200))
    found = cp.change_points(acc)
    assert any(abs(f - 40) <= 5 for f in found)


def test_the_noise_sigma_of_a_mostly_constant_series_is_not_zero():
    rng = np.random.default_rng(6)
    floor = np.where(rng.random(400) < 0.2, 0.5, 0.0)  # most first differences are exactly 0: MAD 0
    sigma, _ = cp.noise_profile(floor)
    assert 0.05 < sigma < 0.5
    noisy = rng.normal(0.0, 1.0, 2000)  # Gaussian noise: the MAD of the differences, the floor does not bind
    d = np.diff(noisy)
    mad = float(np.median(np.abs(d - np.median(d))))
    assert cp.noise_sigma(noisy) == MAD_TO_SIGMA * mad / math.sqrt(2.0)
    assert 0.9 < cp.noise_sigma(noisy) < 1.1


def test_short_rows_read_together_find_the_floor_exit_of_each_row():
    """`series_changes_many` only reads short rows that could change: a row with a floor is one of them."""
    rng = np.random.default_rng(7)
    floors = np.where(np.arange(36) < 20, 0.0, rng.choice([0.5, 1.0, 1.5], (6, 36)))  # a band without 0
    rows = np.vstack([floors, rng.normal(size=(2, 36)), np.round(rng.random((2, 36)), 1)])
    many = cp.series_changes_many(rows)
    assert many == [tuple(cp.series_changes(r)) for r in rows]
    assert all(len(m[0]) == 1 and abs(m[0][0] - 20) <= 5 for m in many[:6])
