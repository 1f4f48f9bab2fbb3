"""Real offline wandb runs for the report and CLI tests (written once per session by the fixtures that use these).

- `write_hostile_run`: untrusted text everywhere (run name `<script>alert(1)</script>`, HTML in a metric key, a
  problematic image path with markup), NaN/Inf values, a secret-looking key in the run config.
- `write_degrading_run`: the handbook's `log_batch_metrics` pattern; batch 2 collapses half way.
"""

from __future__ import annotations

from pathlib import Path

from wandb_writer import write_run

XSS_NAME = "<script>alert(1)</script>"
XSS_METRIC = "<img src=x onerror=alert(2)>"
XSS_PATH = "imgs/<b>bold</b>&amp;.png"
SECRET = "s3cr3t-t0ken-value"


def degrading_rows(n_steps: int = 20, n_batches: int = 4, bad_batch: int = 2, interval: int = 10) -> list[dict]:
    rows = []
    for s in range(1, n_steps + 1):
        for b in range(n_batches):
            recall = 0.92 - 0.002 * b + 0.001 * (s % 3)
            if b == bad_batch and s > n_steps // 2:
                recall = 0.55
            rows.append({f"batch_{b}/recall": recall, f"batch_{b}/precision": 0.9, f"batch_{b}/hmean": 0.85,
                         "global_step": s * interval})
            if recall < 0.8:
                rows.append({f"problematic_batch_{b}": [f"batch_{b}/img_{s}.png"]})
    return rows


def write_degrading_run(parent: Path, name: str = "test_run", **kw) -> Path:
    return write_run(parent, name, degrading_rows(), config={"lr": 0.001}, **kw)


def write_hostile_run(parent: Path) -> Path:
    rows = degrading_rows(n_steps=16, n_batches=3, bad_batch=1)
    for i, row in enumerate(rows):
        if "batch_0/recall" in row:
            row[f"batch_0/{XSS_METRIC}"] = 0.5 + 0.01 * (i % 5)
    rows.append({"batch_1/recall": "NaN", "batch_1/precision": "Infinity", "batch_1/hmean": "-Infinity",
                 "global_step": 170})
    rows.append({"problematic_batch_1": [XSS_PATH]})
    return write_run(parent, XSS_NAME, rows, config={"lr": 0.01, "api_key": SECRET, "note": "<i>x</i>"},
                     notes="<script>alert(3)</script>", tags=["<b>tag</b>"])
