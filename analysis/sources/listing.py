"""Listing and finding local runs cheaply: the run record near the head of each `.wandb` file, the exit record
near its tail, never the history."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from analysis.core.errors import AmbiguousRun, NotAWandbFile, RunNotFound
from analysis.core.run import ReadStatus, RunRef
from analysis.sources import _decode, _schema
from analysis.sources._logfile import BLOCK, iter_payloads
from analysis.sources._rundir import run_dirs, run_state, wandb_file

__all__ = ["find_run", "head_identity", "list_runs", "run_ref"]


def _records_of_kind(path: Path, kind: str, *, start: int = 0, stop: int | None = None) -> Iterator[Any]:
    """Records of one type within a byte window of the file; undecodable ones are skipped (damage only means
    "not seen")."""
    for payload in iter_payloads(path, ReadStatus(), start=start, stop=stop):
        try:
            rec = _schema.Record.FromString(payload)
        except Exception:
            continue
        if rec.WhichOneof("record_type") == kind:
            yield rec


def head_identity(path: Path) -> _decode.Identity | None:
    """The run record, which wandb writes right after the header: look in the first block, then a few more."""
    for stop in (BLOCK, 8 * BLOCK):
        for rec in _records_of_kind(path, "run", stop=stop):
            return _decode.identity(rec.run)
        if path.stat().st_size <= stop:
            break
    return None


def _tail_exit_code(path: Path, size: int) -> int | None:
    """Exit code from an exit record in the last block (or the last two, when it may straddle them), or None
    (the run has not exited)."""
    last = max(0, (size - 1) // BLOCK * BLOCK) if size else 0
    for start in dict.fromkeys((last, max(0, last - BLOCK))):
        code = None
        for rec in _records_of_kind(path, "exit", start=start):
            code = rec.exit.exit_code
        if code is not None:
            return code
    return None


def run_ref(run_dir: Path, now: float | None = None) -> RunRef:
    """A RunRef for one run folder, reading only the head and tail of its .wandb file."""
    path = wandb_file(run_dir)
    st = path.stat()
    fallback_id = run_dir.name.rsplit("-", 1)[-1]
    try:
        ident = head_identity(path)
        code = _tail_exit_code(path, st.st_size)
    except (NotAWandbFile, OSError):  # unreadable: listed as unknown, opening it gives the reason
        return RunRef(source="local", locator=str(run_dir), run_id=fallback_id, name=run_dir.name, state="unknown")
    if ident is None:
        ident = _decode.Identity(run_id=fallback_id)
    return RunRef(
        source="local",
        locator=str(run_dir),
        run_id=ident.run_id or fallback_id,
        name=ident.name or ident.run_id or fallback_id,
        project=ident.project,
        entity=ident.entity,
        state=run_state(code, st.st_mtime, now),
        created=ident.created,
    )


def list_runs(wandb_dir: str | os.PathLike) -> list[RunRef]:
    """Every run folder under `wandb_dir`, newest first, without reading any history.

    Folders whose .wandb file is unreadable are listed with state "unknown" (opening them gives the reason).
    """
    now = time.time()
    refs = []
    for d in run_dirs(Path(wandb_dir)):
        try:
            refs.append(run_ref(d, now))
        except RunNotFound:  # a run folder without a .wandb file (e.g. still being created)
            continue
    refs.sort(key=_newest_first_key, reverse=True)
    return refs


def _newest_first_key(ref: RunRef) -> tuple[str, float, str]:
    """A run folder is named for the second its run started; runs started within one second (a script that starts
    several) are ordered by their start time from the run file, which has microseconds, not by their random ids."""
    started = ref.created.timestamp() if ref.created is not None else 0.0
    return Path(ref.locator).name.removeprefix("offline-")[: len("run-YYYYMMDD_HHMMSS")], started, ref.run_id


def find_run(wandb_dir: str | os.PathLike, name_or_id: str) -> RunRef:
    """The run whose id, folder name or display name is `name_or_id`.

    Raises RunNotFound (listing the runs that exist) or AmbiguousRun (several runs share that display name).
    An id found in several folders (a run resumed offline) resolves to the newest folder.
    """
    refs = list_runs(wandb_dir)
    by_id = [r for r in refs if r.run_id == name_or_id or Path(r.locator).name == name_or_id]
    if by_id:
        return by_id[0]
    if name_or_id == "latest-run":  # the symlink wandb keeps to the newest run folder
        for link in (Path(wandb_dir) / "latest-run", Path(wandb_dir) / "wandb" / "latest-run"):
            target = link.resolve() if link.is_symlink() else None
            match = [r for r in refs if target is not None and Path(r.locator).resolve() == target]
            if match:
                return match[0]
    by_name = [r for r in refs if r.name == name_or_id]
    if len(by_name) == 1 or len({r.run_id for r in by_name}) == 1:  # one run, maybe resumed in several folders
        return by_name[0]
    if by_name:
        listing = ", ".join(
            f"{r.name} (id {r.run_id}, {r.created:%Y-%m-%d %H:%M})" if r.created else f"{r.name} (id {r.run_id})"
            for r in by_name
        )
        raise AmbiguousRun(
            f"{len(by_name)} runs are named {name_or_id!r}: {listing}; pass the run id instead",
            candidates=[r.run_id for r in by_name],
        )
    labels = [r.label for r in refs]
    shown = ", ".join(labels[:20]) + (f", ... ({len(labels) - 20} more)" if len(labels) > 20 else "")
    where = f"in {wandb_dir}"
    raise RunNotFound(
        f"no run named or with id {name_or_id!r} {where}; runs there: {shown}"
        if labels
        else f"no run named or with id {name_or_id!r} {where}: it holds no wandb runs",
        candidates=labels,
    )
