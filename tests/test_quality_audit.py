"""Folder audits: error rows, safe paths, progress, the on-disk cache, process and Dask engines, re-thresholding."""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest

import quality.audit as audit
import quality.score_cache as score_cache
from analysis.core.config import DataQualityConfig
from benchmarks.labelled_images import gaussian_blur, render_text_page, rotate
from quality import ImageQualityFilter
from quality.audit import apply_thresholds, audit_folder, score_images, thresholds_from_config


def _make_folder(root, n_good=6):
    page = render_text_page(400, 300, size=18, seed=5)
    (root / "batch_0").mkdir(parents=True)
    (root / "batch_1" / "deep").mkdir(parents=True)
    for i in range(n_good):
        cv2.imwrite(str(root / "batch_0" / f"good_{i:02d}.png"), render_text_page(400, 300, size=18, seed=i))
    cv2.imwrite(str(root / "batch_1" / "blurred.jpg"), gaussian_blur(page, 3))
    cv2.imwrite(str(root / "batch_1" / "deep" / "rotated.png"), rotate(page, 25))
    cv2.imwrite(str(root / "batch_1" / "tiny.png"), page[:60, :80])
    (root / "batch_1" / "empty.png").write_bytes(b"")
    (root / "batch_1" / "notes.png").write_text("not an image")
    (root / "batch_1" / "readme.txt").write_text("ignored: not an image suffix")
    (root.parent / "outside.png").write_bytes((root / "batch_0" / "good_00.png").read_bytes())
    os.symlink(root.parent / "outside.png", root / "batch_1" / "link_out.png")
    return root


@pytest.fixture()
def folder(tmp_path):
    return _make_folder(tmp_path / "data")


def test_audit_folder_rows_errors_and_paths(folder):
    calls = []
    df = audit_folder(folder, progress=lambda d, t: calls.append((d, t)), workers=1)
    assert list(df.columns) == audit.COLUMNS
    assert "batch_1/readme.txt" not in set(df["path"])
    assert df["path"].tolist() == sorted(df["path"])
    by = df.set_index("path").to_dict("index")
    assert by["batch_1/deep/rotated.png"]["rotation_angle"] == pytest.approx(25, abs=0.5)
    assert by["batch_1/blurred.jpg"]["blur_score"] < 100
    assert by["batch_1/tiny.png"]["width"] == 80
    assert "empty" in by["batch_1/empty.png"]["error"]
    assert "not an image" in by["batch_1/notes.png"]["error"]
    assert "outside the data root" in by["batch_1/link_out.png"]["error"]
    assert by["batch_0/good_00.png"]["error"] is None
    assert calls[-1] == (len(df), len(df)) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_score_images_keeps_order_and_refuses_escapes(folder):
    paths = ["batch_1/tiny.png", "../outside.png", "batch_0/good_01.png", "nope/missing.png", "/etc/passwd"]
    df = score_images(paths, root=folder, workers=1)
    assert df["path"].tolist() == paths
    assert df["error"].notna().tolist() == [False, True, False, True, True]
    errors = df["error"].tolist()
    assert "refused" in errors[1] and "not found" in errors[3]


def test_cache_is_used_and_keyed_on_size_mtime_and_version(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = audit_folder(folder, cache_dir=cache, workers=1)
    target = folder / "batch_0" / "good_00.png"
    st = target.stat()
    # Same size and mtime but different pixels: the cache must answer (proving it is consulted) ...
    data = bytearray(target.read_bytes())
    gray = cv2.imread(str(target), cv2.IMREAD_GRAYSCALE)
    assert gray is not None
    blurred = cv2.imencode(".png", gaussian_blur(gray, 3))[1].tobytes()
    target.write_bytes(blurred)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert len(blurred) != len(data)
    second = audit_folder(folder, cache_dir=cache, workers=1)
    row = second.set_index("path").loc["batch_0/good_00.png"]
    assert row["blur_score"] < 100  # size changed -> re-scored
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    third = audit_folder(folder, cache_dir=cache, workers=1)
    pd.testing.assert_frame_equal(first, third)
    # ... and a new scorer version invalidates everything.
    calls: list[str] = []

    def rescore(path: str, max_pixels: int) -> dict[str, Any]:
        calls.append(path)
        return {"error": "rescored"}

    monkeypatch.setattr(audit, "_score_path", rescore)
    fourth = audit_folder(folder, cache_dir=cache, workers=1)
    assert calls == []
    pd.testing.assert_frame_equal(first, fourth)
    monkeypatch.setattr(score_cache, "SCORER_VERSION", "test-next")
    fifth = audit_folder(folder, cache_dir=cache, workers=1)
    assert len(calls) == fifth["error"].eq("rescored").sum() > 0


def test_cache_replays_same_mtime_same_size_content(folder, tmp_path):
    """A file rewritten with identical size and mtime is (by design) served from the cache."""
    cache = tmp_path / "cache"
    audit_folder(folder, cache_dir=cache, workers=1)
    target = folder / "batch_0" / "good_02.png"
    st = target.stat()
    other = (folder / "batch_0" / "good_03.png").read_bytes()
    if len(other) != st.st_size:
        other = other[: st.st_size].ljust(st.st_size, b"\0")  # corrupt content, same size
    target.write_bytes(other)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    cached = audit_folder(folder, cache_dir=cache, workers=1).set_index("path").loc["batch_0/good_02.png"]
    fresh = audit_folder(folder, workers=1).set_index("path").loc["batch_0/good_02.png"]
    assert cached["error"] is None
    assert fresh["error"] is not None or fresh["blur_score"] != cached["blur_score"]


@pytest.mark.slow  # starts a process pool
def test_process_pool_matches_in_process(tmp_path):
    root = _make_folder(tmp_path / "data", n_good=26)
    serial = audit_folder(root, workers=1)
    calls = []
    parallel = audit_folder(root, workers=2, progress=lambda d, t: calls.append(d))
    pd.testing.assert_frame_equal(serial, parallel)
    assert calls[-1] == len(serial)


@pytest.mark.slow  # starts a Dask LocalCluster
def test_dask_local_cluster_matches_local(tmp_path):
    import distributed

    root = _make_folder(tmp_path / "data", n_good=8)
    local = audit_folder(root, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        calls = []
        remote = audit_folder(
            root, engine="dask", scheduler_address=cluster.scheduler_address, progress=lambda d, t: calls.append((d, t))
        )
    pd.testing.assert_frame_equal(local, remote)
    assert calls[-1] == (len(local), len(local))


def test_apply_thresholds_matches_the_filter(folder):
    df = audit_folder(folder, workers=1)
    judged = apply_thresholds(df, **thresholds_from_config(DataQualityConfig()))
    f = ImageQualityFilter()
    for row in judged.to_dict("records"):
        if row["error"] is not None:
            assert not row["is_acceptable"] and row["reasons"][0].startswith("unreadable:")
            assert row["reason_codes"] == ["unreadable"]
            continue
        expected = f.assess_image_quality(folder / row["path"])
        assert row["is_acceptable"] == expected["is_acceptable"]
        assert row["reasons"] == expected["reasons"]
        assert row["reason_codes"] == expected["reason_codes"]
    assert judged.set_index("path").loc["batch_0/good_00.png", "is_acceptable"]
    assert "is_acceptable" not in df.columns  # a copy, input untouched


def test_apply_thresholds_follows_the_sliders():
    n = 10_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "path": [f"img_{i}.png" for i in range(n)],
            "width": rng.integers(50, 500, n),
            "height": rng.integers(50, 500, n),
            "blur_score": rng.uniform(0, 300, n),
            "rotation_angle": rng.uniform(-45, 45, n),
            "contrast": rng.uniform(0, 1, n),
            "brightness": rng.uniform(0, 1, n),
            "error": [None] * n,
        }
    )
    strict = apply_thresholds(df, min_resolution=(100, 100), max_rotation=15, blur_threshold=100, min_contrast=0)
    loose = apply_thresholds(df, min_resolution=(50, 50), max_rotation=45, blur_threshold=0, min_contrast=0)
    expect = (df.width >= 100) & (df.height >= 100) & (df.rotation_angle.abs() <= 15) & (df.blur_score >= 100)
    assert strict["is_acceptable"].tolist() == expect.tolist()
    assert loose["is_acceptable"].all()
    assert all((len(r) == 0) == ok for r, ok in zip(strict.reasons, strict.is_acceptable))
    assert strict.loc[~strict.is_acceptable, "reasons"].map(len).min() >= 1
    assert strict["reason_codes"].map(len).tolist() == strict["reasons"].map(len).tolist()
    codes = {c for row in strict["reason_codes"] for c in row}
    assert codes == {"resolution", "rotation", "blur"}  # min_contrast=0 turns the contrast check off


def test_unknown_engine_is_a_clear_error(folder):
    from analysis.core.errors import AnalyzerError

    with pytest.raises(AnalyzerError, match="unknown engine"):
        audit_folder(folder, engine="spark")


@pytest.mark.slow  # starts a process pool
def test_process_pool_starts_under_a_streamlit_script_main(tmp_path):
    """Inside the dashboard Streamlit installs the page script as `__main__`; spawned workers used to re-run it
    (BrokenProcessPool when it cannot run alone, as with AppTest's generated script). They must not need it."""
    import sys

    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        st.write("a page script that cannot run on its own:", __args)  # type: ignore[name-defined]  # noqa: F821

    AppTest.from_function(page).run()
    assert getattr(sys.modules["__main__"], "__file__", "") != getattr(sys.modules.get("pytest"), "__file__", "")
    root = _make_folder(tmp_path / "data", n_good=26)
    parallel = audit_folder(root, workers=2).sort_values("path", ignore_index=True)
    serial = audit_folder(root, workers=1).sort_values("path", ignore_index=True)
    assert parallel["error"].isna().sum() == serial["error"].isna().sum() == 29  # the 3 broken files stay errors
    assert parallel["blur_score"].equals(serial["blur_score"])


def test_the_line_crop_hint_counts_crops_failing_on_their_thickness_alone():
    import pandas as pd

    from quality.audit import line_crop_hint

    def row(w: int, h: int, codes: list[str]) -> dict:
        return {"width": w, "height": h, "reason_codes": codes}

    flagged = pd.DataFrame(
        [
            row(604, 51, ["resolution"]),  # a line crop
            row(40, 236, ["resolution"]),  # a line crop on its side
            row(300, 30, ["resolution"]),  # a word crop
            row(321, 72, ["resolution", "blur"]),  # blurred too: lowering the bar would not keep it
            row(80, 60, ["resolution"]),  # a small photo, not a strip
            row(900, 12, ["resolution"]),  # too thin to read
            row(800, 600, []),
        ]
    )
    hint = line_crop_hint(flagged, (100, 100))
    assert hint is not None and (hint.count, hint.flagged, hint.keeping_side) == (3, 6, 30)
    assert line_crop_hint(flagged.iloc[[0, 4, 5]], (100, 100)) is None  # 1 of 3: not most of the failures
    assert line_crop_hint(flagged.iloc[[4, 5, 6]], (100, 100)) is None
