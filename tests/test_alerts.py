"""Alerts reach real servers on 127.0.0.1: a Slack-style HTTP webhook and an SMTP server (aiosmtpd).

Failing sinks (HTTP 500, a hanging server, a refused port, a sink that raises) are retried in the background and
reported, and the training loop keeps going at full speed.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from analysis.core.config import config_from_dict
from analysis.monitoring.alerts import (
    Alert,
    AlertDispatcher,
    AlertSink,
    EmailSink,
    LogSink,
    SlackWebhookSink,
    send_test_alert,
    sinks_from_config,
)
from analysis.monitoring.monitor import TrainingMonitor


# -- a webhook server ------------------------------------------------------------------------------------------
class Webhook:
    """A real HTTP server recording POSTs; `status` and `delay` decide how it answers."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.delay = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append(
                    {
                        "path": self.path,
                        "ctype": self.headers.get("Content-Type"),
                        "json": json.loads(body),
                        "at": time.monotonic(),
                    }
                )
                if hook.delay:
                    time.sleep(hook.delay)
                reply = b"ok" if hook.status == 200 else b"internal_error"
                try:
                    self.send_response(hook.status)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- an SMTP server --------------------------------------------------------------------------------------------
class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "auth": session.authenticated,
            }
        )
        return "250 OK"

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.messages


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield inbox, ctl.port
    ctl.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_smtp_server(tls_files):
    cert, key = tls_files
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"bot", b"s3cret")
        return AuthResult(success=ok, handled=False)

    inbox = Inbox()
    ctl = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    ctl.start()
    yield inbox, ctl.port, ssl.create_default_context(cafile=str(cert))
    ctl.stop()


def alert_config(**alerts):
    return config_from_dict(
        {"experiment_monitoring": {"alerts": alerts}, "training_config": {"experiment_name": "ocr-test"}}
    )


def bad_recall_monitor(sinks, **alerts) -> TrainingMonitor:
    return TrainingMonitor({"val/recall": 0.75}, config=alert_config(**alerts), sinks=sinks)


# -- Slack webhook ---------------------------------------------------------------------------------------------
def test_slack_webhook_receives_json_payload(webhook):
    monitor = bad_recall_monitor([SlackWebhookSink(webhook.url)])
    anomalies = monitor.log_step(100, {"val/recall": 0.70})
    assert monitor.flush(10)
    (req,) = webhook.wait_for(1)
    assert req["path"] == "/services/T000/B000/XXXX"
    assert req["ctype"] == "application/json"
    text = req["json"]["text"]
    assert "ocr-test" in text and "val/recall" in text and anomalies[0].message in text
    assert [b["type"] for b in req["json"]["blocks"]] == ["header", "section"]  # Block Kit: test_alerts_apprise.py
    res = monitor.delivery_results
    assert [(r.name, r.ok, r.detail) for r in res] == [("slack", True, "HTTP 200")]
    monitor.close()


def test_untrusted_metric_names_are_escaped_for_slack_and_cannot_break_email_headers(webhook, smtp_server):
    inbox, port = smtp_server
    sinks: list[AlertSink] = [SlackWebhookSink(webhook.url), EmailSink("127.0.0.1", port, "m@x", ["t@x"])]
    monitor = TrainingMonitor({"<!channel> & co\nBcc: evil@x": 0.5}, config=alert_config(), sinks=sinks)
    monitor.log_step(1, {"<!channel> & co\nBcc: evil@x": 0.1})
    assert monitor.flush(10)
    text = webhook.wait_for(1)[0]["json"]["text"]
    assert "&lt;!channel&gt; &amp; co" in text and "<!channel>" not in text
    (msg,) = inbox.wait_for(1)
    assert msg["to"] == ["t@x"]  # no header injection
    assert all(r.ok for r in monitor.delivery_results)


def test_throttling_one_alert_per_metric_per_window_but_escalation_passes(webhook):
    monitor = bad_recall_monitor([SlackWebhookSink(webhook.url)], throttle_seconds=60)
    for step in range(50):  # a long bad stretch: 50 anomalous steps
        assert monitor.log_step(step, {"val/recall": 0.74})
    monitor.flush(10)
    assert len(webhook.requests) == 1
    monitor.log_step(50, {"val/recall": 0.2})  # critical after warnings: goes through
    monitor.log_step(51, {"val/recall": 0.2})  # same severity again: throttled
    monitor.log_step(52, {"train/loss": 1.5})
    monitor.log_step(53, {"train/loss": float("nan")})  # another metric: its own budget
    monitor.flush(10)
    assert len(webhook.requests) == 3
    texts = [r["json"]["text"] for r in webhook.requests]
    assert "critical" in texts[1] and "train/loss" in texts[2]
    assert monitor.throttle.suppressed >= 49
    monitor.close()


def test_throttle_zero_sends_every_step(webhook):
    monitor = bad_recall_monitor([SlackWebhookSink(webhook.url)], throttle_seconds=0)
    for step in range(5):
        monitor.log_step(step, {"val/recall": 0.7})
    monitor.flush(10)
    assert len(webhook.requests) == 5


def test_info_anomalies_are_not_sent_by_default(webhook):
    cfg = config_from_dict(
        {
            "experiment_monitoring": {
                "anomaly_detection": {"metric_thresholds": {}, "warmup_steps": 0},
                "auto_recovery": {"plateau_patience": 3},
            }
        }
    )
    monitor = TrainingMonitor({}, config=cfg, sinks=[SlackWebhookSink(webhook.url)])
    found = [a for s in range(10) for a in monitor.log_step(s, {"val/recall": 0.9})]
    assert [a.kind for a in found] == ["plateau"]
    monitor.flush(5)
    assert webhook.requests == []


def test_http_500_is_retried_with_backoff_and_reported(webhook, caplog):
    webhook.status = 500
    monitor = bad_recall_monitor([SlackWebhookSink(webhook.url)], max_retries=2, retry_backoff_seconds=0.1)
    t0 = time.perf_counter()
    monitor.log_step(1, {"val/recall": 0.5})
    assert time.perf_counter() - t0 < 0.05  # delivery happens in the background
    with caplog.at_level(logging.WARNING, logger="analysis.monitoring.alerts"):
        assert monitor.flush(10)
    reqs = webhook.wait_for(3)
    assert len(reqs) == 3  # 1 try + 2 retries
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(reqs)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19  # exponential backoff
    (res,) = monitor.delivery_results
    assert (res.name, res.ok, res.attempts) == ("slack", False, 3)
    assert "HTTP 500" in res.detail and "internal_error" in res.detail
    assert "not delivered to slack after 3 attempt(s)" in caplog.text
    assert monitor.alert_stats["failed"] == 1
    monitor.close()


@pytest.mark.slow  # waits out a hanging sink
def test_hanging_sink_never_blocks_the_loop_and_other_sinks_still_deliver(webhook):
    webhook.delay = 2.0
    good = Webhook()
    try:
        monitor = bad_recall_monitor(
            [SlackWebhookSink(webhook.url, timeout=0.3), SlackWebhookSink(good.url)],
            throttle_seconds=0,
            max_retries=1,
            retry_backoff_seconds=0.05,
        )
        worst = 0.0
        for step in range(2000):
            t0 = time.perf_counter()
            monitor.log_step(step, {"val/recall": 0.5 if step % 400 == 0 else 0.9})
            worst = max(worst, time.perf_counter() - t0)
        assert worst < 0.05, f"a log_step took {worst * 1000:.1f} ms"
        assert len(good.wait_for(5)) == 5  # the healthy sink is not held up by the hanging one
        assert monitor.flush(15)
        failed = [r for r in monitor.delivery_results if r.name == "slack" and not r.ok]
        assert failed and "Timeout" in failed[0].detail
        monitor.close(0.1)
    finally:
        good.close()


def test_refused_connection_is_reported_without_leaking_the_url(caplog):
    url = f"http://127.0.0.1:{free_port()}/services/secret-token"
    monitor = bad_recall_monitor([SlackWebhookSink(url, timeout=1)], max_retries=1, retry_backoff_seconds=0.05)
    with caplog.at_level(logging.WARNING, logger="analysis.monitoring.alerts"):
        monitor.log_step(1, {"val/recall": 0.1})
        assert monitor.flush(10)
    (res,) = monitor.delivery_results
    assert not res.ok and "ConnectionError" in res.detail
    assert "secret-token" not in res.detail and "secret-token" not in caplog.text


def test_a_sink_that_raises_is_contained():
    class Broken:
        name = "broken"

        def send(self, alert):
            raise RuntimeError("boom")

    monitor = bad_recall_monitor([Broken()], max_retries=0)
    assert monitor.log_step(1, {"val/recall": 0.1})  # no exception into the loop
    assert monitor.flush(5)
    (res,) = monitor.delivery_results
    assert (res.ok, res.detail) == (False, "RuntimeError: boom")


def test_full_queue_drops_oldest_instead_of_blocking():
    release = threading.Event()

    class Slow:
        name = "slow"
        sent: ClassVar[list[str]] = []

        def send(self, alert):
            release.wait(5)
            self.sent.append(alert.title)
            return "ok"

    disp = AlertDispatcher([Slow()], queue_size=3)
    t0 = time.perf_counter()
    for i in range(20):
        disp.submit(Alert(title=f"a{i}", text="x"))
    assert time.perf_counter() - t0 < 0.5
    release.set()
    assert not disp.flush(10)  # everything queued was handled, but alerts were dropped: not a clean flush
    assert disp.dropped >= 16
    assert Slow.sent[-1] == "a19"  # the newest alerts survive
    assert disp.flush(10)  # nothing lost since the previous flush
    disp.close()


def test_idle_sink_threads_exit_and_restart_on_the_next_alert():
    class Counter:
        name = "counter-sink"
        n = 0

        def send(self, alert):
            Counter.n += 1
            return "ok"

    def threads():
        return [t for t in threading.enumerate() if t.name == "alert-sink-counter-sink"]

    disp = AlertDispatcher([Counter()], idle_seconds=0.2)
    assert threads() == []  # nothing starts before the first alert
    disp.submit(Alert("a", "x"))
    assert disp.flush(5) and Counter.n == 1
    deadline = time.monotonic() + 5
    while threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threads() == []
    disp.submit(Alert("b", "x"))
    assert disp.flush(5) and Counter.n == 2
    disp.close()


def test_alert_stats_count_outcomes(webhook):
    webhook.status = 500
    monitor = bad_recall_monitor([SlackWebhookSink(webhook.url)], max_retries=0, throttle_seconds=60)
    for step in range(5):
        monitor.log_step(step, {"val/recall": 0.7})
    monitor.flush(5)
    assert monitor.alert_stats == {"delivered": 0, "failed": 1, "dropped": 0, "throttled": 4}


# -- email -----------------------------------------------------------------------------------------------------
def test_email_alert_arrives(smtp_server):
    inbox, port = smtp_server
    sink = EmailSink("127.0.0.1", port, "monitor@example.org", ["team@example.org", "oncall@example.org"])
    monitor = bad_recall_monitor([sink])
    monitor.log_step(7, {"val/recall": 0.7}, batch_info={"batch": 3})
    assert monitor.flush(10)
    (msg,) = inbox.wait_for(1)
    assert msg["from"] == "monitor@example.org"
    assert msg["to"] == ["team@example.org", "oncall@example.org"]
    assert "Subject: [WARNING] ocr-test: val/recall threshold at step 7" in msg["data"]
    assert "val/recall = 0.7 is below its threshold 0.75" in msg["data"]
    assert "'batch': 3" in msg["data"]
    assert monitor.delivery_results[0].detail == "sent to 2 recipient(s)"


def test_smtp_server_that_never_greets_times_out_in_the_background():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts connections (kernel backlog) but never says a word
    try:
        sink = EmailSink("127.0.0.1", silent.getsockname()[1], "m@x", ["t@x"], timeout=0.3)
        monitor = bad_recall_monitor([sink], max_retries=1, retry_backoff_seconds=0.05)
        t0 = time.perf_counter()
        for step in range(200):
            monitor.log_step(step, {"val/recall": 0.5})
        assert time.perf_counter() - t0 < 0.5  # 200 steps, one queued alert, no waiting on SMTP
        assert monitor.flush(10)
        (res,) = monitor.delivery_results
        assert not res.ok and res.attempts == 2 and "timed out" in res.detail
    finally:
        silent.close()


def test_email_with_starttls_and_login_from_environment(tls_smtp_server, monkeypatch):
    inbox, port, client_ctx = tls_smtp_server
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    cfg = alert_config(
        email_recipients=["team@example.org"],
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=True,
        smtp_user="bot",
    )
    (email,) = [s for s in sinks_from_config(cfg) if s.name == "email"]
    assert isinstance(email, EmailSink)
    assert email.password == "s3cret"
    email.ssl_context = client_ctx  # trust the test's self-signed certificate
    assert email.send(Alert("t", "body")) == "sent to 1 recipient(s)"
    (msg,) = inbox.wait_for(1)
    assert msg["tls"] and msg["auth"]


def test_email_wrong_password_or_missing_password_is_reported(tls_smtp_server):
    inbox, port, client_ctx = tls_smtp_server
    sink = EmailSink(
        "127.0.0.1", port, "m@x", ["t@x"], starttls=True, user="bot", password="wrong", ssl_context=client_ctx
    )
    (res,) = send_test_alert(alert_config(), sinks=[sink])
    assert not res.ok and "SMTPAuthenticationError" in res.detail
    sink.password = None
    (res,) = send_test_alert(alert_config(), sinks=[sink])
    assert not res.ok and "SMTP_PASSWORD" in res.detail
    # without STARTTLS the server refuses mail (require_starttls)
    plain = EmailSink("127.0.0.1", port, "m@x", ["t@x"])
    (res,) = send_test_alert(alert_config(), sinks=[plain])
    assert not res.ok and "STARTTLS" in res.detail
    assert inbox.messages == []


# -- send_test_alert (the Monitor settings page) ---------------------------------------------------------------
def test_send_test_alert_reports_each_configured_sink(webhook, smtp_server, monkeypatch):
    inbox, port = smtp_server
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    cfg = alert_config(
        slack_webhook=webhook.url, email_recipients=["team@example.org"], smtp_host="127.0.0.1", smtp_port=port
    )
    results = send_test_alert(cfg)
    assert [(r.name, r.ok) for r in results] == [("log", True), ("wandb", True), ("slack", True), ("email", True)]
    assert results[1].detail == "skipped: no active wandb run"
    assert "Test alert from ocr-test" in webhook.requests[0]["json"]["text"]
    assert "Test alert from ocr-test" in inbox.wait_for(1)[0]["data"]
    # the environment variable wins over the config, and failures come back as results, not exceptions
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/x")
    results = send_test_alert(alert_config(slack_webhook=webhook.url, timeout_seconds=1))
    slack = next(r for r in results if r.name == "slack")
    assert not slack.ok and "ConnectionError" in slack.detail
    assert len(webhook.requests) == 1


def test_log_sink_writes_the_alert(caplog):
    with caplog.at_level(logging.WARNING, logger="analysis.monitoring.alerts"):
        assert LogSink().send(Alert("ocr: val/recall threshold", "- [warning] low", level="critical")) == "logged"
    assert caplog.records[-1].levelno == logging.ERROR and "low" in caplog.records[-1].getMessage()


# -- wandb.alert -----------------------------------------------------------------------------------------------
_WANDB_SCRIPT = r"""
import sys, wandb
from analysis.monitoring.alerts import WandbAlertSink
from analysis.monitoring.monitor import TrainingMonitor
run = wandb.init(project="alerts", name="alert-run", dir=sys.argv[1])
monitor = TrainingMonitor({"val/recall": 0.75}, sinks=[WandbAlertSink()])
monitor.log_step(3, {"val/recall": 0.123})
assert monitor.flush(20)
print([(r.name, r.ok, r.detail) for r in monitor.delivery_results])
run.finish()
"""


def test_wandb_alert_goes_into_the_offline_run(tmp_path):
    import os
    import sys

    from tests.wandb_writer import wandb_env

    env = wandb_env(tmp_path)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run(
        [sys.executable, "-c", _WANDB_SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "('wandb', True, 'wandb.alert on run" in proc.stdout
    (wandb_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    raw = wandb_file.read_bytes()
    # the alert record carries title, text and level (protobuf strings are stored verbatim)
    assert b"ocr_model_v1: val/recall threshold at step 3" in raw
    assert b"val/recall = 0.123 is below its threshold 0.75" in raw
    assert b"ERROR" in raw  # 0.123 is far below 0.75: critical -> wandb level ERROR
    assert os.path.getsize(wandb_file) > 0
