"""Plain data and number formatting shared by every report format: one converter, one formatter, one redactor.

`plain` turns numpy/pandas values into JSON-able data with non-finite numbers spelled as the strings `"NaN"`,
`"Infinity"` and `"-Infinity"`; `fmt` is the one number formatter Markdown and HTML both use, so they show the same
digits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.numbers import shown_apart
from analysis.core.redaction import redact as redact_secrets

__all__ = ["as_float", "as_int", "fmt", "fmt_change", "plain", "redact", "safe_name"]

_NON_FINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


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


def as_float(v: Any) -> float | None:
    """A float (NaN/Inf kept, also from their JSON spellings) or None for missing values."""
    if v is None:
        return None
    if isinstance(v, str):
        return _NON_FINITE_NAMES.get(v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        return None
    return float(v)


def as_int(v: Any) -> int | None:
    """An int, or None for missing values."""
    try:
        if v is None or pd.isna(v):
            return None
    except (TypeError, ValueError):
        return None
    return int(v)


def redact(data: Any) -> Any:
    """Secrets replaced by key name and by value shape: `analysis.core.redaction.redact`, the one redaction."""
    return redact_secrets(data)


def fmt_change(before: Any, after: Any) -> str:
    """ "before → after" with `fmt`, and more digits where `fmt` would show the two alike (`numbers.shown_apart`)."""
    a, b = fmt(before), fmt(after)
    if a == b and isinstance(before, (int, float)) and isinstance(after, (int, float)) and before != after:
        a, b = shown_apart(float(before), float(after))
    return f"{a} → {b}"


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


def safe_name(name: str, run_id: str = "") -> str:
    """A readable, file-name-safe stem for a run's reports (letters, digits, `-`, `_`, `.`; never empty or hidden).

    With `run_id`, two runs never share a stem: the id is appended (`<name>-<id>`, once when it is the name), and
    when cleaning lost characters that the id does not make up for (`lr=0.1` and `lr:0.1` both clean to
    `lr_0.1`; every CJK name cleans to nothing) a short hash of the original name and id is appended too."""
    clean_name = _clean(name)
    stem = clean_name or "run"
    if not run_id:
        return stem
    clean_id = _clean(run_id) if run_id != name else ""
    if clean_id:
        stem = f"{stem[:80]}-{clean_id[:40]}"
    if clean_id != run_id and clean_name != name:  # neither part stands for its original exactly
        digest = hashlib.sha256(f"{name}\0{run_id}".encode("utf-8", "surrogatepass")).hexdigest()[:10]
        stem = f"{stem[:110]}-{digest}"
    return stem


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:100]
