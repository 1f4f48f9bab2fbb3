"""Very wide tables (issue 17, item 14): `global_metrics` and `summarize_batches` work on all columns / batches at
once; their results are those of the per-column / per-batch definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.core.records import Anomaly
from analysis.core.run import Run, RunRef
from analysis.core.vocabulary import Severity
from analysis.findings import batches as batches_module
from analysis.findings.batches import global_metrics
from analysis.findings.pipeline import summarize_batches


def _run(history: pd.DataFrame) -> Run:
    return Run(ref=RunRef(source="file", locator="t.csv", run_id="t", name="t"), history=history)


def _one_column(h: pd.DataFrame, col: str, steps: np.ndarray) -> pd.DataFrame:
    """The definition, one column at a time: its numeric values at their steps, the last of a repeated step."""
    values = pd.to_numeric(h[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    keep = ~np.isnan(values)
    part = pd.DataFrame({"step": steps[keep], "metric": col, "value": values[keep]})
    return part.drop_duplicates("step", keep="last")


def test_global_metrics_of_many_columns_match_the_per_column_definition(monkeypatch):
    monkeypatch.setattr(batches_module, "_GLOBAL_CHUNK", 64)  # several chunks of columns read as 2-D blocks
    rng = np.random.default_rng(3)
    n = 12
    cols: dict[str, object] = {"_step": np.arange(n), "global_step": np.repeat(np.arange(n // 2) * 10, 2)}
    for k in range(150):
        v = rng.random(n)
        v[rng.random(n) < 0.3] = np.nan
        cols[f"m{k:03d}" if k % 2 else f"val/m{k:03d}"] = v
    cols["epoch"] = np.arange(n)
    cols["is_best"] = rng.random(n) < 0.5
    cols["mixed"] = pd.Series([1, None, 2.5] * (n // 3), dtype=object)
    cols["note"] = pd.Series(["x"] * n, dtype=object)
    cols["sparse"] = pd.arrays.SparseArray(np.where(np.arange(n) % 5 == 0, 0.25, np.nan))
    cols["batch_1/recall"] = rng.random(n)  # a batch key: not a global metric
    h = pd.DataFrame(cols)
    out = global_metrics(_run(h))
    steps = h["global_step"].to_numpy()
    wanted = [c for c in h.columns if c not in ("_step", "global_step", "note", "batch_1/recall")]
    expected = pd.concat([_one_column(h, c, steps) for c in wanted], ignore_index=True)
    expected = expected.sort_values(["metric", "step"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)
    assert set(out["metric"]) == set(wanted)
    # a repeated step keeps the value of its last row
    assert out.loc[out["metric"] == "epoch", "value"].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]


def test_batch_summary_of_many_batches_picks_each_worst_and_last_value():
    rows = []
    for b in range(3000):
        values = [0.9, 0.4, 0.4, 0.7] if b % 3 == 0 else [np.nan, np.inf] if b % 3 == 1 else [0.5, np.nan, 0.8]
        rows += [(s * 10, b, "recall", v) for s, v in enumerate(values)]
    batches = pd.DataFrame(rows, columns=["step", "batch", "metric", "value"])
    batches["metric"] = pd.Categorical(batches["metric"])
    anomalies = [
        Anomaly(
            step=20,
            metric="recall",
            value=0.4,
            detector="zscore",
            score=5.0,
            severity=Severity.CRITICAL,
            message="",
            batch=0,
        ),
        Anomaly(
            step=10,
            metric="recall",
            value=0.4,
            detector="zscore",
            score=3.0,
            severity=Severity.WARNING,
            message="",
            batch=0,
        ),
        Anomaly(step=0, metric="loss", value=1.0, detector="zscore", score=3.0, severity=Severity.WARNING, message=""),
    ]
    images = pd.DataFrame({"step": [0, 10, 10], "batch": [3, 3, 3], "path": ["a.png", "b.png", "a.png"]})
    out = summarize_batches(batches, anomalies, [], images).set_index("batch")
    assert len(out) == 3000 and out.index[0] == 0  # the critical batch first
    first = out.loc[0]
    assert (first["worst_recall"], first["worst_step"], first["last_recall"]) == (0.4, 10, 0.7)  # the earlier tie
    assert (first["n_anomalies"], first["first_bad_step"], first["severity"]) == (2, 10, "critical")
    never = out.loc[1]  # no finite value
    assert np.isnan(never["worst_recall"]) and never["worst_step"] == -1 and np.isnan(never["last_recall"])
    assert (out.loc[2, "worst_recall"], out.loc[2, "worst_step"], out.loc[2, "last_recall"]) == (0.5, 0, 0.8)
    assert out.loc[3, "n_problem_images"] == 2 and out.loc[6, "n_problem_images"] == 0
    assert out["n_anomalies"].sum() == 2  # the run-level anomaly belongs to no batch
