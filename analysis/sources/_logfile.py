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


def read_version(path: Path) -> int:
    with open(path, "rb") as fp:
        return check_header(fp.read(HEADER_LEN), path)


def iter_payloads(path: Path, status: ReadStatus, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """Yield the payload of every complete, checksummed record of `path`, from file offset `start`.

    `start` must be a record boundary (0, or a previous `status.bytes_read`). `status` is updated as the scan
    goes: `bytes_read` (offset just past the last good record), `truncated`, `skipped_records`, `errors`,
    `format_version`. `stop` limits the scan to the first `stop` bytes (used to read only the head of a file).
    """
    with open(path, "rb") as fp:
        status.format_version = check_header(fp.read(HEADER_LEN), path)
        start = max(start, HEADER_LEN)
        status.truncated = False
        base = start - start % BLOCK  # file offset of the current block
        pos = start - base  # position inside the current block
        fp.seek(base)
        pending: list[bytes] | None = None
        chunk = BLOCK * _READ_BLOCKS if stop is None else max(BLOCK, min(BLOCK * _READ_BLOCKS, stop - base))
        while True:
            buf = fp.read(chunk)
            if not buf:
                break
            for bstart in range(0, len(buf), BLOCK):
                block = buf[bstart : bstart + BLOCK]
                n = len(block)
                while pos < n:
                    if BLOCK - pos < CHUNK_HEADER:  # block trailer padding
                        break
                    if pos + CHUNK_HEADER > n:  # chunk header cut by end of file
                        status.truncated = True
                        pos = n
                        break
                    crc, length, ctype = _chunk_header(block, pos)
                    begin = pos + CHUNK_HEADER
                    end = begin + length
                    problem = None
                    if ctype == 0 and length == 0 and crc == 0:
                        if not any(block[pos:]):
                            if n < BLOCK:  # zeros to end of file: preallocated or torn tail
                                status.truncated = True
                                pos = n
                                break
                            problem = "zero-filled block"
                        else:
                            problem = "zero chunk header"
                    elif ctype not in _SEEDS:
                        problem = f"unknown chunk type {ctype}"
                    elif end > BLOCK:
                        problem = "chunk crosses a block boundary"
                    elif end > n:  # chunk cut by end of file: a live run or a killed writer
                        status.truncated = True
                        pos = n
                        break
                    elif zlib.crc32(block[begin:end], _SEEDS[ctype]) != crc:
                        status.skipped_records += 1
                        status.errors.append(f"offset {base + pos}: checksum mismatch, record dropped")
                        pending = None
                        pos = end
                        continue
                    if problem is not None:
                        status.skipped_records += 1
                        status.errors.append(f"offset {base + pos}: {problem}, rest of block skipped")
                        pending = None
                        pos = n
                        break
                    payload = block[begin:end]
                    pos = end
                    if ctype == FULL:
                        if pending is not None:
                            status.skipped_records += 1
                            status.errors.append(f"offset {base + begin}: record without its last chunk dropped")
                            pending = None
                        status.bytes_read = base + end
                        yield payload
                    elif ctype == FIRST:
                        if pending is not None:
                            status.skipped_records += 1
                            status.errors.append(f"offset {base + begin}: record without its last chunk dropped")
                        pending = [payload]
                    elif pending is None:  # MIDDLE/LAST whose FIRST was lost
                        status.skipped_records += 1
                        status.errors.append(f"offset {base + begin}: orphan chunk dropped")
                    elif ctype == MIDDLE:
                        pending.append(payload)
                    else:
                        pending.append(payload)
                        status.bytes_read = base + end
                        yield b"".join(pending)
                        pending = None
                if n < BLOCK:
                    break
                base += BLOCK
                pos = 0
                if stop is not None and base >= stop:
                    return
            if len(buf) < chunk:
                break
        if pending is not None:
            status.truncated = True
        if status.bytes_read < HEADER_LEN:
            status.bytes_read = HEADER_LEN
