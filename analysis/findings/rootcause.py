"""Root causes: link metric findings to image-quality evidence, with numbers and one plain sentence each.

1. Problems (`problems.find_problems`): a batch has one when it *fell*: a degrading change point, a drop from its
   best, a fall below its peers, NaN/Inf, a critical z-score, or when it ends the run still short of its threshold.
2. The fall of the batch's main metric (a thresholded one such as recall when logged): medians of up to
   `zscore_window` points just before the first bad step and from it on. Flags without a real fall (at least
   `performance_drop_threshold`) and without image evidence are dropped.
3. Side: when at least half of the batches fall at the same step (two logging intervals), one model-side cause
   covers them, naming a learning-rate (or other run-level) change at that step; a batch that falls alone is
   data-side.
4. With quality scores, each batch's images are compared with every other image (`quality_evidence`): per score
   Mann-Whitney U and the rank-biserial effect size, per failure reason a one-sided Fisher test; all tests of the
   run are adjusted together (Benjamini-Hochberg), and only differences with q < `ALPHA` are quoted as evidence.
5. Duplicates (`quality.duplicates.BatchRepeat`): a batch that from some step on logs mostly another batch's images
   ("batch 7 repeats 6 of 8 images from batch 2 since step 2000") is a data-side cause; when the batch also fell,
   the repeat is added to its cause.
Causes are ranked by `score` (higher first), built with `RANKING` (see `RankingWeights`).
A run without batch metrics is explained from its run-level change points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from analysis.core.config import AnalyzerConfig
from analysis.core.records import Anomaly, ChangePoint, RootCause
from analysis.core.vocabulary import (
    Severity,
    is_context,
    is_progress,
    is_schedule,
    metric_direction,
    metric_leaf,
    metric_threshold,
    severity_rank,
    worse,
)
from analysis.findings.events import name_list
from analysis.findings.problems import (
    SEVERITY_WEIGHT,
    BatchProblem,
    SeriesIndex,
    batches_together,
    before_after,
    find_problems,
    step_tolerance,
)
from analysis.findings.quality_evidence import compare_all_batches, compare_quality, quality_phrase
from analysis.findings.series_stats import LEVEL_POINTS

if TYPE_CHECKING:  # image hashing (cv2) loads only when images are analysed
    from quality.duplicates import BatchRepeat

__all__ = ["RANKING", "CauseContext", "RankingWeights", "compare_quality", "explain"]

# Detectors whose flags always mean "worse" (z-scores may also flag improvements unless drop-only).
_DEGRADING = {"threshold", "drop_from_best", "cross_batch", "nonfinite"}
Side = Literal["data", "model", "unknown"]
# Share of batches that must change together for a model-side verdict.
_MODEL_SIDE_SHARE = 0.5


@dataclass(frozen=True)
class RankingWeights:
    """How a cause's `score` is built; causes are listed highest first.

    The size of the fall dominates (a 30 % fall is worth 30 points); the other terms order causes whose falls are
    alike: how severe their findings are, how clearly their images differ, how many findings back them up, and
    (model side) how many batches fell together.
    """

    fall: float = 100.0  # per unit of relative fall of the main metric, in its bad direction (improvements: 0)
    duplicates: float = 20.0  # per share of a batch's images repeated from another batch (all of them: 20 points)
    severity: float = 10.0  # per unit of severity weight: warning 1, critical 2 (`problems.SEVERITY_WEIGHT`)
    quality_effect: float = 20.0  # per unit of |rank-biserial effect| of the most different worse quality score
    max_findings: int = 10  # one point per supporting finding, at most this many
    shared_batches: float = 5.0  # model side: per share of all batches falling together (all of them: 5 points)


RANKING = RankingWeights()


@dataclass(frozen=True, eq=False)
class CauseContext:
    """Everything a batch's cause is explained from, with the lookups computed once per run."""

    batches: pd.DataFrame
    anomalies: list[Anomaly]
    change_points: list[ChangePoint]
    quality: pd.DataFrame | None
    cfg: AnalyzerConfig
    series: SeriesIndex  # (batch, metric) -> sorted finite values
    n_batches: int  # batches in the run (at least the number with a problem)
    tolerance: float  # steps apart that still count as "at the same step" (two logging intervals)
    # batch -> image-quality evidence, every test of the run adjusted together (quality_evidence.compare_all_batches)
    quality_evidence: dict[int, dict[str, Any]]

    @classmethod
    def build(
        cls,
        batches: pd.DataFrame,
        anomalies: list[Anomaly],
        change_points: list[ChangePoint],
        quality: pd.DataFrame | None,
        cfg: AnalyzerConfig,
        n_problems: int,
    ) -> CauseContext:
        n_batches = int(batches["batch"].nunique()) if not batches.empty else n_problems
        return cls(
            batches=batches,
            anomalies=anomalies,
            change_points=change_points,
            quality=quality,
            cfg=cfg,
            series=SeriesIndex(batches),
            n_batches=max(n_batches, n_problems),
            tolerance=step_tolerance(batches),
            quality_evidence=compare_all_batches(quality),
        )

    def main_metric(self, prob: BatchProblem) -> str | None:
        """The metric to quote: a thresholded (recall-like) one the batch logged, else the one flagged first."""
        if self.batches is not None and not self.batches.empty:
            mine = self.batches.loc[self.batches["batch"] == prob.batch, "metric"].dropna().unique().tolist()
            for m in sorted(mine):
                if metric_threshold(m, self.cfg.anomaly.metric_thresholds) is not None:
                    return m
            if prob.metric is None and mine:
                return sorted(mine)[0]
        return prob.metric

    def global_changes_near(self, step: int) -> list[str]:
        """Global metrics (no batch) with a change point or a degrading anomaly close to `step`.

        Aggregates of the batch metrics (`val/recall` when batches log `recall`) move whenever one batch moves, so
        they say nothing about the side and are left out.
        """
        tol = self.tolerance
        names = {c.metric for c in self.change_points if c.batch is None and abs(c.step - step) <= tol}
        names |= {
            a.metric
            for a in self.anomalies
            if a.batch is None and a.detector in _DEGRADING | {"zscore"} and abs(a.step - step) <= tol
        }
        return sorted(n for n in names if metric_leaf(n) not in self.series.metrics)


def _is_lr(metric: str) -> bool:
    m = metric.lower()
    return "lr" in m.replace("/", "_").split("_") or "learning_rate" in m


def _metric_num(v: float) -> str:
    """Metric values as people quote them: 0.91, 2.35, 1240, 0.0042."""
    if not math.isfinite(v):
        return str(v)
    if 0 < abs(v) < 0.1:
        return f"{v:.2g}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.4g}"


def _metric_nums(before: float, after: float) -> tuple[str, str]:
    """`_metric_num` of both, with more digits where they would read the same ("0.0106 → 0.01" read "0.01 → 0.01")."""
    a, b = _metric_num(before), _metric_num(after)
    digits = 3
    while a == b and before != after and digits <= 8:
        a, b = f"{before:.{digits}g}", f"{after:.{digits}g}"
        digits += 1
    return a, b


# ---------------------------------------------------------------------------------------------------- explain
def explain(
    batches: pd.DataFrame | None,
    anomalies: list[Anomaly],
    change_points: list[ChangePoint],
    quality: pd.DataFrame | None,
    images: pd.DataFrame | None,
    cfg: AnalyzerConfig | None = None,
    repeats: Sequence[BatchRepeat] = (),
    tolerance: Mapping[str, float] | None = None,
) -> list[RootCause]:
    """Ranked root causes (most important first) for the run's problematic batches and shared episodes, and the
    batches that repeat another batch's images (`repeats`, from `quality.duplicates.find_duplicates`). `tolerance`
    is how many steps apart two changes of a run-level metric are still "at that step" (`batches.change_tolerance`)."""
    cfg = cfg or AnalyzerConfig()
    if batches is None:
        batches = pd.DataFrame(columns=["step", "batch", "metric", "value"])
    if batches.empty:
        return _with_repeats(_run_level_causes(anomalies, change_points, cfg, tolerance), repeats)
    probs = find_problems(anomalies, change_points, batches, images)
    if not probs:
        return _with_repeats([], repeats)
    ctx = CauseContext.build(batches, anomalies, change_points, quality, cfg, len(probs))
    out: list[RootCause] = []
    grouped: set[int] = set()

    # Model side first: steps where most batches went wrong together.
    for b in sorted(probs, key=lambda k: probs[k].first_step):
        if b in grouped:
            continue
        step = probs[b].first_step
        group = [g for g in batches_together(probs, step, ctx.tolerance) if g not in grouped]
        if ctx.n_batches >= 3 and len(group) >= _MODEL_SIDE_SHARE * ctx.n_batches:
            grouped.update(group)
            cause = _model_side(ctx, probs, group, step)
            if cause is not None:
                out.append(cause)

    for b, prob in probs.items():
        if b in grouped:
            continue
        n_together = len(batches_together(probs, prob.first_step, ctx.tolerance))
        cause = _batch_cause(ctx, prob, n_together)
        if cause is not None:
            out.append(cause)
    return _with_repeats(out, repeats)


def _with_repeats(causes: list[RootCause], repeats: Sequence[BatchRepeat]) -> list[RootCause]:
    """Add the duplicate rule to the causes, ranked: a repeating batch that fell gets the repeat in its own cause
    (data side); one that did not fall gets a cause of its own."""
    out = list(causes)
    for rep in repeats:
        evidence = rep.to_dict()
        score = RANKING.duplicates * rep.share
        at = next((i for i, c in enumerate(out) if c.batch == rep.batch), None)
        if at is not None:
            c = out[at]
            out[at] = replace(
                c,
                side="data",
                sentence=f"{c.sentence}; {rep.sentence}",
                score=c.score + score,
                evidence={**c.evidence, "duplicates": evidence},
            )
        else:
            out.append(
                RootCause(
                    batch=rep.batch,
                    step=rep.since_step,
                    side="data",
                    sentence=rep.sentence,
                    score=score + RANKING.severity * SEVERITY_WEIGHT[Severity.WARNING],
                    evidence={"first_bad_step": rep.since_step, "duplicates": evidence},
                )
            )
    out.sort(key=lambda r: (-r.score, r.step if r.step is not None else 0, -1 if r.batch is None else r.batch))
    return out


def _run_level_causes(
    anomalies: list[Anomaly],
    change_points: list[ChangePoint],
    cfg: AnalyzerConfig,
    tolerance: Mapping[str, float] | None = None,
) -> list[RootCause]:
    """A run without batch metrics: explain each degrading change of a run-level metric from what else changed
    at that step (a learning-rate step points at the training setup). Run-level values that turned NaN/Inf come
    first: a fall at or after them is told as their consequence (the run diverged), and when no fall follows them
    they are a cause of their own (a Mask R-CNN log whose six losses turned NaN at step 750 was explained by its
    accuracy's fall at step 800 alone). A NaN at one logged step only is no divergence, and is told so; nor is a
    metric that never had a finite value, whose falls are then not told as its consequence.

    Another metric changed "at that step" when its change lies within the larger `tolerance` of the two metrics
    (`batches.change_tolerance`: a few logging intervals, so a validation metric logged every 1,000 steps may move
    up to thousands of steps after the learning rate that moved it). Without one, two median gaps between the
    run's change points: on a per-iteration log with few changes that was 150 iterations, and a restart 152 records
    before a fall was named as its suspect."""
    steps = sorted({c.step for c in change_points})
    spread = 2.0 * float(np.median(np.diff(steps))) if len(steps) > 1 else 0.0

    def within(a: ChangePoint, b: ChangePoint) -> bool:
        if tolerance is None:
            return abs(a.step - b.step) <= spread
        return abs(a.step - b.step) <= max(tolerance.get(a.metric, 0.0), tolerance.get(b.metric, 0.0))

    critical_nan = [
        a
        for a in anomalies
        if a.detector == "nonfinite"
        and a.batch is None
        and a.severity is Severity.CRITICAL  # not a gradient norm's overflow, nor a NaN now and then
        and not is_context(a.metric, cfg.anomaly.metric_directions)
    ]
    # a metric never finite (its NaN hit's score, the NaN share of its series, is 1) did not turn NaN: it had no value
    # to lose (an ST-GCN log's training loss, NaN for the whole run while its accuracy trained)
    never = sorted({a.metric for a in critical_nan if a.score >= 1.0})
    nonfinite = sorted(
        (a.step, a.step if a.end_step is None else a.end_step, a.metric, a.value)
        for a in critical_nan
        if a.metric not in never
    )
    # A divergence lasts: one NaN step (a Darknet IoU with no object assigned at one iteration) is told apart
    stretches = [s for s in nonfinite if s[1] > s[0]]
    diverged = _run_nonfinite_phrase(stretches) if stretches else ""
    out = []
    for c in change_points:
        degrading = severity_rank(c.severity) >= Severity.WARNING.rank
        if c.batch is not None or not degrading or is_context(c.metric, cfg.anomaly.metric_directions):
            continue
        fall, rel = _fall_phrase(c.metric, c.mean_before, c.mean_after, c.step, cfg, full_name=True)
        near = [o for o in change_points if o.batch is None and o.metric != c.metric and within(o, c)]
        # a progress counter changes at every count (an epoch column steps at each epoch of a per-iteration log):
        # only its reset, a restart, is a change of setup
        near = [o for o in near if not is_progress(o.metric) or o.mean_after < o.mean_before]
        others = sorted({o.metric for o in near})
        restarted = [m for m in others if is_progress(m)]
        lr = [m for m in others if is_schedule(m, cfg.anomaly.metric_directions) and not is_progress(m)]
        side: Side
        after_nan = bool(stretches) and stretches[0][0] <= c.step
        if after_nan:
            side, why = "model", f"after {diverged}: the run diverged"
        elif restarted:
            setup = f" and {', '.join(lr)} changed" if lr else ""
            side, why = "model", f"{', '.join(restarted)} started again{setup} at that step: a restart is the suspect"
        elif lr:
            side, why = "model", f"{', '.join(lr)} changed at that step, so the training setup is the suspect"
        elif others:
            side, why = "unknown", f"{', '.join(others)} changed at the same step"
        else:
            side, why = "unknown", "no batch metrics were logged to tell data from model"
        out.append(
            RootCause(
                batch=None,
                step=c.step,
                side=side,
                sentence=f"{fall}; {why}",
                score=RANKING.fall * max(rel, 0.0) + RANKING.severity * SEVERITY_WEIGHT[Severity.parse(c.severity)],
                evidence={
                    "metric": c.metric,
                    "before": c.mean_before,
                    "after": c.mean_after,
                    "relative_change": rel,
                    "first_bad_step": c.step,
                    "global_changes": others,
                    "learning_rate_change": bool(lr),
                    "nonfinite_before": after_nan,
                },
            )
        )
    if stretches and not any(r.evidence["nonfinite_before"] for r in out):
        first = stretches[0][0]
        out.append(
            RootCause(
                batch=None,
                step=first,
                side="model",
                sentence=f"{diverged}: the run diverged",
                score=RANKING.fall + RANKING.severity * SEVERITY_WEIGHT[Severity.CRITICAL],
                evidence={"first_bad_step": first, "nonfinite": _stretch_dicts(stretches)},
            )
        )
    elif not stretches and nonfinite:
        first, _, metric, value = nonfinite[0]
        out.append(
            RootCause(
                batch=None,
                step=first,
                side="unknown",
                sentence=f"{metric} was {_nonfinite_word(value)} at step {first} only (one logged step), "
                f"not a lasting divergence",
                score=RANKING.severity * SEVERITY_WEIGHT[Severity.CRITICAL],
                evidence={"first_bad_step": first, "nonfinite": _stretch_dicts(nonfinite)},
            )
        )
    if never and not stretches:
        first = min(a.step for a in critical_nan if a.metric in never)
        out.append(
            RootCause(
                batch=None,
                step=first,
                side="unknown",
                sentence=f"{name_list(never, shown=3)} never had a finite value (NaN or Inf at every logged step): "
                "not computed, or diverged from the first step",
                score=RANKING.severity * SEVERITY_WEIGHT[Severity.CRITICAL],
                evidence={"first_bad_step": first, "never_finite": never},
            )
        )
    out.sort(key=lambda r: -r.score)
    return out


def _run_nonfinite_phrase(stretches: list[tuple[int, int, str, float]]) -> str:
    """'loss turned NaN at step 750 (also loss_cls, loss_mask and 3 more)': the earliest run-level stretch and the
    other metrics that turned non-finite within it."""
    first, last, metric, value = stretches[0]
    with_it = sorted({m for s, _, m, _ in stretches if m != metric and s <= last})
    also = f" (also {name_list(with_it, shown=2)})" if with_it else ""
    return f"{metric} turned {_nonfinite_word(value)} at step {first}{also}"


def _nonfinite_word(value: float) -> str:
    """'NaN', 'Inf' or '-Inf'."""
    return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")


def _stretch_dicts(stretches: list[tuple[int, int, str, float]]) -> list[dict[str, object]]:
    """Non-finite stretches as the evidence of a cause lists them."""
    return [{"step": a, "end_step": b, "metric": m, "value": str(v)} for a, b, m, v in stretches]


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
    name = metric if full_name else metric_leaf(metric)
    direction = metric_direction(metric, cfg.anomaly.metric_directions)
    if math.isfinite(before) and math.isfinite(after):
        verb = "fell" if after < before else "rose" if after > before else "stayed at"
        sign = 1.0 if direction == "higher_is_better" else -1.0
        rel = sign * (before - after) / max(abs(before), 1e-12)
        shown_before, shown_after = _metric_nums(before, after)
        return f"{name} {verb} {shown_before} → {shown_after} at step {step}", rel
    if nonfinite:
        return f"{name} is not finite (NaN/Inf) from step {step}", 0.0
    if math.isfinite(after):
        bound = metric_threshold(metric, cfg.anomaly.metric_thresholds)
        if bound is not None and worse(after, bound, direction):
            where = f" ({'below' if direction == 'higher_is_better' else 'above'} its {_metric_num(bound)} bound)"
        else:
            where = ""
        return f"{name} at {_metric_num(after)} from step {step}{where}", 0.0
    return f"went wrong at step {step}", 0.0


def _nonfinite_phrase(stretches: list[tuple[int, int, str, float]]) -> str:
    """'recall is NaN at step 200' / 'recall is NaN/Inf at steps 200-260 (and 2 more stretches)'."""
    first, last, metric, value = min(stretches)
    what = _nonfinite_word(value)
    where = f"step {first}" if first == last else f"steps {first}-{last}"
    more = (
        f" (and {len(stretches) - 1} more non-finite stretch{'es' if len(stretches) > 2 else ''})"
        if len(stretches) > 1
        else ""
    )
    return f"{metric_leaf(metric)} is {what} at {where}{more}"


def _batch_cause(ctx: CauseContext, prob: BatchProblem, n_together: int) -> RootCause | None:
    """The cause of one batch's fall (data side unless its peers fell with it), or None without a real fall."""
    cfg = ctx.cfg
    metric = ctx.main_metric(prob)
    before, after = (
        before_after(ctx.series, prob.batch, metric, prob.first_step, LEVEL_POINTS)
        if metric
        else (float("nan"), float("nan"))
    )
    fall, rel = _fall_phrase(metric, before, after, prob.first_step, cfg, "nonfinite" in prob.detectors)
    if prob.nonfinite:
        # A NaN/Inf is the finding a user must hear about first: a finite before/after around it says nothing.
        nan_text = _nonfinite_phrase(prob.nonfinite)
        fall = nan_text if prob.first_step >= min(s for s, *_ in prob.nonfinite) else f"{fall}; {nan_text}"
    glob = ctx.global_changes_near(prob.first_step)
    ev = ctx.quality_evidence.get(prob.batch, {"n": 0})
    qphrase, strength = quality_phrase(ev)
    if (
        rel < cfg.anomaly.performance_drop_threshold
        and not qphrase
        and not prob.ends_below_bound
        and "nonfinite" not in prob.detectors
    ):
        return None  # the numbers show no real fall: a passing flag, not something to explain
    n_batches = ctx.n_batches
    alone = n_together <= max(1, int(0.2 * n_batches))
    side: Side
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
    score = (
        RANKING.fall * max(rel, 0.0)
        + RANKING.severity * prob.severity_weight
        + RANKING.quality_effect * strength
        + min(prob.n_findings, RANKING.max_findings)
    )
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
        "nonfinite": _stretch_dicts(prob.nonfinite),
    }
    return RootCause(
        batch=prob.batch,
        step=prob.first_step,
        side=side,
        sentence=f"batch {prob.batch}: {fall}; {why}",
        score=score,
        evidence=evidence,
    )


def _model_side(ctx: CauseContext, probs: dict[int, BatchProblem], group: list[int], step: int) -> RootCause | None:
    """One cause for the batches that fell together at `step`, or None when together they did not get worse."""
    cfg = ctx.cfg
    metric = ctx.main_metric(probs[group[0]])
    befores, afters = [], []
    if metric:
        for b in group:
            bf, af = before_after(ctx.series, b, metric, step, LEVEL_POINTS)
            befores.append(bf)
            afters.append(af)
    before = float(np.nanmedian(befores)) if np.isfinite(befores).any() else float("nan")
    after = float(np.nanmedian(afters)) if np.isfinite(afters).any() else float("nan")
    fall, rel = _fall_phrase(metric, before, after, step, cfg)
    if rel < cfg.anomaly.performance_drop_threshold:
        return None  # the batches moved together but did not get worse
    glob = ctx.global_changes_near(step)
    lr = [g for g in glob if _is_lr(g)]
    cause = (
        "the learning rate changed at that step"
        if lr
        else f"{', '.join(glob)} changed at the same step"
        if glob
        else "all batches changing together points at the model or training setup, not the data"
    )
    n_batches = ctx.n_batches
    sentence = f"{len(group)} of {n_batches} batches: median {fall}; a model-side change ({cause})"
    score = (
        RANKING.fall * max(rel, 0.0)
        + RANKING.severity * max(probs[b].severity_weight for b in group)
        + RANKING.shared_batches * len(group) / n_batches
    )
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
