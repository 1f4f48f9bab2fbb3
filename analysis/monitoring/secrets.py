"""Secret URLs the monitor uses (webhooks): their path and query never leave the request.

`register_secret(url)` remembers one; `scrub(text)` removes every registered secret (and anything shaped like a
secret, `analysis.core.redaction`) from a text; a logging filter does the same to every record of this package's
alert logger and of the HTTP stack (urllib3 logs the request path at DEBUG: `"POST /services/T/B/XYZ HTTP/1.1"`).
"""

from __future__ import annotations

import logging
import threading

from analysis.core.redaction import redact_text

__all__ = ["register_secret", "scrub"]

_SECRETS: set[str] = set()  # webhook URLs in use: their path and query never leave the request
_SECRETS_LOCK = threading.Lock()
# loggers of the HTTP stack that print request paths (urllib3 at DEBUG: `"POST /services/T/B/XYZ HTTP/1.1" 200`)
_HTTP_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.util.retry",
    "urllib3.response",
    "urllib3.poolmanager",
    "requests",
    "apprise",  # the Apprise sink's services log their request URLs at DEBUG and response bodies on failure
)


def register_secret(url: str) -> None:
    """Remember a secret URL so no log record, result or message shows its path or query."""
    if not url:
        return
    with _SECRETS_LOCK:
        _SECRETS.add(url)
    _install_log_filter()


def scrub(text: str) -> str:
    with _SECRETS_LOCK:
        secrets = list(_SECRETS)
    return redact_text(text, secrets)


class _RedactingFilter(logging.Filter):
    """Rewrites a log record whose message holds a registered secret (or a secret-shaped value)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()


def _install_log_filter() -> None:
    """Attach the redacting filter to this module's logger and the HTTP stack's (idempotent)."""
    for name in ("analysis.monitoring.alerts", *_HTTP_LOGGERS):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
