"""Which data directory belongs to the chosen run (no Streamlit here; the sidebar calls it).

The logged image paths of a run are relative to a dataset root that the run itself does not store in a fixed
place. So the sidebar suggests one per run: a directory named in the run's own config (`data_dir`, `data_root`,
`dataset_dir`, ... at any depth, absolute or relative to the project folder above `wandb/`), else the folder
`data/` beside the wandb directory (the demo's layout), else nothing. Never the previous run's folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["DATA_DIR_KEYS", "suggest_data_dir"]

DATA_DIR_KEYS = ("data_dir", "data_root", "dataset_dir", "dataset_root", "dataset_path", "data_path", "image_dir",
                 "images_dir", "image_root")  # fmt: skip
_MAX_DEPTH = 6  # configs nest a few levels (training_config.data.root); deeper is not a place to look


def _named_paths(config: Mapping[str, Any], depth: int = 0) -> Iterator[str]:
    """String values of data-directory keys in a (nested) run config, shallowest first."""
    if depth > _MAX_DEPTH:
        return
    nested: list[Mapping[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            nested.append(value)
        elif isinstance(value, str) and str(key).lower() in DATA_DIR_KEYS and value.strip():
            yield value.strip()
    for child in nested:
        yield from _named_paths(child, depth + 1)


def suggest_data_dir(wandb_dir: str | Path | None, run_config: Mapping[str, Any] | None = None) -> str:
    """The data directory for a run, or "" when none is known (see the module doc). `wandb_dir` is None for runs
    with no local folder (wandb cloud, uploads): then only absolute directories named in the config count."""
    project = Path(wandb_dir).expanduser().parent if wandb_dir else None
    for named in _named_paths(run_config or {}):
        path = Path(named).expanduser()
        candidate = path if path.is_absolute() else (project / path if project else None)
        if candidate is not None and candidate.is_dir():
            return str(candidate)
    beside = project / "data" if project else None
    return str(beside) if beside is not None and beside.is_dir() else ""
