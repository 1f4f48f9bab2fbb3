"""Stable import path of a public entry point (the code lives in `analysis.findings.batches`)."""

from analysis.findings.batches import batch_metrics, global_metrics

__all__ = ["batch_metrics", "global_metrics"]
