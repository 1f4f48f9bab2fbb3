"""Formatting untrusted text (run names, metric keys, file names, error messages) for Streamlit.

Streamlit renders Markdown in `st.error` / `st.warning` / `st.info` / `st.success` / `st.caption` /
`st.markdown`, in tab, expander and metric labels and in image captions: an unescaped `![x](http://host/p.png)`
in a logged path or a metric name makes the user's browser fetch that URL. Every untrusted string goes through
`md_escape` (the same escaper as the Markdown report) before it reaches one of those; `error_text` is the form
for exception messages, which quote paths and keys the user or the run file supplied.
"""

from __future__ import annotations

from collections.abc import Iterable

from analysis.reporting.markdown import md_escape

__all__ = ["error_text", "fmt_value", "jsonable", "md_escape", "md_labels"]


def error_text(exc: BaseException | str) -> str:
    """An error message safe for `st.error`: it quotes untrusted paths and key names."""
    return md_escape(str(exc))


def md_labels(names: Iterable[object]) -> list[str]:
    """Labels for `st.tabs` (which render Markdown, images included) from untrusted names (metric keys)."""
    return [md_escape(n) for n in names]


def fmt_value(v: object, digits: int = 3) -> str:
    """Numbers with fixed digits; NaN/Inf spelled out."""
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "+Inf" if v > 0 else "-Inf"
        return f"{v:.{digits}f}"
    return str(v)


def jsonable(obj: object) -> object:
    """A copy safe for `st.json`: NaN/Inf become strings, unknown objects their repr."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return fmt_value(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)
