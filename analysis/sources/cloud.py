"""Runs on wandb cloud (or a self-hosted server) through the real `wandb.Api` client.

Needs an API key: `$WANDB_API_KEY` or `wandb login` (netrc); `$WANDB_BASE_URL` points at a self-hosted server.
Locations are `entity/project/run_id` (`wandb://entity/project/run_id` in `open_run`). The full history (never
the UI's sampled points) is read once for all keys, from the server's Parquet exports when the installed wandb
can download them, else with one `scan_history` (see `_history`); `keys=` keeps only those keys. Media files are
downloaded on demand into `<cache dir>/cloud/<entity>/<project>/<run id>/files/` (see `media_path`).

Every failure a user can cause (no key, a revoked key, no network, an unknown project or run) is raised as
SourceUnavailable or RunNotFound with one clear sentence. wandb is imported only when this module is used.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.errors import RunNotFound, SourceUnavailable
from analysis.core.run import ReadStatus, Run, RunRef, RunState
from analysis.sources import cache as disk_cache
from analysis.sources._history import media_index, strip_wandb, tidy_history
from analysis.sources._nan import LOGGED_NAN, floats_marking_nan, split_logged_nan

_STATES: dict[str, RunState] = {
    "finished": "finished",
    "failed": "failed",
    "running": "running",
    "crashed": "crashed",
    "killed": "failed",
    "preempted": "crashed",
}
_APIS: dict[tuple[str, str], Any] = {}


def _where() -> str:
    return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def _unavailable(exc: BaseException) -> SourceUnavailable:
    text = _describe(exc).lower()
    if any(w in text for w in ("401", "unauthorized", "unauthorised", "permission", "api key", "api_key")):
        return SourceUnavailable(f"wandb at {_where()} refused the API key (unauthorised): {_describe(exc)}")
    return SourceUnavailable(f"cannot reach wandb at {_where()}: {_describe(exc)}")


def api(timeout: int = 30) -> Any:
    """A `wandb.Api` for the configured server and key (one per server and key, reused)."""
    key = os.environ.get("WANDB_API_KEY")
    base = os.environ.get("WANDB_BASE_URL")
    cache_key = (base or "", key or "")
    if cache_key in _APIS:
        return _APIS[cache_key]
    try:
        import wandb
    except ImportError as exc:  # pragma: no cover - wandb is a runtime dependency
        raise SourceUnavailable("the wandb package is not installed") from exc
    try:
        client = wandb.Api(overrides={"base_url": base} if base else None, timeout=timeout, api_key=key)
    except Exception as exc:
        if key is None and "api" in str(exc).lower() and "key" in str(exc).lower():
            raise SourceUnavailable("no wandb API key: set WANDB_API_KEY or run `wandb login`") from exc
        raise _unavailable(exc) from exc
    _APIS[cache_key] = client
    return client


def _split(path: str) -> tuple[str, str, str]:
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) == 4 and parts[2] == "runs":  # the web UI's entity/project/runs/id
        parts = [parts[0], parts[1], parts[3]]
    if len(parts) != 3:
        raise RunNotFound(f"{path!r}: a wandb cloud run is entity/project/run_id")
    return parts[0], parts[1], parts[2]


def _created(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        ts = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


def _ref(r: Any, entity: str, project: str) -> RunRef:
    return RunRef(
        source="cloud",
        locator=f"{entity}/{project}/{r.id}",
        run_id=r.id,
        name=r.name or r.id,
        project=project,
        entity=entity,
        state=_STATES.get(str(r.state), "unknown"),
        created=_created(getattr(r, "created_at", None)),
    )


def list_cloud_runs(entity: str, project: str, *, per_page: int = 50, limit: int | None = None) -> list[RunRef]:
    """Runs of `entity/project`, newest first, fetched `per_page` at a time (up to `limit`)."""
    client = api()
    out: list[RunRef] = []
    try:
        for r in client.runs(f"{entity}/{project}", order="-created_at", per_page=per_page):
            out.append(_ref(r, entity, project))
            if limit is not None and len(out) >= limit:
                break
    except Exception as exc:
        if "not found" in str(exc).lower() or "could not find" in str(exc).lower():
            raise RunNotFound(f"wandb project {entity}/{project} not found at {_where()}") from exc
        raise _unavailable(exc) from exc
    return out


PAGE_SIZE = 1_000  # rows per scan page (wandb's default: a server may sample larger live pages)
_NON_FINITE = {"NaN": LOGGED_NAN, "Infinity": math.inf, "-Infinity": -math.inf}


def _history(r: Any, keys: list[str] | None) -> pd.DataFrame:
    """The run's full history (only `keys`, `_step` and `global_step` when `keys` is given), read once.

    Tried in order, each only when the one before failed or does not exist in the installed wandb:
    1. the server's Parquet exports downloaded whole (`download_history_exports`, wandb >= 0.24.1) and read
       with pyarrow, plus one scan of the steps logged after the export (a run still running);
    2. one scan of every key: `scan_history`, itself Parquet-backed since wandb 0.27.1 (`beta_scan_history`
       from 0.23.1), else the paged GraphQL scan;
    3. one unsampled GraphQL `history` read (a server without Parquet exports, where 1 and 2 fail);
    4. one `scan_history` per key joined on `_step` (what this module did before).
    The error reported when all fail is the scan's (2).
    """
    wanted = None if keys is None else list(dict.fromkeys([*keys, "global_step"]))
    errors: list[Exception] = []
    reads = [_read_exports] if hasattr(r, "download_history_exports") else []
    for read in (*reads, _scan_all, _graphql_all):
        try:
            return read(r, wanted)
        except Exception as exc:
            errors.append(exc)
    try:
        return _history_per_key(r, keys)
    except Exception:
        scan_error, last_read = errors[len(reads)], errors[-1]  # the scan's error: the one a wandb user knows
        message = _unavailable(scan_error).args[0]
        if message.startswith("cannot reach"):  # it answered for the run itself: it refused the history
            message = f"wandb at {_where()} could not serve the run's history: {_describe(scan_error)}"
        if _describe(last_read) != _describe(scan_error):
            message += f"; the single GraphQL history read failed too: {_describe(last_read)}"
        raise SourceUnavailable(message) from scan_error


def _read_exports(r: Any, keys: list[str] | None) -> pd.DataFrame:
    """History from the run's Parquet exports (downloaded to a temporary folder) and its unexported tail."""
    import tempfile

    root = disk_cache.cache_root() / "cloud"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="history-exports-", dir=root) as tmp:
        result = r.download_history_exports(tmp, require_complete_history=False)
        if result.errors:
            raise SourceUnavailable(f"the history export could not be downloaded: {result.errors}")
        parts = [parquet_frame(Path(p), keys) for p in sorted(result.paths)]
    tail: list[dict] = []
    if result.contains_live_data:  # steps logged since the export: one scan of that step range
        last = max((int(f["_step"].max()) for f in parts if len(f)), default=-1)
        scan = r.scan_history(page_size=PAGE_SIZE, min_step=last + 1, **_cache_off(r))
        tail = list(scan)
    if tail or not parts:
        parts.append(history_frame(tail, keys))
    frame = pd.concat([f for f in parts if len(f.columns)], ignore_index=True, sort=False) if parts else None
    if frame is None or not len(frame.columns):
        return history_frame([], keys)
    for col in frame.columns:
        if _needs_tidy(frame[col]):
            frame[col] = _tidy_column(frame[col])
    frame["_step"] = frame["_step"].astype("int64")
    frame = frame.drop_duplicates(subset="_step", keep="last").sort_values("_step", kind="stable")
    return frame.reset_index(drop=True)


def parquet_frame(path: Path, keys: list[str] | None) -> pd.DataFrame:
    """One Parquet history export as a frame: `_step` and `keys` (every column when None), and with `keys`
    only the rows logging at least one of them (a logged NaN counts, a null does not)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if keys is not None:
        names = ["_step", *(k for k in keys if k != "_step" and k in names)]
    table = pq.read_table(path, columns=names)
    if keys is not None:
        logged = None
        for name in names[1:]:
            valid = pc.is_valid(table[name])
            logged = valid if logged is None else pc.or_(logged, valid)
        table = table.filter(logged) if logged is not None else table.slice(0, 0)
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for name in table.column_names:
        col = table[name]
        marked = floats_marking_nan(col)  # a stored NaN is a logged one: `LOGGED_NAN` until the steps are known
        if marked is not None:
            columns[name] = pd.Series(marked)
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            columns[name] = col.to_pandas()  # nulls -> NaN (ints with nulls -> float64, as the JSON path gives)
        else:  # lists, structs (media), text, bools: plain Python values
            columns[name] = pd.Series(col.to_pylist())  # dtype inferred as for JSON rows (text -> str)
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def read_mode(r: Any) -> str:
    """How `_scan_all` reads this client's history: "parquet" (the Parquet-backed scan) or "scan"."""
    import inspect

    try:
        if "use_cache" in inspect.signature(r.scan_history).parameters:
            return "parquet"  # wandb-core's history reader: Parquet exports plus the live tail
    except (TypeError, ValueError):  # pragma: no cover - an uninspectable client method
        pass
    return "parquet-beta" if hasattr(r, "beta_scan_history") else "scan"


def _cache_off(r: Any) -> dict[str, Any]:
    # wandb's own Parquet file cache is keyed on the run only, so a run exported again since would be read
    # stale; ended runs are cached by this package (see open_cloud_run) instead
    return {"use_cache": False} if read_mode(r) == "parquet" else {}


def _scan_all(r: Any, keys: list[str] | None) -> pd.DataFrame:
    """Every row and key of the run in one scan (Parquet-backed when the client offers it)."""
    if read_mode(r) == "parquet-beta":
        return history_frame(list(r.beta_scan_history(page_size=PAGE_SIZE)), keys)
    return history_frame(list(r.scan_history(page_size=PAGE_SIZE, **_cache_off(r))), keys)


def _graphql_all(r: Any, keys: list[str] | None) -> pd.DataFrame:
    """Every row in one GraphQL `history` query; refused when the server sampled it (fewer rows than logged)."""
    expected = int(getattr(r, "_attrs", {}).get("historyLineCount") or 0)
    rows = r.history(samples=max(int(r.lastHistoryStep) + 1, expected, 1), pandas=False)
    if len(rows) < expected:
        raise SourceUnavailable(f"the server sampled the history ({len(rows)} of {expected} rows)")
    return history_frame(list(rows), keys)


def _history_per_key(r: Any, keys: list[str] | None) -> pd.DataFrame:
    """One `scan_history` per key joined on `_step` (the slow path: the last fallback, and the benchmark's baseline).

    scan_history(keys=[a, b]) only returns rows holding every key, and per-batch keys are logged in separate
    rows, hence one scan per key."""
    if keys is None:
        return history_frame(list(r.scan_history(page_size=PAGE_SIZE)), None)
    frame: pd.DataFrame | None = None
    for k in dict.fromkeys([*keys, "global_step"]):
        part = history_frame(list(r.scan_history(keys=[k], page_size=PAGE_SIZE)), [k])
        if not len(part):
            continue
        frame = part if frame is None else frame.merge(part, on="_step", how="outer")
    if frame is None:
        return pd.DataFrame({"_step": pd.Series([], dtype="int64")})
    return frame.sort_values("_step").reset_index(drop=True)


def history_frame(rows: list[dict], keys: list[str] | None) -> pd.DataFrame:
    """History rows as the API returned them -> one frame, whichever read produced them.

    `keys`: keep `_step` and these columns, and only the rows logging at least one of them. A key a row did not
    log is missing (None in Parquet rows, absent in JSON rows); the JSON strings "NaN" / "Infinity" /
    "-Infinity" of numeric columns become floats (Parquet rows already hold floats); `None` fields of a logged
    dict (a media value read from a Parquet struct) are dropped; a step read twice (a page straddling the end of
    the Parquet export and the live rows) is kept once.
    """
    # A key a row did not log is absent or None; a logged NaN is a float NaN (a Parquet-backed scan, a client that
    # parsed the JSON `NaN` token) or the text "NaN" (`_tidy_column`): `LOGGED_NAN` until the steps are known.
    rows = [_mark_nan(row) for row in rows]
    if keys is not None:
        rows = [row for row in rows if any(row.get(k) is not None for k in keys)]
        present = {k for row in rows for k in row}
        columns = ["_step", *(k for k in dict.fromkeys(keys) if k != "_step" and k in present)]
        frame = pd.DataFrame.from_records(rows, columns=columns)
    else:
        frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame({"_step": pd.Series([], dtype="int64")})
    if "_step" not in frame.columns:
        frame["_step"] = pd.Series(range(len(frame)), dtype="int64")
    for col in frame.columns:
        if _needs_tidy(frame[col]):
            frame[col] = _tidy_column(frame[col])
    if frame["_step"].notna().all():
        frame["_step"] = frame["_step"].astype("int64")
    frame = frame.drop_duplicates(subset="_step", keep="last")
    return frame.sort_values("_step", kind="stable").reset_index(drop=True)


def _mark_nan(row: dict) -> dict:
    """`row` with its float NaN values (logged NaNs) as `LOGGED_NAN`; the same dict when it has none."""
    if not any(type(v) is float and v != v for v in row.values()):
        return row
    return {k: LOGGED_NAN if type(v) is float and v != v else v for k, v in row.items()}


def _needs_tidy(col: pd.Series) -> bool:
    return col.dtype == object or pd.api.types.is_string_dtype(col.dtype)


def _tidy_column(col: pd.Series) -> pd.Series:
    """Numbers with "NaN" / "Infinity" texts -> float64; elsewhere None -> NaN and dicts without None fields."""
    values = col.tolist()
    numeric = True
    seen = False
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        seen = True
        if isinstance(v, bool) or not (isinstance(v, int | float) or (isinstance(v, str) and v in _NON_FINITE)):
            numeric = False
            break
    if numeric and seen:
        return pd.Series(  # "NaN" is a logged NaN: `LOGGED_NAN` until the steps are known (`split_logged_nan`)
            [math.nan if v is None else _NON_FINITE.get(v, v) if isinstance(v, str) else float(v) for v in values],
            index=col.index,
            dtype="float64",
        )
    if col.dtype != object:  # text
        return col
    out = [
        math.nan if v is None else {k: x for k, x in v.items() if x is not None} if isinstance(v, dict) else v
        for v in values
    ]
    return pd.Series(out, index=col.index, dtype=object)


def open_cloud_run(path: str, *, keys: Iterable[str] | None = None, cache: bool = True) -> Run:
    """The run at `entity/project/run_id`: identity, config, summary and its full (unsampled) history.

    With `cache`, the history of a run that has ended (finished, failed, crashed) is kept on disk keyed on its
    last step, so reopening it costs one metadata query; a running run is always fetched.
    """
    entity, project, run_id = _split(path)
    keys = None if keys is None else list(dict.fromkeys(keys))
    client = api()
    try:
        r = client.run(f"{entity}/{project}/{run_id}")
        _ = r.state  # force the lazy load: a missing run fails here, not later
    except Exception as exc:
        text = str(exc).lower()
        if "not found" in text or "could not find" in text or "nonetype" in text:
            raise RunNotFound(f"no run {entity}/{project}/{run_id} at {_where()}") from exc
        raise _unavailable(exc) from exc
    entry = None
    ident = f"wandb-cloud:{_where()}:{entity}/{project}/{run_id}"  # what the cache entry is for (checked on load)
    if cache and _STATES.get(str(r.state)) in ("finished", "failed", "crashed"):
        try:
            version = f"{r.lastHistoryStep}|{r.state}|{getattr(r, 'heartbeat_at', '')}"
        except Exception as exc:
            raise _unavailable(exc) from exc
        entry = disk_cache.entry_for(ident, version, keys)
        hit = disk_cache.load(entry, source=ident)
        if hit is not None:
            return hit
    try:
        history = _history(r, keys)
    except SourceUnavailable:
        raise
    except Exception as exc:
        raise _unavailable(exc) from exc
    if "_step" in history.columns and history["_step"].notna().all():
        history["_step"] = history["_step"].astype("int64")
    history, logged_nan = split_logged_nan(history, _marked_columns(history))
    history = tidy_history(history)
    summary = strip_wandb(dict(r.summary_metrics or {}))
    config = strip_wandb(dict(r.config or {}))
    run = Run(
        ref=_ref(r, entity, project),
        config=config,
        summary=summary,
        history=history,
        media=media_index(history),
        files_dir=media_dir(entity, project, run_id),
        tags=list(r.tags or []),
        notes=r.notes or "",
        exit_code=None,
        status=ReadStatus(),
        logged_nan=logged_nan,
    )
    if entry is not None:
        disk_cache.save(run, entry, ident)
    return run


def _marked_columns(history: pd.DataFrame) -> set[str]:
    """The float columns holding a logged NaN's stand-in (`LOGGED_NAN`, the most negative float: a column's minimum
    when present, unless the column also holds -inf), found with one reduction per column and no copy of the frame."""
    out: set[str] = set()
    for name, low in history.min(numeric_only=True).items():
        if low == LOGGED_NAN or (low == -np.inf and bool((history[name].to_numpy() == LOGGED_NAN).any())):
            out.add(str(name))
    return out


def media_dir(entity: str, project: str, run_id: str) -> Path:
    return disk_cache.cache_root() / "cloud" / entity / project / run_id / "files"


def download_media(run: Run, rel: str, target: Path) -> Path:
    """Fetch one media file of a cloud run into `target` (its place under the run's media cache)."""
    entity, project, run_id = _split(run.ref.locator)
    try:
        f = api().run(f"{entity}/{project}/{run_id}").file(rel)
        root = Path(run.files_dir) if run.files_dir else media_dir(entity, project, run_id)
        root.mkdir(parents=True, exist_ok=True)
        f.download(root=str(root), replace=True)
    except Exception as exc:
        raise _unavailable(exc) from exc
    if not target.is_file():
        raise RunNotFound(f"{rel!r} is not a file of run {run.ref.locator}")
    return target
