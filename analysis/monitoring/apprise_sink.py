"""Alerts through Apprise (the optional `notify` extra): one URL reaches Discord, Teams, Telegram, PagerDuty, ...

Each configured URL (`alerts.apprise_urls`, or `$APPRISE_URLS`) is one sink named `apprise:<service>`, so it gets
the dispatcher's throttling, background retries and delivery results like the Slack and email sinks. Apprise URLs
carry their tokens in the host (`tgram://<bot token>/<chat>`), the path (`discord://<id>/<token>`) or the query,
so each URL is registered with `analysis.monitoring.secrets` before Apprise sees it (Apprise's own logger is
redacted too), and whatever is shown - sink results, errors, the settings page - uses `apprise_display(url)`: the
service, plus the host only when it names a machine. Apprise is imported only when a URL is configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from analysis.core.config import AlertsConfig
from analysis.core.errors import ConfigError
from analysis.core.redaction import REDACTED
from analysis.monitoring.records import Alert, AlertDeliveryError
from analysis.monitoring.secrets import register_secret, scrub

__all__ = ["INSTALL_HINT", "AppriseSink", "apprise_display", "apprise_sinks"]

INSTALL_HINT = "pip install 'experiment-analyzer[notify]'"
_URL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")
# a host worth showing: a dotted name or address, localhost, or a bracketed IPv6 address (with an optional port)
_PUBLIC_HOST = re.compile(
    r"(?:(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+|localhost|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?", re.IGNORECASE
)
_NOTIFY_TYPE = {"info": "info", "warning": "warning", "critical": "failure"}  # Apprise's NotifyType values
_MAX_REASON = 300


def _split(url: str) -> tuple[str, str, str]:
    """(service scheme, host shown or "", netloc hidden or "") of an Apprise URL."""
    m = _URL.match(url)
    if not m:
        return "", "", ""
    netloc = m.group(2).rpartition("@")[2]  # never the user:password part
    if _PUBLIC_HOST.fullmatch(netloc):
        return m.group(1).lower(), netloc, ""
    return m.group(1).lower(), "", m.group(2)


def apprise_display(url: str) -> str:
    """An Apprise URL safe to show: `json://127.0.0.1:8080/<redacted>`, `discord://<redacted>` (the host of
    `discord://<id>/<token>` and `tgram://<bot token>/<chat>` is part of the secret)."""
    scheme, host, _ = _split(url)
    if not scheme:
        return REDACTED
    return f"{scheme}://{host}/{REDACTED}" if host else f"{scheme}://{REDACTED}"


class _ThreadCapture(logging.Handler):
    """Collects the warnings Apprise logs while the current thread sends (its only account of why a send failed);
    records of other threads - other sinks sending at the same time - are not mixed in."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        buffer: list[str] | None = getattr(self.local, "buffer", None)
        if buffer is not None and len(buffer) < 10:
            with contextlib.suppress(Exception):  # a malformed record is the logging module's business
                buffer.append(scrub(record.getMessage()))

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        buffer: list[str] = []
        self.local.buffer = buffer
        try:
            yield buffer
        finally:
            self.local.buffer = None


_CAPTURE = _ThreadCapture()
_CAPTURE_LOCK = threading.Lock()


def _import_apprise(source: str) -> Any:
    try:
        import apprise
    except ImportError:
        raise ConfigError(f"{source} is set but Apprise is not installed: {INSTALL_HINT}") from None
    with _CAPTURE_LOCK:
        logger = logging.getLogger("apprise")
        if _CAPTURE not in logger.handlers:
            logger.addHandler(_CAPTURE)
    return apprise


class AppriseSink:
    """Sends each alert to one Apprise URL (title, plain-text body, Apprise's info / warning / failure type)."""

    def __init__(self, url: str, timeout: float = 5.0, *, source: str = "alerts.apprise_urls") -> None:
        url = url.strip()
        scheme, _, hidden = _split(url)
        register_secret(url)  # before Apprise parses (and may log) it
        if hidden:
            register_secret(hidden)
        self.display = apprise_display(url)
        self.name = f"apprise:{scheme or 'unknown'}"
        self.timeout = timeout
        apprise = _import_apprise(source)
        with _CAPTURE.capture() as problems:
            plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            why = f" ({'; '.join(problems)[:_MAX_REASON]})" if problems else ""
            raise ConfigError(
                f"{source}: Apprise cannot send to {self.display}: unknown service or a required part missing{why} "
                "(URL formats: https://github.com/caronc/apprise/wiki)"
            )
        query = url.partition("?")[2].lower()
        if "cto=" not in query:  # the URL's own timeouts win over the alerts' timeout
            plugin.socket_connect_timeout = timeout
        if "rto=" not in query:
            plugin.socket_read_timeout = timeout
        self._plugin = plugin

    def __repr__(self) -> str:  # never the URL
        return f"AppriseSink({self.display})"

    def send(self, alert: Alert) -> str:
        with _CAPTURE.capture() as problems:
            try:
                ok = self._plugin.notify(
                    body=alert.text or alert.title,
                    title=alert.title,
                    notify_type=_NOTIFY_TYPE.get(alert.level, "warning"),
                )
            except Exception as exc:  # a plugin bug or an unexpected library error is a delivery failure
                raise AlertDeliveryError(f"{self.display}: {type(exc).__name__}: {scrub(str(exc))}") from None
        if not ok:
            reason = "; ".join(problems) or "Apprise reported a failure and logged no reason"
            raise AlertDeliveryError(f"{self.display}: {reason}"[:_MAX_REASON])
        return f"sent to {self.display}"


def apprise_sinks(alerts: AlertsConfig) -> list[AppriseSink]:
    """One sink per configured Apprise URL; `ConfigError` when Apprise is missing or a URL is not one it knows."""
    urls = alerts.resolved_apprise_urls()
    source = "$APPRISE_URLS" if os.environ.get("APPRISE_URLS", "").strip() else "alerts.apprise_urls"
    return [AppriseSink(url, alerts.timeout_seconds, source=f"{source}[{i}]") for i, url in enumerate(urls)]
