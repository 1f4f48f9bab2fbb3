"""Labelled training-like series for the findings benchmark (seeded, no files).

Every series is a validation curve (recall-like, rising to a plateau) or a training loss (decaying), sampled at
n steps with Gaussian noise, plus one scenario. Labels are the change points (index where the new regime
starts) and the isolated outliers (index of each injected spike). Magnitudes are in units of the noise sigma, so
the difficulty does not depend on the metric's scale.

Scenarios (the kinds of trouble a training run shows):
- healthy: the clean curve only (no change point, no outlier)
- spikes: healthy + 3-6 isolated spikes of 6-12 sigma (outliers, no change point)
- drop: a persistent level drop of 6-25 sigma (one change point)
- drop_recovery: a drop that recovers 20-150 steps later (two change points)
- lr_step: a loss curve whose level falls abruptly when the learning rate is cut, then keeps decaying (one)
- drift: a slow linear degradation of 10-25 sigma over the rest of the run (one change point where it starts)
- plateau: the curve stops improving abruptly and stays flat (one change point: a kink, not a jump)
- variance: the noise grows 3-5x (one change point)
- late_drop: a curve that has settled on a plateau starts to improve faster again (LR warm-down, a second phase
  of learning): a straight improvement of 10-40 sigma that starts abruptly and, when it ends before the run does,
  ends in a new plateau (one or two change points: same-sign slope changes, no jump). Last in SCENARIOS, so the
  series of the other scenarios are the same as before it was added.
Change-point scenarios also get 0-3 spikes, so outlier detection is scored on shifting series too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCENARIOS = ("healthy", "spikes", "drop", "drop_recovery", "lr_step", "drift", "plateau", "variance", "late_drop")
LENGTHS = (200, 500, 1000)


@dataclass
class LabelledSeries:
    name: str
    scenario: str
    values: np.ndarray
    change_points: list[int] = field(default_factory=list)
    outliers: list[int] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No change point in the labels (healthy curves, with or without spikes)."""
        return not self.change_points


def _curve(n: int, rng: np.random.Generator, kind: str, settled: bool = False) -> tuple[np.ndarray, float]:
    """A clean learning curve and its noise sigma: recall-like rises to a plateau, loss-like decays (`settled`:
    a short time constant, so the curve is on its plateau by 40 % of the run)."""
    t = np.arange(n, dtype=float)
    tau = rng.uniform(0.03, 0.08) * n if settled else rng.uniform(0.05, 0.35) * n
    if kind == "recall":
        start, end = rng.uniform(0.3, 0.7), rng.uniform(0.85, 0.97)
        curve = end - (end - start) * np.exp(-t / tau)
        sigma = rng.uniform(0.003, 0.02)
    else:
        start, end = rng.uniform(1.5, 4.0), rng.uniform(0.2, 0.6)
        curve = end + (start - end) * np.exp(-t / tau)
        sigma = rng.uniform(0.01, 0.05)
    return curve, sigma


def _change_at(n: int, rng: np.random.Generator, lo: float = 0.25, hi: float = 0.8) -> int:
    return int(rng.integers(int(lo * n), int(hi * n)))


def _spikes(n: int, rng: np.random.Generator, count: int, avoid: list[int]) -> list[int]:
    """Spike positions away from the ends and at least 5 points from change points and each other."""
    chosen: list[int] = []
    tries = 0
    while len(chosen) < count and tries < 1000:
        tries += 1
        i = int(rng.integers(10, n - 10))
        if all(abs(i - a) > 5 for a in avoid + chosen):
            chosen.append(i)
    return sorted(chosen)


def make_series(scenario: str, n: int, rng: np.random.Generator, name: str = "") -> LabelledSeries:
    """One labelled series of the given scenario and length."""
    kind = "loss" if scenario == "lr_step" or rng.random() < 0.3 else "recall"
    curve, sigma = _curve(n, rng, kind)
    bad = 1.0 if kind == "loss" else -1.0  # direction in which the metric gets worse
    noise_scale = np.full(n, sigma)
    cps: list[int] = []
    t = np.arange(n, dtype=float)
    if scenario == "drop":
        c = _change_at(n, rng)
        curve[c:] += bad * rng.uniform(6, 25) * sigma
        cps = [c]
    elif scenario == "drop_recovery":
        c = _change_at(n, rng, 0.2, 0.6)
        r = min(n - 20, c + int(rng.integers(20, 151)))
        curve[c:r] += bad * rng.uniform(6, 25) * sigma
        cps = [c, r]
    elif scenario == "lr_step":
        c = _change_at(n, rng, 0.3, 0.8)
        extra = rng.uniform(6, 20) * sigma
        # The level falls at once, then decays a little further with a short time constant.
        curve[c:] -= extra * (0.7 + 0.3 * (1 - np.exp(-(t[c:] - c) / max(5.0, 0.05 * n))))
        cps = [c]
    elif scenario == "drift":
        c = _change_at(n, rng, 0.3, 0.7)
        total = rng.uniform(10, 25) * sigma
        curve[c:] += bad * total * (t[c:] - c) / (n - c)
        cps = [c]
    elif scenario == "plateau":
        # Fast early learning, then it abruptly stops improving.
        c = _change_at(n, rng, 0.25, 0.6)
        tt = t[:c]
        slope = rng.uniform(20, 60) * sigma / c
        curve = curve[0] - bad * slope * tt if c else curve
        curve = np.r_[curve, np.full(n - c, curve[-1])]
        cps = [c]
    elif scenario == "late_drop":
        curve, sigma = _curve(n, rng, kind, settled=True)
        c = _change_at(n, rng, 0.4, 0.8)
        length = max(10, int(rng.uniform(0.1, 0.3) * n))
        ramp = np.clip((t - c) / length, 0.0, 1.0)
        curve = curve - bad * rng.uniform(10, 40) * sigma * ramp
        noise_scale = np.full(n, sigma)
        cps = [c] + ([c + length] if c + length < 0.95 * n else [])
    elif scenario == "variance":
        c = _change_at(n, rng)
        noise_scale[c:] *= rng.uniform(3, 5)
        cps = [c]
    values = curve + rng.normal(0, 1, n) * noise_scale
    n_spikes = (
        int(rng.integers(3, 7)) if scenario == "spikes" else (0 if scenario == "healthy" else int(rng.integers(0, 4)))
    )
    spikes = _spikes(n, rng, n_spikes, cps) if n_spikes else []
    for i in spikes:
        values[i] += rng.choice([-1.0, 1.0]) * rng.uniform(6, 12) * noise_scale[i]
    return LabelledSeries(name or f"{scenario}-{n}", scenario, values, cps, spikes)


def labelled_set(per_scenario: int = 30, seed: int = 0) -> list[LabelledSeries]:
    """`per_scenario` series of every scenario, lengths cycling through LENGTHS."""
    rng = np.random.default_rng(seed)
    out = []
    for scenario in SCENARIOS:
        for i in range(per_scenario):
            n = LENGTHS[i % len(LENGTHS)]
            out.append(make_series(scenario, n, rng, name=f"{scenario}-{i}"))
    return out


def pw_constant_set(count: int = 50, n: int = 1000, seed: int = 0) -> list[LabelledSeries]:
    """ruptures' own piecewise-constant signals (1-D, 4 breaks, noise 1, jumps 1-10)."""
    import ruptures as rpt

    out = []
    for i in range(count):
        signal, bkps = rpt.pw_constant(n, 1, 4, noise_std=1.0, delta=(1, 10), seed=seed + i)
        out.append(LabelledSeries(f"pw_constant-{i}", "pw_constant", signal[:, 0], [int(b) for b in bkps[:-1]]))
    return out
