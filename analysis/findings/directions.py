"""Directions read from learning curves: which way is better for a run-level metric whose name does not say it.

YOLACT logs its losses as `B`, `C`, `T`; an RL log names its return after the agent (`DQN`, `seed_0`). Taken as
higher-is-better (`vocabulary.metric_direction`'s default), a loss named `T` falling from 24.6 to 19.5 was a critical
finding and its jump at a restart a note. A learning curve says which way its metric learns: `learning_direction`
reads it, `directions_read_from_curves` does so for every such metric of a run, and `with_read_directions` adds the
answers to a copy of the config's `metric_directions` (its own entries win), which every detector, the root causes and
the reports then use.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.core.config import AnalyzerConfig
from analysis.core.vocabulary import Direction, is_adversarial, is_context, is_gradient_norm, known_direction
from analysis.findings.changepoints import noise_sigma

__all__ = ["directions_read_from_curves", "learning_direction", "with_read_directions"]

LEARNING_MIN_POINTS = 12  # `learning_direction` reads a series of at least this many finite values ...
LEARNING_START_SHARE = 0.02  # ... its start: the median of its first 2 % (at least 3 values) ...
LEARNING_MIN_SIGMAS = 5.0  # ... from which its level moved by this many noise sigmas ...
LEARNING_TURN_BACK = 0.25  # ... and to which its last third did not come back by this share of the way


def learning_direction(values: np.ndarray) -> Direction | None:
    """The direction a metric whose name does not say it learned in, read from its curve. A learning curve moves
    fast at first and then slows down: from its start (the median of its first values) to its typical level (the
    median of all values) it moves one way, by `LEARNING_MIN_SIGMAS` noise sigmas (`changepoints.noise_sigma`) or
    more, and from that level to its last third's median less far the same way, or back by less than
    `LEARNING_TURN_BACK` of the way. A loss falls that way ("lower_is_better"), a score rises. None for anything
    else: a flat metric, one that turned back (a score that collapsed late), one that moves faster and faster (a
    diverging loss): read as learning, their direction would call the failure an improvement. Restarts that go
    back to the start level now and then leave the typical level where it was (a YOLACT log's `T`, restarted seven
    times, starts at 77 and sits at 20; its last third, with four of the restarts, at 21)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < LEARNING_MIN_POINTS:
        return None
    start = float(np.median(x[: max(3, math.ceil(LEARNING_START_SHARE * n))]))
    typical = float(np.median(x))
    end = float(np.median(x[-(n // 3) :]))
    early, late = typical - start, end - typical
    if early == 0.0 or abs(early) < LEARNING_MIN_SIGMAS * noise_sigma(x):
        return None
    if early * late >= 0.0 and abs(late) >= abs(early):  # not slowing down
        return None
    if early * late < 0.0 and abs(late) > LEARNING_TURN_BACK * abs(early):  # turned back
        return None
    return "lower_is_better" if early < 0.0 else "higher_is_better"


def _unnamed(metric: str, config: AnalyzerConfig) -> bool:
    """A metric whose direction is left to its curve: its name (and the config) say none, and it is no GAN player
    (a game, no direction), gradient norm, or counter, schedule or resource column."""
    directions = config.anomaly.metric_directions
    return not (
        known_direction(metric, directions) is not None
        or is_context(metric, directions)
        or is_adversarial(metric)
        or is_gradient_norm(metric)
    )


def directions_read_from_curves(frame: pd.DataFrame, config: AnalyzerConfig) -> dict[str, Direction]:
    """`learning_direction` of each run-level metric of `frame` (`batches.global_metrics`' long frame: step,
    metric, value) whose name says nothing (`_unnamed`); those with none are left out. The names are screened
    first and each chosen metric's values are sliced out of one sort, so a run of 20,000 named metrics costs a few
    array operations."""
    codes, names = pd.factorize(frame["metric"], sort=True)
    chosen = np.array([_unnamed(str(m), config) for m in names], dtype=bool)
    if not chosen.any():
        return {}
    keep = chosen[codes]
    codes, steps = codes[keep], frame["step"].to_numpy()[keep]
    values = frame["value"].to_numpy(dtype=float)[keep]
    order = np.lexsort((steps, codes))  # each metric's values in step order
    codes, values = codes[order], values[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    out: dict[str, Direction] = {}
    for code, series in zip(codes[np.r_[0, bounds]], np.split(values, bounds), strict=True):
        read = learning_direction(series)
        if read is not None:
            out[str(names[code])] = read
    return out


def with_read_directions(config: AnalyzerConfig, read: dict[str, Direction]) -> AnalyzerConfig:
    """`config` with the directions read from the curves added to `metric_directions` (its own entries win)."""
    if not read:
        return config
    out = config.model_copy(deep=True)
    out.anomaly.metric_directions = {**read, **config.anomaly.metric_directions}
    return out
