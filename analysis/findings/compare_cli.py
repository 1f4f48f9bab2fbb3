"""The comparison options of `experiment-analyzer` (--baseline, tolerances, --save-baseline, --junit) and their
work after the candidate is analysed: kept here so analysis/cli.py only adds the group and one call."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.core.errors import AnalyzerError

if TYPE_CHECKING:  # the heavy imports wait until a comparison is asked for (`--help` stays quick)
    from analysis.core.run import Run
    from analysis.findings.compare import Comparison, RunSide
    from analysis.findings.pipeline import RunAnalysis

__all__ = ["add_compare_arguments", "add_project_arguments", "check_compare_args", "run_comparison", "run_project"]


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _window(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 validations, got {value}")
    return value


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("comparison against a baseline run")
    g.add_argument(
        "--baseline",
        metavar="RUN_OR_FILE",
        help="compare the run against this one: a run name or id (in --wandb-dir), a run folder, a history "
        "export, or a baseline file written by --save-baseline; prints one sentence per regressed batch",
    )
    g.add_argument(
        "--tolerance-abs",
        metavar="X",
        type=_non_negative,
        default=0.02,
        help="a batch regresses only when worse by more than X (default 0.02) ...",
    )
    g.add_argument(
        "--tolerance-rel",
        metavar="R",
        type=_non_negative,
        default=0.05,
        help="... and by more than R of the baseline's value (default 0.05 = 5%%)",
    )
    g.add_argument(
        "--window",
        metavar="K",
        type=_window,
        default=10,
        help="compare the last K validations (default 10; the test over them is paired when steps align)",
    )
    g.add_argument(
        "--save-baseline",
        metavar="FILE",
        type=Path,
        help="write this run's per-batch curves (and image scores) as a baseline file that --baseline accepts",
    )
    g.add_argument(
        "--junit",
        metavar="FILE",
        type=Path,
        help="with --baseline: write JUnit XML, one test case per batch × metric, failures = regressions",
    )


def check_compare_args(args: argparse.Namespace) -> str | None:
    """A usage mistake among the comparison options, as a message (None when they are fine)."""
    if not args.all and (args.workers != 1 or args.scheduler or args.table):
        return "--workers, --scheduler and --table go with --all"
    if args.fail_on == "regression" and not args.baseline:
        return "--fail-on regression needs --baseline (the run to compare against)"
    if args.junit and not args.baseline:
        return "--junit writes the comparison's test cases: it needs --baseline"
    return None


def _write_text(path: Path, text: str, what: str, append: bool = False) -> None:
    try:
        path = path.expanduser()
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise AnalyzerError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def run_comparison(args: argparse.Namespace, analysis: RunAnalysis, wandb_dir: Path | None) -> Comparison | None:
    """--save-baseline and --baseline for an analysed candidate; prints the verdict and sentences (unless quiet).

    Returns the comparison (None without --baseline). $GITHUB_STEP_SUMMARY, when set, gets the Markdown summary.
    """
    from analysis.core.run import Run
    from analysis.findings.compare import CompareConfig, compare_runs, save_baseline
    from analysis.findings.compare_model import NOTHING_COMPARED
    from analysis.findings.compare_source import open_baseline
    from analysis.findings.pipeline import analyze_run

    config = CompareConfig(
        tolerance_abs=args.tolerance_abs,
        tolerance_rel=args.tolerance_rel,
        window=args.window,
        analyzer=analysis.config,
    )
    if args.save_baseline:
        written = save_baseline(analysis, args.save_baseline, config)
        print(f"baseline saved: {written}")
    if not args.baseline:
        return None
    opened = open_baseline(args.baseline, wandb_dir)
    base: Run | RunSide | RunAnalysis = opened
    if args.data_dir is not None and isinstance(opened, Run):  # a run: score its images too
        base = analyze_run(opened, analysis.config, data_dir=args.data_dir)
    comparison = compare_runs(base, analysis, config)
    regs = comparison.regressions
    if not args.quiet:
        head = (
            f"{len(regs)} regression(s) against {comparison.baseline}: batch(es) "
            f"{', '.join(map(str, comparison.regressed_batches))}"
            if regs
            else f"{NOTHING_COMPARED} (baseline {comparison.baseline})"
            if comparison.nothing_compared
            else f"no regression against {comparison.baseline}"
        )
        print(head)
        for sentence in comparison.sentences():
            print("  " + "".join(ch if ch.isprintable() else " " for ch in sentence))
        for label, batches in (("new", comparison.new_batches), ("vanished", comparison.vanished_batches)):
            if batches:
                print(f"  {label} batches: {', '.join(map(str, batches))}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        _write_text(Path(summary), comparison.to_markdown() + "\n", "the step summary", append=True)
    if args.junit:
        _write_text(args.junit, comparison.to_junit(), "the JUnit file")
        if not args.quiet:
            print(f"JUnit: {args.junit}", file=sys.stderr)
    return comparison


def add_project_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("many runs")
    g.add_argument(
        "--all",
        action="store_true",
        help="analyse every run of --wandb-dir (or of --entity/--project in wandb cloud) into one table: verdict, "
        "worst batch, first bad step and, with --baseline, regression; a broken run is a row with its error",
    )
    g.add_argument("--workers", metavar="N", type=int, default=1, help="with --all: parallel processes (default 1)")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --all: run the analyses on the Dask cluster at ADDRESS (tcp://host:8786) instead",
    )
    g.add_argument("--table", metavar="FILE", type=Path, help="with --all: also write the table as CSV to FILE")


def run_project(args: argparse.Namespace, wandb_dir: Path) -> int:
    """`--all`: the project table, printed (and written with --table); exit 1 with --fail-on regression when
    a run regressed against --baseline."""
    from analysis.core.config import load_config
    from analysis.findings.compare import CompareConfig, run_side
    from analysis.findings.compare_source import open_baseline
    from analysis.findings.project import project_table
    from analysis.sources import list_cloud_runs, list_runs

    if args.fail_on in ("warning", "critical"):
        raise AnalyzerError("with --all, --fail-on takes never or regression")
    if args.workers < 1:
        raise AnalyzerError("--workers must be at least 1")
    config = load_config(args.config)
    if args.entity and args.project:
        refs = list_cloud_runs(args.entity, args.project)
    else:
        if not wandb_dir.is_dir():
            raise AnalyzerError(f"wandb directory not found: {wandb_dir} (pass --wandb-dir)")
        refs = list_runs(wandb_dir)
    compare = CompareConfig(args.tolerance_abs, args.tolerance_rel, args.window, analyzer=config)
    baseline = run_side(open_baseline(args.baseline, wandb_dir), compare) if args.baseline else None
    bar = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(refs), unit="run", file=sys.stderr, leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    try:
        table = project_table(
            refs, config, baseline=baseline, compare=compare, workers=args.workers, scheduler=args.scheduler,
            progress=progress,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    if args.table:
        try:
            args.table.expanduser().parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(args.table.expanduser(), index=False)
        except OSError as exc:
            raise AnalyzerError(f"cannot write the table {args.table}: {exc.strerror or exc}") from None
    shown = table.drop(columns=["verdict"]) if args.quiet else table
    print(shown.to_string(index=False, na_rep=""))
    regressed = bool(table["regression"].eq(True).any())
    return 1 if args.fail_on == "regression" and regressed else 0
