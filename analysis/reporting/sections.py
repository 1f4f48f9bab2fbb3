"""The report's plain-data sections built from a `RunAnalysis`: run identity, summary, problematic batches.

Which value of a metric is "worst" follows the shared vocabulary (`metric_direction` with the config's
`metric_directions`): the lowest recall, the highest loss / perplexity / error count. A NaN or Inf is always the
worst value and is reported explicitly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from analysis.core.vocabulary import Direction, Severity, metric_direction, worst_index, worst_severity
from analysis.reporting.quality_summary import quality_reasons_by_batch
from analysis.reporting.values import as_int, plain, redact

if TYPE_CHECKING:  # pragma: no cover
    from analysis.findings.pipeline import RunAnalysis

__all__ = [
    "MetricRows",
    "events_section",
    "problem_batches_section",
    "rows_by_batch",
    "run_section",
    "summary_section",
    "worst_values",
]

_BATCH_SEVERITIES = (Severity.OK, Severity.WARNING, Severity.CRITICAL)
_FINDING_SEVERITIES = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)


def run_section(run: Any) -> dict[str, Any]:
    """Who the run is and how cleanly it was read; its own config with secrets redacted."""
    ref = run.ref
    status = run.status
    history = run.history
    section: dict[str, Any] = plain(
        {
            "id": ref.run_id,
            "name": ref.name,
            "project": ref.project,
            "entity": ref.entity,
            "source": ref.source,
            "locator": ref.locator,
            "state": ref.state,
            "created": ref.created,
            "tags": list(run.tags),
            "notes": run.notes,
            "exit_code": run.exit_code,
            "n_history_rows": len(history),
            "step_axis": run.step_column if len(history.columns) else "_step",
            "read_status": {
                "clean": status.clean,
                "truncated": status.truncated,
                "skipped_records": status.skipped_records,
                "errors": list(status.errors),
            },
            "config": redact(plain(run.config)),
        }
    )
    return section


def summary_section(analysis: RunAnalysis) -> dict[str, Any]:
    """Verdict, worst severity (the max over every finding, ok when none) and counts."""
    b = analysis.batches
    steps = analysis.logged_steps
    by_sev = Counter(str(a.severity) for a in analysis.anomalies)
    events = list(getattr(analysis, "events", []))
    ev_sev = Counter(str(e.severity) for e in events)
    bs = analysis.batch_summary
    batch_severities = [str(s) for s in bs["severity"]] if len(bs) else []
    sev_batches = Counter(batch_severities)
    # The events decide (a detector hit no event explains is one click deeper, not an alarm); info never alarms.
    worst = worst_severity([e.severity for e in events if e.is_alarm] + batch_severities)
    g = analysis.global_metrics
    section: dict[str, Any] = plain(
        {
            "verdict": analysis.verdict,
            "severity": worst.value,
            "n_steps": int(steps.size),
            "first_step": as_int(steps[0]) if steps.size else None,
            "last_step": as_int(steps[-1]) if steps.size else None,
            "n_batches": int(b["batch"].nunique()) if len(b) else 0,
            "batch_metrics": sorted(b["metric"].unique().tolist()) if len(b) else [],
            "global_metrics": sorted(g["metric"].unique().tolist()) if len(g) else [],
            "n_problematic_batches": len(analysis.problematic_batches),
            "batches_by_severity": {s.value: int(sev_batches.get(s.value, 0)) for s in _BATCH_SEVERITIES},
            "n_events": sum(1 for e in events if e.is_alarm),
            "events_by_severity": {sv.value: int(ev_sev.get(sv.value, 0)) for sv in _FINDING_SEVERITIES},
            "n_anomalies": len(analysis.anomalies),
            "anomalies_by_severity": {s.value: int(by_sev.get(s.value, 0)) for s in _FINDING_SEVERITIES},
            "n_change_points": len(analysis.change_points),
            "n_root_causes": len(analysis.root_causes),
            "n_problem_images_logged": len(analysis.images),
            "duplicates": dups.summary() if (dups := getattr(analysis, "duplicates", None)) is not None else None,
        }
    )
    return section


def _evidence(rec: Any) -> dict[str, Any]:
    """One detector hit or change point behind an event, in short."""
    d = rec.to_dict()
    keep = ("step", "end_step", "batch", "metric", "detector", "severity", "value", "score", "delta")
    out = {k: d[k] for k in keep if k in d}
    out.setdefault("detector", "change_point")
    return out


def events_section(analysis: RunAnalysis) -> list[dict[str, Any]]:
    """Every event, worst first: what changed, where, how much, and the detector hits that agree."""
    out = []
    for e in getattr(analysis, "events", []):
        d = e.to_dict()
        d["evidence"] = [_evidence(r) for r in e.evidence]
        out.append(plain(d))
    return out


def _float_values(frame: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


# one batch's rows: metric -> (steps, values as float) in logged order
MetricRows = Mapping[str, tuple[np.ndarray, np.ndarray]]


def rows_by_batch(frame: pd.DataFrame) -> dict[int | None, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """batch -> its `MetricRows`, converted once for the whole frame (a wide run has thousands of batches)."""
    vals = _float_values(frame)
    steps = frame["step"].to_numpy()
    out: dict[int | None, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for key, rows in frame.groupby(["batch", "metric"], sort=False).indices.items():
        batch, metric = cast(tuple[Any, Any], key)
        out.setdefault(as_int(batch), {})[str(metric)] = (steps[rows], vals[rows])
    return out


def worst_values(series: MetricRows, directions: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """{metric: {"value", "step"}} of the worst value of each metric in a batch's rows (NaN/Inf first)."""
    out = {}
    for metric in sorted(series):
        steps, vals = series[metric]
        nonfinite = np.flatnonzero(~np.isfinite(vals))
        i = int(nonfinite[0]) if nonfinite.size else worst_index(vals, metric_direction(metric, directions))
        if i is None:
            continue
        out[metric] = {"value": float(vals[i]), "step": as_int(steps[i])}
    return out


def _primary_values(series: MetricRows, metric: str, direction: Direction) -> tuple[float, int | None, float]:
    """(worst finite value, its step, last finite value) of one batch's primary metric, in step order;
    (NaN, None, NaN) when it never had a finite value."""
    if metric not in series:
        return np.nan, None, np.nan
    steps, vals = series[metric]
    order = np.argsort(steps, kind="stable")
    steps, vals = steps[order], vals[order]
    finite = np.flatnonzero(np.isfinite(vals))
    i = worst_index(vals, direction)
    if i is None:
        return np.nan, None, np.nan
    return float(vals[i]), as_int(steps[i]), float(vals[finite[-1]])


def _step_or_none(v: Any) -> int | None:
    """batch_summary uses -1 for "no such step"."""
    i = as_int(v)
    return None if i is None or i < 0 else i


def problem_batches_section(analysis: RunAnalysis) -> list[dict[str, Any]]:
    """One entry per problematic batch, worst first: where it went bad, its worst values, images, causes.

    `worst_value` / `last_value` are of the primary metric (named in `metric`); `worst_recall` / `last_recall`
    repeat them under their schema-1.0 names (deprecated)."""
    bs = analysis.batch_summary
    if not len(bs):
        return []
    wanted = set(analysis.problematic_batches)
    batches = analysis.batches
    metric = analysis.primary_metric
    directions = analysis.config.anomaly.metric_directions
    direction = metric_direction(metric, directions)
    causes: dict[int, list[str]] = {}
    for rc in sorted(analysis.root_causes, key=lambda r: -r.score):
        if rc.batch is not None:
            causes.setdefault(int(rc.batch), []).append(rc.sentence)
    reasons = quality_reasons_by_batch(analysis.quality)
    by_batch = rows_by_batch(batches[batches["batch"].isin(wanted)]) if len(batches) else {}
    out = []
    for row in bs.itertuples(index=False):
        batch = as_int(row.batch)
        if batch is None or batch not in wanted:
            continue
        rows = by_batch.get(batch, {})
        worst, worst_step, last = _primary_values(rows, metric, direction)
        entry = {
            "batch": batch,
            "severity": str(row.severity),
            "metric": metric,
            "first_bad_step": _step_or_none(row.first_bad_step),
            "worst_step": worst_step,
            "worst_value": worst,
            "last_value": last,
            "worst_recall": worst,  # deprecated alias (schema 1.0 name), same value
            "last_recall": last,  # deprecated alias (schema 1.0 name), same value
            "worst_values": worst_values(rows, directions),
            "n_anomalies": as_int(row.n_anomalies) or 0,
            "n_events": as_int(getattr(row, "n_events", 0)) or 0,
            "n_change_points": as_int(row.n_change_points) or 0,
            "n_problem_images": as_int(row.n_problem_images) or 0,
            "quality_reasons": reasons.get(batch, {}),
            "root_causes": causes.get(batch, []),
        }
        out.append(plain(entry))
    return out
