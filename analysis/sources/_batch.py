"""Vectorised decoding of many history records at once (numpy over the raw protobuf bytes, Arrow for numbers).

wandb-core writes each history row as a `HistoryRecord` whose items all have the same shape::

    0x0a L1 | 0x12 L2 key | 0x82 0x01 L3 value_json        (L1, L2, L3 one-byte lengths for short items)

followed by the optional step field (0x12 ...). Instead of walking ~600 items per row in Python, a batch of
rows is joined into one buffer and parsed with array operations: every `0x82 0x01` (the value_json tag) is
located, each item's start is derived from the end of the item before it, and the framing is then checked
item by item: tag bytes, and all three lengths consistent with the positions. A batch whose every item passes
is exactly what a protobuf parser would read (the parse of a byte string is sequential and unique, so a
consistent tiling from the first byte is *the* parse). Anything else (nested keys of media dicts, long values,
typed values, rows without `_step`, repeated steps) makes the whole batch fall back to the row-by-row decoder,
so the fast path changes the cost, never the result.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis.sources._frame import INT_LIMIT, POOL, HistoryFrame, parse_numbers

_NUMBER_START = np.zeros(256, dtype=bool)
_NUMBER_START[list(b"0123456789-NI")] = True  # JSON numbers, NaN, Infinity, -Infinity


def step_suffix(payload: bytes) -> int:
    """Length of the trailing HistoryRecord.step field (0x12 len [0x08 varint]); 0 if there is none, -1 if odd."""
    if payload.endswith(b"\x12\x00"):
        return 2
    for k in range(4, 14):
        if len(payload) >= k and payload[-k] == 0x12 and payload[-k + 1] == k - 2 and payload[-k + 2] == 0x08:
            return k if payload[-1] < 0x80 else -1
    return 0


def mirrors(summary: bytes, history: bytes) -> bool:
    """True when a summary record repeats the items of the history record after it (wandb-core writes one
    per step). Checked on bytes: the same length as the history's item region, and its first item, byte for
    byte, present in the history record. Such summary records carry nothing the history does not."""
    suffix = step_suffix(history)
    if suffix < 0 or len(summary) != len(history) - suffix or len(summary) < 2 or summary[0] != 0x0A:
        return False
    first_len = summary[1]
    if first_len >= 0x80:
        return False
    return history.find(summary[: 2 + first_len]) >= 0


def _gather(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """An Arrow binary array of the byte ranges [starts, starts + lengths) of `a`."""
    offsets = np.zeros(len(starts) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    kind = np.int32 if len(a) < 2**31 else np.int64
    idx: np.ndarray = np.arange(total, dtype=kind)
    idx += np.repeat((starts - offsets[:-1]).astype(kind), lengths)
    data = a[idx]
    return pa.Array.from_buffers(pa.binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _utf8(names: list[bytes]) -> bool:
    try:
        for name in names:
            name.decode()
    except UnicodeDecodeError:
        return False
    return True


class BatchResult:
    """What a decoded batch tells the decoder besides the values it wrote into the frame."""

    def __init__(self, last_step: int | None, next_step: int, summary: dict[bytes, bytes]) -> None:
        self.last_step = last_step  # step of the last row written (None: every row was filtered out)
        self.next_step = next_step
        self.summary = summary  # key -> raw JSON value of its last occurrence in the batch


def decode_batch(
    payloads: list[bytes],
    frame: HistoryFrame,
    last_step: int | None,
    keyset: frozenset[bytes] | None = None,
    always: frozenset[bytes] = frozenset(),
    filter_rows: bool = False,
) -> BatchResult | np.ndarray | None:
    """Decode `payloads` (consecutive history records) into new rows of `frame`.

    `keyset` keeps only those keys (`always` ones included); with `filter_rows`, rows holding none of the
    keys besides `always` are dropped. Returns, with the frame untouched, a boolean array (which payloads have
    the plain shape) when some do not, and None when all do but the batch cannot be taken as a whole (a row
    without `_step`, a repeated step)."""
    m = len(payloads)
    suffixes = [step_suffix(p) for p in payloads]
    if min(suffixes) < 0:
        return np.array([x >= 0 for x in suffixes]) if max(suffixes) >= 0 else None
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=m)
    starts = np.zeros(m, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    region_end = starts + lengths - np.array(suffixes, dtype=np.int64)
    buf = b"".join(payloads)
    a = np.frombuffer(buf, dtype=np.uint8)
    if len(a) < 8:
        return None
    cand = np.flatnonzero((a[:-1] == 0x82) & (a[1:] == 0x01))
    pj = np.searchsorted(starts, cand, side="right") - 1
    keep = cand < region_end[pj]
    p, pj = cand[keep], pj[keep]
    n = len(p)
    counts = np.bincount(pj, minlength=m)
    if n == 0:
        return np.zeros(m, dtype=bool)
    top = len(a) - 1
    # value length: a varint of 1 or 2 bytes after the value_json tag
    b0 = a[np.minimum(p + 2, top)].astype(np.int64)
    b1 = a[np.minimum(p + 3, top)].astype(np.int64)
    two3 = b0 >= 0x80
    l3 = np.where(two3, (b0 & 0x7F) | (b1 << 7), b0)
    vstart = p + 3 + two3
    vend = vstart + l3
    first = np.ones(n, dtype=bool)
    first[1:] = pj[1:] != pj[:-1]
    s = np.empty(n, dtype=np.int64)
    s[0] = 0
    s[1:] = vend[:-1]
    s[first] = starts[pj[first]]
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    sc = np.minimum(s, top - 5)
    # item length: a varint of 1 or 2 bytes after the item tag; then the key tag and a one-byte key length
    c0 = a[sc + 1].astype(np.int64)
    c1 = a[sc + 2].astype(np.int64)
    two1 = c0 >= 0x80
    l1 = np.where(two1, (c0 & 0x7F) | (c1 << 7), c0)
    tag = sc + 2 + two1
    l2 = a[tag + 1].astype(np.int64)
    ok = (
        (a[sc] == 0x0A)
        & ((a[tag] == 0x12) | (a[tag] == 0x0A))
        & (s == sc)
        & (~two1 | ((c1 < 0x80) & (l1 >= 0x80)))
        & (~two3 | ((b1 < 0x80) & (l3 >= 0x80)))
        & (l2 < 0x80)
        & (l1 == vend - tag)
        & (l2 == p - tag - 2)
        & (~last | (vend == region_end[pj]))
    )
    if not ok.all() or counts.min() == 0:
        good = counts > 0
        good[pj[~ok]] = False
        return good

    keys = pc.dictionary_encode(_gather(a, tag + 2, l2), memory_pool=POOL)
    names = keys.dictionary.to_pylist()
    if b"_step" not in names or not _utf8(names):  # protobuf rejects a key that is not UTF-8: rows decide
        return None
    key_codes = keys.indices.to_numpy()

    # one `_step` per row, strictly increasing, after the rows already read
    step_code = names.index(b"_step")
    step_items = np.flatnonzero(key_codes == step_code)
    if len(step_items) != m or not np.array_equal(pj[step_items], np.arange(m)):
        return None
    step_text = _gather(a, vstart[step_items], l3[step_items])
    try:
        steps = np.array([int(x) for x in step_text.to_pylist()], dtype=np.int64)
    except ValueError:
        return None
    if (m > 1 and not (np.diff(steps) > 0).all()) or (last_step is not None and steps[0] <= last_step):
        return None

    if keyset is None:
        wanted = np.ones(len(names), dtype=bool)
        row_keep = np.ones(m, dtype=bool)
    else:
        wanted = np.array([nm in keyset for nm in names], dtype=bool)
        row_keep = np.ones(m, dtype=bool)
        if filter_rows:
            informative = np.array([nm in keyset and nm not in always for nm in names], dtype=bool)
            row_keep = np.zeros(m, dtype=bool)
            row_keep[pj[informative[key_codes]]] = True
    item_keep = wanted[key_codes] & row_keep[pj]
    numeric = _NUMBER_START[a[np.minimum(vstart, top)]] & (l3 > 0) & item_keep
    others: list[tuple[int, Any]] = []
    for item in np.flatnonzero(~numeric & item_keep).tolist():  # lists, strings, booleans, null: a few cells
        try:
            others.append((item, json.loads(buf[vstart[item] : vend[item]])))
        except (ValueError, RecursionError):
            return None
    num_idx = np.flatnonzero(numeric)
    try:
        values = parse_numbers(_gather(a, vstart[num_idx], l3[num_idx]))
    except ValueError:
        return None

    # everything checked: now write
    colmap = np.full(len(names), -1, dtype=np.intp)
    wanted_idx = np.flatnonzero(wanted)
    colmap[wanted_idx] = frame.columns_for([names[i] for i in wanted_idx.tolist()])
    cols = colmap[key_codes]
    kept = int(row_keep.sum())
    first_row = frame.new_rows(kept)
    rows = first_row + np.cumsum(row_keep)[pj] - 1
    big = np.flatnonzero(np.abs(values) >= INT_LIMIT)
    if len(big):  # integers beyond float precision stay exact, as objects
        values = values.copy()
        for i in big:
            item = num_idx[i]
            v = json.loads(buf[vstart[item] : vend[item]])
            if type(v) is int:
                frame.add_object(int(rows[item]), int(cols[item]), v)
                values[i] = np.nan
    frame.put(rows[num_idx], cols[num_idx], values)
    for item, v in others:
        if v is not None:
            frame.add_object(int(rows[item]), int(cols[item]), v)

    # summary: each key's last value in the batch (raw JSON text, decoded once at the end)
    last_item = np.full(len(names), -1, dtype=np.int64)
    last_item[key_codes] = np.arange(n)  # repeated codes: the last assignment stays
    vs, ve = vstart[last_item].tolist(), vend[last_item].tolist()
    summary = {name: buf[b:e] for name, b, e in zip(names, vs, ve)}
    last_kept = int(steps[np.flatnonzero(row_keep)[-1]]) if kept else last_step
    return BatchResult(last_kept, int(steps[-1]) + 1, summary)
