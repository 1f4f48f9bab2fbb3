"""Image thumbnails, grids and the details dialog, shared by the Batches gallery and the Data quality audit."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from ui import state, tables
from ui.format import md_escape

STRIP_SIDE = 160  # the before strip's display copies: four to a row, as the gallery's columns below
GRID_COLUMNS = 4


@st.dialog("Image details", width="large")
def image_dialog(data_dir: str, path: str, row: pd.Series | None, key: str = "b") -> None:
    st.caption(md_escape(path))
    try:
        st.image(state.thumbnail(data_dir, path, max_side=2000), output_format="PNG")
    except AnalyzerError as exc:
        st.error(md_escape(str(exc)))
    if row is not None:
        fails = tables.failing_reasons_line(row)
        if fails:
            st.markdown(fails)
        st.dataframe(tables.image_score_table(row), hide_index=True, key=f"{key}_dialog_scores")


def show_image(data_dir: str, path: str, caption: str | None = None) -> bool:
    """One image at its own size (a small scan is not blown up to the column); False when it cannot be read."""
    try:
        img = state.thumbnail(data_dir, path)
    except AnalyzerError as exc:
        st.error(f"{md_escape(path)}: {md_escape(str(exc))}")
        return False
    st.image(img, caption=caption, output_format="PNG", width="content")  # native size, at most the column
    return True


def show_images(data_dir: str, paths: list[str]) -> None:
    """Small display copies (never enlarged) with their paths as captions, as one image list (one element for the
    browser to lay out, not a column each); a file that cannot be read is named with the reason."""
    images, captions = [], []
    for path in paths:
        try:
            images.append(state.thumbnail(data_dir, path, max_side=STRIP_SIDE))
            captions.append(md_escape(path))
        except AnalyzerError as exc:
            st.error(f"{md_escape(path)}: {md_escape(str(exc))}")
    if images:
        st.image(images, caption=captions, output_format="PNG", width="content")


def image_grid(data_dir: str, rows: pd.DataFrame, key: str) -> None:
    """Images of `rows` (a `path` column, scores when scored) four to a row, each with its score badges and a
    Details button opening `image_dialog`; `key` prefixes the widget keys (one grid per page)."""
    grid = st.columns(GRID_COLUMNS)
    for i, (_, row) in enumerate(rows.iterrows()):
        with grid[i % GRID_COLUMNS]:
            path = row["path"]
            show_image(data_dir, path, caption=md_escape(path))
            st.caption(tables.badge_line(row if "blur_score" in row else None))
            if st.button("Details", key=f"{key}_detail_{i}"):
                image_dialog(data_dir, path, row, key)
