"""User-facing alarms on real curves: the warnings and criticals a user is shown, through the whole pipeline.

Usage:  .venv/bin/python -m benchmarks.alarms [--split test] [--batch 12] [--monitor] [--code DIR ...]

`benchmarks.real_curves` scores where change points fall; this scores what the dashboard, the CLI and the reports
raise. Each labelled file of `benchmarks/data/curves` is opened as a history table (`analysis.sources.open_table`)
and analysed with the default config (`analysis.findings.pipeline.analyze_run`); an event of a labelled column that
is a warning or a critical is an alarm. Per split (and per batch of the chosen ones):
- alarms / healthy series: alarms on the series labelled with no change point (a person saw nothing to report);
- healthy series with any alarm (their share);
- labelled falls alarmed: labels of a `collapse`, or of a level shift the bad way for a metric whose name gives its
  direction (`vocabulary.known_direction` of this checkout, the same for every code measured), `low` confidence
  left out, with an alarm starting within the benchmark's tolerance (max(5 points, 2 % of n)) of the label.
A series that some code measured does not read with its labelled points one row each (a multi-run wandb export
needs a run name; a table whose training and evaluation rows of one step are merged) is left out for every code,
so each row of a group scores the same series.

`--monitor` measures the live `TrainingMonitor` instead (`experiment_analyzer.TrainingMonitor`, default config, no
alert sinks): each file's rows are replayed through one monitor in step order, as a training loop would call
`log_step`, and the warning and critical anomalies it returns are grouped per metric into episodes (consecutive
flagged observations; an episode ends at the first observation that is not flagged). An episode is one alarm (what
a throttled alert channel would carry); a labelled fall is alarmed when an episode overlaps its tolerance window.
The table adds the share of a healthy series' observations that were flagged (how often a training loop is told
something is wrong when nothing is).

`--code DIR` also measures the `analysis` package of another checkout (a `git worktree` of an older commit) on the
same files in the same run, in a subprocess started in DIR; the labels and the scoring stay this checkout's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from analysis.core.vocabulary import known_direction

DATA = Path(__file__).parent / "data" / "curves"

# Run in a subprocess (cwd = the checkout measured): file paths on stdin, one JSON line of events per file out.
_READER = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from analysis.sources import open_table
from analysis.findings.pipeline import analyze_run
for line in sys.stdin:
    path = line.strip()
    try:
        run = open_table(path)
        a = analyze_run(run)
        steps = [int(s) for s in run.history["_step"]]
        cols = {c: [i for i, v in enumerate(run.history[c].tolist()) if v == v] for c in run.history.columns
                if c != "_step" and str(run.history[c].dtype) in ("float64", "int64")}
        events = [[list(e.metrics), int(e.start_step)] for e in a.alarm_events]
        print(json.dumps({"path": path, "steps": steps, "rows": cols, "alarms": events}), flush=True)
    except Exception as exc:  # a multi-run export needs a run name: counted as left out
        print(json.dumps({"path": path, "error": type(exc).__name__}), flush=True)
"""

# The same output from the live monitor: each file's rows replayed through one TrainingMonitor; alarms are episodes
# [metrics, first step, last step] of consecutive warning/critical observations of one metric, plus per column the
# number of flagged observations.
_MONITOR_READER = """
import json, logging, math, sys, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
from analysis.sources import open_table
from experiment_analyzer import TrainingMonitor
for line in sys.stdin:
    path = line.strip()
    try:
        run = open_table(path)
        h = run.history
        steps = [int(s) for s in h["_step"]]
        numeric = [c for c in h.columns if c != "_step" and str(h[c].dtype) in ("float64", "int64")]
        cols = {c: [i for i, v in enumerate(h[c].tolist()) if v == v] for c in numeric}
        mon = TrainingMonitor(sinks=[])
        open_ep, episodes, flagged = {}, [], {c: 0 for c in numeric}
        values = {c: h[c].tolist() for c in numeric}
        for r, step in enumerate(steps):
            row = {c: values[c][r] for c in numeric if values[c][r] == values[c][r]}
            if not row:
                continue
            found = mon.log_step(step, row)
            bad = {a.metric for a in found if str(getattr(a.severity, "value", a.severity)) in ("warning", "critical")}
            for c in row:
                if c in bad:
                    flagged[c] += 1
                    if c in open_ep:
                        open_ep[c][2] = step
                    else:
                        open_ep[c] = [[c], step, step]
                elif c in open_ep:
                    episodes.append(open_ep.pop(c))
        episodes += list(open_ep.values())
        print(json.dumps({"path": path, "steps": steps, "rows": cols, "alarms": episodes, "flagged": flagged}),
              flush=True)
    except Exception as exc:
        print(json.dumps({"path": path, "error": type(exc).__name__}), flush=True)
"""


def read_alarms(paths: list[Path], code: Path, monitor: bool = False) -> dict[str, dict]:
    """{path: {steps, rows (per column: the rows holding a value), alarms ([metrics, start step(, end step)])}} from
    the `analysis` package of the checkout `code`: the offline analysis, or the live monitor (`monitor`)."""
    proc = subprocess.run(
        [sys.executable, "-c", _MONITOR_READER if monitor else _READER],
        input="\n".join(str(p) for p in paths),
        capture_output=True,
        text=True,
        cwd=code,
        check=True,
    )
    return {d["path"]: d for d in map(json.loads, proc.stdout.splitlines())}


def _fall(kind: str, column: str) -> bool:
    """A label that is a fall the bad way (a collapse, or a level shift against the metric's known direction)."""
    if kind == "collapse":
        return True
    direction = known_direction(column)
    return (kind, direction) in (("level_shift_down", "higher_is_better"), ("level_shift_up", "lower_is_better"))


def readable(s: dict, read: dict[str, dict]) -> bool:
    """The series was read with its labelled points, one row each (the labels' indices then hold): not so for a
    multi-run export, or a table whose rows the reader merged (a training and an evaluation row of one step)."""
    d = read.get(str(DATA / s["file"]))
    return d is not None and "error" not in d and len(d["rows"].get(s["column"], [])) == s["n_points"]


def score(series: list[dict], read: dict[str, dict]) -> Counter:
    """Counts for one group of labelled series (see the module doc), all `readable`."""
    out: Counter = Counter()
    for s in series:
        d = read[str(DATA / s["file"])]
        rows, steps = d["rows"][s["column"]], d["steps"]
        alarms = [(a[1], a[-1]) for a in d["alarms"] if s["column"] in a[0]]  # (first, last step)
        if s["healthy"]:
            out["healthy"] += 1
            out["healthy alarms"] += len(alarms)
            out["healthy with alarm"] += bool(alarms)
            out["healthy points"] += len(rows)
            out["healthy flagged"] += d.get("flagged", {}).get(s["column"], 0)
            continue
        out["with changes"] += 1
        out["alarms on them"] += len(alarms)
        tol = max(5, int(0.02 * len(rows)))
        for cp in s["change_points"]:
            if cp["confidence"] == "low" or not _fall(cp["kind"], s["column"]):
                continue
            i = cp["index"]
            lo, hi = steps[rows[max(0, i - tol)]], steps[rows[min(len(rows) - 1, i + tol)]]
            out["falls"] += 1
            out["falls alarmed"] += any(a <= hi and b >= lo for a, b in alarms)
    return out


def table(groups: dict[str, list[dict]], reads: dict[str, dict[str, dict]], monitor: bool = False) -> str:
    """One row per group and code; with `monitor`, a column of the healthy series' flagged observations."""
    flagged_head, flagged_rule = (" healthy observations flagged |", "---|") if monitor else ("", "")
    lines = [
        "| series | code | alarms / healthy series | healthy series with an alarm |"
        f"{flagged_head} alarms / series with changes | labelled falls alarmed | left out |",
        f"|---|---|---|---|{flagged_rule}---|---|---|",
    ]
    for name, series in groups.items():
        common = [s for s in series if all(readable(s, read) for read in reads.values())]
        for code, read in reads.items():
            c = score(common, read)
            c["left out"] = len(series) - len(common)
            h, w = max(c["healthy"], 1), max(c["with changes"], 1)
            flagged = f" {c['healthy flagged'] / max(c['healthy points'], 1):.1%} |" if monitor else ""
            lines.append(
                f"| {name} | {code} | {c['healthy alarms'] / h:.2f} ({c['healthy alarms']} on {c['healthy']}) "
                f"| {c['healthy with alarm'] / h:.0%} |{flagged} {c['alarms on them'] / w:.2f} "
                f"| {c['falls alarmed']} of {c['falls']} | {c['left out']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("tune", "test", "both"), default="both")
    ap.add_argument("--batch", default="", help="comma-separated labelling rounds (default: all)")
    ap.add_argument("--code", action="append", default=[], help="another checkout to measure in the same run")
    ap.add_argument("--monitor", action="store_true", help="measure the live TrainingMonitor, not the analysis")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    batches = {int(b) for b in args.batch.split(",") if b.strip()}
    labels = json.loads((DATA / "labels.json").read_text())["series"]
    chosen = [
        s
        for s in labels
        if (args.split == "both" or s["split"] == args.split) and (not batches or s.get("batch", 1) in batches)
    ]
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in chosen:
        groups[s["split"]].append(s)
        if batches:
            groups[f"{s['split']}, batch {s.get('batch', 1)}"].append(s)
    paths = sorted({DATA / s["file"] for s in chosen})
    root = Path(__file__).resolve().parents[1]
    reads = {"this checkout": read_alarms(paths, root, args.monitor)}
    for other in args.code:
        reads[other] = read_alarms(paths, Path(other).resolve(), args.monitor)
    what = "the live TrainingMonitor" if args.monitor else "the analysis"
    print(f"{len(chosen)} labelled series in {len(paths)} files; alarms of {what}\n")
    print(table(dict(sorted(groups.items())), reads, args.monitor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
