"""Checksummed but malformed records (issue 17, items 8 and 9): each costs itself, counted as skipped; the fast
paths never change a value that the full protobuf decoder would read differently or reject."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.sources import list_runs, open_run
from analysis.sources._schema import Record
from tests.wandb_synth import record_payloads, reframe
from tests.wandb_writer import write_run


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("malformed")
    rows = [
        {"global_step": s, "val/recall": round(0.5 + s / 100, 6), **{f"batch_{b}/recall": 0.724 for b in range(3)}}
        for s in range(12)
    ]
    return write_run(base, "malformed", rows, config={"lr": 0.1})


@pytest.fixture(scope="module")
def full(real_run) -> pd.DataFrame:
    return open_run(real_run, cache=False).history


def _kinds(payloads: list[bytes]) -> list[str | None]:
    return [Record.FromString(p).WhichOneof("record_type") for p in payloads]


def _planted(real_run: Path, tmp_path: Path, payloads: list[bytes]) -> Path:
    """A copy of the run folder whose .wandb file holds `payloads` (valid checksums)."""
    dst = tmp_path / "wandb" / real_run.name
    shutil.copytree(real_run, dst, ignore=shutil.ignore_patterns("*.wandb"))
    wfile = next(real_run.glob("*.wandb"))
    (dst / wfile.name).write_bytes(reframe(payloads))
    return dst


def _with_history(payload: bytes, history: bytes) -> bytes:
    rec = Record.FromString(payload)
    rec.history = history
    return rec.SerializeToString()


def _assert_only_rows_of(out: pd.DataFrame, full: pd.DataFrame, missing: set[int]) -> None:
    """`out` is `full` without the rows of steps `missing`, value for value."""
    expected = full[~full["_step"].isin(missing)].reset_index(drop=True)
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected, check_dtype=False)


def _history_step(payload: bytes) -> int:
    from analysis.sources._decode import decode_history_slow

    row, _ = decode_history_slow(Record.FromString(payload).history, None)
    return int(row["_step"])


def test_a_history_record_protobuf_rejects_is_one_skipped_record(real_run, full, tmp_path):
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    j = [i for i, k in enumerate(_kinds(payloads)) if k == "history"][3]
    step = _history_step(payloads[j])
    h = Record.FromString(payloads[j]).history
    payloads[j] = _with_history(payloads[j], h[:-4] + b"\x0a\xff\xff" + h[-1:])  # an item length past the end
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert run.status.skipped_records == 1
    _assert_only_rows_of(run.history, full, {step})


def test_a_malformed_summary_record_is_skipped_not_raised(real_run, full, tmp_path):
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    kinds = _kinds(payloads)
    j = kinds.index("summary")
    rec = Record.FromString(payloads[j])
    rec.summary = b"\x0a\x05\x12\x01a\x82"  # an item that ends inside its value_json tag
    payloads[j] = rec.SerializeToString()
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert run.status.skipped_records == 1
    _assert_only_rows_of(run.history, full, set())


def test_a_start_time_past_year_9999_leaves_the_run_listed_and_readable(real_run, full, tmp_path):
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    j = _kinds(payloads).index("run")
    rec = Record.FromString(payloads[j])
    rec.run.start_time.seconds = 400_000_000_000  # year ~14645: beyond datetime
    payloads[j] = rec.SerializeToString()
    folder = _planted(real_run, tmp_path, payloads)
    refs = list_runs(tmp_path / "wandb")
    assert [r.run_id for r in refs] == [Record.FromString(payloads[j]).run.run_id]
    assert refs[0].created is None
    run = open_run(folder, cache=False)
    assert run.ref.created is None and run.config["lr"] == 0.1
    _assert_only_rows_of(run.history, full, set())


def test_bytes_appended_after_the_last_item_do_not_change_its_value(real_run, full, tmp_path):
    """Three printable bytes after the last item extended its value (0.724 -> 0.724777) on the fast path;
    protobuf rejects that record, so the reader must skip it too."""
    from analysis.sources._batch import step_suffix

    payloads = record_payloads(next(real_run.glob("*.wandb")))
    planted = []
    for j, kind in enumerate(_kinds(payloads)):
        h = Record.FromString(payloads[j]).history if kind == "history" else b""
        cut = len(h) - step_suffix(h)
        if kind == "history" and j % 2 and h[cut - 1 : cut].isdigit():  # the last value ends with a digit
            planted.append(_history_step(payloads[j]))
            payloads[j] = _with_history(payloads[j], h[:cut] + b"777" + h[cut:])
    assert 3 <= len(planted) < len(full)
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert run.status.skipped_records == len(planted)
    _assert_only_rows_of(run.history, full, set(planted))


def test_a_length_byte_that_disagrees_with_the_value_goes_to_protobuf(real_run, full, tmp_path):
    """A value whose length byte is one short: protobuf reads a different (broken) item layout and rejects
    the record; the fast path must not read the value by its delimiters alone."""
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    j = [i for i, k in enumerate(_kinds(payloads)) if k == "history"][2]
    h = bytearray(Record.FromString(payloads[j]).history)
    at = h.find(b"\x82\x01\x050.724")
    assert at > 0
    h[at + 2] = 0x04
    payloads[j] = _with_history(payloads[j], bytes(h))
    step = _history_step(record_payloads(next(real_run.glob("*.wandb")))[j])
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert run.status.skipped_records == 1
    _assert_only_rows_of(run.history, full, {step})


# -- record numbers (issue 17, item 10) ------------------------------------------------------------------------
def _history_indices(payloads: list[bytes]) -> list[int]:
    return [i for i, k in enumerate(_kinds(payloads)) if k == "history"]


def test_a_duplicated_record_is_skipped_and_flagged(real_run, full, tmp_path):
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    j = _history_indices(payloads)[4]
    payloads.insert(j + 1, payloads[j])
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert run.status.skipped_records == 1 and not run.status.clean
    assert any("duplicated" in e for e in run.status.errors)
    _assert_only_rows_of(run.history, full, set())  # no duplicate step, no blank row


def test_a_dropped_record_is_counted_although_every_checksum_is_good(real_run, full, tmp_path):
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    j = _history_indices(payloads)[5]
    step = _history_step(payloads[j])
    del payloads[j]
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert run.status.skipped_records == 1 and any("missing" in e for e in run.status.errors)
    _assert_only_rows_of(run.history, full, {step})


def test_reordered_records_are_flagged(real_run, full, tmp_path):
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    a, b = _history_indices(payloads)[6:8]
    payloads[a], payloads[b] = payloads[b], payloads[a]
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert not run.status.clean and any("out of order" in e for e in run.status.errors)
    assert run.history["_step"].is_monotonic_increasing and run.history["_step"].is_unique


def test_a_damaged_record_number_costs_nothing_more(real_run, full, tmp_path):
    """A record whose own number is damaged (its content intact) must not make every later record look
    duplicated or out of order."""
    payloads = record_payloads(next(real_run.glob("*.wandb")))
    j = _history_indices(payloads)[3]
    rec = Record.FromString(payloads[j])
    rec.num += 5000
    payloads[j] = rec.SerializeToString()
    run = open_run(_planted(real_run, tmp_path, payloads), cache=False)
    assert run.status.skipped_records == 0
    _assert_only_rows_of(run.history, full, set())


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> Path:
    """A real run over several 32 KiB blocks."""
    rows = [
        {"global_step": s, **{f"batch_{b}/recall": round(0.5 + 0.001 * s + 0.01 * b, 5) for b in range(40)}}
        for s in range(60)
    ]
    return write_run(tmp_path_factory.mktemp("big"), "big", rows)


def test_the_skipped_count_is_exact_when_a_damaged_stretch_holds_many_records(big_run, tmp_path):
    """Chunks dropped by the framing scan are only a guess at the records lost (a senseless chunk header costs
    the rest of its block, counted as one); the record numbers say exactly how many."""
    from analysis.sources._logfile import BLOCK

    real_run = big_run
    full = open_run(real_run, cache=False).history
    wfile = next(real_run.glob("*.wandb"))
    data = bytearray(wfile.read_bytes())
    assert len(data) > BLOCK + 2000
    at = 7  # walk the chunk headers of block 0 to one past its middle
    while at < BLOCK // 2:
        at += 7 + int.from_bytes(data[at + 4 : at + 6], "little")
    data[at + 6] = 9  # an unknown chunk type: the rest of the block is skipped
    dst = tmp_path / "wandb" / real_run.name
    shutil.copytree(real_run, dst, ignore=shutil.ignore_patterns("*.wandb"))
    (dst / wfile.name).write_bytes(bytes(data))
    run = open_run(dst, cache=False)
    got = set(run.history["_step"])
    lost_rows = len(full) - len(got)
    assert lost_rows >= 1
    # every record lost is counted: the history rows and the summary records between them
    payload_nums = [Record.FromString(p).num for p in record_payloads(dst / wfile.name)]
    expected = max(payload_nums) - len(payload_nums)
    assert run.status.skipped_records == expected
