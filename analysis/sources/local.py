"""Offline (or synced) wandb run folders on disk: read them completely (through the cache), refresh live ones.

Media files live under `<run folder>/files/`, and history cells keep wandb's reference dicts (`{"_type":
"image-file", "path": "media/images/..."}`) with paths relative to that folder. Listing runs is in `listing`,
merging the session folders of a resumed run in `resume`, the record decoding in `_decoder`.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.errors import CorruptRunFile
from analysis.core.run import ReadStatus, Run, RunRef
from analysis.sources import _decode, cache
from analysis.sources._decoder import ALWAYS_KEYS, Decoder
from analysis.sources._frame import SparseHistory
from analysis.sources._history import media_index, strip_wandb, tidy_history
from analysis.sources._logfile import iter_payloads
from analysis.sources._rundir import resolve, run_state
from analysis.sources.resume import earlier_segments, is_merged, merge_segments

__all__ = ["SparseRun", "open_local", "read_local", "refresh_run"]


class SparseRun(Run):
    """A Run whose history is kept long (`SparseHistory`: a run logging new keys at many steps, such as
    per-sample metrics), so opening it costs memory in proportion to the values logged. `history`, the frame of
    every key, is built on first use; `history_of(keys)` builds only some columns; `step_column` and the cache
    need neither."""

    _sparse: SparseHistory | None = None
    _frame: pd.DataFrame | None = None

    @property  # a dataclass field of Run, here built on first use
    def history(self) -> pd.DataFrame:
        if self._frame is None:
            sparse, self._sparse = self._sparse, None
            self._frame = sparse.frame() if sparse is not None else pd.DataFrame({"_step": []})
        return self._frame

    @history.setter
    def history(self, value: pd.DataFrame) -> None:
        self._frame, self._sparse = value, None

    @property
    def history_is_sparse(self) -> bool:
        """Whether the history is still in the long layout (its frame not built)."""
        return self._sparse is not None

    def history_of(self, keys: Iterable[str]) -> pd.DataFrame:
        """`_step` and the columns of `keys` that exist, without building the frame of every key."""
        if self._sparse is not None:
            return self._sparse.frame(keys)
        h = self.history
        wanted = set(keys)
        return h[[c for c in h.columns if c == "_step" or c in wanted]]

    @property
    def step_column(self) -> str:
        if self._sparse is not None:
            return "global_step" if len(self._sparse.filled_rows("global_step")) else "_step"
        return super().step_column

    @classmethod
    def of(cls, sparse: SparseHistory, **fields: Any) -> SparseRun:
        run = cls(history=pd.DataFrame(), **fields)
        run._frame, run._sparse = None, sparse
        return run


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a decode: millions of small acyclic objects, which it would only
    scan in vain."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc_was_enabled:
            gc.enable()


def read_local(location: str | os.PathLike, *, keys: Iterable[str] | None = None) -> Run:
    """Decode a run folder or `.wandb` file completely (no cache; see `open_run` for the cached path)."""
    run_dir, path = resolve(location)
    st = path.stat()
    status = ReadStatus()
    dec = Decoder(list(keys) if keys is not None else None)
    try:
        with _gc_paused():
            dec.feed(iter_payloads(path, status), status)
            history, summary = dec.finish(lazy=True)
    except OSError as e:
        raise CorruptRunFile(f"{path}: cannot read the run file: {e}") from e
    ident = dec.ident or _decode.Identity(run_id=path.stem.removeprefix("run-"))
    ref = RunRef(
        source="local",
        locator=str(run_dir),
        run_id=ident.run_id,
        name=ident.name or ident.run_id,
        project=ident.project,
        entity=ident.entity,
        state=run_state(dec.exit_code, st.st_mtime),
        created=ident.created,
    )
    fields: dict[str, Any] = dict(
        ref=ref,
        config=strip_wandb(dec.config),
        summary=strip_wandb(summary),
        files_dir=run_dir / "files",
        tags=ident.tags,
        notes=ident.notes,
        exit_code=dec.exit_code,
        status=status,
        logged_nan=dec.logged_nan,
    )
    if isinstance(history, SparseHistory):
        return SparseRun.of(history, media=media_index(history.frame(history.object_columns())), **fields)
    return Run(history=history, media=media_index(history), **fields)


def open_local(location: str | os.PathLike, *, keys: Iterable[str] | None = None, use_cache: bool = True) -> Run:
    """A run folder or .wandb file, through the on-disk cache when `use_cache` (see analysis.sources.cache).

    A run resumed offline (`wandb.init(id=..., resume=...)`) writes one folder per session, all ending in the
    run id; opening the newest folder also reads the earlier ones beside it and merges them (see
    `resume.merge_segments`), as `wandb sync` does in the cloud."""
    run = _open_segment(location, keys, use_cache)
    earlier = earlier_segments(Path(run.ref.locator), run.ref.run_id)
    if earlier:
        run = merge_segments([_open_segment(d, keys, use_cache) for d in earlier] + [run])
    return run


def _open_segment(location: str | os.PathLike, keys: Iterable[str] | None, use_cache: bool) -> Run:
    """One run folder or .wandb file, as it is on disk (no merging of resumed sessions)."""
    _, path = resolve(location)
    wanted = None if keys is None else list(dict.fromkeys(keys))
    if not use_cache:
        return read_local(path, keys=wanted)
    source = cache.source_id(path)
    try:
        entry = cache.entry_path(path, wanted)
        full_entry = cache.entry_path(path, None)
    except OSError as e:
        raise CorruptRunFile(f"{path}: cannot read the run file: {e}") from e
    run = cache.load(entry, source=source)
    if run is None and wanted is not None:
        run = cache.load(full_entry, columns=[*ALWAYS_KEYS, *wanted], source=source)
        if run is not None:
            run = _select(run, wanted)
    if run is None:
        run = read_local(path, keys=wanted)
        cache.save(run, entry, source)
    elif run.exit_code is None:  # running vs crashed depends on the clock, not only on the file
        run.ref = replace(run.ref, state=run_state(None, path.stat().st_mtime))
    return run


def _select(run: Run, keys: list[str]) -> Run:
    """Restrict a full run to `keys` the way a `keys=` decode does (rows holding none of them are dropped)."""
    always = set(ALWAYS_KEYS)
    h = run.history
    h = h[[c for c in h.columns if c in set(keys) or c in always]]
    wanted = [k for k in keys if k in h.columns and k not in always]
    if set(keys) - always:
        h = h[h[wanted].notna().any(axis=1)] if wanted else h.iloc[0:0]
    run.history = tidy_history(h)
    run.media = [m for m in run.media if m.key in set(keys)]
    run.logged_nan = {k: v for k, v in run.logged_nan.items() if k in set(keys)}
    return run


def refresh_run(run: Run, *, keys: Iterable[str] | None = None) -> Run:
    """A live run brought up to date by decoding only the bytes written after `run.status.bytes_read`.

    Returns a new Run (the given one is not modified). A file that shrank or was replaced is read again from
    the start. `keys` should be the keys the run was opened with, if any.
    """
    if run.ref.source != "local":
        return run
    if is_merged(run):
        return open_local(run.ref.locator, keys=keys)  # merged sessions: steps were shifted; merge again
    _, path = resolve(run.ref.locator)
    st = path.stat()
    start = run.status.bytes_read
    if st.st_size < start or not start:
        return read_local(path, keys=keys)
    status = ReadStatus(format_version=run.status.format_version, bytes_read=start)
    if st.st_size == start:
        status.skipped_records, status.errors = run.status.skipped_records, list(run.status.errors)
        status.truncated = run.status.truncated and run.exit_code is None
        return replace(run, ref=replace(run.ref, state=run_state(run.exit_code, st.st_mtime)), status=status)
    h = run.history
    last_step = int(h["_step"].iloc[-1]) if len(h) else None
    dec = Decoder(
        list(keys) if keys is not None else None,
        next_step=last_step + 1 if last_step is not None else 0,
        from_start=False,
    )
    dec.last_step = None
    with _gc_paused():
        dec.feed(iter_payloads(path, status, start=start), status)
        new, summary = dec.finish()
    status.skipped_records += run.status.skipped_records
    status.errors = run.status.errors + status.errors
    if len(new):
        if last_step is not None and int(new["_step"].iloc[0]) == last_step:  # the same step, continued
            merged = new.iloc[[0]].combine_first(h.iloc[[-1]].reset_index(drop=True))
            new = pd.concat([merged, new.iloc[1:]], ignore_index=True)
            h = h.iloc[:-1]
        history = tidy_history(pd.concat([h, new], ignore_index=True)) if len(h) else new
    else:
        history = h
    logged_nan = dict(run.logged_nan)
    for k, v in dec.logged_nan.items():
        logged_nan[k] = np.union1d(logged_nan.get(k, v[:0]), v)
    config = {**run.config, **strip_wandb(dec.config)}
    summary = {**run.summary, **strip_wandb(summary)}
    exit_code = dec.exit_code if dec.exit_code is not None else run.exit_code
    ref = replace(run.ref, state=run_state(exit_code, st.st_mtime))
    return replace(
        run,
        ref=ref,
        config=config,
        summary=summary,
        history=history,
        media=list(dict.fromkeys(run.media + media_index(new))) if len(new) else run.media,
        exit_code=exit_code,
        status=status,
        logged_nan=logged_nan,
    )
