"""What every other part may import: config, errors, finding records, the run model, the shared vocabulary.

Nothing here imports another part of the project (`quality/` depends on this package, never the reverse).
"""

from analysis.core.vocabulary import QualityReason, Severity, metric_direction, worst_severity

__all__ = ["QualityReason", "Severity", "metric_direction", "worst_severity"]
