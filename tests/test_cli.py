"""analyze_experiment.py: the handbook check, exit codes (0 / 1 --fail-on / 2 user error), formats, quiet, progress."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import cli
from tests.report_runs import degrading_rows, write_degrading_run
from tests.wandb_writer import write_run

pytestmark = pytest.mark.slow  # the CLI runs in subprocesses on wandb runs written per test

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "analyze_experiment.py"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A project folder with ./wandb holding test_run (batch 2 collapses), two runs named twin and a flat run."""
    d = tmp_path_factory.mktemp("cli")
    write_degrading_run(d, "test_run")
    write_run(d, "twin", degrading_rows(n_steps=8))
    write_run(d, "twin", degrading_rows(n_steps=8))
    flat = [
        {f"batch_{b}/recall": 0.9, f"batch_{b}/precision": 0.9, f"batch_{b}/hmean": 0.9, "global_step": s}
        for s in range(1, 16)
        for b in range(3)
    ]
    write_run(d, "flat_run", flat)
    return d


def _plain(name: str) -> str:
    """A report file name without the run id (or hash) that keeps runs apart: `x-ab12cd34_report.md` -> `x_report.md`."""
    return re.sub(r"-[0-9a-z]{8,10}(?=_report\.)", "", name)


def _report(folder: Path, stem: str, ext: str) -> Path:
    """The one report of run `stem` in `folder`."""
    (found,) = [p for p in folder.iterdir() if _plain(p.name) == f"{stem}_report.{ext}"]
    return found


def _cli(args: list[str], cwd: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k != "WANDB_DIR"}
    e.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=120, **kw
    )


def _main(args: list[str], cwd: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_handbook_validation_check(workdir):
    result = _cli(["--run-name", "test_run", "--output-dir", "./test_reports"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Analysis complete" in result.stdout
    names = sorted(p.name for p in (workdir / "test_reports").iterdir())
    assert [_plain(n) for n in names] == ["test_run_report.html", "test_run_report.json", "test_run_report.md"]
    for name in names:  # the printed paths are the files written
        assert f"test_reports/{name}" in result.stdout
    doc = json.loads(_report(workdir / "test_reports", "test_run", "json").read_text())
    assert doc["run"]["name"] == "test_run" and next(p["batch"] for p in doc["problematic_batches"]) == 2


def test_unknown_run_exits_2_with_one_line_listing_the_runs(workdir):
    result = _cli(["--run-name", "no_such_run"], cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no_such_run" in lines[0] and "test_run" in lines[0] and "flat_run" in lines[0]


def test_ambiguous_name_lists_the_candidates_and_an_id_resolves_it(workdir, monkeypatch, capsys, tmp_path):
    code, out, err = _main(["--run-name", "twin", "--output-dir", str(tmp_path)], workdir, monkeypatch, capsys)
    assert code == 2 and out == ""
    ids = sorted(p.name.rsplit("-", 1)[-1] for p in (workdir / "wandb").glob("offline-run-*"))
    twin_ids = [i for i in ids if i in err]
    assert len(twin_ids) == 2 and "twin" in err and len(err.strip().splitlines()) == 1
    code, out, err = _main(
        ["--run-name", twin_ids[0], "--output-dir", str(tmp_path), "--format", "json"], workdir, monkeypatch, capsys
    )
    assert code == 0, err
    assert json.loads(_report(tmp_path, "twin", "json").read_text())["run"]["id"] == twin_ids[0]


def test_fail_on_sets_exit_code_1_when_findings_reach_the_level(workdir, monkeypatch, capsys, tmp_path):
    out_dir = str(tmp_path)
    runs = {}
    for level in ("never", "warning", "critical"):
        code, _, _ = _main(
            ["--run-name", "test_run", "--output-dir", out_dir, "--format", "json", "--fail-on", level],
            workdir,
            monkeypatch,
            capsys,
        )
        runs[("test_run", level)] = code
        code, _, _ = _main(
            ["--run-name", "flat_run", "--output-dir", out_dir, "--format", "json", "--fail-on", level],
            workdir,
            monkeypatch,
            capsys,
        )
        runs[("flat_run", level)] = code
    assert json.loads(_report(tmp_path, "test_run", "json").read_text())["summary"]["severity"] == "critical"
    assert json.loads(_report(tmp_path, "flat_run", "json").read_text())["summary"]["severity"] == "ok"
    assert runs == {
        ("test_run", "never"): 0,
        ("test_run", "warning"): 1,
        ("test_run", "critical"): 1,
        ("flat_run", "never"): 0,
        ("flat_run", "warning"): 0,
        ("flat_run", "critical"): 0,
    }


def test_auto_generate_reports_false_analyses_and_exits_alike_but_writes_only_when_asked(
    workdir, monkeypatch, capsys, tmp_path
):
    """reporting.auto_generate_reports: false -> the verdict and the exit code, no files; an explicit --format or
    --output-dir still writes them."""
    cfg = tmp_path / "no_reports.yaml"
    cfg.write_text("experiment_monitoring:\n  reporting:\n    auto_generate_reports: false\n")
    here = tmp_path / "cwd"
    here.mkdir()
    base = ["--run-name", "test_run", "--wandb-dir", str(workdir / "wandb"), "--fail-on", "critical"]

    code, out, err = _main([*base, "--config", str(cfg)], here, monkeypatch, capsys)
    assert code == 1  # test_run reaches critical, reports or not
    assert out.splitlines()[0].startswith("Analysis complete: ") and len(out.splitlines()) == 1
    assert "no reports written" in err and "auto_generate_reports" in err
    assert list(here.iterdir()) == []

    code_on, out_on, _ = _main([*base, "--output-dir", str(tmp_path / "on")], here, monkeypatch, capsys)
    assert code_on == code and out_on.splitlines()[0] == out.splitlines()[0]  # same verdict when writing

    code, out, err = _main([*base, "--config", str(cfg), "--format", "json"], here, monkeypatch, capsys)
    assert code == 1 and "no reports written" not in err
    assert [_plain(p.relative_to(here).as_posix()) for p in here.rglob("*.json")] == [
        "experiment_reports/test_run_report.json"
    ]

    code, out, err = _main([*base, "--config", str(cfg), "--output-dir", "o", "--quiet"], here, monkeypatch, capsys)
    assert code == 1 and err == ""
    assert sorted(_plain(p.name) for p in (here / "o").iterdir()) == [
        "test_run_report.html",
        "test_run_report.json",
        "test_run_report.md",
    ]


def test_format_and_quiet(workdir, monkeypatch, capsys, tmp_path):
    code, out, err = _main(
        ["--run-name", "test_run", "--output-dir", str(tmp_path), "--format", "md,json", "--quiet"],
        workdir,
        monkeypatch,
        capsys,
    )
    assert code == 0 and err == ""
    assert out.splitlines() == [
        "Analysis complete",
        str(_report(tmp_path, "test_run", "md")),
        str(_report(tmp_path, "test_run", "json")),
    ]
    assert sorted(_plain(p.name) for p in tmp_path.iterdir()) == ["test_run_report.json", "test_run_report.md"]


def test_config_file_is_used_and_bad_config_exits_2_naming_key_and_line(workdir, monkeypatch, capsys, tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text(
        "experiment_monitoring:\n  reporting:\n    report_formats: [json]\n"
        "  anomaly_detection:\n    metric_thresholds: {recall: 0.5}\n"
    )
    code, out, err = _main(
        ["--run-name", "test_run", "--output-dir", str(tmp_path / "o"), "--config", str(good)],
        workdir,
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    assert [_plain(p.name) for p in (tmp_path / "o").iterdir()] == ["test_run_report.json"]  # formats from the config
    doc = json.loads(_report(tmp_path / "o", "test_run", "json").read_text())
    assert doc["config"]["experiment_monitoring"]["anomaly_detection"]["metric_thresholds"] == {"recall": 0.5}
    bad = tmp_path / "bad.yaml"
    bad.write_text("data_quality:\n  blur_threshold: 100\n  max_rotation: 15\n")
    code, out, err = _main(["--run-name", "test_run", "--config", str(bad)], workdir, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"error: {bad}:3: data_quality.max_rotation: unknown key (did you mean max_rotation_degrees?)"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run-name", "test_run", "--wandb-dir", "does/not/exist"], "wandb directory not found: does/not/exist"),
        (["--run-name", "test_run", "--data-dir", "no_data_here"], "data directory not found: no_data_here"),
        (["--run-name", "test_run", "--format", "pdf"], "unknown report format 'pdf'"),
        (["--run-name", "test_run", "--config", "missing.yaml"], "cannot read config missing.yaml"),
        (["--history-file", "missing.csv"], "history file not found: missing.csv"),
        (["--run-name", "test_run", "--output-dir", "blocker/sub"], "cannot create output directory blocker/sub"),
    ],
)
def test_user_errors_exit_2_with_one_clear_line(workdir, monkeypatch, capsys, args, message):
    (workdir / "blocker").write_text("a file where a directory is wanted")
    code, out, err = _main(args, workdir, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--run-name is required"),
        (["--run-name", "x", "--entity", "e"], "--entity and --project go together"),
        (["--history-file", "h.csv", "--wandb-dir", "w"], "--history-file cannot be combined"),
        (["--run-name", "x", "--fail-on", "sometimes"], "invalid choice: 'sometimes'"),
    ],
)
def test_usage_errors_exit_2(workdir, monkeypatch, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        _main(args, workdir, monkeypatch, capsys)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_wandb_dir_defaults_to_WANDB_DIR_when_there_is_no_local_wandb(workdir, tmp_path):
    result = _cli(
        ["--run-name", "test_run", "--output-dir", str(tmp_path), "--format", "json"],
        cwd=tmp_path,
        env={"WANDB_DIR": str(workdir)},
    )
    assert result.returncode == 0, result.stderr
    assert _report(tmp_path, "test_run", "json").is_file()


def test_a_run_folder_can_be_given_directly(workdir, monkeypatch, capsys, tmp_path):
    folder = sorted((workdir / "wandb").glob("offline-run-*"))[0]
    code, _out, err = _main(
        ["--run-name", str(folder), "--output-dir", str(tmp_path), "--format", "json"], tmp_path, monkeypatch, capsys
    )
    assert code == 0, err
    assert len(list(tmp_path.glob("*_report.json"))) == 1


def test_help_documents_every_option(workdir):
    result = _cli(["--help"], cwd=workdir)
    assert result.returncode == 0
    for opt in (
        "--run-name",
        "--wandb-dir",
        "--entity",
        "--project",
        "--history-file",
        "--data-dir",
        "--output-dir",
        "--config",
        "--format",
        "--fail-on",
        "--quiet",
        "exit codes",
    ):
        assert opt in result.stdout


def test_progress_bar_on_a_terminal_only(workdir, tmp_path):
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--run-name", "test_run", "--output-dir", str(tmp_path), "--format", "json"],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO once the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(master)
    tty_err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and "Analysis complete" in out
    assert "%|" in tty_err and "100%" in tty_err  # tqdm drew a bar on the terminal
    piped = _cli(["--run-name", "test_run", "--output-dir", str(tmp_path), "--format", "json"], cwd=workdir)
    assert "%|" not in piped.stderr  # and none when stderr is not a terminal


def test_history_exports_are_analysed_like_runs(workdir, monkeypatch, capsys, tmp_path):
    import pandas as pd

    rows = degrading_rows()
    frame = pd.DataFrame([r for r in rows if "global_step" in r])  # metrics only (lists do not fit Parquet)
    (tmp_path / "h.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    frame.to_parquet(tmp_path / "h.parquet")
    frame.to_csv(tmp_path / "h.csv", index=False)
    for name in ("h.jsonl", "h.parquet", "h.csv"):
        out = tmp_path / f"out-{name}"
        code, _stdout, err = _main(
            ["--history-file", str(tmp_path / name), "--output-dir", str(out), "--format", "json"],
            workdir,
            monkeypatch,
            capsys,
        )
        assert code == 0, err
        doc = json.loads(next(out.glob("*_report.json")).read_text())
        assert doc["run"]["source"] == "file"
        assert [p["batch"] for p in doc["problematic_batches"]][:1] == [2], name
    jsonl = json.loads(next((tmp_path / "out-h.jsonl").glob("*.json")).read_text())
    assert jsonl["summary"]["n_problem_images_logged"] > 0  # the problematic_batch_{i} lists were read too


def test_a_multi_run_export_without_a_run_name_names_the_runs_and_the_cli_option(workdir, monkeypatch, capsys):
    """A real wandb UI export of two runs (benchmarks/data/curves): the CLI's way to choose is --run-name; the error
    pointed at the dashboard's 'FILE#RUN' form, which the CLI does not take as a file name."""
    export = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/di_f_fu_sion/cifar10_wandb_export.csv"
    code, _out, err = _main(["--history-file", str(export)], workdir, monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "2 runs (colu, relu)" in err and "--run-name NAME" in err and "#<run name>" not in err
    code, out, err = _main(["--history-file", str(export), "--run-name", "relu"], workdir, monkeypatch, capsys)
    assert code == 0 and "Analysis complete" in out, err


def test_two_runs_of_run_level_metrics_only_say_nothing_was_compared_not_no_regression(
    workdir, monkeypatch, capsys, tmp_path
):
    """Two real YOLOv5 `results.csv` of one project (benchmarks/data/curves): no batch_{i}/ metric on either side,
    so no series was compared; the CLI and the reports said "no regression" all the same."""
    runs = Path(__file__).resolve().parents[1] / "benchmarks/data/curves/yolov5_4105project"
    out = tmp_path / "out"
    args = ["--history-file", str(runs / "exp2_results.csv"), "--baseline", str(runs / "exp_results.csv")]
    code, stdout, err = _main([*args, "--output-dir", str(out)], workdir, monkeypatch, capsys)
    assert code == 0, err
    assert "nothing was compared" in stdout and "no regression" not in stdout.lower()
    md = next(out.glob("*_report.md")).read_text()
    html = next(out.glob("*_report.html")).read_text()
    assert "Nothing was compared" in md and "No regression" not in md
    assert "Nothing was compared" in html and "No regression against the baseline" not in html


def test_damaged_inputs_exit_2(workdir, monkeypatch, capsys, tmp_path):
    garbage = tmp_path / "g.parquet"
    garbage.write_bytes(b"this is not parquet at all")
    code, _out, err = _main(["--history-file", str(garbage)], workdir, monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    fake = tmp_path / "wandb" / "offline-run-20260101_000000-zzzzzzzz"
    (fake / "files").mkdir(parents=True)
    (fake / "run-zzzzzzzz.wandb").write_bytes(b"\x00" * 64)
    code, _out, err = _main(
        ["--run-name", "zzzzzzzz", "--wandb-dir", str(tmp_path / "wandb")], tmp_path, monkeypatch, capsys
    )
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _out, err = _main(["--run-name", "x", "--wandb-dir", str(garbage)], tmp_path, monkeypatch, capsys)
    assert code == 2 and f"not a directory: {garbage}" in err


def test_cloud_runs_by_name_or_id_through_the_real_wandb_client(workdir, monkeypatch, capsys, tmp_path):
    """--entity/--project against a local server speaking wandb's GraphQL protocol (tests/wandb_stub.py)."""
    from analysis.sources import cloud, open_run
    from tests.wandb_stub import StubServer

    runs = [open_run(p, cache=False) for p in sorted((workdir / "wandb").glob("offline-run-*"))]
    with StubServer({"team/ocr": runs}, entity="team") as server:
        monkeypatch.setenv("WANDB_BASE_URL", server.url)
        monkeypatch.setenv("WANDB_API_KEY", "local-" + "k" * 40)
        monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(cloud, "_APIS", {})
        base = ["--entity", "team", "--project", "ocr", "--output-dir", str(tmp_path), "--format", "json"]
        code, _out, err = _main([*base, "--run-name", "test_run"], workdir, monkeypatch, capsys)
        assert code == 0, err
        doc = json.loads(_report(tmp_path, "test_run", "json").read_text())
        assert doc["run"]["source"] == "cloud" and doc["problematic_batches"][0]["batch"] == 2
        code, _out, err = _main([*base, "--run-name", "twin"], workdir, monkeypatch, capsys)
        assert code == 2 and "2 runs in team/ocr are named 'twin'" in err
        code, _out, err = _main([*base, "--run-name", "ghost"], workdir, monkeypatch, capsys)
        assert code == 2 and "'ghost'" in err and "flat_run" in err
        server.unauthorised = True
        monkeypatch.setattr(cloud, "_APIS", {})
        code, _out, err = _main([*base, "--run-name", "test_run"], workdir, monkeypatch, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------------------------------------- QA: odd runs

CTL_NAME = "ctl\x1b[31mred\nline"


@pytest.fixture(scope="module")
def oddruns(tmp_path_factory) -> Path:
    """Runs a first-time user hits: all NaN/Inf, a name and a metric key with terminal escapes."""
    d = tmp_path_factory.mktemp("odd")
    write_run(
        d,
        "nan_everywhere",
        [{"batch_0/recall": "NaN", "batch_1/recall": "Infinity", "global_step": s} for s in range(12)],
    )
    write_run(
        d, CTL_NAME, [{"batch_0/recall": 0.9, "batch_0/x\x1b]0;pwned\x07": 0.5, "global_step": s} for s in range(8)]
    )
    return d


def test_all_nonfinite_run_gives_a_sensible_verdict(oddruns, monkeypatch, capsys, tmp_path):
    """QA: the verdict read 'worst: batch 1, recall nan at step -1'."""
    code, _out, err = _main(
        ["--run-name", "nan_everywhere", "--output-dir", str(tmp_path), "--format", "json"],
        oddruns,
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    doc = json.loads(_report(tmp_path, "nan_everywhere", "json").read_text(), parse_constant=lambda c: 1 / 0)
    verdict = doc["summary"]["verdict"]
    assert "step -1" not in verdict and "nan" not in verdict and "never finite" in verdict
    assert doc["anomalies"][0]["detector"] == "nonfinite" and doc["summary"]["severity"] == "critical"
    assert "other batches held steady" not in " ".join(doc["problematic_batches"][0]["root_causes"])


def test_terminal_escapes_in_names_reach_neither_the_terminal_nor_the_markdown(oddruns, tmp_path):
    result = _cli(["--run-name", CTL_NAME, "--output-dir", str(tmp_path)], cwd=oddruns)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr
    md = next(tmp_path.glob("*_report.md")).read_text()
    assert "\x1b" not in md and "\x07" not in md
    assert "ctl \\[31mred line" in md  # the name, readable, on one line
    html = next(tmp_path.glob("*_report.html")).read_text()
    assert "<title>" in html and "\x07" not in html.split("<title>")[1].split("</title>")[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run-name", "nan_everywhere", "--format", ""], "no report format given"),
        (["--history-file", "."], "--history-file wants a file, not the directory ."),
    ],
)
def test_more_user_errors_exit_2(oddruns, monkeypatch, capsys, args, message):
    """QA: `--format ""` silently wrote every format; a directory as --history-file said 'not found'."""
    code, out, err = _main(args, oddruns, monkeypatch, capsys)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_a_history_file_name_that_is_not_utf8_still_gives_reports(tmp_path, monkeypatch, capsys):
    """QA: a file name with byte 0xff (lone surrogate in Python) crashed writing the JSON with a traceback and
    left a `.tmp` file behind."""
    name = os.fsdecode(b"run\xffname.csv")
    (tmp_path / name).write_text("global_step,batch_0/recall\n1,0.9\n2,0.9\n3,0.2\n")
    code, _out, err = _main(["--history-file", name, "--output-dir", "out"], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert [_plain(n) for n in written] == ["run_name_report.html", "run_name_report.json", "run_name_report.md"]
    doc = json.loads(_report(tmp_path / "out", "run_name", "json").read_text(encoding="utf-8"))
    assert doc["run"]["name"] == "run?name"


def test_a_run_with_only_run_level_metrics_names_its_findings_in_the_verdict(tmp_path, monkeypatch, capsys):
    """QA: a run logging only val/recall that collapsed printed 'Analysis complete: No per-batch metrics' and
    exited 1 for --fail-on critical without saying why."""
    rows = [{"_step": s, "val/recall": 0.9 if s < 30 else 0.3, "train/loss": 0.5} for s in range(60)]
    (tmp_path / "h.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _err = _main(
        ["--history-file", "h.jsonl", "--output-dir", "o", "--format", "json", "--fail-on", "critical"],
        tmp_path,
        monkeypatch,
        capsys,
    )
    assert code == 1
    assert "run-level critical findings in val/recall from step 30" in out.splitlines()[0]


def test_a_batch_key_pattern_capturing_words_is_a_config_error(workdir, monkeypatch, capsys, tmp_path):
    """QA: `(?P<batch>[a-z]+)` matched 'batch' in 'batch_0/recall' and int('batch') ended in a traceback."""
    cfg = tmp_path / "p.yaml"
    cfg.write_text('training_config:\n  batch_key_pattern: "^(?P<batch>[a-z]+)_(?P<metric>.+)$"\n')
    code, out, err = _main(
        ["--run-name", "test_run", "--config", str(cfg), "--output-dir", str(tmp_path)], workdir, monkeypatch, capsys
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "matched 'batch' in the key 'batch_0/hmean', which is not a batch number" in err


def test_a_reader_that_goes_away_is_not_a_traceback_and_keeps_the_exit_code(workdir, tmp_path):
    """QA: `analyze_experiment.py ... | head -0` died with BrokenPipeError and exit 1, the code that means
    'findings reached --fail-on'."""
    e = {k: v for k, v in os.environ.items() if k != "WANDB_DIR"}
    for fail_on, expected in (("never", 0), ("critical", 1)):
        r, w = os.pipe()
        os.close(r)  # nobody reads stdout
        proc = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                "--run-name",
                "test_run",
                "--output-dir",
                str(tmp_path),
                "--format",
                "json",
                "--quiet",
                "--fail-on",
                fail_on,
            ],
            cwd=workdir,
            env=e,
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(w)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == expected and "Traceback" not in err, err


def test_a_symlink_loop_in_the_data_dir_is_never_a_traceback(tmp_path, monkeypatch, capsys):
    """QA: a logged image path that is a symlink loop (`loop -> loop`) ended the CLI with a RuntimeError traceback
    from Path.resolve. Whatever layer refuses it, the user sees one line (or a report), and the exit code says
    which: 2 user error, 3 unexpected internal error (ANALYZER_DEBUG=1 shows the traceback)."""
    data = tmp_path / "data"
    data.mkdir()
    os.symlink("loop", data / "loop")
    (tmp_path / "h.jsonl").write_text(
        '{"global_step": 1, "batch_0/recall": 0.3}\n{"problematic_batch_0": ["loop"], "global_step": 1}\n'
    )
    monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ANALYZER_DEBUG", raising=False)
    code, _out, err = _main(
        ["--history-file", "h.jsonl", "--data-dir", "data", "--output-dir", "o", "--format", "json"],
        tmp_path,
        monkeypatch,
        capsys,
    )
    assert "Traceback" not in err
    assert code == 0 or (code in (2, 3) and len(err.strip().splitlines()) == 1 and "loop" in err), (code, err)


def test_reports_of_different_runs_never_overwrite_each_other(tmp_path, monkeypatch, capsys):
    """Issue 17, item 6: `实验一` and `实验二` both became `run_report.*`, `lr=0.1` and `lr:0.1` both `lr_0.1_report.*`;
    the second silently replaced the first."""
    base = tmp_path / "runs"
    for name in ("实验一", "实验二"):
        write_run(base, name, [{"global_step": s, "batch_0/recall": 0.9} for s in range(4)])
    (tmp_path / "lr=0.1.csv").write_text("global_step,batch_0/recall\n1,0.9\n2,0.8\n")
    (tmp_path / "lr:0.1.csv").write_text("global_step,batch_0/recall\n1,0.5\n2,0.4\n")
    out = tmp_path / "out"
    for args in (
        ["--wandb-dir", str(base / "wandb"), "--run-name", "实验一"],
        ["--wandb-dir", str(base / "wandb"), "--run-name", "实验二"],
        ["--history-file", "lr=0.1.csv"],
        ["--history-file", "lr:0.1.csv"],
    ):
        code, _, err = _main([*args, "--output-dir", str(out), "--format", "json"], tmp_path, monkeypatch, capsys)
        assert code == 0, err
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*_report.json"))]
    assert sorted(d["run"]["name"] for d in docs) == sorted(["实验一", "实验二", "lr=0.1", "lr:0.1"])
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))


def test_concurrent_writers_of_one_report_never_fail(tmp_path):
    """Concurrent writers shared one `<name>.tmp` (3 of 80 writes failed); each now has its own temporary file."""
    from concurrent.futures import ThreadPoolExecutor

    from analysis.findings.pipeline import analyze_run
    from analysis.reporting.report import Report, write_reports
    from analysis.sources import open_table

    (tmp_path / "r.csv").write_text("global_step,batch_0/recall\n1,0.9\n2,0.8\n3,0.2\n")
    report = Report.from_analysis(analyze_run(open_table(tmp_path / "r.csv")))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: write_reports(report, tmp_path / "out", ["md", "json"]), range(80)))
    assert all(r == results[0] for r in results)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r_report.json", "r_report.md"]


def test_a_quoted_tilde_output_dir_is_expanded(workdir, tmp_path, monkeypatch, capsys):
    """Issue 17, item 16: `--output-dir "~/x"` (quoted, so no shell expansion) created a literal `~` folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, _, err = _main(
        ["--run-name", "test_run", "--output-dir", "~/x", "--format", "json"], workdir, monkeypatch, capsys
    )
    assert code == 0, err
    assert _report(tmp_path / "home" / "x", "test_run", "json").is_file()
    assert not (tmp_path / "~").exists()


def test_a_run_name_that_is_a_history_export_in_the_data_dir_points_to_history_file(
    workdir, monkeypatch, capsys, tmp_path
):
    """QA: a user with `exports/loss_log.csv` who gave `--run-name loss_log --data-dir exports` read only "no run
    named 'loss_log' in wandb"."""
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "loss_log.csv").write_text("step,loss\n1,0.9\n2,0.8\n")
    args = ["--run-name", "loss_log", "--data-dir", str(exports), "--output-dir", str(tmp_path / "out")]
    code, out, err = _main(args, workdir, monkeypatch, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"pass --history-file {exports / 'loss_log.csv'}" in err and "test_run" in err  # the runs there, still
    code, out, err = _main(["--run-name", "no_such_run", "--data-dir", str(exports)], workdir, monkeypatch, capsys)
    assert code == 2 and "--history-file" not in err


def test_a_healthy_run_level_log_says_it_has_no_alarms(tmp_path, monkeypatch, capsys):
    """A run-level log with nothing wrong printed 'Analysis complete: No per-batch metrics (batch_{i}/...) in this
    run.', which reads like an error; it now says how many run-level metrics were checked."""
    rows = [{"_step": s, "val/recall": 0.9, "train/loss": 1.0 / (1 + s), "lr": 0.1} for s in range(60)]
    (tmp_path / "h.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _err = _main(
        ["--history-file", "h.jsonl", "--output-dir", "o", "--format", "json"], tmp_path, monkeypatch, capsys
    )
    assert code == 0
    assert out.splitlines()[0].endswith("No per-batch metrics (batch_{i}/...); no alarms in 2 run-level metrics.")
