"""Start the real app with `streamlit run`, drive it in Debian's Chromium, wait for reruns reliably."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"][data-test-connection-state="CONNECTED"]'


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(
    app: Path,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
    launcher: bool = False,
) -> subprocess.Popen[bytes]:
    """`streamlit run app` on 127.0.0.1:`port` (headless, no file watcher), returned once /_stcore/health is ok.
    `launcher`: through `python -m ui.serve` (what `make run` uses: app.py with its modules loaded ahead)."""
    cmd = [
        sys.executable,
        "-m",
        *(["ui.serve"] if launcher else ["streamlit", "run", app.name]),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "w") as log:  # the server keeps its own copy of the file descriptor
        proc = subprocess.Popen(
            cmd, cwd=app.parent, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited rc={proc.returncode}: {log_path.read_text()}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.read().strip() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise TimeoutError(log_path.read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_idle(page: Page, timeout: int = 60_000) -> None:
    """Use after navigation, or after an expect() on new content; alone it races."""
    page.wait_for_selector(APP_IDLE, timeout=timeout)


class RunTracker:
    """Counts the script runs the server reports finished to one page, from Streamlit's own messages.

    Every script run (a full run or a fragment's) ends with a `script_finished` ForwardMsg on the page's websocket;
    runs cut short by a newer rerun (FINISHED_EARLY_FOR_RERUN) are not counted. `page_not_found` messages are kept
    too (what a deep link to an unknown page gets). Attach before `goto` so the first websocket is seen.
    """

    def __init__(self) -> None:
        self.finished = 0
        self.pages_not_found: list[str] = []

    def attach(self, page: Page) -> RunTracker:
        page.on("websocket", lambda ws: ws.on("framereceived", self._on_frame))
        return self

    def _on_frame(self, payload: str | bytes) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, str):
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # not a ForwardMsg: ignore
            return
        kind = msg.WhichOneof("type")
        if kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            self.finished += 1
        elif kind == "page_not_found":
            self.pages_not_found.append(msg.page_not_found.page_name)


_ERRORS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def collect_errors(page: Page) -> list[str]:
    """Page errors and console errors of `page` from now on (Streamlit's own asset and download noise left out);
    the same list on every call."""
    if page in _ERRORS:
        return _ERRORS[page]
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        url = msg.location.get("url") or ""
        if (
            msg.type == "error"
            and "/_stcore/" not in url
            and "/media/" not in url
            and "Download Button source error" not in msg.text
        ):
            errors.append(f"{msg.text} @ {url}")

    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", on_console)
    _ERRORS[page] = errors
    return errors


_TRACKERS: weakref.WeakKeyDictionary[Page, RunTracker] = weakref.WeakKeyDictionary()


def run_tracker(page: Page) -> RunTracker:
    """The page's RunTracker, attached on first use (call it before `goto`)."""
    if page not in _TRACKERS:
        _TRACKERS[page] = RunTracker().attach(page)
    return _TRACKERS[page]


def wait_run_finished(page: Page, after: int = 0, timeout: int = 60_000) -> None:
    """Until more than `after` script runs have finished on `page` (its tracker's count), then until it is idle."""
    tracker = run_tracker(page)
    deadline = time.monotonic() + timeout / 1000
    while tracker.finished <= after:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no script run finished within {timeout} ms")
        page.wait_for_timeout(20)  # lets Playwright deliver the websocket events
    wait_idle(page, timeout)


def act_and_wait_run(page: Page, action: Callable[[], object], timeout: int = 60_000) -> None:
    """Wait until a script run (full or fragment) that finished after `action` was reported, then for the app to
    be idle. The page must have been tracked (`run_tracker(page)`) before it loaded the app."""
    before = run_tracker(page).finished
    action()
    wait_run_finished(page, before, timeout)


def full_app_screenshot(page: Page, path: Path) -> None:
    vp = page.viewport_size
    assert vp is not None, "the browser context has no fixed viewport"
    h = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": vp["width"], "height": max(h, vp["height"])})
    try:
        page.wait_for_timeout(300)
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(vp)
