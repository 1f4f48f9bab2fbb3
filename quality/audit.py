"""Score many images: a folder scan, parallel across processes (or a Dask cluster), with an on-disk cache.

Bad files never raise: each becomes a row with `error` set (a file name that is not valid UTF-8 too, shown with
backslash escapes). Results are cached in SQLite under `cache_dir` (`quality.score_cache`), keyed on the file's real
path, size, mtime and the scorer version, so re-auditing an unchanged folder only costs a `stat` per file; a cache
that cannot be read or written is skipped (or rebuilt, when corrupt) with a warning. `apply_thresholds` turns scores into verdicts without re-scoring (the app's sliders call it on every change).

Engines: `engine="local"` scores in a pool of `workers` processes (spawned, OpenCV single-threaded in each; fewer
than 24 uncached images are scored in-process). `engine="dask"` submits chunks to the `distributed` scheduler at
`scheduler_address` (or a `LocalCluster` it starts and stops when none is given); the workers must see the same
file paths and be able to `import quality` (same project checkout on their PYTHONPATH). Results are identical
across engines: scores are deterministic functions of the pixels.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from analysis.core.config import DataQualityConfig
from analysis.core.errors import AnalyzerError, ImageLoadError
from analysis.core.processes import spawn_pool, workers_without_main
from analysis.core.vocabulary import QualityReason
from quality.filter import (
    MIN_ORIENTATION_CONFIDENCE,
    QualityFailure,
    blur_reason,
    contrast_reason,
    orientation_reason,
    resolution_reason,
    rotation_reason,
    unreadable_reason,
)
from quality.io import is_image_file, load_image, resolve_under_root
from quality.score_cache import ScoreCache, printable
from quality.scores import score_image

Progress = Callable[[int, int], None]
SCORE_COLUMNS = [
    "width",
    "height",
    "blur_score",
    "rotation_angle",
    "rotation_confidence",
    "orientation",
    "orientation_confidence",
    "brightness",
    "contrast",
    "noise",
]
COLUMNS = ["path", *SCORE_COLUMNS, "error"]
_DEFAULTS = DataQualityConfig()
_INLINE_BELOW = 24  # fewer uncached images than this are scored in-process (pool start-up costs more)


# ----------------------------------------------------------------------------------------------- workers
def _score_path(real_path: str, max_pixels: int) -> dict[str, Any]:
    """Scores of one file, or {'error': message}; never raises."""
    try:
        return dict(score_image(load_image(real_path, max_pixels)), error=None)
    except ImageLoadError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a scorer bug must not kill a whole audit; keep the message
        return {"error": f"{real_path}: scoring failed ({type(exc).__name__}: {exc})"}


def _score_chunk(real_paths: Sequence[str], max_pixels: int) -> list[dict[str, Any]]:
    return [_score_path(p, max_pixels) for p in real_paths]


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


# ----------------------------------------------------------------------------------------------- engines
def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _run_local(
    real: list[str], max_pixels: int, workers: int, on_done: Callable[[list[int], list[dict]], None], index: list[int]
) -> None:
    if workers <= 1 or len(real) < _INLINE_BELOW:
        for i, p in zip(index, real):
            on_done([i], [_score_path(p, max_pixels)])
        return
    size = max(1, min(16, math.ceil(len(real) / (workers * 4))))
    with spawn_pool(workers, initializer=_worker_init) as ex:
        futs = {
            ex.submit(_score_chunk, chunk, max_pixels): idx
            for chunk, idx in zip(_chunks(real, size), _chunks(index, size))
        }
        for fut in as_completed(futs):
            on_done(futs[fut], fut.result())


def _run_dask(
    real: list[str],
    max_pixels: int,
    workers: int | None,
    scheduler_address: str | None,
    on_done: Callable[[list[int], list[dict]], None],
    index: list[int],
) -> None:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError:  # pragma: no cover - dask[distributed] is a runtime dependency
        raise AnalyzerError("engine='dask' needs the 'dask[distributed]' package") from None
    cluster = None
    try:
        if scheduler_address:
            client = Client(scheduler_address, timeout="10s")
        else:
            with workers_without_main():  # the nanny spawns its workers now
                cluster = LocalCluster(
                    n_workers=workers or _default_workers(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            client = Client(cluster)
    except OSError as exc:
        raise AnalyzerError(f"cannot reach the Dask scheduler {scheduler_address!r}: {exc}") from None
    try:
        n = max(1, len(client.scheduler_info().get("workers", {})) or (workers or 1))
        size = max(1, min(32, math.ceil(len(real) / (n * 4))))
        chunks, idxs = _chunks(real, size), _chunks(index, size)
        futs = client.map(_score_chunk, chunks, max_pixels=max_pixels, pure=False)
        where = {f.key: idx for f, idx in zip(futs, idxs)}
        for fut in dask_completed(futs):
            on_done(where[fut.key], fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------------------------- API
def score_images(
    paths: Iterable[str | os.PathLike],
    *,
    root: str | os.PathLike | None = None,
    progress: Progress | None = None,
    cache_dir: str | os.PathLike | None = None,
    engine: Literal["local", "dask"] = "local",
    workers: int | None = None,
    scheduler_address: str | None = None,
    max_pixels: int | None = None,
) -> pd.DataFrame:
    """One row per path (in order): `path` as given, the scores, and `error` (None, or why the file was not scored).

    With `root`, paths are resolved under it and any that escape it become error rows. `progress(done, total)` is
    called as images finish. `engine="dask"` runs on the cluster at `scheduler_address` (a local one if None).
    """
    if engine not in ("local", "dask"):
        raise AnalyzerError(f"unknown engine {engine!r}: use 'local' or 'dask'")
    cap = _DEFAULTS.max_image_pixels if max_pixels is None else int(max_pixels)
    given = [os.fspath(p) for p in paths]
    total = len(given)
    rows: list[dict[str, Any] | None] = [None] * total
    cache = ScoreCache(cache_dir)
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    try:
        keyed: list[tuple[int, str, str]] = []  # (index, real path, cache key)
        for i, p in enumerate(given):
            if printable(p) != p:  # bytes that are not UTF-8 (a Windows archive's file name): say so, go on
                rows[i] = {"error": f"{printable(p)}: the file name is not valid UTF-8; rename the file to score it"}
                continue
            try:
                resolved = resolve_under_root(root, p) if root is not None else Path(p).resolve()
                st = resolved.stat()
            except ImageLoadError as exc:
                rows[i] = {"error": str(exc)}
                continue
            except OSError as exc:
                rows[i] = {"error": f"{p}: {'file not found' if isinstance(exc, FileNotFoundError) else exc}"}
                continue
            keyed.append((i, str(resolved), ScoreCache.key(str(resolved), st, cap)))
        hits = cache.get_many([k for _, _, k in keyed])
        todo = []
        for i, real_path, k in keyed:
            if k in hits:
                rows[i] = hits[k]
            else:
                todo.append((i, real_path, k))
        report(total - len(todo))

        key_of = {i: k for i, _, k in todo}
        pending: list[tuple[str, dict[str, Any]]] = []
        last_flush = time.monotonic()

        def on_done(idx: list[int], results: list[dict[str, Any]]) -> None:
            nonlocal last_flush
            for i, r in zip(idx, results):
                rows[i] = r
                pending.append((key_of[i], r))
            if time.monotonic() - last_flush > 2.0:  # keep finished work if the audit is interrupted
                cache.put_many(pending)
                pending.clear()
                last_flush = time.monotonic()
            report(len(idx))

        index = [i for i, _, _ in todo]
        real_paths = [r for _, r, _ in todo]
        if real_paths:
            if engine == "dask":
                _run_dask(real_paths, cap, workers, scheduler_address, on_done, index)
            else:
                _run_local(real_paths, cap, workers or _default_workers(), on_done, index)
        cache.put_many(pending)
    finally:
        cache.close()
    return _frame(given, rows)


def _frame(given: list[str], rows: list[dict[str, Any] | None]) -> pd.DataFrame:
    data: dict[str, list] = {c: [] for c in COLUMNS}
    for p, r in zip(given, rows):
        r = r or {"error": "not scored"}
        data["path"].append(printable(p))
        for c in SCORE_COLUMNS:
            v = r.get(c)
            data[c].append(np.nan if v is None else v)
        err = r.get("error")
        data["error"].append(printable(err) if isinstance(err, str) else err)
    df = pd.DataFrame(data, columns=COLUMNS)
    for c in ("width", "height"):
        df[c] = df[c].astype("Int64")
    for c in SCORE_COLUMNS[2:]:
        df[c] = df[c].astype("float64")
    df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return df


def scan_folder(root: str | os.PathLike) -> list[str]:
    """Image files under `root` (recursive, sorted), as POSIX paths relative to it. Directory symlinks are not
    followed; file symlinks are listed (and refused later if they point outside the root)."""
    base = Path(root)
    if not base.is_dir():
        raise ImageLoadError(f"{base}: not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(base)
        for f in filenames:
            if is_image_file(f) and not f.startswith("."):
                found.append((rel_dir / f).as_posix())
    return sorted(found)


def audit_folder(root: str | os.PathLike, **kwargs: Any) -> pd.DataFrame:
    """Scores of every image under `root` (recursive); `path` is relative to `root`. Same options as score_images."""
    return score_images(scan_folder(root), root=root, **kwargs)


def thresholds_from_config(cfg: DataQualityConfig) -> dict[str, Any]:
    """Keyword arguments for `apply_thresholds` from the config's `data_quality` section."""
    return {
        "min_resolution": cfg.min_resolution,
        "max_rotation": cfg.max_rotation_degrees,
        "blur_threshold": cfg.blur_threshold,
        "min_contrast": cfg.min_contrast,
    }


def _column(frame: pd.DataFrame, name: str, n: int) -> np.ndarray:
    """A numeric column as float64 (NaN where missing), or all NaN when the frame has no such column (older
    caches and hand-made frames)."""
    if name not in frame:
        return np.full(n, np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def apply_thresholds(
    scores: pd.DataFrame,
    *,
    min_resolution: tuple[int, int] = _DEFAULTS.min_resolution,
    max_rotation: float = _DEFAULTS.max_rotation_degrees,
    blur_threshold: float = _DEFAULTS.blur_threshold,
    min_contrast: float = _DEFAULTS.min_contrast,
) -> pd.DataFrame:
    """A copy of `scores` with `is_acceptable` (bool), `reasons` (list[str], messages) and `reason_codes`
    (list[str], the `QualityReason` value of each message, same order) under these thresholds.

    Vectorised: re-thresholding 10,000 rows takes milliseconds. Error rows are never acceptable (`unreadable`).
    """
    out = scores.copy()
    n = len(out)
    if isinstance(min_resolution, (int, np.integer)):
        min_resolution = (int(min_resolution), int(min_resolution))
    mw, mh = int(min_resolution[0]), int(min_resolution[1])
    err = out["error"].notna().to_numpy() if "error" in out else np.zeros(n, bool)
    w = pd.to_numeric(out["width"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    h = pd.to_numeric(out["height"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    blur = out["blur_score"].to_numpy(dtype="float64", na_value=np.nan)
    rot = out["rotation_angle"].to_numpy(dtype="float64", na_value=np.nan)
    con = out["contrast"].to_numpy(dtype="float64", na_value=np.nan) if "contrast" in out else np.full(n, np.nan)
    bri = out["brightness"].to_numpy(dtype="float64", na_value=np.nan) if "brightness" in out else np.full(n, np.nan)
    ori = _column(out, "orientation", n)
    ori_conf = _column(out, "orientation_confidence", n)
    ok = ~err
    with np.errstate(invalid="ignore"):
        bad_res = ok & ((w < mw) | (h < mh))
        bad_rot = ok & (np.abs(rot) > max_rotation)
        turned = np.round(ori) % 360
        bad_ori = ok & (turned > 0) & (ori_conf >= MIN_ORIENTATION_CONFIDENCE)
        bad_blur = ok & (blur < blur_threshold)
        bad_con = ok & (con < min_contrast) if min_contrast > 0 else np.zeros(n, bool)
    failures: list[list[QualityFailure | None]] = [[] for _ in range(n)]
    errors = out["error"].to_numpy(dtype=object) if "error" in out else [None] * n
    for i in np.flatnonzero(err):
        failures[i].append(unreadable_reason(errors[i]))
    for i in np.flatnonzero(bad_res):
        failures[i].append(resolution_reason(int(w[i]), int(h[i]), (mw, mh)))
    for i in np.flatnonzero(bad_rot):
        failures[i].append(rotation_reason(float(rot[i]), float(max_rotation)))
    for i in np.flatnonzero(bad_ori):
        failures[i].append(orientation_reason(float(ori[i]), float(ori_conf[i])))
    for i in np.flatnonzero(bad_blur):
        failures[i].append(blur_reason(float(blur[i]), float(blur_threshold)))
    for i in np.flatnonzero(bad_con):
        failures[i].append(contrast_reason(float(con[i]), float(bri[i]), float(min_contrast)))
    kept = [[f for f in row if f is not None] for row in failures]  # the masks above already decided: never None
    out["is_acceptable"] = ok & ~(bad_res | bad_rot | bad_ori | bad_blur | bad_con)
    out["reasons"] = [[f.message for f in row] for row in kept]
    out["reason_codes"] = [[f.code.value for f in row] for row in kept]
    return out


# A text-line or word crop is at least this many times longer than thick: looser than the line strips that
# `quality.scores` reads enlarged (4), because a recogniser's word crops count here too ...
_CROP_ASPECT = 2.5
_MIN_LINE_HEIGHT = 16  # ... and at least this thick (px): thinner crops are too small to read anyway
_LINE_HINT_SHARE = 0.5  # the hint is given when line crops are at least this share of the resolution failures


@dataclass(frozen=True)
class LineCropHint:
    """Text-line crops that fail the minimum resolution on their short side alone, and the side that keeps them."""

    count: int  # line crops flagged for resolution and nothing else
    flagged: int  # every image flagged for resolution
    keeping_side: int  # a minimum short side (px) at which all of them pass

    @property
    def sentence(self) -> str:
        return (
            f"{self.count} of the {self.flagged} images below the minimum resolution are text-line crops (at least "
            f"{_CROP_ASPECT:g} times longer than thick) that fail on their thickness alone: a recogniser's line "
            f"crops are 20-60 px tall. A minimum height (and width, for crops on their side) of "
            f"{self.keeping_side} px keeps them."
        )


def line_crop_hint(flagged: pd.DataFrame, min_resolution: tuple[int, int]) -> LineCropHint | None:
    """The hint for a folder of text-line crops checked against a page-sized minimum resolution (the handbook's
    100 x 100 flagged all 69 line crops of the real image benchmark), or None when line crops are not most of the
    resolution failures. `flagged` is `apply_thresholds`' output."""
    if flagged.empty or "reason_codes" not in flagged:
        return None
    codes = flagged["reason_codes"].tolist()
    by_resolution = np.array([QualityReason.RESOLUTION.value in c for c in codes], dtype=bool)
    only = np.array([c == [QualityReason.RESOLUTION.value] for c in codes], dtype=bool)
    w = pd.to_numeric(flagged["width"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    h = pd.to_numeric(flagged["height"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    mw, mh = min_resolution
    with np.errstate(invalid="ignore"):
        wide = (w >= _CROP_ASPECT * h) & (w >= mw) & (h >= _MIN_LINE_HEIGHT)  # fails on height only
        tall = (h >= _CROP_ASPECT * w) & (h >= mh) & (w >= _MIN_LINE_HEIGHT)  # a line crop on its side
    lines = only & (wide | tall)
    n_flagged, n_lines = int(by_resolution.sum()), int(lines.sum())
    if n_lines == 0 or n_lines < _LINE_HINT_SHARE * n_flagged:
        return None
    keeping = int(np.nanmin(np.minimum(w, h)[lines]))
    return LineCropHint(n_lines, n_flagged, keeping)
