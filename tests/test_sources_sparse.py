"""A run that logs one new key per step (per-sample metrics) is decoded without a dense steps x keys frame
(issue 17, item 7): rarely filled columns are pandas sparse columns, values and order as the dense read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.sources import _frame, open_run
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
