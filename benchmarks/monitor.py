"""Cost of `TrainingMonitor.log_step` with 600 metrics per step, against a bare dict update measured in the same run.

Scenarios (all with the same noisy per-batch metric stream, 200 batches x recall/precision/hmean):

- baseline ``dict.update``: what any loop pays to keep the latest values;
- the handbook's sketch (append every value to a ``defaultdict(list)``; unbounded memory);
- the monitor with no sinks (detection only);
- the monitor with default sinks (log + wandb no-op; the log goes to a NullHandler);
- the monitor with a failing Slack sink (real HTTP server on 127.0.0.1 answering 500) and no throttling, so
  every anomalous step queues an alert that is retried in the background;
- the same with a hanging sink (the server never answers within the timeout).

Prints median and p99 per call in microseconds and the ratio to the baseline median, then memory after N and 4N
steps (bounded state). Usage: ``python benchmarks/monitor.py [--steps 2000] [--metrics 600]``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import threading
import time
import tracemalloc
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from analysis.core.config import config_from_dict
from analysis.monitoring.alerts import LogSink, SlackWebhookSink, WandbAlertSink
from analysis.monitoring.monitor import TrainingMonitor


def metric_stream(steps: int, n_metrics: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    names = [f"batch_{i // 3}/{('recall', 'precision', 'hmean')[i % 3]}" for i in range(n_metrics)]
    rng = np.random.default_rng(seed)
    values = 0.9 + 0.01 * rng.standard_normal((steps, n_metrics))
    values[steps // 2 :, :30] -= 0.2  # ten batches degrade half way: real anomalies, real alerts
    return names, values


def timed(fn, rows: list[dict]) -> np.ndarray:
    out = np.empty(len(rows))
    for i, row in enumerate(rows):
        t0 = time.perf_counter_ns()
        fn(i, row)
        out[i] = time.perf_counter_ns() - t0
    return out / 1000.0  # microseconds


class _Server:
    def __init__(self, status: int, delay: float) -> None:
        self.count = 0
        srv = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                srv.count += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=600)
    args = ap.parse_args()
    logging.getLogger("analysis").addHandler(logging.NullHandler())
    logging.getLogger("analysis").propagate = False

    names, values = metric_stream(args.steps, args.metrics)
    rows = [dict(zip(names, v.tolist())) for v in values]
    cfg = config_from_dict(
        {
            "experiment_monitoring": {
                "alerts": {
                    "throttle_seconds": 0,
                    "timeout_seconds": 0.2,
                    "max_retries": 2,
                    "retry_backoff_seconds": 0.05,
                }
            }
        }
    )
    results: list[tuple[str, np.ndarray, str]] = []

    latest: dict = {}
    results.append(("baseline: dict.update", timed(lambda i, r: latest.update(r), rows), ""))

    history: defaultdict[str, list] = defaultdict(list)

    def handbook(i, r):
        for k, v in r.items():
            history[k].append(v)

    results.append(("handbook sketch (append to lists)", timed(handbook, rows), ""))

    m = TrainingMonitor({"val/recall": 0.75}, config=cfg, sinks=[])
    results.append(("monitor, no sinks", timed(lambda i, r: m.log_step(i, r), rows), f"{m.anomaly_count} anomalies"))

    m = TrainingMonitor({"val/recall": 0.75}, config=cfg, sinks=[LogSink(), WandbAlertSink()])
    results.append(
        (
            "monitor, log + wandb sinks",
            timed(lambda i, r: m.log_step(i, r), rows),
            f"{m.alert_stats['delivered']} alerts delivered",
        )
    )
    m.close(2)

    for label, status, delay in (("failing sink (HTTP 500)", 500, 0.0), ("hanging sink (no answer)", 200, 5.0)):
        srv = _Server(status, delay)
        slow = TrainingMonitor({"val/recall": 0.75}, config=cfg, sinks=[SlackWebhookSink(srv.url, timeout=0.2)])
        t = timed(slow.log_step, rows)
        queued = slow.alert_stats["dropped"]
        slow.close(0.5)
        results.append((f"monitor, {label}", t, f"{srv.count} POSTs; {queued} alerts dropped (queue full)"))
        srv.close()

    # the handbook's pattern: one wandb.log / log_step per batch with 3 metrics
    small = [dict(list(r.items())[:3]) for r in rows]
    base3: dict = {}
    t_base3 = timed(lambda i, r: base3.update(r), small)
    m = TrainingMonitor({"val/recall": 0.75}, config=cfg, sinks=[])
    t_mon3 = timed(lambda i, r: m.log_step(i, r), small)

    base = float(np.median(results[0][1]))
    print(f"log_step cost, {args.metrics} metrics per call, {args.steps} calls (microseconds per call)")
    print(f"{'scenario':42} {'median':>9} {'p99':>9} {'x baseline':>11}  notes")
    for label, t, note in results:
        med, p99 = float(np.median(t)), float(np.percentile(t, 99))
        print(f"{label:42} {med:9.1f} {p99:9.1f} {med / base:11.1f}  {note}")
    print(f"per metric (monitor, no sinks): {float(np.median(results[2][1])) / args.metrics:.2f} us")
    b3, m3 = float(np.median(t_base3)), float(np.median(t_mon3))
    print(
        f"3 metrics per call (handbook log_batch_metrics pattern): dict.update {b3:.1f} us, "
        f"monitor {m3:.1f} us median / {float(np.percentile(t_mon3, 99)):.1f} us p99 ({m3 / b3:.1f}x)"
    )

    # bounded memory: the monitor's state after N and 4N steps
    gc.collect()
    tracemalloc.start()
    m = TrainingMonitor({"val/recall": 0.75}, config=cfg, sinks=[])
    sizes = []
    for rep in range(4):
        for i, r in enumerate(rows):
            m.log_step(rep * len(rows) + i, r)
        gc.collect()
        sizes.append(tracemalloc.get_traced_memory()[0] / 2**20)
    tracemalloc.stop()
    print(
        f"monitor memory after {args.steps} / {2 * args.steps} / {3 * args.steps} / {4 * args.steps} steps: "
        + " / ".join(f"{s:.1f}" for s in sizes)
        + " MiB"
    )


if __name__ == "__main__":
    main()
