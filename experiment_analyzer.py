"""The handbook's public import names (re-exports only): `from experiment_analyzer import TrainingMonitor`.

`analyze("run-name-or-path")` is the one-line entry point for notebooks: it returns a `Report` that Jupyter shows.

`python -m experiment_analyzer ...` runs the `experiment-analyzer` command.
"""

from analysis.cli import analyze
from analysis.monitoring.batch_logging import log_batch_metrics
from analysis.monitoring.monitor import TrainingMonitor

__all__ = ["TrainingMonitor", "analyze", "log_batch_metrics"]

if __name__ == "__main__":
    import sys

    from analysis.cli import main

    sys.exit(main())
