"""A run that logs one new key per step (per-sample metrics) is decoded without a dense steps x keys frame
(issue 17, item 7): rarely filled columns are pandas sparse columns, values and order as the dense read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.sources import _frame, cache, open_run
from analysis.sources.local import SparseRun
from tests.wandb_writer import write_run


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    rows: list[dict[str, object]] = [
        {"loss": 1.0 / (s + 1), f"sample_{s}/score": (s % 7) / 7, "global_step": s} for s in range(60)
    ]
    rows[10]["sample_3/score"] = 0.5  # a key logged twice
    rows[20]["paths"] = ["a.png", "b.png"]  # an object cell among sparse columns
    return write_run(tmp_path_factory.mktemp("sparse"), "sparse", rows)


def _dense(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(lambda c: c.sparse.to_dense() if isinstance(c.dtype, pd.SparseDtype) else c)


def test_sparse_keys_decode_to_sparse_columns_with_the_dense_values(sparse_run, monkeypatch):
    monkeypatch.setattr(_frame, "LONG_AFTER_CELLS", 10**15)
    dense = open_run(sparse_run, cache=False)
    monkeypatch.setattr(_frame, "LONG_AFTER_CELLS", 100)
    long = open_run(sparse_run, cache=False)
    h = long.history
    assert isinstance(h["sample_30/score"].dtype, pd.SparseDtype)
    assert h["loss"].dtype == np.float64 and h["global_step"].dtype == np.int64
    assert list(h.columns) == list(dense.history.columns)
    pd.testing.assert_frame_equal(_dense(h), dense.history, check_dtype=False)
    assert h["paths"][20] == ["a.png", "b.png"] and h["sample_3/score"][10] == 0.5
    assert long.summary == dense.summary and long.status == dense.status
    stored = sum(h[c].array.sp_values.nbytes for c in h.columns if isinstance(h[c].dtype, pd.SparseDtype))
    assert stored < 60 * 70 * 8 / 10  # a small fraction of the dense rows x keys


def test_a_sparse_run_opens_without_the_frame_of_every_key(sparse_run, monkeypatch, tmp_path):
    """The history stays long below the public frame: opening, the summary, `step_column` and `history_of` never
    build the frame of every key; `history` builds it on first use, equal to the eager read."""
    monkeypatch.setattr(_frame, "LONG_AFTER_CELLS", 10**15)
    dense = open_run(sparse_run, cache=False)
    monkeypatch.setattr(_frame, "LONG_AFTER_CELLS", 100)
    built: list[object] = []
    real_frame = _frame.SparseHistory.frame

    def counted_frame(self, keys=None):
        built.append(keys)
        return real_frame(self, keys)

    monkeypatch.setattr(_frame.SparseHistory, "frame", counted_frame)
    monkeypatch.setattr(cache, "CACHE_ROOT_OVERRIDE", tmp_path)
    run = open_run(sparse_run)  # through the cache, which does not store a sparse history
    assert isinstance(run, SparseRun) and run.history_is_sparse
    assert run.step_column == "global_step" and run.summary == dense.summary
    assert [m for m in run.media] == [m for m in dense.media]
    part = run.history_of(["loss", "sample_3/score", "no such key"])
    assert list(part.columns) == ["_step", "loss", "sample_3/score"]
    pd.testing.assert_frame_equal(_dense(part), dense.history[list(part.columns)], check_dtype=False)
    assert None not in built  # nothing so far built every column
    pd.testing.assert_frame_equal(_dense(run.history), dense.history, check_dtype=False)
    assert not run.history_is_sparse and built.count(None) == 1
    run.history  # noqa: B018  (built once)
    assert built.count(None) == 1
