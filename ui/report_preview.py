"""The Reports page's Markdown preview, split at its `<details><summary>` blocks (no streamlit import here).

Streamlit's `st.markdown` shows HTML tags as text unless `unsafe_allow_html=True`, which is not acceptable for a
report full of run-supplied strings. So the page keeps HTML off and draws each `<details>` block as an
`st.expander` instead: the preview never puts any HTML of the report into the page, and the collapsible
sections still work. Markers inside fenced code blocks are left alone (a config value may contain the text).
"""

from __future__ import annotations

import html
import re

__all__ = ["PreviewSection", "preview_sections"]

_OPEN = re.compile(r"^\s*<details>\s*<summary>(?P<title>.*?)</summary>\s*$", re.IGNORECASE)
_CLOSE = re.compile(r"^\s*</details>\s*$", re.IGNORECASE)
_FENCE = re.compile(r"^\s{0,3}(?P<fence>`{3,}|~{3,})")

# (title, body): title None for plain Markdown, the summary text for a collapsible section
PreviewSection = tuple[str | None, str]


def preview_sections(markdown: str) -> list[PreviewSection]:
    """The Markdown cut into plain parts and `<details>` sections, in order; empty parts are dropped.

    A `<details>` with no closing tag runs to the end. The summary title is unescaped once (it is HTML text)."""
    sections: list[PreviewSection] = []
    title: str | None = None
    buf: list[str] = []
    fence: str | None = None

    def flush() -> None:
        text = "\n".join(buf).strip("\n")
        if text.strip() or title is not None:
            sections.append((title, text))
        buf.clear()

    for line in markdown.splitlines():
        m = _FENCE.match(line)
        if m:
            mark = m.group("fence")
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence) and not line.strip()[len(mark) :].strip():
                fence = None
            buf.append(line)
            continue
        if fence is None and title is None and (opened := _OPEN.match(line)):
            flush()
            title = html.unescape(opened.group("title")).strip() or "Details"
            continue
        if fence is None and title is not None and _CLOSE.match(line):
            flush()
            title = None
            continue
        buf.append(line)
    flush()
    return sections
