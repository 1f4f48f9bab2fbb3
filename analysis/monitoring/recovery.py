"""Recovery strategies (`auto_recovery.strategies`): what the training loop could do about a degradation.

`RecoveryPolicy.evaluate(step, statuses)` turns the monitor's per-metric view (`MetricStatus`) into
`RecoveryAction`s the loop applies itself (load a checkpoint, scale the learning rate, stop), and calls optional
callbacks. Strategies:

- ``rollback_on_severe_drop``: a value is non-finite or ``severe_drop_threshold`` worse than the best; names the
  newest checkpoint under ``training_config.checkpoint_dir`` saved at or before the last good step. At most
  ``max_rollbacks``; one per episode (the metric must recover before the next); when the budget is spent and
  early stopping is enabled, a severe drop stops the run instead.
- ``adjust_lr_on_plateau``: no improvement for ``plateau_patience`` observations; suggests ``lr_factor``.
- ``trigger_early_stopping``: degraded for ``early_stop_patience`` consecutive observations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from analysis.core.config import AnalyzerConfig
from analysis.core.vocabulary import metric_leaf
from analysis.monitoring.records import MetricStatus

log = logging.getLogger(__name__)

ActionKind = Literal["rollback", "adjust_lr", "early_stop"]
_STRATEGY_OF: dict[str, str] = {
    "rollback": "rollback_on_severe_drop",
    "adjust_lr": "adjust_lr_on_plateau",
    "early_stop": "trigger_early_stopping",
}
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class RecoveryAction:
    """Something the training loop should do. `checkpoint` (rollback) and `lr_factor` (adjust_lr) when relevant."""

    kind: ActionKind
    step: int
    metric: str
    reason: str
    checkpoint: str | None = None
    lr_factor: float | None = None

    @property
    def strategy(self) -> str:
        return _STRATEGY_OF[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "strategy": self.strategy}


_PARTIAL = (".tmp", ".temp", ".partial", ".part", ".lock", ".incomplete")


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint was saved at, read from the last number in its name (`ckpt_step_1200.pt` -> 1200)."""
    m = _LAST_INT.search(path.name)
    return int(m.group(1)) if m else None


def find_checkpoint(
    checkpoint_dir: str | Path, max_step: int | None, registered: Mapping[int, str] | None = None
) -> str | None:
    """Newest checkpoint saved at or before `max_step`: registered ones first, then files/folders in the dir."""
    candidates: dict[int, str] = dict(registered or {})
    root = Path(checkpoint_dir)
    try:
        entries = list(root.iterdir()) if root.is_dir() else []
    except OSError:  # unreadable dir: the registered checkpoints still count
        entries = []
    for p in entries:
        if p.name.startswith(".") or p.name.endswith(_PARTIAL):
            continue  # hidden or half-written saves are not checkpoints to roll back to
        s = checkpoint_step(p)
        if s is not None and s not in candidates:
            candidates[s] = str(p)
    ok = [s for s in candidates if max_step is None or s <= max_step]
    return candidates[max(ok)] if ok else None


class RecoveryPolicy:
    """Stateful strategies over the metrics that matter (e.g. `val/recall`), bounded rollbacks, callbacks.

    `callbacks` maps an action kind (``rollback``, ``adjust_lr``, ``early_stop``) or a strategy name to a
    function called with the `RecoveryAction`; a callback that raises is logged, never propagated.
    """

    def __init__(
        self,
        config: AnalyzerConfig,
        metrics: Iterable[str],
        callbacks: Mapping[str, Callable[[RecoveryAction], Any]] | None = None,
    ) -> None:
        self.config = config
        self.rec = config.experiment_monitoring.auto_recovery
        self.drop_threshold = config.experiment_monitoring.anomaly_detection.performance_drop_threshold
        self.metrics = set(metrics)
        self.callbacks = dict(callbacks or {})
        self.checkpoint_dir = Path(config.training_config.checkpoint_dir)
        self.checkpoints: dict[int, str] = {}
        self.rollbacks = 0
        self.stopped = False
        self._armed: dict[str, bool] = {}
        self._exhausted_logged = False

    @property
    def enabled(self) -> bool:
        return self.rec.enable and bool(self.rec.strategies) and bool(self.metrics)

    def watches(self, metric: str) -> bool:
        """True for a watched name, or one whose last part is watched (`val/recall` when `recall` is), the same
        way thresholds match."""
        return metric in self.metrics or metric_leaf(metric) in self.metrics

    def register_checkpoint(self, step: int, path: str | Path) -> None:
        """Tell the policy about a checkpoint the loop saved (in addition to scanning `checkpoint_dir`)."""
        self.checkpoints[int(step)] = str(path)

    def evaluate(self, step: int, statuses: Iterable[MetricStatus]) -> list[RecoveryAction]:
        """Actions for this step (at most one of each kind), after calling the callbacks."""
        if not self.enabled or self.stopped:
            return []
        actions: dict[str, RecoveryAction] = {}
        for st in statuses:
            if not self.watches(st.metric):
                continue
            for action in (self._rollback(step, st), self._plateau(step, st), self._early_stop(step, st)):
                if action is not None and action.kind not in actions:
                    actions[action.kind] = action
        if "early_stop" in actions:
            self.stopped = True
        out = list(actions.values())
        self._call(out)
        return out

    def _on(self, strategy: str) -> bool:
        return strategy in self.rec.strategies

    def _rollback(self, step: int, st: MetricStatus) -> RecoveryAction | None:
        severe = st.nonfinite or (st.warmed_up and st.relative_drop >= self.rec.severe_drop_threshold)
        if not severe:
            if st.relative_drop < self.drop_threshold:
                self._armed[st.metric] = True  # recovered: the next severe episode may roll back again
            return None
        if not self._on("rollback_on_severe_drop") or not self._armed.get(st.metric, True):
            return None
        self._armed[st.metric] = False
        what = (
            f"{st.metric} is {st.value}"
            if st.nonfinite
            else (f"{st.metric} = {st.value:.4g} is {st.relative_drop:.1%} below its best {st.best:.4g}")
        )
        if self.rollbacks >= self.rec.max_rollbacks:
            if not self._exhausted_logged:
                log.warning("rollback limit (%d) reached; not rolling back at step %d", self.rec.max_rollbacks, step)
                self._exhausted_logged = True
            if self._on("trigger_early_stopping"):
                return RecoveryAction(
                    "early_stop", step, st.metric, f"{what} and the rollback limit ({self.rec.max_rollbacks}) is spent"
                )
            return None
        good = st.last_good_step if st.last_good_step is not None else st.best_step
        ckpt = find_checkpoint(self.checkpoint_dir, good, self.checkpoints)
        self.rollbacks += 1
        where = f"roll back to {ckpt}" if ckpt else f"no checkpoint at or before step {good} in {self.checkpoint_dir}"
        return RecoveryAction(
            "rollback",
            step,
            st.metric,
            f"{what} (last good step {good}); {where} (rollback {self.rollbacks} of {self.rec.max_rollbacks})",
            checkpoint=ckpt,
        )

    def _plateau(self, step: int, st: MetricStatus) -> RecoveryAction | None:
        p = self.rec.plateau_patience
        if not self._on("adjust_lr_on_plateau") or not st.warmed_up or st.stale_count < p or st.stale_count % p:
            return None
        return RecoveryAction(
            "adjust_lr",
            step,
            st.metric,
            f"{st.metric} has not improved for {st.stale_count} observations "
            f"(best {st.best:.4g} at step {st.best_step}); multiply the learning rate by "
            f"{self.rec.lr_factor}",
            lr_factor=self.rec.lr_factor,
        )

    def _early_stop(self, step: int, st: MetricStatus) -> RecoveryAction | None:
        if not self._on("trigger_early_stopping") or st.bad_streak < self.rec.early_stop_patience:
            return None
        return RecoveryAction(
            "early_stop", step, st.metric, f"{st.metric} has been degraded for {st.bad_streak} consecutive observations"
        )

    def _call(self, actions: list[RecoveryAction]) -> None:
        for action in actions:
            fn = self.callbacks.get(action.kind) or self.callbacks.get(action.strategy)
            if fn is None:
                continue
            try:
                fn(action)
            except Exception:  # a user callback must not break the training loop
                log.exception("recovery callback for %s failed", action.kind)
