"""The vectorised history decoder never accepts a misparse: random rows with hostile keys and values decode
exactly as protobuf itself reads them (item by item), whichever path each batch takes."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from analysis.core.run import ReadStatus
from analysis.sources import _batch, _decode, _schema
from analysis.sources._decoder import Decoder

HOSTILE_KEYS = [
    "batch_1/recall",
    "a\x82\x01b",
    "new\nline",
    "tab\x12x",
    'quo"te',
    "back\\slash",
    "ключ",
    "x" * 130,
    "é\x82",
    "_runtime",
    "val/batch_2/hmean",
    "a.b/c.d",
    "\x0a\x0a",
]


def _value(rng: random.Random):
    kind = rng.randrange(9)
    if kind == 0:
        return "NaN"
    if kind == 1:
        return rng.choice(["Infinity", "-Infinity"])
    if kind == 2:
        return rng.randrange(-(10**6), 10**6)
    if kind == 3:
        return [f"data/img_{i}.png" for i in range(rng.randrange(1, 40))]  # often > 127 bytes
    if kind == 4:
        return "s\x01\x82" + "y" * rng.randrange(0, 200)
    if kind == 5:
        return rng.choice([True, False, None])
    if kind == 6:
        return 2**60 + rng.randrange(10)
    return rng.random()


def _payload(rng: random.Random, step: int, plain: bool = False) -> bytes:
    rec = _schema.HistoryRecord()
    keys = (
        [f"batch_{b}/recall" for b in range(8)]
        if plain
        else [*rng.sample(HOSTILE_KEYS, rng.randrange(1, 6)), f"batch_{rng.randrange(5)}/precision"]
    )
    for k in [*keys, "_step"]:
        it = rec.item.add()
        it.nested_key.append(k)
        v = step if k == "_step" else rng.random() if plain else _value(rng)
        it.value_json = v if isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity") else json.dumps(v)
    if rng.random() < 0.3:
        rec.step.num = step
    return rec.SerializeToString()


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_random_hostile_rows_decode_like_protobuf():
    rng = random.Random(7)
    for trial in range(6):
        # runs of plain rows (vectorised) between hostile ones (row by row)
        payloads = [_payload(rng, s, plain=(s // 10) % 2 == 0) for s in range(150)]
        expected = [_decode.decode_history_slow(p, None)[0] for p in payloads]
        records = [_schema.Record(history=p).SerializeToString() for p in payloads]
        dec = Decoder(None)
        dec.feed(records, ReadStatus())
        frame, _ = dec.finish()
        assert len(frame) == 150
        for i, row in enumerate(expected):
            got = frame.iloc[i]
            for k, v in row.items():
                g = got[k]
                if isinstance(g, np.generic):
                    g = g.item()
                if v is None:
                    assert g is None or (isinstance(g, float) and math.isnan(g)), (trial, i, k, g)
                else:
                    assert _same(g, v) or (isinstance(v, bool) and g == v), (trial, i, k, g, v)
            for k in frame.columns:  # nothing invented
                if k not in row:
                    g = got[k]
                    assert g is None or (isinstance(g, float) and math.isnan(g)), (trial, i, k, g)


def test_plain_rows_take_the_vectorised_path():
    rng = random.Random(3)
    payloads = []
    for s in range(64):
        rec = _schema.HistoryRecord()
        for k, v in [("_step", s), *((f"batch_{b}/recall", rng.random()) for b in range(30))]:
            it = rec.item.add()
            it.nested_key.append(k)
            it.value_json = json.dumps(v)
        payloads.append(rec.SerializeToString())
    from analysis.sources._frame import HistoryFrame

    frame = HistoryFrame()
    done = _batch.decode_batch(payloads, frame, None)
    assert isinstance(done, _batch.BatchResult) and frame.n == 64 and done.last_step == 63
    hostile = list(payloads)
    hostile[10] = _payload(rng, 10)  # one unusual row: the batch reports which rows are plain
    mask = _batch.decode_batch(hostile, HistoryFrame(), None)
    assert isinstance(mask, np.ndarray) and not mask[10] and mask.sum() >= 63 - 1


@pytest.mark.parametrize("texts", [[b"0.5,1", b"2"], [b"[1]", b"2"]])
def test_damaged_number_texts_raise_instead_of_misaligning(texts):
    """A damaged number text holding a comma read as two numbers, one more than there were cells, and the batch
    decoder then failed writing them (a fuzz mutant of a real run: "shape mismatch ... (1161,) ... (1160,)"). The
    parser now raises ValueError, which sends the batch to the record-by-record path."""
    from analysis.sources._frame import parse_numbers

    with pytest.raises(ValueError):
        parse_numbers(texts)
