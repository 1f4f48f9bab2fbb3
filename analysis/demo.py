"""The bundled demo: a realistic OCR validation run written with the real wandb library in offline mode.

The story a user can discover in the app: a text-recognition model improves steadily over 40 validations
(every 100 steps) on 16 fixed validation batches, until data refreshes swap three batches to bad scans:

- batch 7 reads blurred scans from step 2000 on (recall falls to ~0.6),
- batch 12 reads rotated scans from step 2800 on,
- batch 3 reads low-resolution scans from step 3400 on.

Metrics are logged exactly like the handbook's `log_batch_metrics`: one `wandb.log` per batch with
`batch_{i}/recall|precision|hmean` and `global_step`, then `problematic_batch_{i}` (image paths relative to the data
directory) whenever recall < 0.8. Run-level `val/*` and `train/*` metrics and a few `wandb.Image` samples are logged
too. Everything is seeded: the same files every time, in a few seconds.

    python -m analysis.demo --root demo          # writes demo/wandb/offline-run-*/ and demo/data/
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEMO_RUN_NAME = "demo-ocr-run"
DEMO_PROJECT = "ocr-validation"
N_BATCHES = 16
N_STEPS = 40
IMAGES_PER_BATCH = 8
VALIDATION_INTERVAL = 100
IMAGE_SIZE = (480, 160)  # width, height: comfortably above the default min_resolution (100, 100)

_WORDS = [
    "invoice",
    "total",
    "amount",
    "date",
    "receipt",
    "number",
    "customer",
    "address",
    "payment",
    "due",
    "balance",
    "tax",
    "order",
    "item",
    "quantity",
    "price",
    "subtotal",
    "account",
    "reference",
    "delivery",
    "station",
    "platform",
    "ticket",
    "valid",
    "until",
]
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
)


@dataclass(frozen=True)
class Defect:
    batch: int
    start_step: int
    kind: str  # blur | rotation | low_resolution
    recall_after: float  # mean recall once the defect is in


DEFECTS = (
    Defect(batch=7, start_step=2000, kind="blur", recall_after=0.60),
    Defect(batch=12, start_step=2800, kind="rotation", recall_after=0.64),
    Defect(batch=3, start_step=3400, kind="low_resolution", recall_after=0.70),
)


def _fonts(size: int) -> list[ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    fonts: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = [
        ImageFont.truetype(p, size) for p in _FONT_CANDIDATES if Path(p).is_file()
    ]
    return fonts or [ImageFont.load_default(size=size)]


def render_text_image(rng: np.random.Generator, fonts: list) -> Image.Image:
    """A clean scanned text line: two rows of words, dark ink on off-white paper with slight noise."""
    w, h = IMAGE_SIZE
    img = Image.new("L", (w, h), int(rng.integers(236, 250)))
    draw = ImageDraw.Draw(img)
    font = fonts[int(rng.integers(len(fonts)))]
    for row in range(2):
        text = " ".join(rng.choice(_WORDS, size=3))
        draw.text((18, 22 + row * 64), text, fill=int(rng.integers(10, 50)), font=font)
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, 3, size=(h, w)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def apply_defect(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(3.0, 4.5))))
    if kind == "rotation":
        angle = float(rng.uniform(20, 30)) * (1 if rng.random() < 0.5 else -1)
        return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=int(np.asarray(img)[0, 0]))
    if kind == "low_resolution":
        return img.resize((IMAGE_SIZE[0] // 6, IMAGE_SIZE[1] // 6), Image.Resampling.BILINEAR)
    raise ValueError(f"unknown defect {kind!r}")


def write_images(data_dir: Path, seed: int = 0) -> dict[tuple[int, str], list[str]]:
    """Write the dataset; returns {(batch, "clean"|defect kind): [paths relative to data_dir]}."""
    rng = np.random.default_rng(seed)
    fonts = _fonts(34)
    out: dict[tuple[int, str], list[str]] = {}
    defect_by_batch = {d.batch: d for d in DEFECTS}
    for b in range(N_BATCHES):
        clean = []
        for j in range(IMAGES_PER_BATCH):
            img = render_text_image(rng, fonts)
            rel = f"clean/batch_{b:02d}/img_{j:02d}.png"
            (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            img.save(data_dir / rel)
            clean.append(rel)
            if b in defect_by_batch:
                d = defect_by_batch[b]
                bad_rel = f"refresh_{d.start_step}/batch_{b:02d}/img_{j:02d}.png"
                (data_dir / bad_rel).parent.mkdir(parents=True, exist_ok=True)
                apply_defect(img, d.kind, rng).save(data_dir / bad_rel)
                out.setdefault((b, d.kind), []).append(bad_rel)
        out[(b, "clean")] = clean
    return out


def simulate_metrics(seed: int = 0) -> list[dict]:
    """One dict per (validation step, batch): step, batch, recall, precision, hmean, defect (or None)."""
    rng = np.random.default_rng(seed + 1)
    offsets = rng.normal(0, 0.012, size=N_BATCHES)
    defect_by_batch = {d.batch: d for d in DEFECTS}
    rows = []
    for s in range(1, N_STEPS + 1):
        step = s * VALIDATION_INTERVAL
        base = 0.945 - 0.13 * math.exp(-s / 7.0)
        for b in range(N_BATCHES):
            d = defect_by_batch.get(b)
            active = d if d is not None and step >= d.start_step else None
            recall = base + offsets[b] + rng.normal(0, 0.008)
            precision = base + 0.02 + offsets[b] / 2 + rng.normal(0, 0.006)
            if active is not None:
                recall = active.recall_after + rng.normal(0, 0.015)
                precision = precision - 0.12 + rng.normal(0, 0.01)
            recall, precision = float(np.clip(recall, 0, 1)), float(np.clip(precision, 0, 1))
            hmean = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
            rows.append(
                {
                    "step": step,
                    "batch": b,
                    "recall": recall,
                    "precision": precision,
                    "hmean": hmean,
                    "defect": active.kind if active is not None else None,
                }
            )
    return rows


def write_demo(root: str | Path, seed: int = 0) -> Path:
    """Write the demo dataset and the offline wandb run under `root`; returns the run folder.

    Imports wandb (which wraps stdout for console capture): call it in its own process, e.g. via `ensure_demo`.
    """
    root = Path(root).resolve()
    data_dir = root / "data"
    images = write_images(data_dir, seed)
    for var, sub in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config")):
        os.environ.setdefault(var, str(root / ".wandb_home" / sub))
        Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    import wandb  # late: importing wandb costs ~0.7 s and patches stdout

    config = {
        "model": {"arch": "crnn", "backbone": "resnet34"},
        "optimizer": {"name": "adamw", "lr": 3e-4},
        "batch_size": IMAGES_PER_BATCH,
        "validation_interval": VALIDATION_INTERVAL,
        "seed": seed,
        "dataset": "synthetic-receipts-v1",
    }
    run = wandb.init(
        project=DEMO_PROJECT,
        name=DEMO_RUN_NAME,
        config=config,
        dir=str(root),
        tags=["demo", "ocr"],
        notes="Bundled demo: three batches degrade after data refreshes.",
    )
    metrics = simulate_metrics(seed)
    rng = np.random.default_rng(seed + 2)
    by_step: dict[int, list[dict]] = {}
    for m in metrics:
        by_step.setdefault(m["step"], []).append(m)
    for step, batch_rows in by_step.items():
        for m in batch_rows:
            b = m["batch"]
            paths = images[(b, m["defect"])] if m["defect"] else images[(b, "clean")]
            # exactly the handbook's log_batch_metrics
            wandb.log(
                {
                    f"batch_{b}/recall": m["recall"],
                    f"batch_{b}/precision": m["precision"],
                    f"batch_{b}/hmean": m["hmean"],
                    "global_step": step,
                }
            )
            if m["recall"] < 0.8:
                wandb.log({f"problematic_batch_{b}": paths})
        recalls = [m["recall"] for m in batch_rows]
        precisions = [m["precision"] for m in batch_rows]
        loss = 2.4 * math.exp(-step / 900) + 0.35 + float(rng.normal(0, 0.02))
        row: dict[str, Any] = {
            "global_step": step,
            "val/recall": float(np.mean(recalls)),
            "val/precision": float(np.mean(precisions)),
            "val/hmean": float(np.mean([m["hmean"] for m in batch_rows])),
            "train/loss": loss,
            "train/lr": 3e-4 * (0.5 if step >= 3000 else 1.0),
        }
        if step in (1000, 2100, 2900, 3500):  # a few samples of what the model sees
            for d in DEFECTS:
                key = "clean" if step < d.start_step else d.kind
                path = data_dir / images[(d.batch, key)][0]
                row[f"samples/batch_{d.batch}"] = wandb.Image(str(path), caption=f"batch {d.batch} at step {step}")
        wandb.log(row)
    run.summary["best_val_hmean"] = max(float(np.mean([m["hmean"] for m in rows])) for rows in by_step.values())
    run_dir = Path(run.dir).parent
    run.finish()
    return run_dir


def demo_run_dir(root: str | Path) -> Path | None:
    """The demo run folder under `root/wandb`, if one was written."""
    runs = sorted(Path(root, "wandb").glob("*run-*/run-*.wandb"))
    return runs[-1].parent if runs else None


def ensure_demo(root: str | Path) -> Path:
    """Write the demo in a subprocess unless `root` already holds it; returns the run folder."""
    existing = demo_run_dir(root)
    if existing is not None and (Path(root) / "data").is_dir():
        return existing
    subprocess.run(
        [sys.executable, "-m", "analysis.demo", "--root", str(root)],
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
    )
    found = demo_run_dir(root)
    if found is None:
        raise RuntimeError(f"the demo writer ran but left no run under {root}/wandb")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="demo", help="folder for wandb/ and data/ (default: demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="write even if a demo run exists")
    args = parser.parse_args(argv)
    if not args.force and demo_run_dir(args.root) is not None:
        print(f"demo already present: {demo_run_dir(args.root)}")
        return 0
    run_dir = write_demo(args.root, seed=args.seed)
    print(f"demo run written: {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
