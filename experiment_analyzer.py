"""The handbook's public import names (re-exports only): `from experiment_analyzer import TrainingMonitor`."""

from analysis.batch_logging import log_batch_metrics
from analysis.monitor import TrainingMonitor

__all__ = ["TrainingMonitor", "log_batch_metrics"]
