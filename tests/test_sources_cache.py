"""The on-disk Parquet cache of decoded runs: same Run back, keyed on path + size + mtime, never fatal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis.sources import cache, open_run
from tests.wandb_writer import write_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("cache")
    rows = []
    for s in range(25):
        row: dict[str, Any] = {
            "global_step": s * 5,
            "val/recall": 0.5 + s / 100,
            **{f"batch_{b}/hmean": 0.7 + b / 50 for b in range(5)},
        }
        if s % 6 == 0:
            row["problematic_batch_3"] = [f"img/{s}.png", f"img/{s}b.png"]
        if s == 4:
            row["sample"] = {"__image__": [5, 7]}
            row["note"] = "text value"
            row["flag"] = True
            row["val/recall"] = "NaN"
        rows.append(row)
    return write_run(
        base,
        "cached",
        rows,
        config={"model": {"arch": "crnn"}, "lr": 3e-4},
        summary={"best": 0.88},
        tags=["a"],
        notes="n",
    )


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(d))
    return d


def _assert_same_run(a, b) -> None:
    pd.testing.assert_frame_equal(a.history, b.history)
    assert (a.ref, a.config, a.summary, a.media, a.tags, a.notes, a.exit_code, a.files_dir) == (
        b.ref,
        b.config,
        b.summary,
        b.media,
        b.tags,
        b.notes,
        b.exit_code,
        b.files_dir,
    )
    assert a.status == b.status


def test_cached_reopen_gives_the_same_run(run_dir, cache_dir):
    fresh = open_run(run_dir, cache=False)
    assert not cache_dir.exists()
    first = open_run(run_dir)
    entries = list((cache_dir / "runs").glob("*.parquet"))
    assert len(entries) == 1
    again = open_run(run_dir)
    _assert_same_run(first, fresh)
    _assert_same_run(again, fresh)
    h = again.history
    assert h["problematic_batch_3"].iloc[6] == ["img/6.png", "img/6b.png"]
    assert h["sample"].iloc[4]["_type"] == "image-file"
    assert pd.isna(h["problematic_batch_3"].iloc[1])


def test_cache_entry_is_what_open_run_reads(run_dir, cache_dir):
    open_run(run_dir)
    (entry,) = (cache_dir / "runs").glob("*.parquet")
    wfile = next(run_dir.glob("*.wandb"))
    assert cache.entry_path(wfile, None).resolve() == entry.resolve()
    # an unreadable entry is ignored and rewritten, never fatal
    entry.write_bytes(b"not parquet")
    run = open_run(run_dir)
    assert len(run.history) == 25 and cache.load(entry) is not None


def test_changed_file_gets_a_new_entry_and_the_old_one_goes(run_dir, cache_dir):
    open_run(run_dir)
    (old,) = (cache_dir / "runs").glob("*.parquet")
    wfile = next(run_dir.glob("*.wandb"))
    st = wfile.stat()
    os.utime(wfile, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    open_run(run_dir)
    (new,) = (cache_dir / "runs").glob("*.parquet")
    assert new != old


def test_keys_are_served_from_the_full_entry(run_dir, cache_dir):
    direct = open_run(run_dir, keys=["val/recall", "sample"], cache=False)
    open_run(run_dir)  # full entry
    from_cache = open_run(run_dir, keys=["val/recall", "sample"])
    pd.testing.assert_frame_equal(from_cache.history, direct.history, check_dtype=False)
    assert list(direct.history.columns) == ["_step", "global_step", "sample", "val/recall"]
    assert from_cache.media == direct.media and len(direct.media) == 1


def test_unwritable_cache_location_still_loads(run_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(blocker))
    run = open_run(run_dir)
    assert len(run.history) == 25 and not blocker.is_dir()


# -- cache trust (issue 17, item 12) ---------------------------------------------------------------------------
def _edit_in_place(wfile: Path, old: bytes, new: bytes) -> None:
    """Replace value text `old` by `new` (same length) in one history record, checksums fixed, size and mtime
    kept (as `cp -p`, `rsync -t` or `tar` leave a file)."""
    from analysis.sources._schema import Record
    from tests.wandb_synth import record_payloads, reframe

    st = wfile.stat()
    payloads = record_payloads(wfile)
    # A whole value_json field (tag 16, length, text): the bare digits also occur inside `_runtime` or
    # `_timestamp` values on some runs, whose edit changes nothing the test reads.
    field = lambda text: b"\x82\x01" + bytes([len(text)]) + text  # noqa: E731
    for i, p in enumerate(payloads):
        rec = Record.FromString(p)
        if rec.WhichOneof("record_type") == "history" and field(old) in rec.history:
            rec.history = rec.history.replace(field(old), field(new), 1)
            payloads[i] = rec.SerializeToString()
            break
    else:
        raise AssertionError(f"{old!r} not in any history record")
    data = reframe(payloads)
    assert len(data) == st.st_size
    wfile.write_bytes(data)
    os.utime(wfile, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_in_place_edit_with_the_mtime_restored_is_not_served_stale(run_dir, cache_dir, tmp_path):
    import shutil

    copy = tmp_path / "wandb" / run_dir.name
    shutil.copytree(run_dir, copy)
    before = open_run(copy)  # cached now
    assert 0.51 in before.history["val/recall"].tolist()
    _edit_in_place(next(copy.glob("*.wandb")), b"0.51", b"0.91")
    after = open_run(copy)
    direct = open_run(copy, cache=False)
    assert 0.91 in after.history["val/recall"].tolist() and 0.51 not in after.history["val/recall"].tolist()
    pd.testing.assert_frame_equal(after.history, direct.history)


def test_an_entry_copied_from_another_run_is_not_served(run_dir, cache_dir, tmp_path):
    import shutil

    other = write_run(tmp_path / "other", "other", [{"val/recall": 0.123, "global_step": s} for s in range(3)])
    mine = open_run(run_dir)
    open_run(other)
    mine_entry = cache.entry_path(next(run_dir.glob("*.wandb")), None)
    other_entry = cache.entry_path(next(other.glob("*.wandb")), None)
    assert mine_entry.is_file() and other_entry.is_file()
    shutil.copyfile(other_entry, mine_entry)  # the other run's entry under this run's name
    again = open_run(run_dir)
    assert again.ref.run_id == mine.ref.run_id
    pd.testing.assert_frame_equal(again.history, mine.history)
