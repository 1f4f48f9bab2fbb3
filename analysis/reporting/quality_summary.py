"""The report's image-quality section: counts, thresholds, score ranges, per-batch reasons and the worst images.

Reasons are grouped by their code (the `reason_codes` column: `QualityReason` values beside the human `reasons`
messages), never by parsing the message text. Quality frames written before that column existed give an empty
grouping; their messages are still listed per image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.core.vocabulary import QualityReason
from analysis.reporting.values import as_float, as_int, plain

if TYPE_CHECKING:  # pragma: no cover
    from analysis.findings.pipeline import RunAnalysis

__all__ = [
    "MAX_WORST_IMAGES",
    "has_reason",
    "quality_reasons_by_batch",
    "quality_section",
    "rank_worst_images",
    "reason_codes",
    "reason_label",
    "reasons_list",
]

MAX_WORST_IMAGES = 100  # rows listed under quality.worst_images (and the most thumbnails the HTML can show)
_NOT_SCORES = ("path", "batch", "is_acceptable", "reasons", "reason_codes", "error")


def reasons_list(v: Any) -> list[str]:
    """A row's `reasons` cell (list, array, single string or missing) as a list of messages."""
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v else []
    try:
        return [str(x) for x in list(v)]
    except TypeError:
        return []


def reason_codes(v: Any) -> list[QualityReason]:
    """A row's `reason_codes` cell as distinct QualityReason members, in order; unknown codes are skipped."""
    out: list[QualityReason] = []
    for x in reasons_list(v):
        try:
            code = QualityReason(x.strip().lower())
        except ValueError:
            continue
        if code not in out:
            out.append(code)
    return out


def reason_label(code: str) -> str:
    """The human name of a reason code ('contrast' -> 'low contrast'); an unknown code is shown as it is."""
    try:
        return QualityReason(code).label
    except ValueError:
        return code


def _code_cells(q: pd.DataFrame | None) -> Iterable[Any]:
    if q is None or "reason_codes" not in q.columns:
        return ()
    return q["reason_codes"]


def has_reason(q: pd.DataFrame | None, code: QualityReason) -> bool:
    """True when some image of the quality frame fails for `code`."""
    return any(code in reason_codes(cell) for cell in _code_cells(q))


def quality_reasons_by_batch(q: pd.DataFrame | None) -> dict[int, dict[str, int]]:
    """{batch: {reason code: images of that batch failing for it}}, most frequent first."""
    if q is None or not len(q) or "batch" not in q.columns or "reason_codes" not in q.columns:
        return {}
    out: dict[int, Counter[str]] = {}
    for batch, cell in zip(q["batch"], q["reason_codes"], strict=True):
        b = as_int(batch)
        if b is None:
            continue
        counts = out.setdefault(b, Counter())
        counts.update(code.value for code in reason_codes(cell))
    return {b: dict(c.most_common()) for b, c in out.items()}


def _is_acceptable(q: pd.DataFrame) -> pd.Series:
    if "is_acceptable" in q.columns:
        return q["is_acceptable"].fillna(False).astype(bool)
    return pd.Series(True, index=q.index)


def _errors(q: pd.DataFrame) -> pd.Series:
    if "error" in q.columns:
        return q["error"].notna() & (q["error"].astype("string").fillna("") != "")
    return pd.Series(False, index=q.index)


def rank_worst_images(q: pd.DataFrame) -> pd.DataFrame:
    """Quality rows worst first: rejected before accepted, more reasons first, then lowest blur score."""
    if not len(q):
        return q
    key = pd.DataFrame(
        {
            "ok": _is_acceptable(q).astype(int),
            "n": -q["reasons"].map(lambda r: len(reasons_list(r))) if "reasons" in q.columns else 0,
            "blur": pd.to_numeric(q["blur_score"], errors="coerce") if "blur_score" in q.columns else 0.0,
        },
        index=q.index,
    )
    order = key.sort_values(["ok", "n", "blur"], kind="stable", na_position="last").index
    return q.loc[order]


def _score_ranges(q: pd.DataFrame) -> dict[str, dict[str, float]]:
    columns = {}
    for col in q.columns:
        if col in _NOT_SCORES or not pd.api.types.is_numeric_dtype(q[col]):
            continue
        vals = pd.to_numeric(q[col], errors="coerce").dropna()
        if len(vals):
            columns[str(col)] = {"min": float(vals.min()), "median": float(vals.median()), "max": float(vals.max())}
    return columns


def _by_batch(q: pd.DataFrame, ok: pd.Series) -> list[dict[str, int]]:
    if "batch" not in q.columns or not len(q):
        return []
    grp = pd.DataFrame({"batch": q["batch"], "rejected": ~ok}).dropna(subset=["batch"])
    return [
        {"batch": b, "n_images": len(g), "n_rejected": int(g["rejected"].sum())}
        for batch, g in grp.groupby("batch", sort=True)
        if (b := as_int(batch)) is not None
    ]


def _worst_rows(q: pd.DataFrame, ok: pd.Series) -> list[dict[str, Any]]:
    worst = rank_worst_images(q[~ok]) if len(q) else q
    rows = []
    for row in worst.head(MAX_WORST_IMAGES).to_dict("records"):
        rows.append(
            plain(
                {
                    "path": str(row.get("path")),
                    "batch": as_int(row.get("batch")),
                    "reasons": reasons_list(row.get("reasons")),
                    "reason_codes": [c.value for c in reason_codes(row.get("reason_codes"))],
                    "error": row.get("error") or None,
                    **{
                        c: as_float(row.get(c)) for c in ("width", "height", "blur_score", "rotation_angle") if c in row
                    },
                }
            )
        )
    return rows


def _hints(q: pd.DataFrame, min_resolution: tuple[int, ...]) -> list[str]:
    """Advice on the thresholds the scores suggest: text-line crops held back by a page-sized minimum resolution
    (`quality.audit.line_crop_hint`, imported here: the dashboard loads this module without OpenCV)."""
    from quality.audit import line_crop_hint

    width, height = (int(v) for v in min_resolution[:2])
    hint = line_crop_hint(q, (width, height)) if {"width", "height"} <= set(q.columns) else None
    return [hint.sentence] if hint is not None else []


def quality_section(analysis: RunAnalysis) -> dict[str, Any] | None:
    """The JSON `quality` object; None when no data directory was scored."""
    q = analysis.quality
    if q is None:
        return None
    dq = analysis.config.data_quality
    ok = _is_acceptable(q)
    reasons: Counter[str] = Counter()
    for cell in _code_cells(q):
        reasons.update(code.value for code in reason_codes(cell))
    n = len(q)
    section = {
        "n_images": n,
        "n_acceptable": int(ok.sum()),
        "n_rejected": int((~ok).sum()),
        "n_errors": int(_errors(q).sum()),
        "acceptable_rate": (float(ok.sum()) / n) if n else None,
        "thresholds": {
            "min_resolution": list(dq.min_resolution),
            "max_rotation_degrees": dq.max_rotation_degrees,
            "blur_threshold": dq.blur_threshold,
            "min_contrast": getattr(dq, "min_contrast", None),
        },
        "reasons": dict(reasons.most_common()),
        "columns": _score_ranges(q),
        "by_batch": _by_batch(q, ok),
        "worst_images": _worst_rows(q, ok),
        "hints": _hints(q, tuple(dq.min_resolution)),
    }
    result: dict[str, Any] = plain(section)
    return result
