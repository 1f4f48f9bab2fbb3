"""The run data model shared by every source: `RunRef` (cheap listing entry) and `Run` (a loaded run).

`Run.history` has one row per logged wandb step; columns are the keys as logged (`_step` always present,
`global_step` when the training loop logged it). Media cells stay as the reference dicts wandb writes
(`{"_type": "image-file", "path": "media/images/..."}`); `Run.media` indexes them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

SourceKind = Literal["local", "cloud", "file"]
RunState = Literal["finished", "failed", "running", "crashed", "unknown"]


@dataclass(frozen=True)
class RunRef:
    """Where a run lives and who it is; listing runs builds these without reading any history."""

    source: SourceKind
    locator: str  # run folder path (local), "entity/project/run_id" (cloud), file path (file)
    run_id: str
    name: str  # display name
    project: str = ""
    entity: str = ""
    state: RunState = "unknown"
    created: dt.datetime | None = None

    @property
    def label(self) -> str:
        """Human label for pickers: `name (id)`."""
        return f"{self.name} ({self.run_id})" if self.name and self.name != self.run_id else self.run_id


@dataclass(frozen=True)
class MediaEntry:
    """One logged media file: history step, key it was logged under, path relative to `Run.files_dir`."""

    step: int
    key: str
    path: str


@dataclass
class ReadStatus:
    """How complete the read was. A damaged file still yields every readable record."""

    truncated: bool = False  # the file ends inside a record (live run or killed writer)
    skipped_records: int = 0  # records lost to corrupt chunks
    errors: list[str] = field(default_factory=list)
    format_version: int | None = None
    bytes_read: int = 0  # file offset just past the last good record (resume point for live runs)

    @property
    def clean(self) -> bool:
        return not (self.truncated or self.skipped_records)

    def badges(self) -> list[str]:
        """Short labels for the UI, e.g. ["truncated", "3 records skipped"]."""
        out = []
        if self.truncated:
            out.append("truncated")
        if self.skipped_records:
            n = self.skipped_records
            out.append(f"{n} record{'s' if n != 1 else ''} skipped")
        return out


@dataclass
class Run:
    """A loaded run: identity, config, summary, full history and media index."""

    ref: RunRef
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    media: list[MediaEntry] = field(default_factory=list)
    files_dir: Path | None = None  # media paths are relative to this folder
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    exit_code: int | None = None
    status: ReadStatus = field(default_factory=ReadStatus)
    step_axis: str = "_step"  # what `_step` counts: wandb's step, or an export's x-axis ("epoch", "row", ...)
    # `_step`s at which a column was logged as NaN, where the source can tell that from an absent value (a CSV cell
    # `nan` against an empty one, a JSON NaN against a missing key); a history frame holds NaN for both
    logged_nan: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def step_column(self) -> str:
        """`global_step` when the training loop logged one, wandb's `_step` otherwise."""
        if "global_step" in self.history.columns and self.history["global_step"].notna().any():
            return "global_step"
        return "_step"
