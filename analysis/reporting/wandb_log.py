"""Write an analysis back into wandb: one run with `job_type="analysis"` beside the run it analysed.

The analysis run carries the events and problematic batches as `wandb.Table`s, the self-contained HTML report
as a run file and as an artifact of type "report", and the verdict as summary fields (`verdict`,
`worst_severity`, `n_events`, `problematic_batches`, ...). It is linked to the analysed run by its config
(`analysed_run`: id, name, project, entity, location) and its tags (`analysis`, `analysed:<run id>`), so the
wandb UI can filter one run's analyses.

Where it goes follows wandb's own settings: `WANDB_MODE` (offline unless the environment says otherwise, so no
network is touched by default; `wandb sync <run dir>` uploads it later) and `WANDB_DIR` (else `wandb_dir`, the
CLI's output directory). The run is created with `reinit="create_new"` and logged through its own handle, so
an active training run of the same process (a notebook) is not touched, and wandb does not wrap the console.

A long-lived caller (the dashboard) passes `timeout`: wandb's client waits without limit when its service does not
answer (connecting to it, and `finish`), and a page must not spin for good. It also calls
`forget_inherited_wandb_service()` before it logs: wandb hands its service to child processes through `WANDB_SERVICE`,
and a server launched from a process that used wandb would otherwise log through that process's service, which
hangs every log once that service stops answering.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.core.errors import AnalyzerError
from analysis.reporting.document import ReportData

if TYPE_CHECKING:  # pragma: no cover
    from analysis.findings.pipeline import RunAnalysis

__all__ = [
    "EVENTS_TABLE",
    "EVENT_COLUMNS",
    "PROBLEM_BATCHES_TABLE",
    "PROBLEM_BATCH_COLUMNS",
    "REPORT_FILE_NAME",
    "LoggedAnalysis",
    "analysis_config",
    "analysis_summary",
    "forget_inherited_wandb_service",
    "log_analysis_to_wandb",
]

DEFAULT_PROJECT = "experiment-analyzer"  # when the analysed run names none (a CSV export)
REPORT_FILE_NAME = "analysis_report.html"
EVENTS_TABLE = "tables/events"
PROBLEM_BATCHES_TABLE = "tables/problematic_batches"
EVENT_COLUMNS = [
    "batch",
    "metric",
    "kind",
    "severity",
    "start_step",
    "end_step",
    "value_before",
    "value_after",
    "magnitude",
    "message",
]
PROBLEM_BATCH_COLUMNS = [
    "batch",
    "severity",
    "metric",
    "first_bad_step",
    "worst_step",
    "worst_value",
    "last_value",
    "n_events",
    "n_anomalies",
    "n_problem_images",
    "root_causes",
]


@dataclass(frozen=True)
class LoggedAnalysis:
    """Where an analysis run went: its id, folder (offline) or URL (online), and the project it is in."""

    run_id: str
    run_dir: Path | None  # the run folder wandb wrote (offline-run-... / run-...)
    project: str
    mode: str  # "offline" or "online"
    url: str | None = None

    def describe(self) -> str:
        """One line for the CLI and the dashboard."""
        if self.mode == "offline":
            return (
                f"analysis run {self.run_id} written offline to {self.run_dir} "
                f"(project {self.project}; upload it with: wandb sync {self.run_dir})"
            )
        return f"analysis run {self.run_id} logged to {self.url or self.project}"


def analysis_config(report: ReportData) -> dict[str, Any]:
    """The analysis run's config: the analysed run's identity (the link) and the analyzer config used."""
    run = report.run
    return {
        "analysed_run": {
            "id": str(run.get("id") or ""),
            "name": str(run.get("name") or ""),
            "project": str(run.get("project") or ""),
            "entity": str(run.get("entity") or ""),
            "source": str(run.get("source") or ""),
            "location": str(run.get("locator") or ""),
        },
        "analyzer_config": report.config,
        "report_schema_version": report.schema_version,
    }


def analysis_summary(report: ReportData) -> dict[str, Any]:
    """The verdict fields of the analysis run's summary (plain JSON values)."""
    s = report.summary
    batches = [int(b["batch"]) for b in report.problematic_batches if b.get("batch") is not None]
    return {
        "verdict": str(s.get("verdict", "")),
        "worst_severity": report.severity,
        "n_events": int(s.get("n_events", 0) or 0),
        "n_problematic_batches": len(batches),
        "problematic_batches": batches,
        "n_anomalies": int(s.get("n_anomalies", 0) or 0),
        "n_change_points": int(s.get("n_change_points", 0) or 0),
        "n_root_causes": int(s.get("n_root_causes", 0) or 0),
        "analysed_run_id": str(report.run.get("id") or ""),
    }


def _cell(v: Any) -> Any:
    """A table cell: numbers and text as they are, non-finite strings ("NaN") kept as text, lists joined."""
    if isinstance(v, list | tuple):
        return "; ".join(str(x) for x in v)
    return v


def _rows(records: list[dict[str, Any]], columns: list[str]) -> list[list[Any]]:
    return [[_cell(r.get(c)) for c in columns] for r in records]


def _artifact_name(run_id: str) -> str:
    """wandb artifact names allow letters, digits, '-', '_' and '.' only."""
    return "analysis-report-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run")


def _import_wandb() -> Any:
    try:
        import wandb
    except Exception as exc:  # not installed, or broken (a failing import of a dependency)
        raise AnalyzerError(
            f"logging to wandb needs the wandb package, which cannot be imported ({type(exc).__name__}: {exc}); "
            "install it with: pip install wandb"
        ) from None
    return wandb


WANDB_SERVICE_VAR = "WANDB_SERVICE"  # wandb's token of a running service, "<version>-<parent pid>-<kind>-<address>"


def forget_inherited_wandb_service() -> bool:
    """Drop a `WANDB_SERVICE` token that this process did not create (inherited from the process that started it),
    so wandb starts a service of its own when this process logs. True when one was dropped."""
    token = os.environ.get(WANDB_SERVICE_VAR)
    if not token:
        return False
    parts = token.split("-", 2)
    if len(parts) >= 2 and parts[1] == str(os.getpid()):
        return False  # this process's own service (wandb saves its token for child processes)
    del os.environ[WANDB_SERVICE_VAR]
    return True


def log_analysis_to_wandb(
    analysis: RunAnalysis | ReportData,
    *,
    project: str | None = None,
    entity: str | None = None,
    wandb_dir: str | Path | None = None,
    html: str | None = None,
    timeout: float | None = None,
) -> LoggedAnalysis:
    """Create the analysis run of `analysis` (a `RunAnalysis` or a built `Report`), log it, finish it.

    `project` defaults to the analysed run's project; `entity` to the analysed run's entity for cloud runs.
    `wandb_dir` is where wandb writes the run folder (`<wandb_dir>/wandb/...`) unless `WANDB_DIR` is set.
    `html` is the HTML report text when it was rendered already. `timeout`: seconds to wait for wandb before giving
    up with an error (wandb's own work goes on in a background thread); None waits as long as wandb does. Any
    failure is an `AnalyzerError`.
    """
    if timeout is None:
        return _log_analysis(analysis, project, entity, wandb_dir, html)
    outcome: list[LoggedAnalysis | BaseException] = []

    def work() -> None:
        try:
            outcome.append(_log_analysis(analysis, project, entity, wandb_dir, html))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)

    worker = threading.Thread(target=work, name="wandb-log", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise AnalyzerError(
            f"wandb did not finish within {timeout:.0f} s: its service is not answering (the analysis run may "
            "still appear in the wandb folder later). Restart the dashboard, which then starts a new wandb "
            "service, or log from the command line: python analyze_experiment.py --run-name NAME --log-to-wandb"
        )
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _log_analysis(
    analysis: RunAnalysis | ReportData,
    project: str | None,
    entity: str | None,
    wandb_dir: str | Path | None,
    html: str | None,
) -> LoggedAnalysis:
    if isinstance(analysis, ReportData):
        report = analysis
    else:
        from analysis.reporting.model import Report

        report = Report.from_analysis(analysis)
    mode = (os.environ.get("WANDB_MODE") or "offline").strip().lower()
    if mode == "disabled":
        raise AnalyzerError("WANDB_MODE=disabled: nothing can be logged to wandb (unset it, or set it to offline)")
    if mode == "dryrun":
        mode = "offline"
    if html is None:
        from analysis.reporting.html import render_html

        html = render_html(report)
    wandb = _import_wandb()
    run_info = report.run
    run_id = str(run_info.get("id") or report.run_name)
    project = project or str(run_info.get("project") or "") or DEFAULT_PROJECT
    if entity is None and run_info.get("source") == "cloud":
        entity = str(run_info.get("entity") or "") or None
    target_dir: Path | None = None
    if not os.environ.get("WANDB_DIR") and wandb_dir is not None:
        target_dir = Path(wandb_dir).expanduser()
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AnalyzerError(f"cannot create the wandb directory {target_dir}: {exc.strerror or exc}") from None
    settings = wandb.Settings(
        console="off",  # never wrap the caller's stdout/stderr (the CLI's output, a Streamlit server)
        silent=True,
        disable_git=True,
        save_code=False,
        disable_job_creation=True,
        x_disable_stats=True,
        x_disable_machine_info=True,
    )
    try:
        run = wandb.init(
            project=project,
            entity=entity,
            dir=str(target_dir) if target_dir is not None else None,
            name=f"analysis of {report.run_name}"[:128],
            job_type="analysis",
            config=analysis_config(report),
            tags=["analysis", f"analysed:{run_id}"[:64]],
            mode=mode,
            reinit="create_new",
            settings=settings,
        )
    except Exception as exc:  # wandb raises its own error types (UsageError, CommError, ...) and plain ones
        raise AnalyzerError(
            f"wandb.init failed ({mode} mode): {' '.join(str(exc).split()) or type(exc).__name__}"
        ) from None
    try:
        _log_contents(wandb, run, report, html, run_id)
        result = LoggedAnalysis(
            run_id=str(run.id),
            run_dir=Path(run.dir).parent if run.dir else None,
            project=str(run.project or project),
            mode=mode,
            url=None if mode == "offline" else (run.url or None),
        )
        run.finish()
    except Exception as exc:
        with contextlib.suppress(Exception):  # the run may be unusable; the first error is the one to report
            run.finish(exit_code=1)
        if isinstance(exc, AnalyzerError):
            raise
        raise AnalyzerError(f"logging the analysis to wandb failed: {type(exc).__name__}: {exc}") from None
    return result


def _log_contents(wandb: Any, run: Any, report: ReportData, html: str, run_id: str) -> None:
    """Tables, the HTML report (run file + artifact) and the summary verdict fields."""
    run.log(  # under tables/: the summary's own `problematic_batches` (a list of batch numbers) stays distinct
        {
            EVENTS_TABLE: wandb.Table(columns=EVENT_COLUMNS, data=_rows(report.events, EVENT_COLUMNS)),
            PROBLEM_BATCHES_TABLE: wandb.Table(
                columns=PROBLEM_BATCH_COLUMNS, data=_rows(report.problematic_batches, PROBLEM_BATCH_COLUMNS)
            ),
        }
    )
    data = html.encode("utf-8", errors="replace")
    # written straight into the run's files folder: wandb uploads it with the run (no symlink, no warning)
    files_dir = Path(run.dir)
    (files_dir / REPORT_FILE_NAME).write_bytes(data)
    run.save(str(files_dir / REPORT_FILE_NAME), base_path=str(files_dir), policy="end")
    artifact = wandb.Artifact(
        _artifact_name(run_id),
        type="report",
        description=f"experiment-analyzer report of run {run_id}",
        metadata={"analysed_run": run_id, "verdict": str(report.summary.get("verdict", ""))},
    )
    # add_file copies it into wandb's staging area ("mutable" policy), so the artifact keeps this version
    artifact.add_file(str(files_dir / REPORT_FILE_NAME), name=REPORT_FILE_NAME)
    run.log_artifact(artifact, aliases=["latest"])
    run.summary.update(analysis_summary(report))
