"""Findings benchmark: our change points and point outliers against naive baselines, measured in the same run.

Usage:  .venv/bin/python -m benchmarks.findings [--per-scenario 30] [--pw 50] [--seed 0] [--no-speed] [--no-real] [--split tune|test|both]

First the real-curve tables (`benchmarks/real_curves.py`: public training curves labelled blind, split by source
repository into tune / test, and TCPD; ruptures BinSeg / PELT with TCPDBench's default penalty and "nothing" in the
same run), then the generated set below as a second table.

Data: labelled training-like series (benchmarks/labelled_series.py: healthy curves, spikes, drops, recoveries,
LR steps, drift, plateaus, variance increases) and ruptures' own `pw_constant` signals.

Methods (series-level API with default settings):
- ours:      analysis.findings.changepoints.change_points(x) and analysis.anomalies.outlier_indices(x)
- ours-no-bends: the same without analysis.findings.trends (`bends=False`: no end-of-series collapse, no
             same-sign slope change), i.e. ours before issue 18's bends, measured in the same run
- pelt:      ruptures Pelt(model="l2") with its defaults (min_size=2, jump=5), pen = 2 ln n
- zscore:    global |x - mean| / std > 3 (each flagged point counts as an outlier and as a change point)
- nothing:   reports no change point and no outlier (the floor any detector has to beat)

Metrics (van den Burg & Williams, "An Evaluation of Change Point Detection Algorithms", 2020): F1 with a
5-sample margin and the covering metric, both with the start of the series counted as a change point (as in
their TCPDBench), averaged over series; false change points per healthy run (series labelled without change
points); outliers scored point-exact, pooled over all series (precision, recall, F1).
Speed: 200 series x 1,000 steps and one 100,000-step series, ours and Pelt timed in the same run (wall and
CPU seconds: on a busy shared machine the CPU time is the figure to compare), and the run-level functions on the
app's workload (200 batches x 3 metrics x 10,000 steps).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import ruptures as rpt

from analysis.findings.anomalies import outlier_indices
from analysis.findings.changepoints import change_points
from benchmarks.labelled_series import SCENARIOS, LabelledSeries, labelled_set, pw_constant_set
from benchmarks.real_curves import covering

MARGIN = 5


# ------------------------------------------------------------------------------------------------ metrics
def _true_positives(truth: list[int], pred: list[int], margin: int) -> int:
    """Each true change point matches at most one prediction within the margin (closest first)."""
    left = sorted(set(pred))
    tp = 0
    for t in sorted(set(truth)):
        close = [p for p in left if abs(p - t) <= margin]
        if close:
            best = min(close, key=lambda p: abs(p - t))
            left.remove(best)
            tp += 1
    return tp


def f1_score(truth: list[int], pred: list[int], margin: int = MARGIN) -> float:
    """F1 of change points with the series start counted in both sets (TCPDBench convention)."""
    t, p = set(truth) | {0}, set(pred) | {0}
    tp = _true_positives(list(t), list(p), margin)
    precision, recall = tp / len(p), tp / len(t)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_true if n_true else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


# ------------------------------------------------------------------------------------------------ methods
def pelt_l2(x: np.ndarray) -> list[int]:
    return [int(b) for b in rpt.Pelt(model="l2").fit(x).predict(pen=2 * math.log(len(x)))[:-1]]


def global_z(x: np.ndarray) -> list[int]:
    sd = float(np.std(x))
    if sd == 0:
        return []
    return np.flatnonzero(np.abs(x - np.mean(x)) / sd > 3).tolist()


def nothing(x: np.ndarray) -> list[int]:
    return []


def ours_no_bends(x: np.ndarray) -> list[int]:
    """Ours without `analysis.findings.trends` (no end-of-series collapse, no same-sign bends): the "before"."""
    return change_points(x, bends=False)


CP_METHODS: dict[str, Callable[[np.ndarray], list[int]]] = {
    "ours": change_points,
    "ours-no-bends": ours_no_bends,
    "pelt": pelt_l2,
    "zscore": global_z,
    "nothing": nothing,
}
OUTLIER_METHODS: dict[str, Callable[[np.ndarray], list[int]]] = {
    "ours": outlier_indices,
    "zscore": global_z,
    "nothing": nothing,
}


def evaluate_cps(series: list[LabelledSeries], method: Callable[[np.ndarray], list[int]]) -> dict:
    f1s, covers, false_healthy, seconds = [], [], [], 0.0
    per_scenario: dict[str, list[float]] = {}
    for s in series:
        t0 = time.perf_counter()
        pred = method(s.values)
        seconds += time.perf_counter() - t0
        f = f1_score(s.change_points, pred)
        f1s.append(f)
        covers.append(covering(s.change_points, pred, len(s.values)))
        per_scenario.setdefault(s.scenario, []).append(f)
        if s.healthy:
            false_healthy.append(len(pred))
    return {
        "f1": float(np.mean(f1s)),
        "cover": float(np.mean(covers)),
        "false_per_healthy": float(np.mean(false_healthy)) if false_healthy else float("nan"),
        "seconds": seconds,
        "per_scenario": {k: float(np.mean(v)) for k, v in per_scenario.items()},
    }


def evaluate_outliers(series: list[LabelledSeries], method: Callable[[np.ndarray], list[int]]) -> dict:
    tp = n_pred = n_true = 0
    for s in series:
        pred = set(method(s.values))
        truth = set(s.outliers)
        tp += len(pred & truth)
        n_pred += len(pred)
        n_true += len(truth)
    p, r, f = prf(tp, n_pred, n_true)
    return {"precision": p, "recall": r, "f1": f, "flagged": n_pred, "true": n_true}


# ------------------------------------------------------------------------------------------------ speed
def _time(fn: Callable[[], object], repeat: int = 3) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process) over `repeat` runs; CPU time is what a shared, busy
    machine does not distort."""
    best_wall = best_cpu = math.inf
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu


def speed(seed: int) -> list[tuple[str, tuple[float, float], tuple[float, float] | None]]:
    """(case, ours (wall, cpu), pelt (wall, cpu) or None) for the two speed targets."""
    rng = np.random.default_rng(seed)
    many = [np.r_[np.zeros(500), np.full(500, 2.0)] + rng.normal(0, 1, 1000) for _ in range(200)]
    curves = [0.9 - 0.3 * np.exp(-np.arange(1000) / 200) + rng.normal(0, 0.01, 1000) for _ in range(200)]
    long = np.repeat(rng.normal(0, 3, 10), 10_000) + rng.normal(0, 1, 100_000)
    pelt20 = _time(lambda: [pelt_l2(x) for x in many[:20]], 1)
    rows = [
        (
            "change_points: 200 step series x 1,000",
            _time(lambda: [change_points(x) for x in many]),
            (pelt20[0] * 10, pelt20[1] * 10),
        ),
        ("change_points: 200 learning curves x 1,000", _time(lambda: [change_points(x) for x in curves]), None),
        (
            "change_points without bends (before): 200 step series x 1,000",
            _time(lambda: [ours_no_bends(x) for x in many]),
            None,
        ),
        (
            "change_points without bends (before): 200 learning curves x 1,000",
            _time(lambda: [ours_no_bends(x) for x in curves]),
            None,
        ),
        ("outlier_indices: 200 series x 1,000", _time(lambda: [outlier_indices(x) for x in many]), None),
        ("change_points: one 100,000-step series", _time(lambda: change_points(long)), None),
        ("outlier_indices: one 100,000-step series", _time(lambda: outlier_indices(long)), None),
    ]
    return rows


def run_level(seed: int, batches: int = 200, steps: int = 10_000) -> list[tuple[str, tuple[float, float], int]]:
    """The app's workload: every finding for a run of `batches` x 3 metrics x `steps` (one bad batch)."""
    import pandas as pd

    from analysis.core.config import AnalyzerConfig
    from analysis.findings.anomalies import find_anomalies
    from analysis.findings.changepoints import find_change_points
    from analysis.findings.events import find_events
    from analysis.findings.rootcause import explain

    rng = np.random.default_rng(seed)
    curve = 0.93 - 0.3 * np.exp(-np.arange(steps) / (steps / 6))
    frames = []
    for metric in ("recall", "precision", "hmean"):
        vals = curve[None, :] + rng.normal(0, 0.01, (batches, steps))
        vals[7, int(0.6 * steps) :] -= 0.3
        frames.append(
            pd.DataFrame(
                {
                    "step": np.tile(np.arange(steps) * 10, batches),
                    "batch": np.repeat(np.arange(batches), steps),
                    "metric": metric,
                    "value": vals.ravel(),
                }
            )
        )
    long = pd.concat(frames, ignore_index=True)
    cfg = AnalyzerConfig()
    out: dict[str, Any] = {}
    t_an = _time(lambda: out.__setitem__("a", find_anomalies(long, None, cfg.anomaly)), 1)
    t_cp = _time(lambda: out.__setitem__("c", find_change_points(long, None, cfg.anomaly)), 1)
    t_ev = _time(lambda: out.__setitem__("e", find_events(long, None, out["a"], out["c"], cfg.anomaly)), 1)
    t_rc = _time(lambda: out.__setitem__("r", explain(long, out["a"], out["c"], None, None, cfg)), 1)
    return [
        ("find_anomalies", t_an, len(out["a"])),
        ("find_change_points", t_cp, len(out["c"])),
        ("find_events", t_ev, len(out["e"])),
        ("explain (root causes)", t_rc, len(out["r"])),
    ]


# ------------------------------------------------------------------------------------------------ report
def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    out = [f"\n{title}", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-scenario", type=int, default=30)
    ap.add_argument("--pw", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-real", action="store_true", help="skip the real-curve tables (benchmarks/real_curves.py)")
    ap.add_argument(
        "--split",
        choices=("tune", "test", "both"),
        default="both",
        help="real-curve split(s); develop with --split tune, measure the test side once at the end",
    )
    args = ap.parse_args(argv)
    if not args.no_real:
        from benchmarks import real_curves

        print("# Real public curves (benchmarks/real_curves.py)")
        print(real_curves.run(split=args.split))
        from benchmarks import alarms

        print("\n# Alarms a user is shown on the same curves, whole pipeline (benchmarks/alarms.py)")
        alarms.main(["--split", args.split])
        print("\n# Generated series (benchmarks/labelled_series.py)")

    labelled = labelled_set(args.per_scenario, args.seed)
    pw = pw_constant_set(args.pw, seed=args.seed)
    print(
        f"labelled training-like series: {len(labelled)} ({args.per_scenario} per scenario, "
        f"{sum(s.healthy for s in labelled)} healthy); pw_constant: {len(pw)} x 1000"
    )

    results = {}
    for name, fn in CP_METHODS.items():
        results[name] = (evaluate_cps(labelled, fn), evaluate_cps(pw, fn))
    rows = []
    for name, (lab, pwr) in results.items():
        rows.append(
            [
                name,
                f"{lab['f1']:.3f}",
                f"{lab['cover']:.3f}",
                f"{lab['false_per_healthy']:.2f}",
                f"{pwr['f1']:.3f}",
                f"{pwr['cover']:.3f}",
                f"{lab['seconds'] + pwr['seconds']:.2f}",
            ]
        )
    print(
        _table(
            "Change points (F1 with 5-sample margin, covering; mean over series)",
            [
                "method",
                "F1 labelled",
                "cover labelled",
                "false CPs / healthy run",
                "F1 pw_constant",
                "cover pw_constant",
                "seconds",
            ],
            rows,
        )
    )

    scen = [s for s in SCENARIOS]
    print(
        _table(
            "Change-point F1 per scenario (labelled set)",
            ["method", *scen],
            [
                [name] + [f"{lab['per_scenario'].get(s, float('nan')):.2f}" for s in scen]
                for name, (lab, _) in results.items()
            ],
        )
    )

    orows = []
    for name, fn in OUTLIER_METHODS.items():
        r = evaluate_outliers(labelled, fn)
        orows.append(
            [name, f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", f"{r['flagged']}", f"{r['true']}"]
        )
    print(
        _table(
            "Point outliers (labelled set, point-exact, pooled)",
            ["method", "precision", "recall", "F1", "flagged", "true"],
            orows,
        )
    )

    ours, pelt, z = results["ours"][0], results["pelt"][0], results["zscore"][0]
    print("\nRatios against the baselines (labelled set):")
    print(
        f"  F1 ours/pelt = {ours['f1'] / max(pelt['f1'], 1e-9):.2f}, ours/zscore = "
        f"{ours['f1'] / max(z['f1'], 1e-9):.2f}; cover ours/pelt = {ours['cover'] / max(pelt['cover'], 1e-9):.2f}"
        f", ours/zscore = {ours['cover'] / max(z['cover'], 1e-9):.2f}"
    )

    if not args.no_speed:
        srows = []
        for case, (ours_w, ours_c), pelt_time in speed(args.seed):
            srows.append(
                [
                    case,
                    f"{ours_w:.3f}",
                    f"{ours_c:.3f}",
                    "" if pelt_time is None else f"{pelt_time[0]:.1f}",
                    "" if pelt_time is None else f"{pelt_time[1] / max(ours_c, 1e-9):.0f}x",
                ]
            )
        print(
            _table(
                "Speed (seconds, best of 3; Pelt extrapolated from 20 series)",
                ["case", "ours wall", "ours CPU", "pelt wall", "ours faster (CPU)"],
                srows,
            )
        )
        rrows = [[name, f"{w:.2f}", f"{c:.2f}", str(n)] for name, (w, c), n in run_level(args.seed)]
        print(
            _table(
                "Run level: 200 batches x 3 metrics x 10,000 steps (6M values, one bad batch)",
                ["function", "wall", "CPU", "records"],
                rrows,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
