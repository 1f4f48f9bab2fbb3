"""Stable import path of a public entry point (the code lives in `analysis.findings.changepoints`)."""

from analysis.findings.changepoints import change_points, find_change_points

__all__ = ["change_points", "find_change_points"]
