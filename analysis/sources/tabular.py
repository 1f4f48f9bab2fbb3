"""History exports as runs: the wandb UI's CSV download, and plain CSV / Parquet / JSONL history tables.

The wandb UI exports a chart as CSV with its x-axis column (`Step`, `epoch`, `train/global_step`, ...) and one
`<run name> - <key>` column per run and key, each with `__MIN` / `__MAX` companions (see `_export`): each run is
its own history with `_step` from the x-axis (named in `Run.step_axis`), companions dropped; an export holding
several runs needs `run=` (or `path#run name` in `open_run`), and `export_runs` lists them for a picker.
CSV text is decoded and split as spreadsheets save it (UTF-8, UTF-8 with BOM, cp1252, UTF-16; `,` `;` tab `|`;
decimal commas), see `_export_text`; how it was read is noted in `Run.notes`. Any other table is taken as a history as it is: `_step` from a `_step`,
`step` or `Step` column when there is one (unless it goes back: runs appended to one file are read in file order,
by row number), else from a training counter (`iteration`, `iter`, `env_step`, `episode`, `epoch`, ... any case, padded
as YOLO writes it) that counts up in whole numbers (rows of one value merged: a training and an evaluation row of
one iteration), else the row number. Cells holding JSON lists or objects
(`["img/1.png", ...]`, as wandb and pandas write list values to CSV) are decoded back into Python values.

Exports carry no config and no exit record: `config` is empty, `summary` is the last value of each column,
and the state is "unknown".
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.core.errors import CorruptRunFile, RunNotFound
from analysis.core.run import ReadStatus, Run, RunRef
from analysis.core.vocabulary import is_context
from analysis.sources._export import _whole, detect_layout, pick_run, run_history
from analysis.sources._export_text import (
    BinaryContent,
    decimal_comma_columns,
    decode_table_bytes,
    excel_sep_line,
    sniff_delimiter,
)
from analysis.sources._history import last_values, media_index, tidy_history
from analysis.sources._nan import LOGGED_NAN, arrow_frame_marking_nan, split_logged_nan

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_STEP_NAMES = ("_step", "step", "Step")
# A table's x-axis when it has no step column (`_axis_columns`), finest first: training loops (PaddleOCR, MMDetection),
# RLlib, MLPerf, Tianshou, Stable-Baselines3 and Keras / YOLO name their counters so.
_AXIS_NAMES = (
    "iteration",
    "iter",
    "training_iteration",
    "step_num",
    "env_step",
    "timesteps_total",
    "total_timesteps",
    "episode",
    "epoch",
    "epoch_num",
)
_AXIS_DISTINCT = 0.8  # share of a counter's values that are distinct (`_counts_up`)
_NAN_TEXTS = frozenset({"nan", "-nan", "+nan"})
_NAN_WORD = re.compile(r"(?i)(?<![\w.])[-+]?nan(?![\w.])")
_SEP_NAMES = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}
_HEADER_BYTES = 1 << 20  # export_runs reads at most this much of a large file (its header)
_WHOLE_FILE_BYTES = 8 << 20


def is_table(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def open_table(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    keys: Iterable[str] | None = None,
    run: str | None = None,
) -> Run:
    """A history export as a Run. `source` is a path, or the bytes of an uploaded file (then give `name`,
    whose suffix picks the format). `run` picks one run of a multi-run wandb CSV export."""
    if isinstance(source, (bytes, bytearray)):
        if not name:
            raise CorruptRunFile("an uploaded history needs a file name to tell its format (.csv, .parquet, .jsonl)")
        label, data, locator = name, bytes(source), name
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise RunNotFound(f"{path}: no such history file")
        label, data, locator = path.name, None, str(path.resolve())
    kind = SUFFIXES.get(Path(label).suffix.lower())
    if kind is None:
        raise CorruptRunFile(f"{label}: unknown history format; use .csv, .parquet or .jsonl")
    try:
        frame, read_notes, marked = _read(kind, data if data is not None else Path(locator), keys)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise CorruptRunFile(f"{label}: cannot read this {kind.upper()} history: {_first_line(e)}") from e
    except RecursionError:  # json.loads recurses once per nesting level
        raise CorruptRunFile(
            f"{label}: cannot read this {kind.upper()} history: a value is nested too deeply to read"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    run_name = Path(label).stem
    step_axis = "_step"
    notes = list(read_notes)
    layout = detect_layout(list(frame.columns)) if kind == "csv" else None
    if layout is not None:
        run_name = pick_run(layout, label, run)
        frame, step_axis, export_notes = run_history(frame, layout, run_name)
        _check_usable(frame, f"{label}#{run_name}")
        notes += [f"wandb UI export ({len(layout.runs)} run{'s' if len(layout.runs) != 1 else ''} in the file)"]
        notes += export_notes
    elif run is not None:
        raise RunNotFound(
            f"{label} is not a wandb UI export of several runs (no '<run> - <key>' columns), so '#{run}' names "
            "no run; open it without '#'"
        )
    else:
        _check_usable(frame, label)
        frame, step_axis, step_note = _with_step(frame, label)
        notes += step_note
    frame, logged_nan = split_logged_nan(frame, marked)
    history = frame
    if keys is not None:
        wanted = [c for c in history.columns if c in set(keys) or c in ("_step", "global_step")]
        history = history[wanted]
    history = tidy_history(history)
    ref = RunRef(source="file", locator=locator, run_id=run_name, name=run_name, state="unknown")
    summary = last_values(history)
    return Run(
        ref=ref,
        config={},
        summary=summary,
        history=history,
        media=media_index(history),
        files_dir=None,
        notes="; ".join(notes),
        status=ReadStatus(),
        step_axis=step_axis,
        logged_nan={k: v for k, v in logged_nan.items() if k in history.columns},
    )


def export_runs(source: str | os.PathLike | bytes, *, name: str | None = None) -> list[str]:
    """The run names of a wandb UI CSV export (from its header alone), for a run picker; [] for any other
    table. `source` is a path, or uploaded bytes with their file `name`. CorruptRunFile when the file is no
    text table."""
    label = name or Path(os.fspath(source) if not isinstance(source, (bytes, bytearray)) else "upload").name
    if SUFFIXES.get(Path(label).suffix.lower()) != "csv":
        return []
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise RunNotFound(f"{path}: no such history file")
        with open(path, "rb") as f:
            raw = f.read(_WHOLE_FILE_BYTES + 1)
    if len(raw) > _WHOLE_FILE_BYTES:  # a large file: its header is enough (cut after a line break)
        cut = raw.rfind(b"\n", 0, _HEADER_BYTES)
        raw = raw[: cut + 2] if cut >= 0 else raw[:_HEADER_BYTES]
    try:
        text, _ = decode_table_bytes(raw)
    except BinaryContent as e:
        raise CorruptRunFile(f"{label}: cannot read this CSV history: {e}") from None
    text, named_sep = excel_sep_line(text)
    sep = named_sep or ("\t" if label.lower().endswith(".tsv") else sniff_delimiter(text))
    header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    layout = detect_layout([h.strip() for h in header])
    return list(layout.runs) if layout is not None else []


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _read(kind: str, src: bytes | Path, keys: Iterable[str] | None) -> tuple[pd.DataFrame, list[str], set[str]]:
    """The table as read, notes on how (encoding, delimiter, decimal commas) when not plain UTF-8 CSV, and the
    columns holding a cell written as NaN (`LOGGED_NAN`, turned back by `_nan.split_logged_nan`)."""
    buf = io.BytesIO(src) if isinstance(src, bytes) else src
    if kind == "parquet":  # a NaN stored is a logged NaN, a null is a key not logged
        import pyarrow.parquet as pq

        table, nan_columns = arrow_frame_marking_nan(pq.read_table(buf))
        return table, [], nan_columns
    if kind == "jsonl":
        text = src.decode("utf-8") if isinstance(src, bytes) else Path(src).read_text("utf-8")
        whole = _json_document(text)
        if whole is not None:
            return whole, [], set()
        rows = []
        marked: set = set()
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                row = json.loads(line)  # accepts the NaN / Infinity tokens wandb writes
                if not isinstance(row, dict):
                    raise ValueError(f"line {n} is not a JSON object")
                # a NaN written out is a logged NaN, an absent key is not: keep them apart (`_nan.split_logged_nan`)
                nan_keys = {k for k, v in row.items() if isinstance(v, float) and v != v}
                if nan_keys:
                    marked |= nan_keys
                    row = {k: LOGGED_NAN if k in nan_keys else v for k, v in row.items()}
                rows.append(row)
        if not rows:
            raise ValueError("no rows")
        return pd.DataFrame.from_records(rows), [], {str(k) for k in marked}
    raw = src if isinstance(src, bytes) else src.read_bytes()
    text, encoding = decode_table_bytes(raw)  # BinaryContent is a ValueError: "cannot read this CSV history"
    if not text.strip():
        raise ValueError("the file is empty")
    text, named_sep = excel_sep_line(text)
    tsv = isinstance(src, Path) and src.suffix.lower() == ".tsv"
    sep = named_sep or ("\t" if tsv else sniff_delimiter(text))
    notes = []
    if encoding not in ("UTF-8", "UTF-8 with BOM"):
        notes.append(f"read as {encoding}")
    if sep != ",":
        notes.append(f"{_SEP_NAMES.get(sep, repr(sep))}-separated")
    wide = _read_wide_numeric(text, sep)
    if wide is not None:  # its NaN text is not told from empty cells: a second read of 100,000 columns takes 20 s
        return wide, notes, set()
    with warnings.catch_warnings():
        # a row longer than the header would be cut silently ("loss of data"): refuse the file instead
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, index_col=False)
        except pd.errors.ParserWarning as w:
            raise ValueError(f"rows do not match the header: {w}") from None
    if frame.shape[1] == 0:
        raise ValueError("no columns")
    if sep != ",":  # `0,93` is a number only where `,` cannot be the delimiter
        converted = decimal_comma_columns(frame)
        if converted:
            notes.append(f"decimal commas read in {len(converted)} column{'s' if len(converted) != 1 else ''}")
    frame = _decode_json_cells(frame)
    return frame, notes, _mark_nan_text(frame, text, sep)


def _mark_nan_text(frame: pd.DataFrame, text: str, sep: str) -> set[str]:
    """Set the cells of `frame` whose text is a NaN (`nan`, `NaN`, `-nan`) to `LOGGED_NAN`, in place, and return
    their columns: an empty cell is a value not logged, `nan` one that was logged as NaN. The text is read a second
    time only when such a word occurs."""
    marked: set[str] = set()
    if not _NAN_WORD.search(text):
        return marked
    raw = pd.read_csv(io.StringIO(text), sep=sep, index_col=False, dtype=str, keep_default_na=False)
    if raw.shape != frame.shape:
        return marked
    for j in range(frame.shape[1]):
        if pd.api.types.is_float_dtype(frame.dtypes.iloc[j]):
            hit = raw.iloc[:, j].str.strip().str.lower().isin(_NAN_TEXTS).to_numpy()
            if hit.any():
                col = frame.iloc[:, j].to_numpy(copy=True)
                col[hit & np.isnan(col)] = LOGGED_NAN
                frame.isetitem(j, col)
                marked.add(str(frame.columns[j]))
    return marked


WIDE_COLUMNS = 2000  # from this many columns a plain numeric table takes the vectorised reader


def _read_wide_numeric(text: str, sep: str) -> pd.DataFrame | None:
    """A wide, plain numeric table (no quotes, every row as long as the header, every cell a number or empty)
    parsed with a few numpy operations over all cells at once: pandas' parser and frame builder spend ~0.2 ms
    per column, 20 s for 100,000 columns. None when the table is narrow or not that plain (pandas reads it)."""
    head_end = text.find("\n")
    header = text[: head_end if head_end >= 0 else len(text)]
    if header.count(sep) + 1 < WIDE_COLUMNS or '"' in text:
        return None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    names = lines[0].split(sep)
    rows = [line.split(sep) for line in lines[1:] if line]
    if not rows or len(set(names)) != len(names) or any(len(r) != len(names) for r in rows):
        return None
    cells = np.array(rows, dtype=str)
    cells[np.char.strip(cells) == ""] = "nan"
    try:
        values = cells.astype(np.float64)
    except ValueError:  # some cell is not a number: pandas decides its column's type
        return None
    integral = ~np.isnan(values).any(axis=0) & np.char.isdigit(np.char.lstrip(cells, "-")).all(axis=0)
    if not integral.any():
        return pd.DataFrame(values, columns=names, copy=False)
    cols = np.array(names, dtype=object)
    parts = [  # two blocks (floats, integers), not one block per integer column
        pd.DataFrame(values[:, ~integral], columns=cols[~integral]),
        pd.DataFrame(cells[:, integral].astype(np.int64), columns=cols[integral]),
    ]
    return pd.concat(parts, axis=1)[names]


def _json_document(text: str) -> pd.DataFrame | None:
    """A .json file holding one document instead of lines: a list of row objects (`to_json(orient="records")`)
    or pandas' default `{column: {row: value}}`. None when the text is JSON Lines."""
    head = text.lstrip()[:1]
    if head not in ("[", "{") or (head == "{" and "\n{" in text.strip()):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None  # e.g. several objects, one per line: JSON Lines
    if isinstance(doc, list):
        if not doc:
            raise ValueError("no rows")
        if not all(isinstance(r, dict) for r in doc):
            raise ValueError("a JSON array history must hold one object per row")
        return pd.DataFrame.from_records(doc)
    if isinstance(doc, dict) and doc and all(isinstance(v, dict) for v in doc.values()):
        frame = pd.DataFrame(doc)
        with contextlib.suppress(TypeError, ValueError):  # pandas writes row labels as strings: keep the logged order
            frame = frame.loc[sorted(frame.index, key=int)]
        return frame.reset_index(drop=True)
    return None  # a single row object: read as one JSON line


def _decode_json_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """CSV cells that hold JSON lists or objects become Python values again (text columns only: the dtypes
    tell which, so numeric columns cost nothing)."""
    text_cols = [
        c for c, dt in zip(frame.columns, frame.dtypes, strict=True) if dt == np.dtype(object) or str(dt) == "str"
    ]
    for c in text_cols:
        col = frame[c]
        sample = col.dropna()
        if len(sample) and sample.astype(str).str.match(r"^\s*[\[{]").all():
            with contextlib.suppress(ValueError, RecursionError):  # not JSON (or nested too deeply): keep the text
                frame[c] = pd.Series(
                    [json.loads(v) if isinstance(v, str) else np.nan for v in col], index=frame.index, dtype=object
                )
    return frame


def _with_step(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, str, list[str]]:
    """(frame with `_step`, what `_step` counts, notes): `_step` from a `_step`, `step` or `Step` column, else from
    an iteration or epoch counter (`_axis_columns`, `_counts_up`), else the row number."""
    step_col = next((c for c in _STEP_NAMES if c in frame.columns), None)
    if step_col is None:
        if "global_step" in frame.columns:
            return frame.assign(_step=np.arange(len(frame), dtype=np.int64)), "row", []
        counters = _axis_columns(frame)
        for axis in counters:
            logged = pd.to_numeric(frame[axis], errors="coerce")
            if (logged.isna() & frame[axis].notna()).any() or logged.isna().all():
                continue  # text in it: no counter
            steps, filled = _filled(logged, axis.strip())  # an evaluation row, RLlib's last row
            rest = frame.drop(columns=[axis])
            if _counts_up(steps) or (_never_decreases(steps) and _merges_without_loss(rest, steps)):
                return _stepped(rest, steps, axis.strip(), [f"steps are the {axis.strip()!r} column", *filled])
        nested = _nested_counter(frame, counters)
        if nested is not None:  # an iteration counter that restarts every epoch: iterations counted across epochs
            steps, outer, inner, period = nested
            note = (
                f"steps are iterations counted from the {outer!r} and {inner!r} columns ({outer} × {period} + "
                f"{inner}: {inner!r} restarts every {outer!r}; {period} is its last value in an epoch plus its "
                "usual increment)"
            )
            return _stepped(frame.drop(columns=[c for c in counters if str(c).strip() == inner]), steps, inner, [note])
        why = "; ".join(_why_no_axis(frame, c) for c in counters) or "no step column"
        note = (
            f"{why}: rows numbered" if counters else f"{why} ({', '.join((*_STEP_NAMES, *_AXIS_NAMES))}): rows numbered"
        )
        return frame.assign(_step=np.arange(len(frame), dtype=np.int64)), "row", [note]
    steps = pd.to_numeric(frame[step_col], errors="coerce")
    text = steps.isna() & frame[step_col].notna()
    if text.any() or steps.isna().all():
        bad = int((text if text.any() else steps.isna()).to_numpy().argmax())
        raise CorruptRunFile(
            f"{label}: the {step_col!r} column has a non-numeric value (data row {bad + 1}: "
            f"{str(frame[step_col].iloc[bad])!r}); columns found: {_columns_found(frame)}"
        )
    steps, notes = _filled(steps, step_col)  # an evaluation row logged without the step (PredNet's log)
    back = np.flatnonzero(np.diff(steps.to_numpy()) < 0)
    if back.size:  # a counter per epoch, or runs appended to one log: read in file order, nothing merged
        kept = "logged_step" if step_col == "_step" else step_col
        note = f"{_goes_back(step_col, back)}: steps are row numbers, the logged step is the column {kept!r}"
        frame = frame.rename(columns={"_step": kept}) if step_col == "_step" else frame
        return frame.assign(_step=np.arange(len(frame), dtype=np.int64)), "row", [*notes, note]
    frame = frame.drop(columns=[step_col]) if step_col != "_step" else frame
    return frame.assign(_step=steps.astype(np.int64).to_numpy()), step_col, notes


def _goes_back(name: str, back: np.ndarray) -> str:
    """How a counter goes back, from the positions `back` (0-based, in its differences) where it does."""
    times = f"{back.size} time{'s' if back.size > 1 else ''}"
    return (
        f"the {name!r} column goes back {times} (first at data row {int(back[0]) + 2}: it restarts, per epoch or "
        "per run appended to the file)"
    )


def _why_no_axis(frame: pd.DataFrame, column: str) -> str:
    """Why a counter column is not the step axis: where it goes back (a log of runs one after another), else that
    it does not count up (it repeats on most rows, or has text or gaps)."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    back = np.flatnonzero(np.diff(values) < 0)  # NaN compares False: a gap is no step back
    name = str(column).strip()
    return _goes_back(name, back) if back.size else f"the {name!r} column does not count up"


def _filled(logged: pd.Series, name: str) -> tuple[pd.Series, list[str]]:
    """A step or counter column whose empty cells take the value of the row before (the first rows, the one after),
    and the note saying so when there were any."""
    empty = int(logged.isna().sum())
    if not empty:
        return logged, []
    rows = f"{empty} rows without a {name!r} value take" if empty > 1 else f"a row without a {name!r} value takes"
    return logged.ffill().bfill(), [f"{rows} the step of the row before"]


def _stepped(frame: pd.DataFrame, steps: pd.Series, axis: str, notes: list[str]) -> tuple[pd.DataFrame, str, list[str]]:
    """`_with_step`'s answer for a counter that counts up: `_step` from `steps`; rows of one step (a training and an
    evaluation row of one iteration) merged, the later value winning."""
    merged = frame.assign(_step=steps.astype(np.int64).to_numpy())
    if merged["_step"].duplicated().any():
        merged = merged.groupby("_step", sort=True, as_index=False).last()
        notes = [*notes, f"rows of the same {axis!r} merged"]
    return merged, axis, notes


def _nested_counter(frame: pd.DataFrame, counters: list[str]) -> tuple[pd.Series, str, str, int] | None:
    """(iterations, outer name, inner name, iterations per outer step) for an inner counter that restarts with every
    step of an outer one (UniMatch, mmseg: `epoch` and the `iter` within it), or None. The outer counter never
    decreases; within each of its values the inner one never decreases (a row without it, an evaluation at the end of
    an epoch, takes the one before); the period is the inner counter's largest value plus its usual increment, so an
    epoch's first iteration follows the last one logged before it as the others follow each other."""
    for i, inner in enumerate(counters):
        for outer in counters[i + 1 :]:
            o = pd.to_numeric(frame[outer], errors="coerce")
            n = pd.to_numeric(frame[inner], errors="coerce").ffill()
            if o.isna().any() or n.isna().any() or not (_whole(o) and _whole(n)) or (n < 0).any():
                continue
            ov, nv = o.to_numpy(np.int64), n.to_numpy(np.int64)
            d_out, d_in = np.diff(ov), np.diff(nv)
            if (d_out < 0).any() or not (d_out > 0).any() or (d_in[d_out == 0] < 0).any():
                continue
            moves = d_in[(d_out == 0) & (d_in > 0)]
            if not moves.size:
                continue
            period = int(nv.max() + np.median(moves))
            steps = pd.Series(ov * period + nv, index=frame.index)
            if _counts_up(steps):
                return steps, str(outer).strip(), str(inner).strip(), period
    return None


def _axis_columns(frame: pd.DataFrame) -> list[str]:
    """The columns named like a training counter (`_AXIS_NAMES`, finest first; case and padding ignored: YOLO pads
    its header, Keras writes `epoch`, SRGAN `Epoch`). Such a column is the run's x-axis, not a metric."""
    named = {str(c).strip().lower(): c for c in reversed(frame.columns)}
    return [named[n] for n in _AXIS_NAMES if n in named]


def _never_decreases(steps: pd.Series) -> bool:
    """Whole numbers, none missing, never going back."""
    if not len(steps) or steps.isna().any() or not _whole(steps):
        return False
    return bool((np.diff(steps.to_numpy()) >= 0).all())


def _merges_without_loss(rest: pd.DataFrame, steps: pd.Series) -> bool:
    """Whether the rows that share a counter value hold no column with two values, so merging them loses nothing:
    a training row and an evaluation row per epoch (`epoch` 0, 0, 1, 1, ...; MLPerf HPC's `step_num`) are one step
    each, while per-iteration rows under one epoch value (a pix2pix loss log) are not."""
    if not steps.duplicated().any():
        return True
    # A text column names the kind of row (`row_kind`: train / val), a context column times it (`time_ms`) or
    # describes the setup (`lr`): their merged cells keep the last row's.
    valued = [c for c in rest.columns if not (_row_labels(rest[c]) or str(c).startswith("_") or is_context(str(c)))]
    return int(rest[valued].groupby(steps.to_numpy()).nunique().to_numpy().max(initial=0)) <= 1


def _row_labels(col: pd.Series) -> bool:
    """A column of short text only (`row_kind`, `phase`, `mode`): labels of the rows, not logged values."""
    if pd.api.types.is_numeric_dtype(col.dtype):
        return False
    cells = col.dropna()
    return bool(len(cells)) and all(isinstance(v, str) and len(v) <= 32 for v in cells)


def _counts_up(steps: pd.Series) -> bool:
    """A counter that can be the step axis: whole numbers, none missing, never decreasing, and repeating rarely
    (a training and an evaluation row of one iteration; an epoch column beside per-iteration rows repeats on
    most rows and is no step)."""
    return _never_decreases(steps) and np.unique(steps.to_numpy()).size >= _AXIS_DISTINCT * len(steps)


_NOT_METRICS = frozenset({*_STEP_NAMES, "global_step"})


def _check_usable(frame: pd.DataFrame, label: str) -> None:
    """CorruptRunFile naming the problem and the columns found when the table has no row, or no column that
    holds a number or a logged value (a list, a media reference): such a "run" would show "Steps 0"."""
    if not len(frame):
        raise CorruptRunFile(
            f"{label}: the table has a header but no data rows; columns found: {_columns_found(frame)}"
        )
    for j, name in enumerate(frame.columns):
        if name in _NOT_METRICS:
            continue
        col = frame.iloc[:, j]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            if col.notna().any():
                return
            continue
        values = col.dropna()
        if not len(values):
            continue
        head = values.iloc[:1000]
        if any(isinstance(v, (dict, list)) for v in head) or pd.to_numeric(head, errors="coerce").notna().any():
            return
    raise CorruptRunFile(
        f"{label}: no usable metric column (no column other than a step holds numbers); "
        f"columns found: {_columns_found(frame)}"
    )


def _columns_found(frame: pd.DataFrame, limit: int = 12) -> str:
    names = [str(c) for c in frame.columns]
    shown = ", ".join(repr(n) if len(n) <= 60 else repr(n[:57] + "...") for n in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{shown}{more} ({len(names)} column{'s' if len(names) != 1 else ''})"
