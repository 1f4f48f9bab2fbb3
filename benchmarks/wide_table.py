"""Benchmark: a history CSV with very many columns (issue 17, item 14), through `open_table` and the CLI.

    .venv/bin/python -m benchmarks.wide_table                 # 100,000 columns x 20 rows
    .venv/bin/python -m benchmarks.wide_table --columns 30000 --no-cli

Data: generated (seeded uniform random values rounded to 4 digits; no real run). Writes a CSV of `global_step`
plus per-batch metrics (`batch_{i}/recall|precision|hmean|loss`), then prints:
the wall time of `open_table` with the vectorised wide-table reader and, in the same run, with pandas' reader
(the baseline: the reader used before, `WIDE_COLUMNS` raised out of reach), and the wall time and peak RSS of
the whole CLI (`analyze_experiment.py --history-file ... --format json`) in a fresh process; with `--before REV`,
also the CLI of the checkout at git revision REV (extracted with `git archive` into a temporary folder, the git
state untouched), on the same CSV in the same run.
"""

from __future__ import annotations

import argparse
import os
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


def extract(rev: str, into: Path) -> Path:
    """The tree of git revision `rev` written under `into` (read from git, nothing in the checkout changes)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def time_cli(path: Path, out: Path, root: Path = ROOT) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB of the CLI process, exit code, CPU seconds), of the CLI in the tree `root`.
    CPU seconds say more than wall time on a shared machine. The resource usage is that of this one child
    (`os.wait4`), so two CLIs timed in one run each get their own peak RSS."""
    cmd = [sys.executable, str(root / "analyze_experiment.py"), "--history-file", str(path)]
    cmd += ["--output-dir", str(out), "--format", "json", "--quiet"]
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=out.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            err.seek(0)
            print(err.read().decode(errors="replace")[-2000:], file=sys.stderr)
    return elapsed, usage.ru_maxrss / 1024, code, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--columns", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI timing")
    ap.add_argument("--before", metavar="REV", help="also time the CLI of git revision REV (e.g. HEAD)")
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
            wall, rss, code, cpu = time_cli(path, out)
            print(f"CLI end to end (exit {code})    : {wall:7.2f} s wall, {cpu:7.2f} s CPU, peak RSS {rss:,.0f} MiB")
            if args.before:
                old = extract(args.before, Path(tmp) / "before")
                wall_b, rss_b, code_b, cpu_b = time_cli(path, Path(tmp) / "out-before", old)
                print(
                    f"CLI of {args.before} (exit {code_b})  : {wall_b:7.2f} s wall, {cpu_b:7.2f} s CPU, peak RSS "
                    f"{rss_b:,.0f} MiB ({cpu_b / max(cpu, 1e-9):.1f}x the CPU time)"
                )


if __name__ == "__main__":
    main()
