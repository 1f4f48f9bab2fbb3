"""Bounded fuzzing of the `.wandb` reader (issue 17): 200 mutants of a run file written by the real wandb library.

Mutants: bytes changed inside one record with its checksum recomputed (the malformed-but-checksummed class),
records duplicated / dropped / swapped, raw bytes flipped, inserted or deleted without fixing checksums,
truncations.
For every mutant:

- `list_runs` and `open_run` raise nothing but the documented errors (`AnalyzerError`);
- the fast paths change nothing: the run read with every fast path disabled (protobuf for every record) is the
  same, frame and status;
- no value changes without a badge: a clean status means every row of an untouched record is the original's,
  and records duplicated, dropped or swapped never read as clean;
- rows read from damaged files are genuine (the original row of that step, value for value);
- after bytes inserted or deleted, every record whose bytes are intact is kept and the skipped count is exact.
"""

from __future__ import annotations

import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.core.errors import AnalyzerError
from analysis.sources import _batch, _decode, list_runs, open_run
from analysis.sources._schema import Record
from tests.test_sources_damage import damaged_records, record_spans
from tests.wandb_synth import record_payloads, reframe
from tests.wandb_writer import write_run

pytestmark = pytest.mark.slow

MUTANTS = 200
TIME_BUDGET_S = 30.0


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> tuple[Path, pd.DataFrame, list[bytes]]:
    rows: list[dict[str, Any]] = []
    for s in range(40):
        row: dict[str, Any] = {
            "global_step": s * 3,
            "train/loss": round(2.0 / (s + 1), 6),
            **{f"batch_{b}/recall": round(0.5 + 0.004 * s + 0.01 * b, 5) for b in range(24)},
        }
        if s % 9 == 0:
            row["problematic_batch_2"] = [f"images/batch_2/scan_{s}_{k}.png" for k in range(6)]
        if s == 7:
            row["batch_1/recall"] = "NaN"
        rows.append(row)
    folder = write_run(tmp_path_factory.mktemp("fuzz"), "fuzz", rows, config={"lr": 0.1})
    full = open_run(folder, cache=False).history
    return folder, full, record_payloads(next(folder.glob("*.wandb")))


def _mutate_record(rng: random.Random, payload: bytes) -> bytes:
    p = bytearray(payload)
    op = rng.choice(("flip", "set", "insert", "delete", "append"))
    k = rng.randrange(len(p))
    if op == "flip":
        p[k] ^= 1 << rng.randrange(8)
    elif op == "set":
        p[k] = rng.randrange(256)
    elif op == "insert":
        p[k:k] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
    elif op == "delete":
        del p[k : k + rng.randint(1, 3)]
    else:
        p += bytes(rng.randrange(32, 127) for _ in range(3))
    return bytes(p)


Shift = tuple[int, int, int]  # (offset, bytes inserted before it, bytes deleted from it)


def _mutant(
    rng: random.Random, data: bytes, payloads: list[bytes]
) -> tuple[str, bytes, tuple[bytes, bytes] | None, Shift | None]:
    """(kind, file bytes, (original, mutated) payload of the one record changed in place, or None, the bytes
    inserted or deleted, or None)."""
    kind = rng.choices(("record", "sequence", "raw", "insert", "delete", "truncate"), weights=(10, 3, 3, 2, 2, 2))[0]
    if kind == "record":
        j = rng.randrange(len(payloads))
        ps = list(payloads)
        ps[j] = _mutate_record(rng, ps[j])
        return kind, reframe(ps), (payloads[j], ps[j]), None
    if kind == "sequence":
        ps = list(payloads)
        j = rng.randrange(2, len(ps) - 1)
        op = rng.choice(("duplicate", "drop", "swap"))
        if op == "duplicate":
            ps.insert(j + 1, ps[j])
        elif op == "drop":
            del ps[j]
        else:
            ps[j], ps[j + 1] = ps[j + 1], ps[j]
        return kind, reframe(ps), None, None
    b = bytearray(data)
    at = rng.randrange(7, len(b))
    shift = None
    if kind == "raw":
        b[at] ^= 1 << rng.randrange(8)
    elif kind == "insert":
        shift = (at, rng.randint(1, 4), 0)
        b[at:at] = bytes(rng.randrange(256) for _ in range(shift[1]))
    elif kind == "delete":
        shift = (at, 0, rng.randint(1, 4))
        del b[at : at + shift[2]]
    else:
        del b[at:]
    return kind, bytes(b), None, shift


def _steps_of(payload: bytes) -> set[int]:
    """The `_step` a history record holds, per the full protobuf decoder (empty when it does not parse)."""
    try:
        rec = Record.FromString(payload)
        if rec.WhichOneof("record_type") != "history":
            return set()
        row, step = _decode.decode_history_slow(rec.history, None)
    except _decode.MALFORMED:
        return set()
    s = row.get("_step", step)
    return {int(s)} if isinstance(s, int) else set()


def _slow_read(folder: Path, monkeypatch: pytest.MonkeyPatch):
    """The run read with every fast path off: protobuf decodes every history and summary record."""
    with monkeypatch.context() as m:
        m.setattr(_batch, "decode_batch", lambda *a, **k: None)
        m.setattr(_decode, "split_history", lambda payload: None)
        m.setattr(_decode, "_ITEMS_ONLY", re.compile(b"(?!)"))
        return open_run(folder, cache=False)


def _rows_by_step(h: pd.DataFrame) -> dict[int, pd.Series]:
    return {int(s): row for s, row in zip(h["_step"], (r for _, r in h.iterrows()), strict=True)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    if isinstance(a, float) and np.isnan(a):
        return b is None or (isinstance(b, float) and np.isnan(b))
    return bool(a == b) if not isinstance(a, list) else a == b


def _assert_genuine(out: pd.DataFrame, full: pd.DataFrame, skip_steps: set[int], what: str) -> None:
    ref = _rows_by_step(full)
    for _, row in out.iterrows():
        s = int(row["_step"])
        if s in skip_steps:
            continue
        assert s in ref, f"{what}: step {s} is not in the original"
        for col, v in row.items():
            if col in ("_step", "_runtime", "_timestamp"):
                continue
            g = ref[s].get(col, np.nan)
            assert _same(v, g), f"{what}: step {s} {col}: {v!r} != original {g!r}"


def test_two_hundred_mutants_of_a_real_run(original, tmp_path, monkeypatch):
    folder, full, payloads = original
    data = next(folder.glob("*.wandb")).read_bytes()
    name = next(folder.glob("*.wandb")).name
    spans = record_spans(data)
    history = [i for i, p in enumerate(payloads) if Record.FromString(p).WhichOneof("record_type") == "history"]
    rng = random.Random(17)
    started = time.monotonic()
    kinds: dict[str, int] = {}
    refused = 0
    for i in range(MUTANTS):
        kind, blob, changed, shift = _mutant(rng, data, payloads)
        kinds[kind] = kinds.get(kind, 0) + 1
        what = f"mutant {i} ({kind})"
        where = tmp_path / f"m{i}" / "wandb" / folder.name
        where.mkdir(parents=True)
        (where / name).write_bytes(blob)
        try:
            refs = list_runs(where.parent)
            run = open_run(where, cache=False)
        except AnalyzerError:
            refused += 1
            shutil.rmtree(tmp_path / f"m{i}")
            continue
        assert len(refs) == 1, what
        slow = _slow_read(where, monkeypatch)
        pd.testing.assert_frame_equal(run.history, slow.history, obj=f"{what}: fast vs full decoder")
        assert run.status.skipped_records == slow.status.skipped_records, what
        assert run.history["_step"].is_unique or not run.status.clean, f"{what}: duplicate steps without a badge"
        if kind == "record" and changed is not None:
            touched = _steps_of(changed[0]) | _steps_of(changed[1])  # the record's step before and after
            _assert_genuine(run.history, full, touched, what)
            if run.status.clean:  # nothing lost without a badge
                kept = set(run.history["_step"]) | touched
                assert set(full["_step"]) <= kept, f"{what}: rows lost without a badge"
        elif kind == "sequence":
            assert not run.status.clean, f"{what}: reads as clean"
            _assert_genuine(run.history, full, set(), what)
        else:
            _assert_genuine(run.history, full, set(), what)
            if run.status.clean and not run.status.truncated:
                assert len(run.history) == len(full), f"{what}: rows lost without a badge"
            if shift is not None:  # the scan resynchronises: every record whose bytes are intact is kept
                damaged = damaged_records(spans, *shift)
                intact = [k for k, i in enumerate(history) if i not in damaged]
                assert list(run.history["_step"]) == intact, f"{what}: intact records lost"
                assert run.status.skipped_records == len(damaged), f"{what}: skipped count"
        shutil.rmtree(tmp_path / f"m{i}")
    elapsed = time.monotonic() - started
    assert elapsed < TIME_BUDGET_S, f"{MUTANTS} mutants took {elapsed:.1f} s"
    assert all(kinds.get(k, 0) >= 10 for k in ("record", "sequence", "raw", "insert", "delete", "truncate")), kinds
    assert refused < MUTANTS // 10, f"{refused} mutants refused as a whole"  # damage costs records, not files
