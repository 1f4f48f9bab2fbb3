"""One call from a loaded run to everything the app, the CLI and the reports show: `analyze_run`.

Data flows one way (DESIGN.md): Run -> BatchMetrics -> findings (+ image quality) -> root causes. The dashboard,
the CLI and the HTML report all call this, so they show the same numbers from the same code.

`data_quality.enable_filtering` (with a data directory, so images are scored): the logged problematic images that
fail the quality checks are moved from `RunAnalysis.images` (and so from the batch summary's `n_problem_images`)
to `RunAnalysis.filtered_images`, with their reasons; what remains is the images the model got wrong although
they are fit to read. The quality audit (`quality`) still lists every image, and root causes still see every
image: the logged metrics were measured on all of them, so failing images are the evidence of a data-side cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.core.config import AnalyzerConfig
from analysis.core.errors import AnalyzerError
from analysis.core.records import Anomaly, ChangePoint, RootCause
from analysis.core.run import Run
from analysis.core.vocabulary import Severity, is_context, metric_direction, worst_severity
from analysis.findings import anomalies as anomaly_detection
from analysis.findings import changepoints as change_detection
from analysis.findings import events as event_detection
from analysis.findings import rootcause
from analysis.findings.batches import batch_metrics, change_tolerance, global_metrics, problematic_images
from analysis.findings.directions import directions_read_from_curves, with_read_directions
from analysis.findings.events import Event

if TYPE_CHECKING:  # image hashing (cv2) loads only when a data directory is analysed
    from quality.duplicates import Duplicates

Progress = Callable[[float, str], None]

SUMMARY_COLUMNS = [
    "batch",
    "worst_recall",
    "worst_step",
    "first_bad_step",
    "last_recall",
    "n_anomalies",
    "n_change_points",
    "n_problem_images",
    "severity",
    "n_events",
]
FILTERED_COLUMNS = ["step", "batch", "path", "reasons", "reason_codes"]


def alarm_severity(values: Iterable[str | Severity]) -> Severity:
    """The worst of `values` as 'ok', 'warning' or 'critical': info findings (improvements, plateaus) raise no
    alarm. The one definition behind the verdict, each batch's severity and the CLI's --fail-on."""
    worst = worst_severity(values)
    return Severity.OK if worst is Severity.INFO else worst


@dataclass
class RunAnalysis:
    """Everything derived from one run under one config. Frames have the columns documented in batches.py."""

    run: Run
    config: AnalyzerConfig
    batches: pd.DataFrame
    global_metrics: pd.DataFrame
    images: pd.DataFrame
    anomalies: list[Anomaly] = field(default_factory=list)
    change_points: list[ChangePoint] = field(default_factory=list)
    quality: pd.DataFrame | None = None
    root_causes: list[RootCause] = field(default_factory=list)
    batch_summary: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SUMMARY_COLUMNS))
    data_dir: Path | None = None
    # logged problematic images set aside by data_quality.enable_filtering (FILTERED_COLUMNS)
    filtered_images: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FILTERED_COLUMNS))
    # one record per real change, detector hits as evidence (events.find_events), worst first
    events: list[Event] = field(default_factory=list)
    # exact and near-duplicate images of the data directory, placed in the run's log (quality.duplicates)
    duplicates: Duplicates | None = None

    @property
    def alarm_events(self) -> list[Event]:
        """Events that are warnings or criticals: the anomalies a user is shown (info notes are not counted)."""
        return [e for e in self.events if e.is_alarm]

    @property
    def alarmed_run_metrics(self) -> list[str]:
        """Run-level metrics named by an alarm event: each event's own metric first (events come worst first), then
        the others they name. A NaN that struck six losses at once no longer pushes the accuracy that fell after it
        out of a chart of four."""
        run_events = [e for e in self.alarm_events if e.batch is None]
        leads = [e.metric for e in run_events]
        return list(dict.fromkeys(leads + [m for e in run_events for m in e.metrics]))

    @property
    def problematic_batches(self) -> list[int]:
        """Batches with at least a warning, worst first."""
        s = self.batch_summary
        return [int(b) for b in s.loc[s["severity"] != "ok", "batch"]]

    @cached_property
    def logged_steps(self) -> np.ndarray:
        """The distinct steps at which any analysed metric (per-batch or run-level) was logged, sorted: a run with
        no `batch_{i}/...` key (a plain history export) still has its steps counted."""
        parts = [f["step"].to_numpy(dtype=np.int64) for f in (self.batches, self.global_metrics) if len(f)]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    @cached_property  # the frames never change after analyze_run; these scan millions of rows on long runs
    def primary_metric(self) -> str:
        return primary_metric(self.batches)

    @property
    def worst_severity(self) -> Severity:
        """'ok', 'warning' or 'critical' over the events (`alarm_severity`): a detector hit that no event
        explains (one z-score past its bar on a healthy curve) raises no alarm, and info notes never do."""
        return alarm_severity(e.severity for e in self.events)

    @cached_property
    def verdict(self) -> str:
        """One-line headline."""
        bad = self.problematic_batches
        if self.batches.empty:
            level = self.worst_severity
            worst_events = [e for e in self.events if e.severity == level]
            if level is Severity.OK or not worst_events:
                g = self.global_metrics
                names: list[str] = g["metric"].unique().tolist() if "metric" in g else []
                graded = [m for m in names if not is_context(m, self.config.anomaly.metric_directions)]
                if not graded:
                    return "No per-batch metrics (batch_{i}/...) in this run."
                # a run-level log with nothing wrong says so, in the words a healthy batch run gets
                return (
                    f"No per-batch metrics (batch_{{i}}/...); no alarms in {len(graded)} run-level "
                    f"metric{'s' if len(graded) != 1 else ''}."
                )
            # the metrics in the order their trouble starts: the first named is the one at the step quoted
            names = list(dict.fromkeys(e.metric for e in sorted(worst_events, key=lambda e: (e.start_step, e.metric))))
            return (
                f"No per-batch metrics (batch_{{i}}/...); run-level {level} findings in "
                f"{', '.join(names[:3])}{'…' if len(names) > 3 else ''} from step "
                f"{min(e.start_step for e in worst_events)}."
            )
        if not bad:
            return f"No problematic batches across {self.batches['batch'].nunique()} batches."
        worst: Any = self.batch_summary.iloc[0]  # a row of mixed types
        shown = ", ".join(str(b) for b in bad[:5]) + ("…" if len(bad) > 5 else "")
        metric = self.primary_metric
        where = (
            f"{worst['worst_recall']:.3f} at step {int(worst['worst_step'])}"
            if worst["worst_step"] >= 0
            else "never finite"
        )  # a batch whose values were all NaN/Inf has no worst step
        return (
            f"{len(bad)} problematic batch{'es' if len(bad) != 1 else ''} ({shown}); worst: batch "
            f"{int(worst['batch'])}, {metric} {where}."
        )

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the compact summary with the key figure (findings/notebook.py)."""
        from analysis.findings.notebook import analysis_html

        return analysis_html(self)


def primary_metric(batches: pd.DataFrame) -> str:
    """`recall` when logged (the handbook's problematic signal), else the first metric name."""
    names = sorted(batches["metric"].unique()) if not batches.empty else []
    return "recall" if "recall" in names or not names else names[0]


def summarize_batches(
    batches: pd.DataFrame,
    anomalies: list[Anomaly],
    change_points: list[ChangePoint],
    images: pd.DataFrame,
    config: AnalyzerConfig | None = None,
    events: list[Event] | None = None,
) -> pd.DataFrame:
    """One row per batch, worst first (critical before warning before ok, then worst primary metric).

    `worst_recall` / `last_recall` are the primary metric's worst and last finite values; worst follows the
    metric's direction (the lowest recall, the highest error rate; `metric_directions` in `config` win).
    With `events` (what `analyze_run` passes) a batch's severity and first bad step come from its events, so a
    detector hit that no event explains does not make a batch problematic; without, from its anomalies."""
    if batches.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    metric = primary_metric(batches)
    direction = metric_direction(metric, (config or AnalyzerConfig()).anomaly.metric_directions)
    prim = batches[batches["metric"] == metric]
    batch_of = prim["batch"].to_numpy(dtype=np.int64)
    ids = np.unique(batch_of)
    # the worst and the last finite value of each batch, for every batch at once (a table of 25,000 batches
    # would otherwise cost a sort per batch)
    worst_value, last_value = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
    worst_step = np.full(len(ids), -1, dtype=np.int64)
    values = prim["value"].to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    fb, fs, fv = batch_of[finite], prim["step"].to_numpy(dtype=np.int64)[finite], values[finite]
    if len(fb):
        # worst first within each batch, the earliest step among equal values (as `worst_index` picks)
        order = np.lexsort((fs, fv if direction == "higher_is_better" else -fv, fb))
        first = np.r_[True, fb[order][1:] != fb[order][:-1]]
        at = np.searchsorted(ids, fb[order][first])
        worst_value[at], worst_step[at] = fv[order][first], fs[order][first]
        order = np.lexsort((fs, fb))
        last = np.r_[fb[order][1:] != fb[order][:-1], True]
        last_value[np.searchsorted(ids, fb[order][last])] = fv[order][last]
    anoms_of, cps_of = _by_batch(anomalies), _by_batch(change_points)
    events_of = _by_batch(events) if events is not None else None
    images_of = images.groupby("batch")["path"].nunique().to_dict() if not images.empty else {}
    rows = []
    for k, b in enumerate(ids.tolist()):
        b_anoms, b_cps = anoms_of.get(b, []), cps_of.get(b, [])
        b_events = events_of.get(b, []) if events_of is not None else None
        alarms = (
            [(e.start_step, e.severity) for e in b_events]
            if b_events is not None
            else [(a.step, a.severity) for a in b_anoms]
        )
        rows.append(
            {
                "batch": b,
                "worst_recall": float(worst_value[k]),
                "worst_step": int(worst_step[k]),
                "first_bad_step": min((st for st, sev in alarms if sev.rank > Severity.INFO.rank), default=-1),
                "last_recall": float(last_value[k]),
                "n_anomalies": len(b_anoms),
                "n_change_points": len(b_cps),
                "n_problem_images": int(images_of.get(b, 0)),
                "severity": alarm_severity(sev for _, sev in alarms).value,
                "n_events": sum(1 for e in b_events if e.is_alarm) if b_events is not None else 0,
            }
        )
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    out["_rank"] = -out["severity"].map(lambda s: Severity(s).rank)
    # worst value first: the lowest of a higher-is-better metric, the highest of a lower-is-better one
    out["_worst"] = out["worst_recall"] if direction == "higher_is_better" else -out["worst_recall"]
    out = out.sort_values(["_rank", "_worst", "batch"], na_position="last").drop(columns=["_rank", "_worst"])
    return out.reset_index(drop=True)


def _by_batch(items: Iterable[Any]) -> dict[int, list[Any]]:
    """Findings (anomalies, change points, events) grouped by their `batch` (run-level ones left out)."""
    out: dict[int, list[Any]] = {}
    for item in items:
        if item.batch is not None:
            out.setdefault(int(item.batch), []).append(item)
    return out


def filter_failing_images(images: pd.DataFrame, quality: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, filtered): the logged problematic images split by the quality checks (`data_quality.enable_filtering`).

    A logged image whose audit row is not acceptable (too small, rotated, blurry, flat or unreadable) is filtered,
    with that row's `reasons` and `reason_codes`; images without an audit row are kept (nothing says they fail)."""
    empty = pd.DataFrame(columns=FILTERED_COLUMNS)
    if images.empty or quality is None or quality.empty or "is_acceptable" not in quality.columns:
        return images, empty
    audit = quality.drop_duplicates("path").set_index("path")
    failing = audit.index[~audit["is_acceptable"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    is_failing = images["path"].isin(failing)
    if not is_failing.any():
        return images, empty
    filtered = images.loc[is_failing, ["step", "batch", "path"]].copy()
    for col in ("reasons", "reason_codes"):
        values = audit[col] if col in audit.columns else pd.Series(dtype=object)
        filtered[col] = [list(values.get(p, [])) for p in filtered["path"]]
    return images.loc[~is_failing].reset_index(drop=True), filtered.reset_index(drop=True)


def score_data_dir(
    data_dir: Path, images: pd.DataFrame, config: AnalyzerConfig, progress: Progress | None = None
) -> pd.DataFrame:
    """QualityScores of every image under `data_dir` plus any logged path outside the audit (error rows),
    thresholded with the config, with the batch each image was logged under (<NA> otherwise)."""
    from analysis.sources.cache import cache_root
    from quality.audit import apply_thresholds, audit_folder, score_images, thresholds_from_config

    cb = (
        (lambda done, total: progress(0.3 + 0.5 * done / max(total, 1), f"scoring images {done}/{total}"))
        if progress
        else None
    )
    dq = config.data_quality
    # scores are cached on disk (path + size + mtime + scorer version): re-analysing an unchanged folder is quick
    cache_dir = cache_root() / "quality"
    scores = audit_folder(data_dir, progress=cb, cache_dir=cache_dir, max_pixels=dq.max_image_pixels)
    logged = images["path"].unique().tolist() if not images.empty else []
    missing = sorted(set(logged) - set(scores["path"]))
    if missing:
        extra = score_images(missing, root=data_dir, cache_dir=cache_dir, max_pixels=dq.max_image_pixels)
        scores = pd.concat([scores, extra], ignore_index=True)
    scores = apply_thresholds(scores, **thresholds_from_config(dq))
    first_batch = (
        images.drop_duplicates("path").set_index("path")["batch"] if not images.empty else pd.Series(dtype="Int64")
    )
    scores["batch"] = scores["path"].map(first_batch).astype("Int64")
    return scores


def analyze_run(
    run: Run,
    config: AnalyzerConfig | None = None,
    *,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> RunAnalysis:
    """Findings, image quality and root causes for one run. `progress(fraction, message)` reports long work."""
    report = progress or _silent
    analysis = analyze_metrics(run, config, progress=report)
    if data_dir is not None:
        analysis = with_image_quality(analysis, data_dir, progress=report)
    report(1.0, "done")
    return analysis


def _silent(fraction: float, message: str) -> None:
    return None


def analyze_metrics(run: Run, config: AnalyzerConfig | None = None, *, progress: Progress | None = None) -> RunAnalysis:
    """The findings of the metrics alone (no image scores): batch frames, anomalies, change points, events, and
    root causes and batch summary without image evidence. `with_image_quality` adds the images to it, so the
    dashboard can draw this first and never runs the detectors twice."""
    config = config or AnalyzerConfig()
    report = progress or _silent
    report(0.0, "reading batch metrics")
    pattern = config.training_config.batch_key_pattern  # None: the layout is detected from the keys
    batches = batch_metrics(run, pattern)
    globals_ = global_metrics(run, pattern)
    config = with_read_directions(config, directions_read_from_curves(globals_, config))
    images = problematic_images(run)
    cfg = config.anomaly
    report(0.1, "detecting anomalies")
    anomalies = anomaly_detection.find_anomalies(batches, globals_, cfg)
    report(0.2, "detecting change points")
    change_points = change_detection.find_change_points(batches, globals_, cfg)
    events = event_detection.find_events(batches, globals_, anomalies, change_points, cfg)
    causes = rootcause.explain(
        batches, anomalies, change_points, None, images, config, (), tolerance=change_tolerance(globals_)
    )
    return RunAnalysis(
        run=run,
        config=config,
        batches=batches,
        global_metrics=globals_,
        images=images,
        anomalies=anomalies,
        change_points=change_points,
        quality=None,
        root_causes=causes,
        batch_summary=summarize_batches(batches, anomalies, change_points, images, config, events),
        data_dir=None,
        filtered_images=pd.DataFrame(columns=FILTERED_COLUMNS),
        events=events,
        duplicates=None,
    )


def with_image_quality(metrics: RunAnalysis, data_dir: str | Path, *, progress: Progress | None = None) -> RunAnalysis:
    """`metrics` (from `analyze_metrics`) with the images of `data_dir`: quality scores, duplicate images, root
    causes with image evidence, the quality filter and the batch summary over the images kept."""
    report = progress or _silent
    config, images = metrics.config, metrics.images  # all logged images: nothing is filtered without scores
    root = Path(data_dir)
    if not root.is_dir():
        raise AnalyzerError(f"data directory not found: {root}")
    report(0.3, "scoring images")
    quality = score_data_dir(root, images, config, progress)
    report(0.8, "finding duplicate images")
    from analysis.sources.cache import cache_root
    from quality.duplicates import find_duplicates_under

    hashed = quality["path"].tolist()  # every scored image: the folder's and the logged ones
    duplicates = find_duplicates_under(root, hashed, images, config.data_quality, cache_root() / "quality")
    report(0.85, "explaining root causes")
    # root causes see every image: the logged metrics were measured on all of them (see the module docstring)
    causes = rootcause.explain(
        metrics.batches,
        metrics.anomalies,
        metrics.change_points,
        quality,
        images,
        config,
        duplicates.repeats,
        tolerance=change_tolerance(metrics.global_metrics),
    )
    filtered = pd.DataFrame(columns=FILTERED_COLUMNS)
    if config.data_quality.enable_filtering:
        images, filtered = filter_failing_images(images, quality)
    summary = summarize_batches(
        metrics.batches, metrics.anomalies, metrics.change_points, images, config, metrics.events
    )
    return replace(
        metrics,
        images=images,
        quality=quality,
        root_causes=causes,
        batch_summary=summary,
        data_dir=root,
        filtered_images=filtered,
        duplicates=duplicates,
    )
