"""Benchmark: a history CSV with very many columns (issue 17, item 14), through `open_table` and the CLI.

    .venv/bin/python -m benchmarks.wide_table                 # 100,000 columns x 20 rows
    .venv/bin/python -m benchmarks.wide_table --columns 30000 --no-cli

Writes a CSV of `global_step` plus per-batch metrics (`batch_{i}/recall|precision|hmean|loss`), then prints:
the wall time of `open_table` with the vectorised wide-table reader and, in the same run, with pandas' reader
(the baseline: the reader used before, `WIDE_COLUMNS` raised out of reach), and the wall time and peak RSS of
the whole CLI (`analyze_experiment.py --history-file ... --format json`) in a fresh process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_csv(path: Path, columns: int, rows: int) -> None:
    rng = np.random.default_rng(0)
    metrics = ("recall", "precision", "hmean", "loss")
    names = ["global_step"] + [f"batch_{i // 4}/{metrics[i % 4]}" for i in range(columns - 1)]
    values = np.round(rng.random((rows, columns)), 4)
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for s, row in enumerate(values):
            f.write(",".join([str(s), *map(str, row[1:])]) + "\n")


def time_open(path: Path, wide_reader: bool) -> float:
    from analysis.sources import open_table, tabular

    saved = tabular.WIDE_COLUMNS
    tabular.WIDE_COLUMNS = saved if wide_reader else 10**12
    try:
        t = time.perf_counter()
        run = open_table(path)
        elapsed = time.perf_counter() - t
    finally:
        tabular.WIDE_COLUMNS = saved
    assert run.history.shape[1] > 1
    return elapsed


def time_cli(path: Path, out: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB of the CLI process, exit code)."""
    cmd = [sys.executable, str(ROOT / "analyze_experiment.py"), "--history-file", str(path)]
    cmd += ["--output-dir", str(out), "--format", "json", "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    return elapsed, max(peak, before) / 1024, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--columns", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI timing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wide-bench-") as tmp:
        path = Path(tmp) / "wide.csv"
        write_csv(path, args.columns, args.rows)
        size = path.stat().st_size / 2**20
        print(f"wide CSV: {args.columns:,} columns x {args.rows} rows, {size:.1f} MiB")
        ours = time_open(path, wide_reader=True)
        base = time_open(path, wide_reader=False)
        print(f"open_table, vectorised wide reader : {ours:7.2f} s")
        print(f"open_table, pandas reader (baseline): {base:7.2f} s  ({base / ours:.1f}x)")
        if not args.no_cli:
            out = Path(tmp) / "out"
            wall, rss, code = time_cli(path, out)
            print(f"CLI end to end (exit {code})          : {wall:7.2f} s, peak RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
