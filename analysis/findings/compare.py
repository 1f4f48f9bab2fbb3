"""Compare a candidate run against a baseline: which batches got worse, from when, and what moved in their images.

`compare_runs(baseline, candidate, config)` takes each side as a `Run`, a `RunAnalysis` (which brings its image
quality scores), a `RunSide` or the path of a baseline file written by `save_baseline` (analysis/findings/
baseline_file.py); a file gives the same answer as the run it was saved from.

A batch × metric is a regression when, over the last `window` validations, the candidate is worse than the
baseline (direction from analysis.core.vocabulary) by more than `tolerance_abs` AND by more than `tolerance_rel`
of the baseline's value, and the difference is significant (t-test, see compare_stats; Benjamini-Hochberg over all
the batch × metric tests, so 600 noisy series do not give 30 chance regressions). Schedules (lr, epoch) are never
compared.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from analysis.core.config import AnalyzerConfig
from analysis.core.run import Run
from analysis.core.vocabulary import is_context, is_lower_better
from analysis.findings.baseline_file import load_baseline, write_baseline
from analysis.findings.batches import batch_metrics
from analysis.findings.compare_model import CompareConfig, Comparison, RunSide, SeriesDelta
from analysis.findings.compare_quality import quality_shifts
from analysis.findings.compare_stats import align, choose_alignment, parting_index, to_matrices, window_stats

if TYPE_CHECKING:
    from analysis.findings.pipeline import RunAnalysis

__all__ = ["CompareConfig", "Comparison", "RunSide", "SeriesDelta", "compare_runs", "run_side", "save_baseline"]


def _name(run: Run) -> str:
    return run.ref.name or run.ref.run_id


def run_side(source: Any, config: CompareConfig | None = None) -> RunSide:
    """A RunSide from a Run, a RunAnalysis, a RunSide or a saved baseline file (str / Path)."""
    from analysis.findings.pipeline import RunAnalysis

    config = config or CompareConfig()
    if isinstance(source, RunSide):
        return source
    if isinstance(source, RunAnalysis):
        return RunSide(_name(source.run), source.batches, source.quality)
    if isinstance(source, Run):
        return RunSide(_name(source), batch_metrics(source, config.analyzer.training_config.batch_key_pattern))
    if isinstance(source, (str, Path)):
        return load_baseline(source)
    raise TypeError(f"cannot compare a {type(source).__name__}: give a Run, a RunAnalysis or a baseline file")


def save_baseline(source: Any, path: str | Path, config: CompareConfig | None = None) -> Path:
    """Write the baseline file (analysis/findings/baseline_file.py) of a Run / RunAnalysis / RunSide to `path`."""
    return write_baseline(run_side(source, config), path)


def _compared(frame: pd.DataFrame, directions: AnalyzerConfig) -> pd.DataFrame:
    if frame.empty:
        return frame
    metrics = [str(m) for m in frame["metric"].unique()]
    drop = [m for m in metrics if is_context(m, directions.anomaly)]
    return frame[~frame["metric"].isin(drop)] if drop else frame


def compare_runs(
    baseline: Run | RunAnalysis | RunSide | str | Path,
    candidate: Run | RunAnalysis | RunSide | str | Path,
    config: CompareConfig | None = None,
) -> Comparison:
    """Per batch × metric deltas of `candidate` against `baseline` (see the module docstring)."""
    config = config or CompareConfig()
    base, cand = run_side(baseline, config), run_side(candidate, config)
    mb = to_matrices(_compared(base.batches, config.analyzer))
    mc = to_matrices(_compared(cand.batches, config.analyzer))
    all_b = {int(b) for m in mb.values() for b in m.batches}
    all_c = {int(b) for m in mc.values() for b in m.batches}
    deltas: list[SeriesDelta] = []
    p_slots: list[tuple[int, int]] = []
    modes: list[str] = []
    for metric in sorted(set(mb) & set(mc)):
        b, c = mb[metric], mc[metric]
        common = np.intersect1d(b.batches, c.batches)
        if common.size == 0:
            continue
        mode = choose_alignment(b.steps, c.steps, config.align)
        modes.append(mode)
        aligned = align(b, c, common, mode)
        ws = window_stats(aligned, b.columns(common), c.columns(common), config.window)
        lower = is_lower_better(metric, config.analyzer.anomaly)
        sign = 1.0 if lower else -1.0
        worsening = sign * (ws.cand_window - ws.base_window)
        beyond = (np.abs(worsening) > config.tolerance_abs) & (
            np.abs(worsening) > config.tolerance_rel * np.abs(ws.base_window)
        )
        shift = np.where(beyond, np.abs(worsening), np.nan)
        direction = np.where(worsening >= 0, 1.0, -1.0)
        part = parting_index(sign * direction[None, :] * (aligned.cand - aligned.base), shift)
        for j, batch in enumerate(common):
            p_slots.append((len(deltas), j))
            deltas.append(
                SeriesDelta(
                    batch=int(batch),
                    metric=metric,
                    lower_is_better=lower,
                    baseline_end=float(ws.base_end[j]),
                    candidate_end=float(ws.cand_end[j]),
                    baseline_window=float(ws.base_window[j]),
                    candidate_window=float(ws.cand_window[j]),
                    n_window=int(ws.n[j]),
                    p_value=float(ws.p[j]),
                    q_value=math.nan,
                    regression=bool(beyond[j] and worsening[j] > 0),  # significance applied below
                    improvement=bool(beyond[j] and worsening[j] < 0),
                    parting_step=int(aligned.steps[part[j]]) if part[j] >= 0 else None,
                )
            )
    deltas = _with_q_values(deltas, config.alpha)
    deltas.sort(key=lambda d: (not d.regression, -_finite(d.worsening), d.batch, d.metric))
    alignment = "step" if not modes or all(m == "step" for m in modes) else "progress"
    metrics_b, metrics_c = set(mb), set(mc)
    return Comparison(
        baseline=base.name,
        candidate=cand.name,
        alignment=alignment,
        config=config,
        deltas=tuple(deltas),
        new_batches=tuple(sorted(all_c - all_b)),
        vanished_batches=tuple(sorted(all_b - all_c)),
        new_metrics=tuple(sorted(metrics_c - metrics_b)),
        vanished_metrics=tuple(sorted(metrics_b - metrics_c)),
        quality=tuple(quality_shifts(base.quality, cand.quality)),
    )


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def _with_q_values(deltas: list[SeriesDelta], alpha: float) -> list[SeriesDelta]:
    """BH q-values over every tested series; a regression / improvement also needs q < alpha."""
    from dataclasses import replace

    p = np.array([d.p_value for d in deltas], dtype=float)
    q = np.full(p.size, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    out = []
    for d, qv in zip(deltas, q, strict=True):
        significant = bool(np.isfinite(qv) and qv < alpha)
        out.append(
            replace(
                d,
                q_value=float(qv),
                regression=d.regression and significant,
                improvement=d.improvement and significant,
                parting_step=d.parting_step if (d.regression or d.improvement) and significant else None,
            )
        )
    return out
