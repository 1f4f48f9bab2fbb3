"""Damaged and odd `.wandb` files: every readable record survives, unreadable input gets a typed error."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.core.errors import NotAWandbFile, RunNotFound
from analysis.core.run import ReadStatus
from analysis.sources import list_runs, open_run
from analysis.sources._logfile import BLOCK, iter_payloads
from analysis.sources._schema import Record
from tests.wandb_synth import history_record_ends, record_payloads, write_synthetic
from tests.wandb_writer import write_run


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real offline run spanning several 32 KiB blocks, with multi-chunk records, lists, NaN and an image."""
    base = tmp_path_factory.mktemp("damage")
    rows = []
    for s in range(60):
        row: dict[str, Any] = {
            "global_step": s * 10,
            **{f"batch_{b}/recall": round(0.5 + 0.004 * s + 0.01 * b, 5) for b in range(40)},
        }
        if s % 7 == 0:
            row["problematic_batch_2"] = [f"images/batch_2/scan_{s}_{k}.png" for k in range(12)]
        if s == 9:
            row["batch_1/recall"] = "NaN"
            row["sample"] = {"__image__": [8, 8]}
        rows.append(row)
    return write_run(base, "damage", rows, summary={"best": 0.9})


@pytest.fixture(scope="module")
def full(real_run):
    return open_run(real_run, cache=False)


def _wfile(run_dir: Path) -> Path:
    return next(run_dir.glob("*.wandb"))


def _copy(src: Path, dst_dir: Path, data: bytes) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    dst.write_bytes(data)
    return dst


def _assert_rows_genuine(part: pd.DataFrame, full: pd.DataFrame) -> None:
    """Every row of `part` is the row of `full` with the same step, value for value."""
    ref = full.set_index("_step")
    for _, row in part.iterrows():
        good = ref.loc[int(row["_step"])]
        for col, v in row.items():
            if col == "_step":
                continue
            g = good[str(col)]
            if isinstance(v, float) and np.isnan(v):
                assert isinstance(g, float) and np.isnan(g), (col, v, g)
            else:
                assert v == g, (col, v, g)


def test_the_fixture_spans_blocks_and_the_clean_read_is_clean(real_run, full):
    size = _wfile(real_run).stat().st_size
    assert size > 3 * BLOCK
    assert full.status.clean and len(full.history) == 60
    assert list(full.history["_step"]) == list(range(60))


def test_truncated_at_random_offsets_keeps_every_complete_record(real_run, full, tmp_path):
    src = _wfile(real_run)
    data = src.read_bytes()
    ends = history_record_ends(src)
    rng = random.Random(1234)
    cuts = [*sorted(rng.sample(range(8, len(data) - 1), 14)), 7, len(data) - 1]
    for i, cut in enumerate(cuts):
        path = _copy(src, tmp_path / f"cut{i}", data[:cut])
        run = open_run(path, cache=False)
        expected = sum(1 for e in ends if e <= cut)
        assert len(run.history) == expected, (cut, len(run.history), expected)
        assert run.status.truncated or cut in ends or cut == 7
        assert run.status.skipped_records == 0
        assert run.status.bytes_read <= cut
        assert run.exit_code is None and run.ref.state in ("running", "crashed")
        if expected:
            assert list(run.history["_step"]) == list(range(expected))
            _assert_rows_genuine(run.history, full.history)


def test_flipped_payload_bytes_cost_only_their_record(real_run, full, tmp_path):
    src = _wfile(real_run)
    data = bytearray(src.read_bytes())
    ends = history_record_ends(src)
    # flip bytes in the middle of three history records (well inside their payloads, far from chunk headers)
    targets = [ends[10] - 40, ends[30] - 40, ends[50] - 40]
    for t in targets:
        data[t] ^= 0xFF
    path = _copy(src, tmp_path / "flipped", bytes(data))
    run = open_run(path, cache=False)
    assert run.status.skipped_records >= 3 and not run.status.truncated
    assert 55 <= len(run.history) <= 57
    assert not {10, 30, 50} & set(run.history["_step"])
    _assert_rows_genuine(run.history, full.history)
    assert run.exit_code == 0
    assert f"{run.status.skipped_records} records skipped" in run.status.badges()


def record_spans(data: bytes) -> list[tuple[int, int]]:
    """(start of its first chunk header, end of its last chunk) of every record of an intact .wandb file, walked
    here from the layout (32 KiB blocks, 7-byte chunk headers, < 7 bytes at a block end are padding)."""
    spans, first, pos = [], None, 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        ctype = data[pos + 6]
        first = pos if first is None else first
        pos += 7 + int.from_bytes(data[pos + 4 : pos + 6], "little")
        if ctype in (1, 4):  # FULL or LAST: the record is complete
            spans.append((first, pos))
            first = None
    return spans


def damaged_records(spans: list[tuple[int, int]], at: int, inserted: int, deleted: int) -> set[int]:
    """Indices of the records whose bytes an insertion (before offset `at`) or a deletion (from `at`) touches."""
    if inserted:
        return {i for i, (s, e) in enumerate(spans) if s < at < e}
    return {i for i, (s, e) in enumerate(spans) if at < e and at + deleted > s}


@pytest.mark.parametrize(
    "edits",
    [
        [(0.10, 1, 0)],  # one byte inserted at 10 % of the file
        [(0.50, 1, 0)],  # ... at 50 %
        [(0.30, 0, 3)],  # three bytes deleted at 30 %
        [(0.20, 2, 0), (0.45, 0, 1), (0.80, 3, 0)],  # several shifts, each undoing the block grid again
    ],
)
def test_bytes_inserted_or_deleted_cost_only_the_records_they_touch(real_run, full, tmp_path, edits):
    """After bytes are inserted or deleted every later chunk is off the 32 KiB grid: the scan resynchronises at
    the next intact chunk, keeps every record whose bytes are intact, and counts exactly the records lost."""
    src = _wfile(real_run)
    data = src.read_bytes()
    spans = record_spans(data)
    payloads = record_payloads(src)
    assert len(spans) == len(payloads)  # the walk above and the reader agree on the intact file
    history = [i for i, p in enumerate(payloads) if Record.FromString(p).WhichOneof("record_type") == "history"]
    blob, damaged = bytearray(data), set()
    for frac, inserted, deleted in sorted(edits, reverse=True):  # from the end: earlier offsets stay valid
        at = int(len(data) * frac)
        damaged |= damaged_records(spans, at, inserted, deleted)
        blob[at : at + deleted] = b"\xa5" * inserted
    run = open_run(_copy(src, tmp_path / "shifted", bytes(blob)), cache=False)
    intact_steps = [k for k, i in enumerate(history) if i not in damaged]
    assert list(run.history["_step"]) == intact_steps
    _assert_rows_genuine(run.history, full.history)
    assert run.status.skipped_records == len(damaged) >= 1
    assert run.status.badges() == [f"{len(damaged)} record{'s' if len(damaged) > 1 else ''} skipped"]
    assert sum("resynchronised" in e for e in run.status.errors) == len(edits)
    assert run.exit_code == 0 and run.summary["best"] == 0.9


def test_a_head_scan_ends_cleanly_wherever_stop_falls(real_run):
    """`stop` need not be a block boundary: the scan covers the blocks it falls in, no more, with no damage seen."""
    path = _wfile(real_run)
    assert path.stat().st_size > 3 * BLOCK
    whole = ReadStatus()
    by_blocks = list(iter_payloads(path, whole, stop=2 * BLOCK))
    for stop in (BLOCK + 100, 2 * BLOCK - 1):
        status = ReadStatus()
        assert list(iter_payloads(path, status, stop=stop)) == by_blocks
        assert (status.skipped_records, status.errors, status.truncated) == (0, [], False)
        assert status.bytes_read == whole.bytes_read


def test_corrupt_chunk_header_costs_only_its_record(real_run, full, tmp_path):
    src = _wfile(real_run)
    data = bytearray(src.read_bytes())
    # the first chunk header of block 2 (offset 2*BLOCK) gets an impossible length
    data[2 * BLOCK + 4] = 0xFF
    data[2 * BLOCK + 5] = 0xFF
    path = _copy(src, tmp_path / "badheader", bytes(data))
    run = open_run(path, cache=False)
    assert run.status.skipped_records >= 1 and run.status.errors
    lost = 60 - len(run.history)
    assert lost <= 1  # the scan resynchronises at the next intact chunk: only the damaged chunk's record is lost
    _assert_rows_genuine(run.history, full.history)
    assert run.exit_code == 0


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "too short"),
        (b":W&", "too short"),
        (b"step,recall\n1,0.5\n2,0.6\n", "':W&B' header"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "':W&B' header"),
        (b":W&B\xe1\xbe\x02" + b"\0" * 20, "newer wandb"),
    ],
)
def test_not_a_wandb_file_is_a_typed_error(tmp_path, content, message):
    d = tmp_path / "offline-run-20260101_000000-bad00001"
    d.mkdir()
    (d / "run-bad00001.wandb").write_bytes(content)
    with pytest.raises(NotAWandbFile, match=message):
        open_run(d, cache=False)
    (ref,) = list_runs(tmp_path)  # listed, so the user sees it, but marked unreadable
    assert ref.state == "unknown" and ref.run_id == "bad00001"


def test_header_only_and_zero_tail(tmp_path):
    d = tmp_path / "offline-run-20260101_000000-new00001"
    d.mkdir()
    f = d / "run-new00001.wandb"
    f.write_bytes(b":W&B\xe1\xbe\x00")
    run = open_run(d, cache=False)
    assert len(run.history) == 0 and run.status.clean and "_step" in run.history.columns
    f.write_bytes(b":W&B\xe1\xbe\x00" + b"\0" * 5000)  # preallocated, nothing written yet
    run = open_run(d, cache=False)
    assert len(run.history) == 0 and run.status.truncated


def test_good_prefix_with_zero_tail(real_run, full, tmp_path):
    src = _wfile(real_run)
    data = src.read_bytes()
    ends = history_record_ends(src)
    cut = ends[20]
    path = _copy(src, tmp_path / "zerotail", data[:cut] + b"\0" * 3000)
    run = open_run(path, cache=False)
    assert len(run.history) == 21 and run.status.truncated
    _assert_rows_genuine(run.history, full.history)


def test_format_1_rows_without_step_and_legacy_keys(tmp_path):
    v1 = tmp_path / "offline-run-20260101_000000-v1run001" / "run-v1run001.wandb"
    legacy = tmp_path / "offline-run-20260101_000001-old00001" / "run-old00001.wandb"
    records: list[dict[str, Any]] = [{"run": {"run_id": "v1run001", "display_name": "v1", "config": {"lr": 0.5}}}]
    records += [{"history": {"loss": i / 10, "global_step": i}} for i in range(3)]
    records += [
        {"history": {"loss": 9.0}, "step": 10},
        {"history": {"loss": 11.0}},
        {"summary": {"best": 1}},
        {"exit": 0},
    ]
    old: list[dict[str, Any]] = [{"run": {"run_id": "old00001", "display_name": "legacy"}}]
    old += [
        {
            "history": {"_step": i, "acc": 0.25 * i, "img": {"_type": "image-file", "path": f"media/i{i}.png"}},
            "legacy": True,
        }
        for i in range(3)
    ]
    write_synthetic({v1: {"version": 1, "records": records}, legacy: {"version": 0, "records": old}}, tmp_path)

    run = open_run(v1.parent, cache=False)
    assert run.status.format_version == 1 and run.exit_code == 0 and run.ref.name == "v1"
    assert list(run.history["_step"]) == [0, 1, 2, 10, 11]
    assert list(run.history["loss"]) == [0.0, 0.1, 0.2, 9.0, 11.0]
    # the summary is each key's last logged value, plus explicit summary updates
    assert run.config == {"lr": 0.5} and run.summary == {"best": 1, "loss": 11.0, "global_step": 2}

    run = open_run(legacy.parent, cache=False)
    assert list(run.history["_step"]) == [0, 1, 2] and list(run.history["acc"]) == [0.0, 0.25, 0.5]
    assert [m.path for m in run.media] == ["media/i0.png", "media/i1.png", "media/i2.png"]
    assert {r.name for r in list_runs(tmp_path)} == {"v1", "legacy"}


def test_nan_infinity_and_odd_keys_in_synthetic_rows(tmp_path):
    f = tmp_path / "offline-run-20260101_000000-odd00001" / "run-odd00001.wandb"
    rows = [
        {
            "history": {
                "_step": 0,
                "a/b.c": "NaN",
                "x": "Infinity",
                "y": "-Infinity",
                'quo"te': 1.5,
                "ключ/метрика": 2.5,
                "flag": True,
                "name": "s",
                "big": 2**60,
            }
        },
        {"history": {"_step": 1, "a/b.c": 1.0, "x": 2, "flag": False, "name": "t", "big": 3}},
    ]
    write_synthetic({f: {"version": 0, "records": [{"run": {"run_id": "odd00001"}}, *rows]}}, tmp_path)
    h = open_run(f, cache=False).history
    assert np.isnan(h["a/b.c"].iloc[0]) and h["a/b.c"].iloc[1] == 1.0
    assert h["x"].iloc[0] == np.inf and h["y"].iloc[0] == -np.inf and h["x"].iloc[1] == 2
    assert h['quo"te'].iloc[0] == 1.5 and h["ключ/метрика"].iloc[0] == 2.5
    assert h["flag"].tolist() == [True, False] and h["name"].tolist() == ["s", "t"]
    assert h["big"].iloc[0] == 2**60  # beyond float precision: kept exact


def test_missing_paths_are_run_not_found(tmp_path):
    with pytest.raises(RunNotFound):
        open_run(tmp_path / "nope")
    with pytest.raises(RunNotFound):
        open_run(tmp_path / "nope.wandb")


def test_summary_is_last_logged_value_unless_set_explicitly_later(tmp_path):
    f = tmp_path / "offline-run-20260101_000000-sum00001" / "run-sum00001.wandb"
    records = [
        {"run": {"run_id": "sum00001"}},
        {"history": {"_step": 0, "a": 1, "b": 1}},
        {"summary": {"a": 5}},  # explicit, but a is logged again afterwards: the history wins
        {"history": {"_step": 1, "a": 2}},
        {"summary": {"b": 7, "c": "only here"}},  # after b's last row: the explicit value wins
        {"exit": 0},
    ]
    write_synthetic({f: {"version": 0, "records": records}}, tmp_path)
    run = open_run(f, cache=False)
    assert run.summary == {"_step": 1, "a": 2, "b": 7, "c": "only here"}


@pytest.mark.timeout(60)
def test_non_regular_wandb_files_neither_hang_nor_break_the_listing(real_run, tmp_path):
    """QA: a FIFO named run-x.wandb made list_runs (and so every CLI call on that dir) block forever; a directory
    named run-y.wandb raised IsADirectoryError from the listing."""
    import os
    import shutil

    from analysis.sources import list_runs

    wandb_dir = tmp_path / "wandb"
    good = wandb_dir / real_run.name
    shutil.copytree(real_run, good)
    fifo_run = wandb_dir / "offline-run-20260101_000001-fifofifo"
    (fifo_run / "files").mkdir(parents=True)
    os.mkfifo(fifo_run / "run-fifofifo.wandb")
    dir_run = wandb_dir / "offline-run-20260101_000002-dirdir00"
    (dir_run / "run-dirdir00.wandb").mkdir(parents=True)
    refs = list_runs(wandb_dir)
    assert [r.locator for r in refs] == [str(good)]
    with pytest.raises(RunNotFound, match=r"run-fifofifo\.wandb is not a regular file"):
        open_run(fifo_run, cache=False)
