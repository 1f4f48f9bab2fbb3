"""Run comparison on runs written by the real wandb library: regressed batches, parting step, new / vanished
batches, baseline files, and the CLI gate (--fail-on regression, --junit, $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from analysis import cli
from analysis.core.errors import AnalyzerError
from analysis.findings.baseline_file import load_baseline
from analysis.findings.compare import CompareConfig, compare_runs, save_baseline
from analysis.sources import find_run, open_run
from tests.wandb_writer import write_run

pytestmark = pytest.mark.slow  # five wandb runs written in subprocesses

METRICS = ("recall", "precision", "hmean")


def rows(
    seed: int,
    *,
    batches: range | list[int] = range(8),
    step_every: int = 100,
    n: int = 30,
    bad_batch: int | None = None,
    bad_from: int = 1500,
    lr: float = 1e-3,
) -> list[dict]:
    """Handbook rows: every batch's recall/precision/hmean (a learning curve + noise 0.005) and its lr per step."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        step = i * step_every
        row: dict = {"global_step": step}
        for b in batches:
            base = 0.75 + 0.15 * (1 - math.exp(-i / 6)) + 0.01 * (b % 3)
            for k, m in enumerate(METRICS):
                v = base - 0.01 * k + float(rng.normal(0, 0.005))
                if b == bad_batch and step >= bad_from:
                    v -= 0.1
                row[f"batch_{b}/{m}"] = v
            row[f"batch_{b}/lr"] = lr
        out.append(row)
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("compare")
    write_run(d, "golden", rows(1))
    write_run(d, "golden-copy", rows(1))
    # batch 5 loses 0.1 from step 1500; a halved lr (a schedule) must not count as a regression
    write_run(d, "nightly", rows(2, bad_batch=5, lr=5e-4))
    write_run(d, "reshuffled", rows(3, batches=[0, 1, 2, 3, 4, 5, 6, 9]))
    # twice as long, same number of validations: aligned on progress; batch 5 falls at half-way (step 3000)
    write_run(d, "long", rows(4, step_every=200, bad_batch=5, bad_from=3000))
    return d


def _run(project: Path, name: str):
    return open_run(find_run(project / "wandb", name))


def test_only_the_regressed_batch_is_reported_with_its_parting_step(project):
    c = compare_runs(_run(project, "golden"), _run(project, "nightly"))
    assert c.alignment == "step"
    assert c.regressed_batches == [5]
    assert {d.metric for d in c.regressions} == set(METRICS)  # lr (a schedule) is not compared at all
    assert all(d.metric != "lr" for d in c.deltas)
    for d in c.regressions:
        assert d.parting_step is not None and abs(d.parting_step - 1500) <= 100
        assert d.delta_window == pytest.approx(-0.1, abs=0.01)
    assert c.deltas[0].batch == 5 and c.table().iloc[0]["status"] == "regression"  # worst first
    sentences = c.sentences()
    assert len(sentences) == 3 and all(s.startswith("Batch 5 ") and "fell" in s for s in sentences)
    assert "step 1500" in sentences[0] or "step 1400" in sentences[0] or "step 1600" in sentences[0]


def test_the_tolerance_covers_a_small_shift(project):
    loose = CompareConfig(tolerance_abs=0.2)
    assert not compare_runs(_run(project, "golden"), _run(project, "nightly"), loose).has_regression
    relative = CompareConfig(tolerance_abs=0.0, tolerance_rel=0.2)  # 0.1 is ~12% of 0.85: covered
    assert not compare_runs(_run(project, "golden"), _run(project, "nightly"), relative).has_regression


def test_identical_runs_have_no_regression(project):
    c = compare_runs(_run(project, "golden"), _run(project, "golden-copy"))
    assert not c.has_regression and not any(d.improvement for d in c.deltas)
    assert all(d.delta_window == 0 and d.parting_step is None for d in c.deltas)
    assert len(c.deltas) == 8 * 3 and not c.new_batches and not c.vanished_batches


def test_batches_in_one_run_only_are_new_or_vanished(project):
    c = compare_runs(_run(project, "golden"), _run(project, "reshuffled"))
    assert c.new_batches == (9,) and c.vanished_batches == (7,)
    assert not c.has_regression
    md = c.to_markdown()
    assert "New batches (candidate only): 9" in md and "Vanished batches (baseline only): 7" in md


def test_runs_of_different_length_align_on_progress(project):
    c = compare_runs(_run(project, "golden"), _run(project, "long"))
    assert c.alignment == "progress"
    assert c.regressed_batches == [5]
    assert all(d.parting_step is not None and abs(d.parting_step - 3000) <= 200 for d in c.regressions)


def test_a_saved_baseline_gives_the_same_answer_as_the_run(project, tmp_path):
    golden = _run(project, "golden")
    for name in ("golden.json", "golden.json.gz"):
        path = save_baseline(golden, tmp_path / name)
        for cand in ("nightly", "reshuffled", "long"):
            from_run = compare_runs(golden, _run(project, cand)).to_dict()
            from_file = compare_runs(path, _run(project, cand)).to_dict()
            assert from_file == from_run
    data = json.loads((tmp_path / "golden.json").read_text())
    assert data["format"] == "experiment-analyzer-baseline" and data["version"] == 1


def test_a_file_that_is_not_a_baseline_is_a_clear_error(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(AnalyzerError, match="not a baseline file"):
        load_baseline(other)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(AnalyzerError, match="not a baseline file"):
        load_baseline(broken)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"format": "experiment-analyzer-baseline", "version": 99, "series": []}))
    with pytest.raises(AnalyzerError, match="version 99"):
        load_baseline(future)


# ------------------------------------------------------------------------------------------------------ CLI
def _main(args: list[str], cwd: Path, monkeypatch, capsys, env: dict | None = None) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    code = cli.main([*args, "--quiet", "--format", "json", "--output-dir", str(cwd / "reports")])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_fails_on_regression_and_passes_when_the_tolerance_covers_it(project, monkeypatch, capsys):
    gate = ["--run-name", "nightly", "--baseline", "golden", "--fail-on", "regression"]
    assert _main(gate, project, monkeypatch, capsys)[0] == 1
    assert _main([*gate, "--tolerance-abs", "0.2"], project, monkeypatch, capsys)[0] == 0
    assert _main(["--run-name", "golden-copy", "--baseline", "golden", "--fail-on", "regression"], project,
                 monkeypatch, capsys)[0] == 0  # fmt: skip


def test_cli_junit_and_step_summary(project, monkeypatch, capsys, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    junit = tmp_path / "junit" / "compare.xml"
    args = ["--run-name", "nightly", "--baseline", "golden", "--junit", str(junit), "--fail-on", "regression"]
    code, _, err = _main(args, project, monkeypatch, capsys, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert code == 1, err
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(cases) == 8 * 3
    assert sorted(str(c.get("name")) for c in failed) == ["batch_5/hmean", "batch_5/precision", "batch_5/recall"]
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "3"
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, not overwritten
    assert "**3 regression(s)** in batch(es) 5" in text and "Batch 5 recall fell" in text


def test_cli_saved_baseline_gives_the_same_gate_and_junit(project, monkeypatch, capsys, tmp_path):
    saved = tmp_path / "golden-baseline.json"
    code, _, err = _main(["--run-name", "golden", "--save-baseline", str(saved)], project, monkeypatch, capsys)
    assert code == 0 and saved.is_file(), err
    j_run, j_file = tmp_path / "run.xml", tmp_path / "file.xml"
    gate = ["--run-name", "nightly", "--fail-on", "regression"]
    assert _main([*gate, "--baseline", "golden", "--junit", str(j_run)], project, monkeypatch, capsys)[0] == 1
    assert _main([*gate, "--baseline", str(saved), "--junit", str(j_file)], project, monkeypatch, capsys)[0] == 1
    assert j_run.read_text() == j_file.read_text()


def test_cli_baseline_mistakes_are_one_line_errors(project, monkeypatch, capsys, tmp_path):
    code, _, err = _main(["--run-name", "nightly", "--baseline", "no-such-run"], project, monkeypatch, capsys)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    notes = tmp_path / "notes.json"
    notes.write_text("[1, 2]")
    code, _, err = _main(["--run-name", "nightly", "--baseline", str(notes)], project, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        _main(["--run-name", "nightly", "--fail-on", "regression"], project, monkeypatch, capsys)
    assert exc.value.code == 2 and "needs --baseline" in capsys.readouterr().err


def test_quality_shifts_name_the_batch_whose_images_changed(demo_root, demo_analysis, tmp_path):
    """The demo (batch 7 reads blurred scans from step 2000) against a baseline where batch 7 kept its clean scans:
    batch 7's images are blurrier, significant after the Benjamini-Hochberg correction."""
    from analysis.findings.pipeline import analyze_run
    from tests.e2e.test_compare_journey import healed_demo_rows

    healed = analyze_run(open_run(write_run(tmp_path, "healed-demo", healed_demo_rows())), data_dir=demo_root / "data")
    c = compare_runs(healed, demo_analysis)
    assert c.regressed_batches == [7]
    moved = [s for s in c.quality if s.significant]
    assert moved and {s.batch for s in moved} == {7}
    blur = next(s for s in moved if s.score == "blur_score")
    assert blur.worse and blur.words == "blurrier" and blur.median_candidate < blur.median_baseline
    assert all(s.q >= s.p for s in c.quality)  # corrected for the number of tests
    assert "its images are blurrier than in the baseline" in c.sentences()[0]


def test_reports_carry_the_comparison_section(project, monkeypatch, capsys, tmp_path):
    """Schema 1.3: with --baseline the JSON, Markdown and HTML reports say what regressed; without it, null."""
    import jsonschema

    from analysis.reporting.report import SCHEMA_PATH

    out = tmp_path / "reports"
    args = ["--run-name", "nightly", "--baseline", "golden", "--output-dir", str(out), "--format", "json,md,html"]
    monkeypatch.chdir(project)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert cli.main([*args, "--quiet"]) == 0
    capsys.readouterr()
    doc = json.loads(next(out.glob("*_report.json")).read_text())
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    assert doc["comparison"]["has_regression"] is True and doc["comparison"]["regressed_batches"] == [5]
    assert any("Batch 5 recall fell" in s for s in doc["comparison"]["sentences"])
    markdown = next(out.glob("*_report.md")).read_text()
    assert "## Comparison with baseline golden" in markdown and "**Regressed** (batches 5;" in markdown
    html = next(out.glob("*_report.html")).read_text()
    assert 'id="comparison"' in html and "Batch 5 recall fell" in html

    plain = tmp_path / "plain"
    assert cli.main(["--run-name", "nightly", "--output-dir", str(plain), "--format", "json", "--quiet"]) == 0
    assert json.loads(next(plain.glob("*_report.json")).read_text())["comparison"] is None
