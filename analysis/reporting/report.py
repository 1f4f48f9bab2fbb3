"""One `Report` built from a `RunAnalysis`, rendered three ways (Markdown, JSON, self-contained HTML).

Every format is rendered from the same plain-data fields of the `Report`, so the numbers agree. The JSON form is a
stable contract (`SCHEMA_VERSION`, JSON Schema in `analysis/reporting/templates/report.schema.json`); non-finite numbers are
written as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` so the file is always valid JSON.

The HTML form works offline: plotly.js is inlined once (gzip + base64, unpacked in the browser with
`DecompressionStream`), curves are decimated for drawing while every finding is listed exactly, and the worst
images appear as small JPEG data URIs. All untrusted text (run names, config values, metric keys, file names) is
escaped in HTML (Jinja2 autoescape, JSON in `<script>` with `<`, `>` and `&` escaped) and in Markdown.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gzip
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.core.errors import AnalyzerError, ImageLoadError
from analysis.core.records import SEVERITY_RANK

if TYPE_CHECKING:  # pragma: no cover
    from analysis.findings.pipeline import RunAnalysis

SCHEMA_VERSION = "1.0"
FORMATS = ("markdown", "json", "html")
EXTENSIONS = {"markdown": "md", "json": "json", "html": "html"}
FORMAT_ALIASES = {"md": "markdown", "markdown": "markdown", "json": "json", "html": "html", "htm": "html"}

TEMPLATES = Path(__file__).with_name("templates")
SCHEMA_PATH = TEMPLATES / "report.schema.json"

MAX_THUMBNAILS = 100
THUMBNAIL_SIDE = 160  # px, longest side
THUMBNAIL_QUALITY = 70  # JPEG quality
THUMBNAILS_MAX_BYTES = 1_000_000  # all thumbnails together (JPEG bytes; ~1.33 MB as base64)
MAX_CURVE_BATCHES = 12  # batches drawn in the curves chart (the worst ones)
CURVE_MAX_POINTS = 1000  # points per drawn curve; findings are never decimated
HEATMAP_MAX_COLUMNS = 200  # step bins in the heatmap
MAX_GLOBAL_METRICS = 6  # run-level metrics drawn (val/*, train/*)
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|webhook|credential|auth)", re.I)
_REDACTED = "<redacted>"
_NON_FINITE = {"NaN", "Infinity", "-Infinity"}


# ----------------------------------------------------------------------------------------------- plain data


def plain(obj: Any) -> Any:
    """JSON-able plain data: numpy/pandas scalars unwrapped, NA -> None, NaN/Inf -> "NaN"/"Infinity"."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray, pd.Series)):
        return [plain(v) for v in list(obj)]
    if isinstance(obj, (set, frozenset)):
        return sorted((plain(v) for v in obj), key=str)
    if is_dataclass(obj) and not isinstance(obj, type):
        return plain(asdict(obj))
    if isinstance(obj, (dt.datetime, dt.date, pd.Timestamp)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    try:
        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return str(obj)


def _num(v: Any) -> float | None:
    """A float (NaN/Inf kept) or None for missing values."""
    if v is None:
        return None
    if isinstance(v, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        return None
    return float(v)


def _int(v: Any) -> int | None:
    try:
        if v is None or pd.isna(v):
            return None
    except (TypeError, ValueError):
        return None
    return int(v)


def redact(data: Any) -> Any:
    """Replace values under secret-looking keys (password, token, webhook, ...) with a placeholder."""
    if isinstance(data, dict):
        return {
            k: (_REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)) for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def fmt(v: Any, digits: int = 4) -> str:
    """The one number formatter used by Markdown and HTML, so both show the same digits."""
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.{digits}g}"


def _safe_name(name: str) -> str:
    """A file-name-safe version of a run name (letters, digits, `-`, `_`, `.`), never empty or hidden."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return s[:100] or "run"


# ----------------------------------------------------------------------------------------------- the report


@dataclass
class Thumbnail:
    """A small JPEG of one of the worst images, embedded in the HTML as a data URI."""

    path: str
    batch: int | None
    reasons: list[str]
    data_uri: str
    caption: str


@dataclass
class Report:
    """Everything a report says, as plain data; `to_markdown` / `to_json` / `to_html` only render it."""

    run: dict
    config: dict
    summary: dict
    problematic_batches: list[dict]
    anomalies: list[dict]
    change_points: list[dict]
    quality: dict | None
    root_causes: list[dict]
    generated_at: str
    schema_version: str = SCHEMA_VERSION
    thumbnails: list[Thumbnail] = field(default_factory=list, repr=False)
    charts: list[dict] = field(default_factory=list, repr=False)  # {"id", "title", "figure": plotly JSON str}

    # ------------------------------------------------------------------ building

    @classmethod
    def from_analysis(
        cls,
        analysis: RunAnalysis,
        *,
        data_dir: str | Path | None = None,
        max_thumbnails: int = MAX_THUMBNAILS,
        charts: bool = True,
    ) -> Report:
        """Collect the run identity, config, findings, quality summary and root causes of one analysis.

        `data_dir` (default: the analysis' own) is where the image paths live; with it the HTML shows thumbnails
        of the worst images. `charts=False` skips the plotly figures (faster; the HTML then has tables only).
        """
        quality = _quality_section(analysis)
        data_dir = data_dir if data_dir is not None else getattr(analysis, "data_dir", None)
        thumbs = []
        if data_dir is not None and quality and max_thumbnails > 0:
            thumbs = make_thumbnails(Path(data_dir), quality["worst_images"][:max_thumbnails])
        report = cls(
            run=_run_section(analysis.run),
            config=analysis.config.public_dict(),
            summary=_summary_section(analysis),
            problematic_batches=_problem_batches_section(analysis),
            anomalies=sorted(
                (plain(a.to_dict()) for a in analysis.anomalies),
                key=lambda a: (-SEVERITY_RANK.get(a["severity"], 0), a["step"], str(a["batch"]), a["metric"]),
            ),
            change_points=[plain(c.to_dict()) for c in analysis.change_points],
            quality=quality,
            root_causes=[plain(r.to_dict()) for r in sorted(analysis.root_causes, key=lambda r: -r.score)],
            generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            thumbnails=thumbs,
        )
        if charts:
            report.charts = build_charts(analysis)
        return report

    @property
    def run_name(self) -> str:
        return str(self.run.get("name") or self.run.get("id") or "run")

    @property
    def severity(self) -> str:
        return str(self.summary.get("severity", "ok"))

    def reaches(self, level: str) -> bool:
        """True when the report's worst finding is at least `level` ('warning' or 'critical')."""
        if level == "never":
            return False
        return _SEVERITY_ORDER[self.severity] >= _SEVERITY_ORDER[level]

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        """The JSON document as plain data (documented by `report.schema.json`)."""
        return plain(
            {
                "schema_version": self.schema_version,
                "generated_at": self.generated_at,
                "run": self.run,
                "config": self.config,
                "summary": self.summary,
                "problematic_batches": self.problematic_batches,
                "anomalies": self.anomalies,
                "change_points": self.change_points,
                "quality": self.quality,
                "root_causes": self.root_causes,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON (no NaN/Infinity literals: non-finite numbers are the strings "NaN"/"Infinity")."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Rebuild a report from its JSON (charts and thumbnails are not part of the JSON)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AnalyzerError(f"not a report JSON: {exc}") from None
        if not isinstance(data, dict) or "schema_version" not in data:
            raise AnalyzerError("not a report JSON: no schema_version")
        major = str(data["schema_version"]).split(".")[0]
        if major != SCHEMA_VERSION.split(".")[0]:
            raise AnalyzerError(
                f"report schema {data['schema_version']} is not supported (this version reads {SCHEMA_VERSION})"
            )
        return cls(
            **{
                k: data[k]
                for k in (
                    "run",
                    "config",
                    "summary",
                    "problematic_batches",
                    "anomalies",
                    "change_points",
                    "quality",
                    "root_causes",
                    "generated_at",
                    "schema_version",
                )
            }
        )

    # ------------------------------------------------------------------ Markdown

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown, also readable in a terminal; untrusted text is escaped."""
        return _render_markdown(self)

    # ------------------------------------------------------------------ HTML

    def to_html(self) -> str:
        """One self-contained HTML file (no network): inlined plotly.js, charts, tables, thumbnails."""
        return _render_html(self)


_SEVERITY_ORDER = {"ok": 0, "info": 0, "warning": 1, "critical": 2}


def write_reports(
    report: Report, output_dir: str | Path, formats: Iterable[str] = ("markdown", "json", "html")
) -> dict[str, Path]:
    """Write `<run-name-safe>_report.<md|json|html>` files; returns {format: path}. Creates `output_dir`."""
    wanted = normalise_formats(formats)
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalyzerError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    stem = f"{_safe_name(report.run_name)}_report"
    written: dict[str, Path] = {}
    for name in wanted:
        text = {"markdown": report.to_markdown, "json": report.to_json, "html": report.to_html}[name]()
        path = out / f"{stem}.{EXTENSIONS[name]}"
        tmp = path.with_name(path.name + ".tmp")
        # file names that are not valid UTF-8 reach us as lone surrogates (os.fsdecode): they cannot be encoded
        data = text.encode("utf-8", errors="replace")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)  # never leave a half-written report behind
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AnalyzerError(f"cannot write {path}: {exc.strerror or exc}") from None
        written[name] = path
    return written


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


# ----------------------------------------------------------------------------------------------- sections


def _run_section(run: Any) -> dict:
    ref = run.ref
    status = run.status
    history = run.history
    return plain(
        {
            "id": ref.run_id,
            "name": ref.name,
            "project": ref.project,
            "entity": ref.entity,
            "source": ref.source,
            "locator": ref.locator,
            "state": ref.state,
            "created": ref.created,
            "tags": list(run.tags),
            "notes": run.notes,
            "exit_code": run.exit_code,
            "n_history_rows": len(history),
            "step_axis": run.step_column if len(history.columns) else "_step",
            "read_status": {
                "clean": status.clean,
                "truncated": status.truncated,
                "skipped_records": status.skipped_records,
                "errors": list(status.errors),
            },
            "config": redact(plain(run.config)),
        }
    )


def _summary_section(analysis: RunAnalysis) -> dict:
    b = analysis.batches
    steps = b["step"] if len(b) else pd.Series(dtype="float64")
    by_sev = Counter(a.severity for a in analysis.anomalies)
    bs = analysis.batch_summary
    sev_batches = Counter(bs["severity"]) if len(bs) else Counter()
    severities = (
        [a.severity for a in analysis.anomalies]
        + [c.severity for c in analysis.change_points]
        + list(bs["severity"] if len(bs) else [])
    )
    worst = max((_SEVERITY_ORDER.get(s, 0) for s in severities), default=0)
    return plain(
        {
            "verdict": analysis.verdict,
            "severity": ["ok", "warning", "critical"][worst],
            "n_steps": int(steps.nunique()) if len(steps) else 0,
            "first_step": _int(steps.min()) if len(steps) else None,
            "last_step": _int(steps.max()) if len(steps) else None,
            "n_batches": int(b["batch"].nunique()) if len(b) else 0,
            "batch_metrics": sorted(b["metric"].unique().tolist()) if len(b) else [],
            "global_metrics": sorted(analysis.global_metrics["metric"].unique().tolist())
            if len(analysis.global_metrics)
            else [],
            "n_problematic_batches": len(analysis.problematic_batches),
            "batches_by_severity": {s: int(sev_batches.get(s, 0)) for s in ("ok", "warning", "critical")},
            "n_anomalies": len(analysis.anomalies),
            "anomalies_by_severity": {s: int(by_sev.get(s, 0)) for s in ("info", "warning", "critical")},
            "n_change_points": len(analysis.change_points),
            "n_root_causes": len(analysis.root_causes),
            "n_problem_images_logged": len(analysis.images),
        }
    )


def _lower_is_better(metric: str, config: Any) -> bool:
    directions = config.anomaly.metric_directions
    name = metric.rsplit("/", 1)[-1]
    d = directions.get(metric) or directions.get(name)
    if d:
        return d == "lower_is_better"
    return any(t in name.lower() for t in ("loss", "error", "cer", "wer"))


def _worst_values(frame: pd.DataFrame, config: Any) -> dict:
    """{metric: {"value", "step"}} of the worst finite value of each metric in a batch's rows."""
    out = {}
    for metric, g in frame.groupby("metric", sort=True):
        vals = pd.to_numeric(g["value"], errors="coerce")
        nonfinite = g[~np.isfinite(vals.to_numpy(dtype="float64", na_value=np.nan))]
        if len(nonfinite):  # a NaN/Inf is always the worst value: report it explicitly
            row = nonfinite.iloc[0]
            out[str(metric)] = {"value": float(row["value"]), "step": _int(row["step"])}
            continue
        idx = vals.idxmax() if _lower_is_better(str(metric), config) else vals.idxmin()
        out[str(metric)] = {"value": float(vals[idx]), "step": _int(g.loc[idx, "step"])}
    return out


def _problem_batches_section(analysis: RunAnalysis) -> list[dict]:
    bs = analysis.batch_summary
    if not len(bs):
        return []
    wanted = set(analysis.problematic_batches)
    batches = analysis.batches
    causes: dict[int, list[str]] = {}
    for rc in sorted(analysis.root_causes, key=lambda r: -r.score):
        if rc.batch is not None:
            causes.setdefault(int(rc.batch), []).append(rc.sentence)
    reasons = _quality_reasons_by_batch(analysis.quality)
    wanted_rows = batches[batches["batch"].isin(wanted)] if len(batches) else batches
    by_batch = {int(b): g for b, g in wanted_rows.groupby("batch", sort=False)}
    out = []
    for row in bs.itertuples(index=False):
        batch = int(row.batch)
        if batch not in wanted:
            continue
        rows = by_batch.get(batch, batches.iloc[:0])
        out.append(
            plain(
                {
                    "batch": batch,
                    "severity": row.severity,
                    "first_bad_step": _step_or_none(row.first_bad_step),
                    "worst_step": _step_or_none(row.worst_step),
                    "worst_recall": _num(row.worst_recall),
                    "last_recall": _num(row.last_recall),
                    "worst_values": _worst_values(rows, analysis.config) if len(rows) else {},
                    "n_anomalies": _int(row.n_anomalies) or 0,
                    "n_change_points": _int(row.n_change_points) or 0,
                    "n_problem_images": _int(row.n_problem_images) or 0,
                    "quality_reasons": reasons.get(batch, {}),
                    "root_causes": causes.get(batch, []),
                }
            )
        )
    return out


def _step_or_none(v: Any) -> int | None:
    """batch_summary uses -1 for "no such step"."""
    i = _int(v)
    return None if i is None or i < 0 else i


def _reasons_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v else []
    try:
        return [str(x) for x in list(v)]
    except TypeError:
        return []


def _quality_reasons_by_batch(q: pd.DataFrame | None) -> dict[int, dict[str, int]]:
    if q is None or not len(q) or "batch" not in q.columns or "reasons" not in q.columns:
        return {}
    out: dict[int, Counter] = {}
    for batch, reasons in zip(q["batch"], q["reasons"]):
        b = _int(batch)
        if b is None:
            continue
        c = out.setdefault(b, Counter())
        for r in _reasons_list(reasons):
            c[_reason_kind(r)] += 1
    return {b: dict(c.most_common()) for b, c in out.items()}


def _reason_kind(reason: str) -> str:
    """Group reasons by their leading word ('blurry (blur_score 12 < 100)' -> 'blurry')."""
    return re.split(r"[\s:(]", reason.strip(), maxsplit=1)[0] or reason


def _is_acceptable(q: pd.DataFrame) -> pd.Series:
    if "is_acceptable" in q.columns:
        return q["is_acceptable"].fillna(False).astype(bool)
    return pd.Series(True, index=q.index)


def _errors(q: pd.DataFrame) -> pd.Series:
    if "error" in q.columns:
        return q["error"].notna() & (q["error"].astype("string").fillna("") != "")
    return pd.Series(False, index=q.index)


def rank_worst_images(q: pd.DataFrame) -> pd.DataFrame:
    """Quality rows worst first: rejected before accepted, more reasons first, then lowest blur score."""
    if not len(q):
        return q
    key = pd.DataFrame(
        {
            "ok": _is_acceptable(q).astype(int),
            "n": -q["reasons"].map(lambda r: len(_reasons_list(r))) if "reasons" in q.columns else 0,
            "blur": pd.to_numeric(q["blur_score"], errors="coerce") if "blur_score" in q.columns else 0.0,
        },
        index=q.index,
    )
    order = key.sort_values(["ok", "n", "blur"], kind="stable", na_position="last").index
    return q.loc[order]


def _quality_section(analysis: RunAnalysis) -> dict | None:
    q = analysis.quality
    if q is None:
        return None
    dq = analysis.config.data_quality
    ok = _is_acceptable(q)
    err = _errors(q)
    reasons = Counter()
    if "reasons" in q.columns:
        for r in q["reasons"]:
            for x in _reasons_list(r):
                reasons[_reason_kind(x)] += 1
    columns = {}
    for col in q.columns:
        if col in ("path", "batch", "is_acceptable", "reasons", "error") or not pd.api.types.is_numeric_dtype(q[col]):
            continue
        vals = pd.to_numeric(q[col], errors="coerce").dropna()
        if len(vals):
            columns[str(col)] = {"min": float(vals.min()), "median": float(vals.median()), "max": float(vals.max())}
    by_batch = []
    if "batch" in q.columns and len(q):
        grp = pd.DataFrame({"batch": q["batch"], "rejected": ~ok}).dropna(subset=["batch"])
        for batch, g in grp.groupby("batch", sort=True):
            by_batch.append({"batch": int(batch), "n_images": len(g), "n_rejected": int(g["rejected"].sum())})
    worst = rank_worst_images(q[~ok]) if len(q) else q
    worst_rows = []
    for row in worst.head(MAX_THUMBNAILS).to_dict("records"):
        worst_rows.append(
            plain(
                {
                    "path": str(row.get("path")),
                    "batch": _int(row.get("batch")),
                    "reasons": _reasons_list(row.get("reasons")),
                    "error": row.get("error") or None,
                    **{c: _num(row.get(c)) for c in ("width", "height", "blur_score", "rotation_angle") if c in row},
                }
            )
        )
    n = len(q)
    return plain(
        {
            "n_images": n,
            "n_acceptable": int(ok.sum()),
            "n_rejected": int((~ok).sum()),
            "n_errors": int(err.sum()),
            "acceptable_rate": (float(ok.sum()) / n) if n else None,
            "thresholds": {
                "min_resolution": list(dq.min_resolution),
                "max_rotation_degrees": dq.max_rotation_degrees,
                "blur_threshold": dq.blur_threshold,
                "min_contrast": getattr(dq, "min_contrast", None),
            },
            "reasons": dict(reasons.most_common()),
            "columns": columns,
            "by_batch": by_batch,
            "worst_images": worst_rows,
        }
    )


# ----------------------------------------------------------------------------------------------- thumbnails


def _load_rgb(data_dir: Path, rel: str) -> np.ndarray:
    """An 8-bit RGB array of an image confined to `data_dir` (the project's safe loader: typed errors)."""
    from quality import io as qio

    arr = qio.load_image(qio.resolve_under_root(data_dir, rel))
    if arr.dtype != np.uint8:
        top = float(np.nanmax(arr)) if arr.size else 0.0
        arr = (arr.astype("float64") * (255.0 / top if top > 0 else 0.0)).clip(0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.stack([arr] * 3, axis=-1)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1])  # OpenCV BGR -> RGB


def _jpeg(img, max_bytes: int) -> bytes:
    """The image as JPEG, stepping quality then size down until it fits `max_bytes` (or the last step)."""
    steps = [(THUMBNAIL_SIDE, THUMBNAIL_QUALITY), (THUMBNAIL_SIDE, 50), (120, 45), (96, 40)]
    data = b""
    for side, quality in steps:
        im = img.copy()
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality, optimize=True)
        data = buf.getvalue()
        if len(data) <= max_bytes:
            break
    return data


def make_thumbnails(data_dir: Path, rows: list[dict], total_bytes: int = THUMBNAILS_MAX_BYTES) -> list[Thumbnail]:
    """Small JPEG data URIs of the given quality rows; unreadable images are skipped, never fatal.

    Each thumbnail gets an equal share of `total_bytes` (JPEG bytes), so 100 noisy photos cannot blow the HTML
    size budget: a thumbnail over its share is re-encoded at lower quality, then smaller."""
    from PIL import Image

    share = max(total_bytes // max(len(rows), 1), 2_000)
    thumbs = []
    for row in rows:
        try:
            img = Image.fromarray(_load_rgb(data_dir, row["path"]))
        except (ImageLoadError, OSError, ValueError):
            continue
        uri = "data:image/jpeg;base64," + base64.b64encode(_jpeg(img, share)).decode("ascii")
        caption = "; ".join(row.get("reasons") or []) or "rejected"
        thumbs.append(
            Thumbnail(
                path=row["path"],
                batch=row.get("batch"),
                reasons=list(row.get("reasons") or []),
                data_uri=uri,
                caption=caption,
            )
        )
    return thumbs


# ----------------------------------------------------------------------------------------------- charts


def build_charts(analysis: RunAnalysis) -> list[dict]:
    """Plotly figures for the HTML report, decimated for drawing: curves, heatmap, score histograms."""
    import plotly.io as pio

    from analysis.reporting import figures

    charts = []
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
        val = [m for m in names if m.startswith(("val/", "valid/", "eval/"))]  # one scale: 0..1 quality metrics
        names = (val or names)[:MAX_GLOBAL_METRICS]
        fig = figures.global_metrics_figure(analysis, names, max_points=CURVE_MAX_POINTS)
        charts.append({"id": "chart-global", "title": "Run-level metrics", "figure": fig})
    q = analysis.quality
    if q is not None and len(q):
        dq = analysis.config.data_quality
        # (column, threshold, side that fails); resolution only when some image fails it
        hists = [
            ("blur_score", dq.blur_threshold, "below"),
            ("rotation_angle", dq.max_rotation_degrees, "above (absolute angle)"),
            ("contrast", getattr(dq, "min_contrast", None), "below"),
        ]
        reasons = " ".join(" ".join(_reasons_list(r)) for r in q.get("reasons", pd.Series(dtype=object)))
        if "resolution" in reasons:
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


# ----------------------------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&$#!])")


# C0/C1 controls (ESC starts terminal escape sequences), DEL, and bidi/zero-width format characters that can
# make a name display as something else (U+202E reverses the text after it).
_MD_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+")


def md_escape(text: Any) -> str:
    """Escape untrusted text for Markdown (inline and table cells): no HTML, links, emphasis or breaks, and no
    control characters (a report is also read with `cat` in a terminal, where ESC sequences would run)."""
    s = str(text if text is not None else "")
    s = _MD_CONTROL.sub(" ", s)
    return _MD_SPECIAL.sub(r"\\\1", s)


def _md_code_block(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _worst_values_text(wv: dict) -> str:
    return ", ".join(f"{k} {fmt(v.get('value'))} @ {fmt(v.get('step'))}" for k, v in wv.items())


def _render_markdown(r: Report) -> str:
    import yaml

    run, s = r.run, r.summary
    out = [f"# Experiment report: {md_escape(r.run_name)}", ""]
    out.append(f"**Verdict ({s.get('severity', 'ok')}):** {md_escape(s.get('verdict', ''))}")
    out.append("")
    ident = [
        ["Run", md_escape(run.get("name"))],
        ["Run id", md_escape(run.get("id"))],
        ["Project", md_escape("/".join(x for x in (run.get("entity"), run.get("project")) if x) or "—")],
        ["State", md_escape(run.get("state"))],
        ["Source", md_escape(f"{run.get('source')}: {run.get('locator')}")],
        ["Steps", f"{fmt(s.get('n_steps'))} ({fmt(s.get('first_step'))} – {fmt(s.get('last_step'))})"],
        ["Batches", fmt(s.get("n_batches"))],
        ["Anomalies", _with_counts(s.get("n_anomalies"), s.get("anomalies_by_severity", {}))],
        ["Change points", fmt(s.get("n_change_points"))],
        ["Generated", md_escape(r.generated_at)],
    ]
    rs = run.get("read_status") or {}
    if rs and not rs.get("clean", True):
        ident.append(
            ["Read status", md_escape(f"truncated={rs.get('truncated')}, skipped records={rs.get('skipped_records')}")]
        )
    if rs.get("errors"):  # e.g. "resumed run: merged 1 earlier session folder(s)", or what a damaged read lost
        ident.append(["Read notes", md_escape("; ".join(map(str, rs["errors"][:5])))])
    out += [_md_table(["", ""], ident), ""]

    out += [f"## Problematic batches ({len(r.problematic_batches)})", ""]
    if r.problematic_batches:
        rows = [
            [
                fmt(p["batch"]),
                p["severity"],
                fmt(p["first_bad_step"]),
                f"{fmt(p['worst_recall'])} @ {fmt(p['worst_step'])}",
                fmt(p["last_recall"]),
                fmt(p["n_anomalies"]),
                fmt(p["n_change_points"]),
                fmt(p["n_problem_images"]),
                md_escape(_counts_text(p.get("quality_reasons", {})) or "—"),
            ]
            for p in r.problematic_batches
        ]
        out += [
            _md_table(
                [
                    "Batch",
                    "Severity",
                    "First bad step",
                    "Worst recall @ step",
                    "Last recall",
                    "Anomalies",
                    "Change points",
                    "Problem images",
                    "Image issues",
                ],
                rows,
            ),
            "",
        ]
    else:
        out += ["No problematic batches.", ""]

    out += [f"## Root causes ({len(r.root_causes)})", ""]
    if r.root_causes:
        for rc in r.root_causes:
            where = f"batch {fmt(rc.get('batch'))}" if rc.get("batch") is not None else "run"
            out.append(
                f"- **{where}** ({md_escape(rc.get('side'))}, score {fmt(rc.get('score'))}): "
                f"{md_escape(rc.get('sentence'))}"
            )
        out.append("")
    else:
        out += ["No root causes identified.", ""]

    out += ["## Findings", "", f"### Anomalies ({len(r.anomalies)})", ""]
    if r.anomalies:
        rows = [
            [
                fmt(a["step"]) + (f"–{fmt(a['end_step'])}" if a.get("end_step") is not None else ""),
                fmt(a.get("batch")),
                md_escape(a["metric"]),
                fmt(a["value"]),
                md_escape(a["detector"]),
                a["severity"],
                fmt(a["score"]),
                md_escape(a["message"]),
            ]
            for a in r.anomalies
        ]
        out += [_md_table(["Step", "Batch", "Metric", "Value", "Detector", "Severity", "Score", "Message"], rows), ""]
    else:
        out += ["No anomalies.", ""]
    out += [f"### Change points ({len(r.change_points)})", ""]
    if r.change_points:
        rows = [
            [
                fmt(c["step"]),
                fmt(c.get("batch")),
                md_escape(c["metric"]),
                fmt(c["mean_before"]),
                fmt(c["mean_after"]),
                fmt(c["delta"]),
                str(c.get("severity", "")),
            ]
            for c in r.change_points
        ]
        out += [_md_table(["Step", "Batch", "Metric", "Mean before", "Mean after", "Delta", "Severity"], rows), ""]
    else:
        out += ["No change points.", ""]

    out += ["## Data quality", ""]
    q = r.quality
    if q is None:
        out += ["No data directory was given, so images were not scored.", ""]
    else:
        out.append(
            f"{fmt(q['n_images'])} images scored: {fmt(q['n_acceptable'])} acceptable, "
            f"{fmt(q['n_rejected'])} rejected, {fmt(q['n_errors'])} unreadable "
            f"(acceptable rate {fmt(q['acceptable_rate'])})."
        )
        out.append("")
        th = q.get("thresholds", {})
        out.append("Thresholds: " + md_escape(", ".join(f"{k} {v}" for k, v in th.items())))
        out.append("")
        if q.get("reasons"):
            out += [_md_table(["Reason", "Images"], [[md_escape(k), fmt(v)] for k, v in q["reasons"].items()]), ""]
        if q.get("columns"):
            out += [
                _md_table(
                    ["Score", "Min", "Median", "Max"],
                    [[md_escape(k), fmt(v["min"]), fmt(v["median"]), fmt(v["max"])] for k, v in q["columns"].items()],
                ),
                "",
            ]
        if q.get("worst_images"):
            out += [f"Worst images ({len(q['worst_images'])}):", ""]
            out += [
                _md_table(
                    ["Path", "Batch", "Reasons"],
                    [
                        [md_escape(w["path"]), fmt(w.get("batch")), md_escape("; ".join(w["reasons"]) or "—")]
                        for w in q["worst_images"]
                    ],
                ),
                "",
            ]

    out += [
        "## Configuration",
        "",
        "<details><summary>Analysis configuration (secrets omitted)</summary>",
        "",
        _md_code_block(yaml.safe_dump(r.config, sort_keys=False).rstrip(), "yaml"),
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)


def _with_counts(total: Any, counts: dict) -> str:
    detail = _counts_text(counts)
    return f"{fmt(total)} ({md_escape(detail)})" if detail else fmt(total)


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v)


# ----------------------------------------------------------------------------------------------- HTML


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
def _jinja_env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = fmt
    env.filters["counts"] = _counts_text
    env.filters["worst_values"] = _worst_values_text
    return env


def _render_html(r: Report) -> str:
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
        charts=charts,
        config_yaml=yaml.safe_dump(r.config, sort_keys=False),
        plotly_gz=plotly_js_gzip_b64() if charts else "",
    )
