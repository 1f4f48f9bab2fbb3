"""The Compare page's tables and figures (no streamlit): delta table worst first with regressions red, the batch ×
metric heatmap of how much worse the candidate is, and one batch's curves of both runs with the parting step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler

from analysis.findings.compare import Comparison, RunSide
from analysis.reporting.figures import plotly_text

__all__ = ["delta_heatmap", "delta_rows", "overlay_figure", "style_deltas"]

_STATUS_COLOURS = {"regression": "background-color: #f8d0d0", "improvement": "background-color: #d4f0d4"}


def delta_rows(c: Comparison) -> pd.DataFrame:
    """One row per batch × metric, regressions first then by how much worse (the Comparison's order)."""
    t = c.table()
    return t.rename(
        columns={
            "baseline": "baseline (window)",
            "candidate": "candidate (window)",
            "delta": "Δ window",
            "delta_pct": "Δ %",
            "delta_end": "Δ end",
            "q_value": "q",
        }
    )


def style_deltas(rows: pd.DataFrame) -> Styler:
    """Regressions red, improvements green; numbers rounded for reading."""

    def paint(row: pd.Series) -> list[str]:
        return [_STATUS_COLOURS.get(str(row["status"]), "")] * len(row)

    fmt: dict[str, str | None] = {c: "{:.3f}" for c in ("baseline (window)", "candidate (window)", "Δ window", "Δ end")}
    fmt.update({"Δ %": "{:+.1f}", "q": "{:.2g}"})
    return rows.style.apply(paint, axis=1).format(fmt, na_rep="")  # type: ignore[arg-type]


def delta_heatmap(c: Comparison) -> go.Figure:
    """Batch × metric: how much worse the candidate is over the window (red worse, green better, by direction)."""
    data = pd.DataFrame([{"batch": d.batch, "metric": d.metric, "worse": d.worsening} for d in c.deltas])
    fig = go.Figure()
    if data.empty:
        return fig
    grid = data.pivot_table(index="metric", columns="batch", values="worse", aggfunc="first")
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) if np.isfinite(grid.to_numpy()).any() else 1.0
    fig.add_trace(
        go.Heatmap(
            z=grid.to_numpy(),
            x=[str(b) for b in grid.columns],
            y=[plotly_text(m) for m in grid.index],  # tick labels render plotly's HTML subset
            colorscale="RdYlGn_r",
            zmin=-max(limit, 1e-9),
            zmax=max(limit, 1e-9),
            colorbar={"title": "worse by"},
            hovertemplate="batch %{x} · %{y}<br>worse by %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="How much worse than the baseline (batch × metric, last validations)",
        xaxis={"title": "batch", "type": "category"},
        height=160 + 40 * len(grid.index),
        margin={"t": 50, "b": 40},
    )
    return fig


def _curve(side: RunSide, batch: int, metric: str) -> pd.DataFrame:
    f = side.batches
    if f.empty:
        return f
    sel = f[(f["batch"] == batch) & (f["metric"].astype(str) == metric)]
    return sel.sort_values("step")


def overlay_figure(
    base: RunSide, cand: RunSide, batch: int, metric: str, parting_step: int | None, alignment: str
) -> go.Figure:
    """Both runs' curves of one batch × metric; on progress alignment the baseline is stretched to the
    candidate's steps. The parting step is a dashed line."""
    b, c = _curve(base, batch, metric), _curve(cand, batch, metric)
    x_base = b["step"].to_numpy(dtype=float)
    if alignment == "progress" and len(b) and len(c):
        x_base = x_base / max(float(x_base[-1]), 1.0) * float(c["step"].iloc[-1])
    fig = go.Figure()
    base_name, cand_name = plotly_text(base.name), plotly_text(cand.name)
    fig.add_trace(go.Scatter(x=x_base, y=b["value"], name=f"baseline · {base_name}", line={"color": "#7f7f7f"}))
    fig.add_trace(go.Scatter(x=c["step"], y=c["value"], name=f"candidate · {cand_name}", line={"color": "#d62728"}))
    if parting_step is not None:
        fig.add_vline(
            x=parting_step,
            line_dash="dash",
            line_color="#444",
            annotation_text=f"curves part (step {parting_step})",
            annotation_position="top left",
        )
    fig.update_layout(
        title=f"batch {batch} · {plotly_text(metric)}: baseline vs candidate",
        xaxis_title="step" + (" (baseline stretched to the candidate's length)" if alignment == "progress" else ""),
        yaxis_title=plotly_text(metric),
        height=380,
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50},
    )
    return fig
