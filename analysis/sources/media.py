"""Media files logged by a run (`media/images/...` under its files folder), refusing paths that leave it.

A cloud run's files are downloaded on demand into its media cache; `cloud` is imported only then (it imports
wandb), and it does not import this module back.
"""

from __future__ import annotations

from pathlib import Path

from analysis.core.errors import UnsafePath
from analysis.core.run import Run

__all__ = ["media_path"]


def media_path(run: Run, rel: str) -> Path:
    """Absolute path of a media file logged by `run`; UnsafePath if `rel` escapes the run's files folder.

    For a cloud run the file is downloaded into its media cache the first time it is asked for."""
    if run.files_dir is None:
        raise UnsafePath(f"{rel!r}: this run has no local files folder")
    root = Path(run.files_dir).resolve()
    rel_path = Path(rel)
    if rel_path.is_absolute() or ".." in rel_path.parts:
        raise UnsafePath(f"{rel!r}: media path points outside the run folder; refused")
    target = (root / rel_path).resolve()
    if not target.is_relative_to(root):
        raise UnsafePath(f"{rel!r}: media path resolves outside the run folder (symlink?); refused")
    if run.ref.source == "cloud" and not target.is_file():
        from analysis.sources import cloud  # imports wandb: only for a cloud file not downloaded yet

        return cloud.download_media(run, rel, target)
    return target
