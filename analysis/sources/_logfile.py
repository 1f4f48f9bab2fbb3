"""Crash-safe scanning of the `.wandb` container: header, 32 KiB blocks, CRC-checked chunks -> record payloads.

Layout (LevelDB-log style, verified on wandb 0.16 and 0.31 files)::

    header := b":W&B" | uint16 LE 0xBEE1 | uint8 version        (7 bytes, at the start of block 0)
    block  := 32768 bytes; chunks never cross a block end; < 7 bytes left at a block end are padding
    chunk  := uint32 LE crc32(type byte + payload) | uint16 LE length | uint8 type | payload
              type 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST

Damage policy: a chunk with a bad checksum costs the record it belongs to, and scanning continues at the next
chunk when its length leads to one. Otherwise (a damaged length, bytes inserted or deleted, which shift every
later chunk off the block grid) the scan resynchronises: it looks byte by byte for the next chunk whose checksum
matches and goes on from there, learning the shifted block grid again from the next block end (a FIRST or
MIDDLE chunk ends exactly at one, padding of fewer than 7 zero bytes precedes one). So damage costs the records it
touches, not the rest of the file. A file that simply stops (a live run, a killed writer) ends the scan with
`truncated` and keeps every complete record before the cut. No record is returned unless every one of its chunks
passed its checksum; the records of a stretch skipped while resynchronising are counted exactly by their record
numbers (`_sequence`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from analysis.core.errors import NotAWandbFile
from analysis.core.run import ReadStatus

MAGIC = b":W&B\xe1\xbe"
HEADER_LEN = 7
BLOCK = 32 * 1024
CHUNK_HEADER = 7
SUPPORTED_VERSIONS = (0, 1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_SEEDS = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}
_chunk_header = struct.Struct("<IHB").unpack_from
_READ = 64 * BLOCK  # read 2 MiB at a time
_SCAN = 64 * 1024  # resynchronising looks at this many offsets at a time
_BACK = 2 * BLOCK  # how far a scan may step back (a look at the chunk after a damaged one, then a resync)


def check_header(head: bytes, path: Path | str = "") -> int:
    """Return the format version of a `.wandb` file header, or raise NotAWandbFile."""
    where = f"{path}: " if path else ""
    if len(head) < HEADER_LEN:
        raise NotAWandbFile(f"{where}not a wandb run file: {len(head)} bytes, too short for the .wandb header")
    if head[:6] != MAGIC:
        raise NotAWandbFile(f"{where}not a wandb run file: it does not start with the ':W&B' header")
    version = head[6]
    if version not in SUPPORTED_VERSIONS:
        raise NotAWandbFile(
            f"{where}.wandb format version {version} was written by a newer wandb than this "
            f"reader supports (versions {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    return version


class _Records:
    """Joins chunks into records and keeps the books on `status`; `drop` is the one place a record is given up."""

    __slots__ = ("lost", "pending", "status")

    def __init__(self, status: ReadStatus) -> None:
        self.status = status
        self.pending: list[bytes] | None = None  # chunks of a record whose LAST chunk has not been seen yet
        self.lost = False  # a record was just dropped: MIDDLE/LAST chunks that follow are its rest

    def drop(self, offset: int, what: str) -> None:
        """Count one lost record, say where and why, and forget any partly assembled record."""
        self.status.skipped_records += 1
        self.status.errors.append(f"offset {offset}: {what}")
        self.pending = None
        self.lost = True

    def add(self, ctype: int, payload: bytes, begin: int, end: int) -> bytes | None:
        """Take one checksummed chunk (file offsets `begin`..`end` of its payload); the record it completes, if any."""
        if ctype in (FULL, FIRST):
            if self.pending is not None:
                self.drop(begin, "record without its last chunk dropped")
            self.lost = False
            if ctype == FIRST:
                self.pending = [payload]
                return None
            self.status.bytes_read = end
            return payload
        if self.pending is None:  # MIDDLE/LAST whose FIRST was lost
            if not self.lost:  # else: the rest of the record just counted
                self.drop(begin, "orphan chunk dropped")
            return None
        self.pending.append(payload)
        if ctype == MIDDLE:
            return None
        record, self.pending = b"".join(self.pending), None
        self.status.bytes_read = end
        return record


class _Bytes:
    """The file's bytes from an offset on, read `_READ` at a time; `limit` (when set) stands for the end."""

    __slots__ = ("at_limit", "base", "buf", "eof", "fp", "limit")

    def __init__(self, fp: BinaryIO, start: int, limit: int | None) -> None:
        self.fp, self.limit = fp, limit
        self.base, self.buf = start, b""
        self.eof = False  # nothing more to read (the end of the file, or `limit`)
        self.at_limit = False  # ... and it was `limit`
        fp.seek(start)

    def get(self, pos: int, n: int) -> bytes:
        """Up to `n` bytes from file offset `pos` (fewer at the end). Going back up to `_BACK` bytes before the
        furthest offset asked for (a look at the chunk after a damaged one, then a scan) costs no new read."""
        end = pos + n
        if pos < self.base:  # further back than `_BACK`: read again from there
            self.fp.seek(pos)
            self.base, self.buf, self.eof, self.at_limit = pos, b"", False, False
        if end > self.base + len(self.buf) and not self.eof:
            keep = max(self.base, pos - _BACK)
            self.buf, self.base = self.buf[keep - self.base :], keep
            want = max(end - self.base - len(self.buf), _READ)
            if self.limit is not None:
                want = min(want, self.limit - self.base - len(self.buf))
            got = self.fp.read(want) if want > 0 else b""
            self.buf += got
            if len(got) < want or want <= 0:
                self.eof = True
                self.at_limit = self.limit is not None and self.base + len(self.buf) >= self.limit
        at = pos - self.base
        return self.buf[at : at + n]

    def zeros_to_end(self, pos: int) -> bool:
        """Whether every byte from `pos` to the end (or `limit`) is zero: a preallocated or torn tail."""
        here = self.fp.tell()
        try:
            self.fp.seek(pos)
            left = None if self.limit is None else self.limit - pos
            while left is None or left > 0:
                chunk = self.fp.read(_READ if left is None else min(_READ, left))
                if not chunk:
                    return True
                if chunk.count(0) != len(chunk):
                    return False
                if left is not None:
                    left -= len(chunk)
            return True
        finally:
            self.fp.seek(here)


_CUT = "cut"  # `_chunk_problem` verdict: the file ends inside this chunk
_BAD_CHECKSUM = "bad checksum"  # ... the chunk is well formed but its checksum does not match


def _chunk_problem(src: _Bytes, pos: int, phase: int | None) -> tuple[str | None, int, int, bytes]:
    """(what is wrong with the chunk at `pos`: None, `_CUT`, `_BAD_CHECKSUM` or a description, its end, its type,
    its payload). `phase` is the block grid (block starts are offsets = phase mod BLOCK), None when unknown."""
    head = src.get(pos, CHUNK_HEADER)
    if len(head) < CHUNK_HEADER:
        return _CUT, pos, 0, b""
    crc, length, ctype = _chunk_header(head)
    begin = pos + CHUNK_HEADER
    end = begin + length
    if ctype == 0 and length == 0 and crc == 0:
        return "zero chunk header", end, ctype, b""
    if ctype not in _SEEDS:
        return f"unknown chunk type {ctype}", end, ctype, b""
    if (end - pos if phase is None else (pos - phase) % BLOCK + CHUNK_HEADER + length) > BLOCK:
        return "chunk crosses a block boundary", end, ctype, b""
    payload = src.get(begin, length)
    if len(payload) < length:  # a live run or a killed writer
        return _CUT, end, ctype, b""
    if zlib.crc32(payload, _SEEDS[ctype]) != crc:
        return _BAD_CHECKSUM, end, ctype, b""
    return None, end, ctype, payload


def _grid_next(pos: int, phase: int | None) -> int:
    """`pos`, or the next block start when fewer bytes than a chunk header are left in its block (padding)."""
    if phase is not None:
        left = BLOCK - (pos - phase) % BLOCK
        if left < CHUNK_HEADER:
            return pos + left
    return pos


def _find_chunk(src: _Bytes, frm: int) -> int | None:
    """File offset of the first chunk at or after `frm` whose checksum matches, at any offset (None: none left).

    Offsets are screened in bulk (a chunk type 1-4 and a length that fits a block) before a checksum is computed;
    a chance match is one in 2**32 per screened offset."""
    limit = BLOCK - CHUNK_HEADER
    while True:
        win = src.get(frm, _SCAN + CHUNK_HEADER - 1)
        m = len(win) - CHUNK_HEADER + 1
        if m <= 0:
            return None
        a = np.frombuffer(win, dtype=np.uint8)
        t = a[6 : 6 + m]
        length = a[4 : 4 + m].astype(np.int32) | (a[5 : 5 + m].astype(np.int32) << 8)
        for i in np.flatnonzero((t >= FULL) & (t <= LAST) & (length <= limit)).tolist():
            crc, n, ctype = _chunk_header(win, i)
            payload = src.get(frm + i + CHUNK_HEADER, n)
            if len(payload) == n and zlib.crc32(payload, _SEEDS[ctype]) == crc:
                return frm + i
        frm += m


def _scan(src: _Bytes, pos: int, records: _Records) -> Iterator[bytes]:
    """Records completed by the chunks from file offset `pos` (a record boundary on the block grid) on."""
    status = records.status
    phase: int | None = 0
    seeds, crc32, header = _SEEDS, zlib.crc32, _chunk_header
    while True:
        pos = _grid_next(pos, phase)
        # the common case, inline: a whole, checksummed FULL chunk already in the buffer, on the known grid
        at = pos - src.base
        if phase is not None and at >= 0 and at + CHUNK_HEADER <= len(src.buf):
            crc, length, ctype = header(src.buf, at)
            end = pos + CHUNK_HEADER + length
            if (
                ctype == FULL
                and records.pending is None
                and end - src.base <= len(src.buf)
                and (pos - phase) % BLOCK + CHUNK_HEADER + length <= BLOCK
            ):
                payload = src.buf[at + CHUNK_HEADER : at + CHUNK_HEADER + length]
                if crc32(payload, seeds[FULL]) == crc:
                    records.lost = False
                    status.bytes_read = pos = end
                    yield payload
                    continue
        problem, end, ctype, payload = _chunk_problem(src, pos, phase)
        if problem == _CUT and not src.get(pos, 1):  # the end, right after a chunk (or in a block's padding)
            return
        if problem is None:
            if ctype in (FIRST, MIDDLE):  # these fill their block: its end is on the grid
                phase = end % BLOCK
            record = records.add(ctype, payload, pos + CHUNK_HEADER, end)
            pos = end
            if record is not None:
                yield record
            continue
        if problem == _CUT and src.at_limit:  # a head scan: stop at its last block, nothing is wrong
            return
        if problem == _BAD_CHECKSUM and phase is not None:
            # damaged payload, sane length: the next chunk is where the length says (most bit flips)
            after = _grid_next(end, phase)
            if _chunk_problem(src, after, phase)[0] is None or (src.eof and not src.get(after, 1)):
                records.drop(pos, "checksum mismatch, record dropped")
                pos = after
                continue
        if problem in ("zero chunk header", _CUT) and src.zeros_to_end(pos):
            status.truncated = True  # preallocated zeros, or the file just stops: nothing after it
            return
        found = _find_chunk(src, pos + 1)
        if found is None:
            if src.at_limit:
                return
            if problem == _CUT:  # the end of a live run, or of a killed writer
                status.truncated = True
            else:
                records.drop(pos, f"{problem}, no intact chunk after it")
            return
        gap = found - pos
        if phase is None and records.pending is None and gap < CHUNK_HEADER and src.get(pos, gap).count(0) == gap:
            phase = found % BLOCK  # padding at the end of a block of the shifted grid
        else:
            what = "checksum mismatch" if problem == _BAD_CHECKSUM else problem
            records.drop(pos, f"{what}; resynchronised {gap} bytes later (bytes changed, inserted or deleted)")
            phase = None
        pos = found


def iter_payloads(path: Path, status: ReadStatus, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """Yield the payload of every complete, checksummed record of `path`, from file offset `start`.

    `start` must be a record boundary (0, or a previous `status.bytes_read`). `status` is updated as the scan
    goes: `bytes_read` (offset just past the last good record), `truncated`, `skipped_records`, `errors`,
    `format_version`. `stop` limits the scan to the blocks before offset `stop` (used to read only the head of
    a file; such a scan leaves `truncated` and `bytes_read` as they are at its last block).
    """
    with open(path, "rb") as fp:
        status.format_version = check_header(fp.read(HEADER_LEN), path)
        start = max(start, HEADER_LEN)
        status.truncated = False
        records = _Records(status)
        limit = None if stop is None else max(start, -(-stop // BLOCK) * BLOCK)
        src = _Bytes(fp, start, limit)
        yield from _scan(src, start, records)
        if src.at_limit:
            return
        if records.pending is not None:
            status.truncated = True
        if status.bytes_read < HEADER_LEN:
            status.bytes_read = HEADER_LEN
