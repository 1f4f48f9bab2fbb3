"""A user's own run (not the demo) in real Chromium: written by the real wandb library offline, with its own data
folder of images. The images and quality figures are that run's; the blur slider on Data quality changes the
Batches badges and the downloaded report; a reload keeps run, batch and step; the URL opened in a new browser
context shows the same view; a link to a run that is not there says so."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.st_helpers import act_and_wait_run, collect_errors, run_tracker, wait_idle, wait_run_finished
from tests.wandb_writer import write_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BAD_BATCH, BAD_FROM, N_STEPS, N_IMAGES = 1, 10, 16, 4


def text_image(path: Path, blur: float) -> None:
    """A 240×120 scan of printed lines (blur 0: blur_score ≈ 290; blur 2: ≈ 80, under the default 100)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    img = Image.new("L", (240, 120), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=18)
    for i in range(4):
        draw.text((8, 8 + i * 27), "The quick brown fox 0123", fill=0, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    (img.filter(ImageFilter.GaussianBlur(blur)) if blur else img).save(path)


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> dict[str, str]:
    """A project folder `<tmp>/ocr2` holding `wandb/` (one run) and `scans/` (its images), the run's config naming
    `data_dir: scans`; batch 1 falls at step 10 and logs four blurred scans from then on."""
    project = tmp_path_factory.mktemp("ocr2")
    for j in range(N_IMAGES):
        text_image(project / "scans" / "clean" / f"b{BAD_BATCH}" / f"scan_{j}.png", 0)
        text_image(project / "scans" / "late" / f"b{BAD_BATCH}" / f"scan_{j}.png", 2)
    logged = [f"late/b{BAD_BATCH}/scan_{j}.png" for j in range(N_IMAGES)]
    rows = []
    for s in range(N_STEPS):
        for b in range(3):
            bad = b == BAD_BATCH and s >= BAD_FROM
            recall = 0.5 if bad else 0.9 + 0.002 * s
            row: dict[str, object] = {"global_step": (s + 1) * 50, f"batch_{b}/recall": recall}
            if bad:
                row[f"problematic_batch_{b}"] = logged
            rows.append(row)
    folder = write_run(project, "second-ocr-run", rows, config={"data_dir": "scans"}, project="ocr2")
    return {"wandb": str(project / "wandb"), "scans": str(project / "scans"), "run_id": folder.name.split("-")[-1]}


def nav(page: Page, name: str) -> None:
    act_and_wait_run(page, lambda: page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click())
    wait_idle(page)


def badges(page: Page) -> list[str]:
    return [t for t in page.get_by_test_id("stCaptionContainer").all_inner_texts() if re.search(r"fails|ok", t)]


def url_state(page: Page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_second_run_journey(app_page, second_run, tmp_path, chromium_browser, server_url):
    page = app_page
    page.goto("/")
    expect(page.get_by_test_id("stHeading").filter(has_text="Overview")).to_be_visible(timeout=120_000)
    wait_idle(page, 120_000)
    box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="wandb directory")
    box.fill(second_run["wandb"])
    act_and_wait_run(page, lambda: box.press("Enter"))
    expect(page.get_by_role("heading", name="second-ocr-run")).to_be_visible()
    data_box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Data directory")
    expect(data_box).to_have_value(second_run["scans"])  # the run's own folder, not the demo's
    # the Overview's curves are a Vega-Lite chart (canvas); its threshold layer is checked in tests/test_vega_curves.py
    expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible()

    # Batches: the run's own images, failing on blur at the default threshold (100)
    nav(page, "Batches")
    expect(page.get_by_test_id("stHeading").filter(has_text=f"Events for batch {BAD_BATCH}")).to_be_visible()
    # the recall threshold (the config's 0.8) is drawn on the batch's curves
    expect(page.locator(".annotation-text", has_text="recall threshold 0.8").first).to_be_attached()
    expect(page.get_by_test_id("stImage").filter(has_text="scan_0.png").first).to_be_visible()
    images = page.get_by_test_id("stImage")
    for j in range(N_IMAGES):  # the run's own scans, and the same scans from before the problem beside them
        expect(images.filter(has_text=f"late/b{BAD_BATCH}/scan_{j}.png")).to_have_count(1)
        expect(images.filter(has_text=f"clean/b{BAD_BATCH}/scan_{j}.png")).to_have_count(1)
    expect(images.filter(has_text="refresh_")).to_have_count(0)  # none of the demo's
    expect(page.get_by_text(re.compile(r"before step \d+")).first).to_be_visible()  # the before strip says why
    assert any("✗ fails" in b and "blur" in b for b in badges(page)), badges(page)
    # a 240 px scan is shown at its own size, not stretched to the column
    img = images.filter(has_text=f"late/b{BAD_BATCH}/scan_0.png").locator("img")
    assert img.evaluate("i => i.naturalWidth") == 240
    assert img.evaluate("i => i.getBoundingClientRect().width") <= 241
    state = url_state(page)
    assert state["run"] == second_run["run_id"] and state["batch"] == str(BAD_BATCH), page.url
    assert state["dir"] == second_run["wandb"] and "step" in state, page.url

    # Data quality: this run's scans (8 images), blur slider to 0 -> nothing flagged
    nav(page, "Data quality")
    expect(page.get_by_test_id("stMetric").filter(has_text="Images")).to_contain_text(str(2 * N_IMAGES))
    flagged = page.get_by_test_id("stMarkdown").filter(has_text="flagged")
    expect(flagged).to_contain_text(f"{N_IMAGES} flagged")
    thumb = page.get_by_test_id("stSlider").filter(has_text="Blur threshold").get_by_role("slider")
    thumb.focus()
    act_and_wait_run(page, lambda: thumb.press("Home"))
    expect(flagged).to_contain_text("0 flagged")

    # ... and Batches follows the session's thresholds: the same scans now pass
    nav(page, "Batches")
    expect(page.get_by_text(re.compile(r"0 fail the quality thresholds"))).to_be_visible()
    assert badges(page) and all("✓ ok" in b for b in badges(page) if "blur" in b), badges(page)

    # ... and so does the downloaded report
    nav(page, "Reports")
    button = page.get_by_test_id("stDownloadButton").filter(has_text="Download JSON").get_by_role("button")
    with page.expect_download() as dl:
        button.click()
    path = tmp_path / "report.json"
    dl.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    found = re.search(r'"blur_threshold":\s*([0-9.]+)', text)
    assert found is not None and float(found.group(1)) == 0.0, text[:2000]
    assert json.loads(text) and "second-ocr-run" in text

    # back on Batches, the first step with images (not the default, the last); a reload keeps run, batch and step
    nav(page, "Batches")
    slider = page.get_by_test_id("stSlider").filter(has_text="Step").get_by_role("slider")
    slider.focus()
    act_and_wait_run(page, lambda: slider.press("Home"))
    picked_step = str((BAD_FROM + 1) * 50)
    expect(page.get_by_text(re.compile(rf"images at step {picked_step}"))).to_be_visible()
    assert url_state(page)["step"] == picked_step, page.url
    shared = page.url
    before = run_tracker(page).finished
    page.reload()
    wait_run_finished(page, before, timeout=90_000)
    assert_same_view(page, picked_step, second_run["wandb"])

    # the URL in a new browser context (another user): the same view
    ctx = chromium_browser.new_context(viewport={"width": 1024, "height": 900})
    ctx.set_default_timeout(60_000)
    try:
        other = ctx.new_page()
        collect_errors(other)
        run_tracker(other)
        other.goto(shared)
        wait_run_finished(other, 0, timeout=90_000)
        assert_same_view(other, picked_step, second_run["wandb"])
        assert collect_errors(other) == [], collect_errors(other)
        # a link to a run that is not there says so, without a traceback
        missing = re.sub(r"run=[^&]+", "run=no-such-run", shared)
        before = run_tracker(other).finished
        other.goto(missing)
        wait_run_finished(other, before, timeout=90_000)
        expect(other.get_by_text(re.compile(r"linked run no-such-run is not in"))).to_be_visible()
        expect(other.get_by_test_id("stException")).to_have_count(0)
    finally:
        ctx.close()
    assert collect_errors(page) == [], collect_errors(page)


def assert_same_view(page: Page, step: str, wandb_dir: str) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("textbox", name="wandb directory")).to_have_value(wandb_dir)
    expect(sidebar.get_by_role("combobox", name="Run")).to_have_value(re.compile("second-ocr-run"))
    expect(page.get_by_test_id("stHeading").filter(has_text=f"Events for batch {BAD_BATCH}")).to_be_visible()
    expect(page.get_by_text(re.compile(rf"images at step {step}"))).to_be_visible()
    expect(page.get_by_test_id("stImage").filter(has_text="scan_0.png").first).to_be_visible()
    assert url_state(page)["step"] == step, page.url
