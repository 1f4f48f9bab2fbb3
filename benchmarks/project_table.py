"""Project-table throughput: runs analysed per second, locally (1 and 2 processes) and on a 2-worker LocalCluster.

Usage:  .venv/bin/python -m benchmarks.project_table [--runs 200] [--root demo]

Workload: the bundled demo run (16 batches × 40 validations, written by the real wandb library; `analysis.demo`)
listed `--runs` times, so every row is a full `analyze_run` of a demo-sized run (open from the decoded-run cache,
batch frames, detectors, root causes) without writing 200 runs first. The demo is generated data: this is a speed
figure only. The three configurations run in the same process, one after the other, and must give equal tables.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from analysis.demo import ensure_demo
from analysis.findings.project import project_table
from analysis.sources import list_runs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--root", type=Path, default=Path("demo"))
    args = ap.parse_args(argv)
    ensure_demo(args.root)
    ref = next(r for r in list_runs(args.root / "wandb") if r.name == "demo-ocr-run")
    refs = [ref] * args.runs
    results: dict[str, pd.DataFrame] = {}
    print(f"{args.runs} demo-sized runs (16 batches × 40 validations × 3 metrics)")
    print(f"{'configuration':<26}{'wall s':>9}{'runs/s':>9}")
    for label, kwargs in (("local, 1 process", {"workers": 1}), ("local, 2 processes", {"workers": 2})):
        t = time.perf_counter()
        results[label] = project_table(refs, **kwargs)  # type: ignore[arg-type]
        wall = time.perf_counter() - t
        print(f"{label:<26}{wall:>9.2f}{args.runs / wall:>9.1f}")
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        t = time.perf_counter()
        results["LocalCluster, 2 workers"] = project_table(refs, scheduler=cluster.scheduler_address)
        wall = time.perf_counter() - t
    print(f"{'LocalCluster, 2 workers':<26}{wall:>9.2f}{args.runs / wall:>9.1f}  (cluster start-up not counted)")
    first = next(iter(results.values()))
    for label, table in results.items():
        pd.testing.assert_frame_equal(first, table, obj=label)
    print(f"tables equal: yes; errors: {int(first['error'].notna().sum())}")


if __name__ == "__main__":
    main()
