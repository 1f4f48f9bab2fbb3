"""Duplicate images (issue 16 item 7): exact and near copies, where they repeat in a run, the root-cause rule, the
hash cache, and bad files."""

from __future__ import annotations

import itertools
import logging
import shutil
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis.core.config import AnalyzerConfig, DataQualityConfig
from analysis.core.vocabulary import QualityReason
from quality.duplicates import (
    HASH_BITS,
    BatchRepeat,
    _near_pairs,
    _words,
    find_duplicates,
    find_duplicates_under,
    hash_distance,
    hash_images,
)
from quality.score_cache import CACHE_FILE, SCHEMA_VERSION, ScoreCache

WORDS = ["invoice", "total", "amount", "receipt", "customer", "address", "payment", "balance", "order", "price"]


TRIPLES = list(itertools.permutations(WORDS, 3))  # 720 distinct lines of text


def page(rng: np.random.Generator, index: int, n_lines: int = 2) -> np.ndarray:
    """A one-to-three-line text image on paper, its lines unique to `index` (< 240): distinct pages share their
    layout, which fools a 64-bit pHash."""
    img = np.full((160, 480), 245, dtype=np.uint8)
    for line in range(n_lines):
        text = " ".join(TRIPLES[(3 * index + line) * 7919 % len(TRIPLES)])
        cv2.putText(img, text, (15, 50 + 50 * line), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 20, 2, cv2.LINE_AA)
    noise = rng.normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def reencoded(src: Path, dst: Path) -> None:
    """The same picture as JPEG quality 70, scaled to 90 %."""
    im = Image.open(src).convert("RGB")
    im.resize((int(im.width * 0.9), int(im.height * 0.9)), Image.Resampling.BILINEAR).save(dst, quality=70)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    root.mkdir()
    for i in range(12):
        cv2.imwrite(str(root / f"page_{i:02d}.png"), page(rng, i))
    shutil.copy(root / "page_00.png", root / "copy_of_00.png")  # exact
    reencoded(root / "page_01.png", root / "page_01_small.jpg")  # near
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # corrupt
    return root


def all_paths(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_file())


def test_exact_and_near_duplicates_are_grouped_and_distinct_pages_are_not(folder: Path) -> None:
    hashes = hash_images(all_paths(folder), folder)
    found = find_duplicates(hashes)
    groups = {frozenset(g.paths): g for g in found.groups}
    assert set(groups) == {
        frozenset({"page_00.png", "copy_of_00.png"}),
        frozenset({"page_01.png", "page_01_small.jpg"}),
    }
    exact = groups[frozenset({"page_00.png", "copy_of_00.png"})]
    near = groups[frozenset({"page_01.png", "page_01_small.jpg"})]
    assert exact.kind == "exact" and exact.max_distance == 0
    assert near.kind == "near" and 0 < near.max_distance <= DataQualityConfig().duplicate_hash_distance
    # distinct pages are far apart, although they share one layout
    ok = hashes[hashes["error"].isna()].set_index("path")["phash"]
    distinct = [hash_distance(ok[f"page_{i:02d}.png"], ok[f"page_{j:02d}.png"]) for i in range(12) for j in range(i)]
    assert min(distinct) > 2 * DataQualityConfig().duplicate_hash_distance
    assert found.summary().startswith("2 duplicate groups (1 exact, 1 near) over 4 images")


def test_a_corrupt_image_is_an_error_row_not_a_crash(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    cv2.imwrite(str(outside), page(np.random.default_rng(9), 99))
    paths = [*all_paths(folder), "missing.png", "../outside.png"]
    hashes = hash_images(paths, folder)
    assert hashes["path"].tolist() == paths
    errors = hashes.set_index("path")["error"]
    assert "not an image" in errors["broken.png"] or "corrupt" in errors["broken.png"]
    assert "cannot read" in errors["missing.png"] and "refused" in errors["../outside.png"]
    found = find_duplicates(hashes)
    assert {"broken.png", "missing.png"}.isdisjoint({p for g in found.groups for p in g.paths})
    assert set(found.errors["path"]) == {"broken.png", "missing.png", "../outside.png"}


def test_pigeonhole_search_finds_exactly_the_pairs_brute_force_finds() -> None:
    rng = np.random.default_rng(4)
    base = rng.integers(0, 2**63, size=(60, HASH_BITS // 64), dtype=np.uint64)
    flips = []
    for i in range(60):  # near copies with 0..14 flipped bits
        row = base[i].copy()
        for bit in rng.choice(HASH_BITS, int(rng.integers(0, 15)), replace=False):
            row[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
        flips.append(row)
    words = np.vstack([base, np.array(flips)])
    dist = np.bitwise_count(words[:, None, :] ^ words[None, :, :]).sum(axis=2)
    for t in (0, 3, 10):
        brute = {(i, j) for i in range(len(words)) for j in range(i + 1, len(words)) if dist[i, j] <= t}
        assert set(_near_pairs(words, t)) == brute
    hexes = ["".join(f"{int(w):016x}" for w in row) for row in words[:2]]
    assert np.array_equal(_words(hexes), words[:2]) and hash_distance(hexes[0], hexes[1]) == dist[0, 1]


def _hashes(contents: dict[str, str]) -> pd.DataFrame:
    """A hash frame: path -> content id (same id = same bytes; distinct ids get unrelated 256-bit hashes)."""
    import hashlib

    rows = []
    for path, content in contents.items():
        phash = hashlib.sha256(content.encode()).hexdigest()
        rows.append({"path": path, "sha256": content, "phash": phash, "error": None})
    return pd.DataFrame(rows)


def test_where_a_group_repeats_within_a_batch_across_batches_and_across_steps() -> None:
    hashes = _hashes({"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C", "c2": "C", "d": "D", "e1": "E"})
    log = pd.DataFrame(
        [
            (100, 0, "a1"), (100, 0, "a2"),  # one batch, one step, two copies
            (100, 1, "b1"), (100, 2, "b2"),  # two batches at one step
            (100, 3, "c1"), (300, 4, "c2"),  # a later step, another batch
            (100, 5, "d"), (200, 5, "d"), (300, 5, "d"),  # one file re-logged by its batch: not a duplicate
            (100, 6, "e1"), (200, 7, "e1"),  # the same file under two batches
        ],
        columns=["step", "batch", "path"],
    )  # fmt: skip
    found = find_duplicates(hashes, log, min_share=1.0)
    scopes = {g.paths[0]: g.scopes for g in found.groups}
    assert scopes == {
        "a1": ("within_batch",),
        "b1": ("across_batches",),
        "c1": ("across_steps",),
        "e1": ("across_steps",),
    }
    c = next(g for g in found.groups if g.paths[0] == "c1")
    assert (c.batches, c.steps) == ((3, 4), (100, 300))
    occ = found.occurrences
    assert set(occ["reason_code"]) == {QualityReason.DUPLICATE.value} and "d" not in set(occ["path"])
    assert QualityReason.DUPLICATE.label == "duplicate image"
    # every one-image batch here repeats its partner wholly; the later (or higher) batch is the repeater
    assert {(r.batch, r.source_batch, r.since_step) for r in found.repeats} == {(2, 1, 100), (4, 3, 300), (7, 6, 200)}
    frame = found.groups_frame(batch=4)
    assert frame[["group", "batches", "steps", "where"]].values.tolist() == [
        [c.group, "3, 4", "100-300", "across steps"]
    ]


def test_hashes_are_cached_beside_the_scores_and_an_old_cache_is_rebuilt(folder: Path, tmp_path: Path, caplog) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with sqlite3.connect(cache / CACHE_FILE) as db:  # the layout before hashes: no user_version, scores only
        db.execute("CREATE TABLE scores (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO scores VALUES ('old', '{}')")
    paths = all_paths(folder)
    first = hash_images(paths, folder, cache_dir=cache)
    with sqlite3.connect(cache / CACHE_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0  # rebuilt, not misread
        assert db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] == len(paths)  # bad files cached too
        db.execute("UPDATE hashes SET value = json_set(value, '$.phash', 'ff') WHERE key LIKE '%page_05%'")
    second = hash_images(paths, folder, cache_dir=cache)
    assert second.set_index("path").at["page_05.png", "phash"] == "ff"  # served from the cache
    assert second.drop(index=second.index[second["path"] == "page_05.png"]).equals(
        first.drop(index=first.index[first["path"] == "page_05.png"])
    )
    with sqlite3.connect(cache / CACHE_FILE) as db:  # a newer program's cache is skipped, not destroyed
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with caplog.at_level(logging.WARNING, logger="quality.score_cache"):
        third = hash_images(paths, folder, cache_dir=cache)
    assert "newer version" in caplog.text and third.set_index("path").at["page_05.png", "phash"] != "ff"
    assert ScoreCache(cache).db is None


def test_a_repeat_joins_the_cause_of_a_batch_that_fell() -> None:
    from analysis.findings.anomalies import find_anomalies
    from analysis.findings.changepoints import find_change_points
    from analysis.findings.rootcause import explain
    from tests.test_rootcause import run_frames

    cfg = AnalyzerConfig()
    batches, g, images = run_frames({7: (20, 0.62)})
    anomalies = find_anomalies(batches, g, cfg.anomaly)
    cps = find_change_points(batches, g, cfg.anomaly)
    rep = BatchRepeat(batch=7, source_batch=2, since_step=2100, n_repeated=6, n_images=8, kind="exact")
    plain = {c.batch: c for c in explain(batches, anomalies, cps, None, images, cfg)}
    causes = {c.batch: c for c in explain(batches, anomalies, cps, None, images, cfg, [rep])}
    assert set(causes) == set(plain) == {7}
    assert causes[7].sentence == plain[7].sentence + "; batch 7 repeats 6 of 8 images from batch 2 since step 2100"
    assert causes[7].side == "data" and causes[7].score > plain[7].score
    assert causes[7].evidence["duplicates"]["source_batch"] == 2


@pytest.mark.slow
def test_a_batch_repeating_another_batchs_images_is_a_root_cause(tmp_path: Path) -> None:
    """A real wandb run: from step 2000 on batch 7 logs 6 of its 8 images from batch 2 (4 byte-for-byte copies,
    2 re-encoded smaller JPEGs), its metrics unchanged."""
    from analysis.findings.pipeline import analyze_run
    from analysis.sources import open_run
    from tests.wandb_writer import write_run

    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    own: dict[int, list[str]] = {}
    for b in range(8):
        (data / f"batch_{b:02d}").mkdir(parents=True)
        own[b] = []
        for j in range(8):
            rel = f"batch_{b:02d}/img_{j}.png"
            cv2.imwrite(str(data / rel), page(rng, 8 * b + j, n_lines=1 + j % 3))
            own[b].append(rel)
    leaked = []
    for j in range(6):
        rel = f"batch_07/leak_{j}.png" if j < 4 else f"batch_07/leak_{j}.jpg"
        if j < 4:
            shutil.copy(data / own[2][j], data / rel)
        else:
            reencoded(data / own[2][j], data / rel)
        leaked.append(rel)
    rows = []
    for s in range(24):
        step = 100 * (s + 1)
        row: dict = {"global_step": step}
        for b in range(8):
            row[f"batch_{b}/recall"] = 0.9 + float(rng.normal(0, 0.004))
            row[f"problematic_batch_{b}"] = leaked + own[7][6:] if b == 7 and step >= 2000 else own[b]
        rows.append(row)
    run_dir = write_run(tmp_path / "runs", "leaky-batches", rows)
    analysis = analyze_run(open_run(run_dir), AnalyzerConfig(), data_dir=data)
    dups = analysis.duplicates
    assert dups is not None
    assert [(r.batch, r.source_batch, r.since_step, r.n_repeated, r.n_images) for r in dups.repeats] == [
        (7, 2, 2000, 6, 8)
    ]
    assert dups.repeats[0].kind == "near"  # two of the six are re-encoded
    cause = next(c for c in analysis.root_causes if c.batch == 7)
    assert cause.side == "data" and cause.step == 2000
    assert cause.sentence.startswith("batch 7 repeats 6 of 8 images from batch 2 since step 2000")
    assert {frozenset(g.paths) for g in dups.groups} == {
        frozenset({own[2][j], leaked[j]}) for j in range(6)
    }  # nothing else: distinct pages, and batches re-logging their own files, are not duplicates
    assert all(g.scopes == ("across_batches", "across_steps") for g in dups.groups)  # both logged them at 2000
    assert "batch 7 repeats 6 of 8 images" in (analysis_summary := _summary(analysis))
    assert analysis_summary.startswith("6 duplicate groups (4 exact, 2 near)")
    # the Batches page's section, drawn by the real Streamlit runtime from this analysis
    from streamlit.testing.v1 import AppTest

    def batch_section(analysis, batch):  # runs as a script: imports inside
        from ui.duplicates import render_batch_duplicates

        render_batch_duplicates(analysis, batch)

    at = AppTest.from_function(batch_section, args=(analysis, 7), default_timeout=60).run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "batch 7 repeats 6 of 8 images from batch 2 since step 2000 (near-identical copies)"
    ]
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 6  # one row per group
    # thumbnails wait in a closed expander (picking another batch redraws a table, not a gallery) ...
    assert [e.label for e in at.expander] == ["Thumbnails of 6 groups"] and not at.get("image")
    at.session_state["b_dups_thumbs"] = True  # ... and are drawn when it is opened
    at.run()
    lists = at.get("image")
    assert [len(e.proto.imgs) for e in lists] == [2] * 6  # each group's two images side by side, one list per group
    captions = " ".join(img.caption for e in lists for img in e.proto.imgs)
    assert "batch 2 · steps 100-2400" in captions and "batch 7 · steps 2000-2400" in captions
    quiet = AppTest.from_function(batch_section, args=(analysis, 0), default_timeout=60).run()
    assert not quiet.exception and not quiet.subheader  # a batch without duplicates adds nothing to the page


def _summary(analysis) -> str:
    from analysis.reporting.sections import summary_section

    return str(summary_section(analysis)["duplicates"])


def test_find_duplicates_under_reads_the_config(folder: Path) -> None:
    strict = DataQualityConfig(duplicate_hash_distance=0)
    found = find_duplicates_under(folder, all_paths(folder), None, strict)
    assert [g.kind for g in found.groups] == ["exact"] and found.max_distance == 0
    with pytest.raises(ValueError):
        DataQualityConfig(duplicate_hash_distance=65)


@pytest.mark.slow
def test_the_data_quality_section_shows_the_folder_groups_side_by_side(folder: Path) -> None:
    from streamlit.testing.v1 import AppTest

    def folder_section(data_dir, paths):  # runs as a script: imports inside
        import pandas as pd

        from ui.duplicates import render_folder_duplicates

        render_folder_duplicates(data_dir, pd.DataFrame({"path": paths}), "audit-1")

    at = AppTest.from_function(folder_section, args=(str(folder), all_paths(folder)), default_timeout=60).run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Duplicate images"]
    table = at.dataframe[0].value
    assert sorted(table["kind"]) == ["exact", "near"] and set(table["where"]) == {"folder"}
    assert [len(e.proto.imgs) for e in at.get("image")] == [2, 2]  # two groups, two thumbnails each, shown open
    assert any("could not be hashed" in c.value for c in at.caption)  # broken.png
