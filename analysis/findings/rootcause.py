"""Root causes: link metric findings to image-quality evidence, with numbers and one plain sentence each.

1. Problems: a batch has one when it *fell*: a degrading change point (the best locator), a drop from its best,
   a fall below its peers, NaN/Inf, a critical z-score, or when it ends the run still short of its threshold.
   Early training below a threshold and logged problematic images only support a problem, they never make one.
2. The fall of the batch's main metric (a thresholded one such as recall when logged): medians of up to
   `zscore_window` points just before the first bad step and from it on. Flags without a real fall (at least
   `performance_drop_threshold`) and without image evidence are dropped.
3. Side: when at least half of the batches fall at the same step (two logging intervals), one model-side cause
   covers them, naming a learning-rate (or other run-level) change at that step; a batch that falls alone is
   data-side.
4. With quality scores, the batch's images are compared with every other image, per score: Mann-Whitney U
   (two-sided) and the rank-biserial effect size; the dominant quality failure (blur / rotation / resolution)
   is counted from the filter's reasons.
Causes are ranked by `score` (higher first): the size of the fall, severity and the strength of the evidence.
A run without batch metrics is explained from its run-level change points.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from analysis.core.config import AnalyzerConfig
from analysis.core.records import Anomaly, ChangePoint, RootCause
from analysis.findings.anomalies import is_schedule, metric_direction, metric_threshold

# Detectors whose flags always mean "worse" (z-scores may also flag improvements unless drop-only).
_DEGRADING = {"threshold", "drop_from_best", "cross_batch", "nonfinite"}
# Share of batches that must change together for a model-side verdict.
_MODEL_SIDE_SHARE = 0.5
_ALPHA = 0.05

# Quality score columns: label, which direction is worse (-1 lower, +1 higher, 0 either), words for lower/higher.
_SCORES: dict[str, tuple[str, int, str, str]] = {
    "blur_score": ("blur", -1, "blurrier", "sharper"),
    "rotation_abs": ("rotation", +1, "less rotated", "more rotated"),
    "resolution": ("resolution", -1, "smaller", "larger"),
    "contrast": ("contrast", -1, "lower in contrast", "higher in contrast"),
    "noise": ("noise", +1, "less noisy", "noisier"),
    "brightness": ("brightness", 0, "darker", "brighter"),
}
_NOT_SCORES = {"batch", "width", "height", "rotation_angle", "rotation_confidence", "is_acceptable", "step"}


@dataclass
class _Problem:
    """What went wrong with one batch: candidate onsets (priority, step, metric) and supporting findings."""

    batch: int
    onsets: list[tuple[int, int, str | None]] = field(default_factory=list)
    severity_weight: float = 0.0
    detectors: set[str] = field(default_factory=set)
    n_findings: int = 0

    @property
    def _onset(self) -> tuple[int, int, str | None]:
        return min(self.onsets, key=lambda o: (o[0], o[1]))

    @property
    def first_step(self) -> int:
        return self._onset[1]

    @property
    def metric(self) -> str | None:
        return self._onset[2]


# Onset priorities (lower wins): a degrading change point locates a fall best; then critical and warning
# falls (drop from best, cross-batch, NaN/Inf, critical z); last, a batch that ends the run below its bound.
_P_CHANGE, _P_CRITICAL, _P_WARNING, _P_ENDS_BAD = 0, 1, 2, 3
_FALLS = {"drop_from_best", "cross_batch", "nonfinite"}


def _problems(
    anomalies: list[Anomaly],
    change_points: list[ChangePoint],
    batches: pd.DataFrame,
    images: pd.DataFrame | None,
    cfg: AnalyzerConfig,
) -> dict[int, _Problem]:
    """batch -> its problem. Early training below a threshold is not a problem (every batch starts low);
    threshold flags and problematic images only support a problem found by a fall, unless the batch is still
    below its bound at the end of the run."""
    probs: dict[int, _Problem] = {}
    weight = {"critical": 2.0, "warning": 1.0, "info": 0.0}

    def get(batch: int) -> _Problem:
        return probs.setdefault(batch, _Problem(batch=batch))

    support: dict[int, list[tuple[str, str]]] = {}
    last_step = (
        batches.groupby(["batch", "metric"])["step"].max().to_dict()
        if batches is not None and not batches.empty
        else {}
    )
    for a in anomalies:
        if a.batch is None:
            continue
        b = int(a.batch)
        falls = a.detector in _FALLS or (a.detector in ("zscore", "robust_zscore") and a.severity == "critical")
        if falls:
            p = get(b)
            p.onsets.append((_P_CRITICAL if a.severity == "critical" else _P_WARNING, int(a.step), a.metric))
        elif a.detector == "threshold" and (a.end_step or a.step) == last_step.get((b, a.metric)):
            get(b).onsets.append((_P_ENDS_BAD, int(a.step), a.metric))
        if a.severity == "info":
            continue
        support.setdefault(b, []).append((a.detector, a.severity))
    for c in change_points:
        if c.batch is not None and c.severity in ("warning", "critical"):
            get(int(c.batch)).onsets.append((_P_CHANGE, int(c.step), c.metric))
            support.setdefault(int(c.batch), []).append(("change_point", c.severity))
    if images is not None and not images.empty and "batch" in images.columns:
        for b in images["batch"].dropna().unique():
            support.setdefault(int(b), []).append(("problematic_images", "warning"))
    for b, p in probs.items():
        for detector, sev in support.get(b, []):
            p.detectors.add(detector)
            p.severity_weight = max(p.severity_weight, weight.get(sev, 0.0))
            p.n_findings += 1
    return {b: p for b, p in probs.items() if p.onsets}


def _main_metric(batches: pd.DataFrame, prob: _Problem, cfg: AnalyzerConfig) -> str | None:
    """The metric to quote: a thresholded (recall-like) one the batch logged, else the one flagged first."""
    if batches is not None and not batches.empty:
        mine = batches.loc[batches["batch"] == prob.batch, "metric"].dropna().unique().tolist()
        for m in sorted(mine):
            if metric_threshold(m, cfg.anomaly) is not None:
                return m
        if prob.metric is None and mine:
            return sorted(mine)[0]
    return prob.metric


class _SeriesIndex:
    """(batch, metric) -> (steps, finite values), grouped once so a run with 200 problem batches stays fast."""

    def __init__(self, batches: pd.DataFrame) -> None:
        self._frame = batches
        self._rows = batches.groupby(["batch", "metric"], sort=False).indices if not batches.empty else {}
        self.metrics = {str(m) for m in batches["metric"].dropna().unique()} if not batches.empty else set()

    def get(self, batch: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows.get((batch, metric))
        if rows is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        steps = self._frame["step"].to_numpy()[rows]
        vals = pd.to_numeric(self._frame["value"].iloc[rows], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(vals)
        order = np.argsort(steps[ok], kind="stable")
        return steps[ok][order], vals[ok][order]


def _before_after(series: _SeriesIndex, batch: int, metric: str, step: int, window: int) -> tuple[float, float]:
    """Median of the batch's metric over up to `window` points before `step` and from `step` on (NaN when a
    side is empty). Local windows: on a rising learning curve the level just before the fall is what fell."""
    steps, vals = series.get(batch, metric)
    before = vals[steps < step][-window:]
    after = vals[steps >= step][:window]
    med = lambda v: float(np.median(v)) if v.size else float("nan")  # noqa: E731
    return med(before), med(after)


def _step_tolerance(batches: pd.DataFrame) -> float:
    """Two logging intervals: batches 'change together' when their first bad steps are this close."""
    if batches is None or batches.empty:
        return 0.0
    steps = np.unique(batches["step"].dropna().to_numpy())
    if steps.size < 2:
        return 0.0
    return 2.0 * float(np.median(np.diff(steps)))


def _together(probs: dict[int, _Problem], step: int, tol: float) -> list[int]:
    return sorted(b for b, p in probs.items() if abs(p.first_step - step) <= tol)


def _global_changes_near(
    change_points: list[ChangePoint], anomalies: list[Anomaly], step: int, tol: float, batch_metrics: set[str]
) -> list[str]:
    """Global metrics (no batch) with a change point or a degrading anomaly close to `step`.

    Aggregates of the batch metrics (`val/recall` when batches log `recall`) move whenever one batch moves, so
    they say nothing about the side and are left out.
    """

    def independent(metric: str) -> bool:
        return metric.rsplit("/", 1)[-1] not in batch_metrics

    names = {c.metric for c in change_points if c.batch is None and abs(c.step - step) <= tol}
    names |= {
        a.metric
        for a in anomalies
        if a.batch is None and a.detector in _DEGRADING | {"zscore"} and abs(a.step - step) <= tol
    }
    return sorted(n for n in names if independent(n))


def _is_lr(metric: str) -> bool:
    m = metric.lower()
    return "lr" in m.replace("/", "_").split("_") or "learning_rate" in m


# ----------------------------------------------------------------------------------------- quality evidence
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
        if col in out.columns or col in _NOT_SCORES or col in ("path", "error", "reasons"):
            continue
        vals = pd.to_numeric(quality[col], errors="coerce") if quality[col].dtype != bool else None
        if vals is not None and vals.notna().any():
            out[col] = vals
    return out


def _reason_kind(reason: str) -> str:
    r = str(reason).lower()
    if "blur" in r or "sharp" in r:
        return "blur"
    if "rotat" in r or "skew" in r:
        return "rotation"
    if "resol" in r or "small" in r or "size" in r:
        return "resolution"
    return r.split(":")[0].strip() or "other"


def compare_quality(quality: pd.DataFrame, batch: int) -> dict:
    """Per-score Mann-Whitney U of the batch's images vs all other images, plus failure counts.

    Returns {"n": ..., "n_other": ..., "scores": {name: {median, median_other, p, effect}}, "failures":
    {kind: count}, "n_failing": ...}. `effect` is the rank-biserial correlation in [-1, 1]: P(batch > other)
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
    result: dict = {
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
    fails: Counter = Counter()
    n_failing = 0
    if "is_acceptable" in quality.columns:
        acc = quality.loc[mine, "is_acceptable"]
        n_failing = int((acc == False).sum())  # noqa: E712  (NA counts as not failing)
    if "reasons" in quality.columns:
        for reasons in quality.loc[mine, "reasons"]:
            if isinstance(reasons, (list, tuple, np.ndarray)):
                fails.update({_reason_kind(r) for r in reasons})
    result["failures"] = dict(fails.most_common())
    result["n_failing"] = n_failing
    return result


def _quality_phrase(ev: dict) -> tuple[str, float]:
    """('its images are blurrier (median blur 38 vs 410, p < 0.001); 11 of 12 fail the blur threshold', strength)."""
    if not ev or max(ev.get("n", 0), ev.get("n_images", 0)) == 0:
        return "", 0.0
    parts: list[str] = []
    strength = 0.0
    worse = []
    for col, st in ev.get("scores", {}).items():
        if st["p"] >= _ALPHA:
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
        kind, count = next(iter(fails.items()))
        if kind == "unreadable":
            parts.append(f"{count} of {total} images cannot be read")
        else:
            parts.append(f"{count} of {total} fail the {kind} threshold")
    elif ev.get("n_failing"):
        parts.append(f"{ev['n_failing']} of {total} fail the quality checks")
    return "; ".join(parts), strength


def _num(v: float) -> str:
    """Quality numbers: 410, 54.9, 26, 0.36."""
    if not math.isfinite(v):
        return str(v)
    if float(v).is_integer() or abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _metric_num(v: float) -> str:
    """Metric values as people quote them: 0.91, 2.35, 1240."""
    if not math.isfinite(v):
        return str(v)
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.4g}"


def _pval(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# ---------------------------------------------------------------------------------------------------- explain
def explain(
    batches: pd.DataFrame,
    anomalies: list[Anomaly],
    change_points: list[ChangePoint],
    quality: pd.DataFrame | None,
    images: pd.DataFrame | None,
    cfg: AnalyzerConfig | None = None,
) -> list[RootCause]:
    """Ranked root causes (most important first) for the run's problematic batches and shared episodes."""
    cfg = cfg or AnalyzerConfig()
    if batches is None:
        batches = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    if batches.empty:
        return _run_level_causes(anomalies, change_points, cfg)
    probs = _problems(anomalies, change_points, batches, images, cfg)
    if not probs:
        return []
    n_batches = int(batches["batch"].nunique()) if not batches.empty else len(probs)
    n_batches = max(n_batches, len(probs))
    tol = _step_tolerance(batches)
    series = _SeriesIndex(batches)
    out: list[RootCause] = []
    grouped: set[int] = set()

    # Model side first: steps where most batches went wrong together.
    for b in sorted(probs, key=lambda k: probs[k].first_step):
        if b in grouped:
            continue
        step = probs[b].first_step
        group = [g for g in _together(probs, step, tol) if g not in grouped]
        if n_batches >= 3 and len(group) >= _MODEL_SIDE_SHARE * n_batches:
            grouped.update(group)
            cause = _model_side(batches, series, probs, group, step, n_batches, change_points, anomalies, tol, cfg)
            if cause is not None:
                out.append(cause)

    for b, prob in probs.items():
        if b in grouped:
            continue
        cause = _batch_cause(
            batches,
            series,
            prob,
            quality,
            n_batches,
            change_points,
            anomalies,
            tol,
            cfg,
            n_together=len(_together(probs, prob.first_step, tol)),
        )
        if cause is not None:
            out.append(cause)
    out.sort(key=lambda r: (-r.score, r.step if r.step is not None else 0, -1 if r.batch is None else r.batch))
    return out


def _run_level_causes(
    anomalies: list[Anomaly], change_points: list[ChangePoint], cfg: AnalyzerConfig
) -> list[RootCause]:
    """A run without batch metrics: explain each degrading change of a run-level metric from what else changed
    at that step (a learning-rate step points at the training setup)."""
    steps = sorted({c.step for c in change_points})
    tol = 2.0 * float(np.median(np.diff(steps))) if len(steps) > 1 else 0.0
    out = []
    for c in change_points:
        if c.batch is not None or c.severity not in ("warning", "critical") or is_schedule(c.metric, cfg.anomaly):
            continue
        fall, rel = _fall_phrase(c.metric, c.mean_before, c.mean_after, c.step, cfg, full_name=True)
        others = sorted(
            {
                o.metric
                for o in change_points
                if o.batch is None and o.metric != c.metric and abs(o.step - c.step) <= tol
            }
        )
        lr = [m for m in others if is_schedule(m, cfg.anomaly)]
        if lr:
            side, why = "model", f"{', '.join(lr)} changed at that step, so the training setup is the suspect"
        elif others:
            side, why = "unknown", f"{', '.join(others)} changed at the same step"
        else:
            side, why = "unknown", "no batch metrics were logged to tell data from model"
        severity = 2.0 if c.severity == "critical" else 1.0
        out.append(
            RootCause(
                batch=None,
                step=c.step,
                side=side,
                sentence=f"{fall}; {why}",
                score=100.0 * max(rel, 0.0) + 10.0 * severity,
                evidence={
                    "metric": c.metric,
                    "before": c.mean_before,
                    "after": c.mean_after,
                    "relative_change": rel,
                    "first_bad_step": c.step,
                    "global_changes": others,
                    "learning_rate_change": bool(lr),
                },
            )
        )
    out.sort(key=lambda r: -r.score)
    return out


def _fall_phrase(
    metric: str | None,
    before: float,
    after: float,
    step: int,
    cfg: AnalyzerConfig,
    nonfinite: bool = False,
    full_name: bool = False,
) -> tuple[str, float]:
    """('recall fell 0.91 → 0.62 at step 2000', relative change in the bad direction; negative = better)."""
    if metric is None:
        return f"went wrong at step {step}", 0.0
    name = metric if full_name else metric.rsplit("/", 1)[-1]
    higher = metric_direction(metric, cfg.anomaly) == "higher_is_better"
    if math.isfinite(before) and math.isfinite(after):
        verb = "fell" if after < before else "rose" if after > before else "stayed at"
        worse = (1.0 if higher else -1.0) * (before - after) / max(abs(before), 1e-12)
        return f"{name} {verb} {_metric_num(before)} → {_metric_num(after)} at step {step}", worse
    if nonfinite:
        return f"{name} is not finite (NaN/Inf) from step {step}", 0.0
    if math.isfinite(after):
        bound = metric_threshold(metric, cfg.anomaly)
        beyond = bound is not None and (after < bound if higher else after > bound)
        where = f" ({'below' if higher else 'above'} its {_metric_num(bound)} bound)" if beyond else ""
        return f"{name} at {_metric_num(after)} from step {step}{where}", 0.0
    return f"went wrong at step {step}", 0.0


def _batch_cause(
    batches: pd.DataFrame,
    series: _SeriesIndex,
    prob: _Problem,
    quality: pd.DataFrame | None,
    n_batches: int,
    change_points: list[ChangePoint],
    anomalies: list[Anomaly],
    tol: float,
    cfg: AnalyzerConfig,
    n_together: int,
) -> RootCause | None:
    metric = _main_metric(batches, prob, cfg)
    before, after = (
        _before_after(series, prob.batch, metric, prob.first_step, cfg.anomaly.zscore_window)
        if metric
        else (float("nan"), float("nan"))
    )
    fall, rel = _fall_phrase(metric, before, after, prob.first_step, cfg, "nonfinite" in prob.detectors)
    glob = _global_changes_near(change_points, anomalies, prob.first_step, tol, series.metrics)
    ev = compare_quality(quality, prob.batch) if quality is not None else {"n": 0}
    qphrase, strength = _quality_phrase(ev)
    ends_below_bound = prob.onsets and min(prob.onsets)[0] == _P_ENDS_BAD
    if (
        rel < cfg.anomaly.performance_drop_threshold
        and not qphrase
        and not ends_below_bound
        and "nonfinite" not in prob.detectors
    ):
        return None  # the numbers show no real fall: a passing flag, not something to explain
    alone = n_together <= max(1, int(0.2 * n_batches))
    if n_batches <= 1 and not qphrase:
        side = "unknown"  # nothing to compare with: data and model cannot be told apart
        why = "it is the only batch logged, so there are no peers to tell data from model problems"
        if glob:
            why += f" ({', '.join(glob)} changed near that step too)"
    elif alone:
        # The others held steady through whatever else changed at that step: the batch's data is the suspect.
        side = "data"
        why = qphrase or "the other batches held steady, so its data is the first suspect"
        if glob:
            why += f" ({', '.join(glob)} changed near that step too)"
    elif qphrase:
        side = "data"
        why = qphrase
    else:
        side = "unknown"
        why = f"{n_together} of {n_batches} batches changed near that step" + (
            f"; {', '.join(glob)} changed too" if glob else ""
        )
    sentence = f"batch {prob.batch}: {fall}; {why}"
    score = 100.0 * max(rel, 0.0) + 10.0 * prob.severity_weight + 20.0 * strength + min(prob.n_findings, 10)
    evidence = {
        "metric": metric,
        "before": before,
        "after": after,
        "relative_change": rel,
        "first_bad_step": prob.first_step,
        "detectors": sorted(prob.detectors),
        "batches_changing_together": n_together,
        "n_batches": n_batches,
        "global_changes": glob,
        "quality": ev,
    }
    return RootCause(
        batch=prob.batch, step=prob.first_step, side=side, sentence=sentence, score=score, evidence=evidence
    )


def _model_side(
    batches: pd.DataFrame,
    series: _SeriesIndex,
    probs: dict[int, _Problem],
    group: list[int],
    step: int,
    n_batches: int,
    change_points: list[ChangePoint],
    anomalies: list[Anomaly],
    tol: float,
    cfg: AnalyzerConfig,
) -> RootCause | None:
    metric = _main_metric(batches, probs[group[0]], cfg)
    befores, afters = [], []
    if metric:
        for b in group:
            bf, af = _before_after(series, b, metric, step, cfg.anomaly.zscore_window)
            befores.append(bf)
            afters.append(af)
    before = float(np.nanmedian(befores)) if np.isfinite(befores).any() else float("nan")
    after = float(np.nanmedian(afters)) if np.isfinite(afters).any() else float("nan")
    fall, rel = _fall_phrase(metric, before, after, step, cfg)
    if rel < cfg.anomaly.performance_drop_threshold:
        return None  # the batches moved together but did not get worse
    glob = _global_changes_near(change_points, anomalies, step, tol, series.metrics)
    lr = [g for g in glob if _is_lr(g)]
    cause = (
        "the learning rate changed at that step"
        if lr
        else f"{', '.join(glob)} changed at the same step"
        if glob
        else "all batches changing together points at the model or training setup, not the data"
    )
    sentence = f"{len(group)} of {n_batches} batches: median {fall}; a model-side change ({cause})"
    score = 100.0 * max(rel, 0.0) + 10.0 * max(probs[b].severity_weight for b in group) + 5.0 * len(group) / n_batches
    evidence = {
        "metric": metric,
        "before": before,
        "after": after,
        "relative_change": rel,
        "first_bad_step": step,
        "batches": group,
        "n_batches": n_batches,
        "global_changes": glob,
        "learning_rate_change": bool(lr),
    }
    return RootCause(batch=None, step=step, side="model", sentence=sentence, score=score, evidence=evidence)
