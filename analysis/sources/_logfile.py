"""Crash-safe scanning of the `.wandb` container: header, 32 KiB blocks, CRC-checked chunks -> record payloads.

Layout (LevelDB-log style, verified on wandb 0.16 and 0.31 files)::

    header := b":W&B" | uint16 LE 0xBEE1 | uint8 version        (7 bytes, at the start of block 0)
    block  := 32768 bytes; chunks never cross a block end; < 7 bytes left at a block end are padding
    chunk  := uint32 LE crc32(type byte + payload) | uint16 LE length | uint8 type | payload
              type 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST

Damage policy: a chunk with a bad checksum costs the record it belongs to and scanning continues at the next
chunk; a chunk header that makes no sense costs the rest of its block; a file that simply stops (a live run,
a killed writer) ends the scan with `truncated` and keeps every complete record before the cut. No record is
returned unless every one of its chunks passed its checksum.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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
_READ_BLOCKS = 64  # read 2 MiB at a time


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

    __slots__ = ("pending", "status")

    def __init__(self, status: ReadStatus) -> None:
        self.status = status
        self.pending: list[bytes] | None = None  # chunks of a record whose LAST chunk has not been seen yet

    def drop(self, offset: int, what: str) -> None:
        """Count one lost record, say where and why, and forget any partly assembled record."""
        self.status.skipped_records += 1
        self.status.errors.append(f"offset {offset}: {what}")
        self.pending = None

    def add(self, ctype: int, payload: bytes, begin: int, end: int) -> bytes | None:
        """Take one checksummed chunk (file offsets `begin`..`end` of its payload); the record it completes, if any."""
        if ctype in (FULL, FIRST):
            if self.pending is not None:
                self.drop(begin, "record without its last chunk dropped")
            if ctype == FIRST:
                self.pending = [payload]
                return None
            self.status.bytes_read = end
            return payload
        if self.pending is None:  # MIDDLE/LAST whose FIRST was lost
            self.drop(begin, "orphan chunk dropped")
            return None
        self.pending.append(payload)
        if ctype == MIDDLE:
            return None
        record, self.pending = b"".join(self.pending), None
        self.status.bytes_read = end
        return record


_CUT = "cut"  # `_chunk_problem` verdict: the file ends inside this chunk
_BAD_CHECKSUM = "bad checksum"  # ... the chunk is well formed but its checksum does not match


def _chunk_problem(block: bytes, pos: int, crc: int, length: int, ctype: int) -> str | None:
    """What is wrong with the chunk at `pos` of `block`: None (nothing), `_CUT`, `_BAD_CHECKSUM`, or a description
    of a header that makes no sense (which costs the rest of the block)."""
    n = len(block)
    begin = pos + CHUNK_HEADER
    end = begin + length
    if ctype == 0 and length == 0 and crc == 0:
        if any(block[pos:]):
            return "zero chunk header"
        return _CUT if n < BLOCK else "zero-filled block"  # zeros to end of file: preallocated or torn tail
    if ctype not in _SEEDS:
        return f"unknown chunk type {ctype}"
    if end > BLOCK:
        return "chunk crosses a block boundary"
    if end > n:  # a live run or a killed writer
        return _CUT
    if zlib.crc32(block[begin:end], _SEEDS[ctype]) != crc:
        return _BAD_CHECKSUM
    return None


def _scan_block(block: bytes, base: int, pos: int, records: _Records) -> Iterator[bytes]:
    """Records completed by the chunks of one block (file offset `base`), from `pos` on. A cut chunk marks the
    status truncated; it can only happen in the last, short block of the file."""
    status = records.status
    n = len(block)
    while pos < n and BLOCK - pos >= CHUNK_HEADER:  # fewer bytes than a chunk header at a block end: padding
        if pos + CHUNK_HEADER > n:  # chunk header cut by end of file
            status.truncated = True
            return
        crc, length, ctype = _chunk_header(block, pos)
        end = pos + CHUNK_HEADER + length
        problem = _chunk_problem(block, pos, crc, length, ctype)
        if problem is None:
            record = records.add(ctype, block[pos + CHUNK_HEADER : end], base + pos + CHUNK_HEADER, base + end)
            if record is not None:
                yield record
        elif problem == _CUT:
            status.truncated = True
            return
        elif problem == _BAD_CHECKSUM:
            records.drop(base + pos, "checksum mismatch, record dropped")
        else:
            records.drop(base + pos, f"{problem}, rest of block skipped")
            return
        pos = end


def _blocks(fp: BinaryIO, base: int, stop: int | None) -> Iterator[bytes]:
    """The blocks of `fp` from file offset `base` (a block start), read a few at a time; the last may be short."""
    size = BLOCK * _READ_BLOCKS
    if stop is not None:  # read no more than the caller will look at
        size = max(BLOCK, min(size, -(-(stop - base) // BLOCK) * BLOCK))
    fp.seek(base)
    while buf := fp.read(size):
        for at in range(0, len(buf), BLOCK):
            yield buf[at : at + BLOCK]
        if len(buf) < size:
            return


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
        base = start - start % BLOCK  # file offset of the current block
        pos = start - base  # where to start inside it
        for block in _blocks(fp, base, stop):
            yield from _scan_block(block, base, pos, records)
            if len(block) < BLOCK:  # the end of the file
                break
            base += BLOCK
            pos = 0
            if stop is not None and base >= stop:
                return
        if records.pending is not None:
            status.truncated = True
        if status.bytes_read < HEADER_LEN:
            status.bytes_read = HEADER_LEN
