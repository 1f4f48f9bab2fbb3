"""The `experiment-analyzer` command: analyse one wandb run and write Markdown / JSON / HTML reports.

`analyze_experiment.py` (the handbook's name) and `python -m experiment_analyzer` call `main` here;
`experiment-analyzer ui [streamlit options]` starts the dashboard instead.

Exit codes: 0 = analysed (reports written), 1 = findings reached --fail-on, 2 = user error (one line on stderr),
3 = unexpected internal error (one line; ANALYZER_DEBUG=1 shows the traceback), 130 = interrupted.

Reports are written at the end of every run unless the config's `reporting.auto_generate_reports` is false; then
only an explicit `--format` or `--output-dir` writes them (the verdict and the exit code are the same either way).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.core.config import AnalyzerConfig
    from analysis.core.run import Run, RunRef
    from analysis.reporting.model import Report

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_OUTPUT_DIR = Path("experiment_reports")

EPILOG = """\
examples:
  # the ./wandb run named (or with id) my_run; reports in ./experiment_reports
  %(prog)s --run-name my_run
  # with image-quality scoring of the logged images, thumbnails and root causes
  %(prog)s --run-name my_run --data-dir /data/ocr --output-dir ./reports
  # JSON only, for scripts; a run id avoids ambiguity
  %(prog)s --run-name 3xk2p9qa --wandb-dir /mnt/exp/wandb --format json --quiet
  # a CSV / Parquet / JSONL history export instead of a wandb run
  %(prog)s --history-file export.parquet --format md,html
  # wandb cloud (needs WANDB_API_KEY; WANDB_BASE_URL for a self-hosted server)
  %(prog)s --entity team --project ocr --run-name my_run
  # write the findings back into wandb as an analysis run (offline; `wandb sync` uploads it)
  %(prog)s --run-name my_run --log-to-wandb
  # CI gate: exit 1 when any finding is critical
  %(prog)s --run-name my_run --config analyzer.yaml --fail-on critical

reports: written at the end of every run; with reporting.auto_generate_reports: false in the config, only when
--format or --output-dir is given (the verdict is printed and the exit code is the same either way).

exit codes: 0 analysed (reports written) · 1 findings reached --fail-on (the worst severity over anomalies, change points
and batches) · 2 user error (unknown or ambiguous run, bad config, unreadable directory or file) · 3 unexpected
internal error (set ANALYZER_DEBUG=1 for the traceback) · 130 interrupted.
Secrets (SLACK_WEBHOOK_URL, SMTP_PASSWORD, WANDB_API_KEY) are read from the environment and never written to
reports.
"""


def default_wandb_dir() -> Path:
    """./wandb when it exists, else $WANDB_DIR/wandb when WANDB_DIR is set, else ./wandb."""
    local = Path("wandb")
    if local.is_dir():
        return local
    env = os.environ.get("WANDB_DIR")
    if env:
        return Path(env) / "wandb"
    return local


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Find problematic batches, anomalies, change points and image-quality root causes in a wandb "
        "run, and write Markdown, JSON and self-contained HTML reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("which run")
    src.add_argument(
        "--run-name",
        metavar="NAME",
        help="run display name or run id (a run folder path also works; latest-run is the newest "
        "run); ambiguous names list the candidates",
    )
    src.add_argument(
        "--wandb-dir",
        metavar="DIR",
        type=Path,
        help="local wandb directory holding offline-run-*/run-* folders (default: ./wandb if it "
        "exists, else $WANDB_DIR/wandb)",
    )
    src.add_argument("--entity", help="wandb cloud entity (with --project): read the run from wandb cloud")
    src.add_argument("--project", help="wandb cloud project (with --entity)")
    src.add_argument(
        "--history-file",
        metavar="FILE",
        type=Path,
        help="analyse a history export (.csv, .parquet, .jsonl) instead of a wandb run; with "
        "--run-name, picks that run of a multi-run wandb CSV export",
    )
    ana = p.add_argument_group("analysis")
    ana.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        help="dataset root the logged image paths are relative to; enables image-quality scoring, "
        "root causes from image evidence and thumbnails",
    )
    ana.add_argument(
        "--config",
        metavar="YAML",
        type=Path,
        help="analyzer config (experiment_monitoring / training_config / data_quality); see "
        "config.example.yaml. Default: built-in defaults",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--output-dir",
        metavar="DIR",
        type=Path,
        help="where reports are written (default: ./experiment_reports); also writes them when the config's "
        "reporting.auto_generate_reports is false",
    )
    out.add_argument(
        "--format",
        metavar="LIST",
        dest="formats",
        help="comma-separated report formats: md, json, html (default: the config's "
        "reporting.report_formats, i.e. all three); also writes them when reporting.auto_generate_reports is false",
    )
    out.add_argument(
        "--fail-on",
        choices=("never", "warning", "critical", "regression"),
        default="never",
        help="exit with code 1 when findings reach this severity (default: never); `regression`: when the run "
        "regressed against --baseline",
    )
    out.add_argument(
        "--log-to-wandb",
        action="store_true",
        help="also write the analysis into wandb: a run with job_type=analysis linked to the analysed run (config "
        "analysed_run, tag analysed:<id>), with the events and problematic batches as tables, the HTML report as a "
        "file and an artifact, and the verdict in its summary. Offline unless WANDB_MODE says otherwise (upload it "
        "later with `wandb sync`); written under $WANDB_DIR, else under the output directory",
    )
    out.add_argument(
        "--wandb-project",
        metavar="NAME",
        help="project of the analysis run written by --log-to-wandb (default: the analysed run's project)",
    )
    out.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bar and no summary; print only 'Analysis complete' and the report paths",
    )
    from analysis.findings.compare_cli import add_compare_arguments, add_project_arguments

    add_compare_arguments(p)
    add_project_arguments(p)
    return p


class _ArgError(Exception):
    """A usage mistake found after parsing (combination of options)."""


def _check_args(args: argparse.Namespace) -> None:
    cloud = args.entity or args.project
    if args.history_file and (cloud or args.wandb_dir):
        raise _ArgError("--history-file cannot be combined with --wandb-dir or --entity/--project")
    if cloud and not (args.entity and args.project):
        raise _ArgError("--entity and --project go together (both are needed to read a run from wandb cloud)")
    if cloud and args.wandb_dir:
        raise _ArgError("choose one source: --wandb-dir (local) or --entity/--project (cloud)")
    if not args.history_file and not args.run_name:
        raise _ArgError("--run-name is required (or give --history-file)")
    if args.wandb_project and not args.log_to_wandb:
        raise _ArgError("--wandb-project names the project of --log-to-wandb; give --log-to-wandb too")


def load_run(args: argparse.Namespace) -> Run:
    """The Run the options point at (local folder, cloud or history export); typed errors for user mistakes."""
    from analysis.core.errors import AmbiguousRun, RunNotFound
    from analysis.sources import open_run

    if args.history_file:
        if args.history_file.is_dir():
            raise RunNotFound(
                f"--history-file wants a file, not the directory {args.history_file} (a run folder goes to --run-name)"
            )
        if not args.history_file.is_file():
            raise RunNotFound(f"history file not found: {args.history_file}")
        if args.run_name:  # one run of a multi-run wandb CSV export
            return open_run(f"{args.history_file}#{args.run_name}")
        try:
            return open_run(args.history_file)
        except AmbiguousRun as e:  # the CLI's way to choose is --run-name, not the dashboard's FILE#RUN
            runs = ", ".join(e.candidates)
            raise AmbiguousRun(
                f"{args.history_file.name} is a wandb export of {len(e.candidates)} runs ({runs}); choose one with "
                f"--run-name NAME",
                candidates=e.candidates,
            ) from e
    if args.entity:
        return open_run(find_cloud_run(args.entity, args.project, args.run_name))
    try:
        return resolve_run(args.run_name, wandb_dir=args.wandb_dir)
    except RunNotFound as e:
        table = _table_named(args.run_name, args.data_dir)
        if table is None or isinstance(e, AmbiguousRun):
            raise
        raise RunNotFound(f"{e}; a history export of that name is at {table}: pass --history-file {table}") from e


def _table_named(run_name: str, data_dir: Path | None) -> Path | None:
    """A history export called `run_name` (any table suffix) in `data_dir` or the working directory: a user who
    exported a run as `NAME.csv` and gave `--run-name NAME` is pointed to `--history-file`."""
    from analysis.sources.tabular import SUFFIXES

    for folder in [d for d in (data_dir, Path.cwd()) if d is not None]:
        for suffix in sorted(SUFFIXES):
            candidate = folder / f"{run_name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def resolve_run(target: str | Path, *, wandb_dir: str | Path | None = None) -> Run:
    """The Run that `target` names: a run folder, a `.wandb` file, a history export (`.csv` / `.parquet` /
    `.jsonl`, `export.csv#<run>`), `wandb://entity/project/run_id`, or a run name / id / `latest-run` in
    `wandb_dir` (default: `default_wandb_dir()`). Typed errors for user mistakes (unknown, ambiguous, unreadable)."""
    from analysis.core.errors import SourceUnavailable
    from analysis.sources import find_run, open_run
    from analysis.sources.tabular import is_table

    text = str(target)
    if text.startswith("wandb://"):
        return open_run(text)
    candidate = Path(text).expanduser()
    if (wandb_dir is None and candidate.is_dir() and (candidate / "files").is_dir()) or (
        candidate.suffix == ".wandb" and candidate.is_file()
    ):
        return open_run(candidate)  # a run folder or .wandb file given directly
    file_part = Path(text.split("#", 1)[0]).expanduser()
    if is_table(file_part) and file_part.is_file():  # a history export (`#<run>`: one run of a multi-run CSV)
        return open_run(f"{file_part}#{text.split('#', 1)[1]}" if "#" in text else file_part)
    folder = Path(wandb_dir).expanduser() if wandb_dir is not None else default_wandb_dir()
    if not folder.exists():
        raise SourceUnavailable(f"wandb directory not found: {folder} (pass --wandb-dir, or set WANDB_DIR)")
    if not folder.is_dir():
        raise SourceUnavailable(f"not a directory: {folder} (--wandb-dir wants the folder holding run folders)")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SourceUnavailable(f"cannot read wandb directory {folder}: permission denied")
    return open_run(find_run(folder, text))


def analyze(
    run: str | Path,
    data_dir: str | Path | None = None,
    config: AnalyzerConfig | str | Path | None = None,
    *,
    wandb_dir: str | Path | None = None,
) -> Report:
    """One line from a run to its report, for notebooks and scripts: `analyze("my_run")`.

    `run` is anything `resolve_run` reads (a run name or id in `wandb_dir` / ./wandb / $WANDB_DIR/wandb, a run
    folder, a `.wandb` file, a CSV / Parquet / JSONL export, `wandb://entity/project/run_id`); `config` an
    `AnalyzerConfig` or the path of a YAML config. The Report shows itself in Jupyter (`_repr_html_`) and renders
    with `.to_markdown()`, `.to_json()`, `.to_html()`."""
    from analysis.core.config import AnalyzerConfig, load_config
    from analysis.core.errors import AnalyzerError
    from analysis.findings.pipeline import analyze_run
    from analysis.reporting.report import Report

    cfg = config if isinstance(config, AnalyzerConfig) else load_config(config)
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise AnalyzerError(f"data directory not found: {data_dir}")
    the_run = resolve_run(run, wandb_dir=wandb_dir)
    analysis = analyze_run(the_run, cfg, data_dir=Path(data_dir).expanduser() if data_dir is not None else None)
    return Report.from_analysis(analysis)


def find_cloud_run(entity: str, project: str, name_or_id: str) -> RunRef:
    """The RunRef of a wandb cloud run by id or display name (one listing query; typed errors like find_run)."""
    from analysis.core.errors import AmbiguousRun, RunNotFound
    from analysis.sources import list_cloud_runs

    refs = list_cloud_runs(entity, project)
    by_id = [r for r in refs if r.run_id == name_or_id]
    if by_id:
        return by_id[0]
    by_name = [r for r in refs if r.name == name_or_id]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        ids = ", ".join(r.run_id for r in by_name)
        raise AmbiguousRun(
            f"{len(by_name)} runs in {entity}/{project} are named {name_or_id!r} (ids {ids}); pass the run id instead",
            candidates=[r.run_id for r in by_name],
        )
    labels = [r.label for r in refs]
    shown = ", ".join(labels[:20]) + (f", ... ({len(labels) - 20} more)" if len(labels) > 20 else "")
    raise RunNotFound(
        f"no run named or with id {name_or_id!r} in {entity}/{project}"
        + (f"; runs there: {shown}" if labels else ": the project has no runs"),
        candidates=labels,
    )


class _Progress:
    """A tqdm bar on a terminal (stderr), silent otherwise; fed by analyze_run's progress(fraction, message)."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            try:
                size = os.get_terminal_size(sys.stderr.fileno())
                cols, rows = size.columns, size.lines
            except OSError:
                cols = rows = 0
            # a pseudo-terminal may report a 0x0 size (CI runners, `script`); tqdm would then draw nothing
            self.bar = tqdm(
                total=100,
                unit="%",
                file=sys.stderr,
                leave=False,
                ncols=min(cols, 100) if cols >= 40 else 80,
                nrows=rows if rows > 0 else 24,
                bar_format="{desc:<28} {percentage:3.0f}%|{bar}| {elapsed}",
            )

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is None:
            return
        target = round(max(0.0, min(1.0, fraction)) * 100)
        self.bar.set_description_str(message[:28])
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.refresh()  # the last state is drawn even when updates came faster than tqdm's redraw rate
            self.bar.close()


def run(argv: list[str] | None = None) -> int:
    """The CLI body; returns the exit code. User errors raise AnalyzerError (handled in `main`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.all:  # the project table: every run of the directory (or cloud project), no single-run analysis
        from analysis.findings.compare_cli import check_compare_args, run_project

        if compare_error := check_compare_args(args):
            parser.error(compare_error)
        return run_project(args, args.wandb_dir or default_wandb_dir())
    try:
        _check_args(args)
    except _ArgError as exc:
        parser.error(str(exc))  # exits 2 with the usage line
    from analysis.findings.compare_cli import check_compare_args, run_comparison

    if compare_error := check_compare_args(args):
        parser.error(compare_error)

    from analysis.core.config import load_config
    from analysis.core.errors import AnalyzerError
    from analysis.findings.pipeline import analyze_run
    from analysis.reporting.report import Report, normalise_formats, write_reports

    config = load_config(args.config)
    reporting = config.experiment_monitoring.reporting
    # `--format ""` is a mistake to report, not a request for the default formats
    formats = normalise_formats(reporting.report_formats if args.formats is None else args.formats)
    write = reporting.auto_generate_reports or args.formats is not None or args.output_dir is not None
    # expanded here too: a quoted "~/x" reaches us with its `~` (write_reports expands it as well)
    output_dir = Path(args.output_dir).expanduser() if args.output_dir is not None else DEFAULT_OUTPUT_DIR
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise AnalyzerError(f"data directory not found: {args.data_dir}")

    progress = _Progress(enabled=not args.quiet)
    try:
        progress(0.0, "reading run")
        the_run = load_run(args)
        analysis = analyze_run(the_run, config, data_dir=args.data_dir, progress=progress)
        comparison = None  # against --baseline: a section of the reports, and the regression gate below
        if args.baseline or args.save_baseline:
            comparison = run_comparison(args, analysis, args.wandb_dir or default_wandb_dir())
        if write:
            progress(1.0, "writing reports")
            charts = "html" in formats or args.log_to_wandb
            report = Report.from_analysis(analysis, charts=charts, comparison=comparison)
            paths = write_reports(report, output_dir, formats)
        elif args.log_to_wandb:  # no files, but the analysis run carries the full HTML report
            report = Report.from_analysis(analysis, comparison=comparison)
            paths = {}
        else:  # the summary (verdict, severity) only: no charts, no thumbnails, no files
            report = Report.from_analysis(analysis, charts=False, max_thumbnails=0, comparison=comparison)
            paths = {}
        logged = None
        if args.log_to_wandb:
            from analysis.reporting.wandb_log import log_analysis_to_wandb

            progress(1.0, "logging to wandb")
            try:
                logged = log_analysis_to_wandb(report, project=args.wandb_project, wandb_dir=output_dir)
            except AnalyzerError as exc:
                kept = f" (the reports were written: {', '.join(map(str, paths.values()))})" if paths else ""
                raise AnalyzerError(f"--log-to-wandb: {exc}{kept}") from None
    finally:
        progress.close()

    lines = [
        "Analysis complete" + ("" if args.quiet else f": {_printable(report.summary['verdict'])}"),
        *map(str, paths.values()),
    ]
    if logged is not None:
        lines.append(f"wandb: {_printable(logged.describe())}")
    _print_lines(lines)
    if not write and not args.quiet:
        print(
            "no reports written: reporting.auto_generate_reports is false in the config "
            "(give --format or --output-dir to write them)",
            file=sys.stderr,
        )
    if not args.quiet and the_run.status.badges():
        print(f"note: the run was read partially ({', '.join(the_run.status.badges())})", file=sys.stderr)
    if args.fail_on == "regression":
        regressed = comparison is not None and comparison.has_regression
        if regressed and not args.quiet:
            print("the run regressed against --baseline (--fail-on regression): exit 1", file=sys.stderr)
        return EXIT_FINDINGS if regressed else EXIT_OK
    if report.reaches(args.fail_on):
        if not args.quiet:
            print(f"findings reach --fail-on {args.fail_on} (severity {report.severity}): exit 1", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_OK


def _print_lines(lines: list[str]) -> None:
    """Print to stdout; a reader that went away (`| head -1`) is not an error: the reports are written, and the
    exit code must still say whether findings reached --fail-on."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout again at exit
        os.close(devnull)


def _printable(text: str) -> str:
    """Untrusted text for the terminal: control characters (ANSI escapes, newlines) become spaces/removed."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def dashboard_script() -> Path:
    """app.py: installed beside the `ui` package (site-packages) or at the top of a checkout."""
    spec = importlib.util.find_spec("ui")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the dashboard package `ui` is not installed")
    return Path(spec.origin).resolve().parent.parent / "app.py"


def run_dashboard(streamlit_args: list[str]) -> int:
    """`experiment-analyzer ui`: `python -m ui.serve` (streamlit run app.py + warm-up) bound to 127.0.0.1 (extra options go
    to streamlit)."""
    # the settings of the checkout's .streamlit/config.toml, which an installed package does not carry
    defaults = [
        "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer", "--theme.base", "light",
    ]  # fmt: skip
    dashboard_script()  # a clear error when the dashboard package is not installed
    # ui.serve: `streamlit run app.py` plus a background warm-up of imports and the first run (as `make run`)
    command = [sys.executable, "-m", "ui.serve", *defaults, *streamlit_args]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2, never a traceback."""
    from analysis.core.errors import AnalyzerError

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["ui"]:
        return run_dashboard(args[1:])
    try:
        return run(args)
    except AnalyzerError as exc:
        message = " ".join(_printable(str(exc)).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug (or an input we did not foresee): one line, not a traceback, in pipelines
        if os.environ.get("ANALYZER_DEBUG"):
            raise
        message = " ".join(_printable(str(exc)).split())[:300]
        print(
            f"internal error: {type(exc).__name__}: {message} (set ANALYZER_DEBUG=1 for the traceback)", file=sys.stderr
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
