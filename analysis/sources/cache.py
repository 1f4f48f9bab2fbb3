"""On-disk cache of decoded runs: one Parquet file per (run file path, size, mtime, content sample, keys).

Decoding a 500 MB `.wandb` file takes seconds; reading the same history back from Parquet takes a tenth of a
second. The cache lives in `cache_root()` (`$EXPERIMENT_ANALYZER_CACHE`, else the user cache directory) under `runs/`.
A changed file (a live run growing, a re-synced run) has a new size or mtime and so a new entry; an edit that
keeps both (`cp -p`, `rsync -t`, `tar` restore the mtime) changes the content sample in the key: a hash of the
whole file when it is small, else of its head, its tail and 16 slices between (`fingerprint`). Each entry also
records its own key and the file it was made from, and is only served for exactly those (an entry copied or
renamed from another run is ignored). The stale
entry of the same file is removed when the new one is written. A cache that cannot be written (read-only
disk, full disk) is skipped silently: the cache only ever saves time, it never fails a load.

Columns holding Python objects (lists of image paths, media reference dicts) are stored as JSON text and
decoded on load; the names of those columns and every non-frame field of the Run (identity, config, summary,
media index, read status) live in the Parquet schema metadata, so one file is one entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import platformdirs
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.core.run import MediaEntry, ReadStatus, Run, RunRef

CACHE_FORMAT = 3  # bump when the decoded shape changes, so old entries are ignored (3: `logged_nan`)
CACHE_ROOT_OVERRIDE: Path | None = None  # tests and benchmarks may point this elsewhere
_META_KEY = b"experiment_analyzer"


def cache_root() -> Path:
    """The one cache directory of the package (decoded runs under `runs/`, image scores under `quality/`, the
    dashboard's uploads and demo): `$EXPERIMENT_ANALYZER_CACHE` when set, else the platform's user cache
    directory (`platformdirs`: `$XDG_CACHE_HOME/experiment-analyzer`, by default `~/.cache/experiment-analyzer`
    on Linux, `~/Library/Caches/experiment-analyzer` on macOS, `%LOCALAPPDATA%\\experiment-analyzer\\Cache` on
    Windows)."""
    if CACHE_ROOT_OVERRIDE is not None:
        return CACHE_ROOT_OVERRIDE
    env = os.environ.get("EXPERIMENT_ANALYZER_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("experiment-analyzer", appauthor=False))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


_WHOLE_FILE = 1 << 20  # files up to 1 MiB are hashed whole
_EDGE = 64 * 1024  # else the first and last 64 KiB ...
_SLICES, _SLICE = 16, 4096  # ... and 16 slices of 4 KiB spread between them


def fingerprint(source: Path, size: int) -> str:
    """A cheap hash of the file's content (a few hundred KiB read at most; see the module docstring)."""
    h = hashlib.blake2b(digest_size=16)
    with open(source, "rb") as f:
        if size <= _WHOLE_FILE:
            h.update(f.read(_WHOLE_FILE + 1))
            return h.hexdigest()
        h.update(f.read(_EDGE))
        for i in range(1, _SLICES + 1):
            f.seek(_EDGE + (size - 2 * _EDGE) * i // (_SLICES + 1))
            h.update(f.read(_SLICE))
        f.seek(size - _EDGE)
        h.update(f.read(_EDGE))
    return h.hexdigest()


def source_id(source: Path) -> str:
    """What an entry of a local file records as its source (checked on load)."""
    return f"file:{source.resolve()}"


def entry_path(source: Path, keys: Iterable[str] | None) -> Path:
    """Cache file for `source` as it is now (path + size + mtime + content sample) and the requested keys."""
    st = source.stat()
    view = "*" if keys is None else "\x00".join(sorted(set(keys)))
    prefix = _digest(f"{source.resolve()}\x01{view}")
    version = _digest(f"{st.st_size}\x01{st.st_mtime_ns}\x01{fingerprint(source, st.st_size)}\x01{CACHE_FORMAT}")
    return cache_root() / "runs" / f"{prefix}-{version}.parquet"


def entry_for(identity: str, version: str, keys: Iterable[str] | None) -> Path:
    """Cache file for a run that is not a local file (a cloud run): `version` changes when its data does."""
    view = "*" if keys is None else "\x00".join(sorted(set(keys)))
    prefix = _digest(f"{identity}\x01{view}")
    stamp = _digest(f"{version}\x01{CACHE_FORMAT}")
    return cache_root() / "runs" / f"{prefix}-{stamp}.parquet"


def _is_null(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _json_default(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def _encode_object_columns(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    cols = [c for c in df.columns if df[c].dtype == object]
    if not cols:
        return df, []
    enc = {c: [None if _is_null(x) else json.dumps(x, default=_json_default) for x in df[c].to_numpy()] for c in cols}
    return df.assign(**{c: pd.Series(v, index=df.index, dtype=object) for c, v in enc.items()}), cols


def _decode_object_columns(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    nan = float("nan")
    for c in cols:
        if c in df.columns:
            df[c] = pd.Series(
                [nan if x is None or x is pd.NA or _is_null(x) else json.loads(x) for x in df[c].to_numpy()],
                index=df.index,
                dtype=object,
            )
    return df


def _meta(run: Run, json_cols: list[str], entry: str, source: str | None) -> dict:
    ref = run.ref
    return {
        "entry": entry,
        "source": source,
        "ref": {
            "source": ref.source,
            "locator": ref.locator,
            "run_id": ref.run_id,
            "name": ref.name,
            "project": ref.project,
            "entity": ref.entity,
            "state": ref.state,
            "created": ref.created.isoformat() if ref.created else None,
        },
        "config": run.config,
        "summary": run.summary,
        "media": [[m.step, m.key, m.path] for m in run.media],
        "files_dir": str(run.files_dir) if run.files_dir is not None else None,
        "tags": run.tags,
        "notes": run.notes,
        "exit_code": run.exit_code,
        "status": {
            "truncated": run.status.truncated,
            "skipped_records": run.status.skipped_records,
            "errors": run.status.errors[:100],
            "format_version": run.status.format_version,
            "bytes_read": run.status.bytes_read,
        },
        "json_columns": json_cols,
        "logged_nan": {k: v.tolist() for k, v in run.logged_nan.items()},
    }


def save(run: Run, target: Path, source: str | None = None) -> bool:
    """Write `run` to `target` atomically, recording the entry's own name and `source` (see `load`); drop older
    entries of the same file. False when not writable."""
    if getattr(run, "history_is_sparse", False) or any(isinstance(dt, pd.SparseDtype) for dt in run.history.dtypes):
        return False  # Parquet has no sparse columns, and densifying is what the sparse layout avoids
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        frame, json_cols = _encode_object_columns(run.history)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = json.dumps(_meta(run, json_cols, target.name, source), default=_json_default)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: meta.encode()})
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(table, tmp)
        os.replace(tmp, target)
        prefix = target.name.split("-", 1)[0]
        for old in target.parent.glob(f"{prefix}-*.parquet"):
            if old != target:
                old.unlink(missing_ok=True)
        return True
    except (OSError, pa.ArrowException, TypeError, ValueError):
        return False


def load(target: Path, columns: list[str] | None = None, source: str | None = None) -> Run | None:
    """The cached Run at `target` (only `columns` of its history when given), or None when absent, unreadable,
    or not made for this name and `source` (an entry copied from another run is never served)."""
    if not target.is_file():
        return None
    try:
        pf = pq.ParquetFile(target)
        meta = json.loads(pf.schema_arrow.metadata[_META_KEY])
        if meta.get("entry") != target.name or (source is not None and meta.get("source") != source):
            return None
        if columns is not None:
            have = set(pf.schema_arrow.names)
            columns = [c for c in columns if c in have]
        frame = pf.read(columns=columns).to_pandas()
    except (OSError, KeyError, ValueError, TypeError, pa.ArrowException):
        return None
    frame = _decode_object_columns(frame, meta["json_columns"])
    r, s = meta["ref"], meta["status"]
    created = dt.datetime.fromisoformat(r["created"]) if r["created"] else None
    ref = RunRef(
        source=r["source"],
        locator=r["locator"],
        run_id=r["run_id"],
        name=r["name"],
        project=r["project"],
        entity=r["entity"],
        state=r["state"],
        created=created,
    )
    status = ReadStatus(
        truncated=s["truncated"],
        skipped_records=s["skipped_records"],
        errors=list(s["errors"]),
        format_version=s["format_version"],
        bytes_read=s["bytes_read"],
    )
    return Run(
        ref=ref,
        config=meta["config"],
        summary=meta["summary"],
        history=frame,
        media=[MediaEntry(step=a, key=b, path=c) for a, b, c in meta["media"]],
        files_dir=Path(meta["files_dir"]) if meta["files_dir"] else None,
        tags=meta["tags"],
        notes=meta["notes"],
        exit_code=meta["exit_code"],
        status=status,
        logged_nan={k: np.asarray(v) for k, v in meta.get("logged_nan", {}).items()},
    )
