"""AppTest tier for the Compare page: no baseline yet, a baseline that cannot be opened, a baseline file."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analysis.findings.compare import save_baseline
from analysis.sources import list_runs, open_run

APP = "../app.py"  # relative to this file
pytestmark = pytest.mark.slow  # the whole app runs per test


@pytest.fixture
def page(demo_root):
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.text_input(key="wandb_dir").set_value(str(demo_root / "wandb")).run()
    at.switch_page("pages/compare_page.py").run()
    assert not at.exception, at.exception
    return at


def _other_location(at: AppTest, location: str) -> AppTest:
    at.selectbox(key="cmp_baseline").select("Another location…").run()
    at.text_input(key="cmp_location").set_value(location).run()
    assert not at.exception, at.exception
    return at


def test_the_page_asks_for_a_baseline(page):
    assert page.title[0].value == "Compare"
    assert any("Pick a baseline run" in i.value for i in page.info)


def test_a_baseline_that_cannot_be_opened_is_a_message(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a run")
    _other_location(page, str(notes))
    assert any("Cannot open the baseline" in e.value for e in page.error)


def test_a_baseline_file_of_the_same_run_shows_no_regression(page, demo_root, tmp_path):
    ref = next(r for r in list_runs(demo_root / "wandb") if r.name == "demo-ocr-run")
    path = save_baseline(open_run(ref.locator), tmp_path / "demo-baseline.json")
    _other_location(page, str(path))
    assert any("No regression against demo-ocr-run" in s.value for s in page.success)
    assert page.selectbox(key="cmp_batch").value is not None


def test_the_runs_page_tables_every_run_of_the_directory(demo_root):
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.text_input(key="wandb_dir").set_value(str(demo_root / "wandb")).run()
    at.switch_page("pages/runs_page.py").run()
    assert not at.exception, at.exception
    n_runs = len(list_runs(demo_root / "wandb"))
    demo_label = next(r.label for r in list_runs(demo_root / "wandb") if r.name == "demo-ocr-run")
    at.selectbox(key="runs_baseline").select(demo_label).run()
    at.toggle(key="runs_go").set_value(True).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value  # headers in words (ui.tables.runs_table)
    assert len(table) == n_runs
    demo = table[table["Run"] == "demo-ocr-run"].iloc[0]
    assert demo["Regressed"] == False and "problematic" in demo["Verdict"]  # noqa: E712
    assert demo["Worst batch"] == 7
