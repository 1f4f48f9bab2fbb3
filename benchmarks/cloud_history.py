"""Benchmark: reading a cloud run's history in one read vs one `scan_history` per key (issue 16, item 5).

    .venv/bin/python -m benchmarks.cloud_history                        # 20,000 steps x 30 keys
    .venv/bin/python -m benchmarks.cloud_history --steps 5000 --keys 10 --repeat 1

Writes the run once with the real wandb library (offline) under --data (default
~/.cache/experiment-analyzer-bench/cloud), serves it from the project's GraphQL test server (tests/wandb_stub.py,
on 127.0.0.1) and reads it with the real `wandb.Api` client, in three server states:

    exported   every step in the server's Parquet exports (a finished run)
    live       nothing exported yet: every row from the live GraphQL queries
    no-parquet a server without the `parquetHistory` field (the single GraphQL `history` read)

For each it times `cloud._history(run, keys)` (the one read the product does: the Parquet exports read with
pyarrow plus a scan of any unexported tail) and `cloud._scan_all` (one `scan_history` of every key) against
`cloud._history_per_key(run, keys)` (one `scan_history(keys=[k])` per key, as before), best of --repeat, checks
the frames are equal and prints the times and the ratio one read : per key. The per-key path fails against a server
without Parquet exports (wandb >= 0.27.1 scans through them), so that state has no baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_WRITER = r"""
import math, sys, wandb
d, steps, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
run = wandb.init(project="bench", name=f"cloud-{steps}x{keys}", dir=d)
for s in range(steps):
    row = {f"batch_{k}/recall": ((s * 7919 + k * 104729) % 1000) / 1000 for k in range(keys - 2)}
    row["global_step"] = s * 10
    if s % 10 == 0:
        row["val/loss"] = 1.0 / (s + 1) if s % 1000 else math.nan  # sparse, with NaN
    run.log(row)
run.finish()
"""


def write(data: Path, steps: int, keys: int) -> Path:
    from tests.wandb_writer import wandb_env

    parent = data / f"cloud-{steps}x{keys}"
    found = sorted((parent / "wandb").glob("offline-run-*")) if parent.exists() else []
    if found:
        return found[-1]
    parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(parent), str(steps), str(keys)],
        env=wandb_env(parent),
        check=True,
        timeout=3600,
    )
    return sorted((parent / "wandb").glob("offline-run-*"))[-1]


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--keys", type=int, default=30, help="metric keys per run (>= 3)")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many reads per path")
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache" / "experiment-analyzer-bench" / "cloud")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="cloud-history-bench-")
    os.environ.setdefault("WANDB_CACHE_DIR", str(Path(tmp) / "wandb-cache"))  # wandb-core's Parquet downloads
    os.environ["EXPERIMENT_ANALYZER_CACHE"] = str(Path(tmp) / "cache")
    os.environ["WANDB_API_KEY"] = "local-" + "k" * 40
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from analysis.sources import cloud, open_run
    from tests.wandb_stub import StubServer

    t = time.perf_counter()
    folder = write(args.data, args.steps, args.keys)
    local = open_run(folder, cache=False)
    keys = sorted(c for c in local.history.columns if not c.startswith("_"))
    print(f"run: {len(local.history):,} steps x {len(keys)} keys ({time.perf_counter() - t:.1f} s to write/open)")

    first = None
    for state in ("exported", "live", "no-parquet"):
        with StubServer({"bench/cloud": [local]}, entity="bench") as stub:
            stub.exported_upto = 0 if state == "live" else None
            stub.offers_parquet = state != "no-parquet"
            os.environ["WANDB_BASE_URL"] = stub.url
            cloud._APIS.clear()
            stub.rows(local)  # decode the run for the server once, outside the timings
            r = cloud.api().run(f"bench/cloud/{local.ref.run_id}")
            _ = r.state
            if stub.offers_parquet:
                stub.parquet_urls(local, stub.url)
            before = len(stub.queries)
            one_s, one = best_of(args.repeat, partial(cloud._history, r, keys))
            one_queries = (len(stub.queries) - before) // args.repeat
            line = f"{state:10}: one read {one_s:6.2f} s ({one_queries} queries)"
            if state != "no-parquet":
                scan_s, scan = best_of(args.repeat, partial(cloud._scan_all, r, [*keys, "global_step"]))
                pd.testing.assert_frame_equal(scan, one)
                line += f"; one scan_history of all keys {scan_s:6.2f} s"
            if first is None:
                first = one
            pd.testing.assert_frame_equal(one, first)  # every server state gives the same frame
            if state == "no-parquet":
                print(line + ", same frame; one scan_history per key: fails without Parquet exports (wandb >= 0.27.1)")
                continue
            before = len(stub.queries)
            per_s, per = best_of(args.repeat, partial(cloud._history_per_key, r, keys))
            per_queries = (len(stub.queries) - before) // args.repeat
            pd.testing.assert_frame_equal(one, per, check_like=True)
            print(
                f"{line}; one scan_history per key {per_s:6.2f} s ({per_queries} queries): "
                f"one read {per_s / one_s:.1f}x faster, same frame"
            )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
