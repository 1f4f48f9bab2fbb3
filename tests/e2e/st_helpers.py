"""Start the real app with `streamlit run`, drive it in Debian's Chromium, wait for reruns reliably."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def start_streamlit(app: Path, port: int, log_path: Path, env: dict | None = None, timeout: float = 90):
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        app.name,
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
    log = open(log_path, "w")
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


def stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_idle(page, timeout: int = 60_000) -> None:
    """Use after navigation, or after an expect() on new content; alone it races."""
    page.wait_for_selector(APP_IDLE, timeout=timeout)


RUN_MARKER = ".st-run-marker"  # rendered last by app.py on every full run
FRAGMENT_MARKER = ".st-fragment-marker"  # rendered last by a fragment (ui.state.fragment_marker)


def run_no(page, marker: str = RUN_MARKER) -> int:
    loc = page.locator(marker)
    return int(loc.get_attribute("data-run")) if loc.count() else 0


def act_and_wait_run(page, action, timeout: int = 60_000, marker: str = RUN_MARKER) -> None:
    """Wait until a script run that started after `action` has completed (the marker is rendered last).
    For a widget inside a fragment pass `marker=FRAGMENT_MARKER`: its reruns leave the app's marker alone."""
    before = run_no(page, marker)
    action()
    page.wait_for_function(
        "([m, n]) => { const e = document.querySelector(m); return e && +e.dataset.run > n; }",
        arg=[marker, before],
        timeout=timeout,
    )


def full_app_screenshot(page, path: Path) -> None:
    vp = page.viewport_size
    h = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": vp["width"], "height": max(h, vp["height"])})
    try:
        page.wait_for_timeout(300)
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(vp)
