"""Image-quality benchmark: our scores against the naive pair, cleanvision and deskew, measured in the same run.

Usage:  .venv/bin/python -m benchmarks.image_quality [--n 400] [--seed 20] [--worst 10] [--repeats 3]
        [--real-only | --no-real]

Two tables. First the real images of benchmarks/data/images (public scans, photos of pages, rendered pages, focus
series; labels and sources in its PROVENANCE.md), split by source: the `tune` split was used while building the
scorer (training figures), the `test` split was not (the result). See benchmarks/real_images.py for the metrics.
Then the generated set below.

Seeds: scorer versions up to 5 were tuned on seed 0; version 6 on seeds 0–11; version 7 (rotation at any angle,
orientation, coarse-scale blur) on seeds 0–3 and the real `tune` split, with seed 20's summary row printed during
development (so seed 20 is no longer fully held out). Version 9 (blur read in the windows with the most fine detail,
median window; for photos that are only partly in focus) on seeds 0–3 and the real `tune` split only (`--split tune`,
with new tune sources: partly focused focus-stack frames, real motion-blurred photos, three graded defocus series).
Seeds 21–24 and seed 30 at --n 2000 are the held-out checks. `--batch 1,...,7` keeps only those labelling rounds of
the real images, so a round's final measurement leaves the next round's held-out batch unscored.

The labelled set (benchmarks/labelled_images.py) mixes rendered text pages and OCR line crops of 1-3 lines (several
fonts, sizes, inverted and faded ink, uneven lighting), text pasted onto photos and plain photos shipped in
scikit-image, with known Gaussian and motion blur, noise, JPEG, rotations up to ±30° and downscaling. Ground truth:
accept = not blurred, |rotation| <= 15° and both sides >= 100 px.

Methods:
- ours:        quality.ImageQualityFilter() defaults (blur_score, rotation_angle, resolution, contrast)
- naive:       variance of the Laplacian >= 100 + Hough-line skew (median angle of HoughLinesP segments on the
               Canny edges of the full image), the usual "handbook" pair
- cleanvision: Imagelab(filepaths).find_issues({"blurry": {}}) (no rotation check exists in cleanvision)
- deskew:      deskew.determine_skew (rotation only; it returns the correcting angle, so skew = -value)

Throughput is images per CPU-second of this process on one core (OpenCV single-threaded; CPU time rather than wall
time because the machine may be shared), the fastest of `--repeats` passes with ours and the naive pair alternating,
on decoded arrays, except cleanvision, which loads its own files (its figure includes decoding; ours through
audit_folder(workers=1) is printed for comparison).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
from scipy.stats import rankdata
from threadpoolctl import ThreadpoolController

from benchmarks.labelled_images import MAX_ROTATION, MIN_SIDE, Sample, make_labelled_set, write_set
from benchmarks.real_images import real_tables
from quality import ImageQualityFilter
from quality.audit import audit_folder


def auroc(pos_scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of `pos_scores` for `labels` (True = positive), ties counted half."""
    labels = labels.astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(pos_scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


# ------------------------------------------------------------------------------------------- the naive pair
def laplacian_variance(img: np.ndarray) -> float:
    return float(cv2.Laplacian(gray(img), cv2.CV_64F).var())


def hough_skew(img: np.ndarray) -> float:
    """Median angle (deg, counter-clockwise positive) of Hough line segments within ±45°; NaN if none."""
    g = gray(img)
    edges = cv2.Canny(g, 50, 150)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=80, minLineLength=max(20, g.shape[1] // 8), maxLineGap=10)
    if lines is None:
        return float("nan")
    x1, y1, x2, y2 = lines[:, 0, 0], lines[:, 0, 1], lines[:, 0, 2], lines[:, 0, 3]
    ang = np.degrees(np.arctan2(-(y2 - y1), x2 - x1).astype(np.float64))
    ang = (ang + 90) % 180 - 90
    ang = ang[np.abs(ang) <= 45]
    return float(np.median(ang)) if ang.size else float("nan")


def naive(img: np.ndarray) -> dict:
    return {"blur": laplacian_variance(img), "angle": hough_skew(img)}


def naive_accept(r: dict, s: Sample) -> bool:
    h, w = s.image.shape[:2]
    rot_ok = math.isnan(r["angle"]) or abs(r["angle"]) <= MAX_ROTATION
    return w >= MIN_SIDE and h >= MIN_SIDE and r["blur"] >= 100 and rot_ok


# ------------------------------------------------------------------------------------------- runners
PER_ITEM: dict[str, list[float]] = {}


def timed(fn, items, name: str | None = None) -> tuple[list, float]:
    """Results and the CPU seconds this process spent (wall time is unreliable on a shared machine)."""
    out, each = [], []
    t0 = time.process_time()
    for x in items:
        t = time.process_time()
        out.append(fn(x))
        each.append(time.process_time() - t)
    if name:
        PER_ITEM[name] = each
    return out, time.process_time() - t0


def timed_alternating(methods: dict, items: list, repeats: int) -> tuple[dict[str, list], dict[str, float]]:
    """Run each method over `items` `repeats` times, alternating methods pass by pass, and keep each method's fastest
    pass (CPU seconds, with its per-item times in PER_ITEM): a busy moment on a shared machine then slows every
    method's worst pass rather than deciding the ratio between them. Results come from the first pass."""
    results: dict[str, list] = {}
    best: dict[str, float] = {}
    per_item: dict[str, list[float]] = {}
    for _ in range(max(1, repeats)):
        for name, fn in methods.items():
            out, t = timed(fn, items, name)
            results.setdefault(name, out)
            if t < best.get(name, float("inf")):
                best[name], per_item[name] = t, PER_ITEM[name]
    PER_ITEM.update(per_item)
    return results, best


def _by_size(samples: list[Sample]) -> None:
    """Ours vs the naive pair by image size: our cost grows slowly with pixels, theirs linearly."""
    if "ours" not in PER_ITEM or "naive" not in PER_ITEM:
        return
    mp = np.array([s.image.shape[0] * s.image.shape[1] / 1e6 for s in samples])
    ours, nv = np.array(PER_ITEM["ours"]), np.array(PER_ITEM["naive"])
    parts = []
    for lo, hi in ((0, 0.25), (0.25, 1.0), (1.0, 100.0)):
        sel = (mp >= lo) & (mp < hi)
        if sel.any():
            parts.append(
                f"{lo:g}-{hi:g} MP (n={sel.sum()}): ours {1e3 * ours[sel].mean():.1f} ms "
                f"({sel.sum() / max(ours[sel].sum(), 1e-9):.0f} images/CPU-s), naive {1e3 * nv[sel].mean():.1f} ms "
                f"({sel.sum() / max(nv[sel].sum(), 1e-9):.0f} images/CPU-s), x{nv[sel].sum() / max(ours[sel].sum(), 1e-9):.2f}"
            )
    print("\nCPU per image by size: " + "; ".join(parts))


def run_cleanvision(paths: list[str]) -> tuple[np.ndarray | None, np.ndarray | None, float, str]:
    try:
        from cleanvision import Imagelab
    except ImportError:
        return None, None, float("nan"), "not installed"
    import contextlib
    import io

    t = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        lab = Imagelab(filepaths=paths, verbose=False)
        lab.find_issues({"blurry": {}}, n_jobs=1) if _accepts_n_jobs(lab) else lab.find_issues({"blurry": {}})
    elapsed = time.process_time() - t
    issues = lab.issues.reindex(paths)
    return issues["blurry_score"].to_numpy(float), issues["is_blurry_issue"].to_numpy(bool), elapsed, ""


def _accepts_n_jobs(lab) -> bool:
    import inspect

    return "n_jobs" in inspect.signature(lab.find_issues).parameters


def run_deskew(images: list[np.ndarray]) -> tuple[list[float] | None, float]:
    try:
        from deskew import determine_skew
    except ImportError:
        return None, float("nan")

    def one(img):
        try:
            v = determine_skew(gray(img))
        except Exception:
            return float("nan")
        return float("nan") if v is None else -float(v)

    return timed(one, images)


def rotation_mae(pred: list[float], samples: list[Sample]) -> tuple[float, float, float]:
    """(MAE counting a missing estimate as 0°, MAE over estimates given, fraction missing) on text images."""
    err_all, err_given, missing = [], [], 0
    for p, s in zip(pred, samples):
        if s.angle is None or min(s.image.shape[:2]) < MIN_SIDE:
            continue
        if p is None or math.isnan(p):
            missing += 1
            err_all.append(abs(s.angle))
        else:
            e = abs(p - s.angle)
            err_all.append(e)
            err_given.append(e)
    n = len(err_all)
    return (
        float(np.mean(err_all)) if n else float("nan"),
        float(np.mean(err_given)) if err_given else float("nan"),
        missing / n if n else float("nan"),
    )


def _deskew_one(img: np.ndarray) -> float:
    """deskew.determine_skew on the grey image, as skew CCW positive (it returns the correcting angle); NaN if none."""
    from deskew import determine_skew

    try:
        v = determine_skew(gray(img))
    except Exception:
        return float("nan")
    return float("nan") if v is None else -float(v)


def real_image_tables(
    skip_baselines: bool = False,
    worst: int = 0,
    splits: tuple[str, ...] = ("tune", "test"),
    batches: set[int] | None = None,
) -> None:
    """The real-image tables (benchmarks/data/images): ours, and unless skipped the naive pair, deskew, cleanvision;
    only the labelling rounds `batches` when given."""
    f = ImageQualityFilter()
    methods: dict = {"ours": f.assess_image_quality}
    rot_key: dict = {"ours": ("rotation_angle", "orientation", "orientation_confidence")}
    blur_key = {"ours": "blur_score"}
    if not skip_baselines:
        methods["naive pair (Laplacian var + Hough)"] = naive
        rot_key["naive pair (Laplacian var + Hough)"] = ("angle", None, None)
        blur_key["naive pair (Laplacian var + Hough)"] = "blur"
        try:
            import deskew  # noqa: F401

            methods["deskew.determine_skew"] = lambda img: {"angle": _deskew_one(img)}
            rot_key["deskew.determine_skew"] = ("angle", None, None)
        except ImportError:
            print("deskew: not installed")
    print("=== Real images (benchmarks/data/images; tune split = tuning data, test split = the result) ===")
    real_tables(
        methods,
        blur_key,
        rot_key,
        f.blur_threshold,
        with_cleanvision=not skip_baselines,
        worst=worst,
        splits=splits,
        batches=batches,
    )
    print("\n=== Generated set (benchmarks/labelled_images.py) ===")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=20, help="tuning used seeds 0-11; report 20-24 and 30 (held out)")
    ap.add_argument(
        "--worst",
        type=int,
        default=0,
        help="print the N worst errors of ours (generated set) and its misranked sharp/blurred pairs (real set)",
    )
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per method (alternating); the fastest counts")
    ap.add_argument("--real-only", action="store_true", help="only the real-image tables (benchmarks/data/images)")
    ap.add_argument("--no-real", action="store_true", help="only the generated-set table")
    ap.add_argument(
        "--split",
        choices=("tune", "test", "both"),
        default="both",
        help="real-image split(s) to run; develop with --split tune and run the test split once at the end",
    )
    ap.add_argument(
        "--batch",
        default="",
        help="comma-separated labelling rounds of the real images to keep (default: all); a round's measurement "
        "leaves later held-out rounds unscored",
    )
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    if not args.no_real:
        splits = ("tune", "test") if args.split == "both" else (args.split,)
        batches = {int(b) for b in args.batch.split(",") if b.strip()} or None
        real_image_tables(args.skip_baselines, args.worst, splits, batches)
        if args.real_only:
            return 0

    t0 = time.perf_counter()
    samples = make_labelled_set(args.n, args.seed)
    images = [s.image for s in samples]
    blurred = np.array([s.blurred for s in samples])
    accept = np.array([s.accept for s in samples])
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    print(
        f"labelled set: {len(samples)} images ({pixels / len(samples) / 1e6:.2f} MP mean), "
        f"{blurred.sum()} blurred, {accept.sum()} acceptable, "
        f"{sum(s.angle is not None for s in samples)} with text; generated in {time.perf_counter() - t0:.1f}s"
    )

    f = ImageQualityFilter()
    methods = (
        {"ours": f.assess_image_quality} if args.skip_baselines else {"ours": f.assess_image_quality, "naive": naive}
    )
    results, cpu = timed_alternating(methods, images, args.repeats)
    ours, t_ours = results["ours"], cpu["ours"]
    nv, t_naive = results.get("naive", []), cpu.get("naive", float("nan"))

    rows = []
    ours_acc = np.mean([r["is_acceptable"] == a for r, a in zip(ours, accept)])
    ours_auc = auroc(np.array([r["blur_score"] for r in ours]), ~blurred)
    mae, mae_given, miss = rotation_mae([r["rotation_angle"] for r in ours], samples)
    rows.append(("ours", ours_acc, ours_auc, mae, mae_given, miss, len(images) / t_ours))
    if not args.skip_baselines:
        nv_acc = np.mean([naive_accept(r, s) == s.accept for r, s in zip(nv, samples)])
        nv_auc = auroc(np.array([r["blur"] for r in nv]), ~blurred)
        n_mae, n_given, n_miss = rotation_mae([r["angle"] for r in nv], samples)
        rows.append(
            ("naive pair (Laplacian var + Hough)", nv_acc, nv_auc, n_mae, n_given, n_miss, len(images) / t_naive)
        )
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_set(samples, tmp)
            cv_score, cv_flag, t_cv, why = run_cleanvision(paths)
            t = time.process_time()
            audit_folder(tmp, workers=1, cache_dir=Path(tmp) / ".cache")
            t_audit = time.process_time() - t
            t = time.perf_counter()
            audit_folder(tmp, workers=1, cache_dir=Path(tmp) / ".cache")
            t_reaudit = time.perf_counter() - t
        if cv_score is not None and cv_flag is not None:
            res_ok = np.array([min(s.image.shape[:2]) >= MIN_SIDE for s in samples])
            cv_acc = np.mean((~cv_flag & res_ok) == accept)
            rows.append(
                (
                    "cleanvision (blurry; no rotation check)",
                    cv_acc,
                    auroc(cv_score, ~blurred),
                    float("nan"),
                    float("nan"),
                    float("nan"),
                    len(images) / t_cv,
                )
            )
        else:
            print(f"cleanvision: {why}")
        dk, t_dk = run_deskew(images)
        if dk is not None:
            d_mae, d_given, d_miss = rotation_mae(dk, samples)
            rows.append(
                ("deskew (rotation only)", float("nan"), float("nan"), d_mae, d_given, d_miss, len(images) / t_dk)
            )
    else:
        dk = None

    def fmt(v, spec):
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    naive_tp = rows[1][6] if len(rows) > 1 else float("nan")
    print()
    print(
        "| method | accept accuracy | blur AUROC | rotation MAE ° (missing = 0°) | MAE ° where given | "
        "no estimate | images/s (1 core) | × naive |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, acc, auc, m, mg, ms, tp in rows:
        print(
            f"| {name} | {fmt(acc, '.3f')} | {fmt(auc, '.3f')} | {fmt(m, '.2f')} | {fmt(mg, '.2f')} | "
            f"{fmt(ms, '.1%')} | {fmt(tp, '.1f')} | {fmt(tp / naive_tp, '.2f')} |"
        )
    _secondary(samples, ours, nv, dk if not args.skip_baselines else None)
    if not args.skip_baselines:
        print(f"\n{_with_all_blas_threads(f.assess_image_quality, images)}")
        print(
            f"\nours through audit_folder(workers=1), decoding PNG files included: "
            f"{len(images) / t_audit:.1f} images/s; re-audit of the unchanged folder from the cache: "
            f"{t_reaudit * 1e3:.0f} ms wall for {len(images)} files"
        )
    _by_size(samples)
    _breakdown(samples, ours)
    if args.worst:
        _worst(samples, ours, args.worst)
    return 0


def _with_all_blas_threads(score: Callable[[np.ndarray], dict], images: list[np.ndarray]) -> str:
    """Ours timed (CPU seconds) with BLAS allowed every core, as in a user's process (this benchmark pins it to one
    thread through OMP_NUM_THREADS): what the library's own thread limits are worth."""
    cores = os.cpu_count() or 1
    with ThreadpoolController().limit(limits=cores, user_api="blas"):
        _, t = timed(score, images)
    return f"ours with BLAS on all {cores} cores (as in a user's process; CPU time): {len(images) / t:.1f} images/s"


def _secondary(samples: list[Sample], ours: list[dict], nv: list[dict], dk: list[float] | None) -> None:
    """Blur AUROC on images that pass the resolution check; rotation MAE on text that is not blurred."""
    big = np.array([min(s.image.shape[:2]) >= MIN_SIDE for s in samples])
    sharp_label = np.array([not s.blurred for s in samples])
    readable = [s.angle is not None and not s.blurred for s in samples]
    sub = [s for s, r in zip(samples, readable) if r]
    lines = [
        f"ours: blur AUROC (>= {MIN_SIDE} px) "
        f"{auroc(np.array([r['blur_score'] for r in ours])[big], sharp_label[big]):.3f}, rotation MAE on "
        f"unblurred text {rotation_mae([r['rotation_angle'] for r, k in zip(ours, readable) if k], sub)[0]:.2f}°"
    ]
    if nv:
        lines.append(
            f"naive: blur AUROC (>= {MIN_SIDE} px) "
            f"{auroc(np.array([r['blur'] for r in nv])[big], sharp_label[big]):.3f}, rotation MAE on "
            f"unblurred text {rotation_mae([r['angle'] for r, k in zip(nv, readable) if k], sub)[0]:.2f}°"
        )
    if dk is not None:
        lines.append(
            f"deskew: rotation MAE on unblurred text "
            f"{rotation_mae([a for a, k in zip(dk, readable) if k], sub)[0]:.2f}°"
        )
    print("\n" + "\n".join(lines))


def _breakdown(samples: list[Sample], ours: list[dict]) -> None:
    groups: dict[str, list[bool]] = {}
    for s, r in zip(samples, ours):
        keys = [
            f"kind={s.kind}",
            f"jpeg={s.jpeg_quality}",
            f"noise={s.meta.get('noise', 0)}",
            f"blur={'gauss' if 'gauss_sigma' in s.meta else 'motion' if 'motion_length' in s.meta else 'none'}",
        ]
        for k in keys:
            groups.setdefault(k, []).append(r["is_acceptable"] == s.accept)
    print(
        "\naccept accuracy of ours by condition: "
        + ", ".join(f"{k} {np.mean(v):.3f} (n={len(v)})" for k, v in sorted(groups.items()))
    )


def _worst(samples: list[Sample], ours: list[dict], n: int) -> None:
    wrong = [(s, r) for s, r in zip(samples, ours) if r["is_acceptable"] != s.accept]
    print(f"\n{len(wrong)} wrong verdicts; first {n}:")
    for s, r in wrong[:n]:
        print(
            f"  {s.name} {s.image.shape} angle={s.angle} blurred={s.blurred} q={s.jpeg_quality} {s.meta} -> "
            f"blur={r['blur_score']:.0f} rot={r['rotation_angle']:.2f} conf={r['rotation_confidence']:.2f} "
            f"{r['reasons']}"
        )
    rot = [
        (abs(r["rotation_angle"] - s.angle) if not math.isnan(r["rotation_angle"]) else 99, s, r)
        for s, r in zip(samples, ours)
        if s.angle is not None and min(s.image.shape[:2]) >= MIN_SIDE
    ]
    rot.sort(key=lambda t: -t[0])
    print("worst rotation errors:")
    for e, s, r in rot[:n]:
        print(f"  {s.name} {s.image.shape} err={e:.2f} true={s.angle} est={r['rotation_angle']:.2f} {s.meta}")


if __name__ == "__main__":
    raise SystemExit(main())
