# BASELINE ONLY. This is the reference reader sketched in /work/shared/research/wandb_offline.md (Appendix A,
# with the wandb-free minimal schema of Appendix B inlined below), copied unchanged apart from this header and
# the schema import, so that benchmarks/load_run.py can time it against analysis.sources in the same process.
# It is not used by the product.
"""Read wandb offline (or not-yet-synced) run directories from disk.

No network, no `wandb sync`, no wandb-core process. The protobuf schema comes
from `wandb.proto.wandb_internal_pb2` when importable, else (or with
WANDB_READER_SCHEMA=minimal) from the wandb-free `wandb_min_schema` module.

File format of `run-<id>.wandb` (the "transaction log"):
  * 7-byte file header: b":W&B" + uint16 LE magic 0xBEE1 + uint8 format version
    (0 up to wandb 0.31; 1 in newer wandb-core: rows may lack "_step")
  * then a LevelDB-log stream: 32 KiB blocks, each holding chunks
      chunk := crc32 (uint32 LE) | length (uint16 LE) | type (uint8) | payload
    type 1=FULL, 2=FIRST, 3=MIDDLE, 4=LAST; crc = zlib.crc32(bytes([type]) + payload)
    (plain IEEE CRC32, not LevelDB's masked CRC32C). A chunk never crosses a
    block boundary; < 7 bytes left at a block's end are zero padding. The
    file header occupies the first 7 bytes of block 0.
  * each reassembled record is one serialized `Record` protobuf message.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

FILE_HEADER_IDENT = b":W&B"
FILE_HEADER_MAGIC = 0xBEE1
# 0: wandb <= 0.31 (and older Python writer). 1: newer wandb-core, where
# auto-step history rows carry no "_step" item / record.step (the reader must
# number them), see wandb PR #12110. The chunk framing is identical.
KNOWN_FORMAT_VERSIONS = (0, 1)
FILE_HEADER_LEN = 7
BLOCK_LEN = 32 * 1024
CHUNK_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_CRC_SEED = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}
_unpack_chunk_header = struct.Struct("<IHB").unpack_from
_intern = sys.intern


class NotAWandbFile(ValueError):
    """The file is empty or does not start with the .wandb file header."""


@dataclass
class ScanReport:
    """What happened while scanning one .wandb file."""

    size: int = 0
    format_version: int | None = None
    records: int = 0
    good_until: int = 0  # file offset just past the last good chunk
    truncated: bool = False  # file ends inside a chunk / multi-chunk record
    corrupt_chunks: int = 0  # chunks dropped: bad crc, bad header, orphan pieces
    skipped_bytes: int = 0  # bytes jumped over while resynchronising
    undecodable_records: int = 0  # crc ok but the protobuf did not parse
    errors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.truncated or self.corrupt_chunks or self.undecodable_records)


def _check_header(head: bytes) -> int:
    if len(head) < FILE_HEADER_LEN:
        raise NotAWandbFile(f"file too short for a .wandb header ({len(head)} bytes)")
    ident, magic, version = struct.unpack_from("<4sHB", head, 0)
    if ident != FILE_HEADER_IDENT or magic != FILE_HEADER_MAGIC:
        raise NotAWandbFile("no ':W&B' header: not a wandb transaction log")
    if version not in KNOWN_FORMAT_VERSIONS:
        raise NotAWandbFile(f".wandb format version {version} is newer than this reader")
    return version


def iter_record_bytes(fp: BinaryIO, report: ScanReport | None = None) -> Iterator[bytes]:
    """Yield the payload of every complete, checksummed record, block by block.

    Recovery policy: a chunk whose crc does not match is dropped with the
    record it belongs to, and scanning goes on at the next chunk; a chunk
    header that makes no sense (unknown type, length past the block end, zero
    header) drops the rest of its 32 KiB block (LevelDB's/wandb-core's rule),
    and scanning resumes at the next block. Orphan MIDDLE/LAST chunks (their
    FIRST was lost) are dropped. A file that simply stops (live run, crash, partial
    copy) ends the scan with report.truncated=True; everything before is kept.
    Memory: one 32 KiB block plus the record being reassembled.
    """
    rep = report if report is not None else ScanReport()
    block = fp.read(BLOCK_LEN)
    rep.format_version = _check_header(block)
    pos = FILE_HEADER_LEN  # position inside `block`
    base = 0  # file offset of `block`
    pending: list[bytes] | None = None
    pending_start = 0
    while True:
        n = len(block)
        while pos < n:
            if BLOCK_LEN - pos < CHUNK_HEADER_LEN:  # trailer padding
                pos = BLOCK_LEN
                break
            if pos + CHUNK_HEADER_LEN > n:  # header cut off by EOF
                rep.truncated = True
                pos = n
                break
            crc, length, ctype = _unpack_chunk_header(block, pos)
            start = pos + CHUNK_HEADER_LEN
            end = start + length
            bad = None
            if crc == 0 and length == 0 and ctype == 0:
                if not any(block[pos:]):
                    if n < BLOCK_LEN:  # zeros up to EOF: preallocated / torn tail
                        rep.truncated = True
                        pos = n
                        break
                    bad = "zero-filled block"
                else:
                    bad = "zero chunk header"
            elif ctype not in _CRC_SEED:
                bad = f"unknown chunk type {ctype}"
            elif end > BLOCK_LEN:
                bad = "chunk crosses block boundary"
            elif end > n:  # chunk cut off by EOF (still being written?)
                rep.truncated = True
                pos = n
                break
            elif zlib.crc32(block[start:end], _CRC_SEED[ctype]) != crc:
                bad = "checksum mismatch"
            if bad == "checksum mismatch":
                # Header looked sane: drop just this chunk (and its record) and
                # try the next chunk; every chunk is verified by its own crc, so
                # this cannot let garbage through. (LevelDB would drop the block.)
                rep.corrupt_chunks += 1
                rep.errors.append(f"offset {base + pos}: checksum mismatch; chunk dropped")
                if pending is not None:
                    rep.errors.append(f"offset {pending_start}: partial record dropped")
                    pending = None
                rep.skipped_bytes += end - pos
                pos = end
                continue
            if bad is not None:
                rep.corrupt_chunks += 1
                rep.errors.append(f"offset {base + pos}: {bad}; skipping to offset {base + BLOCK_LEN}")
                if pending is not None:
                    rep.errors.append(f"offset {pending_start}: partial record dropped")
                    pending = None
                rep.skipped_bytes += n - pos
                pos = n
                break
            payload = block[start:end]
            rep.good_until = base + end
            if ctype == FULL:
                if pending is not None:
                    rep.corrupt_chunks += 1
                    rep.errors.append(f"offset {pending_start}: record without LAST chunk dropped")
                    pending = None
                rep.records += 1
                yield payload
            elif ctype == FIRST:
                if pending is not None:
                    rep.corrupt_chunks += 1
                    rep.errors.append(f"offset {pending_start}: record without LAST chunk dropped")
                pending, pending_start = [payload], base + pos
            elif pending is None:  # MIDDLE/LAST after a resync: its FIRST is lost
                rep.corrupt_chunks += 1
                rep.errors.append(f"offset {base + pos}: orphan chunk dropped")
            elif ctype == MIDDLE:
                pending.append(payload)
            else:  # LAST
                pending.append(payload)
                rep.records += 1
                yield b"".join(pending)
                pending = None
            pos = end
        if n < BLOCK_LEN:
            rep.size = base + n
            break
        base += BLOCK_LEN
        block = fp.read(BLOCK_LEN)
        pos = 0
        if not block:
            rep.size = base
            break
    if pending is not None:
        rep.truncated = True


def _record_class():
    """The `Record` protobuf class: wandb's own, or the wandb-free minimal schema.

    WANDB_READER_SCHEMA=minimal forces the minimal schema (wandb_min_schema.py).
    """
    if os.environ.get("WANDB_READER_SCHEMA") != "minimal":
        try:
            from wandb.proto import wandb_internal_pb2 as pb

            return pb.Record
        except ImportError:
            pass
    from benchmarks.reference_min_schema import Record

    return Record


def iter_records(path: str | os.PathLike, report: ScanReport | None = None):
    """Yield `wandb.proto.wandb_internal_pb2.Record` messages from a .wandb file."""
    from google.protobuf.message import DecodeError

    Record = _record_class()
    rep = report if report is not None else ScanReport()
    with open(path, "rb") as fp:
        for raw in iter_record_bytes(fp, rep):
            rec = Record()
            try:
                rec.ParseFromString(raw)
            except DecodeError as e:  # crc ok but not a Record: practically never
                rep.undecodable_records += 1
                rep.errors.append(f"undecodable record: {e}")
                continue
            yield rec


# --------------------------------------------------------------------------
# record -> python values


def _set_path(target: dict, path: list, value: Any) -> None:
    d = target
    for p in path[:-1]:
        nxt = d.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            d[p] = nxt
        d = nxt
    d[path[-1]] = value


def _del_path(target: dict, path: list) -> None:
    d = target
    for p in path[:-1]:
        d = d.get(p)
        if not isinstance(d, dict):
            return
    d.pop(path[-1], None)


def _item_key(item):
    nk = item.nested_key
    if len(nk) == 1:
        return nk[0]
    return item.key if not nk else tuple(nk)


def _split_items(items) -> tuple[list, list[str], bool]:
    """(keys, value_json texts) of History/Summary/Config items.

    A key is a str for the usual one-element path and a tuple for nested paths.
    wandb-core writes every key as `nested_key` and flattens dict values such as
    wandb.Image into paths like ("sample_image", "path"); the legacy Python
    writer (wandb < ~0.17) used `key` plus the whole dict as JSON. Both work.
    Returns (keys, texts, any_nested).
    """
    keys: list = []
    texts: list[str] = []
    ka, ta = keys.append, texts.append
    nested = False
    for it in items:
        nk = it.nested_key
        if len(nk) == 1:
            ka(nk[0])
        elif not nk:
            ka(it.key)
        else:
            ka(tuple(nk))
            nested = True
        ta(it.value_json)
    return keys, texts, nested


def _typed_value(item) -> Any:
    """HistoryItem's typed oneof (only with the x_history_value_encoding=typed setting)."""
    which = item.WhichOneof("value")
    if which is None or which == "none":
        return None
    if which == "json":
        return json.loads(item.json)
    return getattr(item, which)


def _loads_many(texts: list[str], items=None) -> list:
    """json.loads of many JSON texts with one parser call.

    Python's json accepts the NaN / Infinity / -Infinity tokens wandb writes.
    An empty text means the item carries a typed value instead of value_json.
    """
    if "" in texts:
        return [
            json.loads(t) if t else (_typed_value(items[i]) if items is not None else None) for i, t in enumerate(texts)
        ]
    try:
        return json.loads("[" + ",".join(texts) + "]")
    except ValueError:  # one bad value: decode one by one, keep raw text
        out = []
        for t in texts:
            try:
                out.append(json.loads(t))
            except ValueError:
                out.append(t)
        return out


def _apply(target: dict, keys: list, values: list) -> None:
    for k, v in zip(keys, values):
        if type(k) is tuple:
            _set_path(target, k, v)
        else:
            target[k] = v


def _ts(ts) -> _dt.datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=_dt.UTC)


@dataclass
class OfflineRun:
    run_dir: Path
    wandb_file: Path
    run_id: str = ""
    project: str = ""
    entity: str = ""  # empty for offline runs made without a login
    name: str = ""  # display name
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    host: str = ""
    start_time: _dt.datetime | None = None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    files: list[str] = field(default_factory=list)  # relative to files_dir
    exit_code: int | None = None
    runtime: float | None = None  # whole seconds, from the exit record
    state: str = "unknown"  # finished | failed | running | crashed
    wandb_version: str = ""
    scan: ScanReport = field(default_factory=ScanReport)

    @property
    def files_dir(self) -> Path:
        return self.run_dir / "files"

    def media_path(self, rel: str) -> Path:
        """Local path of a media file referenced by a history value's `path`."""
        return self.files_dir / rel


def read_run(
    run_dir_or_file: str | os.PathLike,
    *,
    keys: list[str] | None = None,
    summary: bool = True,
    stale_after_s: float = 300.0,
) -> OfflineRun:
    """Read one run directory (or its .wandb file) completely.

    keys: if given, history keeps only these top-level keys (+ _step).
    summary: False skips the summary records (wandb-core writes one next to
      every history row, so this roughly halves the decode work); the default
      summary is then approximately the last non-null history value per key.
    stale_after_s: a run without an exit record whose file has not been
    modified for this long is reported "crashed", otherwise "running".
    """
    p = Path(run_dir_or_file)
    if p.is_dir():
        cands = sorted(p.glob("run-*.wandb"))
        if not cands:
            raise FileNotFoundError(f"no run-*.wandb file in {p}")
        wfile, run_dir = cands[0], p
    else:
        wfile, run_dir = p, p.parent
    run = OfflineRun(run_dir=run_dir, wandb_file=wfile)
    keyset = (set(keys) | {"_step"}) if keys else None

    rows: list[dict] = []
    next_step = 0  # auto-step counter for rows that carry no step (format 1)
    files: dict[str, None] = {}
    summary_raw: dict = {}  # latest raw JSON text per key; decoded once at the end
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the cyclic GC only costs time
    try:
        for rec in iter_records(wfile, run.scan):
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                h = rec.history
                items = h.item
                ks, texts, nested = _split_items(items)
                if keyset is not None:
                    sel = [i for i, k in enumerate(ks) if (k if type(k) is str else k[0]) in keyset]
                    ks = [ks[i] for i in sel]
                    texts = [texts[i] for i in sel]
                    items = [items[i] for i in sel]
                values = _loads_many(texts, items)
                if not nested:
                    row = dict(zip(map(_intern, ks), values))
                else:
                    row = {}
                    _apply(row, [k if type(k) is tuple else _intern(k) for k in ks], values)
                step = row.get("_step")
                if not isinstance(step, int):
                    # format 0 always writes a "_step" item; format 1 writes
                    # record.step only for explicit wandb.log(..., step=N)
                    step = h.step.num if h.HasField("step") else next_step
                    row["_step"] = step
                next_step = step + 1
                rows.append(row)
            elif kind == "summary":
                if not summary:
                    continue
                ks, texts, _ = _split_items(rec.summary.update)
                summary_raw.update(zip(ks, texts))
                for it in rec.summary.remove:
                    k = _item_key(it)
                    summary_raw[k] = None
            elif kind == "config":
                ks, texts, _ = _split_items(rec.config.update)
                _apply(run.config, ks, _loads_many(texts))
                for it in rec.config.remove:
                    k = _item_key(it)
                    _del_path(run.config, [k] if type(k) is str else list(k))
            elif kind == "run":
                r = rec.run
                run.run_id, run.project, run.entity = r.run_id, r.project, r.entity
                run.name, run.group, run.job_type = r.display_name, r.run_group, r.job_type
                run.tags, run.notes, run.host = list(r.tags), r.notes, r.host
                run.start_time = _ts(r.start_time)
                next_step = max(next_step, r.starting_step)  # resumed runs
                ks, texts, _ = _split_items(r.config.update)
                _apply(run.config, ks, _loads_many(texts))
                ks, texts, _ = _split_items(r.summary.update)
                summary_raw.update(zip(ks, texts))
            elif kind == "files":
                for f in rec.files.files:
                    files[f.path] = None
            elif kind == "exit":
                run.exit_code = rec.exit.exit_code
                run.runtime = float(rec.exit.runtime)
            elif kind == "header":
                run.wandb_version = rec.header.version_info.producer
        live = [(k, t) for k, t in summary_raw.items() if t is not None]
        _apply(run.summary, [k for k, _ in live], _loads_many([t for _, t in live]))
        for k, t in summary_raw.items():
            if t is None:  # removed and not set again afterwards
                _del_path(run.summary, [k] if type(k) is str else list(k))
        run.history = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
        del rows
    finally:
        if gc_was_enabled:
            gc.enable()
    run.config.pop("_wandb", None)
    run.summary.pop("_wandb", None)
    run.files = list(files)
    if run.exit_code is not None:
        run.state = "finished" if run.exit_code == 0 else "failed"
    else:
        age = time.time() - wfile.stat().st_mtime
        run.state = "running" if age < stale_after_s else "crashed"
    return run


def list_runs(wandb_dir: str | os.PathLike = "wandb") -> list[Path]:
    """Run directories (offline-run-* and run-*) under a wandb/ directory, oldest first."""
    d = Path(wandb_dir)
    if not d.is_dir():
        return []
    out = [
        p
        for p in d.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and (p.name.startswith("offline-run-") or p.name.startswith("run-"))
        and any(p.glob("run-*.wandb"))
    ]
    # names look like [offline-]run-YYYYMMDD_HHMMSS-<id>
    return sorted(out, key=lambda p: p.name.removeprefix("offline-"))


if __name__ == "__main__":  # python wandb_offline_reader.py [wandb_dir]
    for rd in list_runs(sys.argv[1] if len(sys.argv) > 1 else "wandb"):
        r = read_run(rd)
        print(
            f"{rd.name}: id={r.run_id} name={r.name} project={r.project} state={r.state} "
            f"rows={len(r.history)} cols={r.history.shape[1]} clean={r.scan.clean}"
        )
