"""On-disk cache of the metrics-only analysis, so a freshly started server draws its first Overview without running
the detectors (and without importing scipy and ruptures) for a run it has analysed before.

The analysis of the metrics (`analyze_metrics`: what the Overview draws first) takes about a second on the demo and
much longer on long runs; reading it back takes milliseconds. One pickle file per run location under
`<cache dir>/analysis/` (the package's cache directory, `analysis.sources.cache.cache_root`), named after a hash of
the location and a hash of everything the analysis depends on: the run's fingerprint (size + mtime of its file),
the active config (JSON), the analysis code itself (size + mtime of every module of the `analysis` package) and
`FORMAT`. The run itself is not stored (the decoded run has its own Parquet cache): an entry is joined to the
`Run` the caller loaded. Only finished local runs are stored (a live run changes with every write; a cloud run's
fingerprint is a refresh counter). An older entry of the same location and config (an older version of the run
file, older code) is removed when a new one is written.

Pickle runs code when it is loaded, so an entry is loaded only from a cache directory owned by the current user
and not writable by others, and only when the file itself is owned by the current user (POSIX). A cache that
cannot be read or written is skipped silently: it only ever saves time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import pickle
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.sources.cache import cache_root

if TYPE_CHECKING:
    from analysis.core.run import Run
    from analysis.findings.pipeline import RunAnalysis

__all__ = ["FORMAT", "code_version", "entry_path", "load_analysis", "store_analysis"]

FORMAT = 1  # bump when what is stored changes shape


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@functools.cache
def code_version() -> str:
    """A hash of the `analysis` package's modules (path, size, mtime): an edited detector invalidates every entry."""
    import analysis

    root = Path(analysis.__file__).resolve().parent
    parts = []
    for path in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            parts.append(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return _digest("\n".join(parts))


def _folder() -> Path:
    return cache_root() / "analysis"


def entry_path(location: str, fingerprint: str, config_json: str) -> Path | None:
    """The cache file of one run's metrics analysis under one config, or None when the run is not a local file
    or folder (a cloud run, an upload's `file#run`) and so is not cached."""
    if location.startswith("wandb://") or not Path(location).exists():
        return None
    version = _digest(f"{fingerprint}\x01{code_version()}\x01{FORMAT}")
    return _folder() / f"{_digest(location)}-{_digest(config_json)}-{version}.pickle"


def _trusted(path: Path) -> bool:
    """Whether `path` and its folder belong to this user and no one else can write them (always true off POSIX)."""
    if not hasattr(os, "getuid"):
        return True
    try:
        for p in (path.parent, path):
            st = p.stat()
            if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
    except OSError:
        return False
    return True


def load_analysis(location: str, fingerprint: str, config_json: str, run: Run) -> RunAnalysis | None:
    """The stored metrics analysis of `run` (the run loaded from `location` at `fingerprint`), or None."""
    path = entry_path(location, fingerprint, config_json)
    if path is None or not path.is_file() or not _trusted(path):
        return None
    try:
        with open(path, "rb") as f:
            stored = pickle.load(f)  # our own cache file, checked by _trusted
    except Exception:  # a truncated or foreign file: recomputed and overwritten
        return None
    from analysis.findings.pipeline import RunAnalysis

    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        return None
    try:
        return RunAnalysis(run=run, **stored["fields"])
    except TypeError:  # fields of another shape
        return None


def store_analysis(location: str, fingerprint: str, config_json: str, analysis: RunAnalysis) -> Path | None:
    """Write the metrics analysis of a finished local run (returns the file, or None when nothing was written)."""
    if analysis.run.exit_code is None or analysis.data_dir is not None:
        return None  # a live run (it grows) or an analysis with image scores (not what is cached here)
    path = entry_path(location, fingerprint, config_json)
    if path is None:
        return None
    fields = {f.name: getattr(analysis, f.name) for f in dataclasses.fields(analysis) if f.name != "run"}
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"format": FORMAT, "fields": fields}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        tmp = None
        prefix = path.name.rsplit("-", 1)[0]  # location and config
        for old in path.parent.glob(f"{prefix}-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
    except Exception:  # read-only or full disk, an unpicklable field: the cache only ever saves time
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return None
    return path
