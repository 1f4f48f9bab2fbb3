"""Run-comparison speed: `compare_runs` against a straightforward pandas merge + per-batch loop, in the same run.

Usage:  .venv/bin/python -m benchmarks.compare [--steps 10000] [--batches 200] [--repeat 3]

Workload (the issue's size): two runs of 10,000 steps × 200 batches × 3 metrics (6 million points each), as
BatchMetrics frames already loaded (`RunSide`), the candidate with 5 batches shifted down by 0.05-0.15 from a
random step and independent noise elsewhere. Generated data: this is a speed figure, not a quality figure (the
regression rule has no tuned parameters; its behaviour is checked by tests/test_compare.py on real wandb runs).

Baseline: the same decision written the obvious way — `pandas.merge` of the two long frames on (step, batch,
metric), then a loop over the 600 groups: drop missing, last k rows, `scipy.stats.ttest_rel`, tolerances,
Benjamini-Hochberg, parting step by a backwards scan. Both must find the same regressed batches (checked).
Figures: best of `--repeat` wall and CPU seconds (the machine is shared: CPU time is the figure to compare).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, ttest_rel

from analysis.findings.compare import CompareConfig, RunSide, compare_runs

METRICS = ("recall", "precision", "hmean")


def make_side(name: str, steps: int, batches: int, seed: int, shifted: dict[int, tuple[int, float]]) -> RunSide:
    rng = np.random.default_rng(seed)
    s = np.arange(1, steps + 1, dtype=np.int64)
    curve = 0.7 + 0.2 * (1 - np.exp(-s / (steps / 5)))
    frames = []
    for m in METRICS:
        values = curve[:, None] + rng.normal(0, 0.01, (steps, batches))
        for b, (start, size) in shifted.items():
            values[s >= start, b] -= size
        frames.append(
            pd.DataFrame(
                {
                    "step": np.repeat(s, batches),
                    "batch": np.tile(np.arange(batches, dtype=np.int64), steps),
                    "metric": m,
                    "value": values.ravel(),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True).sort_values(["metric", "batch", "step"], ignore_index=True)
    frame["metric"] = frame["metric"].astype("category")
    return RunSide(name, frame)


def naive_compare(base: pd.DataFrame, cand: pd.DataFrame, cfg: CompareConfig) -> set[int]:
    """The same rule, written as a pandas merge and a loop over batch × metric."""
    merged = base.merge(cand, on=["step", "batch", "metric"], suffixes=("_b", "_c"))
    rows: list[dict[str, Any]] = []
    for (batch, metric), g in merged.groupby(["batch", "metric"], observed=True):
        g = g.dropna(subset=["value_b", "value_c"]).sort_values("step")
        w = g.tail(cfg.window)
        diff = w["value_c"] - w["value_b"]
        p = float(ttest_rel(w["value_c"], w["value_b"]).pvalue) if len(w) > 1 else float("nan")
        worsening = -float(diff.mean())  # all three metrics are higher-is-better
        base_mean = float(w["value_b"].mean())
        beyond = abs(worsening) > cfg.tolerance_abs and abs(worsening) > cfg.tolerance_rel * abs(base_mean)
        parting = None
        if beyond:
            d = -(g["value_c"] - g["value_b"]).rolling(3, center=True, min_periods=1).median().to_numpy()
            for i in range(len(d) - 1, -1, -1):
                if d[i] < abs(worsening) / 2:
                    parting = int(g["step"].iloc[min(i + 1, len(g) - 1)])
                    break
        rows.append({"batch": batch, "metric": metric, "p": p, "bad": beyond and worsening > 0, "parting": parting})
    table = pd.DataFrame(rows)
    table["q"] = false_discovery_control(table["p"].fillna(1.0).clip(0, 1), method="bh")
    return {int(b) for b in table.loc[table["bad"] & (table["q"] < cfg.alpha), "batch"]}


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    wall, cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(7)
    bad = rng.choice(args.batches, 5, replace=False)
    shifted = {
        int(b): (int(rng.integers(args.steps // 5, args.steps * 4 // 5)), float(rng.uniform(0.05, 0.15))) for b in bad
    }
    base = make_side("baseline", args.steps, args.batches, 1, {})
    cand = make_side("candidate", args.steps, args.batches, 2, shifted)
    cfg = CompareConfig()
    n_points = len(base.batches)
    print(f"workload: 2 runs × {args.steps:,} steps × {args.batches} batches × {len(METRICS)} metrics "
          f"({n_points:,} points each); injected regressions in batches {sorted(shifted)}")  # fmt: skip
    w_ours, c_ours, comp = _best(lambda: compare_runs(base, cand, cfg), args.repeat)
    w_naive, c_naive, naive = _best(lambda: naive_compare(base.batches, cand.batches, cfg), max(1, args.repeat - 1))
    ours = set(comp.regressed_batches)
    print(f"{'method':<28}{'wall s':>9}{'cpu s':>9}  regressed batches")
    print(f"{'compare_runs':<28}{w_ours:>9.3f}{c_ours:>9.3f}  {sorted(ours)}")
    print(f"{'pandas merge + loop':<28}{w_naive:>9.3f}{c_naive:>9.3f}  {sorted(naive)}")
    print(f"speed-up (cpu): {c_naive / c_ours:.1f}x · target < 2 s: {'met' if w_ours < 2 else 'NOT met'}")
    parting = {d.batch: d.parting_step for d in comp.regressions if d.metric == "recall"}
    for b, (start, size) in sorted(shifted.items()):
        print(f"  batch {b}: shift {size:.3f} from step {start}; parting step found {parting.get(b)}")
    if ours != naive or ours != set(shifted):
        raise SystemExit(f"disagreement: ours {sorted(ours)}, naive {sorted(naive)}, injected {sorted(shifted)}")


if __name__ == "__main__":
    main()
