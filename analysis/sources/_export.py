"""The wandb UI's chart export ("Download CSV"): layout detection and one run's history out of it.

wandb writes one column for the chart's x-axis, whatever it is (`Step`, `epoch`, `train/global_step`,
`epoch_id`, a tuner's `evaluations` counter, ...), then for every run and key a `<run> - <key>` column with
`__MIN` / `__MAX` companions (the range of the points a sampled chart merged into one). When the x-axis is not
`Step` each run also gets a `<run> - _step` column (wandb's own step). Runs are the chart's lines: grouped
charts name them `<group key>: <value>` (`algo: UCEA`).

Each run becomes its own history: the rows where it logged something, `_step` from the x-axis when that holds
whole numbers (named in `Run.step_axis`), else from the run's own `_step` column (the x-axis then kept as a
metric column), companions dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.core.errors import AmbiguousRun, RunNotFound

__all__ = ["ExportLayout", "detect_layout", "pick_run", "run_history"]

_COLUMN = re.compile(r"^(?P<run>.+?) - (?P<key>.+)$")
COMPANIONS = ("__MIN", "__MAX")
_WANDB_STEP_AXES = ("Step", "_step")  # x-axes that are wandb's own step counter
_UNNAMED = re.compile(r"^Unnamed: \d+$")  # an empty header cell, as pandas names it


@dataclass(frozen=True)
class ExportLayout:
    """Where each run's columns are in a wandb UI export."""

    axis: str  # the x-axis column, as named in the header
    runs: list[str]  # run (line) names, in header order
    columns: dict[str, dict[str, str]]  # run -> {key: column}, companions left out
    companions: dict[str, int] = field(default_factory=dict)  # run -> number of __MIN/__MAX columns

    @property
    def n_companions(self) -> int:
        return sum(self.companions.values())


def detect_layout(columns: list[str]) -> ExportLayout | None:
    """The export layout of a header, or None when it is not one: the first column is the x-axis (not of the
    `<run> - <key>` form) and every other named column is `<run> - <key>`."""
    if len(columns) < 2 or _COLUMN.match(columns[0]) or not columns[0].strip():
        return None
    runs: list[str] = []
    by_run: dict[str, dict[str, str]] = {}
    companions: dict[str, int] = {}
    for col in columns[1:]:
        if _UNNAMED.match(col) or not col.strip():
            continue
        m = _COLUMN.match(col)
        if m is None:
            return None
        run, key = m["run"], m["key"]
        if run not in by_run:
            runs.append(run)
            by_run[run] = {}
            companions[run] = 0
        if key.endswith(COMPANIONS):
            companions[run] += 1
        else:
            by_run[run][key] = col
    if not runs:
        return None
    return ExportLayout(axis=columns[0], runs=runs, columns=by_run, companions=companions)


def pick_run(layout: ExportLayout, label: str, wanted: str | None) -> str:
    """The run `wanted` names (exactly; else case-insensitively; else by the part after a group prefix such as
    `algo: `), the only run when `wanted` is None. AmbiguousRun / RunNotFound list the runs of the file."""
    runs = layout.runs
    listing = ", ".join(runs)
    if wanted is None:
        if len(runs) == 1:
            return runs[0]
        raise AmbiguousRun(
            f"{label} is a wandb export of {len(runs)} runs ({listing}); choose one with '{label}#<run name>'",
            candidates=runs,
        )
    if wanted in runs:
        return wanted
    for same in (
        [r for r in runs if r.casefold() == wanted.casefold()],
        [r for r in runs if r.rsplit(": ", 1)[-1].casefold() == wanted.casefold()],
    ):
        if len(same) == 1:
            return same[0]
    raise RunNotFound(f"{label} has no run named {wanted!r}; the runs in this export are: {listing}", candidates=runs)


def run_history(frame: pd.DataFrame, layout: ExportLayout, run: str) -> tuple[pd.DataFrame, str, list[str]]:
    """(history with `_step`, what `_step` counts, notes) of one run of the export."""
    cols = layout.columns[run]
    own_step = cols.get("_step")
    metrics = {col: key for key, col in cols.items() if key != "_step"}
    notes: list[str] = []
    if layout.companions.get(run):
        n = layout.companions[run]
        notes.append(f"{n} __MIN/__MAX column{'s' if n != 1 else ''} dropped (the sampled chart's ranges)")
    logged = (
        frame[list(metrics)].notna().any(axis=1) if metrics else frame[[own_step or layout.axis]].notna().any(axis=1)
    )
    rows = frame.loc[logged]
    out = rows[list(metrics)].rename(columns=metrics)
    axis = pd.to_numeric(rows[layout.axis], errors="coerce")
    own = pd.to_numeric(rows[own_step], errors="coerce") if own_step else None
    if layout.axis in _WANDB_STEP_AXES:
        step_axis = "_step"
        steps = axis
    elif _whole(axis):
        step_axis = layout.axis
        steps = axis
        dropped = " (wandb's own _step column dropped)" if own is not None else ""
        notes.append(f"steps are the chart's x-axis {layout.axis!r}{dropped}")
    else:
        if layout.axis not in out.columns:
            out[layout.axis] = axis if axis.notna().any() else rows[layout.axis]
        if own is not None and _whole(own):
            step_axis, steps = "_step", own
            notes.append(
                f"x-axis {layout.axis!r} is not a whole number: steps are wandb's _step, the x-axis is a column"
            )
        else:
            step_axis, steps = "row", pd.Series(np.arange(len(rows)), index=rows.index)
            notes.append(f"x-axis {layout.axis!r} is not a whole number: steps are row numbers, the x-axis is a column")
    keep = steps.notna()
    if not keep.all():
        notes.append(f"{int((~keep).sum())} row(s) without an x-axis value dropped")
    out = out.loc[keep].assign(_step=steps.loc[keep].astype(np.int64))
    out = out.sort_values("_step", kind="stable")
    if out["_step"].duplicated().any():  # a sampled chart may repeat an x value: keep the last point of each
        out = out.groupby("_step", sort=True, as_index=False).last()
    return out.reset_index(drop=True), step_axis, notes


def _whole(values: pd.Series) -> bool:
    finite = values.dropna()
    return bool(len(finite)) and bool(np.isfinite(finite).all()) and bool((finite == np.round(finite)).all())
