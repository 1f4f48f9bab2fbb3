"""--log-to-wandb: the analysis run written by the real wandb library offline, read back by this project's own
reader (`open_run`) and by wandb's own protobuf classes from the `.wandb` file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import cli
from analysis.core.errors import AnalyzerError
from analysis.core.run import ReadStatus
from analysis.reporting.model import Report
from analysis.reporting.wandb_log import (
    EVENT_COLUMNS,
    EVENTS_TABLE,
    PROBLEM_BATCH_COLUMNS,
    PROBLEM_BATCHES_TABLE,
    REPORT_FILE_NAME,
    forget_inherited_wandb_service,
    log_analysis_to_wandb,
)
from analysis.sources import open_run
from analysis.sources._logfile import iter_payloads
from tests.report_runs import write_degrading_run
from tests.wandb_writer import silent_wandb_service, wandb_env

pytestmark = pytest.mark.slow  # wandb writes runs in subprocesses (the analysed one and the analysis run)

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^wandb: analysis run (\w+) written offline to (\S+) \(project (\S+); upload it with: wandb sync")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> Path:
    """A project folder whose ./wandb holds `test_run` (batch 2 collapses half way), written by real wandb."""
    base = tmp_path_factory.mktemp("wandb_log")
    write_degrading_run(base, "test_run")
    return base


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "analyze_experiment.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _records(run_dir: Path) -> dict[str, list]:
    """The records of the run's .wandb file, decoded with wandb's own protobuf classes, by kind."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("*.wandb")
    out: dict[str, list] = {}
    for payload in iter_payloads(path, ReadStatus()):
        rec = pb.Record()  # type: ignore[attr-defined]  # generated protobuf class
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        out.setdefault(kind, []).append(getattr(rec, kind))
    return out


@pytest.fixture(scope="module")
def logged(analysed, tmp_path_factory):
    """The CLI run with --log-to-wandb (offline, default folder: under --output-dir); (result, out dir, env)."""
    out = tmp_path_factory.mktemp("reports")
    env = {**wandb_env(analysed)}
    env.pop("WANDB_DIR", None)
    result = _cli(["--run-name", "test_run", "--output-dir", str(out), "--log-to-wandb"], analysed, env)
    return result, out, env


def test_cli_writes_an_offline_analysis_run_linked_to_the_analysed_run(logged, analysed):
    result, out, _ = logged
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("wandb: ")]
    m = LINE.match(line)
    assert m, line
    run_id, run_dir, project = m.group(1), Path(m.group(2)), m.group(3)
    assert run_dir.is_dir() and run_dir.parent == out / "wandb"  # default: beside the reports, not in ./wandb
    assert project == "tests"  # the analysed run's project
    (analysed_dir,) = (analysed / "wandb").glob("offline-run-*")
    analysed_id = analysed_dir.name.rsplit("-", 1)[-1]
    doc = json.loads(next(out.glob("*_report.json")).read_text())

    # this project's reader, on the new run folder
    run = open_run(run_dir, cache=False)
    assert run.ref.run_id == run_id and run.ref.project == "tests" and run.ref.state == "finished"
    assert run.config["analysed_run"]["id"] == analysed_id
    assert run.config["analysed_run"]["name"] == "test_run"
    assert run.config["analysed_run"]["location"] == doc["run"]["locator"]
    assert run.tags == ["analysis", f"analysed:{analysed_id}"]
    s = run.summary
    assert s["verdict"] == doc["summary"]["verdict"] and s["worst_severity"] == "critical"
    assert s["n_events"] == doc["summary"]["n_events"] >= 1
    assert s["problematic_batches"] == [2] and s["n_problematic_batches"] == 1
    # the tables: logged as table files whose rows are the report's events and problematic batches
    row = run.history.iloc[0]
    assert run.files_dir is not None
    assert row[EVENTS_TABLE]["_type"] == row[PROBLEM_BATCHES_TABLE]["_type"] == "table-file"
    events = json.loads((run.files_dir / row[EVENTS_TABLE]["path"]).read_text())
    assert events["columns"] == EVENT_COLUMNS and len(events["data"]) == len(doc["events"])
    assert [r[EVENT_COLUMNS.index("message")] for r in events["data"]] == [e["message"] for e in doc["events"]]
    batches = json.loads((run.files_dir / row[PROBLEM_BATCHES_TABLE]["path"]).read_text())
    assert batches["columns"] == PROBLEM_BATCH_COLUMNS and [r[0] for r in batches["data"]] == [2]
    # the HTML report as a run file: the very file the CLI wrote
    html_report = next(out.glob("*_report.html")).read_bytes()
    assert (run.files_dir / REPORT_FILE_NAME).read_bytes() == html_report

    # wandb's own decoding of the .wandb file: job type, tags, the report artifact and file record
    records = _records(run_dir)
    (run_record,) = records["run"]
    assert run_record.job_type == "analysis" and list(run_record.tags) == ["analysis", f"analysed:{analysed_id}"]
    config = {u.key: json.loads(u.value_json) for u in run_record.config.update}
    assert config["analysed_run"]["id"] == analysed_id
    (artifact,) = [a for a in records["artifact"] if a.type == "report"]
    assert artifact.name == f"analysis-report-{analysed_id}"
    assert [c.path for c in artifact.manifest.contents] == [REPORT_FILE_NAME]
    assert artifact.manifest.contents[0].size == len(html_report)
    assert {a.type for a in records["artifact"]} == {"report", "run_table"}  # the two tables are artifacts too
    files = {f.path for rec in records["files"] for f in rec.files}
    assert REPORT_FILE_NAME in files
    assert records["exit"][0].exit_code == 0


def test_wandb_dir_and_project_flag_are_respected(analysed, tmp_path):
    env = {**wandb_env(analysed), "WANDB_DIR": str(tmp_path / "elsewhere")}
    (tmp_path / "elsewhere").mkdir()
    result = _cli(
        [
            *("--run-name", "test_run", "--output-dir", str(tmp_path / "out"), "--format", "json"),
            *("--log-to-wandb", "--wandb-project", "triage", "--quiet"),
        ],
        analysed,
        env,
    )
    assert result.returncode == 0, result.stderr
    m = LINE.match(result.stdout.splitlines()[-1])
    assert m and m.group(3) == "triage"
    run_dir = Path(m.group(2))
    assert run_dir.parent == tmp_path / "elsewhere" / "wandb"
    assert open_run(run_dir, cache=False).ref.project == "triage"
    assert not (tmp_path / "out" / "wandb").exists()


def test_wandb_project_without_log_to_wandb_is_a_usage_error(analysed, monkeypatch, capsys):
    monkeypatch.chdir(analysed)
    with pytest.raises(SystemExit) as exc:
        cli.run(["--run-name", "test_run", "--wandb-project", "x"])
    assert exc.value.code == 2 and "--log-to-wandb" in capsys.readouterr().err


def _report(logged) -> Report:
    _, out, _ = logged
    return Report.from_json(next(out.glob("*_report.json")).read_text())


def test_wandb_not_importable_is_a_clear_error(logged, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.raises(AnalyzerError, match="pip install wandb"):
        log_analysis_to_wandb(_report(logged), wandb_dir=tmp_path, html="<html></html>")
    assert not (tmp_path / "wandb").exists()


def test_cli_reports_a_wandb_failure_in_one_line_and_keeps_the_reports(analysed, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.chdir(analysed)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    code = cli.main(["--run-name", "test_run", "--output-dir", str(tmp_path), "--format", "json", "--log-to-wandb"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: --log-to-wandb: logging to wandb needs the wandb package")
    (written,) = tmp_path.glob("*_report.json")
    assert str(written) in err  # nothing lost: the error says where the reports are


def test_disabled_mode_and_a_failing_init_are_analyzer_errors(logged, monkeypatch, tmp_path):
    report = _report(logged)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with pytest.raises(AnalyzerError, match="WANDB_MODE=disabled"):
        log_analysis_to_wandb(report, wandb_dir=tmp_path, html="x")
    monkeypatch.setenv("WANDB_MODE", "sideways")  # wandb.init refuses an unknown mode
    with pytest.raises(AnalyzerError, match=r"wandb\.init failed \(sideways mode\)"):
        log_analysis_to_wandb(report, wandb_dir=tmp_path, html="x")
    assert os.environ["WANDB_MODE"] == "sideways"  # the user's setting is read, never rewritten


_LOG_WITH_TIMEOUT = r"""
import os, sys, time
from analysis.core.errors import AnalyzerError
from analysis.reporting.model import Report
from analysis.reporting.wandb_log import log_analysis_to_wandb
report = Report.from_json(open(sys.argv[1]).read())
start = time.monotonic()
try:
    log_analysis_to_wandb(report, wandb_dir=sys.argv[2], html="x", timeout=float(sys.argv[3]))
    print("logged")
except AnalyzerError as exc:
    print(f"{time.monotonic() - start:.1f} s: {exc}")
sys.stdout.flush()
os._exit(0)  # wandb's exit hooks would wait for the silent service too
"""


def test_a_wandb_service_that_never_answers_gives_a_clear_error_in_time(logged, tmp_path):
    """wandb's client waits without limit on a service that accepts and never answers; with `timeout` (the
    dashboard's way) the caller gets an AnalyzerError once it is over, instead of a page that spins for good."""
    _, out, env = logged
    report_json = next(out.glob("*_report.json"))
    with silent_wandb_service() as token:
        proc = subprocess.run(
            [sys.executable, "-c", _LOG_WITH_TIMEOUT, str(report_json), str(tmp_path), "3"],
            env={**env, "WANDB_SERVICE": token},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    seconds, _, message = proc.stdout.strip().partition(" s: ")
    assert message.startswith("wandb did not finish within 3 s"), proc.stdout + proc.stderr[-2000:]
    assert 3 <= float(seconds) < 20


def test_only_an_inherited_wandb_service_token_is_forgotten(monkeypatch):
    monkeypatch.setenv("WANDB_SERVICE", f"3-{os.getpid()}-unix-/tmp/own/socket")  # this process's own service
    assert not forget_inherited_wandb_service() and os.environ["WANDB_SERVICE"].endswith("/tmp/own/socket")
    monkeypatch.setenv("WANDB_SERVICE", f"3-{os.getpid() + 1}-unix-/tmp/parent/socket")  # a parent's
    assert forget_inherited_wandb_service() and "WANDB_SERVICE" not in os.environ
    assert not forget_inherited_wandb_service()


def test_the_offline_analysis_run_syncs_to_the_graphql_test_server(logged, tmp_path):
    """`wandb sync` (the real client) uploads the analysis run to the local server: the run with its job type,
    link and verdict, the tables, the HTML report as a run file and as a committed artifact of type report."""
    from tests.wandb_sync_stub import SyncStubServer

    result, out, _ = logged
    run_dir = Path(LINE.match(result.stdout.splitlines()[-1]).group(2))  # type: ignore[union-attr]
    html_report = next(out.glob("*_report.html")).read_bytes()
    with SyncStubServer(entity="team") as server:
        sync_env = {**wandb_env(tmp_path), "WANDB_BASE_URL": server.url, "WANDB_API_KEY": "local-" + "k" * 40}
        sync_env.pop("WANDB_MODE")
        proc = subprocess.run(
            [sys.executable, "-m", "wandb", "sync", str(run_dir)],
            env=sync_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr
    assert server.unhandled == []
    run_id = run_dir.name.rsplit("-", 1)[-1]
    bucket = server.buckets[run_id]
    analysed_id = json.loads(bucket["config"])["analysed_run"]["value"]["id"]
    assert bucket["jobType"] == "analysis" and bucket["project"] == "tests"
    assert bucket["tags"] == ["analysis", f"analysed:{analysed_id}"]
    (summary_line,) = server.streamed["wandb-summary.json"]
    summary = json.loads(summary_line)
    assert summary["worst_severity"] == "critical" and summary["problematic_batches"] == [2]
    assert json.loads(server.streamed["wandb-history.jsonl"][0])[EVENTS_TABLE]["_type"] == "table-file"
    assert server.uploads[f"run/{run_id}/{REPORT_FILE_NAME}"] == html_report
    tables = {k.rsplit("/", 1)[-1].split("_0_")[0] for k in server.uploads if "/media/table/" in k}
    assert tables == {"events", "problematic_batches"}
    ((aid, report_artifact),) = [(k, a) for k, a in server.artifacts.items() if a["artifactTypeName"] == "report"]
    assert report_artifact["artifactCollectionName"] == f"analysis-report-{analysed_id}"
    assert report_artifact["state"] == "COMMITTED" and list(report_artifact["files"]) == [REPORT_FILE_NAME]
    assert server.uploads[f"artifact/{aid}/{REPORT_FILE_NAME}"] == html_report
    assert all(a["state"] == "COMMITTED" for a in server.artifacts.values())


def test_online_mode_logs_straight_to_the_graphql_test_server(analysed, tmp_path):
    """WANDB_MODE=online (the user's setting): the CLI creates the analysis run on the server while it runs."""
    from tests.wandb_sync_stub import SyncStubServer

    with SyncStubServer(entity="team") as server:
        env = {**wandb_env(tmp_path), "WANDB_MODE": "online", "WANDB_BASE_URL": server.url}
        env["WANDB_API_KEY"] = "local-" + "k" * 40
        out = tmp_path / "out"
        result = _cli(["--run-name", "test_run", "--output-dir", str(out), "--log-to-wandb"], analysed, env)
    assert result.returncode == 0, result.stderr
    m = re.search(r"^wandb: analysis run (\w+) logged to (\S+)$", result.stdout, re.MULTILINE)
    assert m and m.group(2) == f"{server.url}/team/tests/runs/{m.group(1)}", result.stdout
    assert server.unhandled == []
    bucket = server.buckets[m.group(1)]
    assert bucket["jobType"] == "analysis" and bucket["tags"][0] == "analysis"
    assert json.loads(server.streamed["wandb-summary.json"][-1])["worst_severity"] == "critical"
    html_report = next(out.glob("*_report.html")).read_bytes()
    assert server.uploads[f"run/{m.group(1)}/{REPORT_FILE_NAME}"] == html_report
    (report_artifact,) = [a for a in server.artifacts.values() if a["artifactTypeName"] == "report"]
    assert report_artifact["state"] == "COMMITTED"
    assert not list((out / "wandb").glob("offline-run-*"))  # online: no run left waiting for `wandb sync`
