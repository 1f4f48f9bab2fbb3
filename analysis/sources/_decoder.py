"""Turning the records of a `.wandb` file into run parts: identity, config, history frame, summary, exit code.

`Decoder.feed` may be called again with records appended later (a live run being refreshed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.run import ReadStatus
from analysis.sources import _batch, _decode, _schema
from analysis.sources._frame import HistoryFrame, SparseHistory
from analysis.sources._sequence import RecordSequence, skip_record

__all__ = ["ALWAYS_KEYS", "Decoder"]

ALWAYS_KEYS = ("_step", "global_step")  # kept in every history, whatever `keys=` asks for
_ALWAYS = frozenset(ALWAYS_KEYS)
_ALWAYS_B = frozenset(k.encode() for k in ALWAYS_KEYS)


class Decoder:
    """Accumulates records into run parts; `feed` may be called again with records appended later.

    History rows are decoded in batches of BATCH rows by `_batch.decode_batch` (vectorised), or row by row when
    a batch has anything unusual. The summary is each key's last logged value, from the history rows, overridden
    by explicit summary records (`run.summary[k] = v`) written after that key's last row. wandb-core also writes a
    summary record repeating every history row; those are recognised on their bytes and skipped.
    """

    BATCH = 64

    def __init__(self, keys: Iterable[str] | None, next_step: int = 0, *, from_start: bool = True) -> None:
        self.keyset = frozenset(k.encode() for k in (*keys, *ALWAYS_KEYS)) if keys is not None else None
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
        self.status = ReadStatus()  # the status of the read in progress (set by `feed`)
        self.logged_nan: dict[str, np.ndarray] = {}  # `Run.logged_nan`, set by `finish`
        self.sequence = RecordSequence(from_start)  # False: records read from the middle of a file

    def feed(self, payloads: Iterable[bytes], status: ReadStatus) -> None:
        new_record = _schema.Record
        mirrors = _batch.mirrors
        self.status = status
        for payload in payloads:
            rec = new_record()  # a fresh message each time: re-parsing into one upb message grows its arena
            try:
                rec.ParseFromString(payload)
            except _decode.MALFORMED as e:
                skip_record(status, f"undecodable record: {e}")  # its number goes missing: counted by the sequence
                continue
            if not self.sequence.accept(rec.num, status):
                continue
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                h = rec.history
                pending, self.pending_summary = self.pending_summary, None
                if pending is not None and not mirrors(pending, h):
                    self._summary(pending, status)
                self.batch.append(h)
                if len(self.batch) >= self.BATCH:
                    self._flush_batch()
                continue
            if self.pending_summary is not None:
                self._summary(self.pending_summary, status)
                self.pending_summary = None
            try:
                self._record(kind, rec)
            except _decode.MALFORMED as e:
                self.sequence.skip(status, f"malformed {kind} record: {type(e).__name__}: {e}")

    def _record(self, kind: str | None, rec: Any) -> None:
        """Apply one record that is not a history row."""
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

    def _summary(self, payload: bytes, status: ReadStatus) -> None:
        try:
            updates, removed = _decode.summary_updates(payload)
        except _decode.MALFORMED as e:
            self.sequence.skip(status, f"malformed summary record: {type(e).__name__}: {e}")
            return
        for k, v in updates:
            self._explicit(k, v)
        for k in removed:
            self._explicit(k, None)

    def _final_summary(self, history: pd.DataFrame | SparseHistory) -> dict:
        raw = dict(self.summary_hist)
        sparse = history if isinstance(history, SparseHistory) else None
        frame = history if isinstance(history, pd.DataFrame) else None
        for k, v in self.summary_explicit.items():
            name = k.decode("utf-8", "surrogateescape") if type(k) is bytes else None
            last_row = -1
            known = name is not None and (name in sparse.index if sparse is not None else name in history.columns)
            if name is not None and known and k in raw:
                # row positions, as summary_at counts
                filled = (
                    sparse.filled_rows(name) if sparse is not None else np.flatnonzero(frame[name].notna().to_numpy())  # type: ignore[index]
                )
                last_row = int(filled[-1]) if len(filled) else -1
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
                self._history_or_skip(payload)
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
                    self._history_or_skip(payload)
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

    def _history_or_skip(self, payload: bytes) -> None:
        """One history row; a malformed one is counted as a skipped record (nothing of it is written)."""
        try:
            self._history(payload)
        except _decode.MALFORMED as e:
            self.sequence.skip(self.status, f"malformed history record: {type(e).__name__}: {e}")

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
        if _decode.NUMBERS.fullmatch(joined) is not None:
            frame.add_numeric_texts(r, cols, d.values())
        else:
            try:
                values = json.loads(b"[" + joined + b"]")
            except (ValueError, RecursionError):
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

    def finish(self, lazy: bool = False) -> tuple[Any, dict]:
        """(history frame, decoded summary). With `lazy`, a history kept in the long layout (sparse keys) comes
        as a `SparseHistory`, its frame not built yet."""
        self._flush_batch()
        if self.pending_summary is not None:
            self._summary(self.pending_summary, self.status)
            self.pending_summary = None
        self.sequence.finish(self.status)
        history = self.frame.result() if lazy else self.frame.frame()
        steps = history.column("_step") if isinstance(history, SparseHistory) else history["_step"].to_numpy()
        self.logged_nan = self.frame.logged_nan_steps(steps)
        return history, self._final_summary(history)
