"""Runs on wandb cloud (or a self-hosted server) through the real `wandb.Api` client.

Needs an API key: `$WANDB_API_KEY` or `wandb login` (netrc); `$WANDB_BASE_URL` points at a self-hosted server.
Locations are `entity/project/run_id` (`wandb://entity/project/run_id` in `open_run`). The full history is read
with `scan_history` (never the UI's sampled points); `keys=` fetches only those keys. Media files are downloaded
on demand into `<cache dir>/cloud/<entity>/<project>/<run id>/files/` (see `media_path`).

Every failure a user can cause (no key, a revoked key, no network, an unknown project or run) is raised as
SourceUnavailable or RunNotFound with one clear sentence. wandb is imported only when this module is used.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.core.errors import RunNotFound, SourceUnavailable
from analysis.core.run import ReadStatus, Run, RunRef, RunState
from analysis.sources import cache as disk_cache
from analysis.sources._history import media_index, strip_wandb, tidy_history

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


def _history(r: Any, keys: list[str] | None) -> pd.DataFrame:
    if keys is None:
        rows = list(r.scan_history(page_size=1000))
        return pd.DataFrame.from_records(rows) if rows else pd.DataFrame({"_step": pd.Series([], dtype="int64")})
    # scan_history(keys=[a, b]) only returns rows holding every key; per-batch keys are logged in separate rows,
    # so fetch key by key and join on the step
    frame: pd.DataFrame | None = None
    for k in dict.fromkeys([*keys, "global_step"]):
        rows = list(r.scan_history(keys=[k], page_size=1000))
        if not rows:
            continue
        part = pd.DataFrame.from_records(rows)
        frame = part if frame is None else frame.merge(part, on="_step", how="outer")
    if frame is None:
        return pd.DataFrame({"_step": pd.Series([], dtype="int64")})
    return frame.sort_values("_step").reset_index(drop=True)


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
    except Exception as exc:
        raise _unavailable(exc) from exc
    if "_step" in history.columns and history["_step"].notna().all():
        history["_step"] = history["_step"].astype("int64")
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
    )
    if entry is not None:
        disk_cache.save(run, entry, ident)
    return run


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
