"""The Data quality page on a folder of real text-line crops (benchmarks/data/images) in real Chromium: the handbook's
100 x 100 minimum resolution flags them all, and the page says they are line crops and which height keeps them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.st_helpers import act_and_wait_run, collect_errors, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CROPS = ("aocr-arabic-2.png", "dkocr-dd.jpg", "fel-tamil-text.png", "dkocr-japnese.png", "chw-Fonts.tif")


def test_a_folder_of_line_crops_gets_the_minimum_height_that_keeps_them(app_page, tmp_path):
    source = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "images" / "rotation"
    folder = tmp_path / "lines"
    folder.mkdir()
    for name in CROPS:
        shutil.copy(source / name, folder / name)
    page = app_page
    page.goto("/data-quality")
    wait_idle(page)
    field = page.get_by_label("Data directory to audit")
    field.fill(str(folder))
    act_and_wait_run(page, lambda: field.press("Enter"))
    wait_idle(page)
    expect(
        page.get_by_text(re.compile(r"5 of the 5 images below the minimum resolution are text-line crops"))
    ).to_be_visible()
    expect(page.get_by_text(re.compile(r"of 22 px keeps them"))).to_be_visible()
    # The rejected-images gallery is drawn twice (the audit's run, then the thresholds' fragment): thumbnails whose
    # first /media/ URLs the second draw replaced while the browser was still loading them report an image error.
    errors = [e for e in collect_errors(page) if "Image source error - http://127.0.0.1:" not in e]
    assert errors == []
