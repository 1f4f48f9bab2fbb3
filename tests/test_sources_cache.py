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
