"""Builds the history DataFrame column-wise from decoded rows without a Python object per number.

Numbers arrive as their JSON text (`b"0.8125"`, `b"NaN"`) together with their column index and row index; they
are parsed in bulk by Arrow (~20 ns a value, against ~400 ns for json.loads) into float64 blocks of
`BLOCK_ROWS` rows. Anything that is not a number (lists of image paths, media reference dicts, strings,
booleans) is kept as a sparse object cell. At the end each column becomes int64 (all values integral, no gaps:
what pandas would infer from the JSON ints wandb writes), float64, or an object / string / bool column.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

BLOCK_ROWS = 2048
_FLUSH_VALUES = 1 << 16
_INT_LIMIT = 2.0**53


class HistoryFrame:
    """Row-by-row accumulator; `frame()` returns the DataFrame (columns in first-seen order)."""

    def __init__(self) -> None:
        self.col_index: dict[bytes, int] = {}
        self.names: list[str] = []
        self.blocks: list[np.ndarray] = []
        self.cur = np.full((BLOCK_ROWS, 64), np.nan)
        self.n = 0  # rows so far
        self.objects: dict[int, dict[int, Any]] = {}
        self._texts: list[bytes] = []
        self._cols: list[int] = []
        self._rows: list[int] = []  # local row of each added row ...
        self._counts: list[int] = []  # ... and how many values it brought

    # -- rows and columns -------------------------------------------------------------------------------
    def new_row(self) -> int:
        """Start a row; returns its global index."""
        if self.n and self.n % BLOCK_ROWS == 0:
            self._flush()
            self.blocks.append(self.cur)
            self.cur = np.full((BLOCK_ROWS, self.cur.shape[1]), np.nan)
        self.n += 1
        return self.n - 1

    def columns_for(self, keys: Any) -> list[int]:
        """Column indices of `keys` (bytes), creating the missing columns."""
        idx = list(map(self.col_index.get, keys))
        if None in idx:
            for k in keys:
                if k not in self.col_index:
                    self._add_column(k)
            idx = list(map(self.col_index.__getitem__, keys))
        return idx

    def _add_column(self, key: bytes) -> None:
        self.col_index[key] = len(self.names)
        self.names.append(key.decode("utf-8", "surrogateescape"))
        if len(self.names) > self.cur.shape[1]:
            wider = np.full((BLOCK_ROWS, self.cur.shape[1] * 2), np.nan)
            wider[:, : self.cur.shape[1]] = self.cur
            self.cur = wider

    # -- values -----------------------------------------------------------------------------------------
    def add_numeric_texts(self, row: int, cols: list[int], texts: Any) -> None:
        """Numbers as JSON text (parsed later, in bulk)."""
        self._texts.extend(texts)
        self._cols.extend(cols)
        self._rows.append(row - len(self.blocks) * BLOCK_ROWS)
        self._counts.append(len(cols))
        if len(self._texts) >= _FLUSH_VALUES:
            self._flush()

    def add_values(self, row: int, cols: list[int], values: list[Any]) -> None:
        """Already decoded values of any type."""
        self._flush()
        local = row - len(self.blocks) * BLOCK_ROWS
        for c, v in zip(cols, values):
            t = type(v)
            if t is float or (t is int and -_INT_LIMIT < v < _INT_LIMIT):
                self.cur[local, c] = v
                cell = self.objects.get(c)
                if cell is not None:
                    cell.pop(row, None)
            elif v is not None:
                self.objects.setdefault(c, {})[row] = v

    def _flush(self) -> None:
        if not self._texts:
            return
        try:
            arr = pa.array(self._texts, pa.binary()).cast(pa.string()).cast(pa.float64())
            values = arr.to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            values = np.array([float(x) for x in json.loads(b"[" + b",".join(self._texts) + b"]")])
        rows = np.repeat(np.array(self._rows, dtype=np.intp), np.array(self._counts, dtype=np.intp))
        self.cur[rows, np.array(self._cols, dtype=np.intp)] = values
        self._texts, self._cols, self._rows, self._counts = [], [], [], []

    # -- result -----------------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        self._flush()
        ncols = len(self.names)
        full = np.full((self.n, ncols), np.nan)
        for i, block in enumerate([*self.blocks, self.cur]):
            lo = i * BLOCK_ROWS
            hi = min(lo + BLOCK_ROWS, self.n)
            if hi > lo:
                w = min(block.shape[1], ncols)
                full[lo:hi, :w] = block[: hi - lo, :w]
        self.blocks, self.cur = [], np.empty((0, 0))
        data: dict[str, Any] = {}
        # `_step` first, then the keys sorted (wandb-core writes them in random order)
        order = sorted(range(ncols), key=lambda c: (self.names[c] != "_step", self.names[c]))
        for c in order:
            name = self.names[c]
            col = full[:, c]
            cells = self.objects.get(c)
            if cells:
                data[name] = _object_column(col, cells)
            elif self.n and _integral(col):
                data[name] = col.astype(np.int64)
            else:
                data[name] = col
        if "_step" not in data:
            data = {"_step": np.arange(self.n, dtype=np.int64), **data}
        return pd.DataFrame(data, copy=False)


def _integral(col: np.ndarray) -> bool:
    if np.isnan(col).any():
        return False
    return bool(np.all(np.abs(col) < _INT_LIMIT) and np.all(col == np.trunc(col)))


def _object_column(col: np.ndarray, cells: dict[int, Any]) -> pd.Series:
    arr = col.astype(object)
    for r, v in cells.items():
        arr[r] = v
    s = pd.Series(arr, dtype=object)
    kinds = {type(v) for v in cells.values()}
    if len(cells) == len(arr) and kinds <= {bool}:
        return s.astype(bool)
    rest = np.ones(len(col), dtype=bool)
    rest[list(cells)] = False
    if kinds <= {str} and np.isnan(col[rest]).all():
        return s.astype("str")
    return s
