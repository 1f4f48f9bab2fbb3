"""Baseline files: a run's per-batch curves (and image-quality scores) as versioned JSON to compare against.

CI keeps such a file in a repository and passes it to `--baseline`. It holds every (step, value) of every batch ×
metric, so a comparison against the file gives the same answer as against the run. Non-finite values are written
as null: a comparison ignores NaN and ±inf alike. A `.gz` suffix writes / reads gzip.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.core.errors import AnalyzerError
from analysis.findings.compare_model import RunSide

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "baseline_dict",
    "is_baseline_file",
    "load_baseline",
    "write_baseline",
]

BASELINE_FORMAT = "experiment-analyzer-baseline"
BASELINE_VERSION = 1
_QUALITY_COLUMNS = ["batch", "width", "height", "blur_score", "rotation_angle", "brightness", "contrast", "noise"]


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def baseline_dict(side: RunSide) -> dict[str, Any]:
    """The JSON-able content of a baseline file."""
    series = []
    frame = side.batches
    if not frame.empty:
        for _, g in frame.groupby(["metric", "batch"], observed=True, sort=True):
            series.append(
                {
                    "metric": str(g["metric"].iat[0]),
                    "batch": int(g["batch"].to_numpy()[0]),
                    "steps": g["step"].astype(int).tolist(),
                    "values": _floats(g["value"].to_numpy(dtype=float)),
                }
            )
    quality = None
    if side.quality is not None and not side.quality.empty and "batch" in side.quality.columns:
        q = side.quality
        if "error" in q.columns:
            q = q[q["error"].isna() | (q["error"].astype(str) == "None")]
        cols = [c for c in _QUALITY_COLUMNS if c in q.columns]
        quality = {c: _floats(pd.to_numeric(q[c], errors="coerce").to_numpy(dtype=float)) for c in cols}
    return {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "name": side.name,
        "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "series": series,
        "quality": quality,
    }


def write_baseline(side: RunSide, path: str | Path) -> Path:
    """Write the baseline file of `side` to `path` (`compare.save_baseline` takes a Run or analysis too)."""
    out = Path(path).expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(baseline_dict(side), allow_nan=False, separators=(",", ":"))
        if out.suffix == ".gz":
            out.write_bytes(gzip.compress(text.encode()))
        else:
            out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AnalyzerError(f"cannot write the baseline file {out}: {exc.strerror or exc}") from None
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    except FileNotFoundError:
        raise AnalyzerError(f"baseline file not found: {path}") from None
    except OSError as exc:
        raise AnalyzerError(f"cannot read the baseline file {path}: {exc.strerror or exc}") from None
    except (ValueError, EOFError) as exc:
        raise AnalyzerError(f"{path} is not a baseline file (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise AnalyzerError(f"{path} is not a baseline file (write one with --save-baseline)")
    if not isinstance(data.get("version"), int) or data["version"] > BASELINE_VERSION:
        raise AnalyzerError(
            f"{path} is a baseline file of version {data.get('version')!r}; this version reads up to "
            f"{BASELINE_VERSION} (upgrade experiment-analyzer)"
        )
    return data


def is_baseline_file(path: str | Path) -> bool:
    """True when `path` is a file that starts like a baseline file (cheap check on the first bytes)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return head[:2] == b"\x1f\x8b" or BASELINE_FORMAT.encode() in head


def load_baseline(path: str | Path) -> RunSide:
    """A RunSide from a baseline file; AnalyzerError (a message, no traceback) for anything else."""
    p = Path(path).expanduser()
    data = _read(p)
    try:
        parts = []
        for s in data["series"]:
            n = len(s["steps"])
            parts.append(
                pd.DataFrame(
                    {
                        "step": np.asarray(s["steps"], dtype=np.int64),
                        "batch": np.full(n, int(s["batch"]), dtype=np.int64),
                        "metric": [str(s["metric"])] * n,
                        "value": np.array([np.nan if v is None else v for v in s["values"]], dtype=np.float64),
                    }
                )
            )
        cols = {"step": "int64", "batch": "int64", "metric": "object", "value": "float64"}
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(cols)).astype(cols)
        frame["metric"] = frame["metric"].astype("category")
        quality = None
        if data.get("quality"):
            quality = pd.DataFrame({k: np.array(v, dtype=float) for k, v in data["quality"].items()})
            quality["batch"] = quality["batch"].astype("Int64")
    except (KeyError, TypeError, ValueError) as exc:
        raise AnalyzerError(f"{p} is a damaged baseline file ({type(exc).__name__}: {exc})") from None
    return RunSide(str(data.get("name") or p.stem), frame, quality)
