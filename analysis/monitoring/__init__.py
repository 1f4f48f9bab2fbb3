"""Inside a training loop: `TrainingMonitor`, alert sinks (Slack, email, wandb), recovery, `log_batch_metrics`."""

__all__: list[str] = []
