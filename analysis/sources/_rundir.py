"""Run folders on disk: recognising them, their `.wandb` file, and the state a run is in.

A run folder is `<wandb dir>/offline-run-YYYYMMDD_HHMMSS-<id>/` (or `run-...` for synced runs) holding
`run-<id>.wandb`, the transaction log with everything: identity, config, history, summary, exit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from analysis.core.errors import RunNotFound
from analysis.core.run import RunState

__all__ = ["STALE_AFTER_S", "is_run_dir", "resolve", "run_dirs", "run_state", "wandb_file"]

STALE_AFTER_S = 600.0  # no exit record and not grown for 10 minutes -> crashed, as wandb's UI decides it
CRASH_EXIT_CODE = 254  # what wandb records for a run whose process died (killed, OOM) before a clean exit


def is_run_dir(path: Path) -> bool:
    """Whether `path` is named and shaped like a wandb run folder (symlinks are not followed)."""
    name = path.name
    return (name.startswith("offline-run-") or name.startswith("run-")) and path.is_dir() and not path.is_symlink()


def wandb_file(run_dir: Path) -> Path:
    """The `run-<id>.wandb` file of a run folder (RunNotFound when the folder has none)."""
    found = sorted(run_dir.glob("*.wandb"))
    files = [p for p in found if p.is_file()]  # a FIFO or device would block or never end: regular files only
    if not files:
        odd = f" ({found[0].name} is not a regular file)" if found else ""
        raise RunNotFound(f"{run_dir}: this folder holds no .wandb run file{odd}")
    return files[0]


def run_dirs(wandb_dir: Path) -> list[Path]:
    """Run folders under a wandb dir. Accepts the `wandb/` folder, its parent, or a single run folder."""
    wandb_dir = Path(wandb_dir)
    if not wandb_dir.is_dir():
        return []
    if is_run_dir(wandb_dir) and any(wandb_dir.glob("*.wandb")):
        return [wandb_dir]
    found = [p for p in wandb_dir.iterdir() if is_run_dir(p)]
    if not found and (wandb_dir / "wandb").is_dir():
        found = [p for p in (wandb_dir / "wandb").iterdir() if is_run_dir(p)]
    return found


def resolve(location: str | os.PathLike) -> tuple[Path, Path]:
    """(run folder, .wandb file) for a run folder or a .wandb file path."""
    p = Path(location).expanduser().resolve()
    if p.is_dir():
        return p, wandb_file(p)
    if p.is_file():
        return p.parent, p
    raise RunNotFound(f"{p}: no such run folder or .wandb file")


def run_state(exit_code: int | None, mtime: float, now: float | None = None) -> RunState:
    """finished / failed from the exit code; without one, running until the file is STALE_AFTER_S old, then
    crashed."""
    if exit_code is not None:
        return "finished" if exit_code == 0 else "crashed" if exit_code == CRASH_EXIT_CODE else "failed"
    age = (now if now is not None else time.time()) - mtime
    return "running" if age < STALE_AFTER_S else "crashed"
