"""HTML report size budget: a 10,000-step x 200-batch run with 100 thumbnails must stay under 5 MB.

Usage:  .venv/bin/python benchmarks/report_size.py [--steps 10000] [--batches 200] [--thumbnails 100]
                                                   [--metrics recall,precision,hmean] [--budget-mb 5]

The run is built in memory (one history row per step with every `batch_{i}/{metric}` key, as a training loop that
logs all batches in one `wandb.log` would produce; writing 2M wandb.log calls would only time wandb). Twelve
batches degrade at known steps; `--thumbnails` of their images (rendered text lines, blurred) are rejected by the
quality filter and become the worst images. The full pipeline (`analyze_run`) runs on the full history.

Baseline, measured in the same run: the same charts written the way plotly does by default
(`plotly.io.to_html(fig, include_plotlyjs=True)` per figure, every batch curve at full resolution, the heatmap
undecimated), i.e. what a report that does not decimate or compress would weigh. Exit code 1 when over budget.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

MB = 1024 * 1024


def build_run(steps: int, batches: int, metrics: list[str], bad: dict[int, int], seed: int = 0):
    """A Run whose history has one row per step (global_step) and a column per batch metric."""
    from analysis.core.run import Run, RunRef

    rng = np.random.default_rng(seed)
    step_axis = np.arange(1, steps + 1) * 10
    cols: dict[str, np.ndarray] = {"_step": np.arange(steps), "global_step": step_axis}
    for b in range(batches):
        base = 0.93 - 0.1 * np.exp(-np.arange(steps) / (steps / 10)) + rng.normal(0, 0.004)
        for m in metrics:
            v = base + rng.normal(0, 0.008, size=steps) + (0.02 if m == "precision" else 0.0)
            if b in bad:
                v = np.where(step_axis >= bad[b], 0.62 + rng.normal(0, 0.01, size=steps), v)
            cols[f"batch_{b}/{m}"] = np.clip(v, 0, 1)
    cols["val/recall"] = np.mean([cols[f"batch_{b}/{metrics[0]}"] for b in range(batches)], axis=0)
    history = pd.DataFrame(cols)
    ref = RunRef(
        source="file",
        locator="benchmark",
        run_id="bench01",
        name="report-size-benchmark",
        project="benchmarks",
        state="finished",
    )
    return Run(ref=ref, history=history, config={"lr": 3e-4})


def write_images(
    data_dir: Path, n_bad: int, n_good: int, bad_batches: list[int], seed: int = 0, noisy: bool = False
) -> list[str]:
    """Rendered text lines (demo style): n_bad defective ones (blur / rotation / low resolution in turn) spread
    over the bad batches, n_good clean ones. `noisy`: the bad ones are 640x480 colour noise, rotated (the worst
    case for JPEG thumbnails)."""
    from PIL import Image

    from analysis.demo import _fonts, apply_defect, render_text_image

    rng = np.random.default_rng(seed)
    fonts = _fonts(34)
    paths = []
    kinds = ("blur", "rotation", "low_resolution")
    for i in range(n_bad + n_good):
        img = render_text_image(rng, fonts)
        if i < n_bad:
            rel = f"bad/batch_{bad_batches[i % len(bad_batches)]:03d}/img_{i:03d}.png"
            if noisy:
                noise = Image.fromarray(rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))
                img = noise.rotate(25, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
            else:
                img = apply_defect(img, kinds[i % 3], rng)
        else:
            rel = f"good/img_{i:03d}.png"
        (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(data_dir / rel)
        paths.append(rel)
    return paths[:n_bad]


def log_problem_paths(run, bad_paths: list[str]) -> None:
    """Add problematic_batch_{i} lists (as log_batch_metrics would) at the first bad step of each batch."""
    by_batch: dict[int, list[str]] = {}
    for p in bad_paths:
        found = re.search(r"batch_(\d+)", p)
        if found is None:
            raise ValueError(f"no batch_<i> in image path {p!r}")
        by_batch.setdefault(int(found.group(1)), []).append(p)
    h = run.history
    for b, paths in by_batch.items():
        col = pd.Series([None] * len(h), dtype=object)
        col.iloc[len(h) // 2] = paths
        h[f"problematic_batch_{b}"] = col


def baseline_html(analysis, metric: str) -> int:
    """Bytes of the plotly-default report: full-resolution curves of every batch + undecimated heatmap."""
    import plotly.graph_objects as go
    import plotly.io as pio

    data = analysis.batches[analysis.batches["metric"] == metric]
    curves = go.Figure()
    for b, g in data.groupby("batch"):
        curves.add_trace(go.Scattergl(x=g["step"].to_numpy(), y=g["value"].to_numpy(), mode="lines", name=f"batch {b}"))
    grid = data.pivot_table(index="batch", columns="step", values="value", aggfunc="last")
    heat = go.Figure(go.Heatmap(z=grid.to_numpy(), x=grid.columns.to_numpy(), y=grid.index.to_numpy()))
    return sum(len(pio.to_html(f, include_plotlyjs=True, full_html=True).encode()) for f in (curves, heat))


def time_in_browser(html: str, tmp: Path) -> float:
    """Seconds from navigation to every chart drawn, in Debian Chromium (headless, offline)."""
    from playwright.sync_api import sync_playwright

    path = tmp / "report.html"
    path.write_text(html, encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page()
        t = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("document.body.dataset.chartsDrawn !== undefined", timeout=120_000)
        elapsed = time.perf_counter() - t
        state = page.evaluate("document.body.dataset.chartsDrawn")
        browser.close()
    if state == "error":
        raise RuntimeError("the charts failed to draw in Chromium")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--thumbnails", type=int, default=100)
    ap.add_argument("--metrics", default="recall,precision,hmean")
    ap.add_argument("--budget-mb", type=float, default=5.0)
    ap.add_argument("--noisy", action="store_true", help="worst case: the rejected images are colour noise")
    ap.add_argument(
        "--browser", action="store_true", help="also time opening the HTML in Chromium until every chart has drawn"
    )
    args = ap.parse_args(argv)

    from analysis.core.config import AnalyzerConfig
    from analysis.findings.pipeline import analyze_run
    from analysis.reporting.report import Report, plotly_js_gzip_b64

    metrics = args.metrics.split(",")
    bad = {
        b: int(args.steps * 10 * (0.3 + 0.05 * i))
        for i, b in enumerate(range(3, args.batches, max(1, args.batches // 12)))
    }
    bad = dict(list(bad.items())[:12])
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        bad_paths = write_images(data_dir, args.thumbnails, 40, sorted(bad), noisy=args.noisy)
        run = build_run(args.steps, args.batches, metrics, bad)
        log_problem_paths(run, bad_paths)
        t1 = time.perf_counter()
        analysis = analyze_run(run, AnalyzerConfig(), data_dir=data_dir)
        t2 = time.perf_counter()
        report = Report.from_analysis(analysis)
        t3 = time.perf_counter()
        html = report.to_html()
        t4 = time.perf_counter()
        md, js = report.to_markdown(), report.to_json()
        base = baseline_html(analysis, analysis.primary_metric)

        draw_s = time_in_browser(html, Path(tmp)) if args.browser else None

    size = len(html.encode())
    plotly_part = len(plotly_js_gzip_b64())
    thumbs = sum(len(t.data_uri) for t in report.thumbnails)
    charts = sum(len(c["figure"]) for c in report.charts)
    rest = size - plotly_part - thumbs - charts
    n_points = len(analysis.batches)
    print(
        f"run: {args.steps} steps x {args.batches} batches x {len(metrics)} metrics = {n_points:,} points; "
        f"{len(analysis.anomalies)} anomalies, {len(analysis.change_points)} change points, "
        f"{len(report.thumbnails)} thumbnails"
    )
    print(
        f"time: build run+images {t1 - t0:.1f} s, analyze_run {t2 - t1:.1f} s, Report.from_analysis "
        f"{t3 - t2:.1f} s, to_html {t4 - t3:.2f} s"
    )
    print()
    print("| part | bytes | MB |")
    print("|---|---:|---:|")
    for name, n in (
        ("plotly.js (gzip+base64, inlined once)", plotly_part),
        ("chart data (decimated)", charts),
        (f"thumbnails ({len(report.thumbnails)} JPEG data URIs)", thumbs),
        ("tables, findings, config, markup", rest),
        ("**HTML total**", size),
        ("Markdown report", len(md.encode())),
        ("JSON report", len(js.encode())),
        ("baseline: plotly default HTML of the same charts, undecimated", base),
    ):
        print(f"| {name} | {n:,} | {n / MB:.2f} |")
    print()
    print(f"ratio baseline / ours: {base / size:.1f}x smaller")
    if draw_s is not None:
        print(f"Chromium: opened and drew all {len(report.charts)} charts in {draw_s:.1f} s")
    ok = size <= args.budget_mb * MB
    print(f"budget {args.budget_mb:g} MB: {'PASS' if ok else 'FAIL'} ({size / MB:.2f} MB)")
    # every finding is listed exactly (not decimated): the anomaly table has one row per anomaly
    rows = html.count("</tr>")
    assert rows >= len(report.anomalies) + len(report.change_points), "findings were dropped from the HTML"
    assert base64.b64decode(plotly_js_gzip_b64())[:2] == b"\x1f\x8b"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
