"""From a run to findings: the BatchMetrics frame, anomaly and change-point detectors, root causes, the pipeline.

`analyze_run(run, config, data_dir=...)` (in `pipeline`) is the one call the app, the CLI and the reports share.
"""

__all__: list[str] = []
