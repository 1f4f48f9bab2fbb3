"""Webhook secrets (issue 17, item 5): the URL's path and query appear nowhere but in the request itself: not in
logs at any level (urllib3's DEBUG included), delivery results, test-alert results or echoed error bodies.
A real HTTP server on 127.0.0.1 answers like chat services do."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from analysis.core.config import config_from_dict
from analysis.monitoring.alerts import Alert, AlertDispatcher, SlackWebhookSink, send_test_alert

SECRET_PARTS = ("SECRETPATH123", "QKEYVALUE", "QTOKENVALUE", "/services/")


class EchoingWebhook:
    """Answers every POST with `status` and a body echoing the request path, like Express's 404 page."""

    def __init__(self, status: int) -> None:
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.paths.append(self.path)
                body = f"Cannot POST {self.path}".encode() if status >= 300 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        port = self.server.server_port
        self.url = f"http://127.0.0.1:{port}/services/T0/B0/SECRETPATH123?key=QKEYVALUE&token=QTOKENVALUE"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=[404, 200])
def hook(request):
    h = EchoingWebhook(request.param)
    yield h
    h.close()


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for part in SECRET_PARTS:
            assert part not in text, (part, text)


def _all_logs(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def test_query_and_path_never_leave_the_request(hook, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's connection pool included
    disp = AlertDispatcher([SlackWebhookSink(hook.url, timeout=2)], max_retries=1, backoff=0.01)
    disp.submit(Alert(title="t", text="x"))
    disp.flush(10)
    disp.close()
    assert hook.paths and "SECRETPATH123" in hook.paths[0]  # the request itself had the secret
    (result,) = disp.snapshot()
    _assert_clean(_all_logs(caplog), result.detail)
    if result.ok:
        assert result.detail == "HTTP 200"
    else:
        assert result.detail.startswith("HTTP 404: Cannot POST <redacted>")  # the body is kept, redacted
    assert any("urllib3" in r.name for r in caplog.records)  # urllib3 did log at DEBUG (and was redacted)


def test_test_alert_results_and_refused_connections_are_redacted(hook, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
    results = send_test_alert(config_from_dict({}))
    slack = [r for r in results if r.name == "slack"]
    assert len(slack) == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = hook.url.replace(f":{hook.server.server_port}/", f":{port}/")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", refused)
    (down,) = [r for r in send_test_alert(config_from_dict({})) if r.name == "slack"]
    assert not down.ok and "ConnectionError" in down.detail
    _assert_clean(_all_logs(caplog), slack[0].detail, down.detail, repr(SlackWebhookSink(hook.url)))
