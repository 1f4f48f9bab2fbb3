"""The real-image benchmark data (benchmarks/data/images): every labelled file is present and has provenance, the
split is by source, the graded focus series is ordered the way an independent sharpness measure orders it, and the
second labelling round (batch 2) follows its pre-registered split rule and agrees with independent checks."""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks.real_images import (
    DATA,
    BlurFigures,
    Row,
    load,
    load_rows,
    misranked_pairs,
    print_blur_table,
    print_rotation_table,
    real_tables,
    rotation_figures,
    split_groups,
)


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return load_rows(DATA)


def test_every_labelled_file_exists_and_has_a_provenance_row(rows):
    provenance = (DATA / "PROVENANCE.md").read_text(encoding="utf-8")
    for r in rows:
        assert (DATA / r.file).is_file(), r.file
        assert f"| {r.file} |" in provenance, r.file


def test_split_is_by_source(rows):
    splits = defaultdict(set)
    for r in rows:
        splits[r.source].add(r.split)
    assert all(len(s) == 1 for s in splits.values()), dict(splits)
    assert {s for v in splits.values() for s in v} == {"tune", "test"}


def test_every_focus_series_has_a_sharp_frame_and_distinct_steps(rows):
    series = defaultdict(list)
    for r in rows:
        if r.series:
            series[r.series].append(r)
    assert len(series) >= 4
    for name, frames in series.items():
        steps = [r.step for r in frames]
        assert None not in steps and len(set(steps)) == len(steps), name
        assert any(r.blur_label == "sharp" for r in frames), name
        assert len({r.split for r in frames}) == 1, name


@pytest.mark.parametrize("series", ["firepick_xp005_far", "firepick_xp005_near"])
def test_graded_series_is_monotone_under_laplacian_variance(rows, series):
    """The labels (Z from the file names, focus at Z -50 from the source) agree with a second method: the variance of
    the Laplacian falls strictly with the distance from the in-focus frame."""
    frames = [r for r in rows if r.series == series]
    focus = next(r.step for r in frames if r.blur_label == "sharp")
    assert focus is not None
    ordered = sorted(frames, key=lambda r: abs((r.step or 0) - focus))
    lapvar = [float(cv2.Laplacian(cv2.cvtColor(load(r, DATA), cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()) for r in ordered]
    assert all(a > b for a, b in itertools.pairwise(lapvar)), lapvar
    assert all(r.split == "test" for r in frames)


def _row(name: str, label: str) -> Row:
    return Row(name, "blur", None, 0, False, label, "", None, "src", "test")


def test_misranked_pairs_lists_sharp_images_scored_at_or_below_blurred_ones():
    rows = [_row("s1", "sharp"), _row("s2", "sharp"), _row("b1", "blurred"), _row("u", "")]
    bad = misranked_pairs(rows, [50.0, 10.0, 20.0, 0.0])
    assert [(a.file, b.file) for a, _, b, _ in bad] == [("s2", "b1")]
    tie = misranked_pairs(rows, [20.0, 30.0, 20.0, 0.0])
    assert [(a.file, b.file) for a, _, b, _ in tie] == [("s1", "b1")]


# ------------------------------------------------------------------------------------------ batch 2 (issue 13)
def _sha1_split(repo: str) -> str:
    """The split rule fixed before batch 2 was labelled (PROVENANCE.md): last hex digit of sha1(owner/name, lower
    case) even -> tune, odd -> test."""
    return "tune" if int(hashlib.sha1(repo.lower().encode("utf-8")).hexdigest()[-1], 16) % 2 == 0 else "test"


def test_batches_keep_their_order_and_have_disjoint_sources(rows):
    batches = [r.batch for r in rows]
    assert set(batches) == set(range(1, 31))
    assert batches == sorted(batches)  # each labelling round is appended after the previous one
    sources = {b: {r.source for r in rows if r.batch == b} for b in range(1, 31)}
    for b in range(2, 31):
        earlier = set().union(*(sources[a] for a in range(1, b)))
        assert not sources[b] & earlier and len(sources[b]) >= 5, b


@pytest.mark.parametrize("batch", list(range(2, 31)))
def test_later_batches_follow_the_sha1_split_rule_and_have_both_sides(rows, batch):
    later = [r for r in rows if r.batch == batch]
    assert all(r.split == _sha1_split(r.source) for r in later), {r.source: r.split for r in later}
    for split in ("tune", "test"):
        side = [r for r in later if r.split == split]
        assert any(r.set == "rotation" and r.has_text for r in side), split
        # batch 4's two pages without text are both on the test side, batch 25's six on its tune side
        if (split == "test" and batch != 25) or batch < 4 or (split == "tune" and batch == 25):
            assert any(r.set == "rotation" and not r.has_text for r in side), split
        if (
            batch == 2
        ):  # batches 3-19 found no licensed blur or focus series, batch 20 blurred photos on its test side only, batch 21 one focus pair on its tune side, batch 22 one focus series on its test side, batch 23 none, batch 24 sharp / blurred pairs on both sides, batch 25 none, batch 26 sharp / blurred pairs on its test side, batch 27 one focus series on its tune side, left out, batch 28 none, batch 29 sharp / blurred triplets on its test side and two synthetic pairs on its tune side, batch 30 a focus series on its test side and a pair on its tune side (PROVENANCE.md)
            assert any(r.set == "blur" and r.blur_label == "blurred" for r in side), split
            assert any(r.set == "blur" and r.blur_label == "sharp" for r in side), split
    orientations = {r.orientation for r in later if r.split == "test" and r.set == "rotation" and r.has_text}
    assert orientations == {0, 90, 180, 270}


def test_batch_two_labels_are_valid(rows):
    for r in (r for r in rows if r.batch == 2):
        assert r.set in ("rotation", "blur"), r.file
        assert r.orientation in (0, 90, 180, 270), r.file
        assert not r.series and r.step is None, r.file  # no graded focus series in batch 2
        if r.set == "rotation":
            assert (r.skew is not None) == r.has_text, r.file
            assert r.skew is None or -45 < r.skew <= 45, r.file
        else:
            assert r.blur_label in ("sharp", "blurred"), r.file


def test_batch_two_provenance_names_a_licence_and_a_full_commit_per_source(rows):
    text = (DATA / "PROVENANCE.md").read_text(encoding="utf-8")
    section = text[text.index("## Batch 2") :]
    commits = section[section.index("Full commit hashes (batch 2):") :]
    for source in {r.source for r in rows if r.batch == 2}:
        assert re.search(re.escape(source) + r" [0-9a-f]{40}\b", commits), source
        table_rows = [line for line in section.splitlines() if line.startswith("| ") and f"| {source} |" in line]
        assert table_rows, source
        for line in (line for line in table_rows if "(same file as rotation row)" not in line):
            licence = line.split(" | ")[5]  # file | set | repo | path | commit | licence | ...
            assert re.match(r"(MIT|Apache-2\.0|BSD-\d-Clause|GPL-2\.0-or-later) \(", licence), line


def test_loader_reads_the_batch_column_and_defaults_to_one_without_it(tmp_path: Path):
    with open(DATA / "labels.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert "batch" in table[0]
    without = [{k: v for k, v in r.items() if k != "batch"} for r in table[:3]]
    with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(without[0]))
        w.writeheader()
        w.writerows(without)
    assert [r.batch for r in load_rows(tmp_path)] == [1, 1, 1]
    assert [r.batch for r in load_rows(DATA)] == [int(r["batch"]) for r in table]


def test_the_test_split_is_also_reported_per_batch(rows):
    rot = [r for r in rows if r.set == "rotation"]
    groups = dict(split_groups(rot, "test"))
    per_batch = [f"test, batch {b} sources (held out)" for b in range(1, 31)]
    assert list(groups) == ["test", *per_batch]
    assert sorted(i for g in per_batch for i in groups[g]) == sorted(groups["test"])
    for b, g in zip(
        range(1, 31),
        per_batch,
    ):
        assert all(rot[i].batch == b and rot[i].split == "test" for i in groups[g])
    assert [label for label, _ in split_groups(rot, "tune")] == ["tune"]  # the tune side is never split further


# Rotated files and the upright file they were turned from (by the source, or by our lossless transpose).
_TURNED = [
    ("rotation/tjs-simple-90.jpg", "rotation/tjs-simple.png"),
    ("rotation/tjs-simple-180.jpg", "rotation/tjs-simple.png"),
    ("rotation/tjs-simple-270.jpg", "rotation/tjs-simple.png"),
    ("rotation/naps2-skewed_bw_rot180.png", "rotation/naps2-skewed_bw.png"),
    ("rotation/naps2-ocr_test_rot90.png", "rotation/naps2-ocr_test.jpg"),
    ("rotation/cnocr-multi-line_en_white_rot270.png", "rotation/cnocr-multi-line_en_white.png"),
    ("rotation/p2t-zh1_rot90.png", "rotation/p2t-zh1.jpg"),
    # batch 8 (our lossless transposes of stored upright or upside-down files)
    ("rotation/dmtx-jpg_raw_text_rot90.png", "rotation/dmtx-jpg_raw_text.jpg"),
    ("rotation/dmtx-png_raw_text_rot270.png", "rotation/dmtx-png_raw_text.png"),
    ("rotation/ocropy-testpage_rot90.png", "rotation/ocropy-testpage.png"),
    ("rotation/ocropy-aim916_rot270.png", "rotation/ocropy-aim916.png"),
    ("rotation/rcpt-example_image_rot90.png", "rotation/rcpt-example_image.jpg"),
    ("rotation/lp-example-table_rot90.png", "rotation/lp-example-table.jpeg"),
    # batch 9 (our lossless transposes of stored upright files)
    ("rotation/gcv-document_rot90.png", "rotation/gcv-document.jpg"),
    ("rotation/gcv-handwritten_rot180.png", "rotation/gcv-handwritten.jpg"),
    ("rotation/gcv-text_rot270.png", "rotation/gcv-text.jpg"),
    ("rotation/gcv-mountain_rot90.png", "rotation/gcv-mountain.jpg"),
    ("rotation/lept-di_rot270.png", "rotation/lept-di.png"),
    ("rotation/arocr-capr12_rot180.png", "rotation/arocr-capr12.png"),
    ("rotation/arocr-capr14_rot90.png", "rotation/arocr-capr14.jpg"),
    ("rotation/arocr-test_rot270.png", "rotation/arocr-test.png"),
    ("rotation/cvc-scenetext06_rot90.png", "rotation/cvc-scenetext06.jpg"),
    ("rotation/cvc-scenetext_segmented_word03_rot180.png", "rotation/cvc-scenetext_segmented_word03.jpg"),
    ("rotation/swt-IMG_0332_rot270.png", "rotation/swt-IMG_0332.jpg"),
    # batch 10 (our lossless transposes of stored upright files)
    ("rotation/i2t-borderless_1_rot90.png", "rotation/i2t-borderless_1.png"),
    ("rotation/i2t-implicit_rot180.png", "rotation/i2t-implicit.png"),
    ("rotation/i2t-surya_test_rot270.png", "rotation/i2t-surya_test.png"),
    ("rotation/i2t-text_test_rot90.png", "rotation/i2t-text_test.jpg"),
    ("rotation/imu-notecard_rot180.png", "rotation/imu-notecard.png"),
    ("rotation/nshr-graph-paper-ink-only_rot90.png", "rotation/nshr-graph-paper-ink-only.jpg"),
    ("rotation/doxa-2JohnC1V3_rot180.png", "rotation/doxa-2JohnC1V3.png"),
    ("rotation/bho-page03_rot270.png", "rotation/bho-page03.jpg"),
    # batch 11 (our lossless transposes of stored upright files)
    ("rotation/vdr-lidl_02032020_02_00716_rot90.png", "rotation/vdr-lidl_02032020_02_00716.jpg"),
    ("rotation/vdr-lidl_30042020_08_01958_rot270.png", "rotation/vdr-lidl_30042020_08_01958.jpg"),
    ("rotation/ocrpt-t1_rot90.png", "rotation/ocrpt-t1.png"),
    ("rotation/ocrpt-t3_rot270.png", "rotation/ocrpt-t3.png"),
    ("rotation/ocrpt-t4_rot180.png", "rotation/ocrpt-t4.png"),
    ("rotation/pclas-img_rot0_demo_rot90.png", "rotation/pclas-img_rot0_demo.jpg"),
    # batch 12 (our lossless transposes of stored files; tsr-no_table.jpg is stored at orientation 270)
    ("rotation/txr-form_rot90.png", "rotation/txr-form.png"),
    ("rotation/txr-matrix_rot180.png", "rotation/txr-matrix.png"),
    ("rotation/txr-receipt_rot270.png", "rotation/txr-receipt.jpg"),
    ("rotation/txr-excel_rot270.png", "rotation/txr-excel.png"),
    ("rotation/txr-invoice_rot270.png", "rotation/txr-invoice.png"),
    ("rotation/rlay-layout_rot90.png", "rotation/rlay-layout.jpg"),
    ("rotation/tsr-no_table_rot90.png", "rotation/tsr-no_table.jpg"),
    ("rotation/tsr-table_rot180.png", "rotation/tsr-table.jpg"),
    ("rotation/alp-russian_rot180.png", "rotation/alp-russian.png"),
    ("rotation/opr-sample-ara_rot90.png", "rotation/opr-sample-ara.png"),
    # batch 13 (our lossless transposes of stored upright files)
    ("rotation/fdd-sample1_rot270.png", "rotation/fdd-sample1.jpg"),
    ("rotation/fdd-sample3_rot180.png", "rotation/fdd-sample3.jpg"),
    ("rotation/vot-mcocr_public_145013atlmq_rot270.png", "rotation/vot-mcocr_public_145013atlmq.jpg"),
    ("rotation/ckvb-skew_16_rot90.png", "rotation/ckvb-skew_16.jpg"),
    ("rotation/ckvb-skew_7_rot180.png", "rotation/ckvb-skew_7.png"),
    ("rotation/ckvb-skew_10_rot90.png", "rotation/ckvb-skew_10.png"),
    ("rotation/ckvb-skew_11_rot90.png", "rotation/ckvb-skew_11.png"),
    ("rotation/ckvb-skew_13_rot180.png", "rotation/ckvb-skew_13.jpg"),
    ("rotation/ckvb-skew_14_rot270.png", "rotation/ckvb-skew_14.jpg"),
    ("rotation/ddoc-skewed_input_rot180.png", "rotation/ddoc-skewed_input.png"),
    ("rotation/ddoc-sample_2_rot90.png", "rotation/ddoc-sample_2.png"),
    ("rotation/vocr-vietocr_rot270.png", "rotation/vocr-vietocr.jpg"),
    # batch 14 (our lossless transposes of stored upright files)
    ("rotation/dutl-document_example_rotated_rot180.png", "rotation/dutl-document_example_rotated.png"),
    ("rotation/dutl-document_example_rot270.png", "rotation/dutl-document_example.png"),
    ("rotation/uinf-receipt-sample_rot180.png", "rotation/uinf-receipt-sample.jpg"),
    ("rotation/uinf-test-image_rot90.png", "rotation/uinf-test-image.jpg"),
    ("rotation/uinf-loremipsum_rot270.png", "rotation/uinf-loremipsum.png"),
    ("rotation/uinf-easy_table_rot180.png", "rotation/uinf-easy_table.jpg"),
    ("rotation/uinf-RGBA_image_rot270.png", "rotation/uinf-RGBA_image.png"),
    ("rotation/uinf-ilpa-example-1_rot90.png", "rotation/uinf-ilpa-example-1.jpg"),
    ("rotation/wdnn-cvl_rot90.png", "rotation/wdnn-cvl.jpg"),
    ("rotation/wdnn-random_rot270.png", "rotation/wdnn-random.jpg"),
    ("rotation/cstd-zh_rot270.png", "rotation/cstd-zh.jpg"),
    ("rotation/cstd-zh2_rot90.png", "rotation/cstd-zh2.jpg"),
    ("rotation/cstd-zh3_rot180.png", "rotation/cstd-zh3.jpg"),
    # batch 15 (our lossless transposes of stored upright files)
    ("rotation/tml-tamil_handwritten_rot90.png", "rotation/tml-tamil_handwritten.jpg"),
    ("rotation/tml-tamil_handwritten_1_rot180.png", "rotation/tml-tamil_handwritten_1.jpg"),
    ("rotation/tml-tamil_sentence_1_rot270.png", "rotation/tml-tamil_sentence_1.png"),
    ("rotation/tml-english_tamil_1_rot90.png", "rotation/tml-english_tamil_1.jpg"),
    ("rotation/tml-tamil_sentence_rot180.png", "rotation/tml-tamil_sentence.jpg"),
    ("rotation/bbx-bill_rot270.png", "rotation/bbx-bill.jpg"),
    ("rotation/rco-receipt_rot90.png", "rotation/rco-receipt.jpg"),
    ("rotation/rco-main-street-restaurant-receipt_rot180.png", "rotation/rco-main-street-restaurant-receipt.jpg"),
    ("rotation/dots-russian_rot90.png", "rotation/dots-russian.jpg"),
    ("rotation/dots-Tibetan_rot180.png", "rotation/dots-Tibetan.jpg"),
    ("rotation/dots-kannada_rot270.png", "rotation/dots-kannada.jpg"),
    ("rotation/dol-page_5_rot270.png", "rotation/dol-page_5.jpg"),
    # batch 16 (our lossless transposes of stored upright files)
    ("rotation/ocrjp-testshot1_rot90.png", "rotation/ocrjp-testshot1.png"),
    ("rotation/ocrjp-testshot1_rot180.png", "rotation/ocrjp-testshot1.png"),
    ("rotation/ocrjp-testshot1_rot270.png", "rotation/ocrjp-testshot1.png"),
    ("rotation/ocrjp-testshot2_rot180.png", "rotation/ocrjp-testshot2.png"),
    ("rotation/ocrjp-testshot2_rot90.png", "rotation/ocrjp-testshot2.png"),
    ("rotation/kodtr-2_rot180.png", "rotation/kodtr-2.jpg"),
    ("rotation/kodtr-2_rot270.png", "rotation/kodtr-2.jpg"),
    ("rotation/kodtr-5_rot90.png", "rotation/kodtr-5.jpg"),
    ("rotation/kodtr-3_rot90.png", "rotation/kodtr-3.jpg"),
    ("rotation/kodtr-3_rot180.png", "rotation/kodtr-3.jpg"),
    ("rotation/kalch-test_page_rot180.png", "rotation/kalch-test_page.png"),
    ("rotation/socr-sample_rot270.png", "rotation/socr-sample.png"),
    ("rotation/tfy-dewarp_0019_rot90.png", "rotation/tfy-dewarp_0019.jpg"),
    ("rotation/tfy-sharp_60_rot180.png", "rotation/tfy-sharp_60.jpg"),
    ("rotation/tfy-dewarp_0021_rot270.png", "rotation/tfy-dewarp_0021.jpg"),
    ("rotation/aocr-arabic-1_rot90.png", "rotation/aocr-arabic-1.png"),
    ("rotation/aocr-arabic-2_rot180.png", "rotation/aocr-arabic-2.png"),
    # batch 17 (our lossless transposes of stored upright files)
    ("rotation/frt-invoice_sample_rot90.png", "rotation/frt-invoice_sample.jpg"),
    ("rotation/frt-invoice_sample_rot180.png", "rotation/frt-invoice_sample.jpg"),
    ("rotation/frt-w2-single_rot180.png", "rotation/frt-w2-single.png"),
    ("rotation/frt-w2-single_rot270.png", "rotation/frt-w2-single.png"),
    ("rotation/frt-layout-formulas_rot90.png", "rotation/frt-layout-formulas.png"),
    ("rotation/frt-layout-formulas_rot270.png", "rotation/frt-layout-formulas.png"),
    ("rotation/dkocr-japnese_rot90.png", "rotation/dkocr-japnese.png"),
    ("rotation/dkocr-japnese_rot180.png", "rotation/dkocr-japnese.png"),
    ("rotation/dkocr-dd_rot270.png", "rotation/dkocr-dd.jpg"),
    ("rotation/omnip-demo_image_rot90.png", "rotation/omnip-demo_image.png"),
    ("rotation/omnip-demo_image_rot180.png", "rotation/omnip-demo_image.png"),
    ("rotation/unp-imgsrc001_rot90.png", "rotation/unp-imgsrc001.png"),
    ("rotation/unp-imgsrc001_rot180.png", "rotation/unp-imgsrc001.png"),
    ("rotation/unp-imgsrc001_rot270.png", "rotation/unp-imgsrc001.png"),
    ("rotation/unp-imgsrc002_rot180.png", "rotation/unp-imgsrc002.png"),
    ("rotation/unp-imgsrc002_rot270.png", "rotation/unp-imgsrc002.png"),
    # batch 18 (our lossless transposes of stored files)
    ("rotation/dsp-letter-en_rot90.png", "rotation/dsp-letter-en.jpg"),
    ("rotation/dsp-letter-en_rot180.png", "rotation/dsp-letter-en.jpg"),
    ("rotation/dsp-letter-en_rot270.png", "rotation/dsp-letter-en.jpg"),
    ("rotation/dsp-jfif_rot90.png", "rotation/dsp-jfif.jpg"),
    ("rotation/dsp-jfif_rot270.png", "rotation/dsp-jfif.jpg"),
    ("rotation/dsp-mobile01_rot180.png", "rotation/dsp-mobile01.jpg"),
    ("rotation/dsp-mobile04_rot90.png", "rotation/dsp-mobile04.jpg"),
    ("rotation/tphp-text_rot90.png", "rotation/tphp-text.png"),
    ("rotation/tphp-text_rot270.png", "rotation/tphp-text.png"),
    ("rotation/tphp-mixed-languages_rot180.png", "rotation/tphp-mixed-languages.png"),
    ("rotation/tphp-german_rot90.png", "rotation/tphp-german.png"),
    ("rotation/tphp-8055_rot270.png", "rotation/tphp-8055.png"),
    ("rotation/qvl-ocr_example2_rot90.png", "rotation/qvl-ocr_example2.jpg"),
    ("rotation/qvl-docparsing_example6_rot270.png", "rotation/qvl-docparsing_example6.jpg"),
    ("rotation/qvl-docparsing_example2_rot180.png", "rotation/qvl-docparsing_example2.jpg"),
    ("rotation/rtess-test_words_rot90.png", "rotation/rtess-test_words.png"),
    ("rotation/rtess-test_words_rot180.png", "rotation/rtess-test_words.png"),
    ("rotation/rtess-test-pdf_rot270.png", "rotation/rtess-test-pdf.png"),
    ("rotation/pdw-finnish_cooking_a_rot90.png", "rotation/pdw-finnish_cooking_a.jpg"),
    ("rotation/pdw-weimar_newspaper_a_rot180.png", "rotation/pdw-weimar_newspaper_a.png"),
    ("rotation/irs-simple_rot90.png", "rotation/irs-simple.png"),
    ("rotation/irs-simple_rot270.png", "rotation/irs-simple.png"),
    # batch 19 (our lossless transposes of stored files)
    ("rotation/acb-page_rot90.png", "rotation/acb-page.jpeg"),
    ("rotation/acb-page_rot180.png", "rotation/acb-page.jpeg"),
    ("rotation/acb-page_rot270.png", "rotation/acb-page.jpeg"),
    ("rotation/acb-school_notes_rot90.png", "rotation/acb-school_notes.png"),
    ("rotation/acb-school_notes_rot180.png", "rotation/acb-school_notes.png"),
    ("rotation/acb-vehicle_form_rot270.png", "rotation/acb-vehicle_form.jpg"),
    ("rotation/acb-whiteboard_rot90.png", "rotation/acb-whiteboard.png"),
    ("rotation/acb-nutrition_label_rot180.png", "rotation/acb-nutrition_label.png"),
    ("rotation/acb-receipt1_rot270.png", "rotation/acb-receipt1.png"),
    ("rotation/acb-table_rot90.png", "rotation/acb-table.png"),
    ("rotation/acb-org_chart_rot180.png", "rotation/acb-org_chart.jpeg"),
    ("rotation/acb-stack_overflow_rot270.png", "rotation/acb-stack_overflow.png"),
    ("rotation/mcb-receipt_rot90.png", "rotation/mcb-receipt.jpg"),
    ("rotation/mcb-table_rot270.png", "rotation/mcb-table.png"),
    ("rotation/mcb-invoice_rot90.png", "rotation/mcb-invoice.png"),
    ("rotation/pil-multiline_text_rot90.png", "rotation/pil-multiline_text.png"),
    ("rotation/pil-test_arabictext_features_rot180.png", "rotation/pil-test_arabictext_features.png"),
    ("rotation/pil-test_complex_unicode_text_rot270.png", "rotation/pil-test_complex_unicode_text.png"),
    ("rotation/pil-test_complex_unicode_text2_rot90.png", "rotation/pil-test_complex_unicode_text2.png"),
    ("rotation/ekyc-task1_screen_rot90.png", "rotation/ekyc-task1_screen.png"),
    # batch 20 (lossless transposes of stored files)
    ("rotation/dal-run_test_card_rot180.png", "rotation/dal-run_test_card.jpg"),
    ("rotation/gdai-checkboxes_rot90.png", "rotation/gdai-checkboxes.jpg"),
    ("rotation/gdai-enrichments_rot270.png", "rotation/gdai-enrichments.jpg"),
    ("rotation/gdai-multiple_handwritings_rot180.png", "rotation/gdai-multiple_handwritings.jpg"),
    ("rotation/gdai-single_handwriting_rot270.png", "rotation/gdai-single_handwriting.jpg"),
    ("rotation/gdai-single_handwriting_rot90.png", "rotation/gdai-single_handwriting.jpg"),
    ("rotation/mrzs-img3_rot180.png", "rotation/mrzs-img3.jpg"),
    ("rotation/mrzs-img3_rot270.png", "rotation/mrzs-img3.jpg"),
    ("rotation/mrzs-img3_rot90.png", "rotation/mrzs-img3.jpg"),
    ("rotation/pmu-htmlbox1_rot270.png", "rotation/pmu-htmlbox1.png"),
    ("rotation/pmu-htmlbox3_rot180.png", "rotation/pmu-htmlbox3.png"),
    ("rotation/zrx-0011_rot180.png", "rotation/zrx-0011.png"),
    ("rotation/zxg-fp01_rot180.png", "rotation/zxg-fp01.png"),
    ("rotation/zxg-fp01_rot270.png", "rotation/zxg-fp01.png"),
    ("rotation/zxg-fp01_rot90.png", "rotation/zxg-fp01.png"),
    ("rotation/zxg-fp14_rot90.png", "rotation/zxg-fp14.png"),
    # batch 21 (lossless transposes of stored files; the EXIF examples turned by their source's generator)
    ("rotation/dxt-invoice_test_rot90.png", "rotation/dxt-invoice_test.jpg"),
    ("rotation/dxt-invoice_test_rot180.png", "rotation/dxt-invoice_test.jpg"),
    ("rotation/dxt-invoice_test_rot270.png", "rotation/dxt-invoice_test.jpg"),
    ("rotation/dxt-demo_rot90.png", "rotation/dxt-demo.jpg"),
    ("rotation/dxt-demo_rot180.png", "rotation/dxt-demo.jpg"),
    ("rotation/sis-einstein_letter_rot90.png", "rotation/sis-einstein_letter.png"),
    ("rotation/sis-einstein_letter_rot180.png", "rotation/sis-einstein_letter.png"),
    ("rotation/sis-einstein_letter_rot270.png", "rotation/sis-einstein_letter.png"),
    ("rotation/may-deu_website_rot180.png", "rotation/may-deu_website.png"),
    ("rotation/may-title_page_rot90.png", "rotation/may-title_page.png"),
    ("rotation/may-title_page_rot270.png", "rotation/may-title_page.png"),
    ("rotation/exf-landscape_3.jpg", "rotation/exf-landscape_1.jpg"),
    ("rotation/exf-landscape_6.jpg", "rotation/exf-landscape_1.jpg"),
    ("rotation/exf-landscape_8.jpg", "rotation/exf-landscape_1.jpg"),
    # batch 22 (lossless transposes of stored files)
    ("rotation/iskt-23_rot90.png", "rotation/iskt-23.jpg"),
    ("rotation/iskt-26_rot270.png", "rotation/iskt-26.jpg"),
    ("rotation/iskt-28_rot270.png", "rotation/iskt-28.jpg"),
    ("rotation/iskt-29_rot90.png", "rotation/iskt-29.jpg"),
    ("rotation/iskt-30_rot180.png", "rotation/iskt-30.jpg"),
    ("rotation/iskt-30_rot270.png", "rotation/iskt-30.jpg"),
    ("rotation/iskt-31_rot180.png", "rotation/iskt-31.jpg"),
    ("rotation/dhs-diva_rot90.png", "rotation/dhs-diva.jpg"),
    ("rotation/dhs-diva_rot180.png", "rotation/dhs-diva.jpg"),
    ("rotation/dhs-diva_rot270.png", "rotation/dhs-diva.jpg"),
    ("rotation/dhs-cini_input_rot90.png", "rotation/dhs-cini_input.jpg"),
    ("rotation/dhs-cini_input_rot270.png", "rotation/dhs-cini_input.jpg"),
    # batch 23 (lossless transposes; the receipt, the EXIF lamp photo and the notebook photo are stored turned)
    ("rotation/rsm-p2_rot90.png", "rotation/rsm-p2.png"),
    ("rotation/rsm-p3_rot180.png", "rotation/rsm-p3.png"),
    ("rotation/rsm-p4_table_rot270.png", "rotation/rsm-p4_table.png"),
    ("rotation/rsm-p6_rot90.png", "rotation/rsm-p6.png"),
    ("rotation/rcp-img0001_stored.jpg", "rotation/rcp-img0001_upright.png"),
    ("rotation/rcp-img0001_rot180.png", "rotation/rcp-img0001_upright.png"),
    ("rotation/rcp-img0001_rot270.png", "rotation/rcp-img0001_upright.png"),
    ("rotation/exy-canon_hdr_no_stored.png", "rotation/exy-canon_hdr_no_upright.png"),
    ("rotation/pet-1_1_10_rot180.png", "rotation/pet-1_1_10.jpg"),
    ("rotation/pet-leaderboard_rot270.png", "rotation/pet-leaderboard.png"),
    ("rotation/gal-bpt6k1110784_f12_rot90.png", "rotation/gal-bpt6k1110784_f12.jpg"),
    ("rotation/lct-DAFANCH96_048MIC06480_L-1_rot180.png", "rotation/lct-DAFANCH96_048MIC06480_L-1.jpg"),
    ("rotation/dfm-img_real.png", "rotation/dfm-img_real_rot270.png"),
    # batch 24 (lossless transposes, two of them saved as JPEG)
    ("rotation/mlk-chinese_rot90.png", "rotation/mlk-chinese.png"),
    ("rotation/mlk-japanese_rot180.png", "rotation/mlk-japanese.png"),
    ("rotation/mlk-korean_rot270.png", "rotation/mlk-korean.png"),
    ("rotation/mlk-devanagari_rot180.png", "rotation/mlk-devanagari.png"),
    ("rotation/mlk-image_has_text_rot270.jpg", "rotation/mlk-image_has_text.jpg"),
    ("rotation/hir-2_ocr_rot90.png", "rotation/hir-2_ocr.png"),
    ("rotation/jak-tes_rot90.png", "rotation/jak-tes.jpg"),
    ("rotation/jak-tes_rot180.png", "rotation/jak-tes.jpg"),
    ("rotation/jak-tes_rot270.png", "rotation/jak-tes.jpg"),
    ("rotation/rim-e2e_rot270.png", "rotation/rim-e2e.jpg"),
    # batch 25 (lossless transposes, some saved as JPEG; gcl-tennis_rot180 is a half-size copy and left out)
    ("rotation/iap-hebrewphrasebook_0078_rot90.jpg", "rotation/iap-hebrewphrasebook_0078.jpg"),
    ("rotation/iap-lanjing_0012_rot270.jpg", "rotation/iap-lanjing_0012.jpg"),
    ("rotation/cob-meiryo_rot270.png", "rotation/cob-meiryo.jpg"),
    ("rotation/cob-simple_rot180.png", "rotation/cob-simple.png"),
    ("rotation/ars-page_08734_rot90.png", "rotation/ars-page_08734.png"),
    ("rotation/ars-page_08734_rot180.png", "rotation/ars-page_08734.png"),
    ("rotation/ars-page_08734_rot270.png", "rotation/ars-page_08734.png"),
    ("rotation/tfx-android_rot90.jpg", "rotation/tfx-android.jpg"),
    ("rotation/gcl-please_walk_on_the_grass_rot270.png", "rotation/gcl-please_walk_on_the_grass.jpg"),
    ("rotation/ocm-wikipedia_test_rot90.png", "rotation/ocm-wikipedia_test.png"),
    ("rotation/ocm-wikipedia_test_rot180.png", "rotation/ocm-wikipedia_test.png"),
    ("rotation/ocm-wikipedia_test_rot270.png", "rotation/ocm-wikipedia_test.png"),
    ("rotation/ocm-test_rot270.png", "rotation/ocm-test.png"),
    # batch 26 (lossless transposes, the same size as their originals)
    ("rotation/i2d-aws_invoice_rot90.png", "rotation/i2d-aws_invoice.png"),
    ("rotation/vaz-persian_sample_rot90.png", "rotation/vaz-persian_sample.png"),
    ("rotation/vaz-persian_sample_rot180.png", "rotation/vaz-persian_sample.png"),
    ("rotation/vaz-persian_sample_rot270.png", "rotation/vaz-persian_sample.png"),
    ("rotation/bal-baloo_header_rot180.png", "rotation/bal-baloo_header.png"),
    ("rotation/bal-baloo_header_rot270.png", "rotation/bal-baloo_header.png"),
    ("rotation/sar-event_photo_rot270.jpg", "rotation/sar-event_photo.jpg"),
    ("rotation/com-promo4_latin_greek_cyrillic_rot90.png", "rotation/com-promo4_latin_greek_cyrillic.png"),
    ("rotation/txn-settings_menu_rot270.png", "rotation/txn-settings_menu.png"),
    ("rotation/fus-arabic_latin_charset_rot90.png", "rotation/fus-arabic_latin_charset.png"),
    ("rotation/shz-arabic_paragraph_rot270.png", "rotation/shz-arabic_paragraph.png"),
    ("rotation/tir-indigo_banner_rot90.png", "rotation/tir-indigo_banner.png"),
    # batch 27 (lossless transposes, the same size as their originals; als-blank_paper_bag_rot90 is left out: a blank
    # paper bag looks alike turned 90 or 270 degrees, so the second check cannot tell them apart)
    ("rotation/aib-receipt_photo_rot90.jpg", "rotation/aib-receipt_photo.jpg"),
    ("rotation/aib-whiteboard_handwriting_rot270.jpg", "rotation/aib-whiteboard_handwriting.jpg"),
    ("rotation/aib-web_shop_screenshot_rot180.png", "rotation/aib-web_shop_screenshot.png"),
    ("rotation/aib-penguin_illustration_rot180.jpg", "rotation/aib-penguin_illustration.jpg"),
    ("rotation/als-grocery_receipt_photo_rot270.jpg", "rotation/als-grocery_receipt_photo.jpg"),
    ("rotation/als-handwritten_math_notes_rot180.jpg", "rotation/als-handwritten_math_notes.jpg"),
    ("rotation/als-printed_page_photo_rot90.png", "rotation/als-printed_page_photo.png"),
    ("rotation/arc-archivo_words_specimen_rot270.png", "rotation/arc-archivo_words_specimen.png"),
    ("rotation/arc-archivo_alphabet_specimen_rot180.png", "rotation/arc-archivo_alphabet_specimen.png"),
    ("rotation/sth-aa_card_rot90.png", "rotation/sth-aa_card.png"),
    ("rotation/sth-aa_card_rot180.png", "rotation/sth-aa_card.png"),
    ("rotation/lxw-wenkai_chinese_paragraphs_rot90.png", "rotation/lxw-wenkai_chinese_paragraphs.png"),
    ("rotation/lxw-wenkai_cjk_table_rot180.png", "rotation/lxw-wenkai_cjk_table.png"),
    ("rotation/lxw-wenkai_korean_chinese_rot270.png", "rotation/lxw-wenkai_korean_chinese.png"),
    ("rotation/fsk-hot_spring_edge_rot90.jpg", "rotation/fsk-hot_spring_edge.jpg"),
    ("rotation/rdx-arabic_weight_proof_rot90.png", "rotation/rdx-arabic_weight_proof.png"),
    ("rotation/rdx-reading_proof_dense_rot270.png", "rotation/rdx-reading_proof_dense.png"),
    ("rotation/rdx-adjustment_notes_rot180.png", "rotation/rdx-adjustment_notes.png"),
    ("rotation/heb-heebo_alphabet_specimen_rot180.png", "rotation/heb-heebo_alphabet_specimen.png"),
    ("rotation/dgt-dotgothic_japanese_sample_rot90.png", "rotation/dgt-dotgothic_japanese_sample.png"),
    ("rotation/dgt-dotgothic_kana_chart_rot270.png", "rotation/dgt-dotgothic_kana_chart.png"),
    ("rotation/cic-julia_notebook_screenshot_rot90.png", "rotation/cic-julia_notebook_screenshot.png"),
    ("rotation/cic-macvim_screenshot_rot180.png", "rotation/cic-macvim_screenshot.png"),
    ("rotation/pif-telescope_photo_rot90.jpg", "rotation/pif-telescope_photo.jpg"),
    ("rotation/pif-telescope_photo_rot270.jpg", "rotation/pif-telescope_photo.jpg"),
    ("rotation/ian-iansui_hanzi_block_rot90.png", "rotation/ian-iansui_hanzi_block.png"),
    ("rotation/ian-iansui_update_chars_rot180.png", "rotation/ian-iansui_update_chars.png"),
    ("rotation/cai-cairo_arabic_sample_rot270.png", "rotation/cai-cairo_arabic_sample.png"),
    ("rotation/cai-cairo_arabic_paragraph_rot90.png", "rotation/cai-cairo_arabic_paragraph.png"),
    ("rotation/mkz-markazi_arabic_english_rot90.png", "rotation/mkz-markazi_arabic_english.png"),
    ("rotation/mkz-markazi_arabic_vocalised_rot180.png", "rotation/mkz-markazi_arabic_vocalised.png"),
    # batch 28 (lossless transposes, the same size as their originals)
    ("rotation/med-arabic_overview_rot90.png", "rotation/med-arabic_overview.png"),
    ("rotation/med-hebrew_reminder_form_rot270.png", "rotation/med-hebrew_reminder_form.png"),
    ("rotation/med-tamil_timeline_rot180.png", "rotation/med-tamil_timeline.png"),
    ("rotation/spr-book_photo_even_rot270.jpg", "rotation/spr-book_photo_even.jpg"),
    ("rotation/spr-book_photo_even_rot90.jpg", "rotation/spr-book_photo_even.jpg"),
    ("rotation/spr-book_photo_odd_rot90.jpg", "rotation/spr-book_photo_odd.jpg"),
    ("rotation/spr-book_photo_odd_rot180.jpg", "rotation/spr-book_photo_odd.jpg"),
    ("rotation/dpr-scanned_book_page_rot90.png", "rotation/dpr-scanned_book_page.png"),
    ("rotation/dpr-scanned_book_page_rot180.png", "rotation/dpr-scanned_book_page.png"),
    ("rotation/dpr-greek_quotation_scan_rot270.png", "rotation/dpr-greek_quotation_scan.png"),
    ("rotation/dpr-fraktur_verse_scan_rot90.png", "rotation/dpr-fraktur_verse_scan.png"),
    ("rotation/sqh-red_panda_photo_rot90.jpg", "rotation/sqh-red_panda_photo.jpg"),
    ("rotation/sqh-red_panda_photo_rot180.jpg", "rotation/sqh-red_panda_photo.jpg"),
    ("rotation/sqh-red_panda_photo_rot270.jpg", "rotation/sqh-red_panda_photo.jpg"),
    ("rotation/ftp-amnesty_petition_handwritten_rot90.jpg", "rotation/ftp-amnesty_petition_handwritten.jpg"),
    ("rotation/ftp-sanskrit_manuscript_leaf_rot270.jpg", "rotation/ftp-sanskrit_manuscript_leaf.jpg"),
    ("rotation/ftp-german_decision_scan_rot180.png", "rotation/ftp-german_decision_scan.png"),
    ("rotation/cmp-compass_japanese_rot90.png", "rotation/cmp-compass_japanese.png"),
    ("rotation/cmp-compass_hebrew_dark_rot180.png", "rotation/cmp-compass_hebrew_dark.png"),
    ("rotation/mpt-weather_hindi_rot270.png", "rotation/mpt-weather_hindi.png"),
    ("rotation/mpt-weather_nepali_rot90.png", "rotation/mpt-weather_nepali.png"),
    ("rotation/snm-tibetan_settings_rot180.png", "rotation/snm-tibetan_settings.png"),
    ("rotation/avs-arabic_photo_info_rot270.png", "rotation/avs-arabic_photo_info.png"),
    ("rotation/wth-manage_locations_rot90.png", "rotation/wth-manage_locations.png"),
    # batch 29 (quarter turns of their originals; the photos' turns are re-encoded JPEGs)
    ("rotation/mac-scanner_camera_view_rot90.png", "rotation/mac-scanner_camera_view.png"),
    ("rotation/mac-scanner_crop_view_rot270.png", "rotation/mac-scanner_crop_view.png"),
    ("rotation/mac-scanned_page_export_rot180.png", "rotation/mac-scanned_page_export.png"),
    ("rotation/ppr-elephants_photo_rot90.jpg", "rotation/ppr-elephants_photo.jpg"),
    ("rotation/ppr-elephants_photo_rot270.jpg", "rotation/ppr-elephants_photo.jpg"),
    ("rotation/ppr-palms_beach_photo_rot180.jpg", "rotation/ppr-palms_beach_photo.jpg"),
    ("rotation/ppr-beach_sand_photo_rot90.jpg", "rotation/ppr-beach_sand_photo.jpg"),
    ("rotation/ppr-photo_list_screenshot_rot180.png", "rotation/ppr-photo_list_screenshot.png"),
    ("rotation/whp-japanese_today_rot90.png", "rotation/whp-japanese_today.png"),
    ("rotation/whp-korean_habit_calendar_rot270.png", "rotation/whp-korean_habit_calendar.png"),
    ("rotation/whp-chinese_today_rot180.png", "rotation/whp-chinese_today.png"),
    ("rotation/slg-bengali_welcome_rot90.png", "rotation/slg-bengali_welcome.png"),
    ("rotation/slg-tamil_welcome_rot270.png", "rotation/slg-tamil_welcome.png"),
    ("rotation/slg-urdu_welcome_rot180.png", "rotation/slg-urdu_welcome.png"),
    ("rotation/otp-arabic_settings_rot90.png", "rotation/otp-arabic_settings.png"),
    ("rotation/otp-trad_chinese_settings_rot180.png", "rotation/otp-trad_chinese_settings.png"),
    ("rotation/blc-korean_calculator_rot90.png", "rotation/blc-korean_calculator.png"),
    # batch 30 (quarter turns of their originals)
    ("rotation/oss-ip_agreement_page_photo_rot90.jpg", "rotation/oss-ip_agreement_page_photo.jpg"),
    ("rotation/oss-ip_agreement_page_photo_rot270.jpg", "rotation/oss-ip_agreement_page_photo.jpg"),
    ("rotation/oss-whiteboard_camera_view_rot180.png", "rotation/oss-whiteboard_camera_view.png"),
    ("rotation/ops-document_pages_view_rot270.jpg", "rotation/ops-document_pages_view.jpg"),
    ("rotation/ops-page_grid_menu_rot180.jpg", "rotation/ops-page_grid_menu.jpg"),
    ("rotation/pvw-basilica_dusk_photo_rot90.jpg", "rotation/pvw-basilica_dusk_photo.jpg"),
    ("rotation/pvw-mountain_pines_photo_rot270.jpg", "rotation/pvw-mountain_pines_photo.jpg"),
    ("rotation/pvw-volcano_aerial_photo_rot180.jpg", "rotation/pvw-volcano_aerial_photo.jpg"),
    ("rotation/fsc-printed_page_floor_photo_rot90.jpg", "rotation/fsc-printed_page_floor_photo.jpg"),
    ("rotation/fsc-magazine_cover_photo_rot180.jpg", "rotation/fsc-magazine_cover_photo.jpg"),
    ("rotation/fsc-printed_page_fabric_photo_rot270.jpg", "rotation/fsc-printed_page_fabric_photo.jpg"),
    ("rotation/lyc-chalk_cliffs_photo_rot90.jpg", "rotation/lyc-chalk_cliffs_photo.jpg"),
    ("rotation/lyc-city_sunset_photo_rot180.jpg", "rotation/lyc-city_sunset_photo.jpg"),
    ("rotation/lyc-bw_hills_photo_rot270.jpg", "rotation/lyc-bw_hills_photo.jpg"),
]


def _grey(path: Path, reduce: int) -> Image.Image:
    """The file as a grey image, transparent pixels shown over white (how a viewer shows them), shrunk by `reduce`."""
    im: Image.Image = Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, "white")
        im = Image.alpha_composite(bg, im)
    return im.convert("L").reduce(reduce)


@pytest.mark.parametrize(("turned", "upright"), _TURNED)
def test_orientation_labels_are_the_turn_that_maps_the_upright_file_onto_the_file(rows, turned, upright):
    """Second check of the orientation labels: PIL rotate(label, expand=True) of the upright file (CCW, the
    convention of labels.csv) reproduces the file, and no other quarter turn does."""
    by_file = {r.file: r for r in rows if r.set == "rotation"}
    turn = (by_file[turned].orientation - by_file[upright].orientation) % 360
    assert turn in (90, 180, 270)
    k = 4 if max(Image.open(DATA / upright).size) > 2000 else 1  # compare big scans at a quarter size
    a, b = _grey(DATA / upright, 1), _grey(DATA / turned, k)

    def corr(o: int) -> float:
        r = a.rotate(o, expand=True).reduce(k)  # quarter turns are exact transposes; shrink after turning
        if r.size != b.size:
            return -1.0
        x, y = np.asarray(r, float).ravel(), np.asarray(b, float).ravel()
        return float(np.corrcoef(x, y)[0, 1])

    assert corr(turn) > 0.97
    assert all(corr(o) < 0.9 for o in (90, 180, 270) if o != turn)


def _profile_skew(path: Path) -> float:
    """Skew (CCW positive, folded into (-45, 45]) by a projection-profile search on the binarised page: the angle
    whose de-rotation makes the row and column ink profiles most peaked. Independent of this project's scorer."""
    g = np.asarray(_grey(path, 1))
    s = 1000 / max(g.shape)
    g = cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else g
    ink = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 15)
    h, w = ink.shape

    def peaked(a: float) -> float:
        r = cv2.warpAffine(ink, cv2.getRotationMatrix2D((w / 2, h / 2), -a, 1.0), (w, h), flags=cv2.INTER_NEAREST)
        return float(np.var(np.diff(r.sum(1).astype(float))) + np.var(np.diff(r.sum(0).astype(float))))

    best = max(np.arange(-45.0, 45.0, 0.5), key=peaked)
    best = max(np.arange(best - 0.5, best + 0.5, 0.05), key=peaked)
    return float(-(((-best + 45.0) % 90.0) - 45.0))


@pytest.mark.slow
def test_batch_two_skew_labels_and_their_sign_agree_with_a_projection_profile(rows):
    """The large skews of batch 2 come from the sources' own deskew tests, whose sign conventions differ (NAPS2 is
    clockwise-positive): an independent measurement pins the CCW sign and the size within 1 degree."""
    skewed = [r for r in rows if r.batch == 2 and r.set == "rotation" and r.skew is not None and abs(r.skew) >= 5]
    assert len(skewed) >= 4
    for r in skewed:
        assert r.skew is not None
        assert abs(_profile_skew(DATA / r.file) - r.skew) <= 1.0, r.file


def test_blur_table_rows_have_as_many_cells_as_its_header_with_and_without_focus_series(capsys):
    for rho in ({}, {"s1": -0.99, "s2": -0.5}):
        print_blur_table("test", {"m": BlurFigures(3, 0.75, rho, "1/2"), "n": BlurFigures(3, 0.5, {}, "–")})
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
        assert len(lines) == 4
        assert len({line.count("|") for line in lines}) == 1, lines
        assert lines[2].startswith("| m | 3 | 0.750 |")


def _page(file: str, orientation: int, has_text: bool = True) -> Row:
    return Row(file, "rotation", 0.0, orientation, has_text, "", "", None, "src", "test")


def test_orientation_flags_count_what_the_filter_would_tell_a_user(capsys):
    rows = [
        _page("up.png", 0),
        _page("down.png", 180),
        _page("side.png", 90),
        _page("weak.png", 270),
        _page("blank", 0, False),
    ]
    preds = [
        (0.5, 180, 0.95),  # upright page called upside down, confidently: a wrong flag
        (0.2, 180, 0.99),  # turned over and flagged so: found
        (0.1, 90, 0.5),  # right answer, below the filter's gate: not flagged
        (0.3, 90, 0.97),  # flagged on the wrong side: a wrong flag, not found
        (float("nan"), None, 0.0),  # no text, no answer
    ]
    f = rotation_figures(rows, preds)
    assert (f.turned_flagged, f.wrong_flags) == ("1/3", "2/3")
    assert f.orientation_acc == 0.5 and f.false_answers == "0/1"
    baseline = rotation_figures(rows, [(p[0], None, None) for p in preds])
    assert (baseline.turned_flagged, baseline.wrong_flags) == ("–", "–")
    print_rotation_table("test", {"ours": f, "base": baseline}, {"ours": 1.0}, 5)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert len(lines) == 4 and len({line.count("|") for line in lines}) == 1, lines
    assert "| 1/3 | 2/3 |" in lines[2]


def test_a_rounds_measurement_scores_only_the_batches_it_names(tmp_path: Path, capsys):
    """`--batch 7` must leave later held-out rounds unscored: the methods never see a batch-8 image."""
    (tmp_path / "rotation").mkdir()
    with open(DATA / "labels.csv", newline="", encoding="utf-8") as fh:
        fields = list(csv.DictReader(fh).fieldnames or [])
    rows = []
    for batch in (7, 8):
        name = f"rotation/page{batch}.png"
        Image.new("L", (64, 48), 255 - batch).save(tmp_path / name)
        row = dict.fromkeys(fields, "")
        row.update(file=name, set="rotation", split="test", source_repo=f"o/src{batch}", batch=str(batch))
        row.update(skew_deg="0", orientation="0", has_text="true")
        rows.append(row)
    with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    seen: list[int] = []

    def method(img: np.ndarray) -> dict:
        seen.append(255 - int(img.max()))
        return {"angle": 0.0}

    real_tables({"m": method}, {}, {"m": ("angle", None, None)}, 100.0, False, tmp_path, splits=("test",), batches={7})
    assert seen == [7]
    assert "batch 8" not in capsys.readouterr().out


def test_a_round_without_blur_images_is_measured_with_the_cleanvision_baseline_on(tmp_path: Path, capsys):
    """Batch 10 has rotation pages only: cleanvision rejects an empty file list, and `--batch 10` stopped with its
    ValueError before any table was printed."""
    (tmp_path / "rotation").mkdir()
    with open(DATA / "labels.csv", newline="", encoding="utf-8") as fh:
        fields = list(csv.DictReader(fh).fieldnames or [])
    Image.new("L", (64, 48), 250).save(tmp_path / "rotation" / "page.png")
    row = dict.fromkeys(fields, "")
    row.update(file="rotation/page.png", set="rotation", split="test", source_repo="o/src", batch="10")
    row.update(skew_deg="0", orientation="0", has_text="true")
    with open(tmp_path / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerow(row)
    real_tables(
        {"m": lambda img: {"angle": 0.0}}, {}, {"m": ("angle", None, None)}, 100.0, True, tmp_path, splits=("test",)
    )
    out = capsys.readouterr().out
    assert "rotation set, split=test" in out and "blur set" not in out


def test_a_text_page_without_a_stated_skew_counts_for_no_answer_but_not_for_the_skew_error():
    """A handwritten note of batch 25 has text but no source-stated skew: an answer of 14° was scored as 14° off."""
    rows = [_page("typed.png", 0), Row("note.jpg", "rotation", None, 0, True, "", "", None, "src", "test")]
    answered = rotation_figures(rows, [(1.0, 0, 1.0), (14.0, 0, 1.0)])
    assert answered.mae == answered.mae_given == 1.0 and answered.no_answer == 0.0
    silent = rotation_figures(rows, [(1.0, 0, 1.0), (float("nan"), None, 0.0)])
    assert silent.mae == 1.0 and silent.no_answer == 0.5
