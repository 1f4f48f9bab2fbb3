"""The history frame conventions every source shares: column order, `_step` dtype, the media index, `_wandb`."""

from __future__ import annotations

import pandas as pd

from analysis.core.run import MediaEntry

__all__ = ["media_index", "strip_wandb", "tidy_history"]

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
    for col in history.columns:
        series = history[col]
        if series.dtype != object:
            continue
        for i, cell in enumerate(series.to_numpy()):
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
