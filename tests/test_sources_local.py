"""Local offline runs written by the real wandb library: listing, finding, opening."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

from analysis.core.errors import AmbiguousRun, RunNotFound, UnsafePath
from analysis.sources import find_run, list_runs, media_path, open_run
from tests.wandb_writer import write_run

pytestmark = pytest.mark.slow  # many wandb runs written in subprocesses


def _rows(n: int = 12) -> list[dict]:
    rows = []
    for s in range(n):
        row: dict[str, Any] = {"global_step": (s + 1) * 100}
        for b in range(3):
            row[f"batch_{b}/recall"] = round(0.95 - 0.02 * s * (b == 1), 4)
            row[f"batch_{b}/precision"] = 0.9
        if s == 2:
            row["sample"] = {"__image__": [6, 10]}
            row["val/odd.key"] = "NaN"
            row["val/inf"] = "Infinity"
        if s == 4:
            row["problematic_batch_1"] = ["imgs/a.png", "imgs/b.png"]
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def wandb_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("runs")
    write_run(
        base,
        "alpha",
        _rows(),
        config={"lr": 0.01, "model": {"arch": "dbnet", "layers": [1, 2]}},
        summary={"best_hmean": 0.93},
        tags=["ocr", "val"],
        notes="first run",
    )
    write_run(base, "twin", _rows(3))
    write_run(base, "twin", _rows(4), exit_code=1)
    write_run(base, "killed", _rows(5), crash=True)
    return base / "wandb"


def test_list_runs_reads_identity_and_state_without_history(wandb_dir):
    refs = list_runs(wandb_dir)
    # the killed writer had not flushed its run record yet: the run is listed by the id in its folder name
    killed = _killed(refs)
    assert sorted(r.name for r in refs if r is not killed) == ["alpha", "twin", "twin"]
    assert killed.name == killed.run_id and Path(killed.locator).name.endswith(killed.run_id)
    assert killed.state == "running"  # killed a moment ago: no exit record, fresh mtime
    assert {r.name: r.state for r in refs if r.name == "alpha"} == {"alpha": "finished"}
    assert sorted(r.state for r in refs if r.name == "twin") == ["failed", "finished"]
    assert all(r.project == "tests" and r.created is not None for r in refs if r is not killed)
    assert all(len(r.run_id) == 8 for r in refs)
    # newest first: by the second in the folder name, then by the start time in the run file
    stamps = [Path(r.locator).name.removeprefix("offline-")[:19] for r in refs]
    assert stamps == sorted(stamps, reverse=True)
    # the parent of the wandb dir works too
    assert {r.run_id for r in list_runs(wandb_dir.parent)} == {r.run_id for r in refs}


def _killed(refs):
    (killed,) = [r for r in refs if r.name not in ("alpha", "twin")]
    return killed


def test_killed_run_becomes_crashed_when_stale(wandb_dir):
    ref = _killed(list_runs(wandb_dir))
    wfile = next(Path(ref.locator).glob("*.wandb"))
    old = time.time() - 3600
    os.utime(wfile, (old, old))
    assert find_run(wandb_dir, ref.run_id).state == "crashed"
    run = open_run(ref.locator)
    assert run.ref.state == "crashed" and run.exit_code is None
    assert list(run.history["_step"]) == list(range(len(run.history)))


def test_open_run_reads_everything(wandb_dir):
    run = open_run(find_run(wandb_dir, "alpha").locator)
    h = run.history
    assert run.ref.name == "alpha" and run.ref.state == "finished" and run.exit_code == 0
    assert run.tags == ["ocr", "val"] and run.notes == "first run"
    assert run.config == {"lr": 0.01, "model": {"arch": "dbnet", "layers": [1, 2]}}
    assert run.summary["best_hmean"] == 0.93 and run.summary["global_step"] == 1200
    assert "_wandb" not in run.summary and "_wandb" not in run.config
    assert list(h["_step"]) == list(range(12)) and h.columns[0] == "_step"
    assert h["_step"].dtype == "int64"
    assert list(h["global_step"]) == [(s + 1) * 100 for s in range(12)]
    assert h["batch_1/recall"].iloc[5] == pytest.approx(0.85)
    # keys with slashes and dots stay flat; NaN and Infinity come back as floats
    assert math.isnan(h["val/odd.key"].iloc[2]) and h["val/inf"].iloc[2] == math.inf
    assert h["problematic_batch_1"].iloc[4] == ["imgs/a.png", "imgs/b.png"]
    cell = h["sample"].iloc[2]
    assert cell["_type"] == "image-file" and cell["width"] == 10 and cell["height"] == 6
    assert [(m.step, m.key, m.path) for m in run.media] == [(2, "sample", cell["path"])]
    assert media_path(run, cell["path"]).is_file()
    assert run.files_dir == Path(run.ref.locator) / "files"
    assert run.status.clean and run.status.format_version == 0
    assert run.status.bytes_read == next(Path(run.ref.locator).glob("*.wandb")).stat().st_size


def test_open_run_accepts_the_wandb_file_and_keys(wandb_dir):
    ref = find_run(wandb_dir, "alpha")
    wfile = next(Path(ref.locator).glob("*.wandb"))
    run = open_run(wfile, keys=["batch_1/recall"])
    assert list(run.history.columns) == ["_step", "batch_1/recall", "global_step"]
    assert len(run.history) == 12
    assert run.ref.run_id == ref.run_id


def test_find_run_by_id_name_and_errors(wandb_dir):
    alpha = find_run(wandb_dir, "alpha")
    assert find_run(wandb_dir, alpha.run_id) == alpha
    assert find_run(wandb_dir, Path(alpha.locator).name) == alpha
    with pytest.raises(AmbiguousRun) as amb:
        find_run(wandb_dir, "twin")
    twins = {r.run_id for r in list_runs(wandb_dir) if r.name == "twin"}
    assert set(amb.value.candidates) == twins and all(t in str(amb.value) for t in twins)
    with pytest.raises(RunNotFound) as nf:
        find_run(wandb_dir, "nope")
    assert "nope" in str(nf.value) and "alpha" in str(nf.value)
    assert any("alpha" in c for c in nf.value.candidates)
    with pytest.raises(RunNotFound, match="holds no wandb runs"):
        find_run(wandb_dir / "missing", "alpha")


def test_media_path_outside_the_run_folder_is_refused(wandb_dir):
    run = open_run(find_run(wandb_dir, "alpha").locator)
    for bad in ("../../etc/passwd", "/etc/passwd", "media/../../x.png"):
        with pytest.raises(UnsafePath):
            media_path(run, bad)


def test_folder_without_wandb_file_is_a_clear_error(tmp_path):
    d = tmp_path / "offline-run-20260101_000000-abcd1234"
    d.mkdir()
    with pytest.raises(RunNotFound, match=r"no \.wandb run file"):
        open_run(d)
    assert list_runs(tmp_path) == []
    with pytest.raises(RunNotFound):
        open_run(tmp_path / "does-not-exist.wandb")


def test_same_result_as_the_research_reference_reader(tmp_path, monkeypatch):
    """Our decoder (vectorised batches, row-by-row fallback for unusual rows) against the plain reference reader
    of the research note (benchmarks/reference_reader.py) on a real run mixing plain and unusual rows."""
    import sys

    import numpy as np

    monkeypatch.setenv("WANDB_READER_SCHEMA", "minimal")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    reference_reader = __import__("reference_reader")
    rows = []
    for s in range(150):
        row: dict[str, Any] = {
            "global_step": s * 3,
            **{f"batch_{b}/recall": (s * 7 + b * 13) % 100 / 100 for b in range(25)},
        }
        if s % 20 == 3:
            row["problematic_batch_4"] = [f"data/p_{s}_{k}.png" for k in range(9)]  # > 127 bytes
        if s % 33 == 5:
            row["sample"] = {"__image__": [4, 4]}  # nested media keys
        if s == 77:
            row["batch_3/recall"] = "NaN"
            row["text"] = "hello"
        rows.append(row)
    run_dir = write_run(tmp_path, "compare", rows, summary={"best": 0.5})
    ours = open_run(run_dir, cache=False)
    ref = reference_reader.read_run(run_dir)
    sys.modules.pop("reference_reader", None)
    theirs = ref.history[sorted(ref.history.columns, key=lambda c: (c != "_step", c))]
    assert list(ours.history.columns) == list(theirs.columns) and len(ours.history) == len(theirs) == 150
    for col in theirs.columns:
        a, b = ours.history[col], theirs[col]
        if a.dtype.kind in "fi" and b.dtype.kind in "fi":
            assert np.array_equal(a.to_numpy(float), b.to_numpy(float), equal_nan=True), col
        else:
            norm = [None if isinstance(x, float) and np.isnan(x) else x for x in a]
            assert norm == [None if isinstance(x, float) and np.isnan(x) else x for x in b], col

    def clean(d):
        return {k: ("nan" if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}

    assert clean(ours.summary) == clean(ref.summary) and ours.config == ref.config


_RESUME_SCRIPT = r"""
import sys, wandb
d, phase = sys.argv[1], int(sys.argv[2])
run = wandb.init(project="tests", id="resumeqa1", name="preempted", resume="allow", dir=d,
                 config={"lr": 0.01 if phase == 0 else 0.005})
start = 10 * phase
for s in range(start, start + 10):
    row = {"batch_0/recall": 0.9 if s < 15 else 0.4, "global_step": s}
    if s == start + 1:
        row["sample"] = wandb.Image((__import__("numpy").ones((4, 4, 3)) * 9).astype("uint8"))
    wandb.log(row)
run.finish()
"""


def test_a_run_resumed_offline_is_merged_across_its_session_folders(tmp_path):
    """QA: a preempted run resumed with the same id writes a second folder whose `_step` restarts at 0. Opening it
    gave only the last session, and by name it was 'ambiguous' with advice to pass the id both folders share."""
    from analysis.sources import refresh_run
    from tests.wandb_writer import write_sessions

    write_sessions(tmp_path, _RESUME_SCRIPT, [["0"], ["1"]])
    folders = sorted((tmp_path / "wandb").glob("offline-run-*-resumeqa1"))
    assert len(folders) == 2
    ref = find_run(tmp_path / "wandb", "preempted")  # by name: not ambiguous, the newest folder
    assert ref.locator == str(folders[1]) and find_run(tmp_path / "wandb", "resumeqa1").locator == ref.locator
    for run in (open_run(ref, cache=False), open_run(ref), open_run(folders[1])):
        h = run.history
        assert h["global_step"].tolist() == list(range(20))
        assert h["_step"].tolist() == list(range(20))  # the second session's 0.. follow on after 9
        assert run.config["lr"] == 0.005 and any("merged 1 earlier session" in e for e in run.status.errors)
        assert [m.step for m in run.media] == [11]  # the newest session's image, at its shifted step
        assert media_path(run, run.media[0].path).is_file()
    assert refresh_run(run).history["_step"].tolist() == list(range(20))
    only_first = open_run(folders[0], cache=False)  # an earlier folder on its own stays what it is
    assert only_first.history["global_step"].tolist() == list(range(10))


def test_latest_run_names_the_folder_wandb_links_to(wandb_dir):
    """QA: `--run-name latest-run` (the symlink wandb creates beside the run folders) was 'no run named'."""
    link = wandb_dir / "latest-run"
    target = Path(os.readlink(link)).name
    ref = find_run(wandb_dir, "latest-run")
    assert Path(ref.locator).name == target
    assert find_run(wandb_dir.parent, "latest-run") == ref  # the project folder holding wandb/ works too


def test_runs_started_within_one_second_are_listed_newest_first(tmp_path):
    """Folders are named for the second a run started, so two runs a script starts within one second share that
    name up to their random ids; the start time in the run file (microseconds) orders them, as wandb's `latest-run`
    link does. The ids are chosen so that ordering by id would put the older run first."""
    rows = [{"batch_0/recall": 0.9, "global_step": 0}]
    older = write_run(tmp_path, "older", rows, run_id="zz000001")
    newer = write_run(tmp_path, "newer", rows, run_id="aa000002")
    for folder in (older, newer):  # the same second in both names
        folder.rename(folder.with_name("offline-run-20260101_000000-" + folder.name.rsplit("-", 1)[1]))
    refs = list_runs(tmp_path / "wandb")
    assert [r.name for r in refs] == ["newer", "older"]
    assert refs[0].created is not None and refs[1].created is not None and refs[0].created > refs[1].created
