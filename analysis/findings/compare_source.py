"""What `--baseline` (and the dashboard's baseline picker) may name: a baseline file, a run folder or `.wandb`
file, a history export (`export.csv`, `export.csv#run`), or a run name / id in a wandb directory."""

from __future__ import annotations

from pathlib import Path

from analysis.core.errors import AnalyzerError
from analysis.core.run import Run
from analysis.findings.baseline_file import is_baseline_file, load_baseline
from analysis.findings.compare import RunSide

__all__ = ["HISTORY_SUFFIXES", "open_baseline"]

HISTORY_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json", ".pq", ".ndjson")


def open_baseline(value: str, wandb_dir: Path | None) -> Run | RunSide:
    """The run or baseline file `value` names; typed errors (RunNotFound, AmbiguousRun, ...) otherwise."""
    from analysis.sources import find_run, open_run

    text = value.strip()
    if not text:
        raise AnalyzerError("--baseline is empty: give a run name or id, a run folder, a history export or a file")
    path = Path(text).expanduser()
    if is_baseline_file(path):
        return load_baseline(path)
    if (path.is_dir() and (path / "files").is_dir()) or (path.suffix == ".wandb" and path.is_file()):
        return open_run(path)
    file_part = Path(text.split("#", 1)[0]).expanduser()
    if file_part.suffix.lower() in HISTORY_SUFFIXES:
        if not file_part.is_file():
            raise AnalyzerError(f"baseline file not found: {file_part}")
        return open_run(text if "#" in text else file_part)
    if wandb_dir is None or not wandb_dir.is_dir():
        raise AnalyzerError(
            f"baseline {text!r} is not a file or run folder, and there is no wandb directory to look it up in "
            "(pass --wandb-dir)"
        )
    return open_run(find_run(wandb_dir, text))
