"""The Apprise sink (issue 16, item 4): real `TrainingMonitor` alerts reach a real HTTP server on 127.0.0.1 through
Apprise's `json://`, `form://` and `xml://` services, with the monitor's throttling, background retries and
delivery results; tokens in Apprise URLs (path, host, query) never reach a log record, a result or the settings
table. Discord and Telegram sends go through a local proxy that refuses the tunnel, so nothing leaves the machine."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from analysis.core.config import config_from_dict, dump_config, parse_config_text
from analysis.core.errors import ConfigError
from analysis.monitoring.alerts import sinks_from_config
from analysis.monitoring.apprise_sink import INSTALL_HINT, apprise_display
from analysis.monitoring.monitor import TrainingMonitor


class Receiver:
    """A real HTTP server: records POSTs (path, content type, body), answers `status` with a body that echoes the
    path (as Express's 404 page does), and refuses CONNECT tunnels (it is the proxy for Discord/Telegram sends)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.connects: list[str] = []
        self.status = 200
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.posts.append(
                    {"path": self.path, "ctype": self.headers.get("Content-Type", ""), "body": body.decode()}
                )
                reply = b"ok" if rec.status < 300 else f"Cannot POST {self.path}".encode()
                self.send_response(rec.status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_CONNECT(self):
                rec.connects.append(self.path)
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.posts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _no_env_urls(monkeypatch):
    for var in ("APPRISE_URLS", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)


def monitor_for(urls: list[str], **alerts) -> TrainingMonitor:
    """A monitor whose sinks come from the config (log, wandb no-op, the Apprise URLs)."""
    cfg = config_from_dict(
        {
            "experiment_monitoring": {"alerts": {"apprise_urls": urls, "timeout_seconds": 2, **alerts}},
            "training_config": {"experiment_name": "ocr-apprise"},
        }
    )
    return TrainingMonitor({"val/recall": 0.75}, config=cfg)


def _logs(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def test_json_form_and_xml_alerts_arrive_from_a_monitor_and_are_throttled(receiver):
    urls = [f"{kind}://{receiver.base}/hook/{kind.upper()}TOKEN123" for kind in ("json", "form", "xml")]
    monitor = monitor_for(urls, throttle_seconds=60)
    assert [s.name for s in monitor.sinks if s.name.startswith("apprise")] == ["apprise:json", "apprise:form",
                                                                                "apprise:xml"]  # fmt: skip
    (anomaly,) = monitor.log_step(100, {"val/recall": 0.70})
    for step in range(101, 120):  # a long bad stretch: throttled to the one alert per metric
        assert monitor.log_step(step, {"val/recall": 0.70})
    assert monitor.flush(10)
    posts = {p["path"]: p for p in receiver.wait_for(3)}
    assert set(posts) == {f"/hook/{k}TOKEN123" for k in ("JSON", "FORM", "XML")}

    sent = json.loads(posts["/hook/JSONTOKEN123"]["body"])
    assert "ocr-apprise" in sent["title"] and "val/recall" in sent["title"]
    assert anomaly.message in sent["message"] and sent["type"] == "warning"
    form = parse_qs(posts["/hook/FORMTOKEN123"]["body"])
    assert "application/x-www-form-urlencoded" in posts["/hook/FORMTOKEN123"]["ctype"]
    assert anomaly.message in form["message"][0] and "val/recall" in form["title"][0]
    xml = posts["/hook/XMLTOKEN123"]["body"]
    assert "<Subject>" in xml and "val/recall" in xml and "<MessageType>warning</MessageType>" in xml

    results = {r.name: r for r in monitor.delivery_results if r.name.startswith("apprise")}
    assert {n: (r.ok, r.attempts) for n, r in results.items()} == {
        "apprise:json": (True, 1),
        "apprise:form": (True, 1),
        "apprise:xml": (True, 1),
    }
    assert results["apprise:json"].detail == f"sent to json://{receiver.base}/<redacted>"
    assert monitor.throttle.suppressed >= 19 and len(receiver.posts) == 3
    monitor.close()


def test_a_failing_endpoint_is_retried_in_the_background_and_reported_without_the_token(receiver, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: apprise's request URL, urllib3's request line, the retries
    receiver.status = 500
    url = f"json://{receiver.base}/services/SECRETPATH42?token=QTOKEN42"
    monitor = monitor_for([url], max_retries=2, retry_backoff_seconds=0.05)
    t0 = time.perf_counter()
    monitor.log_step(1, {"val/recall": 0.5})
    assert time.perf_counter() - t0 < 0.05  # the send happens in the background
    assert monitor.flush(10)
    assert len(receiver.wait_for(3)) == 3  # one try and two retries
    assert all("SECRETPATH42" in p["path"] for p in receiver.posts)  # the request itself had the secret
    (res,) = [r for r in monitor.delivery_results if r.name == "apprise:json"]
    assert (res.ok, res.attempts) == (False, 3)
    assert "500" in res.detail and res.detail.startswith(f"json://{receiver.base}/<redacted>")
    assert monitor.alert_stats["failed"] == 1
    logs = _logs(caplog)
    assert "not delivered to apprise:json after 3 attempt(s)" in logs
    assert "JSON POST URL" in logs  # apprise did log the URL at DEBUG (redacted)
    for secret in ("SECRETPATH42", "QTOKEN42", "/services/"):
        assert secret not in logs and secret not in res.detail
    monitor.close()


def test_discord_and_telegram_tokens_never_reach_logs_or_results(receiver, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HTTPS_PROXY", f"http://{receiver.base}")  # the local proxy refuses: nothing leaves
    monkeypatch.setenv("https_proxy", f"http://{receiver.base}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    discord = "discord://998877665544/DiscordSecretToken_abcdef123"
    telegram = "tgram://123456789:TelegramBotSecretXYZ/-100200300"
    monitor = monitor_for([discord, telegram], max_retries=1, retry_backoff_seconds=0.05)
    monitor.log_step(1, {"val/recall": 0.5})
    assert monitor.flush(20)
    assert any(c.startswith("discord.com:443") for c in receiver.connects)  # a send was attempted, via the proxy
    assert any(c.startswith("api.telegram.org:443") for c in receiver.connects)
    results = [r for r in monitor.delivery_results if r.name.startswith("apprise")]
    assert sorted((r.name, r.ok, r.attempts) for r in results) == [
        ("apprise:discord", False, 2),
        ("apprise:tgram", False, 2),
    ]
    shown = [_logs(caplog), *(r.detail for r in results), *(repr(s) for s in monitor.sinks)]
    for text in shown:
        for secret in ("DiscordSecretToken", "998877665544", "TelegramBotSecret", "123456789:"):
            assert secret not in text, (secret, text)
    assert {r.detail.split(":")[0] for r in results} == {"discord", "tgram"}
    monitor.close()


def test_apprise_display_keeps_the_service_and_a_real_host_only():
    assert apprise_display("json://127.0.0.1:8080/a/TOKEN?x=1") == "json://127.0.0.1:8080/<redacted>"
    assert apprise_display("msteams://myteam.webhook.office.com/T/B/SECRET") == "msteams://myteam.webhook.office.com/<redacted>"  # fmt: skip
    assert apprise_display("discord://1234567/TOKEN") == "discord://<redacted>"
    assert apprise_display("tgram://123:BOTTOKEN/chat") == "tgram://<redacted>"
    assert apprise_display("mailto://user:PASSWORD@gmail.com") == "mailto://gmail.com/<redacted>"
    assert apprise_display("not a url") == "<redacted>"


def test_the_config_reads_urls_from_the_environment_and_never_writes_them(monkeypatch):
    monkeypatch.setenv("MY_DISCORD", "discord://1/SECRET_A")
    cfg = config_from_dict({"experiment_monitoring": {"alerts": {"apprise_urls": ["${MY_DISCORD}", "json://h/B"]}}})
    alerts = cfg.experiment_monitoring.alerts
    assert alerts.resolved_apprise_urls() == ["discord://1/SECRET_A", "json://h/B"]
    monkeypatch.setenv("APPRISE_URLS", "json://a/1, form://b/2 xml://c/3")  # apprise's own list syntax wins
    assert alerts.resolved_apprise_urls() == ["json://a/1", "form://b/2", "xml://c/3"]
    dumped = dump_config(cfg)
    assert "json://h/B" not in dumped and "${MY_DISCORD}" in dumped
    again = parse_config_text(dumped).experiment_monitoring.alerts  # a dumped config reads back
    assert again.apprise_urls == ["${MY_DISCORD}"]
    with pytest.raises(ConfigError) as err:
        config_from_dict({"experiment_monitoring": {"alerts": {"apprise_urls": ["SECRET_NO_SCHEME"]}}})
    assert "apprise_urls" in str(err.value) and "SECRET_NO_SCHEME" not in str(err.value)


def test_missing_apprise_or_an_unknown_service_is_a_clear_config_error(receiver, monkeypatch, caplog):
    from analysis.core.config import AnalyzerConfig
    from analysis.monitoring.alerts import send_test_alert

    cfg = config_from_dict({"experiment_monitoring": {"alerts": {"apprise_urls": ["nosuchservice://SECRETHOST9/x"]}}})
    with pytest.raises(ConfigError) as err:
        sinks_from_config(cfg)
    assert "nosuchservice://<redacted>" in str(err.value) and "SECRETHOST9" not in str(err.value)
    assert "SECRETHOST9" not in _logs(caplog)

    ok_cfg = config_from_dict(
        {"experiment_monitoring": {"alerts": {"apprise_urls": [f"json://{receiver.base}/hook/TESTTOKEN"]}}}
    )
    results = {r.name: r for r in send_test_alert(ok_cfg)}
    assert results["apprise:json"].ok and "TESTTOKEN" not in results["apprise:json"].detail
    assert "Test alert" in json.loads(receiver.wait_for(1)[0]["body"])["title"]

    monkeypatch.setitem(sys.modules, "apprise", None)  # as if the `notify` extra were not installed
    with pytest.raises(ConfigError) as err:
        TrainingMonitor(config=ok_cfg)
    assert INSTALL_HINT in str(err.value)
    results = {r.name: r for r in send_test_alert(ok_cfg)}  # the settings page: the other sinks still tested
    assert results["log"].ok and not results["apprise"].ok and INSTALL_HINT in results["apprise"].detail
    assert [s.name for s in sinks_from_config(AnalyzerConfig())] == ["log", "wandb"]  # Apprise only when used


def test_the_settings_page_lists_apprise_without_tokens_and_a_confined_server_checks_its_hosts():
    from analysis.core.config import AlertsConfig
    from analysis.core.paths import HostNotAllowed, check_host
    from ui import tables

    alerts = AlertsConfig(apprise_urls=["json://10.0.0.5:8080/hook/TOKEN77", "discord://424242/TOKEN88"])
    row = tables.alert_sinks_table(alerts).set_index("sink").loc["Apprise"]
    assert bool(row["configured"]) and row["detail"] == "json://10.0.0.5:8080/<redacted>, discord://<redacted>"
    destinations = tables.alert_destinations(alerts)
    assert not any("TOKEN" in d or "424242" in d for d in destinations)
    check_host(destinations[0], ["10.0.0.5"])  # an allowed internal host passes ...
    for destination in destinations:  # ... and nothing passes an allow-list without it (no SSRF via Apprise)
        with pytest.raises(HostNotAllowed):
            check_host(destination, ["hooks.slack.com"])
