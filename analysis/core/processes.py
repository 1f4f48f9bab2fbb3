"""Worker processes that start cleanly wherever the caller runs, the dashboard included.

A spawned worker re-runs the parent's `__main__` file before it unpickles its task (Python's spawn start method).
Under Streamlit that file is the app script: Streamlit installs its own `__main__` module whose `__file__` is the
page script (and its test harness leaves a generated script there), so every worker would execute the dashboard —
slow at best, and a crash (`BrokenProcessPool`, Dask's "Nanny failed to start") when that script cannot run alone.
Our worker functions live in importable modules and need nothing from `__main__`, so while workers start, the
parent's `__main__` is swapped for a bare module without a file.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

__all__ = ["spawn_pool", "workers_without_main"]


@contextlib.contextmanager
def workers_without_main() -> Iterator[None]:
    """While inside, processes started by spawn (a pool's workers, a Dask nanny's) do not re-run `__main__`."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


@contextlib.contextmanager
def spawn_pool(workers: int, initializer: Callable[..., Any] | None = None) -> Iterator[ProcessPoolExecutor]:
    """A `ProcessPoolExecutor` of spawned workers; submit inside the block (workers start on submit)."""
    with (
        workers_without_main(),
        ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=initializer) as pool,
    ):
        yield pool
