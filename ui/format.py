"""Formatting untrusted text (run names, metric keys, file names) for Streamlit markdown."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|<>~$])")


def md_escape(text: object) -> str:
    """Escape Markdown (and the HTML angle brackets) so untrusted text renders literally."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


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
