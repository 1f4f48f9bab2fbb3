"""Runs resumed offline: wandb writes one folder per session (all ending in the run id); these are found and
merged into one Run, as `wandb sync` does in the cloud."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.errors import NotAWandbFile, RunNotFound
from analysis.core.run import Run
from analysis.sources._history import tidy_history
from analysis.sources._rundir import is_run_dir, wandb_file
from analysis.sources.listing import head_identity

__all__ = ["MERGED_NOTE", "earlier_segments", "is_merged", "merge_segments"]

MERGED_NOTE = "resumed run:"  # how the status note of a merged run starts (refresh_run reopens such runs)


def earlier_segments(run_dir: Path, run_id: str) -> list[Path]:
    """Older folders of the same run beside `run_dir` (a run resumed offline), oldest first.

    A folder name only proposes a candidate (`...-v2` also ends the folder of a run with id `model-v2`): the
    run id in each candidate's own run record decides. A candidate whose run record cannot be read counts only
    when its name is exactly `[offline-]run-<date>_<time>-<run_id>`."""
    suffix = f"-{run_id}"
    if not run_id or not run_dir.name.endswith(suffix):
        return []
    order = run_dir.name.removeprefix("offline-")
    try:
        siblings = [
            p
            for p in run_dir.parent.iterdir()
            if p.name.endswith(suffix)
            and p.name != run_dir.name
            and p.name.removeprefix("offline-") < order
            and is_run_dir(p)
        ]
    except OSError:
        return []
    same = [p for p in siblings if _same_run(p, run_id)]
    return sorted(same, key=lambda p: p.name.removeprefix("offline-"))


_FOLDER = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-(?P<id>.+)")


def _same_run(folder: Path, run_id: str) -> bool:
    """Whether the run record in `folder` names `run_id` (the folder name decides only when there is none)."""
    try:
        ident = head_identity(wandb_file(folder))
    except (RunNotFound, NotAWandbFile, OSError):
        ident = None
    if ident is not None and ident.run_id:
        return ident.run_id == run_id
    m = _FOLDER.fullmatch(folder.name)
    return m is not None and m["id"] == run_id


def merge_segments(segments: list[Run]) -> Run:
    """One Run from the sessions of a resumed run, oldest first.

    A session whose `_step` starts above the steps so far continues them. One that starts again from 0 was
    resumed offline (wandb cannot know the last step without the server): its steps are shifted to follow on.
    One that starts inside the steps so far rewound the run: earlier rows from that step on are replaced.
    Config and summary are updated session by session. Media of earlier sessions are left out (their files
    live in the other folders, and media paths are relative to the newest one); `status.errors` says so."""
    newest = segments[-1]
    history = segments[0].history
    logged_nan = dict(segments[0].logged_nan)
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    skipped, shift = 0, 0
    for seg in segments:
        config.update(seg.config)
        summary.update(seg.summary)
        skipped += seg.status.skipped_records
    for seg in segments[1:]:
        h = seg.history
        shift = 0
        if len(history) and len(h) and "_step" in h.columns and "_step" in history.columns:
            last, first = int(history["_step"].max()), int(h["_step"].min())
            if first == 0 and last >= 0:
                shift = last + 1
                h = h.assign(_step=h["_step"] + shift)
            elif first <= last:
                history = history[history["_step"] < first]
                logged_nan = {k: v[v < first] for k, v in logged_nan.items()}
        for k, v in seg.logged_nan.items():
            logged_nan[k] = np.union1d(logged_nan.get(k, v[:0]), v + shift)
        history = tidy_history(pd.concat([history, h], ignore_index=True)) if len(history) else h
    dropped_media = sum(len(seg.media) for seg in segments[:-1])
    media = [replace(m, step=m.step + shift) for m in newest.media] if shift else newest.media
    note = f"{MERGED_NOTE} merged {len(segments) - 1} earlier session folder(s)"
    if dropped_media:
        note += f"; {dropped_media} media file(s) of earlier sessions not indexed"
    status = replace(newest.status, skipped_records=skipped, errors=[*newest.status.errors, note])
    created = next((seg.ref.created for seg in segments if seg.ref.created), newest.ref.created)
    return replace(
        newest,
        ref=replace(newest.ref, created=created),
        config=config,
        summary=summary,
        history=history,
        media=media,
        status=status,
        logged_nan={k: v for k, v in logged_nan.items() if len(v)},
    )


def is_merged(run: Run) -> bool:
    """Whether `run` was merged from several session folders (its steps may have been shifted)."""
    return any(e.startswith(MERGED_NOTE) for e in run.status.errors)
