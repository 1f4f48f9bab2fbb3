"""The library: runs, batch frames, findings, monitoring and reports. Nothing in this package imports streamlit.

Layers (arrows point down only; see docs/ARCHITECTURE.md):

- `core/`: config, errors, records, the run model and the shared vocabulary; imports nothing of the project.
- `sources/`: where runs come from (local `.wandb` files, wandb cloud, CSV / Parquet / JSONL exports).
- `findings/`: batch frames, anomaly and change-point detectors, root causes, the one `analyze_run` pipeline.
- `monitoring/`: `TrainingMonitor`, alert sinks, recovery suggestions, `log_batch_metrics`.
- `reporting/`: the Report model and its Markdown / JSON / HTML renderings, plotly figures, thumbnails.
- `cli.py` (the `experiment-analyzer` command) and `demo.py` (writes the bundled demo run).

`analysis.batches`, `analysis.anomalies`, `analysis.changepoints` and `analysis.monitor` are kept as import paths
of the public entry points named in the design (they re-export from `findings/` and `monitoring/`).
"""

__all__: list[str] = []
