"""Findings on real public curves: our change points, outliers and events against baselines, per split.

Usage:  .venv/bin/python -m benchmarks.real_curves [--only ours,nothing]   (also run by benchmarks/findings.py)

Data: `benchmarks/data/curves` (see its PROVENANCE.md and LABELLING.md): 228 real training-curve series from 33
public repositories, labelled blind, split by source repository: batch 1 (75 series, 8 repositories: tune 41 / test
34), batch 2 (100 series, 17 repositories, split by a sha1 rule fixed before labelling: tune 57 / test 43) and
batch 3 (53 series, 8 new repositories, the same rule: tune 23 / test 30, a held-out side no detector has seen;
the test side is also printed per batch), plus 23 TCPD series (published labels of 5 annotators each, part of the held-out side). Detectors may be tuned on `tune`
only; `test` and TCPD are the held-out figures. A figure on `tune` is a training score.

Methods, all run in the same process:
- ours:    `analysis.changepoints.change_points(x)` (level shifts, noise changes, slope changes) and
           `analysis.anomalies.outlier_indices(x)`
- ours-no-bends: the same with `bends=False` (without `analysis.findings.trends`: no same-sign slope change, no
           end-of-series collapse), the "before" figure of that module in the same run
- events:  change points and spikes as `analysis.findings.events.series_events` reports them (one per real change)
- binseg / pelt: ruptures `Binseg` / `Pelt` with the published default of TCPDBench (van den Burg & Williams 2020:
  change in mean and variance of a Normal, `model="normal"`, MBIC penalty (diffparam + 2) ln n = 4 ln n, on the
  series standardised to mean 0, sd 1; min_size=2). BinSeg looks at every position (jump=1) as R's changepoint
  does and keeps at most Q=5 breaks (changepoint's default); PELT uses ruptures' default jump=5 (jump=1 takes
  minutes on the long series). Series longer than `_BASELINE_MAX` points are block-averaged to that length first
  (the pure-Python cost is quadratic), and breaks mapped back.
- nothing: reports no change point and no outlier.

Metrics on our curves (tolerance from LABELLING.md): a predicted change point matches a label within
max(5 points, 2 % of n) (each label at most once, closest first). Labels of `low` confidence are left out of recall
and a prediction that matches one is not counted as false (LABELLING.md: "scored leniently, or left out of
precision"). Precision, recall and F1 are pooled over series; covering (TCPD style, series start counted) is
averaged over series; "false CP / series" counts unmatched predictions over all series, "CP / healthy series" all
predictions on series that carry no change-point label. Outliers: a prediction within +-1 of a labelled outlier is
a hit; predictions on non-finite points are not counted (they are the non-finite stretches, scored exactly
elsewhere); "spurious / series" is the unmatched rest per series; recall is pooled.
TCPD: F1 and covering exactly as TCPDBench computes them (margin 5, precision against the union of the annotators,
recall and covering averaged over annotators, index 0 in every set), averaged over series; the two-column
`run_log` gets the union of the per-column predictions from the univariate methods.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ruptures as rpt

from analysis.findings.anomalies import outlier_indices
from analysis.findings.changepoints import change_points

DATA = Path(__file__).parent / "data" / "curves"
_BASELINE_MAX = 2000
_BINSEG_Q = 5
TCPD_MARGIN = 5


@dataclass
class Curve:
    """One labelled series: values in file order (non-empty cells), labels as 0-based indices."""

    name: str
    split: str
    values: np.ndarray
    change_points: list[int] = field(default_factory=list)
    low_confidence: list[int] = field(default_factory=list)
    outliers: list[int] = field(default_factory=list)
    healthy: bool = True
    batch: int = 1  # labelling round (LABELLING.md: batch-2 sources were added and split by a pre-registered rule)

    @property
    def tolerance(self) -> int:
        return max(5, int(0.02 * self.values.size))


@dataclass
class TcpdSeries:
    name: str
    values: np.ndarray  # (n,) or (n, d)
    annotations: list[list[int]]


# ---------------------------------------------------------------------------------------------------- loading
def _column(path: Path, column: str) -> np.ndarray:
    """The non-empty cells of one CSV column as floats (`nan`, `inf` stay non-finite points)."""
    out: list[float] = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            cell = (row.get(column) or "").strip()
            if cell:
                try:
                    out.append(float(cell))
                except ValueError:
                    out.append(math.nan)
    return np.asarray(out, dtype=float)


def load_curves(root: Path = DATA) -> list[Curve]:
    labels = json.loads((root / "labels.json").read_text())
    curves = []
    for s in labels["series"]:
        x = _column(root / s["file"], s["column"])
        if x.size != s["n_points"]:
            raise ValueError(f"{s['file']}:{s['column']}: {x.size} points, labels say {s['n_points']}")
        cps = [c["index"] for c in s["change_points"] if c["confidence"] != "low"]
        low = [c["index"] for c in s["change_points"] if c["confidence"] == "low"]
        curves.append(
            Curve(
                f"{s['id']}:{s['file']}:{s['column']}",
                s["split"],
                x,
                cps,
                low,
                [o["index"] for o in s["outliers"]],
                not s["change_points"],
                int(s.get("batch", 1)),
            )
        )
    return curves


def load_tcpd(root: Path = DATA) -> list[TcpdSeries]:
    labels = json.loads((root / "labels.json").read_text())
    out = []
    for s in labels["tcpd_series"]:
        cols = [_column(root / s["file"], c) for c in s["columns"]]
        values = cols[0] if len(cols) == 1 else np.column_stack(cols)
        out.append(TcpdSeries(s["file"], values, [list(map(int, a)) for a in s["annotations"].values()]))
    return out


# ---------------------------------------------------------------------------------------------------- methods
def _standardised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    x = np.where(np.isfinite(x), x, np.nan)
    if not np.isfinite(x).any():
        return np.zeros_like(x)
    mean, sd = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    z = (x - mean) / np.where(sd > 0, sd, 1.0)
    return np.nan_to_num(z, nan=0.0)


def _ruptures(algo: type, x: np.ndarray) -> list[int]:
    z = _standardised(x)
    if z.ndim == 1:
        z = z[:, None]
    n = z.shape[0]
    block = max(1, math.ceil(n / _BASELINE_MAX))
    if block > 1:
        m = n // block
        z = z[: m * block].reshape(m, block, z.shape[1]).mean(axis=1)
    if z.shape[0] < 6:
        return []
    pen = 4.0 * math.log(z.shape[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # ruptures' note on its covariance bias
            # BinSeg at every position as R's changepoint; PELT with ruptures' default jump=5 (jump=1 takes minutes)
            fitted = algo(model="normal", jump=1 if algo is rpt.Binseg else 5).fit(z)
            bkps = fitted.predict(pen=pen)[:-1]
            if algo is rpt.Binseg and len(bkps) > _BINSEG_Q:  # changepoint's BinSeg default Q = 5
                bkps = fitted.predict(n_bkps=_BINSEG_Q)[:-1]
    except Exception:  # a degenerate (constant) segment: report nothing rather than fail the run
        return []
    return [int(b) * block for b in bkps]


def binseg(x: np.ndarray) -> list[int]:
    return _ruptures(rpt.Binseg, x)


def pelt(x: np.ndarray) -> list[int]:
    return _ruptures(rpt.Pelt, x)


def nothing(x: np.ndarray) -> list[int]:
    return []


def _no_bends(x: np.ndarray) -> list[int]:
    """Ours before `analysis.findings.trends` (no tail collapse, no same-sign bends): the before/after figure."""
    return change_points(x, bends=False)


def _events_cps(x: np.ndarray) -> list[int]:
    from analysis.findings.events import series_events

    return sorted({e.start_step for e in series_events(x) if e.kind not in ("spike", "nonfinite")})


def _events_outliers(x: np.ndarray) -> list[int]:
    from analysis.findings.events import series_events

    return sorted({e.start_step for e in series_events(x) if e.kind == "spike"})


def _have_events() -> bool:
    try:
        import analysis.findings.events  # noqa: F401
    except ImportError:
        return False
    return True


def cp_methods() -> dict[str, Callable[[np.ndarray], list[int]]]:
    out: dict[str, Callable[[np.ndarray], list[int]]] = {"ours": change_points, "ours-no-bends": _no_bends}
    if _have_events():
        out["events"] = _events_cps
    out.update({"binseg": binseg, "pelt": pelt, "nothing": nothing})
    return out


def outlier_methods() -> dict[str, Callable[[np.ndarray], list[int]]]:
    out: dict[str, Callable[[np.ndarray], list[int]]] = {"ours": outlier_indices}
    if _have_events():
        out["events"] = _events_outliers
    out["nothing"] = nothing
    return out


# ---------------------------------------------------------------------------------------------------- metrics
def matches(truth: list[int], pred: list[int], margin: int) -> list[tuple[int, int]]:
    """(label, prediction) pairs: each label takes the closest unused prediction within the margin."""
    left = sorted(set(pred))
    pairs = []
    for t in sorted(set(truth)):
        close = [p for p in left if abs(p - t) <= margin]
        if close:
            best = min(close, key=lambda p: abs(p - t))
            left.remove(best)
            pairs.append((t, best))
    return pairs


def _partition(cps: list[int], n: int) -> list[tuple[int, int]]:
    bounds = sorted({0, n} | {c for c in cps if 0 < c < n})
    return list(itertools.pairwise(bounds))


def covering(truth: list[int], pred: list[int], n: int) -> float:
    """Covering of the true partition by the predicted one: sum |A| max Jaccard(A, A') / n."""
    pred_segs = _partition(pred, n)
    total = 0.0
    for a0, a1 in _partition(truth, n):
        best = 0.0
        for b0, b1 in pred_segs:
            inter = max(0, min(a1, b1) - max(a0, b0))
            if inter:
                best = max(best, inter / (max(a1, b1) - min(a0, b0)))
        total += (a1 - a0) * best
    return total / n


def score_cps(curves: list[Curve], method: Callable[[np.ndarray], list[int]]) -> dict[str, float]:
    tp = n_true = false = healthy_cps = n_healthy = 0
    covers = []
    seconds = 0.0
    for c in curves:
        t0 = time.perf_counter()
        pred = sorted(set(method(c.values)))
        seconds += time.perf_counter() - t0
        hit = matches(c.change_points, pred, c.tolerance)
        used = {p for _, p in hit}
        lenient = {p for _, p in matches(c.low_confidence, [p for p in pred if p not in used], c.tolerance)}
        tp += len(hit)
        n_true += len(c.change_points)
        false += len(pred) - len(used) - len(lenient)
        covers.append(covering(c.change_points + c.low_confidence, pred, c.values.size))
        if c.healthy:
            n_healthy += 1
            healthy_cps += len(pred)
    n_pred_counted = tp + false
    precision = tp / n_pred_counted if n_pred_counted else 1.0
    recall = tp / n_true if n_true else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "cover": float(np.mean(covers)),
        "false_per_series": false / len(curves),
        "per_healthy": healthy_cps / max(n_healthy, 1),
        "seconds": seconds,
    }


def score_outliers(curves: list[Curve], method: Callable[[np.ndarray], list[int]]) -> dict[str, float]:
    tp = n_true = spurious = 0
    for c in curves:
        finite = np.isfinite(c.values)
        pred = [p for p in sorted(set(method(c.values))) if 0 <= p < c.values.size and finite[p]]
        hit = matches(c.outliers, pred, 1)
        tp += len(hit)
        n_true += len(c.outliers)
        spurious += len(pred) - len(hit)
    return {"recall": tp / n_true if n_true else 1.0, "spurious_per_series": spurious / len(curves), "true": n_true}


def _tcpd_f1(annotations: list[list[int]], pred: list[int], margin: int = TCPD_MARGIN) -> float:
    sets = [set(a) | {0} for a in annotations]
    x = set(pred) | {0}
    union = set().union(*sets)
    precision = len(matches(sorted(union), sorted(x), margin)) / len(x)
    recall = float(np.mean([len(matches(sorted(s), sorted(x), margin)) / len(s) for s in sets]))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_tcpd(series: list[TcpdSeries], method: Callable[[np.ndarray], list[int]], multivariate: bool) -> dict:
    f1s, covers = [], []
    for s in series:
        if s.values.ndim == 2 and not multivariate:
            pred = sorted({p for j in range(s.values.shape[1]) for p in method(s.values[:, j])})
        else:
            pred = sorted(set(method(s.values)))
        n = s.values.shape[0]
        f1s.append(_tcpd_f1(s.annotations, pred))
        covers.append(float(np.mean([covering(a, pred, n) for a in s.annotations])))
    return {"f1": float(np.mean(f1s)), "cover": float(np.mean(covers))}


# ---------------------------------------------------------------------------------------------------- report
def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    out = [f"\n{title}", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def run(only: set[str] | None = None, split: str = "both", batches: set[int] | None = None) -> str:
    """Every table of this benchmark as Markdown text.

    `split` is "tune", "test" or "both" (develop with "tune"; the test side and TCPD are measured once at the end);
    `batches` keeps only those labelling rounds (None: all).
    """
    curves = [c for c in load_curves() if batches is None or c.batch in batches]
    tcpd = load_tcpd() if split != "tune" else []
    splits: dict[str, list[Curve]] = {}
    if split in ("tune", "both"):
        splits["tune (training score)"] = [c for c in curves if c.split == "tune"]
    if split in ("test", "both"):
        splits["test (held out)"] = [c for c in curves if c.split == "test"]
        test_batches = sorted({c.batch for c in splits["test (held out)"]})
        if (
            len(test_batches) > 1
        ):  # each labelling round's test sources on their own as well (later rounds: new sources)
            for b in test_batches:
                splits[f"test, batch {b} sources (held out)"] = [c for c in splits["test (held out)"] if c.batch == b]
    n_tune = sum(c.split == "tune" for c in curves)
    parts = [
        f"real curves: {len(curves)} series ({n_tune} tune, {len(curves) - n_tune} test); shown: {split}; "
        f"TCPD: {len(tcpd)} series (held out)"
    ]
    cps = {k: v for k, v in cp_methods().items() if only is None or k in only}
    outs = {k: v for k, v in outlier_methods().items() if only is None or k in only}
    for split, group in splits.items():
        rows = []
        for name, fn in cps.items():
            r = score_cps(group, fn)
            rows.append(
                [name]
                + [f"{r[k]:.2f}" for k in ("precision", "recall", "f1", "cover", "false_per_series", "per_healthy")]
                + [f"{r['seconds']:.1f}"]
            )
        parts.append(
            _table(
                f"Change points, {split}: {len(group)} series, {sum(c.healthy for c in group)} without a change "
                f"point; tolerance max(5, 2 % n)",
                ["method", "precision", "recall", "F1", "cover", "false CP / series", "CP / healthy series", "s"],
                rows,
            )
        )
        orows = []
        for name, fn in outs.items():
            r = score_outliers(group, fn)
            orows.append([name, f"{r['recall']:.2f}", f"{r['spurious_per_series']:.2f}", str(r["true"])])
        parts.append(
            _table(f"Outliers, {split} (+-1 point)", ["method", "recall", "spurious / series", "labelled"], orows)
        )
    if not tcpd:
        return "\n".join(parts)
    trows = []
    for name, fn in cps.items():
        r = score_tcpd(tcpd, fn, multivariate=name in ("binseg", "pelt"))
        trows.append([name, f"{r['f1']:.3f}", f"{r['cover']:.3f}"])
    parts.append(_table("TCPD (held out; TCPDBench F1 and covering, margin 5)", ["method", "F1", "cover"], trows))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated method names (default: all)")
    ap.add_argument(
        "--split",
        choices=("tune", "test", "both"),
        default="both",
        help="develop with --split tune; the test side (and TCPD) is measured once at the end",
    )
    ap.add_argument("--batch", default="", help="comma-separated labelling rounds to keep (default: all)")
    args = ap.parse_args(argv)
    batches = {int(b) for b in args.batch.split(",")} if args.batch else None
    print(run(set(args.only.split(",")) if args.only else None, args.split, batches))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
