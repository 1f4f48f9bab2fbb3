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
    "FIELD_RANGES",
    "QUALITY_FIELDS",
    "THRESHOLD_FIELDS",
    "URL_THRESHOLDS",
    "FieldValue",
    "config_from_params",
    "edited_config",
    "edited_quality",
    "merged_yaml",
    "quality_values",
    "threshold_params",
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


# URL parameter -> threshold field (keys of THRESHOLD_FIELDS and QUALITY_FIELDS): a shared link carries the
# thresholds that differ from the defaults, so it reproduces the same flags, badges and findings.
URL_THRESHOLDS = {
    "recall_min": "cfg_recall_min",
    "z": "cfg_z",
    "drop": "cfg_drop",
    "drops_only": "cfg_drop_only",
    "blur": "dq_blur",
    "max_rot": "dq_rotation",
    "min_w": "dq_min_w",
    "min_h": "dq_min_h",
}
# The threshold widgets' ranges (the sidebar's number inputs, the Data quality sliders); a URL value outside is
# refused (a widget cannot show it). The blur slider has no fixed top: it grows to the value.
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "cfg_recall_min": (0.0, 1.0),
    "cfg_z": (0.5, 20.0),
    "cfg_drop": (0.0, 1.0),
    "dq_blur": (0.0, float("inf")),
    "dq_rotation": (0.0, 45.0),
    "dq_min_w": (0.0, 1000.0),
    "dq_min_h": (0.0, 1000.0),
}
_BOOL_TEXT = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _fields(config: AnalyzerConfig) -> dict[str, FieldValue]:
    return {**threshold_values(config), **quality_values(config)}


def _has_recall(config: AnalyzerConfig) -> bool:
    return "recall" in config.experiment_monitoring.anomaly_detection.metric_thresholds


def threshold_params(config: AnalyzerConfig) -> dict[str, str | None]:
    """Every URL_THRESHOLDS parameter: its text when `config` differs from the defaults there, else None (not in
    the URL). The recall bound counts as set when the config has one."""
    defaults = AnalyzerConfig()
    default, mine = _fields(defaults), _fields(config)
    recall_set = _has_recall(config) != _has_recall(defaults)
    out: dict[str, str | None] = {}
    for param, key in URL_THRESHOLDS.items():
        value = mine[key]
        differs = value != default[key] or (key == "cfg_recall_min" and recall_set)
        if not differs:
            out[param] = None
        elif isinstance(value, bool):
            out[param] = "1" if value else "0"
        else:
            out[param] = f"{value:g}"
    return out


def config_from_params(config: AnalyzerConfig, params: Mapping[str, str]) -> tuple[AnalyzerConfig, list[str]]:
    """`config` with the thresholds a URL names (URL_THRESHOLDS parameters; others are ignored), and the names of
    the parameters that were not usable (not a number, out of range): those keep the config's value."""
    values: dict[str, FieldValue] = {}
    bad: list[str] = []
    for param, text in params.items():
        key = URL_THRESHOLDS.get(param)
        if key is None:
            continue
        if key == "cfg_drop_only":
            flag = _BOOL_TEXT.get(text.strip().lower())
            if flag is None:
                bad.append(param)
            else:
                values[key] = flag
            continue
        try:
            number = float(text)
        except ValueError:
            bad.append(param)
            continue
        low, high = FIELD_RANGES[key]
        if not (low <= number <= high) or number == float("inf"):  # NaN fails the comparison too
            bad.append(param)
            continue
        values[key] = number
    result = config
    for key, value in values.items():  # one at a time: an out-of-range value is refused alone
        edit = edited_quality if key in QUALITY_FIELDS else edited_config
        try:
            result = edit(result, {key: value})
        except ValueError:  # pydantic's ValidationError is one
            bad.append(next(p for p, k in URL_THRESHOLDS.items() if k == key))
    return result, bad
