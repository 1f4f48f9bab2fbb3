"""The `Report` model: everything a report says as plain data, built once from a `RunAnalysis`, and its JSON form.

Every format (Markdown, JSON, HTML) is rendered from the same plain-data fields, so the numbers agree. The JSON
form is a stable contract (`SCHEMA_VERSION`, JSON Schema in `templates/report.schema.json`); non-finite numbers
are written as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` so the file is always valid JSON.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.core.errors import AnalyzerError
from analysis.core.vocabulary import severity_rank
from analysis.findings.notebook import KeyFigure, key_figure, summary_html
from analysis.reporting.document import SCHEMA_VERSION, ReportData
from analysis.reporting.html import TEMPLATES, build_charts, render_html
from analysis.reporting.markdown import render_markdown
from analysis.reporting.quality_summary import MAX_WORST_IMAGES, quality_section
from analysis.reporting.sections import events_section, problem_batches_section, run_section, summary_section
from analysis.reporting.thumbnails import make_thumbnails
from analysis.reporting.values import plain, safe_name

if TYPE_CHECKING:  # pragma: no cover
    from analysis.findings.compare_model import Comparison
    from analysis.findings.pipeline import RunAnalysis

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "FORMAT_ALIASES",
    "MAX_THUMBNAILS",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "Report",
    "normalise_formats",
    "write_reports",
]

FORMATS = ("markdown", "json", "html")
EXTENSIONS = {"markdown": "md", "json": "json", "html": "html"}
FORMAT_ALIASES = {"md": "markdown", "markdown": "markdown", "json": "json", "html": "html", "htm": "html"}
SCHEMA_PATH = TEMPLATES / "report.schema.json"
MAX_THUMBNAILS = MAX_WORST_IMAGES


class Report(ReportData):
    """A report built from one analysis; `to_markdown` / `to_json` / `to_html` only render its data."""

    # the notebook figure's data (small: downsampled lines and event markers); None for a report read from JSON
    key_figure: KeyFigure | None = None

    @classmethod
    def from_analysis(
        cls,
        analysis: RunAnalysis,
        *,
        data_dir: str | Path | None = None,
        max_thumbnails: int = MAX_THUMBNAILS,
        charts: bool = True,
        comparison: Comparison | None = None,
    ) -> Report:
        """Collect the run identity, config, findings, quality summary and root causes of one analysis.

        `data_dir` (default: the analysis' own) is where the image paths live; with it the HTML shows thumbnails
        of the worst images. `charts=False` skips the plotly figures (faster; the HTML then has tables only).
        `comparison` (the run against a baseline, `compare_runs`) adds the comparison section.
        """
        quality = quality_section(analysis)
        data_dir = data_dir if data_dir is not None else getattr(analysis, "data_dir", None)
        thumbs = []
        if data_dir is not None and quality and max_thumbnails > 0:
            thumbs = make_thumbnails(Path(data_dir), quality["worst_images"][:max_thumbnails])
        report = cls(
            run=run_section(analysis.run),
            config=analysis.config.public_dict(),
            summary=summary_section(analysis),
            events=events_section(analysis),
            problematic_batches=problem_batches_section(analysis),
            anomalies=sorted(
                (plain(a.to_dict()) for a in analysis.anomalies),
                key=lambda a: (-severity_rank(a["severity"]), a["step"], str(a["batch"]), a["metric"]),
            ),
            change_points=[plain(c.to_dict()) for c in analysis.change_points],
            quality=quality,
            root_causes=[plain(r.to_dict()) for r in sorted(analysis.root_causes, key=lambda r: -r.score)],
            comparison=plain(comparison.to_dict()) if comparison is not None else None,
            generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            thumbnails=thumbs,
        )
        if charts:
            report.charts = build_charts(analysis)
        report.key_figure = key_figure(analysis)
        return report

    def _repr_html_(self) -> str:
        """Jupyter's rich display: run, verdict, counts, the key figure, top events and problematic batches."""
        s = self.summary
        counts = {
            "steps": s.get("n_steps", 0),
            "batches": s.get("n_batches", 0),
            "events": s.get("n_events", 0),
            "problematic batches": len(self.problematic_batches),
            "detector hits": s.get("n_anomalies", 0),
        }
        return summary_html(
            name=self.run_name,
            run_id=str(self.run.get("id") or ""),
            verdict=str(s.get("verdict", "")),
            severity=self.severity,
            counts=counts,
            events=self.events,
            problems=self.problematic_batches,
            figure=self.key_figure,
        )

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown, also readable in a terminal; untrusted text is escaped."""
        return render_markdown(self)

    def to_html(self) -> str:
        """One self-contained HTML file (no network): inlined plotly.js, charts, tables, thumbnails."""
        return render_html(self)


def normalise_formats(formats: Iterable[str] | str) -> list[str]:
    """['markdown', 'json', ...] from names or aliases ('md'), in the order given, without repeats."""
    if isinstance(formats, str):
        formats = formats.split(",")
    out: list[str] = []
    for f in formats:
        key = f.strip().lower()
        if not key:
            continue
        if key not in FORMAT_ALIASES:
            raise AnalyzerError(f"unknown report format {f.strip()!r}; choose from md, json, html")
        if FORMAT_ALIASES[key] not in out:
            out.append(FORMAT_ALIASES[key])
    if not out:
        raise AnalyzerError("no report format given; choose from md, json, html")
    return out


def write_reports(
    report: Report, output_dir: str | Path, formats: Iterable[str] = ("markdown", "json", "html")
) -> dict[str, Path]:
    """Write `<run-name>-<run-id>_report.<md|json|html>` files (see `safe_name`: two runs never share a name);
    returns {format: path}. Creates `output_dir` (`~` expanded). Each file is written to a temporary file of its
    own and renamed into place, so a reader never sees half a report and concurrent writers never collide."""
    wanted = normalise_formats(formats)
    out = Path(output_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalyzerError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    stem = f"{safe_name(report.run_name, str(report.run.get('id') or ''))}_report"
    written: dict[str, Path] = {}
    for name in wanted:
        text = {"markdown": report.to_markdown, "json": report.to_json, "html": report.to_html}[name]()
        path = out / f"{stem}.{EXTENSIONS[name]}"
        # file names that are not valid UTF-8 reach us as lone surrogates (os.fsdecode): they cannot be encoded
        data = text.encode("utf-8", errors="replace")
        tmp: Path | None = None
        try:
            with tempfile.NamedTemporaryFile(dir=out, prefix=f".{stem}.", suffix=".tmp", delete=False) as fh:
                tmp = Path(fh.name)
                fh.write(data)
            os.chmod(tmp, 0o644)  # what a plain write would give (mkstemp creates files private to the user)
            tmp.replace(path)  # never leave a half-written report behind
        except OSError as exc:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise AnalyzerError(f"cannot write {path}: {exc.strerror or exc}") from None
        written[name] = path
    return written
