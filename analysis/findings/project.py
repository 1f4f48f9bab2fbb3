"""Many runs into one table: every run of a wandb directory (a project or a sweep) analysed, one row each.

Runs are analysed in parallel processes (`workers`), or on a Dask cluster at `scheduler` (an address such as
`tcp://127.0.0.1:8786`; the image audit's engine). A run that cannot be read or analysed is a row with its error,
never the end of the job. With a baseline, each row also says whether the run regressed against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from typing import Any

import pandas as pd

from analysis.core.config import AnalyzerConfig
from analysis.core.errors import AnalyzerError
from analysis.core.processes import spawn_pool
from analysis.core.run import RunRef
from analysis.findings.compare_model import CompareConfig, RunSide

__all__ = ["PROJECT_COLUMNS", "analyse_one", "project_table"]

PROJECT_COLUMNS = [
    "run",
    "run_id",
    "state",
    "verdict",
    "severity",
    "worst_batch",
    "first_bad_step",
    "regression",
    "regressed_batches",
    "error",
]


def _first_bad_step(summary: pd.DataFrame) -> int | None:
    if summary.empty or "first_bad_step" not in summary:
        return None
    bad = summary.loc[summary["severity"] != "ok", "first_bad_step"]
    bad = pd.to_numeric(bad, errors="coerce")
    bad = bad[bad >= 0]
    return int(bad.min()) if len(bad) else None


def analyse_one(
    ref: RunRef, config_json: str, baseline: RunSide | None, compare: CompareConfig | None
) -> dict[str, Any]:
    """One row of the table (module level: it runs in a worker process)."""
    from analysis.findings.compare import compare_runs
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run

    row: dict[str, Any] = dict.fromkeys(PROJECT_COLUMNS)
    row.update(run=ref.name or ref.run_id, run_id=ref.run_id, state=ref.state)
    try:
        config = AnalyzerConfig.model_validate_json(config_json)
        analysis = analyze_run(open_run(ref), config)
        bad = analysis.problematic_batches
        row.update(
            verdict=analysis.verdict,
            severity=str(analysis.worst_severity),
            worst_batch=bad[0] if bad else None,
            first_bad_step=_first_bad_step(analysis.batch_summary),
        )
        if baseline is not None:
            comparison = compare_runs(baseline, analysis, compare or CompareConfig(analyzer=config))
            row.update(
                regression=comparison.has_regression,
                regressed_batches=",".join(map(str, comparison.regressed_batches)),
            )
    except AnalyzerError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # one broken run is a row, not the end of the job
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _local(jobs: list[tuple], workers: int, done: Callable[[int, dict[str, Any]], None]) -> None:
    if workers <= 1:
        for i, job in enumerate(jobs):
            done(i, analyse_one(*job))
        return
    with spawn_pool(workers) as ex:
        futs = {ex.submit(analyse_one, *job): i for i, job in enumerate(jobs)}
        for fut in as_completed(futs):
            done(futs[fut], fut.result())


def _dask(jobs: list[tuple], scheduler: str, done: Callable[[int, dict[str, Any]], None]) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:  # pragma: no cover - dask[distributed] is an optional dependency
        raise AnalyzerError("--scheduler needs the 'dask[distributed]' package") from None
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as exc:
        raise AnalyzerError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from None
    try:
        futs = [client.submit(analyse_one, *job, pure=False) for job in jobs]
        where = {f.key: i for i, f in enumerate(futs)}
        for fut in dask_completed(futs):
            done(where[fut.key], fut.result())
    finally:
        client.close()


def project_table(
    runs: Sequence[RunRef],
    config: AnalyzerConfig | None = None,
    *,
    baseline: RunSide | None = None,
    compare: CompareConfig | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per run (PROJECT_COLUMNS, in the order of `runs`); `progress(done, total)` after each run."""
    config_json = (config or AnalyzerConfig()).model_dump_json()
    jobs = [(ref, config_json, baseline, compare) for ref in runs]
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    finished = 0

    def done(i: int, row: dict[str, Any]) -> None:
        nonlocal finished
        rows[i] = row
        finished += 1
        if progress is not None:
            progress(finished, len(jobs))

    if scheduler:
        _dask(jobs, scheduler, done)
    else:
        _local(jobs, max(1, workers), done)
    table = pd.DataFrame([r for r in rows if r is not None], columns=PROJECT_COLUMNS)
    return table.astype({"worst_batch": "Int64", "first_bad_step": "Int64"})
