"""The data of a report (`ReportData`): what every renderer reads, and its JSON form.

Renderers (`markdown.py`, `html.py`) depend on this module only, never on `model.py`, which builds a `Report`
from an analysis and calls them: so imports point one way. Non-finite numbers are written as the strings "NaN",
"Infinity" and "-Infinity" so the JSON is always valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from analysis.core.errors import AnalyzerError
from analysis.core.vocabulary import Severity, severity_rank
from analysis.reporting.thumbnails import Thumbnail
from analysis.reporting.values import plain

__all__ = ["SCHEMA_VERSION", "ReportData"]

# 1.1: problematic batches carry `metric`, `worst_value` and `last_value` (the primary metric, whatever it is);
# `worst_recall` / `last_recall` stay as deprecated aliases for this version. Quality reasons are keyed by code.
# 1.2: `events` (one per real change, with the detector hits that agree as evidence) come first; the summary counts
# them (`n_events`, `events_by_severity`) and its severity is decided by them. Additive: 1.1 documents still read.
# 1.3: `comparison` (null unless the report was made against a baseline run: the Comparison's own JSON form).
# 1.4: reason code `duplicate` and `summary.duplicates` (exact / near-duplicate images, when a data directory is known).
SCHEMA_VERSION = "1.4"

_JSON_FIELDS = (
    "run",
    "config",
    "summary",
    "events",
    "problematic_batches",
    "anomalies",
    "change_points",
    "quality",
    "root_causes",
    "generated_at",
    "schema_version",
    "comparison",
)
_OPTIONAL_FIELDS = {"events", "comparison"}  # absent from older documents

_R = TypeVar("_R", bound="ReportData")


@dataclass
class ReportData:
    """Everything a report says, as plain data (see `model.Report` for building and rendering it)."""

    run: dict[str, Any]
    config: dict[str, Any]
    summary: dict[str, Any]
    problematic_batches: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    change_points: list[dict[str, Any]]
    quality: dict[str, Any] | None
    root_causes: list[dict[str, Any]]
    generated_at: str
    schema_version: str = SCHEMA_VERSION
    events: list[dict[str, Any]] = field(default_factory=list)  # schema 1.2; empty in older documents
    comparison: dict[str, Any] | None = None  # schema 1.3: against a baseline run (Comparison.to_dict), when asked
    thumbnails: list[Thumbnail] = field(default_factory=list, repr=False)
    charts: list[dict[str, Any]] = field(default_factory=list, repr=False)  # {"id", "title", "figure": JSON str}

    @property
    def run_name(self) -> str:
        return str(self.run.get("name") or self.run.get("id") or "run")

    @property
    def severity(self) -> str:
        """The worst severity over every finding ('ok' when none)."""
        return str(self.summary.get("severity", "ok"))

    def reaches(self, level: str) -> bool:
        """True when the report's worst finding is at least `level` ('warning' or 'critical'; 'never': False)."""
        if level == "never":
            return False
        return severity_rank(self.severity) >= Severity.parse(level).rank

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as plain data (documented by `report.schema.json`)."""
        doc: dict[str, Any] = plain(
            {
                "schema_version": self.schema_version,
                "generated_at": self.generated_at,
                "run": self.run,
                "config": self.config,
                "summary": self.summary,
                "events": self.events,
                "problematic_batches": self.problematic_batches,
                "anomalies": self.anomalies,
                "change_points": self.change_points,
                "quality": self.quality,
                "root_causes": self.root_causes,
                "comparison": self.comparison,
            }
        )
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON (no NaN/Infinity literals: non-finite numbers are the strings "NaN"/"Infinity")."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)

    @classmethod
    def from_json(cls: type[_R], text: str) -> _R:
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
        return cls(**{k: data[k] for k in _JSON_FIELDS if k in data or k not in _OPTIONAL_FIELDS})
