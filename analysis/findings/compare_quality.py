"""Which image-quality scores moved for a batch between two runs.

The test is the root causes' (quality_evidence): two-sided Mann-Whitney U with the rank-biserial effect, here the
candidate's images of a batch against the baseline's images of the same batch. Every (batch, score) pair is one
test, so the p-values are corrected together with Benjamini-Hochberg (scipy's `false_discovery_control`): a shift
counts when its q-value is below `ALPHA`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, mannwhitneyu

from analysis.findings.quality_evidence import _SCORES, ALPHA, _score_frame

__all__ = ["QualityShift", "quality_shifts"]


@dataclass(frozen=True)
class QualityShift:
    """One score of one batch: medians in both runs, p and BH q, rank-biserial effect (candidate vs baseline)."""

    batch: int
    score: str
    label: str
    median_baseline: float
    median_candidate: float
    n_baseline: int
    n_candidate: int
    p: float
    q: float
    effect: float
    worse: bool  # moved in the direction that is bad for this score (False for either-way scores)
    words: str  # "blurrier", "more rotated", ...

    @property
    def significant(self) -> bool:
        return self.q < ALPHA


def _usable_scores(quality: pd.DataFrame) -> pd.DataFrame:
    scores = _score_frame(quality)
    if "error" in quality.columns:
        ok = quality["error"].isna() | (quality["error"].astype(str) == "None")
        scores = scores[ok.to_numpy()]
        batches = pd.to_numeric(quality.loc[ok.to_numpy(), "batch"], errors="coerce")
    else:
        batches = pd.to_numeric(quality["batch"], errors="coerce")
    return scores.assign(_batch=batches.to_numpy())


def quality_shifts(base: pd.DataFrame | None, cand: pd.DataFrame | None) -> list[QualityShift]:
    """Every testable (batch, score) of batches scored in both runs, BH-corrected; sorted by q."""
    if base is None or cand is None or base.empty or cand.empty:
        return []
    if "batch" not in base.columns or "batch" not in cand.columns:
        return []
    sb, sc = _usable_scores(base), _usable_scores(cand)
    rows: list[tuple[int, str, np.ndarray, np.ndarray, float, float]] = []
    for batch in sorted(set(sb["_batch"].dropna().astype(int)) & set(sc["_batch"].dropna().astype(int))):
        gb, gc = sb[sb["_batch"] == batch], sc[sc["_batch"] == batch]
        for col in [c for c in gb.columns if c in gc.columns and c != "_batch"]:
            a = gc[col].to_numpy(dtype=float)
            b = gb[col].to_numpy(dtype=float)
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if a.size < 2 or b.size < 2 or np.ptp(np.r_[a, b]) == 0:
                continue
            u, p = mannwhitneyu(a, b, alternative="two-sided")
            rows.append((batch, col, a, b, float(p), 2.0 * float(u) / (a.size * b.size) - 1.0))
    if not rows:
        return []
    qs = false_discovery_control(np.array([r[4] for r in rows]), method="bh")
    out = []
    for (batch, col, a, b, p, effect), q in zip(rows, qs, strict=True):
        label, bad_way, lower, higher = _SCORES.get(col, (col, +1, f"lower in {col}", f"higher in {col}"))
        went = -1 if effect < 0 else +1
        out.append(
            QualityShift(
                batch=batch,
                score=col,
                label=label,
                median_baseline=float(np.median(b)),
                median_candidate=float(np.median(a)),
                n_baseline=int(b.size),
                n_candidate=int(a.size),
                p=p,
                q=float(q),
                effect=effect,
                worse=bool(bad_way) and went == bad_way,
                words=lower if went < 0 else higher,
            )
        )
    return sorted(out, key=lambda s: (s.q, -abs(s.effect)))
