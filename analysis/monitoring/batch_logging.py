"""The handbook's `log_batch_metrics` as a library function.

It logs exactly the keys the analyzer reads back (`analysis.findings.batches`): one `wandb.log` per batch with
``batch_{i}/<metric>`` and ``global_step``, then, when recall is below
``training_config.problematic_recall_threshold`` (0.8 by default), ``problematic_batch_{i}`` with the image paths
(relative to the data directory, as strings) and the same ``global_step`` so the row names its step.

With a `config`, its `training_config` decides whether a call logs: ``batch_logging: false`` turns per-batch
logging off, and only steps that are multiples of ``validation_interval`` are logged (call it every step, or only
when you validate). Without a config every call logs: the caller decides when to validate.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any, SupportsIndex, TypeAlias

from analysis.core.config import AnalyzerConfig

log = logging.getLogger(__name__)
_skip_noted: set[int] = set()  # validation intervals whose skipped steps were already explained in the log

ImagePath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def problematic_threshold(config: AnalyzerConfig | None) -> float:
    """Recall below which a batch's image paths are logged."""
    return (config or AnalyzerConfig()).training_config.problematic_recall_threshold


def batch_log_rows(
    batch_idx: SupportsIndex,
    step: SupportsIndex,
    metrics: Mapping[str, Any],
    images_paths: Sequence[ImagePath] | ImagePath | None = None,
    *,
    config: AnalyzerConfig | None = None,
) -> list[dict[str, Any]]:
    """The dicts `log_batch_metrics` passes to `wandb.log`, in order (pure; useful for tests and other loggers)."""
    # numpy / other integral types (np.int64 from an array of indices) are ints too
    if isinstance(batch_idx, bool) or not isinstance(batch_idx, numbers.Integral) or int(batch_idx) < 0:
        raise ValueError(f"batch_idx must be a non-negative int, not {batch_idx!r}")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError(f"step must be an int, not {step!r}")
    batch, at_step = int(batch_idx), int(step)
    paths: Sequence[ImagePath] | None = (
        [images_paths] if isinstance(images_paths, (str, bytes, os.PathLike)) else images_paths
    )  # one path, not a sequence of characters
    row: dict[str, Any] = {}
    for name, value in metrics.items():
        if "/" in str(name):
            raise ValueError(f"metric name {name!r} must not contain '/': it becomes batch_{batch}/<name>")
        row[f"batch_{batch}/{name}"] = value
    row["global_step"] = at_step
    rows = [row]
    recall = metrics.get("recall")
    if (
        paths is not None
        and recall is not None
        and _is_number(recall)
        and float(recall) < problematic_threshold(config)
    ):
        rows.append({f"problematic_batch_{batch}": [os.fsdecode(p) for p in paths], "global_step": at_step})
    return rows


def log_batch_metrics(
    batch_idx: SupportsIndex,
    step: SupportsIndex,
    metrics: Mapping[str, Any],
    images_paths: Sequence[ImagePath] | ImagePath | None = None,
    *,
    config: AnalyzerConfig | None = None,
    run: Any = None,
) -> list[dict[str, Any]]:
    """Log per-batch validation metrics (recall, precision, hmean, ...) to the active wandb run (or `run`).

    Returns the rows logged: none when `config.training_config.batch_logging` is false or `step` is not a multiple
    of its `validation_interval`. Raises RuntimeError when no wandb run is active (and logging is on).
    """
    rows = batch_log_rows(batch_idx, step, metrics, images_paths, config=config)  # validates the arguments
    if config is not None and not config.training_config.batch_logging:
        return []
    if run is None:
        import wandb

        run = wandb.run
        if run is None:
            raise RuntimeError("log_batch_metrics needs an active wandb run: call wandb.init() first")
    if config is not None and not is_validation_step(rows[0]["global_step"], config):
        return []
    for row in rows:
        run.log(row)
    return rows


def is_validation_step(step: int, config: AnalyzerConfig) -> bool:
    """True when `step` is a multiple of `training_config.validation_interval` (the steps batch metrics are
    logged at). The first skip is explained once in the log (INFO), not at every step."""
    interval = config.training_config.validation_interval
    if step % interval == 0:
        return True
    if interval not in _skip_noted:
        _skip_noted.add(interval)
        log.info(
            "log_batch_metrics: step %d is not a multiple of training_config.validation_interval (%d): not logged "
            "(batch metrics are logged every %d steps)",
            step,
            interval,
            interval,
        )
    return False


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        return not math.isnan(float(v))
    except (TypeError, ValueError):
        return False
