"""A small real training loop that logs per-batch validation metrics and reacts to the TrainingMonitor.

Softmax regression (numpy only, CPU) on synthetic 16x16 "character" glyphs: every `--validation-interval` steps it
validates on 16 batches, logs `batch_{i}/recall|precision|hmean` with `log_batch_metrics` (plus the image paths of
problematic batches) to an OFFLINE wandb run, and feeds the monitor. The monitor's recovery actions are applied:
rollback loads the named checkpoint (and halves the learning rate), adjust_lr scales it, early_stop ends the run.

    python examples/train_loop.py --steps 600 --wandb-dir /tmp/wb
    python examples/train_loop.py --steps 800 --wandb-dir /tmp/wb --spike-lr-at 400   # divergence -> rollback

The monitor is closed after `run.finish()`, so (with `reporting.auto_generate_reports`, the default) it writes the
reports of the finished run to `<wandb-dir>/experiment_reports`. Analyse it again any time:
`experiment-analyzer --run-name train-loop-example ...` or the dashboard.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from analysis.core.config import AnalyzerConfig, config_from_dict, load_config
from analysis.core.errors import AnalyzerError
from experiment_analyzer import TrainingMonitor, log_batch_metrics

N_CLASSES, SIDE, VAL_BATCHES, VAL_BATCH_SIZE = 10, 16, 16, 32
HARD_BATCH = 5  # this validation batch gets noisier images (think: blurry scans)


def make_glyphs(rng: np.random.Generator) -> np.ndarray:
    """One random blocky 16x16 template per class."""
    coarse = rng.random((N_CLASSES, 4, 4)) > 0.5
    return np.kron(coarse, np.ones((4, 4))).astype(np.float32)


def sample(glyphs: np.ndarray, labels: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy, randomly shifted copies of the class templates, flattened."""
    x = glyphs[labels]
    shifts = rng.integers(-1, 2, size=(len(labels), 2))
    x = np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(x, shifts)])
    x = x + noise * rng.standard_normal(x.shape).astype(np.float32)
    return x.reshape(len(labels), -1)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_step(W: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, lr: float) -> float:
    """One SGD step of softmax regression, in place; returns the cross-entropy loss."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        p = softmax(x @ W + b)
        loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
        p[np.arange(len(y)), y] -= 1.0
        W -= lr * (x.T @ p) / len(y)
        b -= lr * p.mean(axis=0)
    return loss


def batch_scores(W: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Macro recall / precision over the classes present, and their harmonic mean (hmean)."""
    with np.errstate(over="ignore", invalid="ignore"):
        pred = np.argmax(x @ W + b, axis=1)
    recalls, precisions = [], []
    for c in np.unique(y):
        tp = np.sum((pred == c) & (y == c))
        recalls.append(tp / np.sum(y == c))
        n_pred = np.sum(pred == c)
        precisions.append(tp / n_pred if n_pred else 0.0)
    r, p = float(np.mean(recalls)), float(np.mean(precisions))
    return {"recall": r, "precision": p, "hmean": 2 * r * p / (r + p) if r + p else 0.0}


def save_images(data_dir: Path, x: np.ndarray) -> list[str]:
    """Write the validation images as 128x128 PNGs; return their paths relative to `data_dir`."""
    from PIL import Image

    paths = []
    for i, flat in enumerate(x):
        rel = f"val/img_{i:04d}.png"
        img = np.clip(flat.reshape(SIDE, SIDE), 0, 1) * 255
        (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.uint8)).resize((128, 128), Image.Resampling.NEAREST).save(data_dir / rel)
        paths.append(rel)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--wandb-dir", required=True, help="wandb writes <dir>/wandb/offline-run-*")
    ap.add_argument("--config", help="analyzer YAML config (experiment_monitoring / training_config)")
    ap.add_argument("--checkpoint-dir", help="default: training_config.checkpoint_dir under --wandb-dir")
    ap.add_argument("--data-dir", help="also write the validation images here (for the dashboard)")
    ap.add_argument("--validation-interval", type=int, help="default: training_config.validation_interval")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--noise", type=float, default=1.7, help="pixel noise (std) of the glyph images")
    ap.add_argument("--spike-lr-at", type=int, help="multiply the LR by 200 at this step (to see a rollback)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="train-loop-example")
    args = ap.parse_args(argv)

    try:
        config = load_config(args.config) if args.config else AnalyzerConfig()
    except AnalyzerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wandb_dir = Path(args.wandb_dir)
    ckpt_dir = Path(args.checkpoint_dir or wandb_dir / config.training_config.checkpoint_dir)
    interval = args.validation_interval or min(config.training_config.validation_interval, max(args.steps // 20, 1))
    data = config.model_dump()
    data["training_config"]["checkpoint_dir"] = str(ckpt_dir)
    data["training_config"]["validation_interval"] = interval  # log_batch_metrics logs at multiples of it
    config = config_from_dict(data)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    wandb_dir.mkdir(parents=True, exist_ok=True)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    rng = np.random.default_rng(args.seed)
    glyphs = make_glyphs(rng)
    n_val = VAL_BATCHES * VAL_BATCH_SIZE
    y_val = rng.integers(0, N_CLASSES, n_val)
    x_val = sample(glyphs, y_val, args.noise, rng)
    hard = slice(HARD_BATCH * VAL_BATCH_SIZE, (HARD_BATCH + 1) * VAL_BATCH_SIZE)
    x_val[hard] = sample(glyphs, y_val[hard], 1.5 * args.noise, rng)
    paths = save_images(Path(args.data_dir), x_val) if args.data_dir else [f"val/img_{i:04d}.png" for i in range(n_val)]

    W = np.zeros((SIDE * SIDE, N_CLASSES), np.float32)
    b = np.zeros(N_CLASSES, np.float32)
    lr = args.lr
    run = wandb.init(
        project="experiment-analyzer-examples",
        name=args.name,
        dir=str(wandb_dir),
        mode="offline",
        config={"lr": lr, "steps": args.steps, "seed": args.seed, "validation_interval": interval},
    )
    monitor = TrainingMonitor(
        {"val/recall": 0.75, "train/loss": 2.5},
        config=config,
        recovery_metrics=["val/recall"],
        report_dir=wandb_dir / "experiment_reports",
    )
    applied: list[str] = []
    try:
        for step in range(1, args.steps + 1):
            if step == args.spike_lr_at:
                lr *= 200
            y = rng.integers(0, N_CLASSES, 64)
            loss = train_step(W, b, sample(glyphs, y, args.noise, rng), y, lr)
            run.log({"train/loss": loss, "train/lr": lr, "global_step": step})
            monitor.log_step(step, {"train/loss": loss})
            if step % interval:
                continue

            per_batch = []
            for i in range(VAL_BATCHES):
                sl = slice(i * VAL_BATCH_SIZE, (i + 1) * VAL_BATCH_SIZE)
                m = batch_scores(W, b, x_val[sl], y_val[sl])
                log_batch_metrics(i, step, m, paths[sl], config=config)
                per_batch.append(m)
            summary = {f"val/{k}": float(np.mean([m[k] for m in per_batch])) for k in ("recall", "precision", "hmean")}
            run.log({**summary, "global_step": step})
            np.savez(ckpt_dir / f"ckpt_step_{step}.npz", W=W, b=b)
            found = monitor.log_step(
                step, {**summary, **{f"batch_{i}/recall": m["recall"] for i, m in enumerate(per_batch)}}
            )
            for a in found:
                if a.severity != "info" and a.batch is None:  # run-level findings; batches are in the run
                    print(f"step {step}: [{a.severity}] {a.message}")
            for action in monitor.last_actions:
                print(f"step {step}: recovery -> {action.kind}: {action.reason}")
                applied.append(action.kind)
                if action.kind == "rollback" and action.checkpoint:
                    with np.load(action.checkpoint) as ck:
                        W[...], b[...] = ck["W"], ck["b"]
                    lr *= 0.5 if not args.spike_lr_at else 1 / 400  # undo the spike in the demo, else halve
                elif action.kind == "adjust_lr":
                    lr *= action.lr_factor
            if monitor.should_stop:
                print(f"step {step}: early stopping")
                break
    finally:
        monitor.flush(timeout=5)  # wandb.alert needs the run still active
        run.finish()
        monitor.close(timeout=5)  # after run.finish(): the run's history is complete, so the reports can be written
    final = batch_scores(W, b, x_val, y_val)
    hard_recall = batch_scores(W, b, x_val[hard], y_val[hard])["recall"]
    print(f"run folder: {Path(run.dir).parent}")
    for path in monitor.report_paths.values():
        print(f"report: {path}")
    print(f"batch {HARD_BATCH} (noisier images) recall {hard_recall:.3f}")
    print(
        f"final val recall {final['recall']:.3f}; anomalies {monitor.anomaly_count}; "
        f"recovery actions: {', '.join(applied) or 'none'}; alerts: {monitor.alert_stats}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
