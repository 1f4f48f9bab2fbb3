"""wandb UI chart exports of every shape, and CSV tables as spreadsheets save them (issue 16 item 1, issue 15 item 5).

Real exports (benchmarks/data/exports/PROVENANCE.md) are all `Step`-axis; the other axis kinds found in public
repositories carry no licence, so their header shapes are generated here with made-up values.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from analysis import cli
from analysis.core.errors import AmbiguousRun, AnalyzerError, CorruptRunFile, RunNotFound
from analysis.findings.batches import batch_metrics
from analysis.sources import open_run, open_table
from analysis.sources.tabular import export_runs

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data"
REAL_EXPORTS = {  # file -> (runs, keys per run)
    DATA / "exports" / "url_losspred_auroc_step.csv": (["flowing-sweep-1"], ["eval_auroc_classification"]),
    DATA / "curves" / "di_f_fu_sion" / "cifar10_wandb_export.csv": (["colu", "relu"], ["train/loss"]),
    DATA / "curves" / "di_f_fu_sion" / "oxford_flowers102_wandb_export.csv": (
        ["oxford_flowers102-colu-conv2d", "oxford_flowers102-relu-conv2d"],
        ["train/loss"],
    ),
    DATA / "curves" / "nanogpt_char_token_wandb" / "wandb_export.csv": (None, ["train/loss"]),  # 8 runs
}


def export_csv(axis: str, xs: Sequence[float], runs: dict[str, dict[str, dict[float, float]]], blank: int = -1) -> str:
    """A wandb UI export as the UI writes it: every cell quoted, `""` where a run has no point, each key with
    `__MIN` / `__MAX` companions. `runs[name][key][x] = value`; `blank` empties that header cell (seen in the
    wild after a column was hidden)."""
    header = [axis]
    for run, keys in runs.items():
        for key in keys:
            header += [f"{run} - {key}", f"{run} - {key}__MIN", f"{run} - {key}__MAX"]
    rows = []
    for x in xs:
        row = [f"{x:g}"]
        for keys in runs.values():
            for values in keys.values():
                v = values.get(x)
                row += [""] * 3 if v is None else [repr(v)] * 3
        rows.append(row)
    if blank >= 0:
        header[blank] = ""
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def _series(xs, f):
    return {x: f(i) for i, x in enumerate(xs)}


EPOCHS = [0, 10, 20, 30]
EVALS = [0, 500, 1000, 1500, 2000]
TUNE_A, TUNE_B = [100, 200, 300], [256, 356]
GENERATED_SHAPES = {
    # name: (csv text, x-axis, runs, {run: (expected step axis, expected steps, expected columns)})
    "epoch_id": (
        export_csv(
            "epoch_id",
            EPOCHS,
            {
                f"run-{k}": {"_step": _series(EPOCHS, lambda i: 11 * i + 1), "stats.gap_mean": _series(EPOCHS, float)}
                for k in (41, 40, 39)
            },
        ),
        "epoch_id",
        ["run-41", "run-40", "run-39"],
        {"run-40": ("epoch_id", EPOCHS, ["_step", "stats.gap_mean"])},
    ),
    "evaluations": (
        export_csv(
            "evaluations",
            EVALS,
            {
                "algo: UCEA": {
                    "_step": _series(EVALS, lambda i: i),
                    "generation": _series(EVALS, lambda i: i),
                    "best_fitness": _series(EVALS, lambda i: 0.5 + i / 10),
                },
                "algo: CMA-ES": {"_step": _series(EVALS[:3], lambda i: i), "best_fitness": _series(EVALS[:3], float)},
            },
        ),
        "evaluations",
        ["algo: UCEA", "algo: CMA-ES"],
        {
            "algo: UCEA": ("evaluations", EVALS, ["_step", "best_fitness", "generation"]),
            "algo: CMA-ES": ("evaluations", EVALS[:3], ["_step", "best_fitness"]),
        },
    ),
    "tuner_counter": (
        export_csv(
            "ray/tune/info/num_steps_sampled",
            sorted(TUNE_A + TUNE_B),
            {
                "checkpoint: rl_algos/sac_ckpts/dashing-puddle-1030700.ckpt": {
                    "_step": _series(TUNE_A, lambda i: 2 * i + 2),
                    "ray/tune/custom_metrics/energy_cost_mean": _series(TUNE_A, lambda i: 72.8 - i),
                },
                "checkpoint: super-monkey-909": {
                    "_step": _series(TUNE_B, lambda i: 3 + i),
                    "ray/tune/custom_metrics/energy_cost_mean": _series(TUNE_B, lambda i: 113.5 - i),
                },
            },
        ),
        "ray/tune/info/num_steps_sampled",
        ["checkpoint: rl_algos/sac_ckpts/dashing-puddle-1030700.ckpt", "checkpoint: super-monkey-909"],
        {
            "checkpoint: super-monkey-909": (
                "ray/tune/info/num_steps_sampled",
                TUNE_B,
                ["_step", "ray/tune/custom_metrics/energy_cost_mean"],
            )
        },
    ),
    "train_global_step": (
        export_csv(
            "train/global_step",
            [0, 1000, 2000],
            {
                "LEON_V25_1M": {
                    "_step": _series([0, 1000, 2000], lambda i: i),
                    "average correct plies": _series([0, 1000, 2000], lambda i: 3.0 + i),
                },
            },
        ),
        "train/global_step",
        ["LEON_V25_1M"],
        {"LEON_V25_1M": ("train/global_step", [0, 1000, 2000], ["_step", "average correct plies"])},
    ),
    "epoch_with_blank_header_cell": (
        export_csv(
            "epoch",
            [0, 1, 2],
            {
                "case2": {"_step": _series([0, 1, 2], lambda i: 10 * i), "train/loss": _series([0, 1, 2], float)},
                "case1": {"_step": _series([0, 1, 2], lambda i: 10 * i), "train/loss": _series([0, 1, 2], float)},
            },
            blank=4,  # "case2 - train/loss" hidden: only its companions remain
        ),
        "epoch",
        ["case2", "case1"],
        {"case1": ("epoch", [0, 1, 2], ["_step", "train/loss"])},
    ),
    "fractional_epoch": (
        export_csv(
            "train/epoch",
            [0.25, 0.5, 0.75, 1.0],
            {
                "hf-run": {
                    "_step": _series([0.25, 0.5, 0.75, 1.0], lambda i: 50 * (i + 1)),
                    "train/loss": _series([0.25, 0.5, 0.75, 1.0], lambda i: 2.0 - i / 4),
                }
            },
        ),
        "train/epoch",
        ["hf-run"],
        {"hf-run": ("_step", [50, 100, 150, 200], ["_step", "train/epoch", "train/loss"])},
    ),
}


@pytest.mark.parametrize("path", list(REAL_EXPORTS), ids=lambda p: p.name)
def test_real_exports_each_run_is_its_own_history(path):
    runs, keys = REAL_EXPORTS[path]
    found = export_runs(path)
    header = pd.read_csv(path, nrows=0).columns
    assert found and (runs is None or found == runs)
    assert len(found) == len({c.split(" - ", 1)[0] for c in header[1:]})
    for name in found:
        run = open_run(f"{path}#{name}") if len(found) > 1 else open_run(path)
        h = run.history
        assert run.ref.name == name and run.step_axis == "_step"
        assert list(h.columns) == ["_step", *keys]  # MIN/MAX gone, other runs' columns gone
        assert not any(c.endswith(("__MIN", "__MAX")) for c in h.columns)
        assert h["_step"].is_monotonic_increasing and h["_step"].dtype == "int64"
        raw = pd.read_csv(path)
        col = f"{name} - {keys[0]}"
        expected = raw.loc[raw[col].notna(), ["Step", col]]
        assert h["_step"].tolist() == expected["Step"].astype(int).tolist()
        assert h[keys[0]].tolist() == pytest.approx(expected[col].tolist())
        assert "__MIN/__MAX" in run.notes
    if len(found) > 1:
        with pytest.raises(AmbiguousRun) as e:
            open_run(path)
        assert e.value.candidates == found and all(r in str(e.value) for r in found)


@pytest.mark.parametrize("shape", list(GENERATED_SHAPES))
def test_generated_exports_of_every_axis_kind(tmp_path, shape):
    text, axis, runs, expected = GENERATED_SHAPES[shape]
    path = tmp_path / f"{shape}.csv"
    path.write_text(text)
    assert export_runs(path) == runs
    assert export_runs(text.encode(), name="upload.csv") == runs
    for name, (step_axis, steps, columns) in expected.items():
        run = open_run(f"{path}#{name}") if len(runs) > 1 else open_run(path)
        assert run.ref.name == name
        assert run.step_axis == step_axis
        assert run.history["_step"].tolist() == steps
        assert list(run.history.columns) == columns
        assert run.step_axis == axis or axis in run.history.columns  # the x-axis is the step, or kept as a column
    if len(runs) > 1:
        with pytest.raises(AmbiguousRun, match="choose one"):
            open_run(path)


def test_unknown_run_lists_the_runs_and_a_group_prefix_may_be_left_out(tmp_path):
    text = GENERATED_SHAPES["evaluations"][0]
    path = tmp_path / "pyucea.csv"
    path.write_text(text)
    with pytest.raises(RunNotFound) as e:
        open_run(f"{path}#SGD")
    assert isinstance(e.value, AnalyzerError)
    assert "algo: UCEA, algo: CMA-ES" in str(e.value) and e.value.candidates == ["algo: UCEA", "algo: CMA-ES"]
    assert open_run(f"{path}#cma-es").ref.name == "algo: CMA-ES"  # without the group prefix, any case
    with pytest.raises(RunNotFound, match="not a wandb UI export"):
        plain = tmp_path / "plain.csv"
        plain.write_text("step,loss\n0,1.0\n")
        open_run(f"{plain}#a")


def test_a_run_whose_only_metric_column_was_hidden_is_a_clear_error(tmp_path):
    path = tmp_path / "nrtd.csv"
    path.write_text(GENERATED_SHAPES["epoch_with_blank_header_cell"][0])
    with pytest.raises(CorruptRunFile, match=r"nrtd.csv#case2: no usable metric column.*columns found: '_step'"):
        open_run(f"{path}#case2")


def test_a_batch_export_feeds_the_batch_frame(tmp_path):
    """An export of `batch_i/recall` keys against `epoch` gives per-batch series at the epoch numbers."""
    xs = [1, 2, 3, 4]
    text = export_csv(
        "epoch",
        xs,
        {"ocr": {f"batch_{b}/recall": _series(xs, lambda i, b=b: 0.9 - 0.1 * b * (i == 3)) for b in range(3)}},
    )
    path = tmp_path / "ocr.csv"
    path.write_text(text)
    bm = batch_metrics(open_run(path))
    assert sorted(bm["batch"].unique()) == [0, 1, 2] and sorted(bm["step"].unique()) == xs


@pytest.fixture
def two_run_export(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "two.csv"
    path.write_text(GENERATED_SHAPES["epoch_id"][0])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    return path


@pytest.mark.slow
def test_cli_opens_one_run_of_an_export(two_run_export, capsys):
    assert cli.main(["--run-name", f"{two_run_export}#run-40", "--output-dir", "out", "--format", "json"]) == 0
    report = next((two_run_export.parent / "out").glob("*.json")).read_text()
    assert '"run-40"' in report and "run-41" not in report


def test_cli_gives_one_line_for_an_unknown_run(two_run_export, capsys):
    code = cli.main(["--run-name", f"{two_run_export}#nope", "--output-dir", "out"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error:") and "run-41, run-40, run-39" in err
    code = cli.main(["--history-file", str(two_run_export), "--output-dir", "out"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "choose one" in err


# --- spreadsheets: delimiter, decimal comma, encodings, garbage --------------------------------------------

DECIMAL_COMMA = "step;recall;loss\n1;0,93;1,5\n2;0,91;1,25\n3;0,42;2,0\n"


def test_decimal_comma_semicolon_csv_is_read_as_numbers(tmp_path):
    path = tmp_path / "recall.csv"
    path.write_text(DECIMAL_COMMA)
    run = open_run(path)
    assert run.history["_step"].tolist() == [1, 2, 3] and run.step_axis == "step"
    assert run.history["recall"].tolist() == [0.93, 0.91, 0.42]
    assert run.history["loss"].tolist() == [1.5, 1.25, 2.0]
    assert "semicolon" in run.notes and "decimal commas" in run.notes


def test_excel_sep_line_names_the_delimiter():
    run = open_table(b'"sep=;"\r\nstep;recall\r\n1;0,5\r\n2;0,25\r\n', name="excel.csv")
    assert run.history["recall"].tolist() == [0.5, 0.25] and run.history["_step"].tolist() == [1, 2]


def test_thousands_dots_and_a_text_column_with_commas(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("step;tokens;note\n1;1.234,5;a,b\n2;2.000,25;c\n")
    h = open_run(path).history
    assert h["tokens"].tolist() == [1234.5, 2000.25]
    assert h["note"].tolist() == ["a,b", "c"]  # not every value is a number: stays text


@pytest.mark.parametrize(
    "encoding, text",
    [
        ("utf-8", "Schritt;Genauigkeit (µ)\n1;0,5\n2;0,75\n"),
        ("utf-8-sig", "Schritt;Genauigkeit (µ)\n1;0,5\n2;0,75\n"),
        ("cp1252", "Schritt;Genauigkeit (µ) – Prüfung\n1;0,5\n2;0,75\n"),
        ("latin-1", "Schritt;Genauigkeit (µ) Prüfung\n1;0,5\n2;0,75\n"),
        ("utf-16", "Schritt\tGenauigkeit (µ)\n1\t0,5\n2\t0,75\n"),  # Excel's "Unicode text": BOM, tabs
        ("utf-16-le", "Schritt\tGenauigkeit (µ)\n1\t0,5\n2\t0,75\n"),  # no BOM
    ],
)
def test_encodings_spreadsheets_write(tmp_path, encoding, text):
    raw = text.encode(encoding)
    if encoding == "utf-8-sig":
        assert raw.startswith(codecs.BOM_UTF8)
    run = open_table(raw, name="excel.csv")
    header = text.splitlines()[0].replace("\t", ";").split(";")
    metric = header[1]
    assert list(run.history.columns) == ["_step", *sorted(["Schritt", metric])]  # the header decoded as written
    assert run.history[metric].tolist() == [0.5, 0.75]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "Excel workbook"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary data"),
        (bytes(range(1, 32)) * 40, "binary data"),
        (b"hello world\nthis is not a table\nat all\n", "no usable metric column"),
        (b"name,comment\nalpha,fine\nbeta,also fine\n", "no usable metric column"),
        (b"step,recall\n", "no data rows"),
    ],
    ids=["xlsx", "png", "control-bytes", "prose", "text-only", "header-only"],
)
def test_garbage_is_one_clear_error_naming_the_columns(raw, message):
    with pytest.raises(CorruptRunFile, match=message) as e:
        open_table(raw, name="garbage.csv")
    text = str(e.value)
    assert text.startswith("garbage.csv:") and "\n" not in text
    if "column" in message or "rows" in message:
        assert "columns found" in text


def test_a_bad_step_value_names_the_row_and_the_columns(tmp_path):
    with pytest.raises(
        CorruptRunFile, match=r"'step' column .* \(data row 2: 'zwei'\); columns found: 'step', 'recall'"
    ):
        open_table(b"step;recall\n1;0,5\nzwei;0,6\n", name="bad.csv")


def test_export_runs_is_empty_for_plain_tables_and_refuses_binary(tmp_path):
    assert export_runs(DECIMAL_COMMA.encode(), name="x.csv") == []
    assert export_runs(b"{}", name="x.jsonl") == []
    with pytest.raises(CorruptRunFile, match="binary"):
        export_runs(b"\x00\x01\x02\x03" * 100, name="x.csv")
    utf16 = GENERATED_SHAPES["evaluations"][0].encode("utf-16")
    assert export_runs(utf16, name="x.csv") == ["algo: UCEA", "algo: CMA-ES"]
    assert math.isfinite(open_table(utf16, name="x.csv", run="UCEA").history["best_fitness"].iloc[-1])
