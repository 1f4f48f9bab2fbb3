"""Image-quality evidence for a root cause: a batch's images against every other image, with numbers.

Per score, Mann-Whitney U (two-sided) and the rank-biserial effect size; failures are counted per
`QualityReason` code from the `reason_codes` column the quality filter writes beside its messages (never parsed
back out of the message text). A frame without that column gives no per-reason counts, only the failing total.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from analysis.core.vocabulary import QualityReason

__all__ = ["ALPHA", "compare_quality", "quality_phrase"]

ALPHA = 0.05  # a score difference counts as evidence below this p-value

# Quality score columns: label, which direction is worse (-1 lower, +1 higher, 0 either), words for lower/higher.
_SCORES: dict[str, tuple[str, int, str, str]] = {
    "blur_score": ("blur", -1, "blurrier", "sharper"),
    "rotation_abs": ("rotation", +1, "less rotated", "more rotated"),
    "resolution": ("resolution", -1, "smaller", "larger"),
    "contrast": ("contrast", -1, "lower in contrast", "higher in contrast"),
    "noise": ("noise", +1, "less noisy", "noisier"),
    "brightness": ("brightness", 0, "darker", "brighter"),
}
_NOT_SCORES = {"batch", "width", "height", "rotation_angle", "rotation_confidence", "orientation",
               "orientation_confidence", "is_acceptable", "step"}  # fmt: skip
_TEXT_COLUMNS = {"path", "error", "reasons", "reason_codes"}


def _score_frame(quality: pd.DataFrame) -> pd.DataFrame:
    """Numeric quality scores, oriented: |rotation|, resolution = min(width, height), plus other numerics."""
    out = pd.DataFrame(index=quality.index)
    if "blur_score" in quality:
        out["blur_score"] = pd.to_numeric(quality["blur_score"], errors="coerce")
    if "rotation_angle" in quality:
        out["rotation_abs"] = pd.to_numeric(quality["rotation_angle"], errors="coerce").abs()
    if {"width", "height"} <= set(quality.columns):
        w = pd.to_numeric(quality["width"], errors="coerce")
        h = pd.to_numeric(quality["height"], errors="coerce")
        out["resolution"] = np.minimum(w, h)
    for col in quality.columns:
        if col in out.columns or col in _NOT_SCORES or col in _TEXT_COLUMNS:
            continue
        vals = pd.to_numeric(quality[col], errors="coerce") if quality[col].dtype != bool else None
        if vals is not None and vals.notna().any():
            out[col] = vals
    return out


def _codes(cell: Any) -> set[str]:
    """The distinct known reason codes of one `reason_codes` cell (list or array; anything else has none)."""
    if not isinstance(cell, (list, tuple, np.ndarray)):
        return set()
    known = {r.value for r in QualityReason}
    return {str(c) for c in cell if str(c) in known}


def compare_quality(quality: pd.DataFrame | None, batch: int) -> dict[str, Any]:
    """Per-score Mann-Whitney U of the batch's images vs all other images, plus failure counts.

    Returns {"n": ..., "n_other": ..., "scores": {name: {median, median_other, p, effect}}, "failures":
    {reason code: count}, "n_failing": ...}. `effect` is the rank-biserial correlation in [-1, 1]: P(batch > other)
    - P(batch < other).
    """
    if quality is None or quality.empty or "batch" not in quality.columns:
        return {"n": 0}
    qb = pd.to_numeric(quality["batch"], errors="coerce")
    mine = (qb == batch).fillna(False).to_numpy(dtype=bool)
    if "error" in quality.columns:
        usable = quality["error"].isna().to_numpy() | (quality["error"].astype(str) == "None").to_numpy()
    else:
        usable = np.ones(len(quality), dtype=bool)
    scores = _score_frame(quality)
    result: dict[str, Any] = {
        "n": int((mine & usable).sum()),
        "n_other": int((~mine & usable).sum()),
        "scores": {},
        "n_images": int(mine.sum()),
    }  # `n` counts the scored ones; failures count every image
    for col in scores.columns:
        a = scores[col].to_numpy(dtype=float)[mine & usable]
        b = scores[col].to_numpy(dtype=float)[~mine & usable]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size < 2 or b.size < 2:
            continue
        if np.ptp(np.r_[a, b]) == 0:
            continue
        u, p = mannwhitneyu(a, b, alternative="two-sided")
        effect = 2.0 * float(u) / (a.size * b.size) - 1.0
        result["scores"][col] = {
            "median": float(np.median(a)),
            "median_other": float(np.median(b)),
            "p": float(p),
            "effect": effect,
        }
    fails: Counter[str] = Counter()
    n_failing = 0
    if "is_acceptable" in quality.columns:
        acc = quality.loc[mine, "is_acceptable"]
        n_failing = int((acc == False).sum())  # noqa: E712  (NA counts as not failing)
    if "reason_codes" in quality.columns:
        for cell in quality.loc[mine, "reason_codes"]:
            fails.update(_codes(cell))
    result["failures"] = dict(fails.most_common())
    result["n_failing"] = n_failing
    return result


def quality_phrase(ev: dict[str, Any]) -> tuple[str, float]:
    """('its images are blurrier (median blur 38 vs 410, p < 0.001); 11 of 12 fail the blur threshold', strength).

    `strength` is the largest |effect| among the significantly worse scores (0 when none).
    """
    if not ev or max(ev.get("n", 0), ev.get("n_images", 0)) == 0:
        return "", 0.0
    parts: list[str] = []
    strength = 0.0
    worse = []
    for col, st in ev.get("scores", {}).items():
        if st["p"] >= ALPHA:
            continue
        # Unknown numeric scores: assume higher is worse (noise-like), as the quality module names them.
        label, bad_way, lower_word, higher_word = _SCORES.get(col, (col, +1, f"lower in {col}", f"higher in {col}"))
        went = -1 if st["effect"] < 0 else +1
        if bad_way and went != bad_way:
            continue  # significantly *better* images do not explain a fall
        worse.append((abs(st["effect"]), col, label, lower_word if went < 0 else higher_word, st))
    worse.sort(key=lambda w: w[0], reverse=True)
    described = [
        f"{word} (median {label} {_num(st['median'])} vs {_num(st['median_other'])}, {_pval(st['p'])})"
        for _, col, label, word, st in worse[:2]
    ]
    if described:
        parts.append("its images are " + " and ".join(described))
        strength = worse[0][0]
    fails = ev.get("failures", {})
    total = max(ev.get("n_images", ev["n"]), ev["n"])
    if fails:
        code, count = next(iter(fails.items()))
        parts.append(_failure_sentence(QualityReason(code), count, total))
    elif ev.get("n_failing"):
        parts.append(f"{ev['n_failing']} of {total} fail the quality checks")
    return "; ".join(parts), strength


def _failure_sentence(code: QualityReason, count: int, total: int) -> str:
    """'8 of 8 fail the contrast threshold' (the check is named by its code: blur, rotation, resolution, contrast)."""
    if code is QualityReason.UNREADABLE:
        return f"{count} of {total} images cannot be read"
    return f"{count} of {total} fail the {code.value} threshold ({code.label})"


def _num(v: float) -> str:
    """Quality numbers: 410, 54.9, 26, 0.36."""
    if not math.isfinite(v):
        return str(v)
    if float(v).is_integer() or abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _pval(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
