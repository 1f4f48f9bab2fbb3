"""The handbook's `log_batch_metrics` as a library function.

It logs exactly the keys the analyzer reads back (`analysis.findings.batches`): one `wandb.log` per batch with
``batch_{i}/<metric>`` and ``global_step``, then, when recall is below
``training_config.problematic_recall_threshold`` (0.8 by default), ``problematic_batch_{i}`` with the image paths
(relative to the data directory, as strings) and the same ``global_step`` so the row names its step.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

from analysis.core.config import AnalyzerConfig


def problematic_threshold(config: AnalyzerConfig | None) -> float:
    """Recall below which a batch's image paths are logged."""
    return (config or AnalyzerConfig()).training_config.problematic_recall_threshold


def batch_log_rows(
    batch_idx: int,
    step: int,
    metrics: Mapping[str, Any],
    images_paths: Sequence[str | os.PathLike] | None = None,
    *,
    config: AnalyzerConfig | None = None,
) -> list[dict]:
    """The dicts `log_batch_metrics` passes to `wandb.log`, in order (pure; useful for tests and other loggers)."""
    # numpy / other integral types (np.int64 from an array of indices) are ints too
    if isinstance(batch_idx, bool) or not isinstance(batch_idx, numbers.Integral) or batch_idx < 0:
        raise ValueError(f"batch_idx must be a non-negative int, not {batch_idx!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError(f"step must be an int, not {step!r}")
    batch_idx, step = int(batch_idx), int(step)
    if isinstance(images_paths, (str, bytes, os.PathLike)):  # one path, not a sequence of characters
        images_paths = [images_paths]
    row: dict[str, Any] = {}
    for name, value in metrics.items():
        if "/" in str(name):
            raise ValueError(f"metric name {name!r} must not contain '/': it becomes batch_{batch_idx}/<name>")
        row[f"batch_{batch_idx}/{name}"] = value
    row["global_step"] = step
    rows = [row]
    recall = metrics.get("recall")
    if images_paths is not None and _is_number(recall) and float(recall) < problematic_threshold(config):
        rows.append({f"problematic_batch_{batch_idx}": [os.fsdecode(p) for p in images_paths], "global_step": step})
    return rows


def log_batch_metrics(
    batch_idx: int,
    step: int,
    metrics: Mapping[str, Any],
    images_paths: Sequence[str | os.PathLike] | None = None,
    *,
    config: AnalyzerConfig | None = None,
    run: Any = None,
) -> list[dict]:
    """Log per-batch validation metrics (recall, precision, hmean, ...) to the active wandb run (or `run`).

    Returns the rows logged. Raises RuntimeError when no wandb run is active.
    """
    rows = batch_log_rows(batch_idx, step, metrics, images_paths, config=config)
    if run is None:
        import wandb

        run = wandb.run
        if run is None:
            raise RuntimeError("log_batch_metrics needs an active wandb run: call wandb.init() first")
    for row in rows:
        run.log(row)
    return rows


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        return not math.isnan(float(v))
    except (TypeError, ValueError):
        return False
