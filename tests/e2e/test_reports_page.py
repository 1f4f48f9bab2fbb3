"""The Reports page in real Chromium: the preview's configuration block is a working expander (no raw
`<details>` text), and "Log analysis to wandb" writes an offline analysis run that this project's reader opens, even when the server
inherited the token of a wandb service that does not answer."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from analysis.sources import open_run
from tests.e2e.st_helpers import (
    act_and_wait_run,
    collect_errors,
    free_port,
    run_tracker,
    start_streamlit,
    stop,
    wait_run_finished,
)
from tests.wandb_writer import silent_wandb_service, wandb_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def wandb_server(demo_root, tmp_path_factory):
    """The app on the demo, with wandb offline and WANDB_DIR in a temporary folder; (url, WANDB_DIR). The server
    inherits a `WANDB_SERVICE` token of a service that never answers (as when the app is started from a process
    that used wandb): the app must log through a service of its own."""
    base = tmp_path_factory.mktemp("reports_page")
    with silent_wandb_service() as token:
        env = {**os.environ, **wandb_env(base), "EXPERIMENT_ANALYZER_DEMO": str(demo_root), "WANDB_DIR": str(base)}
        port = free_port()
        proc = start_streamlit(ROOT / "app.py", port, base / "server.log", env={**env, "WANDB_SERVICE": token})
        yield f"http://127.0.0.1:{port}", base
        stop(proc)


def test_preview_expander_and_log_to_wandb(chromium_browser, wandb_server, artifacts_dir):
    url, wandb_dir = wandb_server
    ctx = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(120_000)
    page = ctx.new_page()
    errors = collect_errors(page)
    run_tracker(page)
    try:
        page.goto(f"{url}/reports")
        wait_run_finished(page, 0, timeout=180_000)
        main = page.get_by_test_id("stMain")
        expect(main.get_by_role("heading", name="Preview")).to_be_visible(timeout=180_000)
        expect(main.get_by_text("demo-ocr-run").first).to_be_visible()
        assert "<details>" not in main.inner_text() and "<summary>" not in main.inner_text()

        config = main.get_by_test_id("stExpander").filter(has_text="Analysis configuration (secrets omitted)")
        expect(config).to_have_count(1)
        expect(config.get_by_text(re.compile("statistical_anomaly_zscore"))).to_be_hidden()  # collapsed, like <details>
        config.get_by_text("Analysis configuration (secrets omitted)").click()
        expect(config.get_by_text(re.compile("statistical_anomaly_zscore"))).to_be_visible()

        box = main.get_by_test_id("stExpander").filter(has_text="Log analysis to wandb")
        box.get_by_text("Log analysis to wandb").first.click()
        button = box.get_by_role("button", name="Log analysis to wandb")
        expect(button).to_be_visible()
        act_and_wait_run(page, button.click, timeout=180_000)
        success = main.get_by_test_id("stAlertContentSuccess")
        expect(success).to_contain_text("written offline to")
        message = success.inner_text()
        (run_dir,) = (wandb_dir / "wandb").glob("offline-run-*")  # under WANDB_DIR, as the user set it
        assert str(run_dir) in message.replace("\n", "")
        run = open_run(run_dir, cache=False)
        assert run.config["analysed_run"]["name"] == "demo-ocr-run" and run.tags[0] == "analysis"
        assert run.summary["worst_severity"] == "critical" and run.summary["problematic_batches"]
        page.screenshot(path=str(artifacts_dir / "reports_wandb.png"), full_page=True)
        assert errors == [], errors
    except Exception:
        log = wandb_dir / "server.log"  # what the server (and wandb in it) said, for a failure seen only in CI
        print(log.read_text(errors="replace")[-6000:] if log.is_file() else "no server log")
        for debug in sorted((wandb_dir / "wandb").glob("*/logs/debug*.log")):
            print(f"== {debug}\n{debug.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        ctx.close()
