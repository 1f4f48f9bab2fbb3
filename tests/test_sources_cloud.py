"""wandb cloud runs through the real `wandb.Api` client, against a local server speaking its GraphQL protocol."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from analysis.core.errors import RunNotFound, SourceUnavailable
from analysis.sources import cloud, list_cloud_runs, media_path, open_run
from tests.wandb_stub import StubServer
from tests.wandb_writer import write_run

pytestmark = pytest.mark.slow  # a GraphQL server and the real wandb client

KEY = "local-" + "k" * 40


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("cloudruns")
    runs = []
    for i in range(3):
        rows = []
        for s in range(8):
            row: dict[str, Any] = {
                "global_step": (s + 1) * 10,
                **{f"batch_{b}/recall": round(0.9 - 0.01 * s * b - i / 100, 4) for b in range(4)},
            }
            if s == 2:
                row["sample"] = {"__image__": [4, 6]}
                row["problematic_batch_3"] = ["data/a.png", "data/b.png"]
            if s == 5:
                row["batch_2/recall"] = "NaN"
            rows.append(row)
        runs.append(
            open_run(
                write_run(
                    base,
                    f"cloud-{i}",
                    rows,
                    config={"lr": 0.1 * (i + 1), "opt": {"b": [1, 2]}},
                    summary={"best": 0.5 + i / 10},
                    tags=["t"],
                    notes=f"run {i}",
                ),
                cache=False,
            )
        )
    return runs


@pytest.fixture()
def server(local_runs, monkeypatch, tmp_path):
    with StubServer({"team/ocr": local_runs}, entity="team") as s:
        monkeypatch.setenv("WANDB_BASE_URL", s.url)
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(cloud, "_APIS", {})
        yield s


def test_list_cloud_runs_pages_through_the_project(server, local_runs):
    refs = list_cloud_runs("team", "ocr", per_page=2)
    assert sorted(r.run_id for r in refs) == sorted(r.ref.run_id for r in local_runs)
    assert all(r.source == "cloud" and r.locator == f"team/ocr/{r.run_id}" for r in refs)
    assert {r.name for r in refs} == {"cloud-0", "cloud-1", "cloud-2"} and {r.state for r in refs} == {"finished"}
    assert server.queries.count("Runs") >= 2  # two pages of two
    assert len(list_cloud_runs("team", "ocr", limit=1)) == 1


def test_open_cloud_run_reads_the_full_history(server, local_runs):
    local = local_runs[1]
    run = open_run(f"wandb://team/ocr/{local.ref.run_id}")
    assert run.ref.source == "cloud" and run.ref.name == "cloud-1"
    assert run.config == {"lr": 0.2, "opt": {"b": [1, 2]}} and run.tags == ["t"] and run.notes == "run 1"
    assert run.summary["best"] == pytest.approx(0.6)
    h = run.history
    assert list(h["_step"]) == list(range(8)) and list(h["global_step"]) == [(s + 1) * 10 for s in range(8)]
    for b in range(4):
        col = f"batch_{b}/recall"
        got, want = h[col].tolist(), local.history[col].tolist()
        assert all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(got, want)), col
    assert h["problematic_batch_3"].iloc[2] == ["data/a.png", "data/b.png"]
    assert [(m.step, m.key) for m in run.media] == [(2, "sample")]


def test_keys_and_media_download(server, local_runs):
    local = local_runs[0]
    run = open_run(f"wandb://team/ocr/{local.ref.run_id}", keys=["batch_3/recall", "sample"])
    assert set(run.history.columns) == {"_step", "global_step", "batch_3/recall", "sample"}
    assert len(run.history) == 8
    rel = run.media[0].path
    path = media_path(run, rel)
    assert path.is_file() and path.read_bytes() == media_path(local, rel).read_bytes()
    assert "cache" in str(path)


def test_unknown_run_and_project(server, local_runs):
    with pytest.raises(RunNotFound, match="no run team/ocr/zzzzzzzz"):
        open_run("wandb://team/ocr/zzzzzzzz")
    with pytest.raises(RunNotFound):
        list_cloud_runs("team", "no-such-project")
    with pytest.raises(RunNotFound, match="entity/project/run_id"):
        open_run("wandb://just-a-name")


def test_unauthorised_and_unreachable(server, monkeypatch):
    server.unauthorised = True
    with pytest.raises(SourceUnavailable, match=r"(?i)unauthori|api key"):
        list_cloud_runs("team", "ocr")
    server.unauthorised = False
    monkeypatch.setattr(cloud, "_APIS", {})
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(SourceUnavailable, match=r"cannot reach wandb|refused"):
        cloud.api(timeout=5)


def test_history_frame_matches_the_local_reader_shape(server, local_runs):
    local = local_runs[2]
    run = open_run(f"wandb://team/ocr/{local.ref.run_id}")
    assert isinstance(run.history, pd.DataFrame)
    assert set(run.history.columns) >= {c for c in local.history.columns if not c.startswith("_")}


def test_an_ended_cloud_run_is_cached_on_disk(server, local_runs):
    loc = f"wandb://team/ocr/{local_runs[0].ref.run_id}"
    first = open_run(loc)
    fetched = server.queries.count("HistoryPage")
    assert fetched >= 1
    again = open_run(loc)
    assert server.queries.count("HistoryPage") == fetched  # served from the cache: no history pages fetched
    pd.testing.assert_frame_equal(again.history, first.history)
    assert (again.config, again.summary, again.media) == (first.config, first.summary, first.media)
    open_run(loc, cache=False)
    assert server.queries.count("HistoryPage") > fetched
