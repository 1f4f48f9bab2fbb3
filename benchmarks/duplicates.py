"""Duplicate-image benchmark: hashing throughput against quality scoring on the same images, in the same run.

Usage:  .venv/bin/python -m benchmarks.duplicates [--n 10000] [--seed 0] [--copies 0.05]

Writes `--n` generated images into a temporary folder (OCR-like text lines and pages of 1-3 lines in OpenCV's
fonts and sizes, and photo-like smooth textures with shapes), of which a share `--copies` are exact copies and as
many are near copies (JPEG quality 70, scaled to 90 %) of other generated images, plus every real image of
benchmarks/data/images (scans, photos of pages, focus series). Then, on one core (OpenCV single-threaded):

- hashing: `quality.duplicates.hash_images` (SHA-256 + 256-bit pHash), no cache, then again with a warm cache;
- grouping: `find_duplicates` on those hashes (with the planted pairs' recall and the groups nobody planted);
- scoring: `quality.scores.score_image(load_image(path))` per file, what the audit does per image.

Times are CPU seconds of this process (the machine may be shared); images/s for each, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
from PIL import Image

from quality.duplicates import find_duplicates, hash_distance, hash_images
from quality.io import is_image_file, load_image
from quality.scores import score_image

REAL = Path(__file__).resolve().parent / "data" / "images"
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
    "signature",
    "bank",
    "transfer",
    "shipping",
    "weight",
    "volume",
    "carrier",
    "tracking",
    "code",
    "postal",
    "street",
    "city",
    "country",
    "phone",
    "email",
    "contact",
    "manager",
    "office",
    "branch",
    "window",
    "ledger",
    "credit",
    "debit",
]
_FONTS = [
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
]


def text_image(rng: np.random.Generator) -> np.ndarray:
    """A text line or a small page on paper-like background."""
    n_lines = int(rng.integers(1, 4))
    h = int(rng.integers(48, 80)) * n_lines + 40
    w = int(rng.integers(320, 720))
    paper = float(rng.uniform(200, 250))
    img = np.full((h, w), paper, dtype=np.float32)
    img += cv2.GaussianBlur(rng.normal(0, 8, (h, w)).astype(np.float32), (0, 0), 8)  # uneven paper
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    scale = float(rng.uniform(0.7, 1.4))
    ink = float(rng.uniform(0, 80))
    for line in range(n_lines):
        text = " ".join(rng.choice(_WORDS, int(rng.integers(2, 5))))
        x, y = int(rng.integers(5, 40)), 40 + line * (h - 40) // n_lines + int(rng.integers(0, 10))
        cv2.putText(img, text, (x, y), font, scale, ink, int(rng.integers(1, 3)), cv2.LINE_AA)
    img += rng.normal(0, float(rng.uniform(1, 6)), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_image(rng: np.random.Generator) -> np.ndarray:
    """A smooth colour texture with a few shapes: stands in for photos."""
    h, w = int(rng.integers(160, 400)), int(rng.integers(200, 500))
    base = cv2.resize(rng.uniform(0, 255, (6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(2, 7))):
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if rng.random() < 0.5:
            cv2.circle(base, center, int(rng.integers(10, 80)), color, -1)
        else:
            cv2.rectangle(base, center, (center[0] + int(rng.integers(20, 120)), center[1] + 40), color, -1)
    noise = np.asarray(rng.normal(0, 4, size=(h, w, 3)), dtype=np.float32)
    noisy = np.asarray(base, dtype=np.float32) + noise
    return np.clip(noisy, 0, 255).astype(np.uint8)


def near_copy(src: Path, dst: Path) -> None:
    im = Image.open(src).convert("RGB")
    im.resize((max(1, int(im.width * 0.9)), max(1, int(im.height * 0.9))), Image.Resampling.BILINEAR).save(
        dst, quality=70
    )


def build(root: Path, n: int, seed: int, copies: float) -> tuple[list[str], set[frozenset[str]], set[frozenset[str]]]:
    """Write the set: (relative paths, planted exact pairs, planted near pairs)."""
    rng = np.random.default_rng(seed)
    n_copies = int(n * copies)
    n_own = n - 2 * n_copies
    paths: list[str] = []
    for i in range(n_own):
        img = text_image(rng) if rng.random() < 0.8 else photo_image(rng)
        rel = f"gen/{i // 1000:02d}/img_{i:05d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), img)
        paths.append(rel)
    sources = rng.choice(n_own, size=2 * n_copies, replace=False)
    exact: set[frozenset[str]] = set()
    near: set[frozenset[str]] = set()
    for k, src in enumerate(sources):
        original = paths[int(src)]
        if k < n_copies:
            rel = f"copies/exact_{k:05d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / original, root / rel)
            exact.add(frozenset({original, rel}))
        else:
            rel = f"copies/near_{k:05d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            near_copy(root / original, root / rel)
            near.add(frozenset({original, rel}))
        paths.append(rel)
    for real in sorted(REAL.rglob("*")):
        if real.is_file() and is_image_file(real):
            rel = f"real/{real.relative_to(REAL)}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(real, root / rel)
            paths.append(rel)
    return paths, exact, near


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="generated images (copies included)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copies", type=float, default=0.05, help="share of exact copies (and as many near copies)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="dup-bench-") as tmp:
        root = Path(tmp) / "data"
        t0 = time.perf_counter()
        paths, exact, near = build(root, args.n, args.seed, args.copies)
        n_real = sum(p.startswith("real/") for p in paths)
        print(f"{len(paths):,} images ({n_real} real) written in {time.perf_counter() - t0:.0f} s")

        c0 = time.process_time()
        hashes = hash_images(paths, root)
        t_hash = time.process_time() - c0
        c0 = time.process_time()
        found = find_duplicates(hashes)
        t_group = time.process_time() - c0
        cache = Path(tmp) / "cache"
        hash_images(paths, root, cache_dir=cache)  # fill
        c0 = time.process_time()
        hash_images(paths, root, cache_dir=cache)
        t_cached = time.process_time() - c0

        c0 = time.process_time()
        for rel in paths:
            score_image(load_image(root / rel))
        t_score = time.process_time() - c0

        n = len(paths)
        grouped = [frozenset(g.paths) for g in found.groups]
        in_group = {p: g for g in grouped for p in g}
        hit_exact = sum(1 for pair in exact if all(in_group.get(p) is in_group.get(next(iter(pair))) for p in pair))
        hit_near = sum(
            1 for pair in near if len({id(in_group.get(p)) for p in pair}) == 1 and next(iter(pair)) in in_group
        )
        planted = exact | near
        unplanted = [g for g in grouped if not any(pair <= g for pair in planted)]
        real_groups = [g for g in unplanted if all(p.startswith("real/") for p in g)]
        print()
        print(f"{'step':<34}{'CPU s':>8}{'images/s':>11}")
        print(f"{'hashing (SHA-256 + pHash-256)':<34}{t_hash:>8.1f}{n / t_hash:>11.0f}")
        print(f"{'hashing, warm cache':<34}{t_cached:>8.2f}{n / max(t_cached, 1e-9):>11.0f}")
        print(f"{'grouping (find_duplicates)':<34}{t_group:>8.2f}{n / max(t_group, 1e-9):>11.0f}")
        print(f"{'quality scoring (score_image)':<34}{t_score:>8.1f}{n / t_score:>11.0f}")
        print(
            f"\nhashing is {t_score / t_hash:.1f}x as fast as scoring (adds {100 * t_hash / t_score:.0f} % to an audit)"
        )
        print(
            f"planted exact pairs found: {hit_exact}/{len(exact)}; near pairs found: {hit_near}/{len(near)} "
            f"(distance <= {found.max_distance} of 256 bits)"
        )
        print(
            f"groups nobody planted: {len(unplanted)} ({len(real_groups)} among the real images: "
            + "; ".join(" = ".join(sorted(g)) for g in real_groups[:4])
            + ")"
        )
        others = [g for g in unplanted if g not in real_groups]
        dist_of = {frozenset(g.paths): g.max_distance for g in found.groups}
        for g in others[:5]:
            print(f"  generated, unplanted (distance {dist_of[g]}):", " = ".join(sorted(g)))
        ph = hashes.set_index("path")["phash"]
        missed = [
            (hash_distance(ph[a], ph[b]), a, b)
            for a, b in (sorted(pair) for pair in near)
            if not (a in in_group and in_group[a] is in_group.get(b))
        ]
        for d, a, b in sorted(missed)[:5]:
            print(f"  near pair missed at distance {d}: {a} ~ {b}")
        print(f"hash errors: {int(hashes['error'].notna().sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
