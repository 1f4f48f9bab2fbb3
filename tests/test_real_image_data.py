"""The real-image benchmark data (benchmarks/data/images): every labelled file is present and has provenance, the
split is by source, and the graded focus series is ordered the way an independent sharpness measure orders it."""

from __future__ import annotations

import itertools
from collections import defaultdict

import cv2
import pytest

from benchmarks.real_images import DATA, Row, load, load_rows, misranked_pairs


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return load_rows()


def test_every_labelled_file_exists_and_has_a_provenance_row(rows):
    provenance = (DATA / "PROVENANCE.md").read_text(encoding="utf-8")
    for r in rows:
        assert (DATA / r.file).is_file(), r.file
        assert f"| {r.file} |" in provenance, r.file


def test_split_is_by_source(rows):
    splits = defaultdict(set)
    for r in rows:
        splits[r.source].add(r.split)
    assert all(len(s) == 1 for s in splits.values()), dict(splits)
    assert {s for v in splits.values() for s in v} == {"tune", "test"}


def test_every_focus_series_has_a_sharp_frame_and_distinct_steps(rows):
    series = defaultdict(list)
    for r in rows:
        if r.series:
            series[r.series].append(r)
    assert len(series) >= 4
    for name, frames in series.items():
        steps = [r.step for r in frames]
        assert None not in steps and len(set(steps)) == len(steps), name
        assert any(r.blur_label == "sharp" for r in frames), name
        assert len({r.split for r in frames}) == 1, name


@pytest.mark.parametrize("series", ["firepick_xp005_far", "firepick_xp005_near"])
def test_graded_series_is_monotone_under_laplacian_variance(rows, series):
    """The labels (Z from the file names, focus at Z -50 from the source) agree with a second method: the variance of
    the Laplacian falls strictly with the distance from the in-focus frame."""
    frames = [r for r in rows if r.series == series]
    focus = next(r.step for r in frames if r.blur_label == "sharp")
    assert focus is not None
    ordered = sorted(frames, key=lambda r: abs((r.step or 0) - focus))
    lapvar = [float(cv2.Laplacian(cv2.cvtColor(load(r), cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()) for r in ordered]
    assert all(a > b for a, b in itertools.pairwise(lapvar)), lapvar
    assert all(r.split == "test" for r in frames)


def _row(name: str, label: str) -> Row:
    return Row(name, "blur", None, 0, False, label, "", None, "src", "test")


def test_misranked_pairs_lists_sharp_images_scored_at_or_below_blurred_ones():
    rows = [_row("s1", "sharp"), _row("s2", "sharp"), _row("b1", "blurred"), _row("u", "")]
    bad = misranked_pairs(rows, [50.0, 10.0, 20.0, 0.0])
    assert [(a.file, b.file) for a, _, b, _ in bad] == [("s2", "b1")]
    tie = misranked_pairs(rows, [20.0, 30.0, 20.0, 0.0])
    assert [(a.file, b.file) for a, _, b, _ in tie] == [("s1", "b1")]
