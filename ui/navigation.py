"""What the URL and the dashboard's links mean, as plain functions (no Streamlit here).

The URL holds the view (`?source=local&dir=…&run=…&metric=…&batch=…&step=…`, the page is the URL path); these
helpers turn its text back into the sidebar's and pages' choices, and pick the images a link to a step shows:
the nearest logged step, and a "before" strip of the same batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from analysis.core.run import RunRef

__all__ = [
    "SOURCE_LABELS",
    "BeforeStrip",
    "before_strip",
    "find_run",
    "first_bad_step",
    "nearest_step",
    "parse_int",
    "source_label",
    "source_param",
]

# URL value -> the sidebar's Source choice
SOURCE_LABELS = {"local": "Local wandb dir", "cloud": "wandb cloud", "upload": "Upload history"}


def source_label(param: str | None) -> str | None:
    """The Source choice a `source=` URL value names (the label itself is accepted too), or None."""
    if param is None:
        return None
    if param in SOURCE_LABELS:
        return SOURCE_LABELS[param]
    return param if param in SOURCE_LABELS.values() else None


def source_param(label: str) -> str:
    return next((k for k, v in SOURCE_LABELS.items() if v == label), label)


def find_run(runs: Sequence[RunRef], wanted: str) -> RunRef | None:
    """The run a `run=` URL value names: its id first, then its folder name, then its (unique) display name."""
    wanted = wanted.strip()
    for match in (
        lambda r: r.run_id == wanted,
        lambda r: PurePosixPath(str(r.locator).replace("\\", "/")).name == wanted,
        lambda r: r.name == wanted,
    ):
        found = [r for r in runs if match(r)]
        if len(found) >= 1:
            return found[0]
    return None


def parse_int(text: str | None) -> int | None:
    """An integer URL value (`12`, `12.0`), else None (a hand-edited `batch=seven` is ignored, not an error)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


def nearest_step(steps: Sequence[int], wanted: int | None) -> int | None:
    """The logged image step to show for a link to step `wanted`: the first one at or after it (images are logged
    when a problem shows), else the last one before it; the last step when nothing is asked."""
    if not steps:
        return None
    ordered = sorted(int(s) for s in steps)
    if wanted is None:
        return ordered[-1]
    later = [s for s in ordered if s >= wanted]
    return later[0] if later else ordered[-1]


def first_bad_step(summary: pd.DataFrame, batch: int) -> int | None:
    """The step a batch's problem starts at (the ranking's `first_bad_step`), None for a healthy batch."""
    if summary.empty or "first_bad_step" not in summary.columns:
        return None
    rows = summary.loc[summary["batch"] == batch, "first_bad_step"]
    if rows.empty:
        return None
    value = pd.to_numeric(rows.iloc[0], errors="coerce")
    return int(value) if pd.notna(value) and value >= 0 else None


@dataclass(frozen=True)
class BeforeStrip:
    """The images of a batch from before its problem, and where they come from (shown as the strip's caption)."""

    paths: list[str]
    caption: str


def _tail(path: str, parts: int = 2) -> str:
    return "/".join(PurePosixPath(path).parts[-parts:])


def before_strip(
    images: pd.DataFrame, batch: int, step: int, bad_from: int | None, audit: pd.DataFrame | None, limit: int = 8
) -> BeforeStrip | None:
    """The same batch's images from its last healthy step, to show beside the problematic ones at `step`.

    First choice: the batch's logged image list at the last step before its problem started (`bad_from`, else
    before `step`). Runs that log images only once a batch is in trouble (the handbook's `problematic_batch_{i}`)
    have none; then the files of the data directory with the same batch folder and file name as the shown images
    (`clean/batch_07/img_00.png` for `refresh_2000/batch_07/img_00.png`), acceptable ones first. None when
    neither exists.
    """
    mine = images.loc[images["batch"] == batch] if not images.empty else images
    if mine.empty:
        return None
    cutoff = bad_from if bad_from is not None else step
    earlier = mine.loc[mine["step"] < cutoff]
    if not earlier.empty:
        last = int(earlier["step"].max())
        paths = earlier.loc[earlier["step"] == last, "path"].drop_duplicates().tolist()[:limit]
        return BeforeStrip(paths, f"step {last:,}: the last images of batch {batch} logged before the problem")
    if audit is None or audit.empty or "path" not in audit.columns:
        return None
    shown = mine.loc[mine["step"] == step, "path"].drop_duplicates().tolist()
    logged = set(mine["path"])
    candidates: dict[str, list[tuple[bool, str]]] = {}
    acceptable = audit["is_acceptable"] if "is_acceptable" in audit.columns else pd.Series(True, index=audit.index)
    for path, ok in zip(audit["path"].astype(str), acceptable):
        if path not in logged:
            candidates.setdefault(_tail(path), []).append((not _truthy(ok), path))
    paths = []
    for path in shown:
        found = sorted(candidates.get(_tail(path), []))
        if found:
            paths.append(found[0][1])
        if len(paths) >= limit:
            break
    if not paths:
        return None
    folder = str(PurePosixPath(paths[0]).parent)
    return BeforeStrip(
        paths,
        f"the same file names under {folder}/ (the run logged no images of batch {batch} before step {cutoff:,})",
    )


def _truthy(value: Any) -> bool:
    try:
        return bool(value) and not pd.isna(value)
    except (TypeError, ValueError):
        return bool(value)
