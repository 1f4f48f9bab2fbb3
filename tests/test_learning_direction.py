"""The direction of a metric whose name does not say it, read from its learning curve
(`directions.learning_direction`, applied by `directions.directions_read_from_curves`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.core.vocabulary import Severity
from analysis.findings.directions import learning_direction
from analysis.findings.pipeline import analyze_run
from analysis.sources import open_table

CURVES = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "curves"
T = np.arange(300, dtype=float)
NOISE = np.random.default_rng(3).normal(0.0, 0.02, T.size)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (2.0 * np.exp(-T / 40) + 0.3 + NOISE, "lower_is_better"),  # a loss
        (0.9 * (1 - np.exp(-T / 40)) + NOISE, "higher_is_better"),  # a score
        (0.1 * np.exp(T / 60) + NOISE, None),  # a loss that diverges: faster and faster
        (np.r_[0.9 * (1 - np.exp(-T[:200] / 30)), np.full(100, 0.05)] + NOISE, None),  # a score that collapsed
        (0.5 + NOISE, None),  # flat
        (np.array([3.0, 2.0, 1.5, 1.2, 1.1, 1.0]), None),  # too short to tell
    ],
    ids=["loss", "score", "diverging", "collapsed", "flat", "short"],
)
def test_a_learning_curve_tells_its_direction_and_a_failure_does_not(values, expected):
    assert learning_direction(values) == expected


def test_a_restart_of_letter_named_losses_is_critical_and_their_fall_is_not():
    """athnzc/yolact_inference's YOLACT log (batch 26): losses logged as `B`, `M`, `C`, `S`, `T`. Taken as
    higher-is-better, the class loss `C` jumping 2.6 -> 18 when the run restarted was a note, and the total loss
    `T` falling 24.6 -> 19.5 a critical finding whose root cause blamed that restart."""
    analysis = analyze_run(open_table(str(CURVES / "yolact_athnzc" / "yolact_base.csv")))
    directions = analysis.config.anomaly.metric_directions
    assert {directions[m] for m in ("C", "S", "T")} == {"lower_is_better"}, directions
    assert "iter" not in directions and "session" not in directions  # counters have no direction
    (jump,) = [c for c in analysis.change_points if c.metric == "C" and c.step == 294]
    assert jump.severity is Severity.CRITICAL
    assert not [
        c
        for c in analysis.change_points
        if c.metric in "TS" and c.delta < 0 and c.severity.rank >= Severity.WARNING.rank
    ]
    causes = [r.sentence for r in analysis.root_causes]
    assert any(s.startswith("C rose") and "a restart is the suspect" in s for s in causes), causes
    assert not any(" fell " in s for s in causes), causes


def test_a_change_shared_by_several_losses_is_labelled_with_the_metric_its_values_are_of():
    """The restart of that YOLACT log is one event of `C` (2.56 -> 20.2) shown by `S` and `T` as well: the change
    line on the `T` chart read "2.56→20.20", `C`'s values, as if they were `T`'s (T jumps from ~15 to ~90)."""
    from analysis.reporting.figures import global_metrics_figure

    analysis = analyze_run(open_table(str(CURVES / "yolact_athnzc" / "yolact_base.csv")))
    fig = global_metrics_figure(analysis, ["C", "T"])
    labels = [a.text for a in fig.layout.annotations if "→" in (a.text or "")]
    assert "2.56→20.20" in labels, labels  # on C's own chart
    assert "C: 2.56→20.20" in labels, labels  # on T's chart, named


def test_losses_restarted_again_and_again_late_in_a_log_still_read_as_losses():
    """shangjie-li/dual_modal_yolact's YOLACT log (batch 26): restarts at records 216, 565, 606, 620 and 670 lift the
    last third of `C`, `S`, `T` a little above their typical level (`T`: start 77, typical 19.8, last third 21.1).
    Read as "turned back", they had no direction, and `S` falling back after a restart was a critical "fell"."""
    history = open_table(str(CURVES / "yolact_shangjieli" / "yolact_base.csv")).history
    assert {learning_direction(history[m].to_numpy()) for m in ("C", "S", "T")} == {"lower_is_better"}
    assert learning_direction(history["B"].to_numpy()) is None  # a noisy band: no learning curve to read
