"""History exports as runs: the wandb UI's CSV download, and plain CSV / Parquet / JSONL history tables.

The wandb UI exports a chart as CSV with a `Step` column and one `<run name> - <key>` column per run and key,
each with `__MIN` / `__MAX` companions (the range of the points a sampled chart merged). Those become a history
with `_step` = Step and the keys as columns (companions dropped); an export holding several runs needs `run=`
(or `path#run name` in `open_run`). Any other table is taken as a history as it is: `_step` from a `_step`,
`step` or `Step` column when there is one, else the row number. Cells holding JSON lists or objects
(`["img/1.png", ...]`, as wandb and pandas write list values to CSV) are decoded back into Python values.

Exports carry no config and no exit record: `config` is empty, `summary` is the last value of each column,
and the state is "unknown".
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.core.errors import AmbiguousRun, CorruptRunFile, RunNotFound
from analysis.core.run import ReadStatus, Run, RunRef
from analysis.sources._history import last_values, media_index, tidy_history

SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_WANDB_COLUMN = re.compile(r"^(?P<run>.+?) - (?P<key>.+)$")
_STEP_NAMES = ("_step", "step", "Step")


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
        frame = _read(kind, data if data is not None else Path(locator), keys)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise CorruptRunFile(f"{label}: cannot read this {kind.upper()} history: {_first_line(e)}") from e
    except RecursionError:  # json.loads recurses once per nesting level
        raise CorruptRunFile(
            f"{label}: cannot read this {kind.upper()} history: a value is nested too deeply to read"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    run_name = Path(label).stem
    if kind == "csv" and "Step" in frame.columns and _wandb_runs(frame):
        frame, run_name = _from_wandb_export(frame, label, run)
    history = _with_step(frame, label)
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
        status=ReadStatus(),
    )


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _read(kind: str, src: bytes | Path, keys: Iterable[str] | None) -> pd.DataFrame:
    buf = io.BytesIO(src) if isinstance(src, bytes) else src
    if kind == "parquet":
        return pd.read_parquet(buf)
    if kind == "jsonl":
        text = src.decode("utf-8") if isinstance(src, bytes) else Path(src).read_text("utf-8")
        whole = _json_document(text)
        if whole is not None:
            return whole
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                row = json.loads(line)  # accepts the NaN / Infinity tokens wandb writes
                if not isinstance(row, dict):
                    raise ValueError(f"line {n} is not a JSON object")
                rows.append(row)
        if not rows:
            raise ValueError("no rows")
        return pd.DataFrame.from_records(rows)
    sep = "\t" if isinstance(src, Path) and src.suffix.lower() == ".tsv" else _delimiter(src)
    wide = _read_wide_numeric(src, sep)
    if wide is not None:
        return wide
    with warnings.catch_warnings():
        # a row longer than the header would be cut silently ("loss of data"): refuse the file instead
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(buf, sep=sep, index_col=False)
        except pd.errors.ParserWarning as w:
            raise ValueError(f"rows do not match the header: {w}") from None
    if frame.shape[1] == 0:
        raise ValueError("no columns")
    return _decode_json_cells(frame)


WIDE_COLUMNS = 2000  # from this many columns a plain numeric table takes the vectorised reader


def _read_wide_numeric(src: bytes | Path, sep: str) -> pd.DataFrame | None:
    """A wide, plain numeric table (no quotes, every row as long as the header, every cell a number or empty)
    parsed with a few numpy operations over all cells at once: pandas' parser and frame builder spend ~0.2 ms
    per column, 20 s for 100,000 columns. None when the table is narrow or not that plain (pandas reads it)."""
    raw = src if isinstance(src, bytes) else src.read_bytes()
    head_end = raw.find(b"\n")
    header = raw[: head_end if head_end >= 0 else len(raw)]
    if header.count(sep.encode()) + 1 < WIDE_COLUMNS or b'"' in raw:
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
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


def _delimiter(src: bytes | Path) -> str:
    """`,` unless the header has none and another common delimiter instead (spreadsheets in many locales save
    `;`-separated "CSV"; read with `,` it would become one column and the run would look empty)."""
    if isinstance(src, bytes):
        head = src[:65536]
    else:
        with open(src, "rb") as f:
            head = f.read(65536)
    header = head.split(b"\n", 1)[0]
    if b"," in header:
        return ","
    counts = {sep: header.count(sep.encode()) for sep in (";", "\t", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


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


def _wandb_runs(frame: pd.DataFrame) -> list[str]:
    runs = []
    for c in frame.columns:
        m = _WANDB_COLUMN.match(c)
        if m and m["run"] not in runs:
            runs.append(m["run"])
    return runs


def _from_wandb_export(frame: pd.DataFrame, label: str, run: str | None) -> tuple[pd.DataFrame, str]:
    runs = _wandb_runs(frame)
    if run is None:
        if len(runs) > 1:
            raise AmbiguousRun(
                f"{label} holds {len(runs)} runs ({', '.join(runs)}); choose one with '{label}#<run name>'",
                candidates=runs,
            )
        run = runs[0]
    elif run not in runs:
        raise RunNotFound(f"{label} has no run named {run!r}; it holds: {', '.join(runs)}", candidates=runs)
    prefix = f"{run} - "
    cols = {"Step": "_step"}
    for c in frame.columns:
        if c.startswith(prefix) and not c.endswith(("__MIN", "__MAX")):
            cols[c] = c[len(prefix) :]
    out = frame[list(cols)].rename(columns=cols)
    value_cols = [c for c in out.columns if c != "_step"]
    if value_cols:
        out = out[out[value_cols].notna().any(axis=1)]
    return out.reset_index(drop=True), run


def _with_step(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    step_col = next((c for c in _STEP_NAMES if c in frame.columns), None)
    if step_col is None:
        return frame.assign(_step=np.arange(len(frame), dtype=np.int64))
    steps = pd.to_numeric(frame[step_col], errors="coerce")
    if steps.isna().any():
        bad = int(steps.isna().to_numpy().argmax())
        raise CorruptRunFile(
            f"{label}: the {step_col!r} column has a missing or non-numeric value (data row {bad + 1})"
        )
    frame = frame.drop(columns=[step_col]) if step_col != "_step" else frame
    return frame.assign(_step=steps.astype(np.int64).to_numpy())
