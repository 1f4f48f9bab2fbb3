"""Builds the history DataFrame column-wise from decoded rows without a Python object per number.

Numbers arrive as their JSON text (`b"0.8125"`, `b"NaN"`) with their row and column, or already parsed in bulk
(numpy arrays); text is parsed by Arrow (~20-80 ns a value, against ~400 ns for json.loads). Values land in
float64 blocks of `BLOCK_ROWS` rows. Anything that is not a number (lists of image paths, media reference
dicts, strings, booleans, integers beyond 2**53) is kept as a sparse object cell. At the end each column becomes
int64 (all values integral, no gaps: what pandas infers from the JSON integers wandb writes), float64, or an
object / string / bool column.
"""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

BLOCK_ROWS = 1024
# Sparse keys (a run logging one new key per step): once the dense blocks would hold more than LONG_AFTER_CELLS
# cells and more than LONG_SPARSITY cells per value put, values are kept as (row, column, value) triples
# instead, and columns filled below SPARSE_DENSITY become pandas sparse columns. A run of 20,000 steps x 20,000
# once-logged keys is 100,000 values, not a 3.2 GB dense frame. Dense runs never switch.
LONG_AFTER_CELLS = 250_000
LONG_SPARSITY = 8
SPARSE_DENSITY = 0.25
# Arrow's default pool (mimalloc/jemalloc) keeps freed memory for reuse; the system pool returns it, which keeps
# the decoder's peak close to the size of the frame it builds
POOL = pa.system_memory_pool()
_FLUSH_VALUES = 1 << 16
INT_LIMIT = 2.0**53


def parse_numbers(texts: Any) -> np.ndarray:
    """float64 values of JSON number texts (bytes list or Arrow binary array), NaN/Infinity included."""
    arr = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.binary(), memory_pool=POOL)
    try:
        text = pc.cast(arr, pa.string(), memory_pool=POOL)
        # a copy into numpy memory: Arrow's buffers go straight back to the system allocator
        return np.array(pc.cast(text, pa.float64(), memory_pool=POOL).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        items = arr.to_pylist()
        try:
            values = [float(x) for x in json.loads(b"[" + b",".join(items) + b"]")]
        except TypeError as e:  # a nested list or object among the texts
            raise ValueError(f"not numbers: {e}") from e
        if len(values) != len(items):  # a damaged text holding a comma reads as two numbers
            raise ValueError(f"{len(items)} number texts gave {len(values)} numbers") from None
        return np.array(values, dtype=np.float64)


class HistoryFrame:
    """Row accumulator; `frame()` returns the DataFrame (`_step` first, other columns sorted)."""

    def __init__(self) -> None:
        self.col_index: dict[bytes, int] = {}
        self.names: list[str] = []
        self.blocks: list[np.ndarray] = []
        self.n = 0  # rows so far
        self.objects: dict[int, dict[int, Any]] = {}
        self._texts: list[bytes] = []
        self._cols: list[int] = []
        self._rows: list[int] = []  # global row of each added row ...
        self._counts: list[int] = []  # ... and how many values it brought
        self.long: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None  # (rows, cols, values) when long
        self.values_put = 0  # numbers put so far (how full the dense blocks are)
        # (rows, columns) where a NaN was logged: the frame holds NaN for an absent key too (`logged_nan_steps`)
        self._nan_cells: list[tuple[np.ndarray, np.ndarray]] = []

    # -- rows and columns -------------------------------------------------------------------------------
    def new_rows(self, count: int = 1) -> int:
        """Append `count` empty rows; returns the index of the first."""
        first = self.n
        self.n += count
        if self.long is not None:
            return first
        width = max(16, len(self.names))
        while len(self.blocks) * BLOCK_ROWS < self.n:
            self.blocks.append(np.full((BLOCK_ROWS, width), np.nan))
        return first

    def new_row(self) -> int:
        return self.new_rows(1)

    def columns_for(self, keys: Any) -> list[int]:
        """Column indices of `keys` (bytes), creating the missing columns."""
        idx = list(map(self.col_index.get, keys))
        if None in idx:
            for k in keys:
                if k not in self.col_index:
                    self.col_index[k] = len(self.names)
                    self.names.append(k.decode("utf-8", "surrogateescape"))
            return list(map(self.col_index.__getitem__, keys))
        return cast(list[int], idx)  # no None in it: checked above

    def _block(self, b: int) -> np.ndarray:
        block = self.blocks[b]
        if block.shape[1] < len(self.names):
            wider = np.full((BLOCK_ROWS, max(len(self.names), block.shape[1] * 5 // 4)), np.nan)
            wider[:, : block.shape[1]] = block
            self.blocks[b] = block = wider
        return block

    # -- values -----------------------------------------------------------------------------------------
    def put(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> None:
        """Parsed numbers at (rows, cols); later puts win."""
        if not len(rows):
            return
        self.values_put += len(rows)
        nan = np.isnan(values)
        if nan.any():
            self._nan_cells.append((np.asarray(rows)[nan].astype(np.int64), np.asarray(cols)[nan].astype(np.int64)))
        if self.long is None and self._too_sparse():
            self._to_long()
        if self.long is not None:
            self.long.append((np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), values.copy()))
            return
        blk = rows // BLOCK_ROWS
        lo, hi = int(blk.min()), int(blk.max())
        if lo == hi:
            self._block(lo)[rows - lo * BLOCK_ROWS, cols] = values
            return
        for b in range(lo, hi + 1):
            sel = blk == b
            if sel.any():
                self._block(b)[rows[sel] - b * BLOCK_ROWS, cols[sel]] = values[sel]

    def add_numeric_texts(self, row: int, cols: list[int], texts: Any) -> None:
        """Numbers as JSON text (parsed later, in bulk)."""
        self._texts.extend(texts)
        self._cols.extend(cols)
        self._rows.append(row)
        self._counts.append(len(cols))
        if len(self._texts) >= _FLUSH_VALUES:
            self.flush()

    def add_object(self, row: int, col: int, value: Any) -> None:
        self.objects.setdefault(col, {})[row] = value

    def add_values(self, row: int, cols: list[int], values: list[Any]) -> None:
        """Already decoded values of any type."""
        self.flush()
        num_cols, num_vals = [], []
        for c, v in zip(cols, values):
            t = type(v)
            if t is float or (t is int and -INT_LIMIT < v < INT_LIMIT):
                num_cols.append(c)
                num_vals.append(v)
                cell = self.objects.get(c)
                if cell is not None:
                    cell.pop(row, None)
            elif v is not None:
                self.add_object(row, c, v)
        if num_cols:
            self.put(
                np.full(len(num_cols), row, dtype=np.intp),
                np.array(num_cols, dtype=np.intp),
                np.array(num_vals, dtype=np.float64),
            )

    def flush(self) -> None:
        if not self._texts:
            return
        values = parse_numbers(self._texts)
        rows = np.repeat(np.array(self._rows, dtype=np.intp), np.array(self._counts, dtype=np.intp))
        self.put(rows, np.array(self._cols, dtype=np.intp), values)
        self._texts, self._cols, self._rows, self._counts = [], [], [], []

    def logged_nan_steps(self, steps: np.ndarray) -> dict[str, np.ndarray]:
        """`Run.logged_nan`: for each column, the steps (`steps`: the `_step` of each row) at which a NaN was
        logged, as opposed to the key being absent, which the frame cannot tell apart."""
        if not self._nan_cells:
            return {}
        rows = np.concatenate([r for r, _ in self._nan_cells])
        cols = np.concatenate([c for _, c in self._nan_cells])
        out: dict[str, np.ndarray] = {}
        for c in np.unique(cols).tolist():
            out[self.names[c]] = np.unique(np.asarray(steps)[rows[cols == c]])
        return out

    def _too_sparse(self) -> bool:
        """Whether the rows so far, as wide as the columns so far, would be mostly empty and large."""
        cells = self.n * len(self.names)
        return cells > LONG_AFTER_CELLS and cells > LONG_SPARSITY * self.values_put

    def _to_long(self) -> None:
        """Switch from dense blocks to (row, column, value) triples, keeping the values put so far."""
        self.long = []
        for b, block in enumerate(self.blocks):
            r, c = np.nonzero(~np.isnan(block))
            keep = r + b * BLOCK_ROWS < self.n
            if keep.any():
                self.long.append((r[keep] + b * BLOCK_ROWS, c[keep], block[r[keep], c[keep]]))
        self.blocks = []

    # -- result -----------------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """The DataFrame. Built in place: one column-major float array the frame adopts without a copy (blocks
        are released as they are copied in), then int64 / object columns swapped in, so the peak stays near
        one frame plus one block."""
        self.flush()
        if self.long is not None:
            return self._long_frame()
        _release_freed_memory()
        ncols = len(self.names)
        # `_step` first, then the keys sorted (wandb-core writes them in random order)
        order = np.array(sorted(range(ncols), key=lambda c: (self.names[c] != "_step", self.names[c])), dtype=np.intp)
        full = np.empty((self.n, ncols), dtype=np.float64, order="F")
        for i in range(len(self.blocks)):
            block, self.blocks[i] = self.blocks[i], np.empty((0, 0))
            lo = i * BLOCK_ROWS
            hi = min(lo + BLOCK_ROWS, self.n)
            if hi <= lo:
                continue
            for a in range(0, ncols, 64):  # 64 columns at a time: small temporaries
                part = order[a : a + 64]
                inside = part < block.shape[1]
                if inside.all():
                    full[lo:hi, a : a + 64] = block[: hi - lo, part]
                else:
                    full[lo:hi, a : a + 64] = np.nan
                    full[lo:hi, a + np.flatnonzero(inside)] = block[: hi - lo, part[inside]]
            del block
        self.blocks = []
        names = [self.names[c] for c in order]
        df = pd.DataFrame(full, columns=names, copy=False)
        for j, c in enumerate(order.tolist()):
            cells = self.objects.get(c)
            if cells:
                # a Series keeps the dtype chosen for it (an object array would be re-inferred as str); pandas-stubs
                # leave Series out of isetitem's value types although pandas documents "scalar or array-like"
                df.isetitem(j, _object_column(full[:, j], cells))  # type: ignore[arg-type]
            elif self.n and _integral(full[:, j]):
                df.isetitem(j, full[:, j].astype(np.int64))
        if "_step" not in df.columns:
            df.insert(0, "_step", np.arange(self.n, dtype=np.int64))
        return df

    def result(self) -> pd.DataFrame | SparseHistory:
        """`frame()`, or for a history kept in the long layout a `SparseHistory` (the frame built on request)."""
        self.flush()
        if self.long is None:
            return self.frame()
        parts, self.long = self.long, None
        return SparseHistory(self.names, self.n, parts, self.objects)

    def _long_frame(self) -> pd.DataFrame:
        parts, self.long = self.long or [], None
        return SparseHistory(self.names, self.n, parts, self.objects).frame()


class SparseHistory:
    """A history kept long: the values of each column (row positions, float64 values) and its object cells, in
    one sorted array. Memory follows the values logged, not rows x keys; `frame()` builds the DataFrame (of all
    columns, or of some), each column dense when filled enough, else a pandas sparse column."""

    def __init__(
        self, names: list[str], n: int, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], objects: dict
    ) -> None:
        self.n = n
        stride = max(n, 1)
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        vals = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
        parts.clear()
        key = cols * stride + rows
        del rows, cols
        order = np.argsort(key, kind="stable")
        key, vals = key[order], vals[order]
        del order
        last = np.ones(len(key), dtype=bool)  # later puts win: keep the last of equal (column, row) keys
        last[:-1] = key[1:] != key[:-1]
        key, vals = key[last], vals[last]
        bounds = np.searchsorted(key // stride, np.arange(len(names) + 1))
        self.rows = (key - (key // stride) * stride).astype(np.int32 if n < 2**31 else np.int64)
        self.values = vals
        self.bounds = bounds
        self.objects = objects  # column -> {row: value}
        self.index = {name: c for c, name in enumerate(names)}
        ordered = sorted(self.index, key=lambda c: (c != "_step", c))
        self.columns = ordered if "_step" in self.index else ["_step", *ordered]

    def __len__(self) -> int:
        return self.n

    def filled_rows(self, name: str) -> np.ndarray:
        """Row positions where column `name` holds a value (number or object), ascending."""
        c = self.index.get(name)
        if c is None:
            return np.zeros(0, np.int64)
        rows = self.rows[self.bounds[c] : self.bounds[c + 1]]
        cells = self.objects.get(c)
        if cells:
            rows = np.union1d(rows, np.fromiter(cells, np.int64, len(cells)))
        return rows.astype(np.int64)

    def object_columns(self) -> list[str]:
        """Names of the columns holding Python objects (media references, lists, text)."""
        names = {c: name for name, c in self.index.items()}
        return sorted(names[c] for c, cells in self.objects.items() if cells)

    def column(self, name: str) -> Any:
        """Column `name` as the frame holds it (dense float64 / int64, object / str / bool, or sparse float)."""
        n = self.n
        c = self.index.get(name)
        if c is None:  # `_step` not logged: the row numbers
            return np.arange(n, dtype=np.int64)
        lo, hi = int(self.bounds[c]), int(self.bounds[c + 1])
        dense = np.full(n, np.nan)
        dense[self.rows[lo:hi]] = self.values[lo:hi]
        cells = self.objects.get(c)
        if cells:
            return _object_column(dense, cells)
        if n and _integral(dense):
            return dense.astype(np.int64)
        if hi - lo >= SPARSE_DENSITY * n:
            return dense
        return pd.arrays.SparseArray(dense, fill_value=np.nan)

    def frame(self, keys: Any = None) -> pd.DataFrame:
        """The DataFrame of every column, or of `_step` and those of `keys` that exist, in the frame's order."""
        wanted = self.columns if keys is None else [c for c in self.columns if c == "_step" or c in set(keys)]
        data = {name: self.column(name) for name in wanted}
        return pd.DataFrame(data, copy=False) if data else pd.DataFrame(index=range(self.n))


def _release_freed_memory() -> None:
    """Hand memory freed while decoding (many small record buffers) back to the OS before the frame is built,
    so the two do not add up in the process's peak. glibc only; elsewhere a no-op."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


def _integral(col: np.ndarray) -> bool:
    if np.isnan(col).any():
        return False
    return bool(np.all(np.abs(col) < INT_LIMIT) and np.all(col == np.trunc(col)))


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
