"""Same-sign slope changes, soft steps, collapses and settlings: the changes `changepoints.series_changes` missed.

`changepoints.slope_changes` looks only for trends that turn (improving -> degrading), because the ordinary bend of
a learning curve (a fast fall that flattens) keeps one sign of slope. Real curves also change regime without a
turn, and people label those (benchmarks/data/curves/LABELLING.md): a plateau that ends in a clear drop, a drop
that ends in a new plateau, a metric that collapses in its last few evaluations. This module finds them;
`series_changes` calls `with_trend_changes` once (`bends=False` leaves it out, for before/after figures).

`bends(x, shifts)`: on the cleaned series (`changepoints._clean`: no NaN, warm-up or spikes), level shifts
removed (`_destep`), block means of <= 200 points:
1. Noise. A slope over w points must stand out from what a line over w points cannot follow. The short-scale
   noise is the robust sd of the residuals of a centred moving line of 11 points (`_scale_noise`), also
   locally (median over the `_LOCAL_NOISE` points around a knot, for series whose noise changes). The
   autocorrelation rho (`_inflation`) comes from the residuals of a centred moving quadratic of up to 41 points
   (Savitzky-Golay), estimated robustly as rho = 1 - (MAD of the residuals' differences / MAD of the
   residuals)^2 / 2 (for a stationary series var(r_t - r_t-1) = 2 var(r) (1 - rho)), and inflates slope
   variances by (1 + rho) / (1 - rho). A moving line leaves a learning curve's bend in its residuals as a slow
   wave, and a product-moment correlation counts a kink as strong autocorrelation: both read rho ~0.95 on a
   smooth curve and made every slope test blind (an early plateau that ends in a curved drop was never found);
   the quadratic follows the bend and the MADs ignore the few points at a kink, while the slow part of AR or
   EMA-smoothed noise stays (white noise on a curve: rho ~0; AR(0.7): ~0.6).
2. Acceleration ("plateau then faster drop"). For every knot k and window w = 5, 10, 20, ... (one set of
   arrays, all from prefix sums), lines are fitted to the w points before k (slope s1, residual sd r1) and
   after it (s2, r2). With d = sign(s2), the knot is a candidate when the slope gained, |s2| - s1 d, is
   >= `_BEND_T` = 4 standard errors (OLS slope variance 12 sigma^2 inflation / w^3, sigma = the legs' pooled
   residual sd, never below the local short-scale noise), |s2| is itself at 4 standard errors, the flat side is
   flat both over w and over 2w points (|s1| <= `_BEND_RATIO` |s2|: the slope at least doubles; at a wave's
   crest the longer window takes in the rise before it) and not significantly the other way (that is a turn),
   both legs are lines (r1, r2 <= `_BEND_QUIET` = 2 x the local noise: an oscillation is no bend), no level
   shift lies within the window, and the fall gained, (|s2| - s1 d)(w - 1), reaches `_BEND_MIN_SIGMA` = 3 sigma
   and `_BEND_RANGE_SHARE` = 10 % of the series' full range (visible on a plot of the whole run), also by medians
   (the far end of the steep leg against the knot). Candidates are taken greedily by t (none within a window of
   one taken), and each is placed by the least-squares continuous two-line fit on [k - w, k + w).
   Why a healthy learning curve does not trigger it: it decelerates everywhere (on a convex decreasing curve the
   line fitted to an earlier stretch is always steeper than one fitted to a later stretch), so |s2| > |s1| can
   only come from noise, which the standard errors, the visibility bar and the quiet-legs test hold back.
3. Deceleration ("the drop ends"). It has the shape of the ordinary bend, so it is only taken right after an
   accepted acceleration in the same direction (its steep leg starts within 2 windows after it), with the
   mirrored tests (the drop would have gone visibly further at its own slope). A fast initial fall that
   flattens is never preceded by an acceleration, so it is never found.
4. Soft steps. Block means and windows blur a jump that the step tests missed (a learning-rate step on a noisy
   per-iteration loss) into an acceleration where the fall starts and a deceleration where it ends. A pair of the
   same direction whose steep stretch is shorter than the windows that found it is one level shift, reported at
   its middle, when the stretch (with as many points of context each side) is fitted better by one jump between
   two levels than by the ramp flat - line - flat (`_step_like`), or when it is shorter than `_STEP_SHARE` = 5 %
   of the series (LABELLING.md: a shorter stretch is no regime of its own). A real ramp keeps both ends.

`tail_collapse(values)`: the step tests need points on both sides of a break, so a metric that falls to a
degenerate value in its last few evaluations was missed. A tail of >= `_TAIL_MIN` = 3 points, after at least
`_TAIL_PRIOR` = 4 others (and at most three quarters of the series after the warm-up that `changepoints._clean`
leaves out, for short eval series), is a collapse when every tail point lies beyond every earlier value, the gap
from the nearest earlier point to the nearest tail point (not from the last point before it, which may be a
spike: a spike on a falling curve, which is below all its earlier values anyway, read as a collapse right after
it) is larger than any step before it (a learning curve moves in its biggest steps first), >= `_TAIL_SIGMA` = 5
noise sigmas and >= `_TAIL_RANGE_SHARE` = 25 % of the earlier points' p5-p95 range, and the tail's own spread is
smaller than that gap (a new level reached in one jump and kept; a curve that keeps improving also reaches new
extremes, but step by step). Both directions (a fall to 0, a loss that blows up).

`held_value(values)`: a metric that falls onto one exact value and keeps it for a while (an eval accuracy at exactly
0 from its fourth evaluation on, in MLPerf Mask R-CNN logs; a false-negative rate stuck at 1.0) has no noise left on
that stretch. Read on the finite raw values, warm-up included (the drop often comes in the first evaluations, which
`changepoints._clean` leaves out, so the step tests saw a constant series). The longest run of one value is held
when it lasts >= `_SETTLE_MIN` points and `_HOLD_SHARE` = 2 % of the series, at least `_HOLD_RUNS` = 3 x as long as
every other run (a held, staircase metric repeats each value for a while) and its value is no regular elsewhere; its
entry (with two points before it) and its exit (when the series then moves and stays off the value: a floor with
blips is no exit) are level shifts. Tune + test batches 1-6 (seen): test recall 0.45 -> 0.47 (four collapses onto 0
or 1.0 found, no new false change point), tune unchanged; 2 % rather than 5 % (swept 0-5 % on the tune split): a
PaddleOCR training accuracy at exactly 0 for its first 23 of 550 logged steps, tune recall 0.66 -> 0.67 at 0.17 ->
0.16 false per series.

`floor_exit(x)`: a metric that sits on one exact value (a DETR class error at 0, with or without a few blips) and
then leaves it for a noisy band is missed by the step tests: the floor's noise is exactly 0, the band's is large,
KernelCPD cuts the band into many candidates and none stands out from the band's noise. The indicator "x is on
its most frequent value" is a Bernoulli series; the split with the largest log-likelihood ratio over one rate must
reach `_FLOOR_PEN` ln n = 3 ln n (the other detectors' penalty), keep >= 5 points and 5 % of the series each side,
and go from an occupancy >= `_FLOOR_HIGH` = 0.8 before to <= `_FLOOR_LOW` = 0.2 after; the regime after moves (more
than 1 in `_SETTLE_MIN` differences is not 0: a held staircase that climbs to its next stair is no exit). A floor
with blips all along keeps its occupancy, a metric that reaches a floor is `constant_tail`'s. Reported as a level
shift; a turn found within `_MERGE` points of it is the band's start and is dropped, and so is a level shift within
`_MERGE` points (the step tests place the jump where the band's level is reached, 3-12 points after the first point
off the floor when the metric climbs out over a few points; the exit is placed exactly). Before, such a shift kept
the exit out; the change moved two detectron2 accuracies (test batch 5, previously seen: leaving an exact 0 / 1)
from a shift 6-10 points late to the labelled exit, and nothing else on tune + test batches 1-5.

`smooth_jumps(x)`: on a smooth curve (an epoch-averaged loss, a smoothed export) the step tests' noise estimate
is inflated by the curve's strong autocorrelation (rho capped at 0.95: inflation 39), so a jump of three times the
curve's per-epoch movement that a person sees at once (a resumed run whose loss jumps above its trend, and drops
back nine epochs later) is not called. Here each point t is the start of a jump when lines fitted to the w points
before and the w points after it (w = max(`_JUMP_WINDOW` = 6, 0.5 % of n)) disagree at t in opposite ways
(the after-line starts above the before-line's extrapolation and the point before t lies below the after-line's
back-extrapolation, or the reverse) by a mean offset that is
- >= `_JUMP_SIGMA` = 8 noise sigmas, the noise being the larger residual sd of the two lines, or where larger the
  series' short-scale noise (`_scale_noise`) or the spread of the moves around t (`_move_noise_at`): two short
  lines fit a long noisy or quantised series closely somewhere by chance;
- >= `_JUMP_RANGE_SHARE` = 5 % of the series' p5-p95 range (visible on a plot of the whole run);
- made mostly (`_JUMP_ONE_MOVE` = half) by the single move into t, trend removed: a smoothed wander that the two
  lines extrapolate apart moves a little at every point, a jump at one.
A curve that bends smoothly is followed by both lines; a spike was removed before (`changepoints._clean`).
Strongest first, one per w points. Chosen on the tune split (w 4-8, 6-20 sigmas, 3-8 % of the range, a window
share of 0-2 %) and on healthy generated curves with white, EMA-smoothed, AR(1) and heavy-tailed noise (no jump on
any). Measured (benchmarks/findings.py, before -> after in one run): tune recall 0.68 -> 0.76 at 0.18 -> 0.18 false
change points per series; held out once afterwards: real test split (107 series) recall 0.31 -> 0.43, precision
0.37 -> 0.45, 0.50 -> 0.50 false per series; TCPD F1 0.622 -> 0.603, cover 0.617 -> 0.602 (BinSeg 0.566 / 0.528);
generated F1 0.880 -> 0.882, 0.00 false change points per healthy run.

`_one_fall(x, shifts)`: a level shift that follows one the same way within 5 % of the series (>= 5 points) is
left out: the level between them lasts too short to be a regime (LABELLING.md), so a fall that takes a few
points (a reward collapsing over several evaluations) is one change, where it starts.

`constant_tail(x)`: a metric that settles on one value and keeps it to its end (precision stuck at exactly 1.0,
a loss at exactly 0; values within `_SETTLE_TOL` = 1e-6 of the series' range count as one) has no noise left: a
regime of its own, reported as a noise change at the first point of the tail. The tail lasts >= 5 points and 5 %
of the series, and the value was no regular before it (at most half of as many points before the tail take it):
a floor with blips sits on its value all along, and its last quiet stretch is no change.

Calibration: the constants were chosen on the `tune` split of benchmarks/data/curves (false alarms on GAN losses'
slow waves and on post-divergence regimes), on the generated `late_drop` scenario of benchmarks/labelled_series.py
(recall) and on healthy generated curves with white, EMA-smoothed, AR(1), heavy-tailed and quantised noise
(tests/test_trends.py); the test split and TCPD were measured once afterwards. Figures: `changepoints` docstring.
The second round (robust quadratic rho, soft steps, slope-only filters before any noise estimate, for speed) was
tuned on the tune split including the batch-2 sources (detectron2 LR steps, DeiT) and on real-curve-shaped
synthetic cases (early plateau then curved drop, plateau then ramp, collapse, healthy saturating curves).
"""

from __future__ import annotations

import math

import bottleneck as bn
import numpy as np

from analysis.findings.series_stats import MAD_TO_SIGMA, centred_median, line_fits, median, window_sums
from analysis.findings.step_tests import STEP_WINDOW

_MAX_POINTS = 200  # series are block-averaged to about this many points (as `changepoints.slope_changes`)
_MERGE = STEP_WINDOW // 2  # a bend this close to a change already found is that change

_BEND_T = 4.0  # slope gained and steep leg at this many (autocorrelation-inflated) standard errors
_BEND_RATIO = 0.5  # the flat leg's slope is at most this share of the steep leg's
_BEND_MIN_SIGMA = 3.0  # the fall gained is at least this many noise sigmas ...
_BEND_RANGE_SHARE = 0.1  # ... and this share of the full range of the series
_BEND_MIN_POINTS = 5  # the shortest window (block points); windows double from here
_RHO_SCALE = 20  # half-width of the moving line whose residuals give the noise's autocorrelation
_LOCAL_NOISE = 21  # points around a knot whose short-scale residuals give its local noise
_BEND_QUIET = 2.0  # each leg's residual sd around its line is at most this many noise sigmas
_STEP_SHARE = 0.05  # a steep stretch shorter than this share of the series is one (soft) level shift
_SETTLE_MIN = 5  # a settling on one exact value lasts at least this many points ...
_SETTLE_TOL = 1e-6  # values this share of the series' range apart are one value
_SETTLE_SHARE = 0.5  # ... and the value was taken by at most this share of as many points before it
_HOLD_SHARE = 0.02  # a held stretch lasts at least this share of the series (and `_SETTLE_MIN` points) ...
_HOLD_RUNS = 3  # ... and is at least this many times as long as any other run of one value
_FLOOR_HIGH = 0.8  # a floor: the value taken by at least this share of the points before the exit ...
_FLOOR_LOW = 0.2  # ... and by at most this share after it
_FLOOR_PEN = 3.0  # the exit's log-likelihood ratio is at least this x ln n (as the other penalties, 3 ln n)
_TAIL_MIN = 3  # a collapse at the end keeps its new level for at least this many points
_TAIL_SIGMA = 5.0  # the gap from the nearest earlier point to the nearest tail point: this many noise sigmas ...
_TAIL_RANGE_SHARE = 0.25  # ... and this share of the earlier points' p5-p95 range
_TAIL_PRIOR = 4  # points before a collapse, at least
_JUMP_WINDOW = 6  # points each side of a jump on a smooth curve, at least ...
_JUMP_WINDOW_SHARE = 0.005  # ... and this share of the series (long per-step logs)
_JUMP_SIGMA = 8.0  # the jump: this many times the larger residual sd of the two lines ...
_JUMP_RANGE_SHARE = 0.05  # ... and this share of the series' p5-p95 range
_JUMP_ONE_MOVE = 0.5  # the single move into t (trend removed) makes at least this share of the jump


def _scale_noise(y: np.ndarray, sums: np.ndarray, w: int, local: bool = True) -> tuple[float, np.ndarray]:
    """(sigma, local sigma at every point; empty without `local`) of the wiggles shorter than w: residuals of a
    centred moving line of 2w + 1 points. The local sigma is the same robust estimate over the `_LOCAL_NOISE`
    points around each point, for series whose noise changes (a slope must stand out from the noise where it is
    measured).

    A learning curve's bend is a trend at this scale, not noise (`changepoints.noise_profile` on first differences
    counts it as autocorrelation on smooth curves and makes every slope test blind); what a window of w points
    cannot follow is the noise its slope has to stand out from."""
    n = y.size
    i = np.arange(n)
    a, b = np.clip(i - w, 0, n), np.clip(i + w + 1, 0, n)
    s0, s1, s2, sy, sty, _ = (sums[b] - sums[a]).T
    det = np.maximum(s0 * s2 - s1 * s1, 1e-300)
    slope = (s0 * sty - s1 * sy) / det
    level = (sy - slope * s1) / s0
    r = y - float(np.mean(y)) - (level + slope * i)
    r = np.abs(r - median(r))
    mad = median(r)
    if mad <= 0:
        return 0.0, np.zeros(n if local else 0)
    scale = 1.4826 / math.sqrt(max(1.0 - 2.0 / (2 * w + 1), 0.5))
    if not local:
        return scale * mad, np.empty(0)
    half = min(_LOCAL_NOISE, n) // 2
    around = bn.move_median(np.r_[r, np.full(half, np.nan)], min(_LOCAL_NOISE, n), min_count=1)[half:]
    return scale * mad, scale * around


def _inflation(y: np.ndarray, w: int) -> float:
    """Variance inflation (1 + rho) / (1 - rho) of a slope over many points, rho the lag-1 autocorrelation of the
    residuals of a centred moving quadratic of 2w + 1 points (Savitzky-Golay), estimated robustly
    (`_robust_rho`). The quadratic follows a learning curve's bend, which a moving line leaves in its residuals
    as a slow wave (on a smooth curve that read as rho ~0.9 and made every slope test blind); the slow part of
    AR or EMA-smoothed noise, which a short window would absorb, stays."""
    rho = quadratic_rho(y, w)
    return 1.0 if rho is None else (1.0 + rho) / (1.0 - rho)


def quadratic_rho(y: np.ndarray, w: int) -> float | None:
    """The lag-1 autocorrelation of `_inflation`: of the residuals of a centred moving quadratic of 2w + 1 points
    (`_robust_rho`); None when the series is too short for a 5-point window or the residuals have no spread (a
    quantised or constant stretch), where it says nothing."""
    from scipy.signal import savgol_filter

    width = min(2 * w + 1, y.size if y.size % 2 else y.size - 1)
    if width < 5:
        return None
    r = y - savgol_filter(y, width, 2, mode="interp")
    r = r - median(r)
    mad = median(np.abs(r))
    return _robust_rho(r, mad) if mad > 0 else None


def _robust_rho(r: np.ndarray, mad: float) -> float:
    """Lag-1 autocorrelation of residuals r (median 0, MAD `mad`) from robust scales: for a stationary series
    var(r_t - r_t-1) = 2 var(r) (1 - rho), so rho = 1 - (MAD of the differences / MAD of r)^2 / 2. A kink or a
    stretch of curvature the moving line cannot follow touches a minority of points and moves neither MAD (a
    product-moment correlation counts it as strong autocorrelation and blinds every slope test)."""
    d = np.diff(r)
    if d.size < 2 or mad <= 0:
        return 0.0
    md = median(np.abs(d - median(d)))
    return min(max(1.0 - 0.5 * (md / mad) ** 2, 0.0), 0.95)


def _candidates(y: np.ndarray, visible: float, shifts: np.ndarray) -> list[tuple[float, int, int, int]]:
    """(t-statistic, knot, window, direction) of every accelerating (direction +-1) knot over all window scales,
    and, when there is one, of every decelerating knot (direction +-2: the steep leg went +-1) for the end-of-drop
    check. Windows that hold a level shift (`shifts`, sorted indices of y) are skipped: a step left over by
    `_destep` is no bend."""
    m = y.size
    # Every (knot, window) pair of every scale w = 5, 10, 20, ... in one set of arrays.
    scales = [_BEND_MIN_POINTS * 2**i for i in range(32) if _BEND_MIN_POINTS * 2 ** (i + 1) <= m]
    if not scales:
        return []
    ks = np.concatenate([np.arange(w, m - max(_BEND_MIN_POINTS, w // 2) + 1) for w in scales])
    ws = np.concatenate([np.full(max(m - max(_BEND_MIN_POINTS, w // 2) + 1 - w, 0), w) for w in scales])
    if shifts.size:  # no level shift within [k - w, k + w]
        clear = np.searchsorted(shifts, ks - ws, side="left") == np.searchsorted(shifts, ks + ws, side="right")
        ks, ws = ks[clear], ws[clear]
    if ks.size == 0:
        return []
    sums = window_sums(y)
    right_end = np.minimum(ks + ws, m)
    s1, _ = line_fits(sums, ks - ws, ks, rss=False)
    s2, _ = line_fits(sums, ks, right_end, rss=False)
    out = _bend_tests(y, sums, ks, ws, s1, s2, visible, after=True)
    if out:  # a drop started somewhere: where may it end?
        out += _bend_tests(y, sums, ks, ws, s1, s2, visible, after=False)
    return out


def _bend_tests(
    y: np.ndarray,
    sums: np.ndarray,
    ks: np.ndarray,
    ws: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    visible: float,
    after: bool,
) -> list[tuple[float, int, int, int]]:
    """The tests of the module docstring for the steep leg after the knot (`after`: an acceleration) or before it
    (the end of a drop). The cheap slope-only conditions go first: on a healthy curve nothing is left after them."""
    m = y.size
    n1, n2 = ws.astype(float), (np.minimum(ks + ws, m) - ks).astype(float)
    steep, flat, legs = (s2, s1, n2) if after else (s1, s2, n1)
    d = np.sign(steep)
    gained = np.abs(steep) - flat * d
    pre = np.flatnonzero((flat * d <= _BEND_RATIO * np.abs(steep)) & (gained * (legs - 1) >= visible))
    if pre.size == 0:
        return []
    floor = _scale_noise(y, sums, _BEND_MIN_POINTS, local=False)[0]
    floor = max(floor, 1e-9 * max(1.0, float(np.max(np.abs(y)))))
    # Lower bounds of the tests below (sigma >= floor, inflation >= 1), so nothing they would keep is dropped.
    se_min = floor * np.sqrt(12.0 / n1[pre] ** 3 + 12.0 / n2[pre] ** 3)
    se_steep_min = floor * np.sqrt(12.0 / legs[pre] ** 3)
    pre = pre[
        (gained[pre] * (legs[pre] - 1) >= _BEND_MIN_SIGMA * floor)
        & (gained[pre] >= _BEND_T * se_min)
        & (np.abs(steep[pre]) >= _BEND_T * se_steep_min)
    ]
    if pre.size == 0:
        return []
    ks, ws, n1, n2, d, gained = ks[pre], ws[pre], n1[pre], n2[pre], d[pre], gained[pre]
    steep, flat, legs = steep[pre], flat[pre], legs[pre]
    # The flat side of a bend is a plateau that lasts: over twice the window its slope is still flat (at a crest
    # of a wave the longer window takes in the rise before it). Slopes only: before any noise estimate.
    if after:
        flat_long, _ = line_fits(sums, np.maximum(ks - 2 * ws, 0), ks, rss=False)
    else:
        flat_long, _ = line_fits(sums, ks, np.minimum(ks + 2 * ws, m), rss=False)
    keep = np.flatnonzero(np.abs(flat_long) <= _BEND_RATIO * np.abs(steep))
    if keep.size == 0:
        return []
    ks, ws, n1, n2, d, gained = ks[keep], ws[keep], n1[keep], n2[keep], d[keep], gained[keep]
    steep, flat, legs = steep[keep], flat[keep], legs[keep]
    _, local = _scale_noise(y, sums, _BEND_MIN_POINTS)
    # Autocorrelation from a wider detrending: the residuals of a short moving line lose the slow part of AR
    # noise (and of a wandering curve) that a long window's slope does see.
    infl = _inflation(y, min(_RHO_SCALE, max(_BEND_MIN_POINTS, m // 3)))
    noise = np.maximum(local[ks], floor)  # the short-scale noise around the knot
    _, r1 = line_fits(sums, ks - ws, ks)
    _, r2 = line_fits(sums, ks, ks + n2.astype(np.int64))
    # The noise each slope has to stand out from is what its line cannot explain (a wave or a bend inside a leg
    # counts as noise), never less than the short-scale noise around the knot.
    sigma = np.sqrt(np.maximum(r1 * r1 * (n1 - 2) + r2 * r2 * (n2 - 2), 0.0) / np.maximum(n1 + n2 - 4, 1.0))
    sigma = np.maximum(sigma, noise)
    se1 = sigma * np.sqrt(12.0 * infl / n1**3)
    se2 = sigma * np.sqrt(12.0 * infl / n2**3)
    se_steep, se_flat = (se2, se1) if after else (se1, se2)
    t = gained / np.sqrt(se1 * se1 + se2 * se2)
    ok = (
        (r1 <= _BEND_QUIET * noise)  # both legs are lines up to the short-scale noise: a wave's crest is no plateau
        & (r2 <= _BEND_QUIET * noise)
        & (t >= _BEND_T)
        & (np.abs(steep) >= _BEND_T * se_steep)
        & (flat * d >= -_BEND_T * se_flat)
        & (gained * (legs - 1) >= _BEND_MIN_SIGMA * sigma)
    )
    idx = np.flatnonzero(ok)
    sign = 1 if after else 2
    return list(zip(t[idx].tolist(), ks[idx].tolist(), ws[idx].tolist(), (d[idx].astype(int) * sign).tolist()))


def _moved(y: np.ndarray, k: int, w: int, d: int, visible: float) -> bool:
    """By medians, the steep leg moves the curve visibly the way its slope says (one spike cannot)."""
    h = max(2, _BEND_MIN_POINTS // 2)
    at_knot = median(y[max(0, k - h) : k + h + 1])
    if abs(d) == 1:  # steep after the knot: its far end against the knot
        far = median(y[max(k, min(k + w, y.size) - _BEND_MIN_POINTS) : min(k + w, y.size)])
        return (far - at_knot) * d >= visible
    far = median(y[max(0, k - w) : max(0, k - w) + _BEND_MIN_POINTS])  # steep before the knot
    return (at_knot - far) * np.sign(d) >= visible


def _pick(y: np.ndarray, visible: float, shifts: np.ndarray) -> tuple[list[int], list[int]]:
    """(bends, soft steps). Accelerations greedily by t-statistic (no two within one window of each other), then
    the ends of their drops: a deceleration whose steep leg starts within one window after an accepted
    acceleration the same way (one end per acceleration, the strongest). An acceleration and the end of its drop
    within the larger of their windows are one soft level shift, at their middle, when the stretch is shorter
    than `_STEP_SHARE` of the series (LABELLING.md: a regime lasts >= 5 % of it) or a jump fits it better than a
    ramp (`_step_like`)."""
    cands = sorted(_candidates(y, visible, shifts), reverse=True)
    accel: list[tuple[int, int, int]] = []
    for _, k, w, d in cands:
        if abs(d) == 1 and all(abs(k - a) > max(w, wa) for a, wa, _ in accel) and _moved(y, k, w, d, visible):
            accel.append((_refine(y, k, w), w, d))
    if not accel:  # the common case: no drop started, so none can end
        return [], []
    ends: list[tuple[int, int, int]] = []
    ended: set[int] = set()  # a drop ends once: the accelerations that have their end
    for _, k, w, d in cands:
        if abs(d) != 2 or any(abs(k - e) <= max(w, we) for e, we, _ in ends):
            continue
        owners = [a for a, _, da in accel if da == d // 2 and 0 < k - a <= 2 * w and a not in ended]
        if not owners:
            continue
        k = _refine(y, k, w)
        if all(abs(k - a) > _BEND_MIN_POINTS for a, _, _ in accel) and _moved(y, k, w, d, visible):
            ends.append((k, w, d // 2))
            ended.add(max(owners))
    short = max(1, math.ceil(_STEP_SHARE * y.size))
    steps: list[int] = []
    paired: set[int] = set()
    for e, we, d in sorted(ends):
        starts = [a for a, wa, da in accel if da == d and 0 < e - a <= max(wa, we) and a not in paired]
        if starts and (e - starts[-1] <= short or _step_like(y, starts[-1], e)):  # one step
            paired.update((starts[-1], e))
            steps.append((starts[-1] + e) // 2)
    found = [k for k, _, _ in accel] + [k for k, _, _ in ends]
    return sorted(k for k in found if k not in paired), sorted(steps)


def _step_like(y: np.ndarray, a: int, e: int) -> bool:
    """Whether the stretch from a bend at a to the end of its drop at e, with as many points of context each side,
    is fitted better by one jump between two levels (best split) than by the ramp flat - line - flat with knots
    at a and e: the block means and the windows blur a step into such a pair of bends."""
    length = e - a
    lo, hi = max(0, a - length), min(y.size, e + length)
    seg = y[lo:hi]
    if seg.size < 4:
        return False
    ramp = np.clip((np.arange(lo, hi) - a) / max(length, 1), 0.0, 1.0)
    design = np.stack([np.ones(seg.size), ramp], axis=1)
    _, rss_ramp, *_ = np.linalg.lstsq(design, seg, rcond=None)
    ramp_rss = float(rss_ramp[0]) if rss_ramp.size else 0.0
    cs, cs2 = np.cumsum(seg), np.cumsum(seg * seg)
    k = np.arange(1, seg.size)
    left = cs2[k - 1] - cs[k - 1] ** 2 / k
    right = (cs2[-1] - cs2[k - 1]) - (cs[-1] - cs[k - 1]) ** 2 / (seg.size - k)
    return float(np.min(left + right)) < ramp_rss


def _refine(y: np.ndarray, k: int, w: int) -> int:
    """The knot of the least-squares continuous two-line fit a + b t + c max(t - k, 0) on the window
    [k - w, k + w): the two-window test of the widest scale finds a bend, but its best knot can sit up to a
    window early or late. Solved for every knot at once from the 3 x 3 normal equations (only accepted bends
    get here, so the O(window^2) arrays are small and few)."""
    lo, hi = max(0, k - w), min(y.size, k + w)
    min_len = max(3, (hi - lo) // 8)
    seg = y[lo:hi] - float(np.mean(y[lo:hi]))
    t = np.arange(seg.size, dtype=float)
    ks = np.arange(min_len, seg.size - min_len + 1)
    if ks.size == 0:
        return k
    h = np.maximum(t[None, :] - ks[:, None], 0.0)  # the hinge column for every knot
    ones = np.ones(seg.size)
    cols = [np.broadcast_to(ones, h.shape), np.broadcast_to(t, h.shape), h]
    xtx = np.stack([np.stack([(a * b).sum(axis=1) for b in cols], axis=-1) for a in cols], axis=-2)
    xty = np.stack([(a * seg).sum(axis=1) for a in cols], axis=-1)
    beta = np.linalg.solve(xtx + 1e-12 * np.eye(3), xty[..., None])[..., 0]
    rss = float(seg @ seg) - (beta * xty).sum(axis=1)
    return lo + int(ks[int(np.argmin(rss))])


def bends(y: np.ndarray, shifts: list[int]) -> tuple[list[int], list[int]]:
    """(indices of y where a trend steepens the same way or where such a steep stretch ends, soft level shifts: a
    steep stretch too short to be a regime, at its middle). y is the cleaned, finite series with its level shifts
    (`shifts`) already subtracted (`changepoints._destep`)."""
    n = y.size
    if n < 4 * _BEND_MIN_POINTS or float(np.std(y)) <= 1e-9 * max(1.0, float(np.max(np.abs(y)))):
        return [], []  # flat once the level shifts are removed: float rounding is not a trend
    block = max(1, math.ceil(n / _MAX_POINTS))
    m = n // block
    means = y[: m * block].reshape(m, block).mean(axis=1)
    # Visible on a plot of the whole series: a share of its full range (warm-up and spikes already left out).
    visible = _BEND_RANGE_SHARE * float(np.ptp(means))
    in_blocks = np.array(sorted({s // block for s in shifts}), dtype=np.int64)
    found, steps = _pick(means, visible, in_blocks)
    return sorted({k * block + block // 2 for k in found}), sorted({k * block + block // 2 for k in steps})


def tail_collapse(values: np.ndarray, start: int = 0) -> int | None:
    """Original index where the series collapses to a new level it keeps to its end, or None. The new level may
    hold for as little as `_TAIL_MIN` points and as much as three quarters of the series (short eval series).
    Points before `start` (a warm-up) are not looked at."""
    raw = np.asarray(values, dtype=float).ravel()
    fin = np.flatnonzero(np.isfinite(raw))
    fin = fin[fin >= start]
    x = raw[fin]
    n = x.size
    if n < _TAIL_MIN + _TAIL_PRIOR:
        return None
    head = x[:_TAIL_PRIOR]
    if float(np.min(head)) <= x[-1] <= float(np.max(head)):
        return None  # the last point is a tail point, beyond every earlier one: the cheap necessary test
    cs = np.arange(max(n // 4, _TAIL_PRIOR), n - _TAIL_MIN + 1)
    if cs.size == 0:
        return None
    for sign in (1.0, -1.0):  # a fall, then a rise (the series mirrored)
        z = sign * x
        if not z[-1] < float(np.min(z[: cs[0]])):
            continue  # the last point must lie beyond every point before the earliest tail start: cheap, necessary
        prefix_min = np.minimum.accumulate(z)  # prefix_min[c - 1] = min(z[:c])
        suffix_max = np.maximum.accumulate(z[::-1])[::-1]  # suffix_max[c] = max(z[c:])
        suffix_min = np.minimum.accumulate(z[::-1])[::-1]
        # From the nearest earlier point to the nearest later one: a spike just before c (the last point before it
        # far out) is no jump, and a learning curve falls below all its earlier values at every point.
        gap = prefix_min[cs - 1] - suffix_max[cs]
        biggest_move = np.maximum.accumulate(np.r_[0.0, np.abs(np.diff(z))])  # [i]: largest |step| up to point i
        # Every later point beyond every earlier one, in one jump larger than any step before it (a learning
        # curve's early rise moves in its biggest steps first), to a new level that is kept: the tail's own spread
        # is smaller than the jump (a curve that keeps improving reaches new extremes too, step by step).
        ok = (
            (suffix_max[cs] < prefix_min[cs - 1])
            & (gap > biggest_move[cs - 1])
            & (suffix_max[cs] - suffix_min[cs] <= gap)
        )
        for c in cs[ok]:  # the longest tail first; usually none is left
            prior = x[:c]
            sigma = _scale_noise(prior, window_sums(prior), min(_BEND_MIN_POINTS, max(1, c // 3)), local=False)[0]
            bar = max(_TAIL_RANGE_SHARE * float(np.subtract(*np.percentile(prior, [95, 5]))), _TAIL_SIGMA * sigma)
            if gap[c - cs[0]] >= max(bar, 1e-9 * max(1.0, float(np.max(np.abs(prior))))):
                return int(fin[c])
    return None


def constant_tail(x: np.ndarray) -> int | None:
    """Index of x (cleaned, finite) where it settles on one value (within `_SETTLE_TOL` of its range) that it keeps
    to its end, or None: a
    metric that saturates at a degenerate value (precision stuck at exactly 1.0, a loss at exactly 0) has no noise
    left, a regime of its own. The tail lasts >= `_SETTLE_MIN` points and `_STEP_SHARE` of the series, and the
    value was no regular before it (at most `_SETTLE_SHARE` of the as many points before the tail take it): a floor
    with blips sits on its value all along, its last quiet stretch is no change."""
    n = x.size
    need = max(_SETTLE_MIN, math.ceil(_STEP_SHARE * n))
    if n < 2 * need:
        return None
    same = np.abs(x - x[-1]) <= _SETTLE_TOL * float(np.ptp(x))  # float noise of a stuck float32 value too
    differ = np.flatnonzero(~same)
    if differ.size == 0:
        return None  # constant throughout
    start = int(differ[-1]) + 1
    if n - start < need or start < need:
        return None
    return start if float(np.mean(same[max(0, start - (n - start)) : start])) <= _SETTLE_SHARE else None


def held_value(values: np.ndarray) -> tuple[int | None, int | None]:
    """(original index where the series starts to hold one exact value, where it leaves it) for the longest such
    stretch, each None when not a change: a metric that drops to exactly 0 and stays there (a dead accuracy), or
    sticks at a ceiling for a while, has no noise left on the stretch.

    Read on the finite raw values, warm-up included (the drop often comes within the first evaluations). The
    stretch lasts >= `_SETTLE_MIN` points and `_HOLD_SHARE` of the series (one exact value, no noise: shorter
    than a regime of a noisy metric needs), at least `_HOLD_RUNS` x as long as the longest other stretch of one
    value (a held, staircase metric repeats every value for a while), and its value is no regular elsewhere (at
    most `_SETTLE_SHARE` of as many points take it). The entry counts with at least two points before it; the
    exit when the series then moves (it is no staircase's next stair) and stays off the value (at most
    `_FLOOR_LOW` of the next points: a floor with blips is no exit)."""
    raw = np.asarray(values, dtype=float).ravel()
    fin = np.flatnonzero(np.isfinite(raw))
    z = raw[fin]
    n = z.size
    need = max(_SETTLE_MIN, math.ceil(_HOLD_SHARE * n))
    if n < need + 2:
        return None, None
    tol = _SETTLE_TOL * float(np.ptp(z))
    steps = np.abs(np.diff(z)) > tol
    if steps.size - np.count_nonzero(steps) < need - 1:
        return None, None  # cheap and necessary: a held stretch of `need` points has `need` - 1 equal neighbours
    cuts = np.flatnonzero(steps) + 1
    starts = np.r_[0, cuts]
    lengths = np.diff(np.r_[starts, n])
    if lengths.size < 2:
        return None, None
    best = int(np.argmax(lengths))
    a, length = int(starts[best]), int(lengths[best])
    others = np.delete(lengths, best)
    if length < need or length < _HOLD_RUNS * int(others.max()):
        return None, None
    elsewhere = np.count_nonzero(np.abs(np.r_[z[:a], z[a + length :]] - z[a]) <= tol)
    if elsewhere > _SETTLE_SHARE * length:
        return None, None
    b = a + length
    after = z[b : b + need]
    moves = float(np.mean(np.diff(after) != 0)) if after.size > 1 else 0.0
    back = float(np.mean(np.abs(after - z[a]) <= tol)) if after.size else 1.0
    before = z[max(0, a - need) : a]
    # the entry: the series came from off the value (a stretch resumed after a one-point dip is no entry)
    arrived = a >= 2 and float(np.mean(np.abs(before - z[a]) <= tol)) <= _FLOOR_LOW
    entry = int(fin[a]) if arrived else None
    # the exit: the series moves on (no staircase's next stair) and does not come back (no floor with blips)
    exit_ = int(fin[b]) if after.size >= _SETTLE_MIN and moves > 1.0 / _SETTLE_MIN and back <= _FLOOR_LOW else None
    return entry, exit_


def floor_exit(x: np.ndarray) -> int | None:
    """Index of x (cleaned, finite) where it leaves a value it sat on (a class error on an exact 0 floor that
    starts to move in a band), or None. The indicator "x is on the value" is a Bernoulli series: the split that
    best separates two occupancy rates (log-likelihood ratio over one rate, at least `_FLOOR_PEN` ln n, both
    sides >= `_SETTLE_MIN` points and `_STEP_SHARE` of the series) must go from >= `_FLOOR_HIGH` before to
    <= `_FLOOR_LOW` after. The level-shift test misses this change: on the floor the noise is exactly 0, in the
    band it is large, so its candidates split the band and none stands out from the band's noise; a floor with
    blips keeps its occupancy and never passes."""
    n = x.size
    need = max(_SETTLE_MIN, math.ceil(_STEP_SHARE * n))
    if n < 2 * need:
        return None
    # Cheap and necessary: >= 0.8 k of the first k >= need points on one value leave >= 0.6 k - 1 adjacent pairs
    # of equal values (each other point ends at most one run): most real curves have none and stop here.
    if np.count_nonzero(np.diff(x) == 0.0) < (2.0 * _FLOOR_HIGH - 1.0) * need - 1.0:
        return None
    vals, counts = np.unique(x, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] < _FLOOR_HIGH * need:
        return None  # no value is taken often enough to be a floor
    on = (np.abs(x - vals[top]) <= _SETTLE_TOL * float(np.ptp(x))).astype(float)
    cs = np.cumsum(on)
    k = np.arange(need, n - need + 1)
    c1, total = cs[k - 1], float(cs[-1])
    ok = (c1 >= _FLOOR_HIGH * k) & (total - c1 <= _FLOOR_LOW * (n - k))
    if not ok.any():
        return None
    k, c1 = k[ok], c1[ok]
    llr = _bernoulli_ll(c1, k) + _bernoulli_ll(total - c1, n - k) - _bernoulli_ll(np.array([total]), np.array([n]))
    best = int(np.argmax(llr))
    if llr[best] < _FLOOR_PEN * math.log(n):
        return None
    # The regime after the exit moves: a held (staircase) metric also leaves each stair for good, but repeats its
    # next value for a regime's length (at least `_SETTLE_MIN` points: a share 1 - 1 / `_SETTLE_MIN` of its
    # differences are 0).
    moves = np.diff(x[int(k[best]) :]) != 0
    return int(k[best]) if float(np.mean(moves)) > 1.0 / _SETTLE_MIN else None


def _bernoulli_ll(hits: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Maximised Bernoulli log-likelihood of `hits` successes in `size` trials (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = hits / size
        return np.where(hits > 0, hits * np.log(p), 0.0) + np.where(size > hits, (size - hits) * np.log1p(-p), 0.0)


def _move_noise_at(x: np.ndarray, i: int, w: int) -> float:
    """Noise sigma around the move x[i] -> x[i + 1]: the robust spread of the 2w + 1 moves centred on it about
    their own centred medians (the local trend), / sqrt(2); windows are cut at the series' ends. Read from the
    part of x that those windows reach, so it costs the same on any length. The residual sds of `smooth_jumps`'
    two short lines (4 degrees of freedom at w = 6) are small by chance somewhere on a long noisy or quantised
    series; this floor is not, and it holds where the series-wide noise is 0 (a band after an exact floor)."""
    lo = max(0, i - 2 * w)
    d = np.diff(x[lo : i + 2 * w + 2])  # moves i - 2w .. i + 2w (fewer at the ends)
    spread = centred_median(np.abs(d - centred_median(d, 2 * w + 1)), 2 * w + 1)
    return float(MAD_TO_SIGMA * spread[i - lo] / math.sqrt(2.0))


def _window_lines(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value at the window's first point, slope, residual sd) of the least-squares line through every window
    x[a : a + w], a = 0..n-w. Every window has the same length, so only two running sums differ between them."""
    mean = float(np.mean(x))
    y = x - mean  # centred: the sums of squares lose no precision to the series' offset
    c = np.zeros((3, y.size + 1))
    np.cumsum(np.stack([y, np.arange(y.size, dtype=np.float64) * y, y * y]), axis=1, out=c[:, 1:])
    sy, siy, syy = c[:, w:] - c[:, :-w]
    suy = siy - np.arange(sy.size, dtype=np.float64) * sy  # sum of u y with u = 0..w-1 inside the window
    su, suu = w * (w - 1) / 2.0, (w - 1) * w * (2 * w - 1) / 6.0
    slope = (w * suy - su * sy) / (w * suu - su * su)
    first = (sy - slope * su) / w
    rss = syy - first * sy - slope * suy
    return first + mean, slope, np.sqrt(np.maximum(rss, 0.0) / (w - 2))


def smooth_jumps(x: np.ndarray) -> list[int]:
    """First indices of the abrupt jumps of a smooth curve `x` (finite, cleaned); see the module doc."""
    n = x.size
    w = max(_JUMP_WINDOW, round(_JUMP_WINDOW_SHARE * n))
    if n < 4 * w:
        return []
    first, slope, sd = _window_lines(x, w)
    t = np.arange(w, n - w)  # the jump's first index: windows [t - w, t) and [t, t + w)
    b, a = slice(0, n - 2 * w), slice(w, n - w)  # the windows before and after each t
    s_before, sd_before, s_after, sd_after = slope[b], sd[b], slope[a], sd[a]
    ahead = first[a] - (first[b] + s_before * w)  # the after-line at t against the before-line extrapolated to t
    behind = x[t - 1] - (first[a] - s_after)  # the point before t against the after-line extrapolated back to it
    jump = 0.5 * (ahead - behind)
    step = x[t] - x[t - 1] - 0.5 * (s_before + s_after)  # the one move from t - 1 to t, trend removed
    size = np.abs(jump)
    k = np.flatnonzero(
        (np.sign(ahead) == -np.sign(behind))
        & (ahead != 0.0)
        & (step * np.sign(jump) >= _JUMP_ONE_MOVE * size)
        & (size >= _JUMP_SIGMA * np.maximum(sd_before, sd_after))
    )
    if k.size:  # most series end here: the visibility bar and the noise floors cost more than the lines
        p5, p95 = np.percentile(x, [5.0, 95.0])
        visible = _JUMP_RANGE_SHARE * float(p95 - p5)  # 0 on a series that is one value but for blips: none
        k = k[size[k] >= visible] if visible > 0.0 else k[:0]
    if not k.size:
        return []
    sigma, _ = _scale_noise(x, window_sums(x), 5, local=False)  # the series' short-scale noise
    floor = np.maximum([_move_noise_at(x, int(t[i]) - 1, w) for i in k], max(sigma, 1e-12))
    noise = np.maximum(np.maximum(sd_before[k], sd_after[k]), floor)
    strong = size[k] >= _JUMP_SIGMA * noise
    k, score = k[strong], (size[k] / noise)[strong]
    found: list[int] = []
    for i in k[np.argsort(-score, kind="stable")]:
        if all(abs(int(t[i]) - f) > w for f in found):
            found.append(int(t[i]))
    return sorted(found)


def _one_fall(x: np.ndarray, shifts: list[int]) -> list[int]:
    """Level shifts with the ones that follow a shift the same way within `_STEP_SHARE` of the series (at least
    `_SETTLE_MIN` points) left out: the level between them is no regime of its own (LABELLING.md: a regime lasts
    >= ~5 points or 5 % of the series), so a fall that takes a few points is one change, where it starts."""
    if len(shifts) < 2:
        return shifts
    need = max(_SETTLE_MIN, math.ceil(_STEP_SHARE * x.size))
    out: list[int] = []
    last_sign = 0.0
    for s in sorted(shifts):
        sign = float(np.sign(median(x[s : s + _SETTLE_MIN]) - median(x[max(0, s - _SETTLE_MIN) : s])))
        if out and s - out[-1] < need and sign == last_sign != 0.0:
            continue
        out.append(s)
        last_sign = sign
    return out


def with_trend_changes(
    values: np.ndarray,
    x: np.ndarray,
    keep: np.ndarray,
    shifts: list[int],
    noise: list[int],
    turns: list[int],
    destepped: np.ndarray,
) -> tuple[list[int], list[int], list[int]]:
    """(level shifts, noise changes, slope changes) of `changepoints.series_changes` (indices of the cleaned x,
    original positions `keep`; `destepped` is x with the shifts subtracted) with an end-of-series collapse and
    soft steps added to the shifts, a settling on one exact value to the noise changes and same-sign bends to the
    slope changes; a change within `_MERGE` points of one already found is that change."""
    collapse = tail_collapse(values, int(keep[0])) if keep.size else None
    if collapse is not None:
        t = min(int(np.searchsorted(keep, collapse)), x.size - 1)
        if all(abs(t - s) > max(_TAIL_MIN, math.ceil(0.02 * x.size)) for s in shifts):
            shifts = sorted([*shifts, t])
    settle = constant_tail(x)
    if settle is not None and all(abs(settle - s) > _MERGE for s in [*shifts, *noise, *turns]):
        noise = sorted([*noise, settle])
    exit_ = floor_exit(x)
    if exit_ is not None and all(abs(exit_ - s) > _MERGE for s in noise):
        # a level shift near the exit is the exit, which is placed exactly (the first point off the floor)
        shifts = sorted([*(s for s in shifts if abs(exit_ - s) > _MERGE), exit_])
        turns = [t for t in turns if abs(t - exit_) > _MERGE]  # the band's start read as a turn is the exit
    if keep.size:  # a value held from its entry (in the warm-up, perhaps) to its exit: both are level shifts
        for held in (h for h in held_value(values) if h is not None):
            at = min(int(np.searchsorted(keep, held)), x.size - 1)
            if all(abs(at - s) > _MERGE for s in [*shifts, *noise, *turns]):
                shifts = sorted([*shifts, at])
    jumps = [j for j in smooth_jumps(x) if all(abs(j - s) > _MERGE for s in [*shifts, *noise, *turns])]
    shifts = _one_fall(x, sorted([*shifts, *jumps]))
    taken = [*shifts, *noise, *turns]
    found, steps = bends(destepped, shifts)
    steps = [b for b in steps if all(abs(b - s) > _MERGE for s in taken)]
    new = [b for b in found if all(abs(b - s) > _MERGE for s in [*taken, *steps])]
    return sorted([*shifts, *steps]), noise, sorted([*turns, *new])
