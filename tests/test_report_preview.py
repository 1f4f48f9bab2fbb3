"""The Reports page's preview: `<details>` blocks become expander sections, never raw HTML text."""

from __future__ import annotations

from analysis.reporting.document import ReportData
from analysis.reporting.markdown import render_markdown
from ui.report_preview import preview_sections


def _report(name: str) -> ReportData:
    return ReportData(
        run={"name": name, "id": "abc123"},
        config={"anomaly": {"zscore_threshold": 3.0}},
        summary={"verdict": "No problematic batches.", "severity": "ok"},
        problematic_batches=[],
        anomalies=[],
        change_points=[],
        quality=None,
        root_causes=[],
        generated_at="2026-01-01T00:00:00+00:00",
    )


def test_the_config_block_of_a_real_report_becomes_a_section():
    sections = preview_sections(render_markdown(_report("run-1")))
    titles = [t for t, _ in sections]
    assert titles == [None, "Analysis configuration (secrets omitted)"]
    plain, config = sections[0][1], sections[1][1]
    assert plain.startswith("# Experiment report: run-1") and plain.rstrip().endswith("## Configuration")
    assert config.startswith("```yaml") and "zscore_threshold: 3.0" in config
    assert all("<details>" not in body and "</details>" not in body and "<summary>" not in body for _, body in sections)


def test_a_run_named_like_the_markup_stays_text():
    """The run name is escaped by the Markdown renderer, so it cannot open a section of its own."""
    sections = preview_sections(render_markdown(_report("<details><summary>pwn</summary>")))
    assert [t for t, _ in sections] == [None, "Analysis configuration (secrets omitted)"]
    assert r"\<details\>\<summary\>pwn" in sections[0][1]


def test_markers_inside_code_fences_are_content_and_an_unclosed_block_runs_to_the_end():
    md = "\n".join(
        [
            "intro",
            "<details><summary>A &amp; B</summary>",
            "````text",
            "</details>",
            "```",
            "still code",
            "````",
            "</details>",
            "between",
            "<DETAILS><summary>tail</summary>",
            "last line",
        ]
    )
    sections = preview_sections(md)
    assert sections == [
        (None, "intro"),
        ("A & B", "````text\n</details>\n```\nstill code\n````"),
        (None, "between"),
        ("tail", "last line"),
    ]
