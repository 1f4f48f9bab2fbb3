"""Errors a user can cause, typed so the app and the CLI show one clear line instead of a traceback.

Every class derives from `AnalyzerError`; the CLI exits with code 2 on it and the app shows `st.error(str(e))`.
"""

from __future__ import annotations


class AnalyzerError(Exception):
    """Base class of user-facing errors (bad input, not bugs)."""


class RunNotFound(AnalyzerError):
    """No run matches the name, id or location the user gave."""

    def __init__(self, message: str, candidates: list[str] | None = None) -> None:
        super().__init__(message)
        self.candidates = list(candidates or [])


class AmbiguousRun(RunNotFound):
    """Several runs share the display name the user gave."""


class CorruptRunFile(AnalyzerError):
    """A run file exists but cannot be read at all (not merely truncated)."""


class NotAWandbFile(CorruptRunFile):
    """The file is empty or does not start with the `.wandb` header."""


class SourceUnavailable(AnalyzerError):
    """A run source cannot be reached (wandb cloud offline, unauthorised, ...)."""


class ImageLoadError(AnalyzerError):
    """An image cannot be loaded (corrupt, truncated, not an image, too many pixels)."""


class UnsafePath(ImageLoadError):
    """A path logged in a run escapes the data root (`..`, absolute, symlink out)."""


class ConfigError(AnalyzerError):
    """The YAML configuration is invalid; the message names the key (and line when known)."""
