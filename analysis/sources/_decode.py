"""Decode `.wandb` records into run identity, config, summary and history rows.

Speed: wandb-core writes ~600 `HistoryItem`s per step for a 200-batch run, and walking them one protobuf object at
a time costs ~1 us each. The fast path instead matches the raw bytes of a history or summary record with one
regular expression (C speed) that only accepts the plain item layout (one key, JSON value, one-byte-or-more
varint lengths, no control bytes), turns the items into one JSON object text and parses it with one
`json.loads`. Any record whose bytes do not fit that layout exactly (nested keys such as media dicts, typed
values, legacy layouts, keys with quotes) is decoded through the protobuf classes instead, so the result is
the same either way; the fast path only changes the cost.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from analysis.sources import _schema

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
        + rb"[\x0a\x12]"
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
# one-byte lengths only: the history fast path verifies its matches by arithmetic instead of a second pass.
# Every matched item then takes exactly 7 framing bytes + key + value, so "7n + keys + values == length of the
# item region" holds only when the matches tile the region exactly, i.e. when they are the true items.
_ITEM1 = re.compile(
    rb'\x0a[\x00-\x7f][\x0a\x12][\x00-\x7f]([^\x00-\x1f"\\\x82]*+)\x82\x01[\x00-\x7f]([^\x00-\x1f]*+)', re.S
)
# characters of JSON numbers, NaN and +-Infinity (and the comma separator); anything else is not a number
NUMERIC_BYTES = b"0123456789.eE+-,NaInfity"


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
    except ValueError:
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


def split_history(payload: bytes) -> tuple[dict[bytes, bytes], bytes, int | None, int] | None:
    """Fast path: (key -> raw JSON value, values joined by commas, record step, length of the item region).

    None when the record is unusual (nested keys, typed values, long items, repeated keys): use
    `decode_history_slow` then."""
    pairs = _ITEM1.findall(payload)
    d = dict(pairs)
    n = len(pairs)
    if len(d) != n:  # a key twice in one row: let protobuf order it
        return None
    joined = b",".join(d.values())
    end = 7 * n + len(b"".join(d)) + len(joined) - (n - 1 if n else 0)
    rest = len(payload) - end
    if rest == 0:
        return d, joined, None, end
    # the only field allowed after the items: HistoryRecord.step (tag 0x12, len, [0x08 varint])
    if rest >= 2 and payload[end] == 0x12 and payload[end + 1] == rest - 2:
        if rest == 2:  # empty step message: no explicit step
            return d, joined, None, end
        if payload[end + 2] == 0x08 and payload[-1] < 0x80:
            return d, joined, _varint(payload[end + 3 :]), end
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
        return _ITEM.findall(payload), []
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
    except ValueError:
        values = [loads(v) for _, v in live]
    out: dict = {}
    for (k, _), v in zip(live, values):
        set_path(out, k.decode("utf-8", "replace") if type(k) is bytes else k, v)
    return out


def timestamp(ts: Any) -> dt.datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


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
