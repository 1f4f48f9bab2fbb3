"""Tidy frames from a run's history: per-batch metrics, run-level metrics and problematic image paths.

The handbook's `log_batch_metrics` calls `wandb.log` once per batch, so history rows are sparse: each wandb step
holds one batch's `batch_{i}/{metric}` values plus `global_step`. We therefore key everything on `global_step`
(forward-filled, wandb's `_step` when the run never logged one), never on `_step`.

Frames (documented columns):
- BatchMetrics: `step` (int64), `batch` (int64), `metric` (categorical of str), `value` (float64; NaN/Inf kept
  when logged); sorted by metric, batch, step
- GlobalMetrics: `step`, `metric`, `value` for numeric non-batch keys (`val/recall`, `train/loss`, ...); a NaN only
  where the source says it was logged (`Run.logged_nan`: a history cannot tell a logged NaN from an absent key)
- ProblemImages: `step`, `batch`, `path` (str, as logged: relative to the data directory)
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.core.errors import ConfigError
from analysis.core.run import Run

BATCH_KEY = re.compile(r"^batch_(?P<batch>\d+)/(?P<metric>[^/]+)$")
PROBLEMATIC_KEY = re.compile(r"^problematic_batch_(?P<batch>\d+)$")
# Per-batch key layouts recognised without configuration, tried in this order (the first that matches any key
# of the run wins): the handbook's `batch_3/recall`, a prefixed `val/batch_3/recall`, a suffixed `recall_batch3`
# or `recall_batch_3`. Any other layout: pass `pattern=` (or set training_config.batch_key_pattern), a regex with
# named groups `batch` and `metric` (and optionally `prefix`, folded into the metric name when a run uses more
# than one prefix, so `val/batch_3/recall` and `test/batch_3/recall` stay apart).
BATCH_LAYOUTS: dict[str, re.Pattern[str]] = {
    "handbook": BATCH_KEY,
    "prefixed": re.compile(r"^(?P<prefix>.+)/batch_(?P<batch>\d+)/(?P<metric>[^/]+)$"),
    "suffixed": re.compile(r"^(?P<metric>[^/]+?)_batch_?(?P<batch>\d+)$"),
}
# problematic image lists: `problematic_batch_3`, also under a prefix (`val/problematic_batch_3`)
PROBLEMATIC_ANY = re.compile(r"^(?:.+/)?problematic_batch_?(?P<batch>\d+)$")
_INTERNAL = ("_",)

BATCH_COLUMNS = ["step", "batch", "metric", "value"]
GLOBAL_COLUMNS = ["step", "metric", "value"]
IMAGE_COLUMNS = ["step", "batch", "path"]


def step_axis(run: Run) -> np.ndarray:
    """The step of every history row: `global_step` forward-filled, `_step` where none was logged yet."""
    h = run.history
    if h.empty:
        return np.zeros(0, dtype=np.int64)
    fallback = (
        pd.to_numeric(h["_step"], errors="coerce") if "_step" in h else pd.Series(np.arange(len(h)), index=h.index)
    )
    if run.step_column == "global_step":
        steps = pd.to_numeric(h["global_step"], errors="coerce").ffill()
        steps = steps.fillna(fallback)
    else:
        steps = fallback
    return steps.fillna(0).to_numpy(dtype=np.float64).astype(np.int64)


def _numeric(col: pd.Series) -> np.ndarray:
    if col.dtype.kind in "fiub":
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def compile_pattern(pattern: re.Pattern[str] | str) -> re.Pattern[str]:
    """A batch-key regex, checked: ConfigError when it does not compile or lacks the `batch`/`metric` groups."""
    try:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise ConfigError(f"batch key pattern {pattern!r} is not a valid regular expression: {exc}") from None
    missing = {"batch", "metric"} - set(rx.groupindex)
    if missing:
        raise ConfigError(
            f"batch key pattern {rx.pattern!r} needs the named groups (?P<batch>...) and "
            f"(?P<metric>...); missing: {', '.join(sorted(missing))}"
        )
    return rx


def _batch_candidates(columns) -> list[str]:
    return [
        c
        for c in columns
        if isinstance(c, str) and not c.startswith(_INTERNAL) and c != "global_step" and not PROBLEMATIC_ANY.match(c)
    ]


def batch_pattern(columns, pattern: re.Pattern[str] | str | None = None) -> re.Pattern[str]:
    """The batch-key regex for a run with these history columns: `pattern` (checked) when given, else the
    first of BATCH_LAYOUTS that matches one of the columns (the handbook layout when none does)."""
    if pattern is not None:
        return compile_pattern(pattern)
    cols = _batch_candidates(columns)
    for rx in BATCH_LAYOUTS.values():
        if any(rx.match(c) for c in cols):
            return rx
    return BATCH_KEY


def _batch_columns(columns, rx: re.Pattern[str]) -> dict[int, list[tuple[str, str]]]:
    """batch -> [(column, metric name)] for the columns `rx` matches."""
    found: list[tuple[str, int, str, str]] = []
    for col in _batch_candidates(columns):
        m = rx.match(col)
        if m and m.group("batch") is not None and m.group("metric"):
            if not m.group("batch").isdecimal():
                raise ConfigError(
                    f"batch key pattern {rx.pattern!r}: its batch group matched {m.group('batch')!r} "
                    f"in the key {col!r}, which is not a batch number; use (?P<batch>\\d+)"
                )
            prefix = m.group("prefix") if "prefix" in rx.groupindex else None
            found.append((col, int(m.group("batch")), m.group("metric"), prefix or ""))
    several_prefixes = len({p for *_, p in found}) > 1
    by_batch: dict[int, list[tuple[str, str]]] = {}
    for col, b, metric, prefix in found:
        name = f"{prefix}/{metric}" if several_prefixes and prefix else metric
        by_batch.setdefault(b, []).append((col, name))
    return by_batch


def batch_metrics(run: Run, pattern: re.Pattern[str] | str | None = None) -> pd.DataFrame:
    """BatchMetrics long frame from per-batch keys: `pattern` (named groups `batch` and `metric`), or the
    layout detected from the run's keys (see BATCH_LAYOUTS).

    A row belongs to batch b when any of b's metrics is present in it; all of b's metrics in that row are then
    emitted, so a logged NaN next to a logged value is kept (wandb cannot tell "NaN" from "absent" otherwise).
    Duplicate (step, batch, metric) keep the last logged value.
    """
    h = run.history
    by_batch = _batch_columns(h.columns, batch_pattern(h.columns, pattern))
    if not by_batch:
        return pd.DataFrame(
            {
                "step": pd.Series(dtype="int64"),
                "batch": pd.Series(dtype="int64"),
                "metric": pd.Categorical([]),
                "value": pd.Series(dtype="float64"),
            }
        )
    steps = step_axis(run)
    metric_names = sorted({metric for cols in by_batch.values() for _, metric in cols})
    code_of = {m: i for i, m in enumerate(metric_names)}
    n_cols = sum(len(cols) for cols in by_batch.values())
    increasing = len(steps) < 2 or bool((np.diff(steps) > 0).all())
    if h.columns.is_unique and increasing and len(steps) * n_cols <= _WIDE_CELLS:
        return _batch_metrics_at_once(h, steps, by_batch, metric_names, code_of)
    # per metric code: lists of (steps, batch ids, values); concatenated in metric order at the end
    parts: list[tuple[list, list, list]] = [([], [], []) for _ in metric_names]
    duplicates = False
    for b in sorted(by_batch):
        cols = by_batch[b]
        values = np.column_stack([_numeric(h[c]) for c, _ in cols])
        present = ~np.isnan(values).all(axis=1)
        b_steps, rows = steps[present], values[present]
        if len(b_steps) > 1 and not (np.diff(b_steps) > 0).all():
            order = np.argsort(b_steps, kind="stable")
            b_steps, rows = b_steps[order], rows[order]
            duplicates = duplicates or bool((np.diff(b_steps) == 0).any())
        ids = np.full(len(b_steps), b, dtype=np.int64)
        for j, (_, metric) in enumerate(cols):
            st, bt, vt = parts[code_of[metric]]
            st.append(b_steps)
            bt.append(ids)
            vt.append(rows[:, j])
    counts = [sum(len(a) for a in p[0]) for p in parts]
    out = pd.DataFrame(
        {
            "step": np.concatenate([a for p in parts for a in p[0]]),
            "batch": np.concatenate([a for p in parts for a in p[1]]),
            "metric": pd.Categorical.from_codes(
                np.repeat(np.arange(len(metric_names), dtype=np.int32), counts), categories=pd.Index(metric_names)
            ),
            "value": np.concatenate([a for p in parts for a in p[2]]),
        }
    )
    if duplicates:  # the same (step, batch) logged twice: keep the last value
        out = out.drop_duplicates(["step", "batch", "metric"], keep="last").reset_index(drop=True)
    return out


_WIDE_CELLS = 20_000_000  # batch values read as one (rows, columns) block up to this many cells


def _batch_metrics_at_once(
    h: pd.DataFrame,
    steps: np.ndarray,
    by_batch: dict[int, list[tuple[str, str]]],
    metric_names: list[str],
    code_of: dict[str, int],
) -> pd.DataFrame:
    """`batch_metrics` for a history whose steps strictly increase (no batch needs sorting, no duplicate steps):
    every batch column read into one block and every (batch, metric) series cut from it at once, so a table of
    100,000 batch columns costs a few array operations instead of a frame access per batch. The same frame as
    the per-batch loop: by metric, then batch, then step."""
    entries = [(b, col, metric) for b in sorted(by_batch) for col, metric in by_batch[b]]
    position = {name: j for j, name in enumerate(h.columns)}
    where = np.array([position[col] for _, col, _ in entries], dtype=np.int64)
    values = np.empty((len(steps), len(entries)))
    dtypes = list(h.dtypes)
    plain = np.array([isinstance(dtypes[j], np.dtype) and dtypes[j].kind in "fiub" for j in where], dtype=bool)
    for e in np.flatnonzero(~plain).tolist():  # extension or object columns: one at a time
        values[:, e] = _numeric(h.iloc[:, int(where[e])])
    dense = np.flatnonzero(plain)
    for a in range(0, dense.size, _GLOBAL_CHUNK):  # plain numeric columns: 2-D blocks
        chunk = dense[a : a + _GLOBAL_CHUNK]
        values[:, chunk] = h.iloc[:, where[chunk]].to_numpy(dtype=np.float64)
    batch_of = np.array([b for b, _, _ in entries], dtype=np.int64)
    code = np.array([code_of[metric] for _, _, metric in entries], dtype=np.int64)
    # a row belongs to a batch when any of its metrics is present there
    firsts = np.flatnonzero(np.r_[True, batch_of[1:] != batch_of[:-1]])
    present = np.logical_or.reduceat(~np.isnan(values), firsts, axis=1) if len(entries) else np.zeros((0, 0), bool)
    owner = np.repeat(np.arange(firsts.size), np.diff(np.r_[firsts, len(entries)]))
    order = np.argsort(code, kind="stable")  # by metric, then batch (entries are in batch order)
    cols, rows = np.nonzero(present[:, owner[order]].T)
    return pd.DataFrame(
        {
            "step": steps[rows],
            "batch": batch_of[order][cols],
            "metric": pd.Categorical.from_codes(code[order][cols].astype(np.int32), categories=pd.Index(metric_names)),
            "value": values[:, order][rows, cols],
        }
    )


def global_metrics(run: Run, pattern: re.Pattern[str] | str | None = None) -> pd.DataFrame:
    """Numeric run-level metrics (everything that is not a batch key, a problematic list or wandb-internal).

    Vectorised: plain numeric columns are read `_GLOBAL_CHUNK` at a time as one 2-D array, so a table of
    100,000 metric columns costs a few array operations, not a frame per column."""
    h = run.history
    rx = batch_pattern(h.columns, pattern)
    steps = step_axis(run)
    names: list[str] = []
    index: dict[str, int] = {}
    dense: list[int] = []  # positions of plain numpy numeric columns
    codes, rows_of, values_of = [], [], []

    def code_of(name: str) -> int:  # one code per metric name (a table may repeat a column name)
        code = index.setdefault(name, len(names))
        if code == len(names):
            names.append(name)
        return code

    logged_nan = run.logged_nan
    row_steps = h["_step"].to_numpy() if logged_nan and "_step" in h.columns else None

    def logged(name: str, values: np.ndarray) -> np.ndarray:
        """The cells of one column that were logged: its values, and the NaNs the source says were logged."""
        out = ~np.isnan(values)
        if row_steps is not None and name in logged_nan:
            out |= np.isin(row_steps, logged_nan[name])
        return out

    def take(code: int, values: np.ndarray) -> None:
        present = np.flatnonzero(logged(names[code], values))
        codes.append(np.full(len(present), code, dtype=np.int64))
        rows_of.append(present)
        values_of.append(values[present])

    for j, (col, dtype) in enumerate(zip(h.columns, h.dtypes)):
        if not isinstance(col, str) or col.startswith(_INTERNAL) or col == "global_step":
            continue
        if rx.match(col) or PROBLEMATIC_ANY.match(col):
            continue
        if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
            dense.append(j)
            continue
        series = h.iloc[:, j]
        numbers_as_objects = (
            dtype == np.dtype(object) and series.dropna().map(lambda v: isinstance(v, (int, float))).all()
        )
        if dtype.kind not in "fiub" and not numbers_as_objects:
            continue
        take(code_of(col), _numeric(series))
    for a in range(0, len(dense), _GLOBAL_CHUNK):
        chunk = dense[a : a + _GLOBAL_CHUNK]
        block = h.iloc[:, chunk].to_numpy(dtype=np.float64)
        mask = ~np.isnan(block)
        for k, j in enumerate(chunk):
            if row_steps is not None and str(h.columns[j]) in logged_nan:
                mask[:, k] = logged(str(h.columns[j]), block[:, k])
        c, r = np.nonzero(mask.T)  # by column, rows ascending
        codes.append(np.array([code_of(str(h.columns[j])) for j in chunk], dtype=np.int64)[c])
        rows_of.append(r)
        values_of.append(block[r, c])
    code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    if not len(code):
        return pd.DataFrame(
            {"step": pd.Series(dtype="int64"), "metric": pd.Series(dtype="str"), "value": pd.Series(dtype="float64")}
        )
    step = steps[np.concatenate(rows_of)]
    value = np.concatenate(values_of)
    rank = np.empty(len(names), dtype=np.int64)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    order = np.lexsort((step, rank[code]))  # by metric name, then step; stable, so rows stay in logged order
    code, step, value = code[order], step[order], value[order]
    # the same step logged twice for a metric: keep the last value
    last = np.r_[(code[1:] != code[:-1]) | (step[1:] != step[:-1]), True]
    out = pd.DataFrame({"step": step[last], "metric": np.array(names, dtype=object)[code[last]], "value": value[last]})
    return out


_GLOBAL_CHUNK = 2048


def change_tolerance(frame: pd.DataFrame) -> dict[str, float]:
    """How many steps apart two changes of run-level metrics may lie and still be "at the same step", per metric of
    `global_metrics`' long frame (step, metric, value): max(5, 2 % of its values) of its logging intervals (the
    median gap between its steps), the tolerance the change-point benchmark matches with. Change points of one
    event land a few values apart (a YOLOX log's restart: `iter` at record 1480, the losses at 1483, `lr` at 1488);
    a metric logged once has no interval and is left out."""
    if frame.empty:
        return {}
    codes, names = pd.factorize(frame["metric"])
    steps = frame["step"].to_numpy(dtype=np.int64)
    order = np.lexsort((steps, codes))
    codes, steps = codes[order], steps[order]
    new = np.r_[True, (np.diff(codes) != 0) | (np.diff(steps) != 0)]  # each (metric, step) once
    codes, steps = codes[new], steps[new]
    count = np.bincount(codes, minlength=len(names))
    same = np.diff(codes) == 0
    interval = pd.Series(np.diff(steps)[same]).groupby(codes[1:][same]).median()
    return {
        str(names[c]): float(g) * max(5.0, 0.02 * float(count[c]))
        for c, g in zip(interval.index.tolist(), interval.tolist(), strict=True)
    }


def problematic_images(run: Run, pattern: re.Pattern[str] | str | None = None) -> pd.DataFrame:
    """Image paths logged under `problematic_batch_{i}` (also `<prefix>/problematic_batch_{i}`, or keys
    matching `pattern`, a regex with a named group `batch`), one row per (step, batch, path)."""
    rx = PROBLEMATIC_ANY if pattern is None else (re.compile(pattern) if isinstance(pattern, str) else pattern)
    if "batch" not in rx.groupindex:
        raise ConfigError(f"problematic key pattern {rx.pattern!r} needs the named group (?P<batch>...)")
    h = run.history
    steps = step_axis(run)
    rows: list[tuple[int, int, str]] = []
    for col in h.columns:
        m = rx.match(col) if isinstance(col, str) else None
        if not m:
            continue
        b = int(m.group("batch"))
        for i, cell in enumerate(h[col].to_numpy()):
            if isinstance(cell, (list, tuple, np.ndarray)):
                rows.extend((int(steps[i]), b, str(p)) for p in cell if isinstance(p, str) and p)
            elif isinstance(cell, str) and cell:
                rows.append((int(steps[i]), b, cell))
    out = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    out = out.astype({"step": "int64", "batch": "int64", "path": "str"})
    return out.drop_duplicates().sort_values(["batch", "step", "path"]).reset_index(drop=True)
