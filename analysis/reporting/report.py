"""One `Report` built from a `RunAnalysis`, rendered three ways (Markdown, JSON, self-contained HTML).

This module is the public import path; the work lives in one module per job:

- `model`: the `Report` dataclass, `from_analysis`, JSON (`SCHEMA_VERSION`), `write_reports`, `normalise_formats`
- `sections`: run identity, summary and problematic-batch sections (worst values follow the metric's direction)
- `quality_summary`: the image-quality section (reasons grouped by `QualityReason` code), `rank_worst_images`
- `thumbnails`: small JPEG data URIs of the worst images
- `markdown`: Markdown rendering and `md_escape`
- `html`: Jinja2 rendering, chart building, inlined plotly.js
- `values`: plain-data conversion (`plain`), the number formatter (`fmt`), secret redaction
"""

from __future__ import annotations

from analysis.reporting.html import (
    CURVE_MAX_POINTS,
    HEATMAP_MAX_COLUMNS,
    MAX_CURVE_BATCHES,
    MAX_GLOBAL_METRICS,
    TEMPLATES,
    build_charts,
    plotly_js_gzip_b64,
)
from analysis.reporting.markdown import md_escape
from analysis.reporting.model import (
    EXTENSIONS,
    FORMAT_ALIASES,
    FORMATS,
    MAX_THUMBNAILS,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    Report,
    normalise_formats,
    write_reports,
)
from analysis.reporting.quality_summary import rank_worst_images
from analysis.reporting.thumbnails import (
    THUMBNAIL_QUALITY,
    THUMBNAIL_SIDE,
    THUMBNAILS_MAX_BYTES,
    Thumbnail,
    make_thumbnails,
)
from analysis.reporting.values import fmt, plain, redact

__all__ = [
    "CURVE_MAX_POINTS",
    "EXTENSIONS",
    "FORMATS",
    "FORMAT_ALIASES",
    "HEATMAP_MAX_COLUMNS",
    "MAX_CURVE_BATCHES",
    "MAX_GLOBAL_METRICS",
    "MAX_THUMBNAILS",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "TEMPLATES",
    "THUMBNAILS_MAX_BYTES",
    "THUMBNAIL_QUALITY",
    "THUMBNAIL_SIDE",
    "Report",
    "Thumbnail",
    "build_charts",
    "fmt",
    "make_thumbnails",
    "md_escape",
    "normalise_formats",
    "plain",
    "plotly_js_gzip_b64",
    "rank_worst_images",
    "redact",
    "write_reports",
]
