"""Where runs come from: local wandb run folders, wandb cloud, and CSV / Parquet / JSONL history exports.

Public entry points (stable; see DESIGN.md):

- `list_runs(wandb_dir) -> list[RunRef]`: run folders under a wandb dir, newest first, no history read.
- `find_run(wandb_dir, name_or_id) -> RunRef`: by id, folder name or display name (RunNotFound / AmbiguousRun).
- `open_run(location, *, keys=None, cache=True) -> Run`: a run folder, a `.wandb` file, a history export
  (`.csv`, `.parquet`, `.jsonl`; `export.csv#<run name>` picks one run of a multi-run wandb CSV), a RunRef,
  or `wandb://entity/project/run_id`.
- `refresh_run(run) -> Run`: a live local run brought up to date from the bytes appended since it was read.
- `media_path(run, rel) -> Path`: a logged media file, refusing paths that leave the run folder.
- `list_cloud_runs(entity, project) -> list[RunRef]`: runs of a wandb cloud project (needs an API key).

Modules: `listing` (list/find local runs), `local` (open/refresh one), `resume` (merging the session folders of
a resumed run), `media` (media files), `cloud`, `tabular`, `cache`; private: `_rundir` (run folders and their
state), `_logfile` (the block/chunk container), `_decoder` / `_decode` / `_batch` / `_frame` / `_schema` (records
into a history frame), `_history` (frame conventions shared by every source). `cloud` (which imports wandb) is
imported only when a cloud run is asked for. No submodule imports this package's `__init__` names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from analysis.core.errors import RunNotFound
from analysis.core.run import Run, RunRef
from analysis.sources.listing import find_run, list_runs
from analysis.sources.local import open_local, refresh_run
from analysis.sources.media import media_path
from analysis.sources.tabular import is_table, open_table

__all__ = ["find_run", "list_cloud_runs", "list_runs", "media_path", "open_run", "open_table", "refresh_run"]

CLOUD_SCHEME = "wandb://"


def open_run(location: str | os.PathLike | RunRef, *, keys: Iterable[str] | None = None, cache: bool = True) -> Run:
    """Load a run from any source. `keys` limits the history to those keys (plus `_step` / `global_step`);
    `cache` uses the on-disk cache of decoded local runs (see analysis.sources.cache)."""
    if isinstance(location, RunRef):
        location = location.locator if location.source != "cloud" else CLOUD_SCHEME + location.locator
    loc = os.fspath(location)
    if loc.startswith(CLOUD_SCHEME):
        from analysis.sources import cloud  # imports wandb: only when asked for

        return cloud.open_cloud_run(loc[len(CLOUD_SCHEME) :], keys=keys, cache=cache)
    path = Path(loc).expanduser()
    if not path.exists() and "#" in loc and is_table(loc.rsplit("#", 1)[0]):
        file_part, run_name = loc.rsplit("#", 1)
        return open_table(file_part, keys=keys, run=run_name)
    if is_table(path):
        return open_table(path, keys=keys)
    if path.is_dir() or path.suffix == ".wandb":
        return open_local(path, keys=keys, use_cache=cache)
    if not path.exists():
        raise RunNotFound(f"{loc}: no such run folder or file")
    raise RunNotFound(
        f"{loc}: not a run folder, a .wandb file, a history export (.csv, .parquet, .jsonl) or a wandb:// location"
    )


def list_cloud_runs(entity: str, project: str, **kwargs) -> list[RunRef]:
    """Runs of a wandb cloud project, newest first (see analysis.sources.cloud.list_cloud_runs)."""
    from analysis.sources import cloud

    return cloud.list_cloud_runs(entity, project, **kwargs)
