"""Pure logic about images: quality scores, the filter, safe loading and folder audits."""

from quality.filter import ImageQualityFilter, QualityFailure
from quality.scores import SCORER_VERSION

__all__ = ["SCORER_VERSION", "ImageQualityFilter", "QualityFailure"]
