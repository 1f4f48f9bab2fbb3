"""Decode `.wandb` records into run identity, config, summary and history rows.

Speed: wandb-core writes ~600 `HistoryItem`s per step for a 200-batch run, and walking them one protobuf object at
a time costs ~1 us each. The fast path instead matches the raw bytes of a history or summary record with one
regular expression (C speed) that only accepts the plain item layout (one key, JSON value, one-byte-or-more
varint lengths, no control bytes), turns the items into one JSON object text and parses it with one
`json.loads`. Any record whose bytes do not fit that layout exactly (nested keys such as media dicts, typed
values, legacy layouts, keys with quotes) is decoded through the protobuf classes instead, so the result is
the same either way; the fast path only changes the cost. A match is only taken once the items it found,
re-encoded with their true lengths, give back the record's bytes exactly (a regex alone would accept a value
whose length byte disagrees with it, e.g. bytes appended after the last item) and their text is valid UTF-8
(which protobuf requires of string fields).

`MALFORMED` lists what decoding a checksummed but malformed record can raise; the decoder counts such a record
as skipped instead of letting the error end the read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from analysis.sources import _schema

# what decoding one checksummed record with bad content can raise (protobuf, JSON, dates, varints, deep nesting)
MALFORMED: tuple[type[BaseException], ...] = (DecodeError, ValueError, OverflowError, RecursionError, IndexError)

# one protobuf varint length (up to 5 bytes)
_LEN = rb"[\x80-\xff]{0,4}[\x00-\x7f]"
# item := tag(1, LEN) len  tag(key 1 | nested_key 2) len KEY  tag(value_json 16) len VALUE
# KEY has no control bytes, quote or backslash (so it is a valid JSON string body); VALUE is JSON text, which
# never contains raw control bytes, so it ends right before the next item's tag (0x0a), the history step
# tag (0x12) or the end of the payload.


def _item_pattern(capture: bool) -> bytes:
    g = b"(" if capture else b"(?:"
    return (
        rb"\x0a"
        + _LEN
        + g
        + rb"[\x0a\x12])"
        + _LEN
        + g
        + rb'[^\x00-\x1f"\\\x82]*+)\x82\x01'
        + _LEN
        + g
        + rb"[^\x00-\x1f]*+)"
    )


# general item (any varint length): used by the summary fast path, which is verified with a full match
_ITEM = re.compile(_item_pattern(True), re.S)
_ITEMS_ONLY = re.compile(rb"(?:" + _item_pattern(False) + rb")*+", re.S)
# one-byte lengths only: the history fast path (matches verified by re-encoding them, see `split_history`)
_ITEM1 = re.compile(
    rb'\x0a[\x00-\x7f]([\x0a\x12])[\x00-\x7f]([^\x00-\x1f"\\\x82]*+)\x82\x01[\x00-\x7f]([^\x00-\x1f]*+)', re.S
)
# one JSON number (or NaN / +-Infinity), and a comma-separated list of them
_NUMBER = rb"(?:-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?|NaN|-?Infinity)"
NUMBERS = re.compile(_NUMBER + rb"(?:," + _NUMBER + rb")*+")


def _varint(b: bytes) -> int:
    out = 0
    for i, byte in enumerate(b):
        out |= (byte & 0x7F) << (7 * i)
    if out >= 1 << 63:  # int64 two's complement
        out -= 1 << 64
    return out


def loads(text: str | bytes) -> Any:
    """json.loads that keeps undecodable text as the raw string instead of failing the whole record."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than json.loads can recurse
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _typed_value(item: Any) -> Any:
    which = item.WhichOneof("value")
    if which is None or which == "none":
        return None
    if which == "json":
        return loads(item.json)
    return getattr(item, which)


def item_key(item: Any) -> str | tuple[str, ...]:
    """The key of a History/Summary/Config item: a str, or a tuple for a nested path."""
    nk = item.nested_key
    if len(nk) == 1:
        return nk[0]
    if not nk:
        return item.key
    return tuple(nk)


def set_path(target: dict, key: str | tuple[str, ...], value: Any) -> None:
    if type(key) is not tuple:
        target[key] = value
        return
    d = target
    for part in key[:-1]:
        nxt = d.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            d[part] = nxt
        d = nxt
    d[key[-1]] = value


def del_path(target: dict, key: str | tuple[str, ...]) -> None:
    path = key if type(key) is tuple else (key,)
    d: Any = target
    for part in path[:-1]:
        d = d.get(part) if isinstance(d, dict) else None
        if d is None:
            return
    if isinstance(d, dict):
        d.pop(path[-1], None)


def apply_items(target: dict, items: Any) -> None:
    """Apply Config/Summary `update` items to a nested dict."""
    for it in items:
        set_path(target, item_key(it), loads(it.value_json) if it.value_json else None)


def _is_varint(b: bytes) -> bool:
    """Whether `b` is exactly one varint of at most 10 bytes."""
    return 0 < len(b) <= 10 and b[-1] < 0x80 and all(c >= 0x80 for c in b[:-1])


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _encode_items(items: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """The protobuf bytes of (key tag, key, value_json) items, with their true (varint) lengths."""
    parts = []
    for tag, key, value in items:
        inner = tag + _varint_bytes(len(key)) + key + b"\x82\x01" + _varint_bytes(len(value)) + value
        parts.append(b"\x0a" + _varint_bytes(len(inner)) + inner)
    return b"".join(parts)


def _valid_text(items: list[tuple[bytes, bytes, bytes]]) -> bool:
    """Whether every key and value is valid UTF-8 (protobuf rejects a record whose strings are not)."""
    try:
        for _, key, value in items:
            key.decode()
            if not value.isascii():
                value.decode()
    except UnicodeDecodeError:
        return False
    return True


def split_history(payload: bytes) -> tuple[dict[bytes, bytes], bytes, int | None, int] | None:
    """Fast path: (key -> raw JSON value, values joined by commas, record step, length of the item region).

    None when the record is unusual (nested keys, typed values, long items, repeated keys, lengths that do not
    match the bytes, text that is not UTF-8): use `decode_history_slow` then."""
    items = _ITEM1.findall(payload)
    d = {k: v for _, k, v in items}
    n = len(items)
    if len(d) != n:  # a key twice in one row: let protobuf order it
        return None
    encoded = _encode_items(items)
    end = len(encoded)
    if payload[:end] != encoded or not _valid_text(items):
        return None
    joined = b",".join(d.values())
    rest = len(payload) - end
    if rest == 0:
        return d, joined, None, end
    # the only field allowed after the items: HistoryRecord.step (tag 0x12, len, [0x08 varint])
    if rest >= 2 and payload[end] == 0x12 and payload[end + 1] == rest - 2:
        if rest == 2:  # empty step message: no explicit step
            return d, joined, None, end
        varint = payload[end + 3 :]
        if payload[end + 2] == 0x08 and _is_varint(varint):  # a step of 0 counts as none, as in the slow path
            return d, joined, _varint(varint) or None, end
    return None


def decode_history_slow(payload: bytes, keyset: frozenset[bytes] | None) -> tuple[dict, int | None]:
    """Any history record, through protobuf: (row with str keys, nested dicts rebuilt; record step or None)."""
    rec = _schema.HistoryRecord()
    rec.ParseFromString(payload)
    row: dict = {}
    for it in rec.item:
        key = item_key(it)
        if keyset is not None and (key if type(key) is str else key[0]).encode() not in keyset:
            continue
        value = loads(it.value_json) if it.value_json else _typed_value(it)
        set_path(row, key, value)
    step = rec.step.num if rec.HasField("step") and rec.step.num else None
    return row, step


def summary_updates(payload: bytes) -> tuple[list[tuple[Any, bytes | None]], list[Any]]:
    """One summary record -> ([(key, raw JSON value)], [removed keys]). Keys: bytes, or tuple of str if nested."""
    if _ITEMS_ONLY.fullmatch(payload) is not None:
        items = _ITEM.findall(payload)
        if _encode_items(items) == payload and _valid_text(items):
            return [(k, v) for _, k, v in items], []
    rec = _schema.SummaryRecord()
    rec.ParseFromString(payload)
    ups = []
    for it in rec.update:
        k = item_key(it)
        ups.append((k.encode() if type(k) is str else k, it.value_json.encode() if it.value_json else None))
    rem = []
    for it in rec.remove:
        k = item_key(it)
        rem.append(k.encode() if type(k) is str else k)
    return ups, rem


def finish_summary(raw: dict) -> dict:
    """Decode the latest raw summary text per key into a nested dict (one json.loads for all values)."""
    live = [(k, v) for k, v in raw.items() if v is not None]
    try:
        values = json.loads(b"[" + b",".join(v for _, v in live) + b"]") if live else []
    except (ValueError, RecursionError):
        values = [loads(v) for _, v in live]
    out: dict = {}
    for (k, _), v in zip(live, values):
        set_path(out, k.decode("utf-8", "replace") if type(k) is bytes else k, v)
    return out


def timestamp(ts: Any) -> dt.datetime | None:
    """The datetime of a protobuf Timestamp; None when unset or outside what datetime can hold (year 1..9999)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    try:
        return ts.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        return None


@dataclass
class Identity:
    """What the run record says about a run."""

    run_id: str = ""
    name: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    host: str = ""
    created: dt.datetime | None = None
    starting_step: int = 0


def identity(run: Any) -> Identity:
    return Identity(
        run_id=run.run_id,
        name=run.display_name,
        project=run.project,
        entity=run.entity,
        group=run.run_group,
        job_type=run.job_type,
        tags=list(run.tags),
        notes=run.notes,
        host=run.host,
        created=timestamp(run.start_time),
        starting_step=run.starting_step,
    )
