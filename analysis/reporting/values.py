"""Plain data and number formatting shared by every report format: one converter, one formatter, one redactor.

`plain` turns numpy/pandas values into JSON-able data with non-finite numbers spelled as the strings `"NaN"`,
`"Infinity"` and `"-Infinity"`; `fmt` is the one number formatter Markdown and HTML both use, so they show the same
digits.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["as_float", "as_int", "fmt", "plain", "redact", "safe_name"]

_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|webhook|credential|auth)", re.I)
_REDACTED = "<redacted>"
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


def safe_name(name: str) -> str:
    """A file-name-safe version of a run name (letters, digits, `-`, `_`, `.`), never empty or hidden."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return s[:100] or "run"
