"""Duplicate images on the dashboard: the groups of exact and near-identical images, thumbnails side by side,
with the batches and steps that logged them (`quality.duplicates`).

Two entry points, one call each: `render_folder_duplicates` on Data quality (the audited folder, placed in the
selected run's logged images when the run's data directory is that folder; no run analysis is started) and `render_batch_duplicates` on Batches (the
groups and repeats one batch is part of, from the run's analysis).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.core.errors import AnalyzerError
from analysis.findings.pipeline import RunAnalysis
from quality.duplicates import DuplicateGroup, Duplicates, find_duplicates_under
from ui import state
from ui.format import md_escape

GROUPS_SHOWN = 12  # groups drawn with thumbnails; the table lists them all
THUMBS_PER_GROUP = 6
THUMB_SIDE = 200  # the longer side of a group's thumbnails


@st.cache_data(show_spinner="Looking for duplicate images…", max_entries=8)
def _folder_duplicates(
    data_dir: str,
    audit_id: str,
    paths: tuple[str, ...],
    distance: int,
    min_share: float,
    run: tuple[str, str] | None,
) -> Duplicates:
    """The folder's duplicates (hashes cached on disk beside the quality scores), placed in the log of `run`
    (location, fingerprint) when given. Keyed on the duplicate settings only: moving a quality slider neither
    re-hashes nor re-analyses anything."""
    from analysis.core.config import DataQualityConfig
    from analysis.findings.batches import problematic_images

    logged = problematic_images(state.cached_run(*run)) if run is not None else None
    cfg = DataQualityConfig(duplicate_hash_distance=distance, duplicate_min_share=min_share)
    return find_duplicates_under(data_dir, list(paths), logged, cfg, state.QUALITY_CACHE_DIR)


def _selected_run(data_dir: str) -> tuple[str, str] | None:
    """(location, fingerprint) of the selected run when its data directory is this folder."""
    sel = state.selection()
    if sel is None or not sel.data_dir:
        return None
    try:
        same = Path(sel.data_dir).resolve() == Path(data_dir).resolve()
    except OSError:
        return None
    return (sel.location, sel.fingerprint) if same else None


def _placements(duplicates: Duplicates, group_ids: list[int]) -> dict[tuple[int, str], str]:
    """'batch 7 · steps 2000-4000' per (group, file) of the given groups, in one pass over the occurrences (files
    of a group that no batch logged are left out: 'not logged')."""
    occ = duplicates.occurrences
    rows = occ.loc[occ["group"].isin(group_ids)].dropna(subset=["batch"])
    if rows.empty:
        return {}
    span = (
        rows.astype({"group": "int64", "batch": "int64", "step": "int64"})
        .groupby(["group", "path", "batch"])["step"]
        .agg(["min", "max"])
    )
    out: dict[tuple[int, str], list[str]] = {}
    for (group, path, batch), lo, hi in span.itertuples():
        out.setdefault((int(group), str(path)), []).append(
            f"batch {batch} · " + (f"step {lo}" if lo == hi else f"steps {lo}-{hi}")
        )
    return {k: "; ".join(v) for k, v in out.items()}


def _draw_group(group: DuplicateGroup, placements: dict[tuple[int, str], str], data_dir: str) -> None:
    """The group's heading and its thumbnails as one image list (one element, not a column per file)."""
    st.markdown(f"**Group {group.group}** · {md_escape(group.describe())}")
    images, captions = [], []
    for path in group.paths[:THUMBS_PER_GROUP]:
        caption = f"{md_escape(path)}  \n{placements.get((group.group, path), 'not logged')}"
        try:
            images.append(state.thumbnail(data_dir, path, max_side=THUMB_SIDE))
            captions.append(caption)
        except AnalyzerError as exc:
            st.caption(f"{caption}  \n{md_escape(str(exc))}")
    if images:
        st.image(images, caption=captions, output_format="PNG")
    if len(group.paths) > THUMBS_PER_GROUP:
        st.caption(f"… and {len(group.paths) - THUMBS_PER_GROUP} more in this group (see the table).")


def _draw_groups(groups: list[DuplicateGroup], duplicates: Duplicates, data_dir: str) -> None:
    placements = _placements(duplicates, [g.group for g in groups])
    for group in groups:
        _draw_group(group, placements, data_dir)


def _draw(duplicates: Duplicates, data_dir: str, batch: int | None, key: str, lazy: bool = False) -> None:
    """Repeats, the groups' table and up to GROUPS_SHOWN groups with thumbnails. `lazy`: the thumbnails sit in a
    closed expander and are drawn when it is opened (Batches: another batch then redraws a table, not a gallery)."""
    repeats = duplicates.repeats_of(batch) if batch is not None else duplicates.repeats
    for rep in repeats:
        st.warning(md_escape(rep.sentence))
    table = duplicates.groups_frame(batch)
    if table.empty:
        where = f"batch {batch}'s images" if batch is not None else "this folder"
        st.success(f"No exact or near-duplicate images in {where}.")
    else:
        st.caption(
            f"{len(table)} group{'s' if len(table) != 1 else ''}: same file contents (exact) or at most "
            f"{duplicates.max_distance} of 256 perceptual-hash bits apart (near). The same file re-logged by its own "
            "batch is not counted."
        )
        st.dataframe(table, hide_index=True, key=f"{key}_table", width="stretch")
        by_id = {g.group: g for g in duplicates.groups}
        shown = [int(gid) for gid in table["group"].head(GROUPS_SHOWN)]
        if not lazy:
            _draw_groups([by_id[gid] for gid in shown], duplicates, data_dir)
        else:
            box = st.expander(
                f"Thumbnails of {len(shown)} group{'s' if len(shown) != 1 else ''}",
                key=f"{key}_thumbs",
                on_change="rerun",
            )
            with box:
                if box.open:
                    _draw_groups([by_id[gid] for gid in shown], duplicates, data_dir)
    errors = duplicates.errors
    if not errors.empty and batch is None:
        st.caption(f"{len(errors)} image{'s' if len(errors) != 1 else ''} could not be hashed (see the audit).")


def render_folder_duplicates(data_dir: str, scores: pd.DataFrame, audit_id: str) -> None:
    """Data quality: the audited folder's duplicate groups (in the selected run's log when it reads this folder)."""
    st.subheader("Duplicate images")
    paths = tuple(str(p) for p in scores["path"]) if "path" in scores.columns else ()
    dq = state.config().data_quality
    run = _selected_run(data_dir)
    try:
        duplicates = _folder_duplicates(
            data_dir, audit_id, paths, dq.duplicate_hash_distance, dq.duplicate_min_share, run
        )
    except AnalyzerError as exc:
        if run is None:
            st.error(md_escape(str(exc)))
            return
        # the selected run cannot be read here: the folder alone is still worth showing
        duplicates = _folder_duplicates(
            data_dir, audit_id, paths, dq.duplicate_hash_distance, dq.duplicate_min_share, None
        )
    _draw(duplicates, data_dir, None, "dq_dups")


def render_batch_duplicates(analysis: RunAnalysis, batch: int) -> None:
    """Batches: the duplicate groups and repeats this batch is part of (needs the run's data directory)."""
    if analysis.duplicates is None or analysis.data_dir is None:
        return
    if not analysis.duplicates.for_batch(batch):
        return  # nothing to say: the page stays as it was
    st.subheader("Duplicate images")
    _draw(analysis.duplicates, str(analysis.data_dir), batch, "b_dups", lazy=True)
