"""Offline (or synced) wandb run folders on disk: list them cheaply, read them completely, refresh live ones.

A run folder is `<wandb dir>/offline-run-YYYYMMDD_HHMMSS-<id>/` (or `run-...` for synced runs) holding
`run-<id>.wandb`, the transaction log with everything: identity, config, history, summary, exit. Media files live
under `<run folder>/files/`, and history cells keep wandb's reference dicts (`{"_type": "image-file", "path":
"media/images/..."}`) with paths relative to that folder.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.core.errors import AmbiguousRun, CorruptRunFile, NotAWandbFile, RunNotFound, UnsafePath
from analysis.core.run import MediaEntry, ReadStatus, Run, RunRef, RunState
from analysis.sources import _batch, _decode, _schema, cache
from analysis.sources._frame import HistoryFrame
from analysis.sources._logfile import BLOCK, iter_payloads

STALE_AFTER_S = 300.0  # no exit record and untouched this long -> crashed (wandb-core flushes every ~15 s)
_ALWAYS_KEYS = ("_step", "global_step")
_ALWAYS = frozenset(_ALWAYS_KEYS)
_ALWAYS_B = frozenset(k.encode() for k in _ALWAYS_KEYS)
_MEDIA_TYPES = {
    "image-file",
    "images/separated",
    "table-file",
    "video-file",
    "audio-file",
    "html-file",
    "object3D-file",
    "molecule-file",
    "bokeh-file",
    "plotly-file",
}


# ----------------------------------------------------------------------------------------------------------
# locating run folders and files


def is_run_dir(path: Path) -> bool:
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


def _state(exit_code: int | None, mtime: float, now: float | None = None) -> RunState:
    if exit_code is not None:
        return "finished" if exit_code == 0 else "failed"
    age = (now if now is not None else time.time()) - mtime
    return "running" if age < STALE_AFTER_S else "crashed"


# ----------------------------------------------------------------------------------------------------------
# cheap listing: the run record near the head, the exit record near the tail


def _records_of_kind(path: Path, kind: str, **window: int):
    """Records of one type within a byte window of the file; undecodable ones are skipped (damage only means
    "not seen")."""
    for payload in iter_payloads(path, ReadStatus(), **window):
        try:
            rec = _schema.Record.FromString(payload)
        except Exception:
            continue
        if rec.WhichOneof("record_type") == kind:
            yield rec


def _head_identity(path: Path) -> _decode.Identity | None:
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
        ident = _head_identity(path)
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
        state=_state(code, st.st_mtime, now),
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
    refs.sort(key=lambda r: (Path(r.locator).name.removeprefix("offline-"), r.run_id), reverse=True)
    return refs


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


# ----------------------------------------------------------------------------------------------------------
# full decode


class _Decoder:
    """Accumulates records into run parts; `feed` may be called again with records appended later.

    History rows are decoded in batches of BATCH rows by `_batch.decode_batch` (vectorised), or row by row when
    a batch has anything unusual. The summary is each key's last logged value, from the history rows, overridden
    by explicit summary records (`run.summary[k] = v`) written after that key's last row. wandb-core also writes a
    summary record repeating every history row; those are recognised on their bytes and skipped.
    """

    BATCH = 64

    def __init__(self, keys: Iterable[str] | None, next_step: int = 0) -> None:
        self.keyset = frozenset(k.encode() for k in (*keys, *_ALWAYS_KEYS)) if keys is not None else None
        # with keys=, rows holding none of the requested keys are dropped (unless only step keys were asked)
        self.filter_rows = keys is not None and bool(set(keys) - _ALWAYS)
        self.frame = HistoryFrame()
        self.last_step: int | None = None
        self.next_step = next_step
        self.config: dict = {}
        self.summary_hist: dict = {}  # key -> raw JSON of its last history value
        self.summary_explicit: dict = {}  # key -> raw JSON (None: removed), from summary records
        self.summary_at: dict = {}  # key -> number of history rows before its explicit update
        self.pending_summary: bytes | None = None
        self.batch: list[bytes] = []
        self.files: list[str] = []
        self.ident: _decode.Identity | None = None
        self.exit_code: int | None = None
        self.runtime: float | None = None
        self.producer = ""

    def feed(self, payloads: Iterable[bytes], status: ReadStatus) -> None:
        new_record = _schema.Record
        mirrors = _batch.mirrors
        for payload in payloads:
            rec = new_record()  # a fresh message each time: re-parsing into one upb message grows its arena
            try:
                rec.ParseFromString(payload)
            except Exception as e:
                status.skipped_records += 1
                status.errors.append(f"undecodable record: {e}")
                continue
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                h = rec.history
                pending, self.pending_summary = self.pending_summary, None
                if pending is not None and not mirrors(pending, h):
                    self._summary(pending)
                self.batch.append(h)
                if len(self.batch) >= self.BATCH:
                    self._flush_batch()
                continue
            if self.pending_summary is not None:
                self._summary(self.pending_summary)
                self.pending_summary = None
            if kind == "summary":
                self.pending_summary = rec.summary  # maybe a copy of the next history row: decided there
            elif kind == "config":
                _decode.apply_items(self.config, rec.config.update)
                for it in rec.config.remove:
                    _decode.del_path(self.config, _decode.item_key(it))
            elif kind == "run":
                self._flush_batch()
                run = rec.run
                self.ident = _decode.identity(run)
                self.next_step = max(self.next_step, run.starting_step)
                _decode.apply_items(self.config, run.config.update)
                for it in run.summary.update:
                    k = _decode.item_key(it)
                    self._explicit(k.encode() if type(k) is str else k, it.value_json.encode() or None)
            elif kind == "files":
                self.files.extend(f.path for f in rec.files.files)
            elif kind == "exit":
                self.exit_code = rec.exit.exit_code
                self.runtime = float(rec.exit.runtime)
            elif kind == "header":
                self.producer = rec.header.version_info.producer

    # -- summary ----------------------------------------------------------------------------------------
    def _explicit(self, key: Any, raw: bytes | None) -> None:
        self.summary_explicit[key] = raw
        self.summary_at[key] = self.frame.n + len(self.batch)

    def _summary(self, payload: bytes) -> None:
        updates, removed = _decode.summary_updates(payload)
        for k, v in updates:
            self._explicit(k, v)
        for k in removed:
            self._explicit(k, None)

    def _final_summary(self, history: pd.DataFrame) -> dict:
        raw = dict(self.summary_hist)
        for k, v in self.summary_explicit.items():
            name = k.decode("utf-8", "surrogateescape") if type(k) is bytes else None
            last_row = -1
            if name is not None and name in history.columns and k in raw:
                idx = history[name].last_valid_index()
                last_row = -1 if idx is None else int(idx)
            if last_row < self.summary_at[k]:  # the explicit update came after the key's last history row
                raw[k] = v
        summary = _decode.finish_summary(raw)
        for k, v in raw.items():
            if v is None:
                _decode.del_path(summary, k.decode("utf-8", "surrogateescape") if type(k) is bytes else k)
        return summary

    # -- history ----------------------------------------------------------------------------------------
    def _flush_batch(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        self.frame.flush()
        done = _batch.decode_batch(batch, self.frame, self.last_step, self.keyset, _ALWAYS_B, self.filter_rows)
        if isinstance(done, _batch.BatchResult):
            self._took(done)
            return
        if done is None:
            for payload in batch:
                self._history(payload)
            return
        # some rows are unusual: decode runs of plain rows together, the others one by one
        i = 0
        while i < len(batch):
            j = i
            while j < len(batch) and done[j] == done[i]:
                j += 1
            part = (
                _batch.decode_batch(batch[i:j], self.frame, self.last_step, self.keyset, _ALWAYS_B, self.filter_rows)
                if done[i]
                else None
            )
            if isinstance(part, _batch.BatchResult):
                self._took(part)
            else:
                for payload in batch[i:j]:
                    self._history(payload)
            i = j

    def _took(self, done: _batch.BatchResult) -> None:
        self.last_step = done.last_step
        self.next_step = done.next_step
        self.summary_hist.update(done.summary)

    def _row(self, step: int) -> int:
        """Row index for `step`: a later log() at the same step merges into the same row."""
        if self.last_step == step and self.frame.n:
            return self.frame.n - 1
        self.last_step = step
        return self.frame.new_row()

    def _history(self, payload: bytes) -> None:
        split = _decode.split_history(payload)
        if split is None:
            self._history_slow(payload)
            return
        d, joined, rec_step, _ = split
        self.summary_hist.update(d)
        raw_step = d.get(b"_step")
        step = int(raw_step) if raw_step is not None and raw_step.isdigit() else None
        explicit = step is not None
        if step is None:  # format 1: auto-step rows carry no `_step`; explicit steps are in the record
            step = rec_step if rec_step is not None else self.next_step
        self.next_step = step + 1
        if self.keyset is not None:
            d = {k: d[k] for k in self.keyset.intersection(d)}
            if self.filter_rows and not (d.keys() - _ALWAYS_B):
                return
            joined = b",".join(d.values())
        frame = self.frame
        r = self._row(step)
        cols = frame.columns_for(d)
        if not joined.translate(None, _decode.NUMERIC_BYTES):
            frame.add_numeric_texts(r, cols, d.values())
        else:
            try:
                values = json.loads(b"[" + joined + b"]")
            except ValueError:
                values = [_decode.loads(v) for v in d.values()]
            frame.add_values(r, cols, values)
        if not explicit:
            frame.add_values(r, frame.columns_for([b"_step"]), [step])

    def _history_slow(self, payload: bytes) -> None:
        row, rec_step = _decode.decode_history_slow(payload, None)
        for k, v in row.items():
            self.summary_hist[k.encode("utf-8", "surrogateescape")] = json.dumps(v, default=str).encode()
        if self.keyset is not None:
            row = {k: v for k, v in row.items() if k.encode("utf-8", "surrogateescape") in self.keyset}
        step = row.get("_step")
        if type(step) is not int:
            step = rec_step if rec_step is not None else self.next_step
            row["_step"] = step
        self.next_step = step + 1
        if self.filter_rows and not (row.keys() - _ALWAYS):
            return
        r = self._row(step)
        self.frame.add_values(
            r, self.frame.columns_for([k.encode("utf-8", "surrogateescape") for k in row]), list(row.values())
        )

    def finish(self) -> tuple[pd.DataFrame, dict]:
        """(history frame, decoded summary)."""
        self._flush_batch()
        if self.pending_summary is not None:
            self._summary(self.pending_summary)
            self.pending_summary = None
        history = self.frame.frame()
        return history, self._final_summary(history)


def tidy_history(df: pd.DataFrame) -> pd.DataFrame:
    """`_step` first (int64), other columns sorted (wandb-core writes keys in random order)."""
    cols = sorted(c for c in df.columns if c != "_step")
    df = df[["_step", *cols]] if "_step" in df.columns else df[cols]
    if "_step" in df.columns and df["_step"].dtype != "int64" and df["_step"].notna().all():
        df = df.assign(_step=df["_step"].astype("int64"))
    return df.reset_index(drop=True)


def media_index(history: pd.DataFrame) -> list[MediaEntry]:
    """Every media file referenced by a history cell, with its step and key."""
    out: list[MediaEntry] = []
    if "_step" not in history.columns:
        return out
    steps = history["_step"].to_numpy()
    for col in history.columns:
        series = history[col]
        if series.dtype != object:
            continue
        for i, cell in enumerate(series.to_numpy()):
            if not isinstance(cell, dict) or cell.get("_type") not in _MEDIA_TYPES:
                continue
            paths = cell.get("filenames") if cell.get("_type") == "images/separated" else [cell.get("path")]
            for p in paths or []:
                if isinstance(p, str) and p:
                    out.append(MediaEntry(step=int(steps[i]), key=str(col), path=p))
    return out


def _strip_wandb(d: dict) -> dict:
    d.pop("_wandb", None)
    return d


def read_local(location: str | os.PathLike, *, keys: Iterable[str] | None = None) -> Run:
    """Decode a run folder or `.wandb` file completely (no cache; see `open_run` for the cached path)."""
    p = Path(location).resolve()
    if p.is_dir():
        run_dir, path = p, wandb_file(p)
    elif p.is_file():
        run_dir, path = p.parent, p
    else:
        raise RunNotFound(f"{p}: no such run folder or .wandb file")
    st = path.stat()
    status = ReadStatus()
    dec = _Decoder(list(keys) if keys is not None else None)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the cyclic collector only costs time here
    try:
        dec.feed(iter_payloads(path, status), status)
        history, summary = dec.finish()
    except OSError as e:
        raise CorruptRunFile(f"{path}: cannot read the run file: {e}") from e
    finally:
        if gc_was_enabled:
            gc.enable()
    ident = dec.ident or _decode.Identity(run_id=path.stem.removeprefix("run-"))
    ref = RunRef(
        source="local",
        locator=str(run_dir),
        run_id=ident.run_id,
        name=ident.name or ident.run_id,
        project=ident.project,
        entity=ident.entity,
        state=_state(dec.exit_code, st.st_mtime),
        created=ident.created,
    )
    return Run(
        ref=ref,
        config=_strip_wandb(dec.config),
        summary=_strip_wandb(summary),
        history=history,
        media=media_index(history),
        files_dir=run_dir / "files",
        tags=ident.tags,
        notes=ident.notes,
        exit_code=dec.exit_code,
        status=status,
    )


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
        from analysis.sources import cloud  # downloads on demand into the media cache

        return cloud.download_media(run, rel, target)
    return target


def _resolve(location: str | os.PathLike) -> tuple[Path, Path]:
    """(run folder, .wandb file) for a run folder or a .wandb file path."""
    p = Path(location).expanduser().resolve()
    if p.is_dir():
        return p, wandb_file(p)
    if p.is_file():
        return p.parent, p
    raise RunNotFound(f"{p}: no such run folder or .wandb file")


def open_local(location: str | os.PathLike, *, keys: Iterable[str] | None = None, use_cache: bool = True) -> Run:
    """A run folder or .wandb file, through the on-disk cache when `use_cache` (see analysis.sources.cache).

    A run resumed offline (`wandb.init(id=..., resume=...)`) writes one folder per session, all ending in the
    run id; opening the newest folder also reads the earlier ones beside it and merges them (see
    `merge_segments`), as `wandb sync` does in the cloud."""
    run = _open_segment(location, keys, use_cache)
    earlier = earlier_segments(Path(run.ref.locator), run.ref.run_id)
    if earlier:
        run = merge_segments([_open_segment(d, keys, use_cache) for d in earlier] + [run])
    return run


def earlier_segments(run_dir: Path, run_id: str) -> list[Path]:
    """Older folders of the same run id beside `run_dir` (a run resumed offline), oldest first."""
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
    return sorted(siblings, key=lambda p: p.name.removeprefix("offline-"))


def merge_segments(segments: list[Run]) -> Run:
    """One Run from the sessions of a resumed run, oldest first.

    A session whose `_step` starts above the steps so far continues them. One that starts again from 0 was
    resumed offline (wandb cannot know the last step without the server): its steps are shifted to follow on.
    One that starts inside the steps so far rewound the run: earlier rows from that step on are replaced.
    Config and summary are updated session by session. Media of earlier sessions are left out (their files
    live in the other folders, and media paths are relative to the newest one); `status.errors` says so."""
    newest = segments[-1]
    history = segments[0].history
    config, summary = {}, {}
    skipped, dropped_media, shift = 0, 0, 0
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
        history = tidy_history(pd.concat([history, h], ignore_index=True)) if len(history) else h
    dropped_media = sum(len(seg.media) for seg in segments[:-1])
    media = [replace(m, step=m.step + shift) for m in newest.media] if shift else newest.media
    note = f"resumed run: merged {len(segments) - 1} earlier session folder(s)"
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
    )


def _open_segment(location: str | os.PathLike, keys: Iterable[str] | None, use_cache: bool) -> Run:
    """One run folder or .wandb file, as it is on disk (no merging of resumed sessions)."""
    _, path = _resolve(location)
    keys = None if keys is None else list(dict.fromkeys(keys))
    if not use_cache:
        return read_local(path, keys=keys)
    run = cache.load(cache.entry_path(path, keys))
    if run is None and keys is not None:
        run = cache.load(cache.entry_path(path, None), columns=[*_ALWAYS_KEYS, *keys])
        if run is not None:
            run = _select(run, keys)
    if run is None:
        run = read_local(path, keys=keys)
        cache.save(run, cache.entry_path(path, keys))
    elif run.exit_code is None:  # running vs crashed depends on the clock, not only on the file
        run.ref = replace(run.ref, state=_state(None, path.stat().st_mtime))
    return run


def _select(run: Run, keys: list[str]) -> Run:
    """Restrict a full run to `keys` the way a `keys=` decode does (rows holding none of them are dropped)."""
    h = run.history
    h = h[[c for c in h.columns if c in set(keys) or c in _ALWAYS]]
    wanted = [k for k in keys if k in h.columns and k not in _ALWAYS_KEYS]
    if set(keys) - _ALWAYS:
        h = h[h[wanted].notna().any(axis=1)] if wanted else h.iloc[0:0]
    run.history = tidy_history(h)
    run.media = [m for m in run.media if m.key in set(keys)]
    return run


def refresh_run(run: Run, *, keys: Iterable[str] | None = None) -> Run:
    """A live run brought up to date by decoding only the bytes written after `run.status.bytes_read`.

    Returns a new Run (the given one is not modified). A file that shrank or was replaced is read again from
    the start. `keys` should be the keys the run was opened with, if any.
    """
    if run.ref.source != "local":
        return run
    if any(e.startswith("resumed run:") for e in run.status.errors):
        return open_local(run.ref.locator, keys=keys)  # merged sessions: steps were shifted; merge again
    _, path = _resolve(run.ref.locator)
    st = path.stat()
    start = run.status.bytes_read
    if st.st_size < start or not start:
        return read_local(path, keys=keys)
    status = ReadStatus(format_version=run.status.format_version, bytes_read=start)
    if st.st_size == start:
        status.skipped_records, status.errors = run.status.skipped_records, list(run.status.errors)
        status.truncated = run.status.truncated and run.exit_code is None
        return replace(run, ref=replace(run.ref, state=_state(run.exit_code, st.st_mtime)), status=status)
    h = run.history
    last_step = int(h["_step"].iloc[-1]) if len(h) else None
    dec = _Decoder(list(keys) if keys is not None else None, next_step=last_step + 1 if last_step is not None else 0)
    dec.last_step = None
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        dec.feed(iter_payloads(path, status, start=start), status)
        new, summary = dec.finish()
    finally:
        if gc_was_enabled:
            gc.enable()
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
    config = {**run.config, **_strip_wandb(dec.config)}
    summary = {**run.summary, **_strip_wandb(summary)}
    exit_code = dec.exit_code if dec.exit_code is not None else run.exit_code
    ref = replace(run.ref, state=_state(exit_code, st.st_mtime))
    return replace(
        run,
        ref=ref,
        config=config,
        summary=summary,
        history=history,
        media=list(dict.fromkeys(run.media + media_index(new))) if len(new) else run.media,
        exit_code=exit_code,
        status=status,
    )
