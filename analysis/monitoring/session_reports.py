"""Reports at the end of a monitor session (`reporting.auto_generate_reports`).

The monitor keeps only a bounded window of each metric, so it cannot write a full report from what it saw. What
it can do honestly is remember the wandb run that was active while it monitored (its local folder), and when the
monitor is closed after that run finished (`run.finish()`, so its history is complete on disk), analyse that run
like the CLI does and write the Markdown / JSON / HTML reports. A run still active at `close()` is not analysed
(its history may lack the last steps): the monitor logs a warning saying how to get the reports instead.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from analysis.core.config import AnalyzerConfig

__all__ = ["SessionRun", "active_wandb_run", "write_session_reports"]

log = logging.getLogger(__name__)


class SessionRun:
    """The wandb run a monitor watched: its object (to tell whether it is still active) and its local folder."""

    __slots__ = ("folder", "run_id")

    def __init__(self, folder: Path, run_id: str | None) -> None:
        self.folder = folder
        self.run_id = run_id

    def is_active(self) -> bool:
        """True while the same run is still `wandb.run` (not finished yet)."""
        current = active_wandb_run()
        return current is not None and current.folder == self.folder


def active_wandb_run() -> SessionRun | None:
    """The active wandb run's local folder, without importing wandb (None when wandb is unused or no run is
    active, or the run keeps no local files)."""
    wandb = sys.modules.get("wandb")
    run: Any = getattr(wandb, "run", None) if wandb is not None else None
    files_dir = getattr(run, "dir", None) if run is not None else None
    if not isinstance(files_dir, str) or not files_dir:
        return None
    folder = Path(files_dir).parent  # run.dir is <run folder>/files
    run_id = getattr(run, "id", None)
    return SessionRun(folder, run_id if isinstance(run_id, str) else None)


def write_session_reports(session: SessionRun, config: AnalyzerConfig, output_dir: Path) -> dict[str, Path]:
    """Analyse the finished run of a monitor session and write its reports (`reporting.report_formats`) to
    `output_dir`; returns {format: path}. Empty (with a log line) when the run is still active or unreadable."""
    if session.is_active():
        log.warning(
            "TrainingMonitor.close: reports not written because the wandb run %s is still active (its history may "
            "lack the last steps). Call run.finish() before monitor.close(), run `experiment-analyzer --run-name %s` "
            "afterwards, or set experiment_monitoring.reporting.auto_generate_reports: false.",
            session.run_id or session.folder.name,
            session.folder,
        )
        return {}
    # late: the analysis and the reports import pandas and plotly; the monitor itself stays quick to import
    from analysis.core.errors import AnalyzerError
    from analysis.findings.pipeline import analyze_run
    from analysis.reporting.report import Report, write_reports
    from analysis.sources import open_run

    formats = config.experiment_monitoring.reporting.report_formats
    try:
        analysis = analyze_run(open_run(session.folder), config)
        report = Report.from_analysis(analysis, charts="html" in formats)
        paths = write_reports(report, output_dir, formats)
    except AnalyzerError as exc:
        log.error("TrainingMonitor.close: reports of %s not written: %s", session.folder, exc)
        return {}
    log.info("TrainingMonitor.close: reports written: %s", ", ".join(str(p) for p in paths.values()))
    return paths
