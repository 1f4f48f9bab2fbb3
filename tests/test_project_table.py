"""The project table: every run of a wandb directory analysed into one row each, locally and on a real Dask
LocalCluster (same rows), a broken run as a row with its error, regressions against a baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import distributed
import pandas as pd
import pytest

from analysis.findings.compare import run_side
from analysis.findings.project import PROJECT_COLUMNS, project_table
from analysis.sources import list_runs, open_run
from tests.test_compare import rows
from tests.wandb_writer import write_run

pytestmark = pytest.mark.slow  # 20 wandb runs written in subprocesses, a Dask cluster

N_RUNS = 20
BAD = {3, 11, 17}  # these runs lose 0.1 on batch 5 from step 1500


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("project")
    write_run(d, "golden", rows(100))
    for i in range(N_RUNS):
        write_run(d, f"sweep-{i:02d}", rows(i, bad_batch=5 if i in BAD else None))
    return d


def _refs(project: Path):
    refs = sorted((r for r in list_runs(project / "wandb") if r.name.startswith("sweep-")), key=lambda r: r.name)
    assert len(refs) == N_RUNS
    return refs


def test_local_table_names_the_regressed_runs_and_keeps_a_broken_run_as_a_row(project):
    refs = _refs(project)
    broken = dataclasses.replace(refs[0], locator=str(project / "wandb" / "gone"), name="gone", run_id="gone")
    baseline = run_side(open_run(next(r for r in list_runs(project / "wandb") if r.name == "golden")))
    seen = []
    table = project_table([*refs, broken], baseline=baseline, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert list(table.columns) == PROJECT_COLUMNS and len(table) == N_RUNS + 1
    assert seen[-1] == (N_RUNS + 1, N_RUNS + 1)
    ok = table[table["error"].isna()]
    assert len(ok) == N_RUNS
    assert set(ok.loc[ok["regression"] == True, "run"]) == {f"sweep-{i:02d}" for i in BAD}  # noqa: E712
    assert set(ok.loc[ok["regression"] == True, "regressed_batches"]) == {"5"}  # noqa: E712
    gone = table[table["run"] == "gone"].iloc[0]
    assert isinstance(gone["error"], str) and gone["error"] and pd.isna(gone["verdict"])


def test_a_local_cluster_gives_the_local_result(project):
    refs = _refs(project)
    local = project_table(refs, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        on_cluster = project_table(refs, scheduler=cl.scheduler_address)
    pd.testing.assert_frame_equal(local, on_cluster)
    assert local["error"].isna().all()


def test_cli_all_writes_the_table_and_gates_on_regression(project, tmp_path, monkeypatch, capsys):
    from analysis import cli

    monkeypatch.delenv("WANDB_DIR", raising=False)
    table = tmp_path / "out" / "runs.csv"
    args = ["--all", "--wandb-dir", str(project / "wandb"), "--baseline", "golden", "--workers", "2"]
    code = cli.main([*args, "--table", str(table), "--fail-on", "regression", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    written = pd.read_csv(table)
    assert len(written) == N_RUNS + 1 and written["error"].isna().all()
    assert set(written.loc[written["regression"] == True, "run"]) == {f"sweep-{i:02d}" for i in BAD}  # noqa: E712
    assert "sweep-03" in out
    loose = cli.main([*args, "--tolerance-abs", "0.5", "--fail-on", "regression", "--quiet"])
    capsys.readouterr()
    assert loose == 0
