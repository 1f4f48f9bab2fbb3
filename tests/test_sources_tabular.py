"""History exports: the wandb UI's CSV (Step + `<run> - <key>` + __MIN/__MAX), plain CSV / Parquet / JSONL."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.core.errors import AmbiguousRun, CorruptRunFile, RunNotFound
from analysis.findings.batches import batch_metrics
from analysis.sources import open_run, open_table

WANDB_CSV = """\
"Step","ocr-run - batch_0/recall","ocr-run - batch_0/recall__MIN","ocr-run - batch_0/recall__MAX","ocr-run - batch_1/recall","ocr-run - batch_1/recall__MIN","ocr-run - batch_1/recall__MAX"
0,0.9,0.9,0.9,0.8,0.8,0.8
1,0.85,0.84,0.86,,,
2,0.7,0.7,0.7,0.6,0.6,0.6
"""

TWO_RUNS = """\
"Step","a - val/recall","a - val/recall__MIN","a - val/recall__MAX","b - val/recall","b - val/recall__MIN","b - val/recall__MAX"
0,0.5,0.5,0.5,0.4,0.4,0.4
5,,,,0.45,0.45,0.45
"""


def test_wandb_ui_csv_export(tmp_path):
    p = tmp_path / "wandb_export_2026.csv"
    p.write_text(WANDB_CSV)
    run = open_run(p)
    h = run.history
    assert run.ref.source == "file" and run.ref.name == "ocr-run"
    assert list(h.columns) == ["_step", "batch_0/recall", "batch_1/recall"]
    assert list(h["_step"]) == [0, 1, 2] and h["_step"].dtype == "int64"
    assert math.isnan(h["batch_1/recall"].iloc[1]) and h["batch_0/recall"].iloc[2] == 0.7
    assert run.summary["batch_1/recall"] == 0.6
    bm = batch_metrics(run)
    assert set(bm["batch"]) == {0, 1} and set(bm["metric"]) == {"recall"}


def test_multi_run_export_needs_a_run_name(tmp_path):
    p = tmp_path / "two.csv"
    p.write_text(TWO_RUNS)
    with pytest.raises(AmbiguousRun) as e:
        open_run(p)
    assert e.value.candidates == ["a", "b"]
    b = open_run(f"{p}#b")
    assert list(b.history["_step"]) == [0, 5] and list(b.history["val/recall"]) == [0.4, 0.45]
    a = open_table(p, run="a")
    assert list(a.history["_step"]) == [0]  # steps where this run logged nothing are dropped
    with pytest.raises(RunNotFound, match="no run named 'c'"):
        open_table(p, run="c")


def test_plain_csv_with_lists_and_without_a_step_column(tmp_path):
    df = pd.DataFrame(
        {
            "global_step": [100, 200],
            "batch_3/recall": [0.9, float("nan")],
            "problematic_batch_3": [None, '["a.png", "b.png"]'],
        }
    )
    p = tmp_path / "plain.csv"
    df.to_csv(p, index=False)
    run = open_run(p)
    h = run.history
    assert list(h["_step"]) == [0, 1] and list(h["global_step"]) == [100, 200]
    assert h["problematic_batch_3"].iloc[1] == ["a.png", "b.png"] and pd.isna(h["problematic_batch_3"].iloc[0])
    assert run.step_column == "global_step"


def test_parquet_and_jsonl(tmp_path):
    df = pd.DataFrame({"_step": [0, 1, 2], "batch_0/hmean": [0.5, 0.6, 0.7], "global_step": [10, 20, 30]})
    pq = tmp_path / "h.parquet"
    df.to_parquet(pq)
    run = open_run(pq, keys=["batch_0/hmean"])
    assert list(run.history.columns) == ["_step", "batch_0/hmean", "global_step"]
    pd.testing.assert_frame_equal(run.history, df[["_step", "batch_0/hmean", "global_step"]])
    jl = tmp_path / "h.jsonl"
    jl.write_text(
        '{"_step": 0, "x": NaN, "img": {"_type": "image-file", "path": "media/a.png"}}\n{"_step": 1, "x": Infinity}\n\n'
    )
    run = open_run(jl)
    assert math.isnan(run.history["x"].iloc[0]) and run.history["x"].iloc[1] == math.inf
    assert [m.path for m in run.media] == ["media/a.png"]


def test_uploaded_bytes(tmp_path):
    run = open_table(WANDB_CSV.encode(), name="upload.csv")
    assert run.ref.locator == "upload.csv" and len(run.history) == 3
    with pytest.raises(CorruptRunFile, match="file name"):
        open_table(b"x")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", "", "cannot read"),
        ("ragged.csv", "a,b\n1,2,3,4\n", "rows do not match the header"),
        ("ragged2.csv", "a,b\n1,2\n1,2,3,4\n", "Expected 2 fields in line 3"),
        (
            "badstep.csv",
            "step,recall\n1,0.5\nten,0.6\n",
            "'step' column has a non-numeric value \\(data row 2: 'ten'\\)",
        ),
        ("nostep.csv", "step,recall\n,0.5\n,0.6\n", "'step' column has a non-numeric value"),
        ("bad.jsonl", '{"a": 1}\n[1, 2]\n', "line 2 is not a JSON object"),
        ("broken.jsonl", '{"a": 1\n', "cannot read"),
        ("fake.parquet", "not parquet", "cannot read"),
        ("x.txt", "a,b", "not a run folder"),
    ],
)
def test_bad_tables_are_typed_errors(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises((CorruptRunFile, RunNotFound), match=message):
        open_run(p)


def test_csv_with_missing_columns_in_rows_keeps_what_is_there(tmp_path):
    p = tmp_path / "short.csv"
    p.write_text("_step,batch_0/recall,batch_0/precision\n0,0.9\n1,0.8,0.7\n")
    h = open_run(p).history
    assert list(h["batch_0/recall"]) == [0.9, 0.8] and math.isnan(h["batch_0/precision"].iloc[0])


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffglobal_step;batch_0/recall;batch_1/recall\n1;0.9;0.8\n2;0.5;0.81\n",  # Excel, European locale
        "global_step\tbatch_0/recall\tbatch_1/recall\n1\t0.9\t0.8\n2\t0.5\t0.81\n",  # tab-separated, named .csv
    ],
)
def test_csv_saved_by_a_spreadsheet_with_another_delimiter_is_read(tmp_path, text):
    """QA: a `;`-separated CSV became one column, and the report said the run had no batch metrics."""
    p = tmp_path / "export.csv"
    p.write_text(text, encoding="utf-8")
    bm = batch_metrics(open_run(p, cache=False))
    assert sorted(bm["batch"].unique()) == [0, 1]
    assert bm.loc[bm["batch"] == 0, "value"].tolist() == [0.9, 0.5]
    assert bm["step"].tolist()[:2] == [1, 2]


@pytest.mark.parametrize("orient", ["records", "columns"])
def test_a_json_document_history_is_read_like_json_lines(tmp_path, orient):
    """QA: `history.json` written by pandas (`to_json`, a list of rows or {column: {row: value}}) was read line by
    line and failed with 'Expecting value'."""
    df = pd.DataFrame({"global_step": range(1, 13), "batch_0/recall": [0.9] * 6 + [0.3] * 6})
    p = tmp_path / "history.json"
    df.to_json(p, orient=orient, indent=2)
    bm = batch_metrics(open_run(p, cache=False))
    assert bm["step"].tolist() == list(range(1, 13)) and bm["value"].tolist() == [0.9] * 6 + [0.3] * 6


def test_a_json_array_of_non_objects_is_a_typed_error(tmp_path):
    p = tmp_path / "h.json"
    p.write_text("[1, 2, 3]")
    with pytest.raises(CorruptRunFile, match="one object per row"):
        open_run(p, cache=False)


def test_a_jsonl_document_nested_100000_deep_is_a_clear_error(tmp_path):
    """Issue 17, item 13: json.loads recursed once per level and raised RecursionError."""
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"_step": 0, "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(CorruptRunFile, match="nested too deeply"):
        open_table(deep)
    doc = tmp_path / "deep.json"
    doc.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CorruptRunFile, match="nested too deeply"):
        open_table(doc)


def test_a_csv_cell_nested_too_deeply_stays_text(tmp_path):
    path = tmp_path / "deep.csv"
    cell = "[" * 100_000 + "]" * 100_000
    path.write_text(f"_step,x,loss\n0,{cell},0.5\n1,{cell},0.25\n")
    run = open_table(path)
    assert run.history["loss"].tolist() == [0.5, 0.25]
    assert run.history["x"].tolist() == [cell, cell]


def test_a_wide_numeric_csv_reads_as_pandas_would(tmp_path, monkeypatch):
    """Issue 17, item 14: tables of many columns take a vectorised reader (100,000 columns took 104 s in the
    CLI); it must give the frame pandas gives, and leave anything less plain to pandas."""
    import numpy as np

    from analysis.sources import tabular

    rng = np.random.default_rng(3)
    n_cols = tabular.WIDE_COLUMNS + 10
    names = ["global_step"] + [f"batch_{i}/recall" for i in range(n_cols - 2)] + ["count"]
    rows = []
    for s in range(6):
        cells = [str(s)] + [f"{v:.5g}" for v in rng.random(n_cols - 2)] + [str(-3 * s)]
        if s == 2:
            cells[5] = ""  # a missing value
            cells[6] = "NaN"
        rows.append(",".join(cells))
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + "\n".join(rows) + "\n")
    fast = open_table(path)
    monkeypatch.setattr(tabular, "WIDE_COLUMNS", 10**9)
    slow = open_table(path)
    pd.testing.assert_frame_equal(fast.history, slow.history)
    assert fast.summary == slow.summary
    assert fast.history["count"].dtype == "int64" and math.isnan(fast.history["batch_4/recall"][2])
    monkeypatch.setattr(tabular, "WIDE_COLUMNS", 3)
    text = tmp_path / "text.csv"  # a text cell: pandas decides
    text.write_text("a,b,c,d\n1,2,x,4\n5,6,7,8\n")
    assert open_table(text).history["c"].tolist() == ["x", "7"]


@pytest.mark.parametrize("axis", ["epoch", "Epoch", "               epoch", "iteration"])
def test_an_epoch_column_is_the_step_axis_of_a_table_without_a_step_column(tmp_path, axis):
    # Keras' CSVLogger writes `epoch`, SRGAN's statistics `Epoch`, YOLO pads its header: the counter is the x-axis
    # (a collapse at epoch 48 is reported at step 48, not at row 47), and it is no metric.
    p = tmp_path / "results.csv"
    pd.DataFrame({axis: [1, 2, 3, 5], "PSNR": [30.1, 31.0, 9.6, 9.6]}).to_csv(p, index=False)
    run = open_run(p)
    assert list(run.history["_step"]) == [1, 2, 3, 5]
    assert list(run.history.columns) == ["_step", "PSNR"]
    assert run.step_axis == axis.strip() and f"steps are the {axis.strip()!r} column" in run.notes


def test_an_epoch_column_that_restarts_is_kept_as_a_column_and_rows_are_numbered(tmp_path):
    p = tmp_path / "appended.csv"
    pd.DataFrame({"epoch": [0, 1, 2, 0, 1], "loss": [1.0, 0.8, 0.7, 1.1, 0.9]}).to_csv(p, index=False)
    run = open_run(p)
    assert list(run.history["_step"]) == [0, 1, 2, 3, 4] and list(run.history["epoch"]) == [0, 1, 2, 0, 1]
    assert run.step_axis == "row" and "the 'epoch' column goes back 1 time (first at data row 4:" in run.notes


def test_a_log_of_training_and_evaluation_rows_takes_its_iteration_counter_and_merges_rows_of_one_iteration(tmp_path):
    # PaddleOCR's train log as a table: epoch repeats on most rows, iter counts up, and an evaluation row repeats
    # the iteration of the training row before it
    p = tmp_path / "rec_log.csv"
    rows = "row_kind,epoch,iter,loss,eval_acc\ntrain,1,50,3.0,\ntrain,1,100,2.5,\ntrain,2,150,2.0,\neval,2,150,,0.4\n"
    p.write_text(rows + "train,2,200,1.8,\ntrain,3,250,1.7,\ntrain,3,300,1.6,\ntrain,3,350,1.5,\ntrain,4,400,1.4,\n")
    run = open_run(p)
    h = run.history
    assert list(h["_step"]) == [50, 100, 150, 200, 250, 300, 350, 400] and run.step_axis == "iter"
    at_150 = h[h["_step"] == 150].iloc[0]
    assert at_150["loss"] == 2.0 and at_150["eval_acc"] == 0.4 and list(h["epoch"][:3]) == [1, 1, 2]
    assert "rows of the same 'iter' merged" in run.notes


def test_an_iteration_counter_that_restarts_every_epoch_counts_iterations_across_epochs(tmp_path):
    # UniMatch's semi-supervised log: `iter` restarts with every `epoch`, logged every 163 iterations up to 1304,
    # and the evaluation row at an epoch's end has no `iter`. Rows were numbered, and the note listed every
    # counter name the reader knows.
    p = tmp_path / "unimatch.csv"
    rows = ["row_kind,epoch,iter,total_loss,mean_iou"]
    for epoch in range(3):
        rows += [f"train,{epoch},{i * 163},{1.0 - epoch / 10 - i / 100:.3f}," for i in range(9)]
        rows.append(f"eval,{epoch},,,{50 + epoch}")
    p.write_text("\n".join(rows) + "\n")
    run = open_run(p)
    h = run.history
    assert list(h["_step"][:10]) == [0, 163, 326, 489, 652, 815, 978, 1141, 1304, 1467] and len(h) == 27
    assert list(h.loc[h["mean_iou"].notna(), "_step"]) == [1304, 2771, 4238]  # each epoch's evaluation, merged
    assert run.step_axis == "iter" and "iter" not in h.columns and list(h["epoch"][8:10]) == [0, 1]
    assert "steps are iterations counted from the 'epoch' and 'iter' columns (epoch × 1467 + iter" in run.notes


def test_a_training_and_an_evaluation_row_per_epoch_are_one_step_each(tmp_path):
    # AsymmNet's and MLPerf HPC's logs: a train row and a val row per epoch, each with its own columns, a row kind
    # and a timestamp. The epoch repeats on every other row, so it was no counter and the rows were numbered.
    p = tmp_path / "log.csv"
    lines = ["epoch,row_kind,time_ms,train_acc,val_top1"]
    for e in range(6):
        lines += [f"{e},train,{1000 + 20 * e},{0.1 * e:.1f},", f"{e},val,{1010 + 20 * e},,{0.1 * e + 0.05:.2f}"]
    p.write_text("\n".join(lines) + "\n")
    run = open_run(p)
    h = run.history
    assert list(h["_step"]) == list(range(6)) and run.step_axis == "epoch"
    assert list(h["train_acc"]) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5] and list(h["val_top1"])[:2] == [0.05, 0.15]
    assert "rows of the same 'epoch' merged" in run.notes


def test_per_iteration_rows_under_one_epoch_value_are_not_merged(tmp_path):
    # A pix2pix loss log: several rows per epoch, each with its own losses; merging them would drop values
    p = tmp_path / "loss_log.csv"
    pd.DataFrame({"epoch": [1, 1, 1, 2, 2, 2], "G_GAN": [1.0, 0.9, 1.1, 0.8, 0.7, 0.9]}).to_csv(p, index=False)
    run = open_run(p)
    assert list(run.history["G_GAN"]) == [1.0, 0.9, 1.1, 0.8, 0.7, 0.9] and run.step_axis == "row"


def test_a_row_without_the_counter_takes_the_value_before(tmp_path):
    # RLlib's progress.csv ends in a row with an empty training_iteration; an evaluation row may lack it too
    p = tmp_path / "progress.csv"
    p.write_text("training_iteration,episode_reward_mean,evaluation_reward\n1,3.0,\n2,4.0,\n3,5.0,\n,,4.5\n")
    run = open_run(p)
    h = run.history
    assert list(h["_step"]) == [1, 2, 3] and list(h["episode_reward_mean"]) == [3.0, 4.0, 5.0]
    assert h["evaluation_reward"].iloc[-1] == 4.5
    assert "a row without a 'training_iteration' value takes the step of the row before" in run.notes


def test_a_counter_that_does_not_count_up_is_named_without_the_list_of_every_counter_name(tmp_path):
    p = tmp_path / "shuffled.csv"
    pd.DataFrame({"epoch": [3, 1, 2, 0], "loss": [1.0, 0.8, 0.7, 1.1]}).to_csv(p, index=False)
    assert open_run(p).notes == (
        "the 'epoch' column goes back 2 times (first at data row 2: it restarts, per epoch or per run appended to "
        "the file): rows numbered"
    )
    # an epoch column beside per-iteration rows repeats on most rows without going back: no step axis either
    pd.DataFrame({"epoch": [0, 0, 0, 1, 1, 1], "loss": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]}).to_csv(p, index=False)
    assert open_run(p).notes == "the 'epoch' column does not count up: rows numbered"


def test_a_step_column_that_goes_back_is_runs_appended_and_read_in_file_order(tmp_path):
    # An MMDetection scalars log of six runs appended: each restarts its step counter. Sorted or pivoted by step,
    # the runs' points would interleave; read in file order the restarts stay where they are.
    p = tmp_path / "scalars.csv"
    pd.DataFrame({"step": [1, 2, 3, 1, 2, 3, 4], "loss": [3.0, 2.0, 1.5, 3.1, 2.1, 1.4, 1.2]}).to_csv(p, index=False)
    run = open_run(p)
    h = run.history
    assert list(h["_step"]) == list(range(7)) and list(h["step"]) == [1, 2, 3, 1, 2, 3, 4]
    assert list(h["loss"]) == [3.0, 2.0, 1.5, 3.1, 2.1, 1.4, 1.2]
    assert run.step_axis == "row" and "goes back 1 time (first at data row 4" in run.notes


@pytest.mark.parametrize("axis", ["env_step", "training_iteration", "episode", "step_num"])
def test_the_counters_of_rl_and_mlperf_logs_are_step_axes(tmp_path, axis):
    # Tianshou's benchmark CSVs count `env_step`, RLlib's progress.csv `training_iteration`, a Stable-Baselines3
    # monitor log turned into a table `episode`, MLPerf's result logs `step_num` beside a repeating `epoch_num`
    p = tmp_path / "log.csv"
    pd.DataFrame({"epoch_num": [1, 1, 1, 2, 2], axis: [0, 5000, 10000, 15000, 20000], "rew": [1.0, 2, 3, 4, 5]}).to_csv(
        p, index=False
    )
    run = open_run(p)
    assert list(run.history["_step"]) == [0, 5000, 10000, 15000, 20000] and run.step_axis == axis


def test_rows_without_a_step_take_the_step_of_the_row_before(tmp_path):
    # PredNet's training log: the validation row of each epoch is written without the step
    p = tmp_path / "train_log.csv"
    p.write_text("row_kind,step,loss,val_loss\ntrain,100,0.9,\ntrain,200,0.8,\nval,,,0.85\ntrain,300,0.7,\n")
    run = open_run(p)
    h = run.history
    assert list(h["_step"]) == [100, 200, 200, 300] and h["val_loss"].iloc[2] == 0.85
    assert run.step_axis == "step" and "a row without a 'step' value takes the step of the row before" in run.notes


def test_a_nan_written_in_a_table_is_a_logged_nan_and_an_empty_cell_is_not(tmp_path):
    # A history frame holds NaN for both; the file can tell them apart, and says so in `Run.logged_nan`
    p = tmp_path / "log.csv"
    p.write_text("epoch,loss,val_acc\n1,0.9,0.5\n2,NaN,\n3,0.7,0.6\n4,-nan,\n")
    run = open_run(p)
    assert {k: v.tolist() for k, v in run.logged_nan.items()} == {"loss": [2, 4]}
    assert run.history["loss"].isna().tolist() == [False, True, False, True]  # no stand-in value left behind
    j = tmp_path / "log.jsonl"
    j.write_text('{"step": 1, "loss": 0.9}\n{"step": 2, "loss": NaN, "acc": 0.5}\n{"step": 3, "acc": 0.6}\n')
    run = open_run(j)
    assert {k: v.tolist() for k, v in run.logged_nan.items()} == {"loss": [2]}
    # a Parquet export (wandb's history export, a pandas dump): a stored NaN is logged, a null is not
    import pyarrow as pa
    import pyarrow.parquet as pq

    q = tmp_path / "history.parquet"
    loss = pa.array([0.9, float("nan"), None, 0.7], type=pa.float64())
    pq.write_table(pa.table({"_step": [1, 2, 3, 4], "loss": loss, "acc": [0.5, None, 0.6, None]}), q)
    run = open_run(q)
    assert {k: v.tolist() for k, v in run.logged_nan.items()} == {"loss": [2]}
    assert run.history["loss"].isna().tolist() == [False, True, True, False]
