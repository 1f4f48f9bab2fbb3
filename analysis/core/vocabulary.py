"""The product's shared vocabulary, defined once: severities, metric directions and schedules, quality reasons.

Every detector, report, figure, the monitor and the app import these names instead of re-deciding them. This module
imports nothing of the project, so anything may depend on it (`quality/` included).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Literal, Protocol

__all__ = [
    "INTERMITTENT_RECOVERIES",
    "Direction",
    "QualityReason",
    "Severity",
    "counts_epochs",
    "counts_rows",
    "is_context",
    "is_lower_better",
    "is_progress",
    "is_resource",
    "is_schedule",
    "is_validation",
    "known_direction",
    "marks_restarts",
    "metric_direction",
    "metric_leaf",
    "metric_threshold",
    "nonfinite_severity",
    "run_metrics_to_draw",
    "severity_rank",
    "worse",
    "worst_index",
    "worst_severity",
]


# --------------------------------------------------------------------------------------------------- severity
class Severity(StrEnum):
    """How bad a finding is, in increasing order. A member equals its string ("warning" == Severity.WARNING)."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for ok, 1 info, 2 warning, 3 critical: the one ranking every table and sort uses."""
        return _SEVERITY_ORDER.index(self)

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """`value` as a Severity; an unknown name raises ValueError naming the known ones."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"unknown severity {value!r}: use one of {', '.join(s.value for s in cls)}") from None


_SEVERITY_ORDER: tuple[Severity, ...] = tuple(Severity)


def severity_rank(value: str | Severity) -> int:
    """Rank of a severity name (unknown names rank as ok: a finding never outranks what it is not)."""
    try:
        return Severity(str(value)).rank
    except ValueError:
        return 0


def worst_severity(values: Iterable[str | Severity]) -> Severity:
    """The most severe of `values`, `Severity.OK` when there are none."""
    worst = Severity.OK
    for v in values:
        if severity_rank(v) > worst.rank:
            worst = Severity(str(v))
    return worst


# ---------------------------------------------------------------------------------------------------- metrics
Direction = Literal["higher_is_better", "lower_is_better"]

# Name tokens that mean "lower is better" (plural forms are matched too: `errors`, `losses`).
_LOWER_TOKENS = frozenset(
    {"loss", "error", "err", "cer", "wer", "ter", "perplexity", "ppl", "mse", "mae", "rmse", "nll", "distance", "l1",
     "l2"}
)  # fmt: skip
# Name tokens that mean "higher is better": the metrics whose rise is known to be an improvement. Any other name
# defaults to higher-is-better too (`metric_direction`), but a rise of `grad_norm` or `kl` is no known improvement.
_HIGHER_TOKENS = frozenset(
    {"acc", "accuracy", "recall", "precision", "prec", "hmean", "f1", "fscore", "map", "map50", "auc", "auroc",
     "iou", "miou", "dice", "dsc", "psnr", "ssim", "bleu", "rouge", "reward", "return", "top1", "top5", "ned", "ap",
     "ar"}
)  # fmt: skip
_SCHEDULE_NAMES = frozenset(
    {"lr", "learning_rate", "momentum", "epoch", "step", "global_step", "weight_decay", "wd", "batch_size",
     "beta1", "beta2", "warmup", "lr_scale", "grad_scale", "loss_scale", "img_size", "imgsz"}
)  # fmt: skip
# Progress counters and run labels that training logs carry beside their metrics (found unlabelled in the real logs
# of benchmarks/data/curves: `iter` in 59 files, `run` 42, `episode` 39, `iteration` 30, `seed` 29, ...): a counter
# that starts again at a restart fell "67 % from its best" and was a critical finding.
_COUNTER_NAMES = frozenset(
    {"iter", "iters", "iteration", "iterations", "it", "n_iter", "num_iter", "epochs", "epoch_num", "total_epochs",
     "steps", "step_num", "num_steps", "total_steps", "timestep", "timesteps", "timesteps_total", "env_step",
     "env_steps", "training_iteration", "episode", "episodes", "episodes_total", "num_episodes", "frame", "frames",
     "batch_idx", "batch_index", "num_updates", "record", "row", "run", "run_id", "seed", "trial", "fold", "session"}
)  # fmt: skip
# ... of which these only count (the others label a run: a new `run` or `seed` is a new setup)
_RUN_LABELS = frozenset({"run", "run_id", "seed", "trial", "fold", "session"})
_PROGRESS_NAMES = (_COUNTER_NAMES - _RUN_LABELS) | {"epoch", "step", "global_step"}
# ... of which these count epochs: they never start again within a run, not even at a regular pace (an iteration
# counter does, every epoch), so every reset is a new run (a log of 30 runs of 50 epochs each, one after another).
_EPOCH_NAMES = frozenset({"epoch", "epochs", "epoch_num"})
# ... and these number the log's records: they count on through a restart, so they say nothing about one
_ROW_NAMES = frozenset({"record", "row"})
# A learning rate per parameter group: YOLOv5's `x/lr0`..`x/lr2`, YOLOv8's `lr/pg0`..`lr/pg2`, `lr_1`.
_LR_GROUP = re.compile(r"(lr|learning_rate)_?(pg)?\d+")
# Name tokens of resource figures: what a step cost (`time`, `data_time`, `iter_time`, `memory` of mmcv and
# detectron2 logs, `latency`), not how well the model learns.
_RESOURCE_TOKENS = frozenset({"time", "latency", "duration", "memory", "mem"})
_TOKEN_SPLIT = re.compile(r"[^0-9a-z]+")
# A GAN's players: the generator's and the discriminator's losses (and the discriminator's accuracy) are the two sides
# of a game, not grades. A generator loss that climbs from 2 to 13 while the images improve is a healthy DCGAN (real
# logs of benchmarks/data/curves), and the live monitor called it "549 % worse than its best" at every step.
_GAN_TOKENS = frozenset({"gan", "adv", "adversarial"})
_PLAYER_TOKENS = frozenset({"g", "d", "gen", "dis", "disc", "generator", "discriminator"})
# ... unless another token grades the output: pix2pix's `G_L1` is the generator's L1 distance to the target.
_GENERIC_GRADES = frozenset({"loss", "losses", "acc", "accuracy", "err", "error", "errors"})


class _HasDirections(Protocol):
    @property
    def metric_directions(self) -> Mapping[str, str]: ...


DirectionOverrides = Mapping[str, str] | _HasDirections | None


def metric_leaf(metric: str) -> str:
    """The last part of a metric key: `batch_3/recall` -> `recall`, `val/loss` -> `loss`."""
    return metric.rsplit("/", 1)[-1]


def _overrides(cfg: DirectionOverrides) -> Mapping[str, str]:
    if cfg is None:
        return {}
    if isinstance(cfg, Mapping):
        return cfg
    return cfg.metric_directions


def _name_tokens(metric: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(metric_leaf(metric).lower()) if t]


def metric_direction(metric: str, cfg: DirectionOverrides = None) -> Direction:
    """Whether a metric should go up (recall) or down (loss): `known_direction`, else higher is better."""
    return known_direction(metric, cfg) or "higher_is_better"


def known_direction(metric: str, cfg: DirectionOverrides = None) -> Direction | None:
    """The direction a metric is known to have, None when its name does not say.

    A direction in the config (`metric_directions`, exact key first, then its last part) wins; otherwise the name
    decides: a token such as loss / error(s) / cer / wer / perplexity / nll / mse / rmse, or a gradient norm
    (`grad_norm`, `gnorm`), means lower is better; one such as acc / recall / precision / hmean / f1 / map / iou /
    psnr / reward / return higher is better.
    """
    overrides = _overrides(cfg)
    for key in (metric, metric_leaf(metric)):
        if key in overrides:
            return "lower_is_better" if overrides[key] == "lower_is_better" else "higher_is_better"
    tokens = _name_tokens(metric)
    if is_adversarial(metric):
        return None
    forms = [f for t in tokens for f in _token_forms(t)]
    for token in forms:
        if token in _LOWER_TOKENS or (token.endswith("s") and token[:-1] in _LOWER_TOKENS):
            return "lower_is_better"
        if token.endswith("loss") or token.endswith("losses"):  # `trainloss`, `celoss`
            return "lower_is_better"
    if is_gradient_norm(metric):  # an exploding gradient
        return "lower_is_better"
    if {"false", "negative"} <= set(tokens) or {"false", "positive"} <= set(tokens):  # detectron2's false_negative
        return "lower_is_better"
    if any(t in _HIGHER_TOKENS or (t.endswith("s") and t[:-1] in _HIGHER_TOKENS) for t in forms):
        return "higher_is_better"
    if any(len(t) > 3 and t.endswith(("acc", "map", "f1")) for t in tokens):  # mmseg's `aAcc`, `HBBmAP`, `maxF1`
        return "higher_is_better"
    return None


def is_gradient_norm(metric: str) -> bool:
    """A gradient norm (`grad_norm`, `gnorm`, `gradnorm`): lower is better only in that an explosion is bad."""
    tokens = _name_tokens(metric)
    return "gnorm" in tokens or "gradnorm" in tokens or {"grad", "norm"} <= set(tokens)


INTERMITTENT_RECOVERIES = 3  # NaN/Inf stretches a metric came back from before its NaNs are intermittent


def nonfinite_severity(metric: str, recoveries: int = 0, leading: bool = False) -> Severity:
    """How bad a NaN/Inf in `metric` is: critical, except a warning in a gradient norm, which overflows now and then in
    mixed-precision training (the loss scaler skips those steps; a Swin run of the curve corpus logged `inf` grad
    norms at three steps and trained on); a divergence shows in the losses too.

    Also a warning once the metric has come back to finite values after ``INTERMITTENT_RECOVERIES`` NaN/Inf stretches
    (`recoveries`): it is NaN now and then, not diverged (a Darknet log prints a layer's IoU as `-nan` at every
    iteration where no object was assigned to it, 95 % of them; as critical events they were 271 of one run's 274
    and its root cause read "the run diverged").

    A note (info) for a `leading` stretch: NaN from the metric's first logged value until its first finite one, a
    value not computed yet (RLlib's mean episode reward before the first episode ends; a log whose first 228 rows
    carry no training loss), not a fall. Its `recoveries` are those after its first finite value."""
    if leading:
        return Severity.INFO
    if is_gradient_norm(metric) or recoveries >= INTERMITTENT_RECOVERIES:
        return Severity.WARNING
    return Severity.CRITICAL


def has_best(metric: str, cfg: DirectionOverrides = None) -> bool:
    """Whether a metric's best value so far is a target it can fall from: its direction is known and it is not a
    gradient norm, whose level follows the learning rate and the loss landscape (the gradient norm of a healthy
    GPT-2 run climbs over its last half; an explosion is a spike or a NaN, not a distance from the smallest norm)."""
    if known_direction(metric, cfg) is None:
        return False
    overrides = _overrides(cfg)
    return metric in overrides or metric_leaf(metric) in overrides or not is_gradient_norm(metric)


def is_adversarial(metric: str) -> bool:
    """A GAN player's loss or score (`loss_gen`, `Loss_D`, `G_GAN`, `d_acc`, `adv_loss`): its level is one side of a
    game, so it has no direction (`known_direction` is None) and no best to fall from. A name that also grades the
    output with a specific measure (`G_L1`, `G_perceptual`) is not one."""
    tokens = set(_name_tokens(metric))
    if tokens & _GAN_TOKENS:
        return True
    if not tokens & _PLAYER_TOKENS:
        return False
    return tokens - _PLAYER_TOKENS <= _GENERIC_GRADES | {"train", "val", "fake", "real", "score", "total", "mean"}


def _token_forms(token: str) -> tuple[str, ...]:
    """A name token, and without its trailing digits when it has some (`error1` / `error5` of ImageNet logs,
    `acc1`, COCO's `AP50` and `AR100`)."""
    bare = token.rstrip("0123456789")
    return (token, bare) if bare and bare != token else (token,)


def is_lower_better(metric: str, cfg: DirectionOverrides = None) -> bool:
    return metric_direction(metric, cfg) == "lower_is_better"


def is_schedule(metric: str, cfg: DirectionOverrides = None) -> bool:
    """Training-setup values (learning rate, also per parameter group, epoch, momentum, ...) and progress counters
    (`iter`, `episode`, `run`, `seed`, ...): they change on purpose, so a change is a fact (useful to explain a
    fall), never a degradation. A direction set in the config wins."""
    overrides = _overrides(cfg)
    if metric in overrides or metric_leaf(metric) in overrides:
        return False
    leaf = metric_leaf(metric).lower().replace("-", "_")
    if leaf in _SCHEDULE_NAMES or leaf in _COUNTER_NAMES or leaf.endswith("_lr") or leaf.startswith("lr_"):
        return True
    parts = metric.lower().replace("-", "_").split("/")
    return _LR_GROUP.fullmatch(leaf) is not None or any(p in ("lr", "learning_rate") for p in parts[:-1])


def is_progress(metric: str) -> bool:
    """A progress counter (`epoch`, `step`, `iter`, `episode`, ...): it changes at every count, so only its reset (a
    restart) says anything about the setup; a run label (`run`, `seed`) or a learning rate is not one."""
    return metric_leaf(metric).lower().replace("-", "_") in _PROGRESS_NAMES


def counts_epochs(metric: str) -> bool:
    """A progress counter of epochs (`epoch`): unlike an iteration counter it never starts again within a run."""
    return metric_leaf(metric).lower().replace("-", "_") in _EPOCH_NAMES


def counts_rows(metric: str) -> bool:
    """A counter of the log's records (`record`, `row` of a converted log), not of training: it counts on through a
    restart."""
    return metric_leaf(metric).lower().replace("-", "_") in _ROW_NAMES


def marks_restarts(metric: str) -> bool:
    """A progress counter or a run label: its change points are restarts (`changepoints.restart_points`), which
    every chart of the run marks, whatever metric it draws."""
    return is_progress(metric) or is_run_label(metric)


def is_run_label(metric: str) -> bool:
    """A column that labels the run a row belongs to (`run`, `seed`, `session`, `fold`, ...): a new value is a new
    run, or the same run resumed."""
    return metric_leaf(metric).lower().replace("-", "_") in _RUN_LABELS


def is_resource(metric: str, cfg: DirectionOverrides = None) -> bool:
    """Resource figures (iteration time, data-loading time, memory): their changes are facts (a slower data loader
    can explain a stall), not a degradation of what the model learns. A direction set in the config wins."""
    overrides = _overrides(cfg)
    if metric in overrides or metric_leaf(metric) in overrides:
        return False
    return not _RESOURCE_TOKENS.isdisjoint(_name_tokens(metric))


def is_context(metric: str, cfg: DirectionOverrides = None) -> bool:
    """A column that describes the run rather than grades it (`is_schedule`, `is_resource`): detectors and severity
    treat its changes as facts, never as alarms, and run comparisons leave it out."""
    return is_schedule(metric, cfg) or is_resource(metric, cfg)


_VALIDATION_PREFIXES = ("val/", "valid/", "eval/")


def is_validation(metric: str) -> bool:
    """A validation metric (`val/*`, `valid/*`, `eval/*`): what a run is judged on when nothing else stands out."""
    return metric.startswith(_VALIDATION_PREFIXES)


def run_metrics_to_draw(names: Iterable[str], flagged: Iterable[str] = (), cfg: DirectionOverrides = None) -> list[str]:
    """Run-level metric names in the order a chart should take them: those with an alarm (`flagged`, in its order,
    worst first), then validation metrics, then the rest; context columns (learning rates, counters, timings) only
    when there is nothing else to draw. The dashboard's default selection and the HTML report's chart both cut it."""
    names = list(dict.fromkeys(names))
    graded = [n for n in names if not is_context(n, cfg)] or names
    known = set(graded)
    rank = {n: i for i, n in enumerate(dict.fromkeys(f for f in flagged if f in known))}
    return sorted(graded, key=lambda n: (rank.get(n, len(rank)), not is_validation(n)))


def metric_threshold(metric: str, thresholds: Mapping[str, float]) -> float | None:
    """The absolute bound for a metric: the exact name wins over its last part (`val/recall` over `recall`)."""
    for key in (metric, metric_leaf(metric)):
        if key in thresholds:
            return float(thresholds[key])
    return None


def worse(a: float, b: float, direction: Direction) -> bool:
    """True when value `a` is worse than `b` for a metric going in `direction`."""
    return a > b if direction == "lower_is_better" else a < b


def worst_index(values: Iterable[Any], direction: Direction) -> int | None:
    """Position of the worst finite value (the highest loss, the lowest recall); None when none is finite."""
    best_i: int | None = None
    best_v = math.nan
    for i, v in enumerate(values):
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and (best_i is None or worse(x, best_v, direction)):
            best_i, best_v = i, x
    return best_i


# ------------------------------------------------------------------------------------------- image quality
class QualityReason(StrEnum):
    """Why an image fails the quality checks: the code beside each human message, grouped by everywhere."""

    RESOLUTION = "resolution"
    ROTATION = "rotation"  # skewed: text lines at an angle within (-45°, 45°]
    ORIENTATION = "orientation"  # the page is on its side or upside down (90 / 180 / 270)
    BLUR = "blur"
    CONTRAST = "contrast"
    UNREADABLE = "unreadable"
    DUPLICATE = "duplicate"  # the same (or a near-identical) image as another one (quality.duplicates)

    @property
    def label(self) -> str:
        """A short human name for tables and sentences."""
        return _REASON_LABELS[self]


_REASON_LABELS = {
    QualityReason.RESOLUTION: "low resolution",
    QualityReason.ROTATION: "rotated",
    QualityReason.ORIENTATION: "sideways or upside down",
    QualityReason.BLUR: "blurry",
    QualityReason.CONTRAST: "low contrast",
    QualityReason.UNREADABLE: "unreadable",
    QualityReason.DUPLICATE: "duplicate image",
}
