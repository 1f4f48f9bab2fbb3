"""The real-curve corpus (benchmarks/data/curves) is well formed: every labelled file exists and has a provenance
row, every source repository sits on one side of the tune/test split (batches 2-17 by their pre-registered sha1
rules), labels are in range and of a documented kind, each label's row and x agree with the file, non-finite
stretches are the file's non-finite cells, batches 3-17 come from repositories no earlier batch used, and the loader
reads exactly the labelled number of points."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

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


# How each later batch's sources were split, fixed before any of its files was plotted (LABELLING.md): the last hex
# digit of sha1("owner/name"), even -> tune; batches 2-4 hashed the name as GitHub spells it, batches 5-29 lower-cased.
SPLIT_NAME: dict[int, Callable[[str], str]] = {
    2: str,
    3: str,
    4: str,
    5: str.lower,
    6: str.lower,
    7: str.lower,
    8: str.lower,
    9: str.lower,
    10: str.lower,
    11: str.lower,
    12: str.lower,
    13: str.lower,
    14: str.lower,
    15: str.lower,
    **{b: str.lower for b in range(16, 30)},
}


def test_split_is_by_source_and_later_batches_follow_their_rule(labels):
    sides: dict[str, set[str]] = defaultdict(set)
    for s in labels["series"]:
        sides[s["source_repo"]].add(s["split"])
        if s.get("batch", 1) in SPLIT_NAME:
            name = SPLIT_NAME[s["batch"]](s["source_repo"])
            digit = int(hashlib.sha1(name.encode()).hexdigest()[-1], 16)
            assert s["split"] == ("tune" if digit % 2 == 0 else "test"), s["source_repo"]
    assert all(len(v) == 1 for v in sides.values()), dict(sides)
    assert not set(labels["split"]["tune"]) & set(labels["split"]["test"])
    for side in ("tune", "test"):
        on_side = {repo for repo, v in sides.items() if side in v}
        assert on_side <= set(labels["split"][side]) | {"alan-turing-institute/TCPD"}


def test_loader_reads_every_labelled_series(labels):
    curves = load_curves()
    assert len(curves) == len(labels["series"])


def _cells(path: Path, x_column: str, column: str) -> tuple[list[int], list[str], list[float]]:
    """Rows with a non-empty cell in `column`, the x value at those rows, and the cell as a float (NaN if not a number)."""
    rows, xs, values = [], [], []
    with path.open(newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            cell = (row.get(column) or "").strip()
            if cell:
                rows.append(i)
                xs.append(row[x_column])
                try:
                    values.append(float(cell))
                except ValueError:
                    values.append(math.nan)
    return rows, xs, values


def _same_x(label_x: object, cell: str) -> bool:
    return float(label_x) == float(cell) if isinstance(label_x, (int, float)) else str(label_x) == cell


def test_positions_and_nonfinite_stretches_match_the_files(labels):
    for s in labels["series"]:
        rows, xs, values = _cells(DATA / s["file"], s["x_column"], s["column"])
        assert len(rows) == s["n_points"], s["id"]
        positions = [*s["change_points"], *s["outliers"]]
        positions += [end for st in s["nonfinite_stretches"] for end in (st["start"], st["end"])]
        for p in positions:
            assert p["row"] == rows[p["index"]] and _same_x(p["x"], xs[p["index"]]), (s["id"], p)
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        covered = [i for st in s["nonfinite_stretches"] for i in range(st["start"]["index"], st["end"]["index"] + 1)]
        assert covered == bad and s["n_nonfinite"] == len(bad), s["id"]


@pytest.mark.parametrize(
    ("number", "min_repos"),
    [
        (3, 8),
        (4, 6),
        (5, 8),
        (6, 8),
        (7, 6),
        (8, 5),
        (9, 7),
        (10, 5),
        (11, 5),
        (12, 6),
        (13, 5),
        (14, 4),
        (15, 6),
        (16, 5),
        (17, 5),
        (25, 8),
        (27, 10),
    ],
)
def test_later_batches_are_new_sources_of_the_agreed_size(labels, number, min_repos):
    batch = [s for s in labels["series"] if s.get("batch") == number]
    repos = {s["source_repo"] for s in batch}
    earlier = {s["source_repo"] for s in labels["series"] if s.get("batch", 1) < number}
    assert 50 <= len(batch) <= 100 and len(repos) >= min_repos, (len(batch), len(repos))
    assert not repos & earlier, repos & earlier
    assert {s["split"] for s in batch} == {"tune", "test"}
    assert sum(s["split"] == "test" for s in batch) >= 25  # a held-out side worth a figure
    prov = (DATA / "PROVENANCE.md").read_text()
    section = prov[prov.index(f"## Batch {number}") :]
    for s in batch:
        row = next(line for line in section.splitlines() if line.startswith(f"| `{s['file']}` |"))
        assert f"| {s['source_repo']} |" in row, s["file"]
    assert f"rule_batch_{number}" in labels["split"]
