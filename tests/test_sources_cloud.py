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
    fetched = server.queries.count("RunParquetHistory")
    assert fetched == 1
    again = open_run(loc)
    assert server.queries.count("RunParquetHistory") == fetched  # served from the cache: no history read
    pd.testing.assert_frame_equal(again.history, first.history)
    assert (again.config, again.summary, again.media) == (first.config, first.summary, first.media)
    open_run(loc, cache=False)
    assert server.queries.count("RunParquetHistory") == fetched + 1


# --- one history read for all keys (issue 16, item 5) ----------------------------------------------------------

SPARSE_KEYS = ["loss", "val/acc", "lr", "text", "bad", "dead"]


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    """12 steps: `loss` every step (NaN at 4, inf at 5, -inf at 6), `val/acc` every 3rd, `lr` at two steps,
    `dead` only NaN (at 3 and 9), a text at 7, a list at 2, an image at 8."""
    rows: list[dict[str, Any]] = []
    for s in range(12):
        row: dict[str, Any] = {"loss": round(1.0 / (s + 1), 6)}
        if s % 3 == 0:
            row["val/acc"] = s / 12
        if s in (1, 10):
            row["lr"] = 0.1 / (s + 1)
        row["loss"] = {4: "NaN", 5: "Infinity", 6: "-Infinity"}.get(s, row["loss"])
        if s in (3, 9):
            row["dead"] = "NaN"
        if s == 7:
            row["text"] = "hello"
        if s == 2:
            row["bad"] = ["a.png", "b.png"]
        if s == 8:
            row["sample"] = {"__image__": [4, 6]}
        rows.append(row)
    return open_run(write_run(tmp_path_factory.mktemp("sparse"), "sparse", rows), cache=False)


@pytest.fixture()
def sparse_server(sparse_run, monkeypatch, tmp_path):
    with StubServer({"team/ocr": [sparse_run]}, entity="team") as s:
        monkeypatch.setenv("WANDB_BASE_URL", s.url)
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(cloud, "_APIS", {})
        yield s


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y
        for x, y in zip(a, b)
    )


def _per_key(run_id: str, keys: list[str] | None) -> pd.DataFrame:
    from analysis.sources._history import tidy_history

    frame = cloud._history_per_key(cloud.api().run(f"team/ocr/{run_id}"), keys)
    return tidy_history(cloud.split_logged_nan(frame, cloud._marked_columns(frame))[0])


def test_one_parquet_read_serves_every_requested_key(sparse_server, sparse_run):
    run_id = sparse_run.ref.run_id
    run = open_run(f"wandb://team/ocr/{run_id}", keys=SPARSE_KEYS, cache=False)
    seen = list(sparse_server.queries)
    assert seen.count("RunParquetHistory") == 1  # one history read, from the Parquet export
    assert not {"SampledHistoryPage", "HistoryPage", "RunFullHistory", "RunSampledHistory"} & set(seen)
    assert any(d.startswith("GET ") and d.endswith(".parquet") for d in sparse_server.downloads)  # whole file
    h = run.history
    assert list(h.columns) == ["_step", "bad", "dead", "loss", "lr", "text", "val/acc"]
    assert list(h["_step"]) == list(range(12))  # every step logs `loss`
    loss = h["loss"].tolist()
    assert math.isnan(loss[4]) and loss[5] == math.inf and loss[6] == -math.inf and loss[0] == 1.0
    assert h["lr"].notna().tolist() == [s in (1, 10) for s in range(12)]  # sparse: missing elsewhere
    assert h["text"].iloc[7] == "hello" and h["bad"].iloc[2] == ["a.png", "b.png"]
    # the old path (one scan per key) gives the same frame, at the cost of one read per key
    slow = _per_key(run_id, SPARSE_KEYS)
    assert sparse_server.queries.count("RunParquetHistory") - seen.count("RunParquetHistory") == len(SPARSE_KEYS) + 1
    pd.testing.assert_frame_equal(h, slow)
    # and so does the local reader of the same .wandb file
    for col in h.columns:
        assert _same(h[col].tolist(), sparse_run.history[col].tolist()), col


@pytest.mark.parametrize("parquet", [True, False], ids=["parquet", "graphql"])
def test_only_rows_logging_a_requested_key(sparse_server, sparse_run, parquet):
    sparse_server.offers_parquet = parquet
    run = open_run(f"wandb://team/ocr/{sparse_run.ref.run_id}", keys=["lr", "dead"], cache=False)
    h = run.history
    assert list(h.columns) == ["_step", "dead", "lr"] and list(h["_step"]) == [1, 3, 9, 10]
    assert h["lr"].tolist()[0] == pytest.approx(0.05) and h["lr"].tolist()[3] == pytest.approx(0.1 / 11)
    # a logged NaN is a value (the row is kept, "NaN" in JSON -> float); a key a row did not log is missing
    assert h["dead"].dtype == "float64" and h["dead"].isna().all()


@pytest.mark.parametrize("parquet", [True, False], ids=["parquet", "graphql"])
def test_a_logged_nan_is_told_from_a_key_not_logged_in_every_history_read(sparse_server, sparse_run, parquet):
    """`loss` logged NaN at step 4 and `dead` at 3 and 9 (JSON "NaN" / a Parquet NaN) against the steps that did
    not log them (a missing key / a null): `Run.logged_nan` as the local reader gives it, whole or by keys."""
    sparse_server.offers_parquet = parquet
    want = {"dead": [3, 9], "loss": [4]}
    assert {k: v.tolist() for k, v in sorted(sparse_run.logged_nan.items())} == want  # the .wandb decoder's
    loc = f"wandb://team/ocr/{sparse_run.ref.run_id}"
    for run in (open_run(loc, cache=False), open_run(loc), open_run(loc)):  # fetched, cached, read from the cache
        assert {k: v.tolist() for k, v in sorted(run.logged_nan.items())} == want
        assert math.isnan(run.history["loss"].iloc[4]) and run.history["dead"].isna().all()
    assert {k: v.tolist() for k, v in open_run(loc, keys=["lr", "dead"], cache=False).logged_nan.items()} == {
        "dead": [3, 9]
    }


def test_full_history_with_media_from_parquet(sparse_server, sparse_run):
    run = open_run(f"wandb://team/ocr/{sparse_run.ref.run_id}", cache=False)
    assert [(m.step, m.key) for m in run.media] == [(8, "sample")]
    assert set(run.history.columns) == set(sparse_run.history.columns)
    for col in sparse_run.history.columns:
        assert _same(run.history[col].tolist(), sparse_run.history[col].tolist()), col


def test_export_split_in_files_with_a_live_tail(sparse_server, sparse_run):
    """Steps 0-6 exported in two Parquet files, 7-11 still live: the files, then one scan of the tail."""
    want = open_run(f"wandb://team/ocr/{sparse_run.ref.run_id}", keys=SPARSE_KEYS, cache=False).history
    sparse_server.exported_upto, sparse_server.parquet_parts = 7, 2
    start = len(sparse_server.queries)
    got = open_run(f"wandb://team/ocr/{sparse_run.ref.run_id}", keys=SPARSE_KEYS, cache=False).history
    seen = sparse_server.queries[start:]
    assert seen.count("RunParquetHistory") == 2 and seen.count("HistoryPage") == 1  # export, then the tail
    assert len({d.split()[1] for d in sparse_server.downloads if "-7-2-" in d}) == 2
    pd.testing.assert_frame_equal(got, want)


def test_server_without_parquet_falls_back_to_one_graphql_read(sparse_server, sparse_run):
    loc = f"wandb://team/ocr/{sparse_run.ref.run_id}"
    want = open_run(loc, keys=SPARSE_KEYS, cache=False).history
    sparse_server.offers_parquet = False
    start = len(sparse_server.queries)
    got = open_run(loc, keys=SPARSE_KEYS, cache=False).history
    seen = sparse_server.queries[start:]
    # the export download and the Parquet-backed scan are refused, then one GraphQL read serves every key
    assert seen.count("RunParquetHistory") == 2 and seen.count("RunFullHistory") == 1
    assert not {"SampledHistoryPage", "RunSampledHistory"} & set(seen)
    pd.testing.assert_frame_equal(got, want)
    # a server that samples that read is not trusted: an error, never a silently thinned history
    sparse_server.max_samples = 5
    with pytest.raises(SourceUnavailable, match=r"parquetHistory.*server sampled the history \(5 of 12 rows\)"):
        open_run(loc, keys=SPARSE_KEYS, cache=False)
