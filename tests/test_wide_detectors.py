"""Very wide tables (issue 17, item 14): the detectors read many series at once (a (series, points) matrix row by
row in array operations) and must give exactly what one call per series gives. Each test holds a batched path
to the per-series definition on a few hundred random and structured series: level shifts, spikes, NaN and Inf,
flat floors with blips, rounded noise, huge values, large offsets, short (0-20 points) and long ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.core.config import AnomalyDetectionConfig
from analysis.core.records import Anomaly, ChangePoint
from analysis.core.vocabulary import Severity
from analysis.findings import changepoints as cp
from analysis.findings import events as ev
from analysis.findings.episodes import EpisodeEmitter, degradation_severity, merge_episodes
from analysis.findings.matrices import MetricMatrix, metric_matrices, same_rows
from analysis.findings.outliers import outlier_indices, outlier_mask, point_outlier_z

LENGTHS = [*range(0, 21), 24, 30, 40, 64, 65, 100, 600]


def _matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    """15 series of n points, one of each shape."""
    t = np.arange(n)
    x = rng.normal(0.0, 1.0, (15, n)) * rng.choice([1e-3, 1.0, 50.0]) + rng.choice([0.0, 0.5, 1e4])
    x[0] += (t >= n // 2) * rng.choice([0.5, 3.0, 10.0])  # a level shift
    x[1] += 5.0 * (t >= n // 3) - 5.0 * (t >= 2 * n // 3)  # up and back down
    if n > 3:
        x[2, n // 2] += 40.0  # a spike
    x[3] = np.round(rng.random(n), 4)  # rounded uniform noise (the benchmark's wide CSV)
    x[4] = 0.0  # a flat floor with a blip
    if n > 4:
        x[4, n // 3] = 0.1
    x[5] = 1.0 - np.exp(-t / max(n / 5, 1)) + 0.01 * rng.normal(size=n)  # a learning curve
    if n > 6:
        x[6, 3], x[6, -2] = np.nan, np.inf
    x[7] = np.cumsum(rng.normal(size=n))  # a random walk
    x[8] = np.where(t < n // 2, 1.0, 5.0) * rng.normal(size=n)  # noise that grows
    x[9] = 1e6 + 1e-3 * (t > n // 2)  # a tiny step on a large offset
    x[10] = np.abs(t - n / 2) * 0.1 + 0.05 * rng.normal(size=n)  # a trend that turns
    x[11] = rng.normal(size=n) * 1e150  # huge values (scaled before segmenting)
    x[12] = np.where(t < 2 * n // 3, np.round(0.99 + 0.004 * rng.normal(size=n), 4), 1.0)  # settles on 1.0 exactly
    x[13] = np.where(t < n // 2, 0.0, rng.choice([0.0, 0.5, 1.0, 1.5], n))  # leaves an exact floor for a band
    # a loss falling over decades with noise proportional to its level and a late step (read in log space)
    x[14] = (
        (1.5 * np.exp(-t / max(n / 40, 1)) + 0.01)
        * np.exp(0.05 * rng.normal(size=n))
        * np.where(t < 4 * n // 5, 1.0, 0.6)
    )
    if n > 8:
        x[14, n // 4] = np.nan
    return x


def _matrices(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [_matrix(n, rng) for n in LENGTHS] + [np.round(rng.random((200, 20)), 4)]


def test_outlier_mask_of_rows_is_outlier_indices_of_each_row():
    for x in _matrices(1):
        mask = outlier_mask(x)
        z = point_outlier_z(np.where(np.isfinite(x), x, np.nan)) if x.shape[1] > 1 else None
        for i, row in enumerate(x):
            assert np.flatnonzero(mask[i]).tolist() == outlier_indices(row)
            if z is not None:
                one = point_outlier_z(np.where(np.isfinite(row), row, np.nan))
                np.testing.assert_array_equal(z[i], one)  # the same floats, not merely close


def test_noise_profiles_of_rows_are_noise_profile_of_each_row():
    for x in _matrices(2):
        x = x[np.isfinite(x).all(axis=1)]
        if x.shape[1] == 0:
            continue
        sigma, inflation = cp.noise_profiles(x)
        for i, row in enumerate(x):
            assert (float(sigma[i]), float(inflation[i])) == cp.noise_profile(row)


@pytest.mark.parametrize("penalty, min_size", [(None, 3), (0.5, 2), (None, 5)])
def test_level_shifts_many_is_level_shifts_of_each_row(penalty, min_size):
    found = 0
    for x in _matrices(3):
        many = cp.level_shifts_many(x, penalty=penalty, min_size=min_size)
        one = [cp.level_shifts(row, penalty=penalty, min_size=min_size) for row in x]
        assert many == one
        found += sum(map(len, one))
    assert found > 10  # the set holds real breaks, so the comparison is not one of empty lists


def test_series_changes_many_is_series_changes_of_each_row():
    kinds = np.zeros(3, dtype=int)
    for x in _matrices(4):
        many = cp.series_changes_many(x)
        one = [cp.series_changes(row) for row in x]
        assert many == [tuple(o) for o in one]
        kinds += [sum(len(o[k]) for o in one) for k in range(3)]
    assert (kinds > 0).all()  # level shifts, noise changes and slope changes all occur


def test_the_screen_never_skips_a_series_ruptures_would_cut():
    """`_may_break` decides which short series reach ruptures: whatever it skips, ruptures finds nothing in."""
    rng = np.random.default_rng(5)
    x = np.concatenate([np.round(rng.random((400, 18)), 4), _matrix(18, rng), _matrix(40, rng)[:, :18]])
    x = x[np.isfinite(x).all(axis=1) & (np.std(x, axis=1) > 0)]
    sigma, inflation = cp.noise_profiles(x)
    sigma = np.fmax(sigma, 1e-3 * np.std(x, axis=1))  # the floor `_detect` puts under sigma
    model = 3.0 * sigma * sigma * inflation * np.log(18)  # the penalty `_detect` uses
    for pen in (model, np.full(len(x), 0.05), model * 0.2):
        may = cp._may_break(x, pen, 3)
        cut = np.array([bool(cp._segment(row, float(p), 3)) for row, p in zip(x, pen, strict=True)])
        assert not (cut & ~may).any()
        assert cut.any()
    assert (~cp._may_break(x, model, 3)).sum() > 300  # with the model's penalty it skips most of them


def test_same_rows_groups_columns_by_their_mask():
    mask = np.array([[1, 1, 0, 1], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=bool)
    groups = sorted((col.tolist(), cols.tolist()) for col, cols in same_rows(mask))
    assert groups == [([False, True, True], [2]), ([True, False, True], [1, 3]), ([True, True, True], [0])]
    assert [cols.tolist() for _, cols in same_rows(np.ones((2, 3), dtype=bool))] == [[0, 1, 2]]


def _long_frame(seed: int) -> pd.DataFrame:
    """Batches x 2 metrics of 30 steps; some batches miss steps (other logged masks), some log NaN/Inf."""
    rng = np.random.default_rng(seed)
    rows = []
    for metric in ("recall", "loss"):
        for b in range(60):
            x = _matrix(30, rng)[b % 12]
            steps = np.arange(30) * 10
            keep = np.ones(30, dtype=bool)
            if b % 5 == 0:
                keep[rng.integers(0, 30, 3)] = False
            rows.append(pd.DataFrame({"step": steps[keep], "batch": b, "metric": metric, "value": x[keep]}))
    return pd.concat(rows, ignore_index=True)


def test_find_change_points_is_series_change_points_of_each_series():
    cfg = AnomalyDetectionConfig()
    batches = _long_frame(6)
    expected: list[ChangePoint] = []
    for m in metric_matrices(batches, "batch"):
        values = m.values
        for j, batch in enumerate(m.columns):
            ok = np.isfinite(values[:, j])
            expected.extend(cp.series_change_points(m.steps[ok], values[ok, j], m.metric, batch, cfg))
    expected.sort(key=lambda c: (c.step, -1 if c.batch is None else c.batch, c.metric))
    assert expected and cp.find_change_points(batches, None, cfg) == expected


def _find_events_one_by_one(
    batches: pd.DataFrame, anomalies: list[Anomaly], change_points: list[ChangePoint], cfg: AnomalyDetectionConfig
) -> list[ev.Event]:
    """The definition of `find_events`, one `series_events` call per series (batch metrics only)."""
    by_series: dict[tuple[str, int | None], list[Anomaly | ChangePoint]] = {}
    records: list[Anomaly | ChangePoint] = [*anomalies, *change_points]
    for rec in records:
        by_series.setdefault((rec.metric, rec.batch), []).append(rec)
    alarmed = {k for k, hits in by_series.items() if ev._worth_reading(hits)}
    events: list[ev.Event] = []
    window_steps: dict[int | None, int] = {}
    for m in metric_matrices(batches, "batch"):
        for j, batch in enumerate(m.columns):
            if (m.metric, batch) not in alarmed:
                continue
            rows = np.flatnonzero(m.logged[:, j])
            steps, values = m.steps[rows], m.raw[rows, j]
            points = ev.evidence_points(rows.size)
            window_steps[batch] = max(window_steps.get(batch, 0), int(steps[min(points, steps.size - 1)] - steps[0]))
            hits = list(by_series.get((m.metric, batch), []))
            for e in ev.series_events(values, steps, metric=m.metric, batch=batch, cfg=cfg):
                e, hits = ev._attach(e, hits, steps, points, cfg)
                if e.evidence or e.kind == "nonfinite":
                    events.append(e)
            fallback = ev._from_hits(hits, steps, values, m.metric, batch, cfg)
            if fallback is not None:
                events.append(fallback)
    merged = ev._merge_metrics(events, window_steps)
    return sorted(merged, key=lambda e: (-e.severity.rank, e.start_step, e.batch is None, e.batch or 0, e.metric))


def test_find_events_is_series_events_of_each_series():
    from analysis.findings.anomalies import find_anomalies

    cfg = AnomalyDetectionConfig()
    batches = _long_frame(7)
    anomalies = find_anomalies(batches, None, cfg)
    change_points = cp.find_change_points(batches, None, cfg)
    got = ev.find_events(batches, None, anomalies, change_points, cfg)
    want = _find_events_one_by_one(batches, anomalies, change_points, cfg)
    assert len(got) > 20
    assert [e.to_dict() for e in got] == [e.to_dict() for e in want]


def _emit_one_by_one(em: EpisodeEmitter, flags: np.ndarray, score: np.ndarray, rel: np.ndarray | float, gap: int):
    """The definition of `EpisodeEmitter.emit`: one column, then one episode at a time."""
    out = []
    flags = flags & em.observed
    for j in np.flatnonzero(flags.any(axis=0)):
        observed_rows = np.flatnonzero(em.observed[:, j])
        pos = np.flatnonzero(flags[observed_rows, j])
        for a, b in merge_episodes(pos, gap):
            rows = observed_rows[pos[a : b + 1]]
            sc = score[rows, j]
            r = rel[rows, j] if isinstance(rel, np.ndarray) else np.asarray([rel])
            out.append(
                (
                    int(em.m.steps[rows[0]]),
                    int(em.m.steps[rows[-1]]),
                    em.m.columns[j],
                    em._worst(em.m.raw[rows, j]),
                    float(np.nanmax(sc)) if np.isfinite(sc).any() else float("inf"),
                    degradation_severity(float(np.nanmax(r)) if not np.isnan(r).all() else 0.0, em.cfg),
                )
            )
    return out


@pytest.mark.parametrize("direction", ["higher_is_better", "lower_is_better"])
def test_episodes_of_all_columns_at_once_are_those_of_each_column(direction):
    rng = np.random.default_rng(8)
    n, k = 60, 40
    raw = rng.normal(size=(n, k))
    raw[rng.random((n, k)) < 0.05] = np.nan
    raw[rng.random((n, k)) < 0.03] = np.inf
    raw[:, 5] = -np.inf  # a column never finite
    logged = rng.random((n, k)) < 0.85
    m = MetricMatrix("recall", np.arange(n) * 10, list(range(k)), np.where(logged, raw, np.nan), logged)
    cfg = AnomalyDetectionConfig()
    score = np.abs(rng.normal(size=(n, k))) * 3
    score[rng.random((n, k)) < 0.1] = np.nan
    for rel in (rng.normal(0.0, 0.5, (n, k)), np.inf):
        for gap in (2, 5):
            flags = rng.random((n, k)) < 0.3
            em = EpisodeEmitter(m, direction, cfg)
            em.emit("zscore", flags, score, rel, lambda b, v, s, a, e: f"{b} {v} {s} {a} {e}", gap=gap)
            got = [(a.step, a.end_step or a.step, a.batch, a.value, a.score, a.severity) for a in em.out]
            want = _emit_one_by_one(em, flags, score, rel, gap)
            assert len(got) > 50
            assert [tuple(map(repr, g)) for g in got] == [tuple(map(repr, w)) for w in want]  # NaN-aware
            assert all(isinstance(a.severity, Severity) for a in em.out)


def test_importing_the_findings_does_not_import_scipy_stats_or_ruptures():
    """Both are imported on first use only (the dashboard's first draw does not wait for them)."""
    import subprocess
    import sys

    code = (
        "import sys, analysis.findings.pipeline\n"
        "print(sorted(m for m in ('scipy.stats', 'ruptures') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_batch_metrics_of_a_wide_table_is_the_per_batch_frame(monkeypatch):
    """All batch columns read as one block (strictly increasing steps) give the frame of the per-batch loop."""
    from analysis.core.run import Run, RunRef
    from analysis.findings import batches as batches_module

    rng = np.random.default_rng(9)
    n = 15
    cols: dict[str, object] = {"_step": np.arange(n), "global_step": np.arange(n) * 10}
    for b in range(40):
        for metric in ("recall", "loss", "hmean"):
            v = rng.random(n)
            v[rng.random(n) < 0.3] = np.nan
            if b % 7 == 0:
                v[:] = np.nan  # a batch that logs nothing in some metric
            cols[f"batch_{b}/{metric}"] = v
    cols["batch_3/recall"] = pd.array([1, None, 3] * 5, dtype="Int64")  # an extension dtype
    cols["batch_5/flag"] = rng.random(n) < 0.5
    cols["batch_6/note"] = pd.Series([0.5, "x", None] * 5, dtype=object)
    cols["val/loss"] = rng.random(n)
    run = Run(ref=RunRef(source="file", locator="t.csv", run_id="t", name="t"), history=pd.DataFrame(cols))
    at_once = batches_module.batch_metrics(run)
    monkeypatch.setattr(batches_module, "_WIDE_CELLS", 0)  # the per-batch loop
    one_by_one = batches_module.batch_metrics(run)
    assert len(at_once) > 1000
    pd.testing.assert_frame_equal(at_once, one_by_one)
