"""The Compare page in real Chromium: the demo run (candidate) against a baseline where batch 7 never went bad."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from analysis.demo import simulate_metrics
from tests.e2e.st_helpers import act_and_wait_run, full_app_screenshot, run_tracker, wait_idle
from tests.e2e.test_deep_links import fresh_server, new_tab, wait_first_run
from tests.wandb_writer import write_run


def healed_demo_rows() -> list[dict]:
    """The demo's metrics (same seed, same numbers) except batch 7, which stays healthy and logs its clean scans."""
    rng = np.random.default_rng(11)
    clean_7 = [f"clean/batch_07/img_{j:02d}.png" for j in range(8)]
    rows: list[dict] = []
    for m in simulate_metrics(0):
        b, step = m["batch"], m["step"]
        recall, precision = m["recall"], m["precision"]
        if b == 7 and m["defect"]:
            base = 0.945 - 0.13 * math.exp(-(step / 100) / 7.0)
            recall, precision = base + rng.normal(0, 0.008), base + 0.02 + rng.normal(0, 0.006)
        hmean = 2 * recall * precision / (recall + precision)
        rows.append({f"batch_{b}/recall": recall, f"batch_{b}/precision": precision, f"batch_{b}/hmean": hmean,
                     "global_step": step})  # fmt: skip
        if b == 7:
            rows.append({"problematic_batch_7": clean_7})
    return rows


@pytest.fixture(scope="module")
def healed_baseline(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("baseline"), "healed-demo", healed_demo_rows(), project="ocr-validation")


def nav(page, name):
    act_and_wait_run(page, lambda: page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click())
    wait_idle(page)


def test_compare_journey(app_page, artifacts_dir, healed_baseline):
    page = app_page
    page.goto("/")
    wait_idle(page)
    nav(page, "Compare")
    expect(page.get_by_test_id("stHeading").filter(has_text="Compare")).to_be_visible()
    expect(page.get_by_text("Pick a baseline run")).to_be_visible()
    # the baseline lives elsewhere: pick "Another location…" and type its run folder
    page.get_by_test_id("stSelectbox").filter(has_text="Baseline").click()
    act_and_wait_run(page, lambda: page.get_by_role("option", name="Another location…").click())
    wait_idle(page)
    box = page.get_by_label("Baseline location")
    box.fill(str(healed_baseline))
    act_and_wait_run(page, lambda: box.press("Enter"))
    wait_idle(page)
    # the regressed batch is named, explained (its images got blurrier) and first in the batch picker
    expect(page.get_by_text(re.compile(r"3 regression\(s\) against healed-demo: batch\(es\) 7$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Batch 7 recall fell from 0\.9\d+ to 0\.6\d+")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"its images are blurrier than in the baseline")).first).to_be_visible()
    expect(page.get_by_role("combobox", name="Batch", exact=True)).to_have_value("batch 7")
    expect(page.locator(".gtitle", has_text="How much worse than the baseline")).to_be_visible()
    # the overlay of batch 7 marks where the curves part (the defect starts at step 2000)
    expect(page.locator(".gtitle", has_text="batch 7 · recall: baseline vs candidate")).to_be_visible()
    parting = page.locator(".annotation-text", has_text=re.compile(r"curves part \(step (19|20|21)00\)"))
    expect(parting.first).to_be_visible()
    # side by side: the baseline's clean scans, the candidate's refreshed (blurred) ones
    expect(page.get_by_text("Images of batch 7")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^clean/batch_07/img_00\.png$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^refresh_2000/batch_07/img_\d\d\.png$")).first).to_be_visible()
    assert page.get_by_test_id("stImage").count() >= 2
    full_app_screenshot(page, artifacts_dir / "compare.png")


@pytest.mark.slow
@pytest.mark.parametrize(("path", "title"), [("/compare", "Compare"), ("/runs", "Runs")])
def test_deep_link_on_a_fresh_server(chromium_browser, demo_root, tmp_path, path, title):
    """/compare and /runs as the first request of a new server process go through pages/compare.py (runs.py) to
    the real page, with the sidebar."""
    with fresh_server(demo_root, tmp_path) as url, new_tab(chromium_browser) as page:
        page.goto(url + path)
        wait_first_run(page)
        expect(page.get_by_test_id("stHeading").filter(has_text=title).first).to_be_visible(timeout=90_000)
        expect(page.get_by_test_id("stSidebar").get_by_role("textbox", name="wandb directory")).to_be_visible()
        expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)).to_be_visible()
        assert run_tracker(page).pages_not_found == []
        expect(page.get_by_role("dialog")).to_have_count(0)
        expect(page.get_by_test_id("stException")).to_have_count(0)
