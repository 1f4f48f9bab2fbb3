"""The audit's on-disk score cache: SQLite, key -> JSON scores. Optional by design: a cache that cannot be used
(read-only or missing folder, full disk, a corrupt or foreign file) is skipped with a warning, or rebuilt when its
file is corrupt, and the audit goes on without it: it only ever saves time.

Two tables share the file and the key scheme: `scores` (the quality scores) and `hashes` (content and perceptual
hashes, `quality.duplicates`). The file carries `SCHEMA_VERSION` as SQLite's `user_version`: a cache written by an
older layout is emptied and rebuilt on open (never misread); one written by a newer program is left alone and
skipped.

Keys are text, and SQLite needs valid UTF-8: a path that is not (a file name from a Windows archive, decoded by
Python with `surrogateescape`) is keyed by its bytes written with backslash escapes, which is both valid and unique.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from quality.scores import SCORER_VERSION

log = logging.getLogger(__name__)
CACHE_FILE = "quality_scores.sqlite"
# 1: `scores` only (files without a user_version read 0); 2: plus `hashes`. Bump on any change of layout or values.
SCHEMA_VERSION = 2
TABLES = ("scores", "hashes")


class _NewerCache(sqlite3.OperationalError):
    """The file was written by a newer layout: skip it rather than destroy it."""


def printable(text: str) -> str:
    """`text` as valid UTF-8: bytes that were not (kept by Python as lone surrogates) become backslash escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class ScoreCache:
    """SQLite table key -> JSON scores. Key = real path + size + mtime_ns + scorer version + pixel cap.

    Every database error disables the cache for the rest of the audit (with one warning) instead of raising."""

    def __init__(self, cache_dir: str | os.PathLike | None) -> None:
        self.db: sqlite3.Connection | None = None
        if cache_dir is None:
            return
        path = Path(cache_dir) / CACHE_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = self._open(path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not path.is_file():
                self._give_up(f"cannot open the quality score cache {path}", exc)
                return
            self._rebuild(path, exc)
        except OSError as exc:
            self._give_up(f"cannot open the quality score cache {path}", exc)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30)
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise _NewerCache(f"written by a newer version (layout {version}, this program reads {SCHEMA_VERSION})")
            if version != SCHEMA_VERSION:
                with db:  # an older layout: empty it and start again (one transaction, so no half-built file)
                    db.execute("BEGIN IMMEDIATE")
                    if int(db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION:
                        return db  # another process rebuilt it while this one waited for the lock
                    for table in TABLES:
                        db.execute(f"DROP TABLE IF EXISTS {table}")
                    for table in TABLES:
                        db.execute(f"CREATE TABLE {table} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for table in TABLES:
                db.execute(f"SELECT key, value FROM {table} LIMIT 1").fetchall()
        except BaseException:
            db.close()
            raise
        return db

    def _rebuild(self, path: Path, why: Exception) -> None:
        """A corrupt (or foreign) cache file: move it aside and start an empty one."""
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
            self.db = self._open(path)
            log.warning(
                "the quality score cache %s was unreadable (%s); moved it to %s and started a new one",
                path,
                why,
                aside.name,
            )
        except (OSError, sqlite3.Error) as exc:
            self._give_up(f"the quality score cache {path} is unreadable ({why}) and could not be rebuilt", exc)

    def _give_up(self, what: str, exc: BaseException) -> None:
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
        self.db = None
        log.warning("%s: %s; scoring without the cache", what, exc)

    @staticmethod
    def key(real: str, st: os.stat_result, max_pixels: int, version: str | None = None) -> str:
        """The cache key of one file; `version` is what computed the value (default: the scorer's version)."""
        made_by = SCORER_VERSION if version is None else version
        return f"{printable(real)}\x1f{st.st_size}\x1f{st.st_mtime_ns}\x1f{made_by}\x1f{max_pixels}"

    def get_many(self, keys: list[str], table: str = "scores") -> dict[str, dict[str, Any]]:
        if self.db is None or not keys:
            return {}
        if table not in TABLES:
            raise ValueError(f"unknown cache table {table!r}")
        found: dict[str, dict[str, Any]] = {}
        try:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                rows = self.db.execute(
                    f"SELECT key, value FROM {table} WHERE key IN ({','.join('?' * len(part))})", part
                )
                found.update((k, json.loads(v)) for k, v in rows)
        except (sqlite3.Error, ValueError) as exc:  # ValueError: a value that is not JSON
            self._give_up("cannot read the quality score cache", exc)
            return {}
        return found

    def put_many(self, items: list[tuple[str, dict[str, Any]]], table: str = "scores") -> None:
        if self.db is None or not items:
            return
        if table not in TABLES:
            raise ValueError(f"unknown cache table {table!r}")
        try:
            with self.db:
                self.db.executemany(
                    f"INSERT OR REPLACE INTO {table} (key, value) VALUES (?, ?)",
                    [(k, json.dumps(v, allow_nan=True)) for k, v in items],
                )
        except sqlite3.Error as exc:  # a full disk, a read-only file, a locked database
            self._give_up("cannot write the quality score cache", exc)

    def close(self) -> None:
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self.db = None
