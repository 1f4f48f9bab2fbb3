"""Numbers behind a run comparison, on step × batch matrices (numpy, vectorised over every batch at once).

Two runs are aligned on their common steps when they cover the same steps (then the points of the two curves are
pairs), on relative progress (step / last step) otherwise. The window statistics take the last `k` points where a
value is finite in each column, so a batch validated less often than the others still gets its own last k points.
The test over the window is Student's paired t-test on the differences when the steps align, Welch's t-test on the
two windows when they do not: with k ≈ 10 points a rank test (Wilcoxon) cannot reach small p-values at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Aligned", "Matrix", "WindowStats", "align", "parting_index", "to_matrices", "window_stats"]

Alignment = Literal["auto", "step", "progress"]


@dataclass(frozen=True)
class Matrix:
    """One metric of one run: `values[i, j]` is batch `batches[j]` at `steps[i]` (NaN where not logged)."""

    steps: np.ndarray
    batches: np.ndarray
    values: np.ndarray

    def columns(self, batches: np.ndarray) -> np.ndarray:
        """The values of `batches` (a subset of self.batches), in that order."""
        return self.values[:, np.searchsorted(self.batches, batches)]


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted uniques, index of each value in them): np.unique(return_inverse=True) by hashing, not sorting."""
    codes, uniques = pd.factorize(values, sort=False)
    order = np.argsort(uniques)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return np.asarray(uniques)[order], rank[codes]


def to_matrices(long: pd.DataFrame) -> dict[str, Matrix]:
    """The BatchMetrics long frame as one step × batch matrix per metric (duplicates keep the last value)."""
    out: dict[str, Matrix] = {}
    if long.empty:
        return out
    metric = long["metric"]
    if isinstance(metric.dtype, pd.CategoricalDtype):
        codes, names = metric.cat.codes.to_numpy(), list(metric.cat.categories)
    else:
        codes, uniq = pd.factorize(metric)
        names = list(uniq)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    step_all = long["step"].to_numpy(dtype=np.int64)
    batch_all = long["batch"].to_numpy(dtype=np.int64)
    value_all = long["value"].to_numpy(dtype=np.float64)
    for i, name in enumerate(names):
        rows = order[bounds[i] : bounds[i + 1]]
        if rows.size == 0:
            continue
        steps, si = _sorted_codes(step_all[rows])
        batches, bi = _sorted_codes(batch_all[rows])
        values = np.full((steps.size, batches.size), np.nan)
        values[si, bi] = value_all[rows]
        out[str(name)] = Matrix(steps, batches, values)
    return out


@dataclass(frozen=True)
class Aligned:
    """Both runs on one grid of candidate steps: `base` and `cand` are grid × batch."""

    steps: np.ndarray
    base: np.ndarray
    cand: np.ndarray
    mode: Literal["step", "progress"]


def _typical_interval(steps: np.ndarray) -> float:
    return float(np.median(np.diff(steps))) if steps.size > 1 else 0.0


def choose_alignment(base_steps: np.ndarray, cand_steps: np.ndarray, requested: Alignment = "auto") -> str:
    """ "step" when both runs end at the same step (within one validation) and share most steps; else "progress"."""
    if requested != "auto":
        return requested
    if base_steps.size == 0 or cand_steps.size == 0:
        return "step"
    common = np.intersect1d(base_steps, cand_steps).size
    same_end = abs(int(base_steps[-1]) - int(cand_steps[-1])) <= max(
        _typical_interval(base_steps), _typical_interval(cand_steps)
    )
    return "step" if same_end and common >= 0.5 * min(base_steps.size, cand_steps.size) else "progress"


def _interp_columns(x_new: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.full((x_new.size, y.shape[1]), np.nan)
    for j in range(y.shape[1]):
        ok = np.isfinite(y[:, j])
        if ok.sum() >= 2:
            inside = (x_new >= x[ok][0]) & (x_new <= x[ok][-1])
            out[inside, j] = np.interp(x_new[inside], x[ok], y[ok, j])
    return out


def align(base: Matrix, cand: Matrix, batches: np.ndarray, mode: str) -> Aligned:
    """Both runs' `batches` on the candidate's steps: common steps ("step") or relative progress ("progress")."""
    b, c = base.columns(batches), cand.columns(batches)
    if mode == "step":
        common, bi, ci = np.intersect1d(base.steps, cand.steps, return_indices=True)
        return Aligned(common, b[bi], c[ci], "step")
    x_base = base.steps / max(float(base.steps[-1]), 1.0) if base.steps.size else base.steps.astype(float)
    x_cand = cand.steps / max(float(cand.steps[-1]), 1.0) if cand.steps.size else cand.steps.astype(float)
    return Aligned(cand.steps, _interp_columns(x_cand, x_base, b), c, "progress")


def _last_k(values: np.ndarray, k: int) -> np.ndarray:
    """`values` with everything but the last k finite points of each column set to NaN."""
    ok = np.isfinite(values)
    from_end = np.cumsum(ok[::-1], axis=0)[::-1]
    return np.where(ok & (from_end <= k), values, np.nan)


def _last_value(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    idx = values.shape[0] - 1 - np.argmax(ok[::-1], axis=0)
    last = values[idx, np.arange(values.shape[1])] if values.shape[0] else np.full(values.shape[1], np.nan)
    return np.where(ok.any(axis=0), last, np.nan)


@dataclass(frozen=True)
class WindowStats:
    """Per column: end values, window means, points in the window, p-value of the difference."""

    base_end: np.ndarray
    cand_end: np.ndarray
    base_window: np.ndarray
    cand_window: np.ndarray
    n: np.ndarray
    p: np.ndarray
    paired: bool


def _nanmean(a: np.ndarray) -> np.ndarray:
    n = np.isfinite(a).sum(axis=0)
    return np.where(n > 0, np.nansum(a, axis=0) / np.maximum(n, 1), np.nan)


def _nanvar(a: np.ndarray) -> np.ndarray:
    n = np.isfinite(a).sum(axis=0)
    dev = np.where(np.isfinite(a), a - _nanmean(a), 0.0)
    return np.where(n > 1, (dev**2).sum(axis=0) / np.maximum(n - 1, 1), np.nan)


def _t_p(mean: np.ndarray, se: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p of t = mean / se; a zero standard error gives p 1 for a zero mean and 0 for any other."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
        p = 2.0 * stats.t.sf(np.abs(t), np.maximum(df, 1))
    p = np.where(se == 0, np.where(mean == 0, 1.0, 0.0), p)
    return np.where(np.isfinite(mean) & (df >= 1), p, np.nan)


def window_stats(aligned: Aligned, base: np.ndarray, cand: np.ndarray, k: int) -> WindowStats:
    """End and last-k statistics: paired on the aligned grid in step mode, Welch on each run's own points else.

    `base` / `cand` are each run's own (unaligned) columns, used in progress mode.
    """
    if aligned.mode == "step":
        both = np.isfinite(aligned.base) & np.isfinite(aligned.cand)
        d = _last_k(np.where(both, aligned.cand - aligned.base, np.nan), k)
        keep = np.isfinite(d)
        bw, cw = np.where(keep, aligned.base, np.nan), np.where(keep, aligned.cand, np.nan)
        n = keep.sum(axis=0)
        mean_d = _nanmean(d)
        se = np.sqrt(_nanvar(d) / np.maximum(n, 1))
        se = np.where(n == 1, np.nan, se)
        return WindowStats(
            _last_value(bw), _last_value(cw), _nanmean(bw), _nanmean(cw), n, _t_p(mean_d, se, n - 1), True
        )
    bw, cw = _last_k(base, k), _last_k(cand, k)
    nb, nc = np.isfinite(bw).sum(axis=0), np.isfinite(cw).sum(axis=0)
    vb, vc = _nanvar(bw) / np.maximum(nb, 1), _nanvar(cw) / np.maximum(nc, 1)
    se = np.sqrt(vb + vc)
    with np.errstate(divide="ignore", invalid="ignore"):  # Welch–Satterthwaite degrees of freedom
        df = (vb + vc) ** 2 / (vb**2 / np.maximum(nb - 1, 1) + vc**2 / np.maximum(nc - 1, 1))
    df = np.where(np.isfinite(df), df, np.maximum(nb + nc - 2, 1))
    mean_d = _nanmean(cw) - _nanmean(bw)
    p = _t_p(mean_d, se, df)
    p = np.where((nb < 2) | (nc < 2), np.nan, p)
    return WindowStats(_last_value(bw), _last_value(cw), _nanmean(bw), _nanmean(cw), np.minimum(nb, nc), p, False)


def parting_index(worsening: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per column, the first grid row from which the curves stay parted; -1 when they never part.

    `worsening` is grid × column (candidate − baseline, signed so that the shift is positive) and `shift` the
    shift at the end. The curves count as parted where a 3-point running median of the difference is past half the
    end shift; the parting row is the one after the last row that is not (single noisy points do not move it).
    """
    if worsening.shape[0] == 0:
        return np.full(worsening.shape[1], -1)
    padded = np.vstack([worsening[:1], worsening, worsening[-1:]])
    a, b, c = padded[:-2], padded[1:-1], padded[2:]
    smooth = np.fmax(np.fmin(a, b), np.fmin(np.fmax(a, b), c))  # median of 3 (NaN-tolerant)
    valid = np.isfinite(smooth)
    not_parted = valid & (smooth < shift / 2.0)
    rows = np.arange(worsening.shape[0])[:, None]
    last_not = np.where(not_parted, rows, -1).max(axis=0)
    first_valid = np.where(valid, rows, worsening.shape[0]).min(axis=0)
    start = np.where(last_not >= 0, last_not + 1, first_valid)
    parted = (shift > 0) & (start < worsening.shape[0])
    return np.where(parted, start, -1)
