"""The sidebar's config editor as plain functions: the threshold fields it shows, and the config they produce.

No Streamlit here: app.py keeps the widgets, this module reads a config into field values and builds the edited
config back from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import yaml

from analysis.core.config import AnalyzerConfig
from analysis.core.errors import ConfigError

__all__ = [
    "DEFAULT_RECALL_MIN",
    "QUALITY_FIELDS",
    "THRESHOLD_FIELDS",
    "FieldValue",
    "edited_config",
    "edited_quality",
    "merged_yaml",
    "quality_values",
    "threshold_values",
]

FieldValue = float | bool
DEFAULT_RECALL_MIN = 0.8  # what the "recall must stay ≥" field shows when the config sets no recall threshold

# widget key -> reader of the field's value from a config
THRESHOLD_FIELDS: dict[str, Callable[[AnalyzerConfig], FieldValue]] = {
    "cfg_recall_min": lambda c: float(
        c.experiment_monitoring.anomaly_detection.metric_thresholds.get("recall", DEFAULT_RECALL_MIN)
    ),
    "cfg_z": lambda c: float(c.experiment_monitoring.anomaly_detection.statistical_anomaly_zscore),
    "cfg_drop": lambda c: float(c.experiment_monitoring.anomaly_detection.performance_drop_threshold),
    "cfg_drop_only": lambda c: bool(c.experiment_monitoring.anomaly_detection.drop_only),
}


def threshold_values(config: AnalyzerConfig) -> dict[str, FieldValue]:
    """The value of every threshold field under `config` (what the widgets show after a config is loaded)."""
    return {key: read(config) for key, read in THRESHOLD_FIELDS.items()}


def edited_config(config: AnalyzerConfig, values: Mapping[str, FieldValue]) -> AnalyzerConfig:
    """`config` with the threshold fields' `values` (keys of THRESHOLD_FIELDS; missing ones keep the config's).

    The recall threshold is written only when the config already has one or the field was moved off the value it
    showed: leaving the field alone does not add a `recall` bound the config did not ask for.
    """
    current = threshold_values(config)
    merged = {**current, **values}
    detection = config.experiment_monitoring.anomaly_detection
    thresholds = dict(detection.metric_thresholds)
    recall_min = float(merged["cfg_recall_min"])
    if "recall" in thresholds or recall_min != current["cfg_recall_min"]:
        thresholds["recall"] = recall_min
    data = config.model_dump()
    data["experiment_monitoring"]["anomaly_detection"].update(
        statistical_anomaly_zscore=float(merged["cfg_z"]),
        performance_drop_threshold=float(merged["cfg_drop"]),
        drop_only=bool(merged["cfg_drop_only"]),
        metric_thresholds=thresholds,
    )
    return AnalyzerConfig.model_validate(data)


# Data quality page slider key -> reader of the threshold it edits (the session's one config holds them all).
QUALITY_FIELDS: dict[str, Callable[[AnalyzerConfig], FieldValue]] = {
    "dq_min_w": lambda c: float(c.data_quality.min_resolution[0]),
    "dq_min_h": lambda c: float(c.data_quality.min_resolution[1]),
    "dq_rotation": lambda c: float(c.data_quality.max_rotation_degrees),
    "dq_blur": lambda c: float(c.data_quality.blur_threshold),
}


def quality_values(config: AnalyzerConfig) -> dict[str, FieldValue]:
    """The value of every data-quality slider under `config`."""
    return {key: read(config) for key, read in QUALITY_FIELDS.items()}


def edited_quality(config: AnalyzerConfig, values: Mapping[str, FieldValue]) -> AnalyzerConfig:
    """`config` with the data-quality sliders' `values` (keys of QUALITY_FIELDS; missing ones keep the config's).
    Returns `config` itself when nothing changed, so the analysis cache key stays the same."""
    merged = {**quality_values(config), **values}
    if merged == quality_values(config):
        return config
    data = config.model_dump()
    data["data_quality"].update(
        min_resolution=(int(merged["dq_min_w"]), int(merged["dq_min_h"])),
        max_rotation_degrees=float(merged["dq_rotation"]),
        blur_threshold=float(merged["dq_blur"]),
    )
    return AnalyzerConfig.model_validate(data)


def merged_yaml(original: str, config: AnalyzerConfig) -> str:
    """The YAML of a config file after "Save to config": `original` (the file's text) with the sections the
    dashboard edits (`data_quality`, `experiment_monitoring.anomaly_detection`) replaced by `config`'s values.
    Everything else in the file (alert secrets, notes, unknown keys) is kept as written; comments are not."""
    try:
        data: Any = yaml.safe_load(original) if original.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"the config file is not valid YAML any more: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("the config file does not hold a mapping: not overwritten")
    dumped = config.model_dump(mode="json")
    data["data_quality"] = {**(data.get("data_quality") or {}), **dumped["data_quality"]}
    monitoring = data.setdefault("experiment_monitoring", {}) or {}
    data["experiment_monitoring"] = monitoring
    detection = dumped["experiment_monitoring"]["anomaly_detection"]
    monitoring["anomaly_detection"] = {**(monitoring.get("anomaly_detection") or {}), **detection}
    return yaml.safe_dump(data, sort_keys=False)
