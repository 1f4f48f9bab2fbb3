"""Benchmark: memory of opening a run that logs one new key per step (issue 17, item 7).

    .venv/bin/python -m benchmarks.sparse_keys                  # 10,000 and 20,000 steps
    .venv/bin/python -m benchmarks.sparse_keys --steps 5000 --no-baseline

Writes each run once with the real wandb library (offline) under --data (default
~/.cache/experiment-analyzer-bench/sparse), each step logging `loss` plus one key of its own (`sample_<step>/score`,
as per-sample metrics do). Then, in a fresh process each, it opens the run with `open_run(cache=False)` and
prints the peak RSS above the process's imports against the decoded values (8 bytes each), in three modes:

- `lazy`: the reader as it is (the history kept long below the public frame, `SparseRun`): the peak of opening the
  run and using it without the frame of every key (summary, `step_column`, `history_of(["loss"])`), then the
  peak once `run.history` (the frame of all 20,004 keys, sparse columns) is asked for;
- `eager`: the frame of every key built while opening (the reader before `SparseRun`);
- `dense` (unless --no-baseline): the long layout switched off (`LONG_AFTER_CELLS` out of reach: the dense
  steps x keys frame of the first reader; GBs at 20,000 steps).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WRITER = r"""
import sys, wandb
d, steps = sys.argv[1], int(sys.argv[2])
run = wandb.init(project="bench", name=f"sparse-{steps}", dir=d)
for s in range(steps):
    wandb.log({"loss": 1.0 / (s + 1), f"sample_{s}/score": (s % 97) / 97})
run.finish()
"""

_PROBE = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[3])
from analysis.sources import _frame, open_run
if sys.argv[2] == "dense":
    _frame.LONG_AFTER_CELLS = 10**15
if sys.argv[2] == "eager":
    _frame.HistoryFrame.result = _frame.HistoryFrame.frame
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = peak()
run = open_run(sys.argv[1], cache=False)
used = (len(run.summary), run.step_column, run.history_of(["loss"]).shape if hasattr(run, "history_of") else None)
opened = peak()
h = run.history
values = sum(int(h[c].count()) for c in h.columns)
print(json.dumps({"rows": len(h), "cols": h.shape[1], "values": values, "opened_kib": opened, "peak_kib": peak(),
                  "base_kib": base}))
"""


def write(data: Path, steps: int) -> Path:
    from tests.wandb_writer import wandb_env

    parent = data / f"sparse-{steps}"
    found = sorted((parent / "wandb").glob("offline-run-*")) if parent.exists() else []
    if found:
        return found[-1]
    parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(parent), str(steps)], env=wandb_env(parent), check=True, timeout=3600
    )
    return sorted((parent / "wandb").glob("offline-run-*"))[-1]


def probe(folder: Path, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(folder), mode, str(ROOT)], capture_output=True, text=True, timeout=3600
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[10_000, 20_000])
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache" / "experiment-analyzer-bench" / "sparse")
    ap.add_argument("--no-baseline", action="store_true", help="skip the dense-frame baseline (GBs at 20,000)")
    args = ap.parse_args()
    for steps in args.steps:
        folder = write(args.data, steps)
        size = sum(p.stat().st_size for p in folder.glob("*.wandb")) / 2**20
        print(f"{steps:,} steps, one new key per step: {size:.1f} MiB on disk")
        for mode in ("lazy", "eager", *(() if args.no_baseline else ("dense",))):
            r = probe(folder, mode)
            if "error" in r:
                print(f"  {mode:5}: failed: {r['error']}")
                continue
            decoded = r["values"] * 8 / 2**20
            opened = (r["opened_kib"] - r["base_kib"]) / 1024
            full = (r["peak_kib"] - r["base_kib"]) / 1024
            print(
                f"  {mode:5}: {r['rows']:,} rows x {r['cols']:,} columns, {r['values']:,} values ({decoded:.2f} MiB); "
                f"open_run +{opened:,.1f} MiB ({opened / decoded:,.0f}x the values), with the frame of every key "
                f"+{full:,.1f} MiB ({full / decoded:,.0f}x); imports {r['base_kib'] / 1024:,.0f} MiB"
            )


if __name__ == "__main__":
    main()
