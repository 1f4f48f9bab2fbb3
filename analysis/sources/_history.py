"""The history frame conventions every source shares: column order, `_step` dtype, the media index, `_wandb`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.core.run import MediaEntry

__all__ = ["last_values", "media_index", "object_columns", "strip_wandb", "tidy_history"]

MEDIA_TYPES = frozenset(
    {
        "image-file",
        "images/separated",
        "table-file",
        "video-file",
        "audio-file",
        "html-file",
        "object3D-file",
        "molecule-file",
        "bokeh-file",
        "plotly-file",
    }
)


def tidy_history(df: pd.DataFrame) -> pd.DataFrame:
    """`_step` first (int64), other columns sorted (wandb-core writes keys in random order)."""
    cols = sorted(c for c in df.columns if c != "_step")
    df = df[["_step", *cols]] if "_step" in df.columns else df[cols]
    if "_step" in df.columns and df["_step"].dtype != "int64" and df["_step"].notna().all():
        df = df.assign(_step=df["_step"].astype("int64"))
    return df.reset_index(drop=True)


def media_index(history: pd.DataFrame) -> list[MediaEntry]:
    """Every media file referenced by a history cell, with its step and key."""
    out: list[MediaEntry] = []
    if "_step" not in history.columns:
        return out
    steps = history["_step"].to_numpy()
    for j in object_columns(history):  # by position: a frame of 100,000 numeric columns costs nothing here
        col = history.columns[j]
        for i, cell in enumerate(history.iloc[:, j].to_numpy()):
            if not isinstance(cell, dict) or cell.get("_type") not in MEDIA_TYPES:
                continue
            paths = cell.get("filenames") if cell.get("_type") == "images/separated" else [cell.get("path")]
            for p in paths or []:
                if isinstance(p, str) and p:
                    out.append(MediaEntry(step=int(steps[i]), key=str(col), path=p))
    return out


def strip_wandb(d: dict) -> dict:
    """`d` without wandb's internal `_wandb` entry (modified in place and returned)."""
    d.pop("_wandb", None)
    return d


def object_columns(df: pd.DataFrame) -> list[int]:
    """Positions of the columns holding Python objects (lists, dicts, text), from the dtypes alone."""
    return [j for j, dt in enumerate(df.dtypes) if dt == np.dtype(object)]


def last_values(df: pd.DataFrame) -> dict[str, Any]:
    """Each column's last non-missing value as a plain Python value (columns without any are left out).

    Vectorised per dtype (one numpy pass for all float columns, one for all int columns, ...), so a table of
    100,000 columns costs a few array operations instead of 100,000 Series."""
    out: dict[str, Any] = {}
    if not len(df):
        return out
    names = [str(c) for c in df.columns]
    groups: dict[Any, list[int]] = {}
    for j, dt in enumerate(df.dtypes):
        groups.setdefault(dt, []).append(j)
    n = len(df)
    for dt, cols in groups.items():
        block = df.iloc[:, cols]
        present = block.notna().to_numpy()
        has = present.any(axis=0)
        last = n - 1 - np.argmax(present[::-1], axis=0)
        values = block.to_numpy(dtype=object if dt == np.dtype(object) else None)
        for k in np.flatnonzero(has).tolist():
            v = values[last[k], k]
            out[names[cols[k]]] = v.item() if isinstance(v, np.generic) else v
    return {c: out[c] for c in names if c in out}
