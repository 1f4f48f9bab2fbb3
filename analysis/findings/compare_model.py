"""The comparison's records and their renderings: config, sides, per-series deltas, the Comparison, and the
sentence per regression, a table, a JSON-able dict, Markdown ($GITHUB_STEP_SUMMARY) and JUnit XML (one test case per
batch × metric, failures = regressions).

Records and renderings share this module so the records' `to_markdown()` etc. need no import cycle.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from analysis.core.config import AnalyzerConfig
from analysis.core.errors import AnalyzerError
from analysis.findings.compare_quality import QualityShift

__all__ = [
    "COMPARISON_SCHEMA_VERSION",
    "CompareConfig",
    "Comparison",
    "RunSide",
    "SeriesDelta",
    "series_sentence",
]


@dataclass(frozen=True)
class CompareConfig:
    """Tolerances and window of a comparison; `analyzer` gives metric directions and the batch key layout."""

    tolerance_abs: float = 0.02
    tolerance_rel: float = 0.05
    window: int = 10  # last k validations
    alpha: float = 0.05
    align: Literal["auto", "step", "progress"] = "auto"
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)

    def __post_init__(self) -> None:
        if not (self.tolerance_abs >= 0 and self.tolerance_rel >= 0):
            raise AnalyzerError("tolerances must be zero or positive")
        if self.window < 2:
            raise AnalyzerError(f"the comparison window needs at least 2 validations, got {self.window}")
        if self.align not in ("auto", "step", "progress"):
            raise AnalyzerError(f"alignment must be auto, step or progress, got {self.align!r}")


@dataclass(frozen=True)
class RunSide:
    """What a comparison needs of one run: a name, its BatchMetrics frame and (optionally) its quality scores."""

    name: str
    batches: pd.DataFrame
    quality: pd.DataFrame | None = None


@dataclass(frozen=True)
class SeriesDelta:
    """One batch × metric: candidate − baseline at the end and over the window, test, verdict, parting step."""

    batch: int
    metric: str
    lower_is_better: bool
    baseline_end: float
    candidate_end: float
    baseline_window: float
    candidate_window: float
    n_window: int
    p_value: float
    q_value: float
    regression: bool
    improvement: bool
    parting_step: int | None

    @property
    def delta_end(self) -> float:
        return self.candidate_end - self.baseline_end

    @property
    def delta_window(self) -> float:
        return self.candidate_window - self.baseline_window

    @property
    def worsening(self) -> float:
        """How much worse the candidate is over the window (negative when it is better)."""
        return self.delta_window if self.lower_is_better else -self.delta_window

    @property
    def relative(self) -> float:
        base = abs(self.baseline_window)
        return self.delta_window / base if base > 0 else math.nan

    def sentence(self, shifts: list[QualityShift] | tuple[QualityShift, ...] = ()) -> str:
        return series_sentence(self, shifts)


# What a comparison that compared nothing says instead of "no regression": two runs of run-level metrics only (two
# YOLOv5 `results.csv`) were "No regression" with 0 series compared.
NOTHING_COMPARED = (
    "nothing was compared: the two runs share no per-batch (batch_{i}/...) metric, and run comparisons cover "
    "per-batch metrics only"
)
NOTHING_COMPARED_SENTENCE = f"{NOTHING_COMPARED[0].upper()}{NOTHING_COMPARED[1:]}."  # the reports' form


@dataclass(frozen=True)
class Comparison:
    """The result of `compare_runs`. `deltas` is sorted worst first (largest worsening, regressions first)."""

    baseline: str
    candidate: str
    alignment: str
    config: CompareConfig
    deltas: tuple[SeriesDelta, ...]
    new_batches: tuple[int, ...] = ()
    vanished_batches: tuple[int, ...] = ()
    new_metrics: tuple[str, ...] = ()
    vanished_metrics: tuple[str, ...] = ()
    quality: tuple[QualityShift, ...] = ()

    @property
    def regressions(self) -> list[SeriesDelta]:
        return [d for d in self.deltas if d.regression]

    @property
    def has_regression(self) -> bool:
        return any(d.regression for d in self.deltas)

    @property
    def nothing_compared(self) -> bool:
        """No batch x metric series was compared (`NOTHING_COMPARED`), so "no regression" would say nothing."""
        return not self.deltas

    @property
    def regressed_batches(self) -> list[int]:
        return sorted({d.batch for d in self.deltas if d.regression})

    def quality_for(self, batch: int) -> list[QualityShift]:
        """The significant quality-score shifts of one batch (worse first)."""
        return sorted((s for s in self.quality if s.batch == batch and s.significant), key=lambda s: not s.worse)

    def sentences(self) -> list[str]:
        """One plain sentence per regression, worst first."""
        return [d.sentence(self.quality_for(d.batch)) for d in self.regressions]

    def table(self) -> pd.DataFrame:
        return delta_table(self)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_markdown(self) -> str:
        return to_markdown(self)

    def to_junit(self) -> str:
        return to_junit(self)


COMPARISON_SCHEMA_VERSION = 1
TABLE_COLUMNS = [
    "batch",
    "metric",
    "baseline",
    "candidate",
    "delta",
    "delta_pct",
    "delta_end",
    "q_value",
    "parting_step",
    "status",
]


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.0f}"


def _qnum(x: float) -> str:
    """Quality numbers as the root causes write them: 410, 54.9, 0.36."""
    if not math.isfinite(x):
        return "n/a"
    if float(x).is_integer() or abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _signed(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.3f}"


def _pct(x: float) -> str:
    return "" if not math.isfinite(x) else f", {x * 100:+.0f}%"


def _p(q: float) -> str:
    if not math.isfinite(q):
        return "untested"
    return "q < 0.001" if q < 0.001 else f"q = {q:.3f}"


def series_sentence(d: SeriesDelta, shifts: Sequence[QualityShift] = ()) -> str:
    """'Batch 5 recall fell from 0.900 to 0.800 (-0.100, -11%) over the last 10 validations (q < 0.001); the
    curves part at step 1500; its images are blurrier (median blur 38 vs 410, q = 0.002).'"""
    verb = "rose" if d.delta_window > 0 else "fell"
    text = (
        f"Batch {d.batch} {d.metric} {verb} from {_num(d.baseline_window)} to {_num(d.candidate_window)} "
        f"({_signed(d.delta_window)}{_pct(d.relative)}) over the last {d.n_window} validations ({_p(d.q_value)})"
    )
    if d.parting_step is not None:
        text += f"; the curves part at step {d.parting_step}"
    worse = [s for s in shifts if s.worse][:2]
    if worse:
        text += "; its images are " + " and ".join(
            f"{s.words} than in the baseline (median {s.label} {_qnum(s.median_candidate)} vs "
            f"{_qnum(s.median_baseline)}, {_p(s.q)})"
            for s in worse
        )
    return text + "."


def _status(d: SeriesDelta) -> str:
    return "regression" if d.regression else "improvement" if d.improvement else "ok"


def delta_table(c: Comparison) -> pd.DataFrame:
    """One row per batch × metric, worst first (the Comparison's order)."""
    rows = [
        {
            "batch": d.batch,
            "metric": d.metric,
            "baseline": d.baseline_window,
            "candidate": d.candidate_window,
            "delta": d.delta_window,
            "delta_pct": d.relative * 100,
            "delta_end": d.delta_end,
            "q_value": d.q_value,
            "parting_step": d.parting_step,
            "status": _status(d),
        }
        for d in c.deltas
    ]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS).astype({"parting_step": "Int64"})


def _clean(x: Any) -> Any:
    """JSON-safe numbers: non-finite floats as strings, as the reports write them."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def to_dict(c: Comparison) -> dict[str, Any]:
    """Plain data (JSON-able) of a comparison, with its own `schema_version`."""
    cfg = c.config
    return {
        "schema_version": COMPARISON_SCHEMA_VERSION,
        "baseline": c.baseline,
        "candidate": c.candidate,
        "alignment": c.alignment,
        "tolerance_abs": cfg.tolerance_abs,
        "tolerance_rel": cfg.tolerance_rel,
        "window": cfg.window,
        "alpha": cfg.alpha,
        "has_regression": c.has_regression,
        "regressed_batches": c.regressed_batches,
        "sentences": c.sentences(),
        "new_batches": list(c.new_batches),
        "vanished_batches": list(c.vanished_batches),
        "new_metrics": list(c.new_metrics),
        "vanished_metrics": list(c.vanished_metrics),
        "deltas": [
            {
                "batch": d.batch,
                "metric": d.metric,
                "direction": "lower_is_better" if d.lower_is_better else "higher_is_better",
                "baseline_end": _clean(d.baseline_end),
                "candidate_end": _clean(d.candidate_end),
                "baseline_window": _clean(d.baseline_window),
                "candidate_window": _clean(d.candidate_window),
                "delta_window": _clean(d.delta_window),
                "n_window": d.n_window,
                "p_value": _clean(d.p_value),
                "q_value": _clean(d.q_value),
                "parting_step": d.parting_step,
                "status": _status(d),
            }
            for d in c.deltas
        ],
        "quality_shifts": [
            {
                "batch": s.batch,
                "score": s.score,
                "median_baseline": _clean(s.median_baseline),
                "median_candidate": _clean(s.median_candidate),
                "p": _clean(s.p),
                "q": _clean(s.q),
                "effect": _clean(s.effect),
                "worse": s.worse,
            }
            for s in c.quality
            if s.significant
        ],
    }


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(c: Comparison, max_rows: int = 20) -> str:
    """The comparison as Markdown (headline, sentences, the worst rows, new / vanished batches)."""
    regs = c.regressions
    head = (
        f"## Comparison: `{_md_cell(c.candidate)}` against baseline `{_md_cell(c.baseline)}`\n\n"
        + (
            f"**{len(regs)} regression(s)** in batch(es) {', '.join(map(str, c.regressed_batches))}"
            if regs
            else f"**{NOTHING_COMPARED_SENTENCE[:-1]}**"
            if c.nothing_compared
            else "**No regression**"
        )
        + f" (tolerance {c.config.tolerance_abs:g} absolute and {c.config.tolerance_rel:.0%} relative, "
        f"last {c.config.window} validations, aligned on {c.alignment}; {len(c.deltas)} batch × metric compared).\n"
    )
    parts = [head]
    if regs:
        parts.append("\n".join(f"- {_md_cell(s)}" for s in c.sentences()) + "\n")
    shown = [d for d in c.deltas[:max_rows] if d.regression or d.improvement]
    if shown:
        lines = [
            "| batch | metric | baseline | candidate | delta | parting step | status |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {d.batch} | {_md_cell(d.metric)} | {_num(d.baseline_window)} | {_num(d.candidate_window)} | "
            f"{_signed(d.delta_window)} | {d.parting_step if d.parting_step is not None else ''} | {_status(d)} |"
            for d in shown
        ]
        parts.append("\n".join(lines) + "\n")
    if c.new_batches:
        parts.append(f"New batches (candidate only): {', '.join(map(str, c.new_batches))}\n")
    if c.vanished_batches:
        parts.append(f"Vanished batches (baseline only): {', '.join(map(str, c.vanished_batches))}\n")
    if c.new_metrics or c.vanished_metrics:
        parts.append(
            f"Metrics only in the candidate: {', '.join(c.new_metrics) or 'none'}; "
            f"only in the baseline: {', '.join(c.vanished_metrics) or 'none'}\n"
        )
    return "\n".join(parts)


def to_junit(c: Comparison) -> str:
    """JUnit XML: one test case per batch × metric (classname = metric), a failure per regression."""
    suite = ET.Element(
        "testsuite",
        name=f"compare {c.candidate} vs {c.baseline}",
        tests=str(len(c.deltas)),
        failures=str(len(c.regressions)),
        errors="0",
        skipped="0",
    )
    for d in sorted(c.deltas, key=lambda d: (d.metric, d.batch)):
        case = ET.SubElement(suite, "testcase", classname=d.metric, name=f"batch_{d.batch}/{d.metric}")
        if d.regression:
            failure = ET.SubElement(case, "failure", message=series_sentence(d, c.quality_for(d.batch)))
            failure.text = (
                f"baseline {_num(d.baseline_window)}, candidate {_num(d.candidate_window)}, "
                f"delta {_signed(d.delta_window)}, {_p(d.q_value)}, parting step {d.parting_step}"
            )
    root = ET.Element("testsuites", tests=suite.get("tests", "0"), failures=suite.get("failures", "0"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
