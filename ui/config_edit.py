"""The sidebar's config editor as plain functions: the threshold fields it shows, and the config they produce.

No Streamlit here: app.py keeps the widgets, this module reads a config into field values and builds the edited
config back from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from analysis.core.config import AnalyzerConfig

__all__ = ["DEFAULT_RECALL_MIN", "THRESHOLD_FIELDS", "FieldValue", "edited_config", "threshold_values"]

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
