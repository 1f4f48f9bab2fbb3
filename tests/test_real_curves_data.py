"""The real-curve corpus (benchmarks/data/curves) is well formed: every labelled file exists and has a provenance
row, every source repository sits on one side of the tune/test split (batch 2 by its pre-registered sha1 rule),
labels are in range and of a documented kind, and the loader reads exactly the labelled number of points."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import pytest

from benchmarks.real_curves import DATA, load_curves

KINDS = {"level_shift_up", "level_shift_down", "collapse", "slope_change", "noise_change"}


@pytest.fixture(scope="module")
def labels() -> dict:
    return json.loads((DATA / "labels.json").read_text())


def test_ids_files_and_provenance(labels):
    prov = (DATA / "PROVENANCE.md").read_text()
    assert [s["id"] for s in labels["series"]] == list(range(len(labels["series"])))
    for s in labels["series"]:
        assert (DATA / s["file"]).is_file(), s["file"]
        assert f"| `{s['file']}` |" in prov, s["file"]


def test_labels_are_in_range_and_documented(labels):
    for s in labels["series"]:
        for c in s["change_points"]:
            assert 0 <= c["index"] < s["n_points"], (s["id"], c)
            assert c["confidence"] in {"high", "medium", "low"} and c["kind"] in KINDS, (s["id"], c)
        for o in s["outliers"]:
            assert 0 <= o["index"] < s["n_points"], (s["id"], o)
        events = s["change_points"] or s["outliers"] or s["nonfinite_stretches"]
        assert s["healthy"] == (not events), s["id"]


def test_split_is_by_source_and_batch_two_follows_its_rule(labels):
    sides: dict[str, set[str]] = defaultdict(set)
    for s in labels["series"]:
        sides[s["source_repo"]].add(s["split"])
        if s.get("batch") == 2:
            digit = int(hashlib.sha1(s["source_repo"].encode()).hexdigest()[-1], 16)
            assert s["split"] == ("tune" if digit % 2 == 0 else "test"), s["source_repo"]
    assert all(len(v) == 1 for v in sides.values()), dict(sides)
    assert not set(labels["split"]["tune"]) & set(labels["split"]["test"])
    for side in ("tune", "test"):
        on_side = {repo for repo, v in sides.items() if side in v}
        assert on_side <= set(labels["split"][side]) | {"alan-turing-institute/TCPD"}


def test_loader_reads_every_labelled_series(labels):
    curves = load_curves()
    assert len(curves) == len(labels["series"])
