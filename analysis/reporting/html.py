"""The self-contained HTML rendering of a `Report`: Jinja2 template, embedded plotly charts, inlined plotly.js.

It works offline: plotly.js is inlined once (gzip + base64, unpacked in the browser with `DecompressionStream`),
curves are decimated for drawing while every finding is listed exactly, and the worst images appear as small JPEG
data URIs. Untrusted text is escaped by Jinja2 autoescape; chart JSON inside `<script>` has `<`, `>` and `&`
escaped so it can never close its element.
"""

from __future__ import annotations

import base64
import functools
import gzip
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.core.vocabulary import QualityReason, run_metrics_to_draw
from analysis.reporting.markdown import counts_text, primary_metric_name, reason_counts_text, worst_values_text
from analysis.reporting.quality_summary import has_reason, reason_label
from analysis.reporting.values import fmt, fmt_change

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from analysis.findings.pipeline import RunAnalysis
    from analysis.reporting.document import ReportData

__all__ = [
    "CURVE_MAX_POINTS",
    "HEATMAP_MAX_COLUMNS",
    "MAX_CURVE_BATCHES",
    "MAX_GLOBAL_METRICS",
    "TEMPLATES",
    "build_charts",
    "plotly_js_gzip_b64",
    "render_html",
]

TEMPLATES = Path(__file__).with_name("templates")
MAX_CURVE_BATCHES = 12  # batches drawn in the curves chart (the worst ones)
CURVE_MAX_POINTS = 1000  # points per drawn curve; findings are never decimated
HEATMAP_MAX_COLUMNS = 200  # step bins in the heatmap
MAX_GLOBAL_METRICS = 6  # run-level metrics drawn (val/*, train/*)


def build_charts(analysis: RunAnalysis) -> list[dict[str, Any]]:
    """Plotly figures for the HTML report, decimated for drawing: curves, heatmap, score histograms.

    Each chart is {"id", "title", "figure": plotly JSON text}."""
    import plotly.io as pio

    from analysis.reporting import figures

    charts: list[dict[str, Any]] = []
    if len(analysis.batches):
        metric = analysis.primary_metric
        worst = list(analysis.problematic_batches)[:MAX_CURVE_BATCHES]
        if not worst and len(analysis.batch_summary):
            worst = [int(x) for x in analysis.batch_summary["batch"].head(5)]
        fig = figures.batch_curves_figure(analysis, metric=metric, batches=worst, max_points=CURVE_MAX_POINTS)
        charts.append({"id": "chart-curves", "title": f"Batch {metric} over steps", "figure": fig})
        fig = figures.heatmap_figure(analysis, metric=metric, max_columns=HEATMAP_MAX_COLUMNS)
        charts.append({"id": "chart-heatmap", "title": f"{metric} by batch and step", "figure": fig})
    g = analysis.global_metrics
    if len(g):
        names = sorted(g["metric"].unique().tolist())
        names = run_metrics_to_draw(names, analysis.alarmed_run_metrics, analysis.config.anomaly.metric_directions)
        names = names[:MAX_GLOBAL_METRICS]
        fig = figures.global_metrics_figure(analysis, names, max_points=CURVE_MAX_POINTS)
        charts.append({"id": "chart-global", "title": "Run-level metrics", "figure": fig})
    q = analysis.quality
    if q is not None and len(q):
        dq = analysis.config.data_quality
        # (column, threshold, side that fails); resolution only when some image fails it
        hists: list[tuple[str, float | None, str]] = [
            ("blur_score", dq.blur_threshold, "below"),
            ("rotation_angle", dq.max_rotation_degrees, "above (absolute angle)"),
            ("contrast", getattr(dq, "min_contrast", None), "below"),
        ]
        if has_reason(q, QualityReason.RESOLUTION):
            hists += [("width", dq.min_resolution[0], "below"), ("height", dq.min_resolution[1], "below")]
        for col, threshold, side in hists:
            if col in q.columns and pd.to_numeric(q[col], errors="coerce").notna().any():
                fig = figures.score_histogram_figure(q, col, threshold=threshold or None, threshold_side=side)
                charts.append({"id": f"chart-hist-{col}", "title": f"{col} distribution", "figure": fig})
    for c in charts:
        c["figure"] = pio.to_json(c["figure"], validate=False)
    return charts


@functools.lru_cache(maxsize=1)
def plotly_js_gzip_b64() -> str:
    """plotly.min.js from the installed plotly package, gzipped and base64-encoded (cached)."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=9, mtime=0)).decode()


def _script_json(text: str) -> str:
    """JSON text safe inside a <script> element (no `</script>`, no `<!--`, no line separators)."""
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


@functools.lru_cache(maxsize=1)
def _jinja_env() -> jinja2.Environment:
    import jinja2

    from analysis.findings.compare_model import NOTHING_COMPARED_SENTENCE  # here, not at import: it loads scipy

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = fmt
    env.filters["fmt_change"] = fmt_change
    env.globals["nothing_compared"] = NOTHING_COMPARED_SENTENCE
    env.filters["counts"] = counts_text
    env.filters["reason_counts"] = reason_counts_text
    env.filters["reason_label"] = reason_label
    env.filters["worst_values"] = worst_values_text
    return env


def render_html(r: ReportData) -> str:
    """The whole HTML page; plotly.js is only embedded when there are charts to draw."""
    import markupsafe
    import yaml

    charts = [
        {"id": c["id"], "title": c["title"], "json": markupsafe.Markup(_script_json(c["figure"]))} for c in r.charts
    ]
    template = _jinja_env().get_template("report.html.j2")
    return template.render(
        r=r,
        run=r.run,
        s=r.summary,
        q=r.quality,
        metric=primary_metric_name(r),
        charts=charts,
        config_yaml=yaml.safe_dump(r.config, sort_keys=False),
        plotly_gz=plotly_js_gzip_b64() if charts else "",
    )
