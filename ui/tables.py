"""The tables and lists the pages draw, built from the analysis and the image scores. No Streamlit here.

Pages read their widgets, call these functions and draw what they return; everything in this module can be
tested on plain data frames.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from analysis.core.config import AlertsConfig, AnomalyDetectionConfig
from analysis.core.records import Anomaly, ChangePoint
from analysis.core.run import RunRef
from analysis.core.vocabulary import is_validation, run_metrics_to_draw, severity_rank
from ui.format import fmt_value, md_escape

if TYPE_CHECKING:
    from analysis.findings.events import Event

__all__ = [
    "DQ_BASE_COLUMNS",
    "FINDINGS_COLUMNS",
    "GALLERY_PAGE",
    "SORT_KEYS",
    "alert_destinations",
    "alert_result_style",
    "alert_sinks_table",
    "badge_line",
    "batch_labels",
    "count_failing",
    "default_batches",
    "default_global_metrics",
    "detection_table",
    "extra_score_columns",
    "failing_mask",
    "failing_reasons_line",
    "filter_runs",
    "findings_table",
    "gallery_page",
    "gallery_pages",
    "image_score_table",
    "images_at_step",
    "primary_first",
    "ranking_table",
    "reasons_text",
    "rejected_table",
    "report_file_stem",
    "runs_table",
    "scores_csv",
    "strategies_table",
    "summary_without_batches",
    "with_abs_rotation",
]


# ------------------------------------------------------------------------------------------------ sidebar
def filter_runs(runs: list[RunRef], query: str) -> list[RunRef]:
    """Runs whose name, id, project or state contains every word of `query` (case-insensitive)."""
    words = query.lower().split()
    return [r for r in runs if all(w in f"{r.name} {r.run_id} {r.project} {r.state}".lower() for w in words)]


# ----------------------------------------------------------------------------------------------- overview
def default_batches(problematic: Sequence[int], batches: Sequence[int], limit: int = 8) -> list[int]:
    """The batches preselected on the Overview: the first `limit` problematic ones that have curves."""
    known = set(batches)
    return [b for b in problematic[:limit] if b in known]


def default_global_metrics(names: Sequence[str], flagged: Sequence[str] = ()) -> list[str]:
    """Run-level metrics shown first (`vocabulary.run_metrics_to_draw`): those with a warning or critical event
    (`flagged`, worst first), then validation metrics, up to four; with neither, the first three (never a learning
    rate or a counter while a graded metric is left)."""
    ordered = run_metrics_to_draw(names, flagged)
    alarmed = set(flagged)
    picked = [n for n in ordered if n in alarmed or is_validation(n)][:4]
    return picked or ordered[:3]


def summary_without_batches(summary: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """(run summary without nested values and `batch_*` keys, number of `batch_*` keys left out)."""
    shown = {k: v for k, v in summary.items() if not isinstance(v, dict) and not k.startswith("batch_")}
    hidden = sum(1 for k in summary if k.startswith("batch_"))
    return shown, hidden


FINDINGS_COLUMNS = ["severity", "batch", "metric", "step", "until", "value", "detector", "message"]


def findings_table(
    anomalies: Iterable[Anomaly], change_points: Iterable[ChangePoint], batch: int | None = None
) -> pd.DataFrame:
    """Anomalies and change points as one table, most severe first (then by step); one batch's when given."""
    rows: list[dict[str, Any]] = [
        {
            "severity": a.severity,
            "batch": a.batch,
            "metric": a.metric,
            "step": a.step,
            "until": a.end_step,
            "value": a.value,
            "detector": a.detector,
            "message": a.message,
        }
        for a in anomalies
        if batch is None or a.batch == batch
    ]
    rows += [
        {
            "severity": c.severity,
            "batch": c.batch,
            "metric": c.metric,
            "step": c.step,
            "until": None,
            "value": c.mean_after,
            "detector": "change_point",
            "message": f"mean {fmt_value(c.mean_before)} → {fmt_value(c.mean_after)} (Δ {c.delta:+.3f})",
        }
        for c in change_points
        if batch is None or c.batch == batch
    ]
    return _most_severe_first(rows, FINDINGS_COLUMNS)


EVENT_COLUMNS = ["severity", "batch", "metrics", "kind", "step", "until", "before", "after", "evidence", "message"]


def events_table(events: Iterable[Event], batch: int | None = None, include_info: bool = False) -> pd.DataFrame:
    """Events as a table, worst first (then by step); one batch's when given. Info notes (improvements, calmer
    noise) are left out unless asked for: they are not anomalies."""
    rows: list[dict[str, Any]] = [
        {
            "severity": e.severity,
            "batch": e.batch,
            "metrics": ", ".join(e.metrics),
            "kind": e.kind,
            "step": e.start_step,
            "until": e.end_step if e.end_step != e.start_step else None,
            "before": e.value_before,
            "after": e.value_after,
            "evidence": ", ".join(e.detectors),
            "message": e.message,
        }
        for e in events
        if (batch is None or e.batch == batch) and (include_info or e.is_alarm)
    ]
    return _most_severe_first(rows, EVENT_COLUMNS)


def _most_severe_first(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A findings or events table, most severe first, then by step; nullable integer batch and end step."""
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows, columns=columns)
    table["batch"] = table["batch"].astype("Int64")
    table["until"] = table["until"].astype("Int64")
    table["_rank"] = table["severity"].map(severity_rank)
    table = table.sort_values(["_rank", "step"], ascending=[False, True], kind="stable").drop(columns="_rank")
    return table.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ batches
GALLERY_PAGE = 24
# sort choice -> (column, ascending)
SORT_KEYS = {
    "blur (blurriest first)": ("blur_score", True),
    "rotation (most rotated first)": ("abs_rotation", False),
    "resolution (smallest first)": ("pixels", True),
    "path": ("path", True),
}


def batch_labels(summary: pd.DataFrame) -> dict[int, str]:
    """`batch 7 (critical)` per batch of the batch summary, for the batch picker."""
    return {int(b): f"batch {int(b)} ({sev})" for b, sev in zip(summary["batch"], summary["severity"])}


# Column headers of the Batches ranking in words; `{metric}` is the primary metric (the summary's `*_recall`
# columns hold it, whatever it is called).
RANKING_HEADERS = {
    "batch": "Batch",
    "severity": "Severity",
    "first_bad_step": "First bad step",
    "worst_recall": "Worst {metric}",
    "worst_step": "Worst at step",
    "last_recall": "Last {metric}",
    "n_events": "Events",
    "n_anomalies": "Detector hits",
    "n_change_points": "Detector change points",
    "n_problem_images": "Problem images",
}


def ranking_table(summary: pd.DataFrame, metric: str) -> Styler:
    """The Batches ranking for display: headers in words, severity second, and no `-1` first bad step for a
    healthy batch (an empty cell shown as `—`); numbers keep their type, so sorting by a column still works."""
    table = summary.copy()
    if "first_bad_step" in table:
        steps = pd.to_numeric(table["first_bad_step"], errors="coerce").astype("Float64")
        table["first_bad_step"] = steps.where(steps >= 0).round().astype("Int64")
    order = [c for c in RANKING_HEADERS if c in table] + [c for c in table.columns if c not in RANKING_HEADERS]
    table = table[order].rename(columns={k: v.format(metric=metric) for k, v in RANKING_HEADERS.items()})
    return _styled(table)


RUNS_HEADERS = {
    "run": "Run",
    "run_id": "Run id",
    "state": "State",
    "verdict": "Verdict",
    "severity": "Severity",
    "worst_batch": "Worst batch",
    "first_bad_step": "First bad step",
    "regression": "Regressed",
    "regressed_batches": "Regressed batches",
    "error": "Error",
}


def runs_table(table: pd.DataFrame) -> Styler:
    """The Runs page's table (one row per run) with headers in words; missing values shown as `—`."""
    return _styled(table.rename(columns=RUNS_HEADERS))


def _float_text(v: Any) -> str:
    """A float cell: 4 significant digits; a logged NaN/Inf stays visible as such (it is a finding)."""
    if v is None or v is pd.NA:
        return "—"
    f = float(v)
    return fmt_value(f) if not np.isfinite(f) else f"{f:.4g}"


def _styled(table: pd.DataFrame) -> Styler:
    """Missing values (a healthy batch's first bad step, a run without a worst batch) as `—`."""
    floats: list[Hashable] = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    return table.style.format(na_rep="—").format(_float_text, subset=floats)


def primary_first(metrics: Iterable[str], primary: str) -> list[str]:
    """Metric names sorted, the primary metric first (its tab opens by default)."""
    return sorted(metrics, key=lambda m: (m != primary, m))


def images_at_step(images: pd.DataFrame, step: Any, scores: pd.DataFrame | None, sort_label: str) -> pd.DataFrame:
    """The logged image paths of one step with their quality scores (when audited), sorted by `sort_label`.

    `images` is one batch's rows of the analysis' image lists (columns `step`, `path`); scored rows gain
    `abs_rotation` and `pixels` for sorting.
    """
    at_step = images.loc[images["step"] == step, ["path"]]
    if scores is not None:
        at_step = at_step.merge(scores.drop(columns=["batch"], errors="ignore"), on="path", how="left")
        if "blur_score" in at_step:
            at_step["abs_rotation"] = at_step["rotation_angle"].abs()
            at_step["pixels"] = at_step["width"] * at_step["height"]
    col, ascending = SORT_KEYS[sort_label]
    if col in at_step:
        at_step = at_step.sort_values(col, ascending=ascending, na_position="last")
    return at_step


def count_failing(table: pd.DataFrame) -> int:
    """Rows whose `is_acceptable` is False (unscored rows count as acceptable)."""
    if "is_acceptable" not in table:
        return 0
    return int((~table["is_acceptable"].astype("boolean").fillna(True)).sum())


def gallery_pages(n_rows: int, per_page: int = GALLERY_PAGE) -> int:
    return max(1, (n_rows + per_page - 1) // per_page)


def gallery_page(table: pd.DataFrame, page_no: int, per_page: int = GALLERY_PAGE) -> pd.DataFrame:
    """Rows of page `page_no` (1-based)."""
    return table.iloc[(page_no - 1) * per_page : page_no * per_page]


def _reason_list(reasons: Any) -> list[str]:
    if isinstance(reasons, (list, tuple, np.ndarray)):
        return [str(r) for r in reasons]
    return []


def _score_text(value: Any, digits: int, unit: str = "") -> str:
    """A score for a badge: `—` when missing or not finite (an unreadable rotation is no angle), and never `-0.0`
    (a rounding of a tiny negative angle)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "—"
    if not np.isfinite(v):
        return "—"
    text = f"{v:.{digits}f}"
    if float(text) == 0:
        text = f"{0.0:.{digits}f}"
    return text + unit


def _size_text(row: pd.Series) -> str:
    try:
        return f"{int(row['width'])}×{int(row['height'])}"
    except (TypeError, ValueError, KeyError):
        return "size —"


def badge_line(row: pd.Series | None) -> str:
    """One image's scores in a line (markdown-safe): `✗ fails blur 12 · rot 0.5° · 480×160 — blurry`."""
    if row is None:
        return "not scored"
    if isinstance(row.get("error"), str) and row["error"]:
        return f"unreadable: {md_escape(row['error'])}"  # the message names the logged path: untrusted text
    ok = "✓ ok" if row.get("is_acceptable") else "✗ fails"
    line = (
        f"{ok} blur {_score_text(row.get('blur_score'), 0)} · rot {_score_text(row.get('rotation_angle'), 1, '°')} "
        f"· {_size_text(row)}"
    )
    reasons = _reason_list(row.get("reasons"))
    if reasons:
        line += " — " + "; ".join(md_escape(r) for r in reasons)
    return line


def failing_reasons_line(row: pd.Series) -> str | None:
    """`**Fails:** blurry; rotated` for an image that fails, else None."""
    reasons = _reason_list(row.get("reasons"))
    return "**Fails:** " + "; ".join(md_escape(r) for r in reasons) if reasons else None


def image_score_table(row: pd.Series) -> pd.DataFrame:
    """Every score of one image as (score, value) text rows, without the sorting helpers."""
    shown = row.drop(labels=["abs_rotation", "pixels"], errors="ignore")
    return pd.DataFrame({"score": shown.index, "value": [fmt_value(v) for v in shown.values]})


# ------------------------------------------------------------------------------------------- data quality
# Columns of an audit that are not extra scores (extra numeric columns get their own histograms).
DQ_BASE_COLUMNS = frozenset(
    {"path", "width", "height", "blur_score", "rotation_angle", "error", "batch", "is_acceptable", "reasons",
     "reason_codes", "abs_rotation"}
)  # fmt: skip


def with_abs_rotation(scores: pd.DataFrame) -> pd.DataFrame:
    """Audit scores plus `abs_rotation` (the rotation histogram and threshold are on the magnitude)."""
    return scores.assign(abs_rotation=scores["rotation_angle"].abs())


def extra_score_columns(scores: pd.DataFrame) -> list[str]:
    """Numeric score columns beyond the base ones (e.g. contrast), in the audit's order."""
    return [c for c in scores.columns if c not in DQ_BASE_COLUMNS and pd.api.types.is_numeric_dtype(scores[c])]


def failing_mask(values: np.ndarray, threshold: float, side: str) -> np.ndarray:
    """Values on the failing side of a threshold ("below" fails when smaller, "above" when larger); NaN never fails."""
    with np.errstate(invalid="ignore"):
        return values < threshold if side == "below" else values > threshold


def reasons_text(reasons: pd.Series) -> pd.Series:
    """Each row's reasons (a list) as one `; `-separated string, for tables and CSV."""
    return reasons.map(lambda r: "; ".join(str(x) for x in r) if isinstance(r, (list, tuple, np.ndarray)) else str(r))


def _text_lists(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.assign(reasons=reasons_text(frame["reasons"]))
    if "reason_codes" in out:
        out["reason_codes"] = reasons_text(out["reason_codes"])
    return out


def rejected_table(flagged: pd.DataFrame, limit: int) -> tuple[pd.DataFrame, int]:
    """(the first `limit` rejected images with their reasons as text, how many are rejected in all). The path and
    the reasons come first: why an image fails is what the table is read for (they sat ten columns to the right)."""
    rejected = flagged.loc[~flagged["is_acceptable"].astype(bool)].drop(
        columns=["batch", "abs_rotation", "is_acceptable"], errors="ignore"
    )
    first = [c for c in ("path", "reasons") if c in rejected.columns]
    rejected = rejected[[*first, *(c for c in rejected.columns if c not in first)]]
    return _text_lists(rejected.head(limit)), len(rejected)


def scores_csv(flagged: pd.DataFrame) -> str:
    """Every image's scores and flags as CSV (reasons as text)."""
    return _text_lists(flagged.drop(columns=["abs_rotation"], errors="ignore")).to_csv(index=False)


# ---------------------------------------------------------------------------------------------- reports
def report_file_stem(label: str) -> str:
    """A file-name-safe stem from a run label (`run` when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "run"


# ---------------------------------------------------------------------------------------------- monitor
def alert_sinks_table(alerts: AlertsConfig) -> pd.DataFrame:
    """Each alert sink, whether it is configured, and where its settings come from (the webhook URL is hidden)."""
    from analysis.monitoring.apprise_sink import INSTALL_HINT, apprise_display

    webhook = alerts.resolved_slack_webhook()
    apprise_urls = alerts.resolved_apprise_urls()
    email = f"{', '.join(alerts.email_recipients) or 'no recipients'} via {alerts.smtp_host}:{alerts.smtp_port}"
    return pd.DataFrame(
        [
            {
                "sink": "Slack webhook",
                "configured": bool(webhook),
                "detail": "from $SLACK_WEBHOOK_URL or config (URL hidden)" if webhook else "set $SLACK_WEBHOOK_URL",
            },
            {
                "sink": "Email (SMTP)",
                "configured": bool(alerts.email_recipients),
                "detail": email + (" (STARTTLS)" if alerts.smtp_starttls else ""),
            },
            {
                "sink": "Apprise",
                "configured": bool(apprise_urls),
                "detail": ", ".join(apprise_display(u) for u in apprise_urls)  # service and host only
                or f"set alerts.apprise_urls or $APPRISE_URLS ({INSTALL_HINT})",
            },
            {"sink": "wandb.alert", "configured": True, "detail": "when a wandb run is active in the training process"},
            {"sink": "log", "configured": True, "detail": "Python logging, always on"},
        ]
    )


def strategies_table(strategies: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame([{"strategy": s} for s in strategies])


def detection_table(detection: AnomalyDetectionConfig) -> pd.DataFrame:
    """Every anomaly-detection setting as (setting, value as text)."""
    return pd.DataFrame([{"setting": k, "value": str(v)} for k, v in detection.model_dump().items()])


def alert_result_style(ok: bool, detail: str) -> str:
    """How one sink's test-alert outcome is shown: `success` when delivered, `info` when the sink was skipped
    (e.g. no active wandb run in the dashboard's process: nothing was sent, nothing failed), `error` otherwise."""
    if not ok:
        return "error"
    return "info" if detail.strip().lower().startswith("skipped") else "success"


def alert_destinations(alerts: AlertsConfig) -> list[str]:
    """Where a test alert would go (the webhook URL, the SMTP host), for the allow-list check of a confined
    dashboard; nothing for sinks that are not configured."""
    out: list[str] = []
    webhook = alerts.resolved_slack_webhook()
    if webhook:
        out.append(webhook)
    if alerts.email_recipients:
        out.append(alerts.smtp_host)
    from analysis.monitoring.apprise_sink import apprise_display

    # Apprise: the URL's host when it names a machine (json://internal:8080/...), else `<redacted>` (a Discord id,
    # a Telegram bot token), which no allow-list holds: a confined server refuses services it cannot place
    out.extend(apprise_display(u) for u in alerts.resolved_apprise_urls())
    return out
