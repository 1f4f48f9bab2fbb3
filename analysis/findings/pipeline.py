"""One call from a loaded run to everything the app, the CLI and the reports show: `analyze_run`.

Data flows one way (DESIGN.md): Run -> BatchMetrics -> findings (+ image quality) -> root causes. The dashboard,
the CLI and the HTML report all call this, so they show the same numbers from the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.core.config import AnalyzerConfig
from analysis.core.errors import AnalyzerError
from analysis.core.records import SEVERITY_RANK, Anomaly, ChangePoint, RootCause
from analysis.core.run import Run
from analysis.findings import anomalies as anomaly_detection
from analysis.findings import changepoints as change_detection
from analysis.findings import rootcause
from analysis.findings.batches import batch_metrics, global_metrics, problematic_images

Progress = Callable[[float, str], None]

SUMMARY_COLUMNS = [
    "batch",
    "worst_recall",
    "worst_step",
    "first_bad_step",
    "last_recall",
    "n_anomalies",
    "n_change_points",
    "n_problem_images",
    "severity",
]


@dataclass
class RunAnalysis:
    """Everything derived from one run under one config. Frames have the columns documented in batches.py."""

    run: Run
    config: AnalyzerConfig
    batches: pd.DataFrame
    global_metrics: pd.DataFrame
    images: pd.DataFrame
    anomalies: list[Anomaly] = field(default_factory=list)
    change_points: list[ChangePoint] = field(default_factory=list)
    quality: pd.DataFrame | None = None
    root_causes: list[RootCause] = field(default_factory=list)
    batch_summary: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SUMMARY_COLUMNS))
    data_dir: Path | None = None

    @property
    def problematic_batches(self) -> list[int]:
        """Batches with at least a warning, worst first."""
        s = self.batch_summary
        return [int(b) for b in s.loc[s["severity"] != "ok", "batch"]]

    @cached_property  # the frames never change after analyze_run; these scan millions of rows on long runs
    def primary_metric(self) -> str:
        return primary_metric(self.batches)

    @property
    def worst_severity(self) -> str:
        """'ok', 'warning' or 'critical' over every finding."""
        sev = [a.severity for a in self.anomalies] + [c.severity for c in self.change_points]
        ranked = [s for s in sev if s in ("warning", "critical")]
        return max(ranked, key=SEVERITY_RANK.__getitem__) if ranked else "ok"

    @cached_property
    def verdict(self) -> str:
        """One-line headline."""
        bad = self.problematic_batches
        if self.batches.empty:
            level = self.worst_severity
            worst = [f for f in [*self.anomalies, *self.change_points] if f.severity == level]
            if not worst:
                return "No per-batch metrics (batch_{i}/...) in this run."
            names = sorted({f.metric for f in worst})
            return (
                f"No per-batch metrics (batch_{{i}}/...); run-level {level} findings in "
                f"{', '.join(names[:3])}{'…' if len(names) > 3 else ''} from step {min(f.step for f in worst)}."
            )
        if not bad:
            return f"No problematic batches across {self.batches['batch'].nunique()} batches."
        worst = self.batch_summary.iloc[0]
        shown = ", ".join(str(b) for b in bad[:5]) + ("…" if len(bad) > 5 else "")
        metric = self.primary_metric
        where = (
            f"{worst['worst_recall']:.3f} at step {int(worst['worst_step'])}"
            if worst["worst_step"] >= 0
            else "never finite"
        )  # a batch whose values were all NaN/Inf has no worst step
        return (
            f"{len(bad)} problematic batch{'es' if len(bad) != 1 else ''} ({shown}); worst: batch "
            f"{int(worst['batch'])}, {metric} {where}."
        )


def primary_metric(batches: pd.DataFrame) -> str:
    """`recall` when logged (the handbook's problematic signal), else the first metric name."""
    names = sorted(batches["metric"].unique()) if not batches.empty else []
    return "recall" if "recall" in names or not names else names[0]


def summarize_batches(
    batches: pd.DataFrame, anomalies: list[Anomaly], change_points: list[ChangePoint], images: pd.DataFrame
) -> pd.DataFrame:
    """One row per batch, worst first (critical before warning before ok, then lowest primary metric)."""
    if batches.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    metric = primary_metric(batches)
    prim = batches[batches["metric"] == metric].copy()
    prim["finite"] = prim["value"].where(np.isfinite(prim["value"]))
    rows = []
    for b, g in prim.groupby("batch", sort=True):
        g = g.sort_values("step")
        finite = g.dropna(subset=["finite"])
        worst_idx = finite["finite"].idxmin() if not finite.empty else None
        b_anoms = [a for a in anomalies if a.batch == b]
        b_cps = [c for c in change_points if c.batch == b]
        sev = max((SEVERITY_RANK[a.severity] for a in b_anoms), default=0)
        rows.append(
            {
                "batch": int(b),
                "worst_recall": float(finite.loc[worst_idx, "finite"]) if worst_idx is not None else np.nan,
                "worst_step": int(finite.loc[worst_idx, "step"]) if worst_idx is not None else -1,
                "first_bad_step": min((a.step for a in b_anoms if a.severity != "info"), default=-1),
                "last_recall": float(finite["finite"].iloc[-1]) if not finite.empty else np.nan,
                "n_anomalies": len(b_anoms),
                "n_change_points": len(b_cps),
                "n_problem_images": int(images.loc[images["batch"] == b, "path"].nunique()) if not images.empty else 0,
                "severity": {0: "ok", 1: "warning", 2: "critical"}[sev],
            }
        )
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    out["_rank"] = out["severity"].map({"critical": 0, "warning": 1, "ok": 2})
    out = out.sort_values(["_rank", "worst_recall", "batch"], na_position="last").drop(columns="_rank")
    return out.reset_index(drop=True)


def score_data_dir(
    data_dir: Path, images: pd.DataFrame, config: AnalyzerConfig, progress: Progress | None = None
) -> pd.DataFrame:
    """QualityScores of every image under `data_dir` plus any logged path outside the audit (error rows),
    thresholded with the config, with the batch each image was logged under (<NA> otherwise)."""
    from analysis.sources.cache import cache_root
    from quality.audit import apply_thresholds, audit_folder, score_images

    cb = (
        (lambda done, total: progress(0.3 + 0.5 * done / max(total, 1), f"scoring images {done}/{total}"))
        if progress
        else None
    )
    dq = config.data_quality
    # scores are cached on disk (path + size + mtime + scorer version): re-analysing an unchanged folder is quick
    options = {"cache_dir": cache_root() / "quality", "max_pixels": dq.max_image_pixels}
    scores = audit_folder(data_dir, progress=cb, **options)
    logged = images["path"].unique().tolist() if not images.empty else []
    missing = sorted(set(logged) - set(scores["path"]))
    if missing:
        scores = pd.concat([scores, score_images(missing, root=data_dir, **options)], ignore_index=True)
    scores = apply_thresholds(
        scores,
        min_resolution=tuple(dq.min_resolution),
        max_rotation=dq.max_rotation_degrees,
        blur_threshold=dq.blur_threshold,
    )
    first_batch = images.drop_duplicates("path").set_index("path")["batch"] if not images.empty else pd.Series()
    scores["batch"] = scores["path"].map(first_batch).astype("Int64")
    return scores


def analyze_run(
    run: Run,
    config: AnalyzerConfig | None = None,
    *,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> RunAnalysis:
    """Findings, image quality and root causes for one run. `progress(fraction, message)` reports long work."""
    config = config or AnalyzerConfig()
    report = progress or (lambda fraction, message: None)
    report(0.0, "reading batch metrics")
    pattern = config.training_config.batch_key_pattern  # None: the layout is detected from the keys
    batches = batch_metrics(run, pattern)
    globals_ = global_metrics(run, pattern)
    images = problematic_images(run)
    cfg = config.anomaly
    report(0.1, "detecting anomalies")
    anomalies = anomaly_detection.find_anomalies(batches, globals_, cfg)
    report(0.2, "detecting change points")
    change_points = change_detection.find_change_points(batches, globals_, cfg)
    quality = None
    root = None
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise AnalyzerError(f"data directory not found: {root}")
        report(0.3, "scoring images")
        quality = score_data_dir(root, images, config, progress)
    report(0.85, "explaining root causes")
    causes = rootcause.explain(batches, anomalies, change_points, quality, images, config)
    summary = summarize_batches(batches, anomalies, change_points, images)
    report(1.0, "done")
    return RunAnalysis(
        run=run,
        config=config,
        batches=batches,
        global_metrics=globals_,
        images=images,
        anomalies=anomalies,
        change_points=change_points,
        quality=quality,
        root_causes=causes,
        batch_summary=summary,
        data_dir=root,
    )
