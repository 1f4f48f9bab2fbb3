"""The "Upload history" source of the sidebar: a CSV / Parquet / JSONL export saved into the uploads folder."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.run_inputs import data_dir_input

__all__ = ["upload_source"]


def upload_source() -> state.Selection | None:
    up = st.sidebar.file_uploader(
        "History export (CSV, Parquet, JSONL)", type=["csv", "parquet", "jsonl"], key="history_upload"
    )
    if up is None:
        return None
    path = state.save_upload(up.name, up.getvalue())
    return state.Selection(
        location=str(path),
        fingerprint=path.stem,
        data_dir=data_dir_input("", "upload_data_dir", str(path)),
        label=up.name,
    )
