"""Alert sinks (Slack incoming webhook, SMTP email, `wandb.alert`, the log, Apprise) and a non-blocking dispatcher.

A sink has a `name` and `send(alert) -> str` (a short detail on success; it raises on failure). The
`AlertDispatcher` gives every sink its own daemon thread and bounded queue: `submit()` never blocks and never
raises, failures are retried with exponential backoff and then reported (logged, counted, kept in `results`).
`send_test_alert(config)` sends one test alert synchronously to every configured sink, for the settings page.
Webhook URLs are secrets: they are registered with `analysis.monitoring.secrets`, which keeps their path and
query out of every message, result and log record. Slack gets Block Kit (one section of fields per anomaly:
run, batch, metric, value, step, link) within Slack's size limits; Apprise URLs (the optional `notify` extra) are
sinks of `analysis.monitoring.apprise_sink`. (Over 400 lines: the sinks, the dispatcher and its workers
share the delivery types and are read together.)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import smtplib
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

import requests

from analysis.core.config import AlertsConfig, AnalyzerConfig
from analysis.core.errors import ConfigError
from analysis.core.redaction import redact_text
from analysis.core.vocabulary import Severity
from analysis.monitoring.records import Alert, AlertDeliveryError
from analysis.monitoring.secrets import register_secret, scrub

__all__ = [  # Alert and AlertDeliveryError live in analysis.monitoring.records (the Apprise sink uses them too)
    "Alert",
    "AlertDeliveryError",
    "AlertDispatcher",
    "AlertSink",
    "AlertThrottle",
    "EmailSink",
    "LogSink",
    "SinkResult",
    "SlackWebhookSink",
    "WandbAlertSink",
    "active_run_link",
    "deliver",
    "send_test_alert",
    "sinks_from_config",
    "slack_escape",
    "slack_payload",
]

log = logging.getLogger(__name__)

_WANDB_LEVEL = {"info": "INFO", "warning": "WARN", "critical": "ERROR"}
_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


@dataclass(frozen=True)
class SinkResult:
    """Outcome of delivering one alert to one sink."""

    name: str
    ok: bool
    detail: str
    attempts: int = 1
    title: str = ""
    at: float = field(default_factory=time.time)


class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> str: ...


class LogSink:
    """Writes the alert to the `analysis.monitoring.alerts` logger at the alert's level."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def send(self, alert: Alert) -> str:
        self.logger.log(_LOG_LEVEL.get(alert.level, logging.WARNING), "%s\n%s", alert.title, alert.text)
        return "logged"


class SlackWebhookSink:
    """POSTs `{"text": ...}` (plus blocks) as JSON to a Slack incoming webhook URL."""

    name = "slack"

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        register_secret(url)

    def __repr__(self) -> str:  # never the URL: its path and query are the secret
        return f"SlackWebhookSink(timeout={self.timeout})"

    @staticmethod
    def payload(alert: Alert) -> dict:
        """Block Kit (a header, one section of fields per anomaly) plus the plain `text` Slack shows in
        notifications; every user string escaped and cut to Slack's limits."""
        return slack_payload(alert)

    def send(self, alert: Alert) -> str:
        try:
            resp = requests.post(self.url, json=self.payload(alert), timeout=self.timeout)
        except requests.RequestException as exc:
            raise AlertDeliveryError(f"{type(exc).__name__}: {redact_text(str(exc), [self.url])}") from None
        if not 200 <= resp.status_code < 300:  # the body may echo the path ("Cannot POST /services/T/B/...")
            raise AlertDeliveryError(f"HTTP {resp.status_code}: {redact_text(resp.text, [self.url])[:200]}")
        return f"HTTP {resp.status_code}"


def slack_escape(text: str) -> str:
    """Slack's three control characters, so metric names cannot become links or mentions (<!channel>)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack's Block Kit limits (https://api.slack.com/reference/block-kit/blocks)
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_TEXT = 3000
SLACK_MAX_FIELDS = 10
SLACK_FIELD_TEXT = 2000
SLACK_HEADER_TEXT = 150
_SLACK_FALLBACK_TEXT = 3000  # the notification text: Slack allows 40,000, nobody reads past a screen
_SLACK_ANOMALY_SECTIONS = 20  # one section per anomaly, then "... and N more" (well under 50 blocks)


def slack_fit(text: str, limit: int) -> str:
    """`text` (already escaped) cut to `limit` characters with an ellipsis, never inside an `&amp;` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", max(0, len(cut) - 5))
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _slack_text(text: str, limit: int) -> str:
    return slack_fit(slack_escape(text), limit)


def _slack_link(url: str) -> str:
    """`<url|open the run>` for an http(s) URL (with Slack's separators percent-encoded), else ""."""
    url = url.strip()
    if not url.lower().startswith(("https://", "http://")) or any(c.isspace() for c in url):
        return ""
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe}|open the run>" if len(safe) < SLACK_FIELD_TEXT - 40 else ""


def _slack_field(label: str, value: str) -> dict:
    head = f"*{label}*\n"
    return {"type": "mrkdwn", "text": head + _slack_text(value, SLACK_FIELD_TEXT - len(head))}


def _slack_value(value: float) -> str:
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return str(value)


def slack_payload(alert: Alert) -> dict:
    """The Slack message of an alert: header, per-anomaly field sections (run, batch, metric, value, step, link),
    a plain-text fallback; within Block Kit's limits however long the names are."""
    emoji = _EMOJI.get(alert.level, "")
    link = _slack_link(alert.link)
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _slack_text(alert.title, SLACK_HEADER_TEXT)}}
    ]
    shown = alert.anomalies[:_SLACK_ANOMALY_SECTIONS]
    for a in shown:
        fields = [
            _slack_field("Run", alert.run or "—"),
            _slack_field("Batch", "run-level" if a.batch is None else str(a.batch)),
            _slack_field("Metric", a.metric),
            _slack_field("Value", _slack_value(a.value)),
            _slack_field("Step", str(a.step)),
            _slack_field("Severity", f"{a.severity} ({a.detector})"),
        ]
        if link:
            fields.append({"type": "mrkdwn", "text": f"*Link*\n{link}"})
        text = _slack_text(a.message, SLACK_SECTION_TEXT)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}, "fields": fields})
    if len(alert.anomalies) > len(shown):
        more = f"… and {len(alert.anomalies) - len(shown)} more anomalies"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    if not shown:  # a test alert, a user's own alert: the text, with what is known
        known = (("Run", alert.run), ("Step", "" if alert.step is None else str(alert.step)))
        fields = [_slack_field(label, value) for label, value in known if value]
        if link:
            fields.append({"type": "mrkdwn", "text": f"*Link*\n{link}"})
        section: dict = {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _slack_text(alert.text or alert.title, SLACK_SECTION_TEXT)},
        }
        if fields:
            section["fields"] = fields[:SLACK_MAX_FIELDS]
        blocks.append(section)
    head = f"{emoji} *{slack_escape(alert.title)}*".strip()
    fallback = slack_fit(f"{head}\n{slack_escape(alert.text)}" + (f"\n{link}" if link else ""), _SLACK_FALLBACK_TEXT)
    return {"text": fallback, "blocks": blocks[:SLACK_MAX_BLOCKS]}


def active_run_link() -> str:
    """The URL of the active wandb run in this process ("" offline, without a run, or without wandb imported)."""
    wandb = sys.modules.get("wandb")  # never import it here: an import costs seconds
    try:
        url = getattr(getattr(wandb, "run", None), "url", None) if wandb else None
    except Exception:  # a run being torn down may raise on attribute access
        return ""
    return url if isinstance(url, str) else ""


class EmailSink:
    """Sends a plain-text email over SMTP; STARTTLS and login are optional (password from `$SMTP_PASSWORD`)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        starttls: bool = False,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.recipients = list(recipients)
        self.starttls, self.user, self.password = starttls, user, password
        self.timeout = timeout
        self.ssl_context = ssl_context

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[{alert.level.upper()}] {alert.title}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(alert.text)
        return msg

    def send(self, alert: Alert) -> str:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.user:
                    if self.password is None:
                        raise AlertDeliveryError("smtp_user is set but $SMTP_PASSWORD is not")
                    smtp.login(self.user, self.password)
                refused = smtp.send_message(self.message(alert))
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertDeliveryError(f"{type(exc).__name__}: {exc}") from None
        ok = len(self.recipients) - len(refused)
        return f"sent to {ok} recipient(s)" + (f", refused: {', '.join(refused)}" if refused else "")


class WandbAlertSink:
    """`run.alert(...)` on the active wandb run; a no-op when wandb was never imported or no run is active."""

    name = "wandb"

    def __init__(self, wait_seconds: float = 1.0) -> None:
        self.wait_seconds = max(wait_seconds, 1.0)  # wandb treats 0 as "1 minute"

    def send(self, alert: Alert) -> str:
        wandb = sys.modules.get("wandb")  # never import it here: an import costs seconds
        run = getattr(wandb, "run", None) if wandb else None
        if run is None:
            return "skipped: no active wandb run"
        try:
            run.alert(
                title=alert.title[:63],
                text=alert.text,
                level=_WANDB_LEVEL.get(alert.level, "WARN"),
                wait_duration=self.wait_seconds,
            )
        except Exception as exc:  # wandb raises its own types (UsageError, ...)
            raise AlertDeliveryError(f"{type(exc).__name__}: {exc}") from None
        return f"wandb.alert on run {getattr(run, 'id', '?')}"


def sinks_from_config(config: AnalyzerConfig | AlertsConfig, *, apprise: bool = True) -> list[AlertSink]:
    """The sinks a config asks for: the log always, wandb always (no-op without a run), Slack, email and Apprise
    URLs if set. `ConfigError` when an Apprise URL is set but Apprise is missing or does not know the URL."""
    alerts = config.experiment_monitoring.alerts if isinstance(config, AnalyzerConfig) else config
    sinks: list[AlertSink] = [LogSink(), WandbAlertSink(alerts.throttle_seconds)]
    url = alerts.resolved_slack_webhook()
    if url:
        sinks.append(SlackWebhookSink(url, timeout=alerts.timeout_seconds))
    if alerts.email_recipients:
        sinks.append(
            EmailSink(
                alerts.smtp_host,
                alerts.smtp_port,
                alerts.smtp_sender,
                alerts.email_recipients,
                starttls=alerts.smtp_starttls,
                user=alerts.smtp_user,
                password=alerts.smtp_password(),
                timeout=alerts.timeout_seconds,
            )
        )
    if apprise and alerts.resolved_apprise_urls():
        from analysis.monitoring.apprise_sink import apprise_sinks  # imports Apprise (optional) only when used

        sinks.extend(apprise_sinks(alerts))
    return sinks


def deliver(sink: AlertSink, alert: Alert) -> SinkResult:
    """One attempt; never raises. The detail is redacted (a user's sink may put its URL in an error)."""
    try:
        return SinkResult(sink.name, True, scrub(str(sink.send(alert))), 1, alert.title)
    except Exception as exc:  # a sink is user-extensible: any failure is a delivery failure
        detail = str(exc) if isinstance(exc, AlertDeliveryError) else f"{type(exc).__name__}: {exc}"
        return SinkResult(sink.name, False, scrub(detail), 1, alert.title)


def send_test_alert(config: AnalyzerConfig, sinks: Sequence[AlertSink] | None = None) -> list[SinkResult]:
    """Send one test alert to each configured sink, synchronously (one attempt, bounded by the timeout)."""
    experiment = config.training_config.experiment_name
    alert = Alert(
        title=f"Test alert from {experiment}"[:63],
        text="This is a test alert from the experiment analyzer's monitor settings. "
        "If you can read it, alerts reach you.",
        level="info",
    )
    problems: list[SinkResult] = []
    if sinks is None:
        try:
            sinks = sinks_from_config(config)
        except ConfigError as exc:  # Apprise missing or a URL it does not know: say so, test the other sinks
            problems.append(SinkResult("apprise", False, scrub(str(exc)), 0, alert.title))
            sinks = sinks_from_config(config, apprise=False)
    return [*(deliver(sink, alert) for sink in sinks), *problems]


class AlertThrottle:
    """Per-metric throttling like wandb's `wait_duration`: at most one alert per metric per `seconds`,
    except that a higher severity than the last one sent always goes through."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}
        self.suppressed = 0

    def allow(self, key: str, severity: str) -> bool:
        now = self.clock()
        try:
            rank = Severity.parse(severity).rank
        except ValueError:  # an unknown level is throttled like a warning
            rank = Severity.WARNING.rank
        last = self._last.get(key)
        if last is not None and now - last[0] < self.seconds and rank <= last[1]:
            self.suppressed += 1
            return False
        self._last[key] = (now, rank)
        return True


class _SinkWorker:
    """One sink's queue and thread. The thread exits after `idle_seconds` without work and is restarted by the
    next `put`, so monitors that are never closed do not keep threads (or themselves) alive forever."""

    def __init__(self, sink: AlertSink, owner: AlertDispatcher) -> None:
        self.sink = sink
        self.owner = owner
        self.queue: queue.Queue[Alert | None] = queue.Queue(maxsize=owner.queue_size)
        self._lock = threading.Lock()
        self._alive = False
        self._thread: threading.Thread | None = None

    def put(self, alert: Alert) -> None:
        with self._lock:
            while True:
                try:
                    self.queue.put_nowait(alert)
                    break
                except queue.Full:
                    try:  # drop the oldest pending alert rather than block the training loop
                        self.queue.get_nowait()
                        self.queue.task_done()
                        self.owner._count_dropped(self.sink.name)
                    except queue.Empty:
                        pass
            if not self._alive:
                self._start()

    def _start(self) -> None:
        """Start the worker thread (with `_lock` held)."""
        self._alive = True
        self._thread = threading.Thread(target=self._run, name=f"alert-sink-{self.sink.name}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._alive

    def restart(self) -> None:
        with self._lock:
            if not self._alive:
                self._start()

    def stop(self) -> None:
        with self._lock:
            if self._alive:
                # when full, the thread sees `_stopping` after its current alert and exits when idle
                with contextlib.suppress(queue.Full):
                    self.queue.put_nowait(None)

    def _run(self) -> None:
        try:
            self._serve()
        finally:  # however the loop ended, the next `put` starts a new thread
            with self._lock:
                if self._thread is threading.current_thread():
                    self._alive = False

    def _serve(self) -> None:
        while True:
            try:
                alert = self.queue.get(timeout=self.owner.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self.queue.empty():
                        self._alive = False  # under the lock: a `put` from now on starts a new thread
                        return
                continue
            try:
                if alert is None:
                    with self._lock:
                        self._alive = False
                    return
                try:
                    result = self._deliver_with_retries(alert)
                except Exception as exc:  # a bug here must cost this alert (reported), not the thread
                    self.owner._count_lost(self.sink.name, alert, exc)
                    continue
                self.owner._record(result)
            finally:
                self.queue.task_done()

    def _deliver_with_retries(self, alert: Alert) -> SinkResult:
        owner = self.owner
        delay = min(owner.backoff, owner.max_backoff)
        for attempt in range(1, owner.max_retries + 2):
            res = deliver(self.sink, alert)
            if res.ok or attempt > owner.max_retries or owner._stopping.is_set():
                return SinkResult(res.name, res.ok, res.detail, attempt, alert.title)
            log.info(
                "alert sink %s failed (attempt %d): %s; retrying in %.1fs", self.sink.name, attempt, res.detail, delay
            )
            if owner._stopping.wait(delay):
                return SinkResult(res.name, False, res.detail + " (gave up: monitor closing)", attempt, alert.title)
            delay = min(delay * 2, owner.max_backoff)
        raise AssertionError("unreachable")


class AlertDispatcher:
    """Delivers alerts to sinks from background threads; `submit` never blocks or raises."""

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        queue_size: int = 100,
        keep_results: int = 200,
        idle_seconds: float = 60.0,
    ) -> None:
        self.sinks = list(sinks)
        self.max_retries = min(max(int(max_retries), 0), 100)
        # a wait longer than threading allows (1e300 s) would raise in the worker: delays are bounded
        self.max_backoff = min(max(float(max_backoff), 0.0), 3600.0)
        self.backoff = min(max(float(backoff), 0.0), self.max_backoff)
        self.queue_size = queue_size
        self.idle_seconds = idle_seconds
        self.results: deque[SinkResult] = deque(maxlen=keep_results)
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.lost = 0  # alerts a sink worker could not process at all (reported in the log)
        self._losses_seen = 0  # dropped + lost at the previous flush
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._workers: list[_SinkWorker] | None = None  # started on the first alert

    def submit(self, alert: Alert) -> None:
        if self._stopping.is_set():
            return
        try:
            if self._workers is None:
                self._workers = [_SinkWorker(s, self) for s in self.sinks]
            for w in self._workers:
                w.put(alert)
        except Exception:  # never into the training loop
            log.exception("could not queue an alert")

    def snapshot(self) -> list[SinkResult]:
        """The recent delivery results, oldest first (a copy: workers append concurrently)."""
        with self._lock:
            return list(self.results)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert was delivered or given up; True if that happened within `timeout` and no
        alert was dropped (queue full) or lost (a worker failed) since the previous flush."""
        deadline = time.monotonic() + timeout
        for w in self._workers or []:
            while w.queue.unfinished_tasks:
                if time.monotonic() >= deadline:
                    return False
                if not w.alive and w.queue.unfinished_tasks:
                    w.restart()  # a worker that died with work pending (cannot happen by design; never hang)
                time.sleep(0.01)
        with self._lock:
            losses = self.dropped + self.lost
            clean = losses == self._losses_seen
            self._losses_seen = losses
        return clean

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is pending (bounded by `timeout`), then stop the threads; retries are abandoned."""
        self.flush(timeout)
        self._stopping.set()
        for w in self._workers or []:
            w.stop()

    def _record(self, res: SinkResult) -> None:
        with self._lock:
            self.results.append(res)
            if res.ok:
                self.delivered += 1
            else:
                self.failed += 1
        if not res.ok:
            log.warning(
                "alert %r not delivered to %s after %d attempt(s): %s", res.title, res.name, res.attempts, res.detail
            )

    def _count_lost(self, name: str, alert: Alert, exc: BaseException) -> None:
        with self._lock:
            self.lost += 1
            self.results.append(
                SinkResult(name, False, scrub(f"not processed: {type(exc).__name__}: {exc}"), 0, alert.title)
            )
        log.error("alert %r lost by sink %s: %s", alert.title, name, scrub(f"{type(exc).__name__}: {exc}"))

    def _count_dropped(self, name: str) -> None:
        with self._lock:
            self.dropped += 1
        log.warning("alert queue for %s is full; dropped the oldest pending alert", name)
