"""Real offline wandb runs for the report and CLI tests (written once per session by the fixtures that use these).

- `write_hostile_run`: untrusted text everywhere (run name `<script>alert(1)</script>`, HTML in a metric key, a
  problematic image path with markup), NaN/Inf values, a secret-looking key in the run config.
- `write_degrading_run`: the handbook's `log_batch_metrics` pattern; batch 2 collapses half way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.wandb_writer import write_run

XSS_NAME = "<script>alert(1)</script>"
XSS_METRIC = "<img src=x onerror=alert(2)>"
XSS_PATH = "imgs/<b>bold</b>&amp;.png"
SECRET = "s3cr3t-t0ken-value"


def degrading_rows(
    n_steps: int = 20, n_batches: int = 4, bad_batch: int = 2, interval: int = 10
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for s in range(1, n_steps + 1):
        for b in range(n_batches):
            recall = 0.92 - 0.002 * b + 0.001 * (s % 3)
            if b == bad_batch and s > n_steps // 2:
                recall = 0.55
            rows.append(
                {
                    f"batch_{b}/recall": recall,
                    f"batch_{b}/precision": 0.9,
                    f"batch_{b}/hmean": 0.85,
                    "global_step": s * interval,
                }
            )
            if recall < 0.8:
                rows.append({f"problematic_batch_{b}": [f"batch_{b}/img_{s}.png"]})
    return rows


def write_degrading_run(parent: Path, name: str = "test_run", **kw) -> Path:
    return write_run(parent, name, degrading_rows(), config={"lr": 0.001}, **kw)


def write_hostile_run(parent: Path) -> Path:
    rows = degrading_rows(n_steps=16, n_batches=3, bad_batch=1)
    for row in rows:
        if "batch_0/recall" in row:  # a metric whose key is markup, collapsing late: it shows up in the findings
            row[f"batch_0/{XSS_METRIC}"] = 0.9 if row["global_step"] < 120 else 0.1
    rows.append(
        {"batch_1/recall": "NaN", "batch_1/precision": "Infinity", "batch_1/hmean": "-Infinity", "global_step": 170}
    )
    rows.append({"problematic_batch_1": [XSS_PATH]})
    return write_run(
        parent,
        XSS_NAME,
        rows,
        config={"lr": 0.01, "api_key": SECRET, "note": "<i>x</i>"},
        notes="<script>alert(3)</script>",
        tags=["<b>tag</b>"],
    )


WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"


def demo_analysis(root: Path):
    """The bundled demo run (real wandb, with images under root/data), analysed with image quality."""
    from analysis.core.config import AnalyzerConfig
    from analysis.demo import ensure_demo
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run

    run_dir = ensure_demo(root)
    return analyze_run(open_run(run_dir), AnalyzerConfig(), data_dir=root / "data")


def write_hostile_images(data_dir: Path) -> None:
    """A tiny blurry image at the markup-laden path the hostile run logs, so it is a worst image."""
    import numpy as np
    from PIL import Image

    target = data_dir / XSS_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(target, format="PNG")


def hostile_analysis(parent: Path, with_images: bool = False):
    """The hostile run analysed with a config that holds a literal Slack webhook (a secret).

    `with_images` also scores a data dir holding the image at `XSS_PATH` (a file name with markup)."""
    from analysis.core.config import config_from_dict
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run

    run_dir = write_hostile_run(parent)
    cfg = config_from_dict({"experiment_monitoring": {"alerts": {"slack_webhook": WEBHOOK}}})
    data_dir = None
    if with_images:
        data_dir = parent / "data"
        write_hostile_images(data_dir)
    return analyze_run(open_run(run_dir), cfg, data_dir=data_dir)


LOWER_BETTER_METRICS = ("errors", "nll", "perplexity", "rmse")


def lower_better_rows(n_steps: int = 20, n_batches: int = 4, bad_batch: int = 2) -> list[dict[str, Any]]:
    """Per-batch metrics whose names say lower is better (no recall, so `errors` is the primary metric).

    Batch `bad_batch` degrades half way: every metric rises to a peak four steps before the end, then eases a
    little, so its worst value is the highest one and differs from its first and last values."""
    base = {"errors": 3.0, "nll": 2.3, "perplexity": 10.0, "rmse": 0.1}
    peak = n_steps - 4
    rows: list[dict[str, Any]] = []
    for s in range(1, n_steps + 1):
        row: dict[str, Any] = {"global_step": s * 10}
        for b in range(n_batches):
            for metric, level in base.items():
                value = level * (1 + 0.01 * b + 0.005 * (s % 3))
                if b == bad_batch and s > n_steps // 2:
                    value = level * (2 + (s - n_steps // 2) if s <= peak else 2 + (peak - n_steps // 2) - 0.5)
                row[f"batch_{b}/{metric}"] = value
        rows.append(row)
    return rows


def lower_better_analysis(parent: Path):
    """A real offline wandb run of `lower_better_rows`, analysed with the default config."""
    from analysis.core.config import AnalyzerConfig
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run

    run_dir = write_run(parent, "lower-is-better", lower_better_rows())
    return analyze_run(open_run(run_dir), AnalyzerConfig())
