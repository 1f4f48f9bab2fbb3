"""Dashboard speed, measured in Debian's Chromium against `streamlit run app.py` (not a timed test).

Usage:  .venv/bin/python benchmarks/dashboard.py [--steps 10000] [--batches 200] [--images 10000]
                                                 [--cache DIR] [--repeat 5] [--moves 10] [--only overview|slider|demo]
                                                 [--app-root CHECKOUT ...]

`--only demo` (issue 15) measures the bundled demo run (generated: 40 steps x 16 batches, 152 images): the first
view on a freshly started server, both as `streamlit run app.py` and as `make run` (`python -m ui.serve`, which
loads the dashboard's modules and analyses the first run while the server starts: its server-start -> health and
server-start -> "modules loaded" times are printed too, and the first view is timed from a tab opened at once and
from one opened once the modules are loaded), a new tab, a batch change (Batches) and a metric change (Overview),
beside the empty-page references measured in the same run: the empty page alone, plus one 3-point plotly chart,
and plus one 3-point Vega-Lite chart (what a chart library costs a new tab; the Overview's curves are Vega-Lite).
Batch and metric changes also print the CPU time the server process and the browser spent on them (from /proc, Linux): unlike the
wall times, these hardly change with what else loads the machine. `--app-root DIR` (repeatable) measures the app
of other checkouts in the same run (e.g. `git archive HEAD | tar -x -C /tmp/before` beside this one).

Targets (issue 8):
  (a) a threshold slider move on the Data quality page with 10,000 audited images re-renders in < 300 ms;
  (b) the Overview of a 10,000-step x 200-batch run renders within 3x the time of an empty Streamlit page.

Inputs are built once and cached under --cache (default <the package's cache directory>/bench-dashboard):
  - a real offline wandb run written by the wandb library (one `wandb.log` per step with every
    `batch_{i}/recall|precision|hmean`, `global_step` and `val/recall`: 601 keys; ~30-60 s once), a few batches
    degrading from a known step so the Overview has findings to draw;
  - 10,000 small rendered-text images (a tenth blurred, rotated or shrunk), audited by the page itself.

Baseline (measured in the same run, same browser, same machine load): an empty Streamlit page (a title and a
slider) served by its own `streamlit run`, loaded the same way (new browser context, `goto`, wait until the script
run completed and the page is idle).

"Script run completed" is Streamlit's own `script_finished` message on the page's websocket (tests/e2e/st_helpers.py
`RunTracker`), for full runs and fragment runs alike.

What is timed:
  - empty page: goto -> script run finished -> app idle;
  - Overview (warm): goto a new session with the run already analysed (analysis and figures are cached on the
    run's size+mtime and the config) -> script run finished -> every chart drawn (plotly `.main-svg`, Vega-Lite
    canvas) -> idle.
    The cold first visit (reading the run + full analysis of 2M points) is printed too, for the record;
  - slider move: focus the blur-threshold slider, press ArrowRight -> the script run that started after the key
    press completed (script_finished) and the "N flagged" text shows the new count -> idle.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from analysis.sources.cache import cache_root  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

BAD_BATCHES = {7: 0.55, 42: 0.6, 130: 0.45, 199: 0.62}  # batch -> fraction of the run after which it degrades

_WRITER = r"""
import json, sys
import numpy as np
import wandb
steps, batches, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
bad = {int(k): float(v) for k, v in json.loads(sys.argv[4]).items()}
rng = np.random.default_rng(seed)
offsets = rng.normal(0, 0.01, size=batches)
run = wandb.init(project="benchmarks", name="dashboard-10k-x-200", config={"steps": steps, "batches": batches},
                 dir=sys.argv[5])
t = np.arange(steps)
base = 0.94 - 0.15 * np.exp(-t / (steps / 8))
for s in range(steps):
    rec = base[s] + offsets + rng.normal(0, 0.008, size=batches)
    for b, frac in bad.items():
        if b < batches and s >= frac * steps:
            rec[b] = 0.6 + rng.normal(0, 0.015)
    rec = np.clip(rec, 0, 1)
    prec = np.clip(rec + 0.02 + rng.normal(0, 0.006, size=batches), 0, 1)
    hm = 2 * rec * prec / np.maximum(rec + prec, 1e-9)
    row = {"global_step": (s + 1) * 10, "val/recall": float(rec.mean())}
    for b in range(batches):
        row[f"batch_{b}/recall"] = float(rec[b])
        row[f"batch_{b}/precision"] = float(prec[b])
        row[f"batch_{b}/hmean"] = float(hm[b])
    wandb.log(row)
run.finish()
"""


def ensure_run(cache: Path, steps: int, batches: int) -> Path:
    """The wandb dir holding the big offline run (written once with the real wandb library)."""
    import json

    from tests.wandb_writer import wandb_env

    parent = cache / f"run-{steps}x{batches}"
    done = parent / "DONE"
    if done.exists():
        return parent / "wandb"
    if parent.exists():
        import shutil

        shutil.rmtree(parent)
    parent.mkdir(parents=True)
    print(f"writing a {steps}-step x {batches}-batch offline wandb run into {parent} (once) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(steps), str(batches), "0", json.dumps(BAD_BATCHES), str(parent)],
        env=wandb_env(parent),
        check=True,
        capture_output=True,
        text=True,
    )
    print(f"  written in {time.perf_counter() - t0:.1f} s", flush=True)
    done.write_text("ok")
    return parent / "wandb"


def ensure_images(cache: Path, n: int) -> Path:
    """`n` rendered-text PNGs (480x160, as the demo's); every 10th has a defect (blur, rotation, low resolution
    in turn), so the default thresholds flag about a tenth of them."""
    from analysis.demo import _fonts, apply_defect, render_text_image

    folder = cache / f"images-{n}-480x160"
    done = folder / ".DONE"
    if done.exists():
        return folder
    print(f"writing {n} images into {folder} (once) ...", flush=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    fonts = _fonts(34)
    kinds = ("blur", "rotation", "low_resolution")
    for i in range(n):
        img = render_text_image(rng, fonts)
        sub = f"part_{i // 1000:02d}"
        if i % 10 == 0:
            img = apply_defect(img, kinds[(i // 10) % 3], rng)
        (folder / sub).mkdir(parents=True, exist_ok=True)
        img.save(folder / sub / f"img_{i:05d}.png", compress_level=1)
    print(f"  written in {time.perf_counter() - t0:.1f} s", flush=True)
    done.write_text("ok")
    return folder


EMPTY_APP = """import streamlit as st
st.title("Empty page")
st.slider("x", 0, 100, 50, key="x")
chart = st.query_params.get("chart")  # the references: the same page plus one 3-point plotly or Vega-Lite chart
if chart == "vega":
    st.vega_lite_chart({"data": {"values": [{"x": 1, "y": 1}, {"x": 2, "y": 3}, {"x": 3, "y": 2}]}, "mark": "line",
                        "encoding": {"x": {"field": "x", "type": "quantitative"},
                                     "y": {"field": "y", "type": "quantitative"}}}, key="tiny")
elif chart:
    import plotly.graph_objects as go
    st.plotly_chart(go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 3, 2])), key="tiny")
"""
# At least n charts on the page, each drawn: a plotly chart has its SVG, a Vega-Lite chart its canvas (or SVG).
CHARTS_DRAWN_JS = """n => { const p = [...document.querySelectorAll('[data-testid=stPlotlyChart]')];
  const v = [...document.querySelectorAll('[data-testid=stVegaLiteChart]')];
  return p.length + v.length >= n && p.every(e => e.querySelector('.main-svg'))
    && v.every(e => e.querySelector('canvas, svg')); }"""
PAINTED_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.9 * len(xs)) - 1)] if xs else float("nan")


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stats() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds used) of every process, from /proc (Linux; empty elsewhere)."""
    out = {}
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc/self/stat").exists() else []:
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = entry.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            out[int(entry.parent.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def cpu_seconds(server_pid: int | None) -> tuple[float, float]:
    """(CPU seconds of the server process and its children, of every Chromium process this benchmark started) so
    far: per-action differences of these are what the action cost the machine, whatever else loads it."""
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _name, _cpu) in stats.items():
        children.setdefault(ppid, []).append(pid)

    def tree(root: int) -> list[int]:
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    server = set(tree(server_pid)) if server_pid in stats else set()
    browser = [p for p in tree(os.getpid()) if p not in server and "chrom" in stats[p][1].lower()]
    return sum(stats[p][2] for p in server), sum(stats[p][2] for p in browser)


def timed_load(
    browser: Browser,
    url: str,
    ready_js: str | None = None,
    arg: object = None,
    timeout_ms: int = 60_000,
    context: BrowserContext | None = None,
) -> float:
    """Seconds from `goto` in a new tab (a new Streamlit session) to its first script run finished (Streamlit's
    `script_finished` message), `ready_js` true, the app idle and a frame painted. Without `context` the tab opens
    in a fresh browser profile (nothing cached); with one, in that profile (static assets such as plotly.js
    cached, as for a returning user)."""
    from tests.e2e.st_helpers import run_tracker, wait_idle, wait_run_finished

    ctx = context or browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(timeout_ms)
    page = ctx.new_page()
    run_tracker(page)
    try:
        t0 = time.perf_counter()
        page.goto(url)
        wait_run_finished(page, 0, timeout_ms)
        if ready_js is not None:
            page.wait_for_function(ready_js, arg=arg, timeout=timeout_ms)
            wait_idle(page, timeout_ms)
        page.evaluate(PAINTED_JS)
        return time.perf_counter() - t0
    finally:
        page.close()
        if context is None:
            ctx.close()


def loads(browser: Browser, url: str, ready_js: str | None, repeat: int, arg: object = None) -> dict[str, list[float]]:
    """`repeat` loads in fresh profiles and `repeat` in one profile after a warm-up load."""
    fresh = [timed_load(browser, url, ready_js, arg) for _ in range(repeat)]
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    timed_load(browser, url, ready_js, arg, context=ctx)
    cached = [timed_load(browser, url, ready_js, arg, context=ctx) for _ in range(repeat)]
    ctx.close()
    return {"fresh": fresh, "cached": cached}


def with_cpu(out: dict[str, list[float]], kind: str, server_pid: int, measure: Callable[[], float]) -> None:
    """Append `measure()` (seconds) to `out[kind]`, and the CPU seconds the server (`server_pid` and its children)
    and the browser spent meanwhile to `out["<kind>_server_cpu"]` and `out["<kind>_browser_cpu"]`."""
    c0 = cpu_seconds(server_pid)
    out.setdefault(kind, []).append(measure())
    c1 = cpu_seconds(server_pid)
    out.setdefault(f"{kind}_server_cpu", []).append(c1[0] - c0[0])
    out.setdefault(f"{kind}_browser_cpu", []).append(c1[1] - c0[1])


def timed_action(
    page: Page,
    action: Callable[[], object],
    check: Callable[[], object] | None = None,
    cpu: dict[str, list[float]] | None = None,
    server_pid: int | None = None,
) -> float:
    """Seconds from `action` to the end of the script run it triggered (a full or a fragment run: Streamlit's
    `script_finished` message), idle and painted. With `cpu`: the server's and the browser's CPU seconds spent
    meanwhile are appended to its "server" and "browser" lists."""
    from tests.e2e.st_helpers import act_and_wait_run

    c0 = cpu_seconds(server_pid) if cpu is not None else (0.0, 0.0)
    t0 = time.perf_counter()
    act_and_wait_run(page, action)
    if check is not None:
        check()
    page.evaluate(PAINTED_JS)
    elapsed = time.perf_counter() - t0
    if cpu is not None:
        c1 = cpu_seconds(server_pid)
        cpu.setdefault("server", []).append(c1[0] - c0[0])
        cpu.setdefault("browser", []).append(c1[1] - c0[1])
    return elapsed


def slider_moves(page: Page, label: str, keys: list[str]) -> list[float]:
    thumb = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
    out = []
    for k in keys:
        thumb.focus()
        out.append(timed_action(page, partial(thumb.press, k)))
    return out


def bench_empty(browser: Browser, url: str, repeat: int) -> dict[str, list[float]]:
    from tests.e2e.st_helpers import run_tracker, wait_run_finished

    timed_load(browser, url)  # server warm-up
    out = loads(browser, url, None, repeat)
    tiny = loads(browser, url + "/?chart=plotly", CHARTS_DRAWN_JS, repeat, arg=1)
    out["chart_fresh"], out["chart_cached"] = tiny["fresh"], tiny["cached"]
    vega = loads(browser, url + "/?chart=vega", CHARTS_DRAWN_JS, repeat, arg=1)
    out["vega_fresh"], out["vega_cached"] = vega["fresh"], vega["cached"]
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    run_tracker(page)
    page.goto(url)
    wait_run_finished(page)
    out["slider"] = slider_moves(page, "x", ["ArrowRight", "ArrowLeft"] * repeat)
    ctx.close()
    return out


def bench_overview(browser: Browser, url: str, repeat: int) -> dict[str, list[float]]:
    from tests.e2e.st_helpers import run_tracker, wait_idle

    t_cold = timed_load(browser, url, CHARTS_DRAWN_JS, arg=1, timeout_ms=1_800_000)
    out = loads(browser, url, CHARTS_DRAWN_JS, repeat, arg=1)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    run_tracker(page)
    page.goto(url)
    page.wait_for_function(CHARTS_DRAWN_JS, arg=1)
    wait_idle(page)
    nav = page.get_by_test_id("stSidebarNav")
    switches = []
    for _ in range(repeat):
        timed_action(page, lambda: nav.get_by_role("link", name="Monitor settings").click())
        switches.append(
            timed_action(
                page,
                lambda: nav.get_by_role("link", name="Overview").click(),
                check=lambda: page.wait_for_function(CHARTS_DRAWN_JS, arg=1),
            )
        )
    smooth = []
    thumb = page.get_by_test_id("stSlider").filter(has_text="Smoothing").get_by_role("slider")
    for k in ["ArrowRight", "ArrowLeft"] * max(1, repeat // 2):
        thumb.focus()
        smooth.append(
            timed_action(page, partial(thumb.press, k), check=lambda: page.wait_for_function(CHARTS_DRAWN_JS, arg=1))
        )
    ctx.close()
    return {"cold": [t_cold], **out, "switch": switches, "smoothing": smooth}


def bench_slider(browser: Browser, url: str, images: Path, moves: int) -> dict[str, list[float]]:
    from tests.e2e.st_helpers import act_and_wait_run, run_tracker, wait_idle, wait_run_finished

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(1_800_000)
    page = ctx.new_page()
    run_tracker(page)
    page.goto(url + "/data-quality")
    wait_run_finished(page)
    box = page.get_by_test_id("stTextInput").filter(has_text="Data directory to audit").locator("input")
    t0 = time.perf_counter()
    box.fill(str(images))
    act_and_wait_run(page, lambda: box.press("Enter"), timeout=1_800_000)
    flagged = page.get_by_test_id("stMarkdown").filter(has_text="flagged")
    flagged.wait_for()
    t_audit = time.perf_counter() - t0
    wait_idle(page)

    def count() -> int:
        found = re.search(r"([\d,]+) flagged", flagged.inner_text())
        assert found is not None, flagged.inner_text()
        return int(found.group(1).replace(",", ""))

    before = count()
    arrow = slider_moves(page, "Blur threshold", ["ArrowRight"] * moves)  # fragment runs
    after_arrows = count()
    jumps, counts = [], []
    thumb = page.get_by_test_id("stSlider").filter(has_text="Blur threshold").get_by_role("slider")
    for k in ["End", "Home"] * max(1, moves // 2):
        thumb.focus()
        jumps.append(timed_action(page, partial(thumb.press, k)))
        counts.append(count())
    ctx.close()
    print(f"  flag counts: start {before}, after arrows {after_arrows}, End/Home {counts}", flush=True)
    assert after_arrows != before or len(set(counts)) > 1, "slider moves did not change the flag count"
    print(
        f"  flagged: {before:,} at start, {after_arrows:,} after {moves} arrow steps, "
        f"{max(counts):,}/{min(counts):,} at End/Home",
        flush=True,
    )
    return {"audit": [t_audit], "arrow": arrow, "jump": jumps}


def bench_demo(browser: Browser, repeat: int, root: Path = ROOT) -> dict[str, list[float]]:
    """Issue 15 on the bundled demo: the first view on a freshly started server (cold: nothing in the disk cache;
    warm: the decoded run and image scores cached on disk by an earlier server), a new tab on a running server,
    and a batch change (Batches) and a metric change (Overview) in an open tab. Each first view starts a new
    `streamlit run` process, as a user's `make run` does. `root`: the checkout whose app.py is served (another one
    than this benchmark's, e.g. the last commit's, is measured in the same run with `--app-root`); the CPU seconds
    the server and the browser spend per batch and metric change are kept too (`*_server_cpu`, `*_browser_cpu`)."""
    from analysis.demo import ensure_demo
    from tests.e2e.st_helpers import free_port, run_tracker, start_streamlit, stop, wait_idle

    work = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    demo = work / "demo"
    ensure_demo(demo)
    cache = work / "cache"
    env = {**os.environ, "EXPERIMENT_ANALYZER_DEMO": str(demo), "EXPERIMENT_ANALYZER_CACHE": str(cache)}
    env.pop("WANDB_DIR", None)
    out: dict[str, list[float]] = {
        "first_cold": [],
        "first_warm": [],
        "launch_health": [],
        "launch_ready": [],
        "launch_now": [],
        "launch_after_ready": [],
        "new_tab": [],
        "batch": [],
        "metric": [],
    }

    def timed_first_view(kind: str, proc: subprocess.Popen[bytes], url: str) -> None:
        """The first view's time, and the CPU seconds the server and the browser spent on it (`<kind>_server_cpu`,
        `<kind>_browser_cpu`: on a plain `streamlit run` the server's include its imports and the analysis)."""
        with_cpu(out, kind, proc.pid, lambda: timed_load(browser, url, CHARTS_DRAWN_JS, arg=1, timeout_ms=300_000))

    def first_view(kind: str) -> tuple[subprocess.Popen[bytes], str]:
        """`streamlit run app.py`, the tab opened as soon as the server answers."""
        port = free_port()
        proc = start_streamlit(root / "app.py", port, work / f"app-{kind}-{port}.log", env=env)
        url = f"http://127.0.0.1:{port}"
        timed_first_view(kind, proc, url)
        return proc, url

    def launched_view(kind: str) -> tuple[subprocess.Popen[bytes], str]:
        """`python -m ui.serve` (make run): server start -> health, -> modules loaded (its READY_LINE), and the
        first view opened at once (`launch_now`) or once the modules are loaded (`launch_after_ready`)."""
        from ui.serve import READY_LINE

        port = free_port()
        log = work / f"serve-{kind}-{port}.log"
        t0 = time.perf_counter()
        proc = start_streamlit(root / "app.py", port, log, env=env, launcher=True)
        out["launch_health"].append(time.perf_counter() - t0)
        url = f"http://127.0.0.1:{port}"
        if kind == "launch_after_ready":
            deadline = time.monotonic() + 300
            while READY_LINE not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            out["launch_ready"].append(time.perf_counter() - t0)
        timed_first_view(kind, proc, url)
        return proc, url

    proc, _ = first_view("first_cold")
    stop(proc)
    for _ in range(repeat):
        proc, url = first_view("first_warm")
        stop(proc)
    for _ in range(repeat):
        proc, url = launched_view("launch_now")
        stop(proc)
    for _ in range(max(1, repeat - 1)):
        proc, url = launched_view("launch_after_ready")
        stop(proc)
    proc, url = launched_view("launch_after_ready")  # the server the tab, batch and metric figures use
    try:
        out["new_tab"] = [timed_load(browser, url, CHARTS_DRAWN_JS, arg=1) for _ in range(repeat)]
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(120_000)
        page = ctx.new_page()
        run_tracker(page)
        page.goto(url)
        page.wait_for_function(CHARTS_DRAWN_JS, arg=1)
        wait_idle(page)
        box = page.get_by_test_id("stSelectbox").filter(has_text="Metric")
        metric_cpu: dict[str, list[float]] = {}
        for name in ["hmean", "precision", "recall"] * max(1, repeat // 3 + 1):
            box.click()
            out["metric"].append(
                timed_action(
                    page,
                    page.get_by_role("option", name=name, exact=True).click,
                    check=lambda: page.wait_for_function(CHARTS_DRAWN_JS, arg=1),
                    cpu=metric_cpu,
                    server_pid=proc.pid,
                )
            )
        timed_action(page, lambda: page.get_by_test_id("stSidebarNav").get_by_role("link", name="Batches").click())
        page.wait_for_function(CHARTS_DRAWN_JS, arg=1)
        # Batch changes are timed once the page is complete: the gallery drawn, i.e. the background image analysis
        # (which reruns the page when it lands) has finished, so a change is not timed against that rerun.
        page.get_by_test_id("stImage").first.wait_for()
        wait_idle(page)
        batch_box = page.get_by_test_id("stSelectbox").filter(has_text="Batch")
        batch_cpu: dict[str, list[float]] = {}
        for b in [12, 3, 7] * max(1, repeat // 3 + 1):
            batch_box.click()
            out["batch"].append(
                timed_action(
                    page,
                    page.get_by_role("option", name=re.compile(rf"^batch {b} \(")).click,
                    check=lambda: page.wait_for_function(CHARTS_DRAWN_JS, arg=1),
                    cpu=batch_cpu,
                    server_pid=proc.pid,
                )
            )
        ctx.close()
        for label, cpu in (("metric", metric_cpu), ("batch", batch_cpu)):
            out[f"{label}_server_cpu"], out[f"{label}_browser_cpu"] = cpu["server"], cpu["browser"]
    finally:
        stop(proc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, default=cache_root() / "bench-dashboard")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--moves", type=int, default=10)
    ap.add_argument("--only", choices=["overview", "slider", "demo"])
    ap.add_argument(
        "--app-root",
        type=Path,
        action="append",
        help="with --only demo: a checkout whose app.py is measured (repeat it to compare checkouts in one run, "
        "e.g. an export of the last commit beside this one); default: this checkout",
    )
    args = ap.parse_args(argv)
    if args.only == "demo":
        return main_demo(args)

    from playwright.sync_api import sync_playwright

    from tests.e2e.st_helpers import CHROMIUM, CHROMIUM_ARGS, free_port, start_streamlit, stop

    wandb_dir = ensure_run(args.cache, args.steps, args.batches) if args.only != "slider" else None
    images = ensure_images(args.cache, args.images) if args.only != "overview" else None
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    (work / "empty_app.py").write_text(textwrap.dedent(EMPTY_APP))
    env = {**os.environ, "EXPERIMENT_ANALYZER_CACHE": str(args.cache / "app-cache")}
    if wandb_dir is not None:
        env["WANDB_DIR"] = str(wandb_dir.parent)
    else:
        env.pop("WANDB_DIR", None)
    p_empty, p_app = free_port(), free_port()
    servers = [
        start_streamlit(work / "empty_app.py", p_empty, work / "empty.log"),
        start_streamlit(ROOT / "app.py", p_app, work / "app.log", env=env),
    ]
    results: dict[str, dict[str, list[float]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            print("empty page ...", flush=True)
            results["empty"] = bench_empty(browser, f"http://127.0.0.1:{p_empty}", args.repeat)
            if args.only != "slider":
                print(
                    f"overview of the {args.steps:,}-step x {args.batches}-batch run (first load reads and "
                    "analyses it) ...",
                    flush=True,
                )
                results["overview"] = bench_overview(browser, f"http://127.0.0.1:{p_app}", args.repeat)
            if images is not None:
                print(f"data quality on {args.images:,} images ...", flush=True)
                results["slider"] = bench_slider(browser, f"http://127.0.0.1:{p_app}", images, args.moves)
            browser.close()
    finally:
        for s in servers:
            stop(s)
    report(results, args)
    return 0


def main_demo(args: argparse.Namespace) -> int:
    """`--only demo`: the issue-15 figures on the demo, beside the empty page measured in the same run."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.st_helpers import CHROMIUM, CHROMIUM_ARGS, free_port, start_streamlit, stop

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    (work / "empty_app.py").write_text(textwrap.dedent(EMPTY_APP))
    results: dict[str, dict[str, list[float]]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        port = free_port()
        empty = start_streamlit(work / "empty_app.py", port, work / "empty.log")
        try:
            url = f"http://127.0.0.1:{port}"
            results["empty"] = bench_empty(browser, url, args.repeat)
            # the empty page's first view on a freshly started server, like the app's (with its CPU seconds)
            for _ in range(args.repeat):
                stop(empty)
                empty = start_streamlit(work / "empty_app.py", port, work / "empty.log")
                with_cpu(results["empty"], "fresh_server", empty.pid, partial(timed_load, browser, url, None))
        finally:
            stop(empty)
        roots = args.app_root or [ROOT]
        for root in roots:
            print(f"demo run, app of {root} ...", flush=True)
            results[str(root)] = bench_demo(browser, args.repeat, root)
        browser.close()
    e = results["empty"]
    print()
    print("| measurement | n | median ms | p90 ms | x baseline |")
    print("|---|---|---|---|---|")
    for name, xs, row_base in _baseline_rows(e):
        _row(name, xs, row_base)
    for root in roots:
        _demo_report(e, results[str(root)], f"demo ({root})" if len(roots) > 1 else "demo")
    with contextlib.suppress(OSError):
        print(f"load average at the end of the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


def _row(name: str, xs: list[float], base: float | None) -> None:
    times_base = f"{_median(xs) / base:.2f}" if base else "—"
    print(f"| {name} | {len(xs)} | {_median(xs) * 1000:.0f} | {_p90(xs) * 1000:.0f} | {times_base} |")


def _baseline_rows(e: dict[str, list[float]]) -> list[tuple[str, list[float], float | None]]:
    return [
        ("empty page: first view, freshly started server (baseline)", e["fresh_server"], None),
        ("empty page: first view, freshly started server, server CPU time", e["fresh_server_server_cpu"], None),
        ("empty page: first view, freshly started server, browser CPU time", e["fresh_server_browser_cpu"], None),
        ("empty page: new tab (baseline)", e["fresh"], None),
        ("empty page: widget change (baseline)", e["slider"], None),
        ("reference: empty page + one 3-point plotly chart, new tab", e["chart_fresh"], _median(e["fresh"])),
        ("reference: empty page + one 3-point Vega-Lite chart, new tab", e["vega_fresh"], _median(e["fresh"])),
    ]


def _demo_report(e: dict[str, list[float]], d: dict[str, list[float]], label: str) -> None:
    """The demo's rows (times against the empty page's), CPU seconds per change, and the issue-15 verdicts."""
    base_server, base_tab, base_move = _median(e["fresh_server"]), _median(e["fresh"]), _median(e["slider"])
    rows = [
        (f"{label}: first view, fresh server, empty disk cache", d["first_cold"], base_server),
        (f"{label}: first view, fresh server, warm disk cache", d["first_warm"], base_server),
        (f"{label}, make run (python -m ui.serve): server start -> health ok", d["launch_health"], None),
        (f"{label}, make run: server start -> modules loaded", d["launch_ready"], None),
        (f"{label}, make run: first view, tab opened at health ok", d["launch_now"], base_server),
        (f"{label}, make run: first view, tab opened once modules loaded", d["launch_after_ready"], base_server),
        (f"{label}: new tab on a running server (make run)", d["new_tab"], base_tab),
        (f"{label}: batch change (Batches)", d["batch"], base_move),
        (f"{label}: metric change (Overview)", d["metric"], base_move),
    ]
    for key, what in (
        ("first_warm", "first view (streamlit run app.py, warm disk cache)"),
        ("launch_after_ready", "first view (make run, tab once modules loaded)"),
        ("batch", "batch change"),
        ("metric", "metric change"),
    ):
        for side in ("server", "browser"):
            if d.get(f"{key}_{side}_cpu"):
                rows.append((f"{label}: {what}, {side} CPU time", d[f"{key}_{side}_cpu"], None))
    for name, xs, row_base in rows:
        _row(name, xs, row_base)
    print()
    for what, key in (
        ("streamlit run app.py", "first_warm"),
        ("make run, tab at health ok", "launch_now"),
        ("make run, tab once modules loaded", "launch_after_ready"),
    ):
        warm = _median(d[key])
        print(
            f"{label}: first view ({what}, warm disk cache) {warm:.2f} s: target <= 3 s and <= 2x the empty page "
            f"({warm / base_server:.2f}x) -> {'PASS' if warm <= 3 and warm <= 2 * base_server else 'FAIL'}"
        )
    for change in ("batch", "metric"):
        m = _median(d[change])
        print(f"{label}: {change} change {m * 1000:.0f} ms: target <= 500 ms -> {'PASS' if m <= 0.5 else 'FAIL'}")
    print()


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    e = results["empty"]
    base_fresh, base_cached, base_move = _median(e["fresh"]), _median(e["cached"]), _median(e["slider"])
    rows = [
        ("empty page: load, fresh browser profile (baseline)", e["fresh"], None),
        ("empty page: load, assets cached (baseline)", e["cached"], None),
        ("empty page: slider move (baseline)", e["slider"], None),
        ("reference: empty page + one 3-point plotly chart, fresh profile", e["chart_fresh"], base_fresh),
        ("reference: empty page + one 3-point plotly chart, assets cached", e["chart_cached"], base_cached),
        ("reference: empty page + one 3-point Vega-Lite chart, fresh profile", e["vega_fresh"], base_fresh),
    ]
    verdicts = []
    if "overview" in results:
        o = results["overview"]
        rows += [
            ("overview: first load (read + analyse the run)", o["cold"], base_fresh),
            ("overview: load, fresh browser profile", o["fresh"], base_fresh),
            ("overview: load, assets cached", o["cached"], base_cached),
            ("overview: page switch Monitor -> Overview", o["switch"], base_cached),
            ("overview: smoothing slider move", o["smoothing"], base_move),
        ]
        for label, xs, base in (
            ("assets cached", o["cached"], base_cached),
            ("fresh browser profile", o["fresh"], base_fresh),
        ):
            ratio = _median(xs) / base
            verdicts.append(
                f"(b) Overview {args.steps:,} steps x {args.batches} batches, {label}: {ratio:.2f}x "
                f"the empty page (target < 3x) -> {'PASS' if ratio < 3 else 'FAIL'}"
            )
    if "slider" in results:
        s = results["slider"]
        rows += [
            ("data quality: audit (first visit)", s["audit"], None),
            ("data quality: blur slider, one step", s["arrow"], base_move),
            ("data quality: blur slider, End/Home", s["jump"], base_move),
        ]
        worst = max(_median(s["arrow"]), _median(s["jump"]))
        verdicts.append(
            f"(a) threshold slider on {args.images:,} images: median {worst * 1000:.0f} ms "
            f"(target < 300 ms) -> {'PASS' if worst < 0.3 else 'FAIL'}"
        )
    print()
    print("| measurement | n | median ms | p90 ms | x baseline |")
    print("|---|---|---|---|---|")
    for name, xs, row_base in rows:
        times_base = f"{_median(xs) / row_base:.2f}" if row_base else "—"
        print(f"| {name} | {len(xs)} | {_median(xs) * 1000:.0f} | {_p90(xs) * 1000:.0f} | {times_base} |")
    print()
    for v in verdicts:
        print(v)
    with contextlib.suppress(OSError):
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    sys.exit(main())
