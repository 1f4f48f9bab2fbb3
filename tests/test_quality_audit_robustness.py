"""Audits survive hostile folders: file names that are not UTF-8, and a score cache that cannot be used."""

from __future__ import annotations

import logging
import os
import sqlite3

import cv2
import numpy as np
import pytest

from analysis.core.vocabulary import QualityReason
from quality.audit import apply_thresholds, audit_folder
from quality.score_cache import CACHE_FILE


def _png(path: bytes | str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (120, 160), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    with open(path, "wb") as fh:
        fh.write(buf.tobytes())


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    _png(os.path.join(os.fsencode(d), b"caf\xe9.png"))  # as unzipping a Windows archive leaves it
    _png(d / "good.png", 1)
    return d


@pytest.mark.parametrize("use_cache", [False, True])
def test_a_file_name_that_is_not_utf8_becomes_one_error_row(folder, tmp_path, use_cache):
    df = audit_folder(folder, workers=1, cache_dir=tmp_path / "cache" if use_cache else None)
    assert df["path"].tolist() == ["caf\\xe9.png", "good.png"]
    bad, good = df.iloc[0], df.iloc[1]
    assert "not valid UTF-8" in bad["error"]
    assert good["error"] is None and good["width"] == 160
    judged = apply_thresholds(df)
    assert judged["reason_codes"].iloc[0] == [QualityReason.UNREADABLE.value]
    df.to_json()  # the frame is valid text everywhere (reports, caches, the app)


def test_an_unusable_cache_folder_is_skipped_with_a_warning(folder, tmp_path, caplog):
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("x")
    with caplog.at_level(logging.WARNING, logger="quality.score_cache"):
        df = audit_folder(folder, workers=1, cache_dir=not_a_dir / "cache")
    assert df["error"].isna().sum() == 1  # good.png scored
    assert "scoring without the cache" in caplog.text


def test_a_corrupt_cache_file_is_rebuilt_and_used_again(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="quality.score_cache"):
        first = audit_folder(folder, workers=1, cache_dir=cache)
    assert "started a new one" in caplog.text
    assert (cache / (CACHE_FILE + ".corrupt")).exists()
    with sqlite3.connect(cache / CACHE_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 1  # good.png cached again
    second = audit_folder(folder, workers=1, cache_dir=cache)
    assert first["blur_score"].iloc[1] == second["blur_score"].iloc[1]


def test_a_cache_that_refuses_writes_is_skipped_and_the_audit_goes_on(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    audit_folder(folder, workers=1, cache_dir=cache)  # creates the table
    with sqlite3.connect(cache / CACHE_FILE) as db:  # every write now fails, as on a full disk
        db.execute("DELETE FROM scores")
        db.execute("CREATE TRIGGER full BEFORE INSERT ON scores BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
    with caplog.at_level(logging.WARNING, logger="quality.score_cache"):
        df = audit_folder(folder, workers=1, cache_dir=cache)
    assert df["error"].isna().sum() == 1
    assert "cannot write the quality score cache" in caplog.text


def test_a_cache_that_is_a_folder_is_skipped(folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    (cache / CACHE_FILE).mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="quality.score_cache"):
        df = audit_folder(folder, workers=1, cache_dir=cache)
    assert df["error"].isna().sum() == 1
    assert "scoring without the cache" in caplog.text


@pytest.mark.parametrize("shape", [(2, 3000), (1, 50000), (3, 20000), (30, 40000), (24, 33000)])
def test_a_sliver_of_an_image_is_scored_and_rejected_not_crashed_on(shape):
    """Images a few pixels across and thousands long (a scanner's calibration strip, a mis-sliced crop): averaging
    2 x 3,000 by 3 for the viewing size left no rows, and OpenCV's warps refuse sides over 32,767 px; both raised
    cv2.error out of `assess_image_quality`. They are scored (no text line to read) and fail the resolution check."""
    from quality import ImageQualityFilter

    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    result = ImageQualityFilter().assess_image_quality(img)
    assert QualityReason.RESOLUTION in result["reason_codes"]
    assert (result["width"], result["height"]) == (shape[1], shape[0])
