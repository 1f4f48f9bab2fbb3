"""Slack alerts in Block Kit (issue 16, item 4): a header and one section of fields per anomaly (run, batch, metric,
value, step, link when known) plus a plain `text` fallback, within Slack's limits however long the names, with
Slack's control characters escaped. A real HTTP server on 127.0.0.1 receives what a real TrainingMonitor sends."""

from __future__ import annotations

import json

import pytest

from analysis.core.config import config_from_dict
from analysis.monitoring.alerts import (
    SLACK_FIELD_TEXT,
    SLACK_HEADER_TEXT,
    SLACK_MAX_BLOCKS,
    SLACK_MAX_FIELDS,
    SLACK_SECTION_TEXT,
    Alert,
    AlertDispatcher,
    SlackWebhookSink,
)
from analysis.monitoring.monitor import TrainingMonitor
from tests.test_alerts import Webhook


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def _monitor(url: str, run: str, thresholds: dict[str, float]) -> TrainingMonitor:
    cfg = config_from_dict(
        {"experiment_monitoring": {"alerts": {"throttle_seconds": 0}}, "training_config": {"experiment_name": run}}
    )
    return TrainingMonitor(thresholds, config=cfg, sinks=[SlackWebhookSink(url)])


def _fields(section: dict) -> dict[str, str]:
    """`*Label*\\nvalue` fields as {label: value}."""
    out = {}
    for f in section["fields"]:
        label, _, value = f["text"].partition("\n")
        out[label.strip("*")] = value
    return out


def _assert_within_limits(message: dict) -> None:
    blocks = message["blocks"]
    assert 1 <= len(blocks) <= SLACK_MAX_BLOCKS
    for b in blocks:
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and len(b["text"]["text"]) <= SLACK_HEADER_TEXT
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= SLACK_SECTION_TEXT
            assert len(b.get("fields", [])) <= SLACK_MAX_FIELDS
            assert all(len(f["text"]) <= SLACK_FIELD_TEXT for f in b.get("fields", []))
    assert message["text"].strip()


def test_monitor_alert_arrives_as_block_kit_fields_with_a_text_fallback(webhook):
    monitor = _monitor(webhook.url, "ocr-blocks", {"recall": 0.8})
    (anomaly,) = monitor.log_step(300, {"batch_7/recall": 0.42}, batch_info={"batch": 7})
    assert monitor.flush(10)
    (req,) = webhook.wait_for(1)
    message = req["json"]
    _assert_within_limits(message)
    header, section = message["blocks"]
    assert header["type"] == "header" and "ocr-blocks" in header["text"]["text"]
    assert section["text"]["text"] == anomaly.message
    fields = _fields(section)
    assert fields == {
        "Run": "ocr-blocks",
        "Batch": "7",
        "Metric": "batch_7/recall",
        "Value": "0.42",
        "Step": "300",
        "Severity": f"{anomaly.severity} ({anomaly.detector})",
    }
    assert "ocr-blocks" in message["text"] and anomaly.message in message["text"]  # notifications show this
    monitor.close()


def test_a_5000_char_metric_is_cut_and_a_link_in_the_run_name_arrives_escaped(webhook):
    metric = "val/" + "m" * 4990 + "recall"
    run = "<http://evil|x> & <!channel>"
    monitor = _monitor(webhook.url, run, {metric: 0.8})
    monitor.log_step(5, {metric: 0.1})
    assert monitor.flush(10)
    (req,) = webhook.wait_for(1)
    message = req["json"]
    _assert_within_limits(message)
    raw = json.dumps(message)
    assert "<http://evil|x>" not in raw and "<!channel>" not in raw
    fields = _fields(message["blocks"][1])
    assert fields["Run"] == "&lt;http://evil|x&gt; &amp; &lt;!channel&gt;"
    assert fields["Metric"].endswith("…") and fields["Metric"].startswith("val/mmm")
    assert len(message["blocks"][1]["fields"][2]["text"]) == SLACK_FIELD_TEXT  # cut to the limit, not below
    monitor.close()


def test_many_anomalies_stay_within_fifty_blocks(webhook):
    metrics = {f"batch_{b}/recall": 0.1 for b in range(80)}
    monitor = _monitor(webhook.url, "wide", {"recall": 0.8})
    found = monitor.log_step(1, metrics)
    assert len(found) == 80
    assert monitor.flush(10)
    message = webhook.wait_for(1)[0]["json"]
    _assert_within_limits(message)
    sections = [b for b in message["blocks"] if b["type"] == "section"]
    assert 0 < len(sections) < 80
    (more,) = [b for b in message["blocks"] if b["type"] == "context"]
    assert f"and {80 - len(sections)} more" in more["elements"][0]["text"]
    monitor.close()


def test_a_known_link_becomes_a_field_and_only_http_links_are_kept(webhook):
    disp = AlertDispatcher([SlackWebhookSink(webhook.url)], max_retries=0)
    for link in ("https://wandb.ai/team/proj/runs/abc1?x=1|y>z", "javascript:alert(1)"):
        disp.submit(Alert(title="t", text="body & more", level="info", step=12, run="r1", link=link))
    assert disp.flush(10)
    first, second = (r["json"] for r in webhook.wait_for(2))
    fields = _fields(first["blocks"][1])
    assert fields == {
        "Run": "r1",
        "Step": "12",
        "Link": "<https://wandb.ai/team/proj/runs/abc1?x=1%7Cy%3Ez|open the run>",
    }
    assert first["blocks"][1]["text"]["text"] == "body &amp; more"
    assert "Link" not in _fields(second["blocks"][1]) and "javascript" not in json.dumps(second)
    disp.close()
