"""The main journey in real Chromium against `streamlit run app.py` on the demo run."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.e2e.st_helpers import act_and_wait_run, collect_errors, full_app_screenshot, wait_idle


def flag_count(text: str) -> int:
    found = re.search(r"(\d+) flagged", text)
    assert found is not None, text
    return int(found.group(1))


def nav(page, name):
    act_and_wait_run(page, lambda: page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click())
    wait_idle(page)


def test_main_journey(app_page, artifacts_dir, tmp_path):
    page = app_page
    page.goto("/")
    expect(page.get_by_test_id("stHeading").filter(has_text="Overview")).to_be_visible()
    wait_idle(page)
    # Overview: the curves draw, the flagged batch is named in the verdict and preselected
    chart = page.get_by_test_id("stVegaLiteChart").first  # the first view's curves: Vega-Lite, no plotly.js
    expect(chart.locator("canvas, svg").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"problematic batches \(.*7"))).to_be_visible()
    expect(page.get_by_test_id("stMultiSelect").first).to_contain_text("7")
    full_app_screenshot(page, artifacts_dir / "overview.png")
    # the other Overview views are lazy tabs: drawn when opened
    act_and_wait_run(page, lambda: page.get_by_role("tab", name="Batch × step heatmap").click())
    wait_idle(page)
    expect(page.locator(".gtitle", has_text="batch × step")).to_be_visible()
    expect(page.locator(".hm, .heatmaplayer").first).to_be_attached()
    full_app_screenshot(page, artifacts_dir / "overview_heatmap.png")
    act_and_wait_run(page, lambda: page.get_by_role("tab", name="Findings").click())
    wait_idle(page)
    # events first (one per real change), the detector hits behind them one click deeper
    expect(page.get_by_text(re.compile(r"\d+ events? \(one per real change\)"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Detector hits \(\d+"))).to_be_visible()
    full_app_screenshot(page, artifacts_dir / "overview_findings.png")

    # Overview -> Batches on the flagged batch: its images with their scores
    act_and_wait_run(page, lambda: page.get_by_role("button", name="Open in Batches").click())
    wait_idle(page)
    expect(page.get_by_test_id("stHeading").filter(has_text="Batches")).to_be_visible()
    expect(page.get_by_test_id("stHeading").filter(has_text="Events for batch 7")).to_be_visible()
    # the images come with the image analysis (scored in the background: the page redraws when it is ready)
    expect(page.get_by_test_id("stImage").nth(7)).to_be_visible()
    expect(page.get_by_text(re.compile(r"✗ fails\W*blur \d+")).first).to_be_visible()
    # another batch: the rotated scans show their rotation
    page.get_by_test_id("stSelectbox").filter(has_text="Batch").click()
    act_and_wait_run(page, lambda: page.get_by_role("option", name=re.compile(r"^batch 12 \(")).click())
    wait_idle(page)
    expect(page.get_by_test_id("stHeading").filter(has_text="Events for batch 12")).to_be_visible()
    expect(page.get_by_text(re.compile(r"rot [+-]?2\d\.\d°")).first).to_be_visible()
    width = page.get_by_test_id("stImage").first.locator("img").first.evaluate("i => i.naturalWidth")
    assert width > 50
    full_app_screenshot(page, artifacts_dir / "batches.png")
    # click an image's Details: full size and every score in a dialog
    act_and_wait_run(page, lambda: page.get_by_role("button", name="Details").first.click())
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text(re.compile(r"Fails:.*rotated"))).to_be_visible()
    expect(dialog.get_by_test_id("stDataFrame")).to_be_visible()
    big = dialog.get_by_test_id("stImage").locator("img").evaluate("i => i.naturalWidth")
    assert big > width  # full size, not the thumbnail
    page.screenshot(path=str(artifacts_dir / "image_details.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Data quality: moving the blur threshold slider changes the flag count
    nav(page, "Data quality")
    flagged = page.get_by_test_id("stMarkdown").filter(has_text="flagged")
    expect(flagged).to_contain_text(re.compile(r"\d+ flagged"))
    before = flag_count(flagged.inner_text())
    thumb = page.get_by_test_id("stSlider").filter(has_text="Blur threshold").get_by_role("slider")
    thumb.focus()
    act_and_wait_run(page, lambda: thumb.press("Home"))  # a fragment run
    wait_idle(page)
    after = flag_count(flagged.inner_text())
    assert after < before  # blur threshold 0: the blurred scans of batch 7 are no longer flagged
    full_app_screenshot(page, artifacts_dir / "data_quality.png")

    # Reports: download the HTML report and check it
    nav(page, "Reports")
    button = page.get_by_test_id("stDownloadButton").filter(has_text="Download HTML").get_by_role("button")
    expect(button).to_be_visible()
    with page.expect_download() as dl:
        button.click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    html = path.read_text(encoding="utf-8")
    assert path.suffix == ".html" and "demo-ocr-run" in html and "<script" in html
    assert "cdn.plot.ly" not in html
    full_app_screenshot(page, artifacts_dir / "reports.png")

    nav(page, "Monitor settings")
    expect(page.get_by_text("Recovery strategies")).to_be_visible()
    full_app_screenshot(page, artifacts_dir / "monitor.png")
    assert collect_errors(page) == [], json.dumps(collect_errors(page), indent=1)
