"""AppTest tier for what users feed the sidebar: mistakes become messages (never tracebacks), hostile names stay
text, a live run grows on refresh, the config follows a loaded YAML, the test alert reaches a real webhook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import DownloadButton

from tests.test_app import images_scored
from tests.wandb_writer import write_run

pytestmark = pytest.mark.slow  # the whole app runs per test (AppTest) on wandb runs written for the module

APP = "../app.py"  # relative to this file


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()


def rows(
    n_steps: int = 12, batches: int = 2, bad_from: int | None = 6, paths: list[str] | None = None
) -> list[dict[str, object]]:
    """Handbook-style logging: one wandb.log per batch; batch 0 falls below 0.8 from `bad_from` on."""
    out = []
    for s in range(n_steps):
        for b in range(batches):
            recall = 0.55 if (b == 0 and bad_from is not None and s >= bad_from) else 0.9 + 0.001 * s
            row: dict[str, object] = {
                "global_step": (s + 1) * 10,
                f"batch_{b}/recall": recall,
                f"batch_{b}/precision": 0.9,
                f"batch_{b}/hmean": 0.9,
            }
            if recall < 0.8 and paths:
                row[f"problematic_batch_{b}"] = paths
            out.append(row)
    return out


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """One wandb dir with a normal run, a hostile-named run, a run logging unsafe image paths, and a data dir."""
    parent = tmp_path_factory.mktemp("runs")
    data = parent / "data"
    (data / "imgs").mkdir(parents=True)
    Image.new("L", (200, 120), 240).save(data / "imgs" / "ok.png")
    (parent / "secret.png").write_bytes(b"not for the app")
    write_run(parent, "plain-run", rows(), project="proj")
    write_run(parent, "<img src=x onerror=alert(1)>**bold**", rows(), project="<b>p")
    write_run(parent, "unsafe-paths", rows(paths=["imgs/ok.png", "../secret.png", "/etc/passwd"]), project="proj")
    return parent


def run_folder(parent: Path, name: str) -> Path:
    from analysis.sources import list_runs

    return Path(next(r.locator for r in list_runs(parent / "wandb") if r.name == name))


def open_app(wandb_dir: Path, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    at.text_input(key="wandb_dir").set_value(str(wandb_dir)).run()
    return at


def pick(at: AppTest, name: str) -> AppTest:
    box = at.selectbox(key="run_pick")
    label = next(o for o in box.options if o.startswith(name))
    return box.select(label).run()


def config_json(at: AppTest) -> str | None:
    """The active config in the session, None before one was set (AppTest's session state has no `.get`)."""
    try:
        return at.session_state["config_json"]
    except KeyError:
        return None


def no_traceback(at: AppTest) -> None:
    assert not at.exception, at.exception


def test_run_search_filters_the_picker(runs_dir):
    at = open_app(runs_dir / "wandb")
    no_traceback(at)
    assert len(at.selectbox(key="run_pick").options) == 3
    at.text_input(key="run_pick_search").set_value("unsafe").run()
    assert at.selectbox(key="run_pick").options == [
        o for o in at.selectbox(key="run_pick").options if o.startswith("unsafe-paths")
    ]
    assert len(at.selectbox(key="run_pick").options) == 1
    at.text_input(key="run_pick_search").set_value("no-such-run").run()
    no_traceback(at)
    assert any("No run matches" in w.value for w in at.sidebar.warning)


def test_the_picker_lists_the_newest_run_first(runs_dir):
    at = open_app(runs_dir / "wandb")
    no_traceback(at)
    from analysis.sources import list_runs

    options = at.selectbox(key="run_pick").options
    newest_first = list_runs(runs_dir / "wandb")  # the reader's order (its own tests check it is newest first)
    assert [o.split(" (")[0] for o in options] == [r.name for r in newest_first]
    assert at.selectbox(key="run_pick").value == options[0]


def test_finished_run_has_a_finished_badge_and_no_live_controls(runs_dir):
    at = pick(open_app(runs_dir / "wandb"), "plain-run")
    no_traceback(at)
    assert any("finished" in m.value for m in at.sidebar.markdown)
    assert not [b for b in at.sidebar.button if b.key == "run_refresh"]


def test_html_in_run_and_project_names_stays_text(runs_dir):
    at = pick(open_app(runs_dir / "wandb"), "<img")
    no_traceback(at)
    heading = at.markdown[0].value
    assert "\\<img src=x onerror=alert(1)\\>\\*\\*bold\\*\\*" in heading  # `<` escaped: no element
    assert "<img" not in heading.replace("\\<img", "")
    sidebar_text = " ".join(m.value for m in at.sidebar.markdown)
    assert "\\<b\\>p" in sidebar_text and "<b>p" not in sidebar_text


def test_missing_data_dir_warns_and_the_run_still_shows(runs_dir):
    at = pick(open_app(runs_dir / "wandb"), "plain-run")
    at.text_input(key="data_dir").set_value(str(runs_dir / "nope")).run()
    no_traceback(at)
    assert any("Data directory not found" in w.value for w in at.sidebar.warning)
    assert at.title[0].value == "Overview"
    assert not [e for e in at.error if "not found" in e.value]  # the verdict may be an st.error; no failure
    assert any("problematic batch" in e.value for e in at.error)
    assert at.multiselect(key="ov_batches").value == [0]


def test_unsafe_image_paths_are_refused_with_a_message(runs_dir):
    at = pick(open_app(runs_dir / "wandb"), "unsafe-paths")
    at.text_input(key="data_dir").set_value(str(runs_dir / "data")).run()
    no_traceback(at)
    images_scored(at.switch_page("pages/batches_page.py").run())
    no_traceback(at)
    at.selectbox(key="b_batch").select(0).run()
    no_traceback(at)
    assert len(at.image) == 1  # only the image inside the data dir is shown
    shown = " ".join(e.value for e in at.error) + " ".join(c.value for c in at.caption)
    assert "secret" in shown and "passwd" in shown
    assert "not for the app" not in shown


def test_corrupt_run_file_is_a_message(runs_dir, tmp_path):
    wandb_dir = tmp_path / "wandb"
    shutil.copytree(runs_dir / "wandb", wandb_dir, symlinks=True, ignore=shutil.ignore_patterns("latest-run"))
    victim = wandb_dir / run_folder(runs_dir, "plain-run").name
    wandb_file = next(victim.glob("run-*.wandb"))
    wandb_file.write_bytes(b"this is not a wandb transaction log" * 100)
    at = open_app(wandb_dir)
    label = next(o for o in at.selectbox(key="run_pick").options if victim.name.rsplit("-", 1)[-1] in o)
    at.selectbox(key="run_pick").select(label).run()
    no_traceback(at)
    messages = [e.value for e in at.sidebar.error] + [e.value for e in at.error]
    assert messages, "expected an error message for the corrupt run file"
    for page in (
        "pages/batches_page.py",
        "pages/reports_page.py",
        "pages/data_quality_page.py",
        "pages/monitor_page.py",
    ):
        at.switch_page(page).run()
        no_traceback(at)


def test_bad_yaml_keeps_the_config_and_good_yaml_moves_the_thresholds(runs_dir, tmp_path):
    at = pick(open_app(runs_dir / "wandb"), "plain-run")
    assert not at.number_input  # the config panel is drawn only when opened
    at.session_state["cfg_panel"] = True
    at.run()
    before = config_json(at)
    at.file_uploader(key="config_upload").set_value(("bad.yaml", b"experiment_monitoring: [unclosed", "text/yaml"))
    at.run()
    no_traceback(at)
    assert any("not valid YAML" in e.value for e in at.sidebar.error)
    assert config_json(at) == before
    good = b"experiment_monitoring:\n  anomaly_detection:\n    statistical_anomaly_zscore: 4.5\n"
    at.file_uploader(key="config_upload").set_value(("good.yaml", good, "text/yaml"))
    at.run()
    no_traceback(at)
    assert at.number_input(key="cfg_z").value == 4.5
    assert '"statistical_anomaly_zscore":4.5' in at.session_state["config_json"]
    unknown = tmp_path / "typo.yaml"
    unknown.write_text("experiment_monitoring:\n  anomaly_detecton: {}\n")
    at.file_uploader(key="config_upload").set_value(None)
    at.text_input(key="config_path").set_value(str(unknown)).run()
    no_traceback(at)
    assert any("anomaly\\_detecton" in e.value for e in at.sidebar.error)  # the key, Markdown-escaped
    assert at.number_input(key="cfg_z").value == 4.5
    at.text_input(key="config_path").set_value("").run()
    at.number_input(key="cfg_drop").set_value(0.3).run()
    at.session_state["cfg_panel"] = False  # closing the panel keeps the active config
    at.run()
    at.session_state["cfg_panel"] = True
    at.run()
    no_traceback(at)
    assert at.number_input(key="cfg_z").value == 4.5 and at.number_input(key="cfg_drop").value == 0.3
    assert '"performance_drop_threshold":0.3' in at.session_state["config_json"]


def test_live_run_grows_on_refresh(runs_dir, tmp_path):
    """A run file still being written (no exit record yet) shows as running; appended bytes appear on refresh."""
    src = run_folder(runs_dir, "plain-run")
    live = tmp_path / "wandb" / src.name
    shutil.copytree(src, live)
    full = next(src.glob("run-*.wandb")).read_bytes()
    target = next(live.glob("run-*.wandb"))
    target.write_bytes(full[: len(full) // 2])
    at = open_app(tmp_path / "wandb")
    no_traceback(at)
    assert any("running" in m.value for m in at.sidebar.markdown)
    assert at.button(key="run_refresh") and at.toggle(key="run_auto_refresh")
    steps_before = int(at.metric[0].value.replace(",", ""))
    with target.open("ab") as fh:
        fh.write(full[len(full) // 2 :])
    at.button(key="run_refresh").click().run()
    no_traceback(at)
    steps_after = int(at.metric[0].value.replace(",", ""))
    assert steps_after > steps_before and steps_after == 12
    assert any("finished" in m.value for m in at.sidebar.markdown)


def test_send_test_alert_reaches_a_real_webhook(runs_dir, monkeypatch):
    from analysis.core.config import config_from_dict
    from tests.test_alerts import Webhook

    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    hook = Webhook()
    try:
        cfg = config_from_dict({"experiment_monitoring": {"alerts": {"slack_webhook": hook.url}}})
        at = open_app(runs_dir / "wandb", config_json=cfg.model_dump_json())
        at.switch_page("pages/monitor_page.py").run()
        no_traceback(at)
        sinks = at.dataframe[0].value
        assert bool(sinks.loc[sinks["sink"] == "Slack webhook", "configured"].iloc[0])
        at.button(key="mon_test_alert").click().run()
        no_traceback(at)
        got = hook.wait_for(1)
        assert len(got) == 1 and "Test alert" in str(got[0]["json"])
        assert any(s.value.startswith("slack") or "slack" in s.value.lower() for s in at.success)
    finally:
        hook.close()


def test_uploaded_history_csv_is_analysed_and_a_broken_one_is_a_message():
    import pandas as pd

    frame = pd.DataFrame(
        [{"global_step": r["global_step"], **{k: v for k, v in r.items() if "/" in k}} for r in rows(batches=1)]
    )
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.radio(key="source").set_value("Upload history").run()
    at.file_uploader(key="history_upload").set_value(("history.csv", frame.to_csv(index=False).encode(), "text/csv"))
    at.run()
    no_traceback(at)
    assert at.title[0].value == "Overview"
    assert at.multiselect(key="ov_batches").value == [0]
    at.switch_page("pages/reports_page.py").run()
    no_traceback(at)
    preview = " ".join(m.value for m in at.markdown)
    assert "uploaded history.csv" in preview and "uploads" not in preview  # not the server's cache path
    at.switch_page("pages/overview_page.py").run()
    at.file_uploader(key="history_upload").set_value(
        ("broken.parquet", b"PAR1 not really parquet", "application/octet-stream")
    )
    at.run()
    no_traceback(at)
    assert [e.value for e in at.error] + [e.value for e in at.sidebar.error], "expected a message"


def test_reports_page_previews_the_run_and_names_files_safely(runs_dir):
    at = pick(open_app(runs_dir / "wandb"), "<img")
    at.switch_page("pages/reports_page.py").run()
    no_traceback(at)
    preview = " ".join(m.value for m in at.markdown)
    assert "problematic" in preview.lower() or "batch 0" in preview
    assert "\\<img src=x" in preview and "<img" not in preview.replace("\\<img", "")  # escaped, stays text
    labels = {b.label for b in at.get("download_button") if isinstance(b, DownloadButton)}
    assert {"Download Markdown", "Download HTML", "Download JSON"} <= labels


def test_wandb_cloud_source_through_the_real_client(runs_dir, monkeypatch, tmp_path):
    """The cloud source with the real `wandb.Api` against a local server speaking wandb's GraphQL protocol."""
    from analysis.sources import cloud, open_run
    from tests.wandb_stub import StubServer

    run = open_run(run_folder(runs_dir, "plain-run"), cache=False)
    with StubServer({"team/ocr": [run]}, entity="team") as server:
        monkeypatch.setenv("WANDB_BASE_URL", server.url)
        monkeypatch.setenv("WANDB_API_KEY", "local-" + "k" * 40)
        monkeypatch.setenv("EXPERIMENT_ANALYZER_CACHE", str(tmp_path / "cache"))
        monkeypatch.setattr(cloud, "_APIS", {})
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.radio(key="source").set_value("wandb cloud").run()
        at.text_input(key="cloud_entity").set_value("team").run()
        at.text_input(key="cloud_project").set_value("nope").run()
        no_traceback(at)
        assert at.sidebar.error or at.sidebar.warning  # an unknown project is a message
        at.text_input(key="cloud_project").set_value("ocr").run()
        no_traceback(at)
        assert str(at.selectbox(key="cloud_run_pick").value).startswith("plain-run")
        assert at.title[0].value == "Overview" and at.multiselect(key="ov_batches").value == [0]
        n_before = len(server.queries)
        at.button(key="run_refresh").click().run()
        no_traceback(at)
        n_after = len(server.queries)
        assert n_after > n_before  # Refresh asks the server again (the run's state and history)
        at.run()
        no_traceback(at)
        assert len(server.queries) == n_after  # a plain rerun is served from the caches: no network


def test_the_data_directory_follows_the_chosen_run(runs_dir, tmp_path):
    """Issue: after pointing the sidebar at another wandb folder the demo's data directory stayed, so that run's
    images were looked for in the wrong folder and its quality figures mixed in another run's images."""
    other = tmp_path / "other-project"
    (other / "own-data").mkdir(parents=True)
    write_run(other, "other-run", rows(), config={"training_config": {"data_dir": "own-data"}})
    bare = tmp_path / "bare-project"
    write_run(bare, "bare-run", rows())

    at = pick(open_app(runs_dir / "wandb"), "plain-run")
    assert at.text_input(key="data_dir").value == str(runs_dir / "data")  # data/ beside wandb/
    at.text_input(key="data_dir").set_value(str(runs_dir / "data" / "imgs")).run()
    at.text_input(key="run_pick_search").set_value("unsafe").run()
    pick(at, "unsafe-paths")
    assert at.text_input(key="data_dir").value == str(runs_dir / "data")  # another run: its own suggestion

    at.text_input(key="wandb_dir").set_value(str(other / "wandb")).run()
    no_traceback(at)
    assert at.text_input(key="data_dir").value == str(other / "own-data")  # named in the run's config
    assert at.session_state["selection"].data_dir == str(other / "own-data")

    at.text_input(key="wandb_dir").set_value(str(bare / "wandb")).run()
    no_traceback(at)
    assert at.text_input(key="data_dir").value == ""  # nothing known: empty with a hint, never the last run's
    assert at.session_state["selection"].data_dir is None
    assert any("No data directory is known" in c.value for c in at.sidebar.caption)


def test_config_and_summary_hide_credentials(tmp_path):
    """Issue 17 (15): the dashboard's "Config and summary" uses the one redaction (by key word and by value shape)."""
    config = {"db_url": "postgres://user:SECRETPW@db/x", "api_key": "k-123456", "tokenizer": "bert-base"}
    write_run(tmp_path, "secret-config", rows(), config=config, summary={"hub_token": "hf_" + "a" * 34})
    at = open_app(tmp_path / "wandb")
    at.session_state["ov_config"] = True  # open the expander (it renders only when open)
    at.run()
    no_traceback(at)
    shown = " ".join(str(j.proto.body) for j in at.get("json"))
    assert "bert-base" in shown and "db_url" in shown
    assert "SECRETPW" not in shown and "k-123456" not in shown and "hf_aaaa" not in shown


def test_a_run_level_warning_colours_the_overview_verdict_as_a_warning():
    """QA: a table with run-level warnings only (a gradient norm that spikes) said "run-level warning findings in
    grad_norm" in a green success box."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(4)
    grad = 100 + rng.normal(0, 5, 300)
    grad[[80, 200]] = 400.0
    loss = 2.0 * np.exp(-np.arange(300) / 80) + 0.1 + rng.normal(0, 0.01, 300)
    csv = pd.DataFrame({"iter": np.arange(1, 301) * 50, "loss": loss, "grad_norm": grad}).to_csv(index=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.radio(key="source").set_value("Upload history").run()
    at.file_uploader(key="history_upload").set_value(("grad.csv", csv.encode(), "text/csv"))
    at.run()
    no_traceback(at)
    (verdict,) = [w.value for w in at.warning if "run-level warning findings in grad" in w.value]  # markdown-escaped
    assert "grad\\_norm" in verdict and not [s.value for s in at.success if "findings" in s.value]
