"""The Markdown rendering of a `Report`: GitHub-flavoured, also readable with `cat` in a terminal.

Untrusted text (run names, metric keys, file names, messages) goes through `md_escape`: no HTML, links, images
(`![x](http://host/p.png)` would make a Markdown viewer fetch the URL), emphasis, table breaks or terminal control
characters survive. The dashboard escapes with the same function (`ui.format.md_escape`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from analysis.reporting.quality_summary import reason_label
from analysis.reporting.values import fmt, fmt_change

if TYPE_CHECKING:  # pragma: no cover
    from analysis.reporting.document import ReportData

__all__ = [
    "counts_text",
    "md_escape",
    "primary_metric_name",
    "reason_counts_text",
    "render_markdown",
    "worst_values_text",
]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&$#!])")
_AUTOLINK = re.compile(r"(?<=[A-Za-z0-9]):(?=//)|(?i:\bwww)\.")

# C0/C1 controls (ESC starts terminal escape sequences), DEL, and bidi/zero-width format characters that can
# make a name display as something else (U+202E reverses the text after it).
_MD_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+")


def md_escape(text: Any) -> str:
    """Escape untrusted text for Markdown (inline and table cells): no HTML, links, emphasis or breaks, and no
    control characters (a report is also read with `cat` in a terminal, where ESC sequences would run)."""
    s = str(text if text is not None else "")
    s = _MD_CONTROL.sub(" ", s)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    # GitHub-flavoured Markdown (GitHub, Streamlit) turns a bare `http://…` or `www.…` into a link that swallows the
    # escapes after it (they would show as backslashes): an escaped `:` / `.` there keeps the text literal
    return _AUTOLINK.sub(lambda m: m.group(0)[:-1] + "\\" + m.group(0)[-1], s)


def _md_code_block(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def worst_values_text(wv: dict[str, Any]) -> str:
    """'recall 0.55 @ 120, loss 3.2 @ 140': each metric's worst value and its step."""
    return ", ".join(f"{k} {fmt(v.get('value'))} @ {fmt(v.get('step'))}" for k, v in wv.items())


def counts_text(counts: dict[str, Any]) -> str:
    """'warning 3, critical 1': the non-zero counts."""
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v)


def reason_counts_text(counts: dict[str, Any]) -> str:
    """Image-quality reason counts with human names: 'low contrast 8, blurry 2'."""
    return counts_text({reason_label(k): v for k, v in counts.items()})


def _with_counts(total: Any, counts: dict[str, Any]) -> str:
    detail = counts_text(counts)
    return f"{fmt(total)} ({md_escape(detail)})" if detail else fmt(total)


def _events_count(alarms: Any, counts: dict[str, Any]) -> str:
    """'5 (warning 3, critical 2; 4 info notes not counted)': `n_events` counts warnings and criticals only, so its
    detail does too ("5 (info 4, warning 3, critical 2)" added up to 9)."""
    notes = counts.get("info", 0) or 0
    text = _with_counts(alarms, {k: v for k, v in counts.items() if k != "info"})
    if not notes:
        return text
    note = f"{notes} info note{'s' if notes != 1 else ''} not counted"
    return f"{text[:-1]}; {note})" if text.endswith(")") else f"{text} ({note})"


def _value_of(p: dict[str, Any], name: str) -> Any:
    """`worst_value` / `last_value` of a problematic batch, or its schema-1.0 `*_recall` name (older JSON)."""
    return p.get(f"{name}_value", p.get(f"{name}_recall"))


def primary_metric_name(r: ReportData) -> str:
    """The metric the problematic-batch columns show (recall in reports written before schema 1.1)."""
    for p in r.problematic_batches:
        if p.get("metric"):
            return str(p["metric"])
    return "recall"


def _header(r: ReportData, s: dict[str, Any]) -> list[str]:
    run = r.run
    out = [f"# Experiment report: {md_escape(r.run_name)}", ""]
    out += [f"**Verdict ({md_escape(s.get('severity', 'ok'))}):** {md_escape(s.get('verdict', ''))}", ""]
    ident = [
        ["Run", md_escape(run.get("name"))],
        ["Run id", md_escape(run.get("id"))],
        ["Project", md_escape("/".join(x for x in (run.get("entity"), run.get("project")) if x) or "—")],
        ["State", md_escape(run.get("state"))],
        ["Source", md_escape(f"{run.get('source')}: {run.get('locator')}")],
        ["Steps", f"{fmt(s.get('n_steps'))} ({fmt(s.get('first_step'))} – {fmt(s.get('last_step'))})"],
        ["Batches", fmt(s.get("n_batches"))],
        ["Events", _events_count(s.get("n_events", "—"), s.get("events_by_severity", {}))],
        ["Detector hits", _with_counts(s.get("n_anomalies"), s.get("anomalies_by_severity", {}))],
        ["Detector change points", fmt(s.get("n_change_points"))],
        ["Generated", md_escape(r.generated_at)],
    ]
    rs = run.get("read_status") or {}
    if rs and not rs.get("clean", True):
        ident.append(
            ["Read status", md_escape(f"truncated={rs.get('truncated')}, skipped records={rs.get('skipped_records')}")]
        )
    if rs.get("errors"):  # e.g. "resumed run: merged 1 earlier session folder(s)", or what a damaged read lost
        ident.append(["Read notes", md_escape("; ".join(map(str, rs["errors"][:5])))])
    return [*out, _md_table(["", ""], ident), ""]


def _problem_batches(r: ReportData) -> list[str]:
    out = [f"## Problematic batches ({len(r.problematic_batches)})", ""]
    if not r.problematic_batches:
        return [*out, "No problematic batches.", ""]
    metric = md_escape(primary_metric_name(r))
    rows = [
        [
            md_escape(fmt(p["batch"])),
            md_escape(p["severity"]),
            fmt(p["first_bad_step"]),
            f"{fmt(_value_of(p, 'worst'))} @ {fmt(p['worst_step'])}",
            fmt(_value_of(p, "last")),
            fmt(p["n_anomalies"]),
            fmt(p["n_change_points"]),
            fmt(p["n_problem_images"]),
            md_escape(reason_counts_text(p.get("quality_reasons", {})) or "—"),
        ]
        for p in r.problematic_batches
    ]
    headers = [
        "Batch",
        "Severity",
        "First bad step",
        f"Worst {metric} @ step",
        f"Last {metric}",
        "Detector hits",
        "Detector change points",
        "Problem images",
        "Image issues",
    ]
    return [*out, _md_table(headers, rows), ""]


def _events(r: ReportData) -> list[str]:
    """What went wrong and when, once per real change; the detector hits behind each are in Findings."""
    alarms = [e for e in r.events if e.get("severity") in ("warning", "critical")]
    notes = len(r.events) - len(alarms)
    out = [f"## Events ({len(alarms)})", ""]
    if not alarms:
        out += ["No events: no metric changed in a way that needs attention."]
    else:
        rows = [
            [
                fmt(e["start_step"]) + (f"–{fmt(e['end_step'])}" if e.get("end_step") != e["start_step"] else ""),
                fmt(e.get("batch")),
                md_escape(", ".join(e.get("metrics") or [e["metric"]])),
                md_escape(e["kind"]),
                md_escape(e["severity"]),
                fmt_change(e["value_before"], e["value_after"]),
                md_escape(", ".join(e.get("detectors") or []) or "—"),
                md_escape(e["message"]),
            ]
            for e in alarms
        ]
        headers = ["Steps", "Batch", "Metrics", "Kind", "Severity", "Before → after", "Evidence", "What happened"]
        out += [_md_table(headers, rows)]
    if notes:
        out += ["", f"{notes} info note{'s' if notes != 1 else ''} (improvements, calmer noise) not counted."]
    return [*out, ""]


def _root_causes(r: ReportData) -> list[str]:
    out = [f"## Root causes ({len(r.root_causes)})", ""]
    if not r.root_causes:
        return [*out, "No root causes identified.", ""]
    for rc in r.root_causes:
        where = f"batch {fmt(rc.get('batch'))}" if rc.get("batch") is not None else "run"
        out.append(
            f"- **{where}** ({md_escape(rc.get('side'))}, score {fmt(rc.get('score'))}): {md_escape(rc.get('sentence'))}"
        )
    return [*out, ""]


def _comparison(r: ReportData) -> list[str]:
    """Against a baseline run (schema 1.3): the verdict, one sentence per regression, new / vanished batches."""
    c = r.comparison
    if not c:
        return []
    out = [f"## Comparison with baseline {md_escape(c.get('baseline') or '')}".rstrip(), ""]
    tolerance = f"tolerance {fmt(c.get('tolerance_abs'))} absolute and {fmt(c.get('tolerance_rel'))} relative"
    if c.get("has_regression"):
        batches = ", ".join(str(b) for b in c.get("regressed_batches", []))
        out += [f"**Regressed** (batches {md_escape(batches)}; {tolerance}):", ""]
        out += [f"- {md_escape(sentence)}" for sentence in c.get("sentences", [])]
    elif not c.get("deltas"):
        from analysis.findings.compare_model import NOTHING_COMPARED_SENTENCE  # on use: it loads scipy

        out.append(md_escape(NOTHING_COMPARED_SENTENCE))
    else:
        out.append(f"No regression against the baseline ({tolerance}).")
    for label, key in (("New batches", "new_batches"), ("Vanished batches", "vanished_batches")):
        if c.get(key):
            out += ["", f"{label}: {md_escape(', '.join(str(b) for b in c[key]))}"]
    return [*out, ""]


def _findings(r: ReportData) -> list[str]:
    out = ["## Findings", "", "Detector hits behind the events above, one per detector and episode.", ""]
    out += [f"### Anomalies ({len(r.anomalies)})", ""]
    if r.anomalies:
        rows = [
            [
                fmt(a["step"]) + (f"–{fmt(a['end_step'])}" if a.get("end_step") is not None else ""),
                fmt(a.get("batch")),
                md_escape(a["metric"]),
                fmt(a["value"]),
                md_escape(a["detector"]),
                md_escape(a["severity"]),
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
                md_escape(c.get("severity", "")),
            ]
            for c in r.change_points
        ]
        out += [_md_table(["Step", "Batch", "Metric", "Mean before", "Mean after", "Delta", "Severity"], rows), ""]
    else:
        out += ["No change points.", ""]
    return out


def _quality(r: ReportData) -> list[str]:
    out = ["## Data quality", ""]
    q = r.quality
    if q is None:
        return [*out, "No data directory was given, so images were not scored.", ""]
    out += [
        f"{fmt(q['n_images'])} images scored: {fmt(q['n_acceptable'])} acceptable, "
        f"{fmt(q['n_rejected'])} rejected, {fmt(q['n_errors'])} unreadable "
        f"(acceptable rate {fmt(q['acceptable_rate'])}).",
        "",
    ]
    th = q.get("thresholds", {})
    out += ["Thresholds: " + md_escape(", ".join(f"{k} {v}" for k, v in th.items())), ""]
    out += [f"> {md_escape(h)}\n" for h in q.get("hints", [])]
    if q.get("reasons"):
        rows = [[md_escape(reason_label(k)), fmt(v)] for k, v in q["reasons"].items()]
        out += [_md_table(["Reason", "Images"], rows), ""]
    if q.get("columns"):
        rows = [[md_escape(k), fmt(v["min"]), fmt(v["median"]), fmt(v["max"])] for k, v in q["columns"].items()]
        out += [_md_table(["Score", "Min", "Median", "Max"], rows), ""]
    if q.get("worst_images"):
        out += [f"Worst images ({len(q['worst_images'])}):", ""]
        rows = [
            [md_escape(w["path"]), fmt(w.get("batch")), md_escape("; ".join(w["reasons"]) or "—")]
            for w in q["worst_images"]
        ]
        out += [_md_table(["Path", "Batch", "Reasons"], rows), ""]
    return out


def render_markdown(r: ReportData) -> str:
    """The whole Markdown report: header, events, problematic batches, root causes, findings (detector hits),
    data quality, config."""
    import yaml

    out = _header(r, r.summary) + _comparison(r) + _events(r) + _problem_batches(r) + _root_causes(r)
    out += _findings(r) + _quality(r)
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
