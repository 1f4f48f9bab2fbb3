"""The handbook's import names for the data-quality pipeline (re-exports only)."""

from quality.audit import apply_thresholds, audit_folder, score_images
from quality.filter import ImageQualityFilter
from quality.io import load_image, resolve_under_root

__all__ = ["ImageQualityFilter", "apply_thresholds", "audit_folder", "load_image", "resolve_under_root", "score_images"]
