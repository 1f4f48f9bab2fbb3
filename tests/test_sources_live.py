"""Live runs: a growing .wandb file is refreshed by decoding only the bytes appended since the last read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.sources import open_run, refresh_run
from tests.wandb_synth import history_record_ends
from tests.wandb_writer import write_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("live")
    rows = [
        {
            "global_step": s,
            **{f"batch_{b}/recall": 0.6 + 0.005 * s + 0.01 * b for b in range(30)},
            **({"problematic_batch_4": [f"p/{s}.png"]} if s % 5 == 0 else {}),
        }
        for s in range(45)
    ]
    return write_run(base, "live", rows, summary={"best": 0.77}, config={"lr": 0.1})


def _live_copy(finished: Path, tmp_path: Path, upto: int) -> tuple[Path, bytes]:
    src = next(finished.glob("*.wandb"))
    data = src.read_bytes()
    d = tmp_path / finished.name
    d.mkdir()
    (d / src.name).write_bytes(data[:upto])
    return d / src.name, data


def _same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def test_refresh_reads_only_the_appended_bytes(finished, tmp_path):
    full = open_run(finished, cache=False)
    ends = history_record_ends(next(finished.glob("*.wandb")))
    cut1, cut2 = ends[15] + 20, ends[33] + 10  # both inside a record: the writer is mid-flush
    path, data = _live_copy(finished, tmp_path, cut1)

    run = open_run(path.parent, cache=False)
    assert run.ref.state == "running" and run.status.truncated and run.exit_code is None
    assert len(run.history) == 16 and run.status.bytes_read <= cut1
    assert refresh_run(run).history.shape == run.history.shape  # nothing new yet

    # Scribble over the records already read: a refresh that re-read them would count skipped records.
    raw = bytearray(path.read_bytes())
    raw[100 : run.status.bytes_read - 100] = b"\xab" * (run.status.bytes_read - 200)
    path.write_bytes(bytes(raw) + data[cut1:cut2])
    run2 = refresh_run(run)
    assert len(run2.history) == 34 and run2.status.truncated and run2.status.skipped_records == 0
    assert run2.status.bytes_read > run.status.bytes_read and len(run.history) == 16  # input untouched
    _same_frame(run2.history, full.history.iloc[:34][run2.history.columns])

    with open(path, "ab") as f:
        f.write(data[cut2:])
    run3 = refresh_run(run2)
    assert run3.status.clean and run3.exit_code == 0 and run3.ref.state == "finished"
    _same_frame(run3.history, full.history)
    assert run3.summary["best"] == 0.77 and run3.config == {"lr": 0.1}
    assert run3.status.bytes_read == len(data)


def test_a_replaced_file_is_read_again(finished, tmp_path):
    ends = history_record_ends(next(finished.glob("*.wandb")))
    path, data = _live_copy(finished, tmp_path, ends[30])
    run = open_run(path.parent, cache=False)
    assert len(run.history) == 31
    path.write_bytes(data[: ends[5]])  # shorter than what was read: a different file now
    again = refresh_run(run)
    assert len(again.history) == 6 and list(again.history["_step"]) == list(range(6))
