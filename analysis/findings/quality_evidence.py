"""Image-quality evidence for a root cause: each batch's images against every other image, with numbers.

Per score, Mann-Whitney U (two-sided) and the rank-biserial effect size; per failure reason, a one-sided Fisher
exact test (hypergeometric tail: does the batch fail this check more often than the other images?). Failures are
counted per `QualityReason` code from the `reason_codes` column the quality filter writes beside its messages (never
parsed back out of the message text); a frame without that column is tested on `is_acceptable` alone.

Multiple testing: a run with 40 batches and 6 scores makes 240 score tests, so about 12 would pass p < 0.05 by
chance alone. `compare_all_batches` runs every score and failure test of every batch of the run and adjusts all of
their p-values together with Benjamini-Hochberg (`scipy.stats.false_discovery_control`); a difference is evidence
when its q-value (the adjusted p) is below `ALPHA`, which is then the expected share of false discoveries among the
differences quoted. Effect sizes are kept beside both values.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.vocabulary import QualityReason

__all__ = ["ALPHA", "ANY_FAILURE", "compare_all_batches", "compare_quality", "quality_phrase"]

ALPHA = 0.05  # false discovery rate: a difference is evidence when its Benjamini-Hochberg q-value is below this
ANY_FAILURE = "any"  # failure-test key when the frame has no reason codes, only `is_acceptable`

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
_EXACT_BELOW = 9  # scipy's exact Mann-Whitney U when both samples are this small (else the normal approximation)


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


def _usable(quality: pd.DataFrame) -> np.ndarray:
    """Rows that were scored (no error)."""
    if "error" not in quality.columns:
        return np.ones(len(quality), dtype=bool)
    return quality["error"].isna().to_numpy() | (quality["error"].astype(str) == "None").to_numpy()


def _mann_whitney(ranks: np.ndarray, mine: np.ndarray, tie_term: float) -> tuple[float, float]:
    """(U of `mine` against the rest, two-sided p) from the ranks of the pooled sample: the normal approximation
    with tie and continuity correction, exactly as `scipy.stats.mannwhitneyu` computes it, without re-ranking the
    pooled sample once per batch."""
    n1 = int(mine.sum())
    n = ranks.size
    n2 = n - n1
    u1 = float(ranks[mine].sum()) - n1 * (n1 + 1) / 2.0
    mu = n1 * n2 / 2.0
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    if sigma == 0:
        return u1, 1.0
    z = (abs(u1 - mu) - 0.5) / sigma
    from scipy.stats import norm  # scipy loads when images are compared, not with the module

    return u1, float(min(1.0, 2.0 * norm.sf(z)))


def _empty_evidence(n_images: int, n_other: int) -> dict[str, Any]:
    return {"n": 0, "n_other": n_other, "scores": {}, "n_images": n_images, "failures": {}, "n_failing": 0,
            "failure_tests": {}}  # fmt: skip


def compare_all_batches(quality: pd.DataFrame | None) -> dict[int, dict[str, Any]]:
    """Quality evidence of every batch of the run, with all its tests adjusted together (Benjamini-Hochberg).

    batch -> {"n": scored images of the batch, "n_other": scored images elsewhere, "n_images": all of the batch's
    images, "scores": {name: {median, median_other, p, q, effect}}, "failures": {reason code: count},
    "n_failing": ..., "failure_tests": {code: {count, n, count_other, n_other, p, q}}}. `effect` is the
    rank-biserial correlation in [-1, 1]: P(batch > other) - P(batch < other); `q` is the adjusted p-value over
    every test of every batch.
    """
    if quality is None or quality.empty or "batch" not in quality.columns:
        return {}
    qb = pd.to_numeric(quality["batch"], errors="coerce").to_numpy(dtype=float)
    has_batch = np.isfinite(qb)
    batches = sorted({int(b) for b in qb[has_batch]})
    if not batches:
        return {}
    usable = _usable(quality)
    out: dict[int, dict[str, Any]] = {}
    for b in batches:
        mine = qb == b
        ev = _empty_evidence(int(mine.sum()), int((~mine & usable).sum()))
        ev["n"] = int((mine & usable).sum())
        out[b] = ev
    _score_tests(quality, qb, usable, out)
    _failure_tests(quality, qb, out)
    _adjust(out)
    return out


def _score_tests(quality: pd.DataFrame, qb: np.ndarray, usable: np.ndarray, out: dict[int, dict[str, Any]]) -> None:
    """Per score and batch: Mann-Whitney U of the batch's scored images against every other scored image."""
    from scipy.stats import mannwhitneyu, rankdata

    scores = _score_frame(quality)
    for col in scores.columns:
        vals = scores[col].to_numpy(dtype=float)
        ok = usable & np.isfinite(vals)
        pooled, pooled_batch = vals[ok], qb[ok]
        if pooled.size < 4 or np.ptp(pooled) == 0:
            continue
        ranks = rankdata(pooled)
        _, counts = np.unique(pooled, return_counts=True)
        tie_term = float((counts.astype(float) ** 3 - counts).sum())
        for b, ev in out.items():
            mine = pooled_batch == b
            a, rest = pooled[mine], pooled[~mine]
            if a.size < 2 or rest.size < 2:
                continue
            if a.size < _EXACT_BELOW and rest.size < _EXACT_BELOW:
                u_stat, p_val = mannwhitneyu(a, rest, alternative="two-sided")
                u, p = float(u_stat), float(p_val)
            else:
                u, p = _mann_whitney(ranks, mine, tie_term)
            ev["scores"][col] = {
                "median": float(np.median(a)),
                "median_other": float(np.median(rest)),
                "p": p,
                "effect": 2.0 * u / (a.size * rest.size) - 1.0,
            }


def _failure_tests(quality: pd.DataFrame, qb: np.ndarray, out: dict[int, dict[str, Any]]) -> None:
    """Failure counts per reason code, and whether the batch fails a check more often than the other images
    (one-sided Fisher exact test, as a hypergeometric tail). Only codes the batch has are tested."""
    from scipy.stats import hypergeom

    n_all = len(quality)
    failing = np.zeros(n_all, dtype=bool)
    if "is_acceptable" in quality.columns:
        failing = (quality["is_acceptable"] == False).fillna(False).to_numpy(dtype=bool)  # noqa: E712 (NA passes)
    per_code: dict[str, np.ndarray] = {}
    if "reason_codes" in quality.columns:
        cells = [_codes(c) for c in quality["reason_codes"]]
        for code in sorted(set().union(*cells)) if cells else []:
            per_code[code] = np.fromiter((code in c for c in cells), dtype=bool, count=n_all)
    for b, ev in out.items():
        mine = qb == b
        ev["n_failing"] = int((failing & mine).sum())
        fails: Counter[str] = Counter({code: int((has & mine).sum()) for code, has in per_code.items()})
        ev["failures"] = {code: n for code, n in fails.most_common() if n > 0}
        tested = per_code if per_code else {ANY_FAILURE: failing}
        n_mine = int(mine.sum())
        for code, has in tested.items():
            k, k_all = int((has & mine).sum()), int(has.sum())
            if k == 0:
                continue
            p = float(hypergeom.sf(k - 1, n_all, k_all, n_mine))
            ev["failure_tests"][code] = {"count": k, "n": n_mine, "count_other": k_all - k,
                                         "n_other": n_all - n_mine, "p": min(1.0, p)}  # fmt: skip


def _adjust(out: dict[int, dict[str, Any]]) -> None:
    """Benjamini-Hochberg over every test of the run: writes `q` beside each `p`."""
    from scipy.stats import false_discovery_control

    tests = [st for ev in out.values() for st in (*ev["scores"].values(), *ev["failure_tests"].values())]
    if not tests:
        return
    qs = false_discovery_control(np.array([t["p"] for t in tests], dtype=float), method="bh")
    for t, q in zip(tests, qs, strict=True):
        t["q"] = float(q)


def compare_quality(quality: pd.DataFrame | None, batch: int) -> dict[str, Any]:
    """The quality evidence of one batch (`compare_all_batches`: its p-values adjusted over the whole run)."""
    if quality is None or quality.empty or "batch" not in quality.columns:
        return {"n": 0}
    found = compare_all_batches(quality).get(batch)
    if found is not None:
        return found
    return _empty_evidence(0, int(_usable(quality).sum()))


def _significant(st: dict[str, Any]) -> bool:
    """Evidence after the correction (a hand-made record without `q` falls back on its raw p)."""
    return float(st.get("q", st["p"])) < ALPHA


def quality_phrase(ev: dict[str, Any]) -> tuple[str, float]:
    """('its images are blurrier (median blur 38 vs 410, p < 0.001, q < 0.001); 11 of 12 fail the blur threshold
    (blurry; 0 of 80 elsewhere, q < 0.001)', strength).

    Only differences whose adjusted q-value is below `ALPHA` are named. `strength` is the largest |effect| among
    the significantly worse scores (0 when none).
    """
    if not ev or max(ev.get("n", 0), ev.get("n_images", 0)) == 0:
        return "", 0.0
    parts: list[str] = []
    strength = 0.0
    worse = []
    for col, st in ev.get("scores", {}).items():
        if not _significant(st):
            continue
        # Unknown numeric scores: assume higher is worse (noise-like), as the quality module names them.
        label, bad_way, lower_word, higher_word = _SCORES.get(col, (col, +1, f"lower in {col}", f"higher in {col}"))
        went = -1 if st["effect"] < 0 else +1
        if bad_way and went != bad_way:
            continue  # significantly *better* images do not explain a fall
        worse.append((abs(st["effect"]), col, label, lower_word if went < 0 else higher_word, st))
    worse.sort(key=lambda w: w[0], reverse=True)
    described = [
        f"{word} (median {label} {_num(st['median'])} vs {_num(st['median_other'])}, {_pq(st)})"
        for _, col, label, word, st in worse[:2]
    ]
    if described:
        parts.append("its images are " + " and ".join(described))
        strength = worse[0][0]
    total = max(ev.get("n_images", ev["n"]), ev["n"])
    tests = ev.get("failure_tests")
    fails = ev.get("failures", {})
    if tests is None:  # a hand-made record without tests: the counts as they are
        if fails:
            code, count = next(iter(fails.items()))
            parts.append(_failure_sentence(QualityReason(code), count, total, None))
        elif ev.get("n_failing"):
            parts.append(f"{ev['n_failing']} of {total} fail the quality checks")
        return "; ".join(parts), strength
    sig = [(count, code) for code, count in fails.items() if code in tests and _significant(tests[code])]
    if sig:
        count, code = max(sig, key=lambda s: s[0])
        parts.append(_failure_sentence(QualityReason(code), count, total, tests[code]))
    elif ANY_FAILURE in tests and _significant(tests[ANY_FAILURE]):
        t = tests[ANY_FAILURE]
        parts.append(f"{ev['n_failing']} of {total} fail the quality checks ({_elsewhere(t)})")
    return "; ".join(parts), strength


def _failure_sentence(code: QualityReason, count: int, total: int, test: dict[str, Any] | None) -> str:
    """'8 of 8 fail the contrast threshold (low contrast; 0 of 88 elsewhere, q < 0.001)' (the check is named by its
    code: blur, rotation, resolution, contrast)."""
    tail = f"; {_elsewhere(test)}" if test else ""
    if code is QualityReason.UNREADABLE:
        return f"{count} of {total} images cannot be read" + (f" ({tail[2:]})" if tail else "")
    return f"{count} of {total} fail the {code.value} threshold ({code.label}{tail})"


def _elsewhere(test: dict[str, Any]) -> str:
    return f"{test['count_other']} of {test['n_other']} elsewhere, {_pq(test, p=False)}"


def _num(v: float) -> str:
    """Quality numbers: 410, 54.9, 26, 0.36."""
    if not math.isfinite(v):
        return str(v)
    if float(v).is_integer() or abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _pval(p: float, name: str = "p") -> str:
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3f}"


def _pq(st: dict[str, Any], p: bool = True) -> str:
    """'p < 0.001, q = 0.004': the raw p-value and the q-value adjusted over every test of the run."""
    q = st.get("q")
    shown = [_pval(st["p"])] if p or q is None else []
    if q is not None:
        shown.append(_pval(float(q), "q"))
    return ", ".join(shown)
