"""Every wandb UI chart export shape read: x-axis, runs, columns before / after, per file (issue 16, item 1).

    python -m benchmarks.export_shapes [FILE_OR_DIR ...]

Without arguments: the exports in benchmarks/data/exports/ and benchmarks/data/curves/ (see their PROVENANCE.md).
Give folders or files to measure exports that cannot be redistributed where they are. For each export it prints
the x-axis column, the number of runs, the header's column count, the columns kept per run (min-max over the
runs), the `__MIN`/`__MAX` columns dropped, what `_step` counts, and the read time of every run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from analysis.core.errors import AnalyzerError
from analysis.sources import open_run
from analysis.sources.tabular import export_runs

DATA = Path(__file__).resolve().parent / "data"


def export_files(args: list[str]) -> list[Path]:
    roots = [Path(a) for a in args] or [DATA / "exports", DATA / "curves"]
    files: list[Path] = []
    for root in roots:
        files += sorted(root.rglob("*.csv")) if root.is_dir() else [root]
    return [f for f in files if export_runs(f)]


def shape(path: Path) -> dict[str, object]:
    runs = export_runs(path)
    header = pd.read_csv(path, nrows=0).columns
    kept, axes, rows = [], set(), []
    t0 = time.perf_counter()
    for name in runs:
        run = open_run(f"{path}#{name}")
        kept.append(len(run.history.columns))
        axes.add(run.step_axis)
        rows.append(len(run.history))
    seconds = time.perf_counter() - t0
    companions = sum(str(c).endswith(("__MIN", "__MAX")) for c in header)
    return {
        "file": path.name,
        "x-axis": header[0],
        "runs": len(runs),
        "columns before": len(header),
        "__MIN/__MAX dropped": companions,
        "columns per run after": f"{min(kept)}-{max(kept)}" if min(kept) != max(kept) else str(kept[0]),
        "_step counts": ", ".join(sorted(axes)),
        "rows per run": f"{min(rows)}-{max(rows)}",
        "read all runs (s)": round(seconds, 3),
    }


def main(argv: list[str]) -> int:
    table = []
    for path in export_files(argv):
        try:
            table.append(shape(path))
        except AnalyzerError as exc:
            table.append({"file": path.name, "x-axis": f"error: {exc}"})
    if not table:
        print("no wandb UI exports found")
        return 1
    print(pd.DataFrame(table).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
