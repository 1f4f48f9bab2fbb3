"""Benchmark: decoding large offline wandb runs with analysis.sources against the research reference reader.

    .venv/bin/python benchmarks/load_run.py                      # 3,000 and 10,000 steps x 200 batches x 3 metrics
    .venv/bin/python benchmarks/load_run.py --steps 1000 --batches 50 --repeat 1

Writes each run once with the real wandb library (offline mode) under --data (default
~/.cache/experiment-analyzer-bench), then prints, per run: the decode time of ours and of the baseline
(`benchmarks/reference_reader.py`, the reader of /work/shared/research/wandb_offline.md Appendix A with its
minimal schema, measured in this same process), `keys=` decode, the cached reopen against a plain
`pd.read_parquet` of the same frame, peak memory of a full decode (in a fresh subprocess, as a multiple of the
decoded frame), and the time to list 1,000 run folders. CPU times are process CPU seconds (best of --repeat).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_READER_SCHEMA", "minimal")  # baseline: the faster of its two schemas

import pandas as pd  # noqa: E402

from analysis.sources import cache as run_cache  # noqa: E402
from analysis.sources import list_runs, open_run  # noqa: E402
from benchmarks import reference_reader  # noqa: E402

_T = TypeVar("_T")

_WRITER = r"""
import os, sys
import numpy as np
import wandb
steps, batches = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
run = wandb.init(project="bench", name=f"bench-{steps}x{batches}", dir=sys.argv[3], config={"batches": batches})
for s in range(steps):
    rec = rng.uniform(0.5, 1.0, batches); prec = rng.uniform(0.5, 1.0, batches)
    row = {"global_step": (s + 1) * 10}
    for b in range(batches):
        row[f"batch_{b}/recall"] = float(rec[b])
        row[f"batch_{b}/precision"] = float(prec[b])
        row[f"batch_{b}/hmean"] = float(2 * rec[b] * prec[b] / (rec[b] + prec[b]))
    if s % 50 == 0:
        row["problematic_batch_3"] = [f"data/batch_3/img_{s}_{k}.png" for k in range(4)]
    wandb.log(row)
run.finish()
"""

_PEAK = r"""
import gc, json, os, sys
os.environ["WANDB_READER_SCHEMA"] = "minimal"
import pandas as pd, numpy as np, pyarrow
from analysis.sources import open_run
from benchmarks import reference_reader  # noqa: E402
gc.collect()
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark (VmHWM) to the current RSS
    f.write("5")
if sys.argv[1] == "ours":
    h = open_run(sys.argv[2], cache=False).history
else:
    h = reference_reader.read_run(sys.argv[2]).history
print(json.dumps({"peak_mib": status("VmHWM:") - before, "frame_mib": h.memory_usage(deep=True).sum() / 2**20}))
"""


def write_big_run(data: Path, steps: int, batches: int) -> Path:
    from tests.wandb_writer import wandb_env

    parent = data / f"run-{steps}x{batches}"
    done = parent / "DONE"
    if done.exists():
        return Path(done.read_text())
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True)
    print(f"writing {steps} x {batches * 3} keys with wandb (once) ...", flush=True)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(steps), str(batches), str(parent)],
        env=wandb_env(parent),
        check=True,
        timeout=3600,
    )
    (run_dir,) = (parent / "wandb").glob("offline-run-*")
    done.write_text(str(run_dir))
    print(f"  written in {time.perf_counter() - t:.1f} s", flush=True)
    return run_dir


def cpu_best(fn: Callable[[], _T], repeat: int) -> tuple[float, _T]:
    """Best process CPU time of `repeat` calls (at least one), and the last call's result."""
    best = float("inf")
    for _ in range(max(0, repeat - 1)):
        t = time.process_time()
        fn()  # result dropped before the next call: two decoded frames never coexist
        best = min(best, time.process_time() - t)
    t = time.process_time()
    out = fn()
    return min(best, time.process_time() - t), out


def wall_best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak(kind: str, run_dir: Path) -> dict:
    out = subprocess.run(  # `python -c` in the checkout: `benchmarks` imports as a package
        [sys.executable, "-c", _PEAK, kind, str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def listing(data: Path, template: Path, n: int = 1000) -> float:
    """Time list_runs over n run folders, each holding a hard link to a real large run file (listing reads only
    the head and the tail of each file, so its size must not matter; links cost no disk space)."""
    wdir = data / f"listing-{n}" / "wandb"
    shutil.rmtree(wdir, ignore_errors=True)
    wdir.mkdir(parents=True)
    wfile = next(template.glob("*.wandb"))
    for i in range(n):
        rid = f"r{i:07d}"
        d = wdir / f"offline-run-20260101_{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{rid}"
        d.mkdir()
        os.link(wfile, d / f"run-{rid}.wandb")
    list_runs(wdir)  # warm the OS file cache
    t = time.perf_counter()
    refs = list_runs(wdir)
    dt = time.perf_counter() - t
    assert len(refs) == n
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[3000, 10000])
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path.home() / ".cache" / "experiment-analyzer-bench")
    ap.add_argument("--no-peak", action="store_true", help="skip the peak-memory subprocesses")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    os.environ["EXPERIMENT_ANALYZER_CACHE"] = str(cache_dir)
    rows = []
    try:
        for steps in args.steps:
            run_dir = write_big_run(args.data, steps, args.batches)
            size = next(run_dir.glob("*.wandb")).stat().st_size
            print(f"\n{steps} steps x {args.batches * 3} keys: {size / 1e6:.0f} MB .wandb", flush=True)
            t_ours, run = cpu_best(partial(open_run, run_dir, cache=False), args.repeat)
            shape = run.history.shape
            t_ref, ref = cpu_best(partial(reference_reader.read_run, run_dir), 1)
            assert len(ref.history) == shape[0] and ref.history.shape[1] == shape[1], (ref.history.shape, shape)
            del ref
            keys = ["batch_3/recall", "batch_3/precision", "batch_3/hmean"]
            t_keys, _ = cpu_best(partial(open_run, run_dir, keys=keys, cache=False), args.repeat)
            t_ref_keys, _ = cpu_best(partial(reference_reader.read_run, run_dir, keys=keys), 1)
            open_run(run_dir)  # fill the cache
            t_cached = wall_best(partial(open_run, run_dir), args.repeat + 1)
            pq = cache_dir / "plain.parquet"
            run.history.to_parquet(pq)
            t_pq = wall_best(partial(pd.read_parquet, pq), args.repeat + 1)
            del run
            row = {
                "steps": steps,
                "keys": shape[1],
                "MB": size / 1e6,
                "ours_s": t_ours,
                "reference_s": t_ref,
                "speedup": t_ref / t_ours,
                "keys3_s": t_keys,
                "ref_keys3_s": t_ref_keys,
                "cached_s": t_cached,
                "read_parquet_s": t_pq,
                "cached/parquet": t_cached / t_pq,
            }
            if not args.no_peak:
                mine = peak("ours", run_dir)
                theirs = peak("reference", run_dir)
                row.update(
                    frame_mib=mine["frame_mib"],
                    peak_mib=mine["peak_mib"],
                    peak_x_frame=mine["peak_mib"] / mine["frame_mib"],
                    ref_peak_mib=theirs["peak_mib"],
                )
            rows.append(row)
            for k, v in row.items():
                print(f"  {k:>15}: {v:.3f}" if isinstance(v, float) else f"  {k:>15}: {v}", flush=True)
        small = next(iter((args.data / f"run-{args.steps[0]}x{args.batches}" / "wandb").glob("offline-run-*")))
        t_list = listing(args.data, small)
        print(f"\nlist_runs over 1,000 run folders: {t_list:.3f} s wall")
        print(
            "\n| steps | keys | .wandb MB | ours CPU s | reference CPU s | speed-up | keys=3 s | ref keys=3 s | "
            "cached reopen s | read_parquet s | cached/parquet | peak MiB (x frame) | ref peak MiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            pk = f"{r['peak_mib']:.0f} ({r['peak_x_frame']:.1f}x of {r['frame_mib']:.0f})" if "peak_mib" in r else "-"
            print(
                f"| {r['steps']} | {r['keys']} | {r['MB']:.0f} | {r['ours_s']:.2f} | {r['reference_s']:.2f} | "
                f"{r['speedup']:.1f}x | {r['keys3_s']:.2f} | {r['ref_keys3_s']:.2f} | {r['cached_s']:.3f} | "
                f"{r['read_parquet_s']:.3f} | {r['cached/parquet']:.2f} | {pk} | {r.get('ref_peak_mib', 0):.0f} |"
            )
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
        run_cache.CACHE_ROOT_OVERRIDE = None


if __name__ == "__main__":
    main()
