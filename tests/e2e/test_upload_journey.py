"""Uploads in real Chromium against `streamlit run app.py` (issue 15 item 5): a decimal-comma CSV is read as numbers,
a garbage file is one clear error and no green box, a multi-run wandb export gets a run picker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.st_helpers import act_and_wait_run, wait_idle
from tests.test_sources_exports import GENERATED_SHAPES

pytestmark = pytest.mark.browser

STEPS = list(range(100, 1300, 100))  # 12 steps
RECALL_0 = [0.93] * 8 + [0.41] * 4  # batch 0 collapses at step 900
DECIMAL_COMMA_CSV = "step;batch_0/recall;batch_1/recall\n" + "".join(
    f"{s};{r:.2f};{0.9 - i / 1000:.3f}\n".replace(".", ",")
    for i, (s, r) in enumerate(zip(STEPS, RECALL_0, strict=True))
)


def upload(page, name: str, data: bytes) -> None:
    field = page.get_by_test_id("stSidebar").get_by_test_id("stFileUploaderDropzoneInput")
    act_and_wait_run(page, lambda: field.set_input_files({"name": name, "mimeType": "text/csv", "buffer": data}))
    wait_idle(page)


def alerts(where, kind: str):
    """The alert boxes of one kind (Error, Success, ...) on the page or in a part of it."""
    return where.get_by_test_id(f"stAlertContent{kind}")


def test_upload_journey(app_page):
    page = app_page
    page.goto("/")
    wait_idle(page)
    act_and_wait_run(page, lambda: page.get_by_test_id("stSidebar").get_by_text("Upload history").click())
    wait_idle(page)

    # a European spreadsheet's CSV: `;` and decimal commas, named after the file, values read as numbers
    upload(page, "european_recall.csv", DECIMAL_COMMA_CSV.encode("cp1252"))
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text(re.compile(r"12 steps \(100–1,?200, from step\)"))).to_be_visible()
    expect(sidebar.get_by_text(re.compile(r"last batch_0/recall 0\.41, batch_1/recall 0\.889"))).to_be_visible()
    expect(page.get_by_role("heading", name="european_recall")).to_be_visible()
    expect(page.get_by_text(re.compile(r"worst: batch 0, recall 0\.410 at step 900"))).to_be_visible()
    steps = page.get_by_test_id("stMetric").filter(has_text="Steps").get_by_test_id("stMetricValue")
    expect(steps).to_have_text("12")
    expect(page.get_by_test_id("stMultiSelect").first).to_contain_text("0")  # batch 0 fell: preselected
    assert alerts(sidebar, "Error").count() == 0

    # garbage: one clear error naming the problem, nothing green anywhere, no "Steps 0"
    upload(page, "photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    expect(alerts(page, "Error")).to_have_count(1)
    expect(alerts(page, "Error")).to_contain_text("photo.csv: cannot read this CSV history: the file holds binary data")
    assert alerts(page, "Success").count() == 0
    assert page.get_by_test_id("stMetric").count() == 0

    text_only = b"name,comment\nalpha,fine\nbeta,also fine\n"
    upload(page, "notes.csv", text_only)
    expect(alerts(page, "Error")).to_have_count(1)
    expect(alerts(page, "Error")).to_contain_text("no usable metric column")
    expect(alerts(page, "Error")).to_contain_text("columns found: 'name', 'comment'")
    assert alerts(page, "Success").count() == 0

    # a wandb chart export of three runs: a picker, and the chosen run opens
    upload(page, "snet_epoch_id.csv", GENERATED_SHAPES["epoch_id"][0].encode())
    picker = sidebar.get_by_test_id("stSelectbox").filter(has_text="Run in this export (3 runs)")
    expect(picker).to_be_visible()
    expect(sidebar.get_by_text("holds 3 runs: choose one above")).to_be_visible()
    picker.click()
    options = page.get_by_role("option")
    expect(options).to_have_count(3)
    assert options.all_inner_texts() == ["run-41", "run-40", "run-39"]
    act_and_wait_run(page, lambda: page.get_by_role("option", name="run-40").click())
    wait_idle(page)
    expect(page.get_by_role("heading", name="run-40")).to_be_visible()
    expect(sidebar.get_by_text(re.compile(r"4 steps \(0–30, from epoch_id\)"))).to_be_visible()
    assert alerts(sidebar, "Error").count() == 0

    # a Keras CSVLogger file: its `epoch` column is the x-axis and the Steps figure counts the run-level steps
    keras = "epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1):.4f},{1.2 / (e + 1):.4f}\n" for e in range(15))
    upload(page, "keras_log.csv", keras.encode())
    expect(page.get_by_role("heading", name="keras_log")).to_be_visible()
    expect(sidebar.get_by_text(re.compile(r"15 steps \(0–14, from epoch\) · 2 metrics"))).to_be_visible()
    steps = page.get_by_test_id("stMetric").filter(has_text="Steps").get_by_test_id("stMetricValue")
    expect(steps).to_have_text("15")
    assert alerts(sidebar, "Error").count() == 0
