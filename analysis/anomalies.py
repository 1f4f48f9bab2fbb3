"""Stable import path of a public entry point (the code lives in `analysis.findings.anomalies`)."""

from analysis.findings.anomalies import find_anomalies, outlier_indices

__all__ = ["find_anomalies", "outlier_indices"]
