"""One metric of a run as a matrix (rows = steps, columns = batches): the shape every run-level detector reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["MetricMatrix", "metric_matrices", "same_rows"]


@dataclass
class MetricMatrix:
    """One metric of a run as a matrix: rows = sorted steps, columns = batches (or [None] for a global metric)."""

    metric: str
    steps: np.ndarray  # (n,) int64
    columns: list[int | None]
    raw: np.ndarray  # (n, k) values as logged (NaN where not logged; NaN/Inf kept)
    logged: np.ndarray  # (n, k) bool: a value was logged at this step

    @property
    def values(self) -> np.ndarray:
        """Finite values only (NaN elsewhere): what the statistics see."""
        return np.where(np.isfinite(self.raw), self.raw, np.nan)

    @property
    def nonfinite(self) -> np.ndarray:
        """Cells where a NaN or Inf was logged (a missing cell is not a logged NaN)."""
        return self.logged & ~np.isfinite(self.raw)


def metric_matrices(long: pd.DataFrame | None, key: str | None) -> list[MetricMatrix]:
    """Split a long frame (step, [batch,] metric, value) into one matrix per metric; the last duplicate wins.

    `key` names the column that becomes the matrix columns (`"batch"`), or None for run-level metrics.
    """
    if long is None or long.empty:
        return []
    step_all = pd.to_numeric(long["step"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(step_all)
    codes, names = pd.factorize(long["metric"], sort=True)  # on the Series: Arrow strings stay fast
    codes = codes[ok]
    step_all = step_all[ok].astype(np.int64)
    value_all = pd.to_numeric(long["value"], errors="coerce").to_numpy(dtype=float)[ok]
    key_all = long[key].to_numpy(dtype=np.int64)[ok] if key else None
    order = np.argsort(codes, kind="stable")  # stable: the last duplicate of a cell stays last
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out = []
    for k, metric in enumerate(names):
        idx = order[bounds[k] : bounds[k + 1]]
        if idx.size == 0:
            continue  # a metric logged only on rows without a step
        si, steps = pd.factorize(step_all[idx], sort=True)
        if key_all is not None:
            ci, cols = pd.factorize(key_all[idx], sort=True)
            columns: list[int | None] = [int(c) for c in cols]
        else:
            ci = np.zeros(idx.size, dtype=np.int64)
            columns = [None]
        raw = np.full((steps.size, len(columns)), np.nan)
        logged = np.zeros(raw.shape, dtype=bool)
        raw[si, ci] = value_all[idx]
        logged[si, ci] = True
        out.append(MetricMatrix(str(metric), np.asarray(steps, dtype=np.int64), columns, raw, logged))
    return out


def same_rows(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The columns of a (steps, series) boolean matrix grouped by equal columns: [(that column, column indices)].

    The series of one metric that were logged (or are finite) at the same steps form one (series, points)
    matrix, which the detectors read row-wise in a few array operations (`changepoints.level_shifts_many`)."""
    n, k = mask.shape
    if k == 0:
        return []
    if mask.all():
        return [(np.ones(n, dtype=bool), np.arange(k))]
    _, first, inverse = np.unique(np.packbits(mask, axis=0).T, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(first.size + 1))
    return [(mask[:, first[g]], order[bounds[g] : bounds[g + 1]]) for g in range(first.size)]
