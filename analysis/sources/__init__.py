"""Where runs come from: local wandb run folders, wandb cloud, and CSV / Parquet / JSONL history exports.

Public entry points (stable; see DESIGN.md):

- `list_runs(wandb_dir) -> list[RunRef]`: run folders under a wandb dir, newest first, no history read.
- `find_run(wandb_dir, name_or_id) -> RunRef`: by id, folder name or display name (RunNotFound / AmbiguousRun).
- `open_run(location, *, keys=None, cache=True) -> Run`: a run folder, a `.wandb` file, a history export
  (`.csv`, `.parquet`, `.jsonl`), a RunRef, or `wandb://entity/project/run_id`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from analysis.errors import RunNotFound
from analysis.run import Run, RunRef
from analysis.sources.local import find_run, list_runs, media_path, open_local, refresh_run

__all__ = ["find_run", "list_runs", "media_path", "open_run", "refresh_run"]


def open_run(location: str | os.PathLike | RunRef, *, keys: Iterable[str] | None = None, cache: bool = True) -> Run:
    """Load a run from any source. `keys` limits the history to those keys (plus `_step` / `global_step`)."""
    if isinstance(location, RunRef):
        location = location.locator
    loc = str(location)
    path = Path(loc).expanduser()
    if path.is_dir() or path.suffix == ".wandb":
        return open_local(path, keys=keys, use_cache=cache)
    raise RunNotFound(f"{loc}: not a run folder, a .wandb file, a history export or a wandb:// location")
