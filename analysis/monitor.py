"""Stable import path of a public entry point (the code lives in `analysis.monitoring.monitor`)."""

from analysis.monitoring.monitor import TrainingMonitor

__all__ = ["TrainingMonitor"]
