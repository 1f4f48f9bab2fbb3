"""Exact and near-duplicate images: within a batch, across batches at one step, and across steps.

Each image gets two hashes (`hash_images`): the SHA-256 of its file (exact copies) and a 256-bit perceptual hash
(`imagehash.phash` with hash_size 16, on the grey image area-averaged to at most 256 pixels a side; JPEGs are
decoded at reduced scale for it) that survives re-encoding and resizing: a JPEG at quality 70 scaled to 90 % differs
by at most 8 bits on the real benchmark images, distinct ones by at least 12 (a focus series of one scene), distinct
text pages by far more. The common 64-bit pHash is too coarse for documents: distinct one-line text images on white
differ by as little as 2 of its 64 bits. Hashes are cached beside the quality scores (`quality.score_cache`, table
`hashes`) with the same key (real path, size, mtime, `HASH_VERSION`, pixel cap). Bad files never raise: they become
rows with `error` set and join no group.

`find_duplicates` links images whose contents are equal or whose hashes differ by at most `max_distance` bits
(pigeonhole buckets: with t allowed bits, two near hashes agree exactly on one of t + 1 blocks, so only images
sharing a block value are compared), then places each group in the run's log: which batches at which steps logged
which of its files. A file re-logged by the same batch at later steps is not a duplicate (evaluation batches are
often fixed); the same content under another batch, or under another file name, is. `BatchRepeat` is the
root-cause rule: a batch whose images from some step on are mostly another batch's images.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd

from analysis.core.config import DataQualityConfig
from analysis.core.errors import AnalyzerError, ImageLoadError
from analysis.core.vocabulary import QualityReason
from quality.io import DEFAULT_MAX_PIXELS, load_image, resolve_under_root
from quality.pixels import to_gray
from quality.score_cache import ScoreCache, printable

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "HASH_BITS",
    "HASH_COLUMNS",
    "HASH_VERSION",
    "OCCURRENCE_COLUMNS",
    "BatchRepeat",
    "DuplicateGroup",
    "Duplicates",
    "find_duplicates",
    "find_duplicates_under",
    "hash_distance",
    "hash_image",
    "hash_images",
]

HASH_VERSION = "phash16-1"  # part of the cache key: bump when either hash changes
HASH_SIZE = 16  # imagehash's hash_size: a HASH_SIZE² = 256-bit pHash
HASH_BITS = HASH_SIZE * HASH_SIZE
DEFAULT_MAX_DISTANCE = 10  # data_quality.duplicate_hash_distance
HASH_COLUMNS = ["path", "sha256", "phash", "error"]
OCCURRENCE_COLUMNS = ["group", "kind", "path", "step", "batch", "distance", "reason_code"]
_PRESHRINK = 256  # decoded images are area-averaged to at most this side before pHash (its 64 × 64 resize)
_FAST_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"}  # 8-bit modes PIL turns into grey exactly
Scope = Literal["within_batch", "across_batches", "across_steps", "folder"]
Progress = Callable[[int, int], None]


# ------------------------------------------------------------------------------------------------------ hashing
def _phash_hex(gray: np.ndarray) -> str:
    """The 256-bit pHash of a grey uint8 image, as hex."""
    import imagehash
    from PIL import Image

    h, w = gray.shape
    longest = max(h, w)
    if longest > _PRESHRINK:
        scale = _PRESHRINK / longest
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    bits = imagehash.phash(Image.fromarray(gray), hash_size=HASH_SIZE).hash
    return np.packbits(bits.flatten()).tobytes().hex()  # = str(ImageHash), which costs more than the hash


def _small_gray(data: bytes, max_pixels: int) -> np.ndarray | None:
    """The picture as grey uint8, decoded small when the format allows (JPEG at 1/2..1/8 scale): hashing needs
    256 pixels a side, not the full decode the scores need. None when the fast path does not apply (16-bit, odd
    modes, anything PIL objects to): the caller then decodes with `load_image`, which names the problem."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels or w <= 0 or h <= 0 or im.mode not in _FAST_MODES:
                return None
            if im.format != "JPEG":  # OpenCV decodes PNG & co. faster than PIL
                gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
                return gray if gray is not None and gray.shape == (h, w) else None
            if b"\xff\xd9" not in data[-4096:]:
                return None  # truncated: load_image reports it
            im.draft("L", (_PRESHRINK, _PRESHRINK))
            return np.asarray(ImageOps.exif_transpose(im).convert("L"))
    except Exception:
        return None


def hash_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """{'sha256', 'phash' (hex), 'error': None} of one file, or {'error': message}; never raises."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return {"sha256": None, "phash": None, "error": f"{path}: cannot read ({exc.strerror or exc})"}
    sha = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gray = _small_gray(data, max_pixels)
            if gray is None:
                gray = to_gray(load_image(path, max_pixels))
            return {"sha256": sha, "phash": _phash_hex(gray), "error": None}
    except ImageLoadError as exc:
        return {"sha256": sha, "phash": None, "error": str(exc)}
    except Exception as exc:  # a hashing bug must not stop a run's analysis; keep the message
        return {"sha256": sha, "phash": None, "error": f"{path}: hashing failed ({type(exc).__name__}: {exc})"}


def hash_images(
    paths: Sequence[str],
    root: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """HASH_COLUMNS for each path (relative to `root` and confined to it when given), in order, cached by file."""
    cache = ScoreCache(cache_dir)
    rows: list[dict[str, Any]] = []
    try:
        keyed: list[tuple[int, str, str]] = []
        for i, p in enumerate(paths):
            rows.append({"path": printable(str(p)), "sha256": None, "phash": None, "error": None})
            try:
                real = resolve_under_root(root, p) if root is not None else Path(p)
                st = os.stat(real)
            except AnalyzerError as exc:
                rows[i]["error"] = str(exc)
                continue
            except OSError as exc:
                rows[i]["error"] = f"{printable(str(p))}: cannot read ({exc.strerror or exc})"
                continue
            keyed.append((i, str(real), ScoreCache.key(str(real), st, max_pixels, HASH_VERSION)))
        hits = cache.get_many([k for _, _, k in keyed], table="hashes")
        pending: list[tuple[str, dict[str, Any]]] = []
        for done, (i, real_path, key) in enumerate(keyed, start=1):
            value = hits.get(key)
            if value is None:
                value = hash_image(real_path, max_pixels)
                pending.append((key, value))
                if len(pending) >= 500:
                    cache.put_many(pending, table="hashes")
                    pending = []
            rows[i].update({k: value.get(k) for k in ("sha256", "phash", "error")})
            if progress is not None and (done % 200 == 0 or done == len(keyed)):
                progress(done, len(keyed))
        cache.put_many(pending, table="hashes")
    finally:
        cache.close()
    return pd.DataFrame(rows, columns=HASH_COLUMNS)


def _words(hexes: Iterable[str]) -> np.ndarray:
    """Hex pHashes as (n, HASH_BITS / 64) uint64 words."""
    n_words = HASH_BITS // 64
    out = np.zeros((0, n_words), dtype=np.uint64)
    raw = [bytes.fromhex(h) for h in hexes]
    if raw:
        out = np.frombuffer(b"".join(raw), dtype=">u8").astype(np.uint64).reshape(len(raw), n_words)
    return out


def hash_distance(a: str, b: str) -> int:
    """Bits that differ between two hex pHashes."""
    return int(np.bitwise_count(_words([a]) ^ _words([b])).sum())


# ------------------------------------------------------------------------------------------------------ grouping
@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are one picture: the same bytes (`exact`) or hashes at most the distance apart (`near`)."""

    group: int
    kind: Literal["exact", "near"]
    paths: tuple[str, ...]  # distinct files, the first one logged (or found) first
    batches: tuple[int, ...]  # batches that logged any of them
    steps: tuple[int, ...]  # steps at which any of them was logged
    scopes: tuple[Scope, ...]  # where the repetition is: within_batch, across_batches, across_steps, folder
    max_distance: int  # largest hash distance from the first image (0: exact)

    def describe(self) -> str:
        """'3 exact copies, batches 2 and 7, steps 100-4000 (across batches at one step, across steps)'."""
        what = f"{len(self.paths)} {'exact copies' if self.kind == 'exact' else 'near-identical images'}"
        if len(self.paths) == 1:
            what = "1 file logged by several batches"
        where = []
        if self.batches:
            where.append(f"batch{'es' if len(self.batches) > 1 else ''} {_and(self.batches)}")
        if self.steps:
            lo, hi = self.steps[0], self.steps[-1]
            where.append(f"step {lo}" if lo == hi else f"steps {lo}-{hi}")
        scopes = ", ".join(s.replace("_", " ") + (" at one step" if s == "across_batches" else "") for s in self.scopes)
        return ", ".join([what, *where]) + (f" ({scopes})" if scopes else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BatchRepeat:
    """A batch that, from `since_step` on, logs `n_repeated` of its `n_images` images from `source_batch`."""

    batch: int
    source_batch: int
    since_step: int
    n_repeated: int
    n_images: int
    kind: Literal["exact", "near"]
    groups: tuple[int, ...] = ()

    @property
    def share(self) -> float:
        return self.n_repeated / max(self.n_images, 1)

    @property
    def sentence(self) -> str:
        """'batch 7 repeats 6 of 8 images from batch 2 since step 2000'."""
        near = " (near-identical copies)" if self.kind == "near" else ""
        return (
            f"batch {self.batch} repeats {self.n_repeated} of {self.n_images} image{'s' if self.n_images != 1 else ''}"
            f" from batch {self.source_batch} since step {self.since_step}{near}"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["groups"] = list(self.groups)
        d["sentence"] = self.sentence
        d["reason_code"] = QualityReason.DUPLICATE.value
        return d


@dataclass
class Duplicates:
    """The duplicate findings of one set of images (one run's data directory)."""

    hashes: pd.DataFrame  # HASH_COLUMNS, one row per image
    groups: list[DuplicateGroup] = field(default_factory=list)
    occurrences: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=OCCURRENCE_COLUMNS))
    repeats: list[BatchRepeat] = field(default_factory=list)
    max_distance: int = DEFAULT_MAX_DISTANCE

    @property
    def errors(self) -> pd.DataFrame:
        """Images that could not be hashed (path, error)."""
        return self.hashes.loc[self.hashes["error"].notna(), ["path", "error"]].reset_index(drop=True)

    @property
    def n_duplicate_images(self) -> int:
        """Files that belong to a group, less one original per group."""
        return sum(max(len(g.paths) - 1, 0) for g in self.groups)

    def for_batch(self, batch: int) -> list[DuplicateGroup]:
        return [g for g in self.groups if batch in g.batches]

    def repeats_of(self, batch: int) -> list[BatchRepeat]:
        """Repeats where `batch` is the repeating batch or the source."""
        return [r for r in self.repeats if batch in (r.batch, r.source_batch)]

    def groups_frame(self, batch: int | None = None) -> pd.DataFrame:
        """One row per group (of `batch` only, when given), the cross-batch ones first: group, kind, images,
        batches, steps, where, max_distance, paths."""
        groups = self.for_batch(batch) if batch is not None else self.groups
        rows: list[dict[str, Any]] = [
            {
                "group": g.group,
                "kind": g.kind,
                "images": len(g.paths),
                "batches": ", ".join(map(str, g.batches)),
                "steps": f"{g.steps[0]}-{g.steps[-1]}" if len(g.steps) > 1 else ", ".join(map(str, g.steps)),
                "where": ", ".join(s.replace("_", " ") for s in g.scopes),
                "max_distance": g.max_distance,
                "paths": " | ".join(g.paths),
            }
            for g in sorted(
                groups, key=lambda g: (0 if len(g.batches) > 1 else 1 if g.batches else 2, -len(g.paths), g.group)
            )
        ]
        columns = ["group", "kind", "images", "batches", "steps", "where", "max_distance", "paths"]
        if not rows:
            return pd.DataFrame(columns=columns)
        return pd.DataFrame(rows, columns=columns)

    def summary(self) -> str:
        """'4 duplicate groups (3 exact, 1 near) over 11 images; batch 7 repeats 6 of 8 images from batch 2 ...'."""
        if not self.groups:
            return f"No duplicate images among {int(self.hashes['error'].isna().sum())} hashed images."
        exact = sum(g.kind == "exact" for g in self.groups)
        n_files = len({p for g in self.groups for p in g.paths})
        head = (
            f"{len(self.groups)} duplicate group{'s' if len(self.groups) != 1 else ''} ({exact} exact, "
            f"{len(self.groups) - exact} near) over {n_files} image{'s' if n_files != 1 else ''}"
        )
        return "; ".join([head, *(r.sentence for r in self.repeats)]) + "."


class _Union:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _near_pairs(words: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
    """Index pairs whose hashes differ by at most `max_distance` bits (pigeonhole: they agree on one of
    max_distance + 1 blocks, so only hashes sharing a block value are compared)."""
    n = words.shape[0]
    if n < 2:
        return []
    bits = np.unpackbits(words.astype(">u8").view(np.uint8), axis=1)  # (n, HASH_BITS), most significant first
    edges = np.linspace(0, HASH_BITS, max_distance + 2).astype(int)
    pairs: set[tuple[int, int]] = set()
    for lo, hi in itertools.pairwise(edges):
        weights = (1 << np.arange(hi - lo - 1, -1, -1, dtype=np.int64)).astype(np.int64)
        keys = bits[:, lo:hi].astype(np.int64) @ weights
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends, strict=True):
            if e - s < 2:
                continue
            members = order[s:e]
            block = words[members]
            for j in range(len(members) - 1):  # row j against the rows after it
                dist = np.bitwise_count(block[j + 1 :] ^ block[j]).sum(axis=1)
                for k in np.flatnonzero(dist <= max_distance):
                    a, b = int(members[j]), int(members[j + 1 + k])
                    pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def find_duplicates(
    hashes: pd.DataFrame,
    logged: pd.DataFrame | None = None,
    *,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    min_share: float = 0.5,
) -> Duplicates:
    """Duplicate groups among `hashes` (HASH_COLUMNS) placed in the run's log `logged` (step, batch, path rows:
    the images each batch logged at each step), and the batches that repeat another's images (`BatchRepeat`,
    kept when they make at least `min_share` of the repeating batch's images from that step on)."""
    ok = hashes[hashes["error"].isna() & hashes["sha256"].notna()].drop_duplicates("path").reset_index(drop=True)
    log = _log_frame(logged)
    if ok.empty:
        return Duplicates(hashes=hashes, max_distance=max_distance)
    # first logged (then by name) first: the group's first path is its original
    first_seen = log.groupby("path")["step"].min() if not log.empty else pd.Series(dtype="int64")
    ok["_first"] = ok["path"].map(first_seen).fillna(np.iinfo(np.int64).max)
    ok = ok.sort_values(["_first", "path"], kind="stable").reset_index(drop=True)
    n = len(ok)
    union = _Union(n)
    by_sha: dict[str, int] = {}
    for i, sha in enumerate(ok["sha256"]):
        if sha in by_sha:
            union.join(by_sha[sha], i)
        else:
            by_sha[sha] = i
    reps = sorted(by_sha.values())  # one image per distinct content
    with_phash = [i for i in reps if isinstance(ok.at[i, "phash"], str)]
    words_all = _words(ok.loc[with_phash, "phash"].tolist())
    for a, b in _near_pairs(words_all, max_distance):
        union.join(with_phash[a], with_phash[b])
    roots = np.array([union.find(i) for i in range(n)])
    members_of: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        members_of.setdefault(int(r), []).append(i)
    log_by_path = {p: g for p, g in log.groupby("path", sort=False)} if not log.empty else {}
    shas: list[Any] = ok["sha256"].tolist()
    phashes: list[Any] = ok["phash"].tolist()
    groups: list[DuplicateGroup] = []
    occ_rows: list[tuple[Any, ...]] = []
    for members in members_of.values():
        paths = [str(ok.at[i, "path"]) for i in members]
        rows = [log_by_path[p] for p in paths if p in log_by_path]
        placed = pd.concat(rows, ignore_index=True) if rows else log.iloc[0:0]
        if len(paths) < 2 and placed["batch"].nunique() < 2:
            continue  # one file, at most one batch: not a duplicate
        exact = len({shas[i] for i in members}) == 1
        dist = [_distance(shas, phashes, members[0], i) for i in members]
        gid = len(groups)
        group = DuplicateGroup(
            group=gid,
            kind="exact" if exact else "near",
            paths=tuple(paths),
            batches=tuple(sorted(int(b) for b in placed["batch"].unique())),
            steps=tuple(sorted(int(s) for s in placed["step"].unique())),
            scopes=_scopes(paths, placed),
            max_distance=max(dist),
        )
        groups.append(group)
        for p, d in zip(paths, dist, strict=True):
            kind = "exact" if d == 0 else "near"
            code = QualityReason.DUPLICATE.value
            if p in log_by_path:
                occ_rows += [
                    (gid, kind, p, int(s), int(b), d, code) for s, b in log_by_path[p][["step", "batch"]].to_numpy()
                ]
            else:
                occ_rows.append((gid, kind, p, pd.NA, pd.NA, d, code))
    occurrences = pd.DataFrame(occ_rows, columns=OCCURRENCE_COLUMNS).astype({"step": "Int64", "batch": "Int64"})
    repeats = _repeats(occurrences, log, groups, min_share)
    return Duplicates(hashes=hashes, groups=groups, occurrences=occurrences, repeats=repeats, max_distance=max_distance)


def find_duplicates_under(
    root: str | os.PathLike,
    paths: Sequence[str],
    logged: pd.DataFrame | None,
    config: DataQualityConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> Duplicates:
    """Hash `paths` under `root` (cached in `cache_dir`) and find their duplicates with the config's distance and
    share (`data_quality.duplicate_hash_distance`, `duplicate_min_share`): what `analyze_run` calls."""
    cfg = config or DataQualityConfig()
    hashes = hash_images(paths, root, cache_dir=cache_dir, max_pixels=cfg.max_image_pixels, progress=progress)
    return find_duplicates(hashes, logged, max_distance=cfg.duplicate_hash_distance, min_share=cfg.duplicate_min_share)


def _distance(shas: list[Any], phashes: list[Any], i: int, j: int) -> int:
    """Hash bits between images i and j: 0 for the same bytes, -1 when one has no perceptual hash."""
    if shas[i] == shas[j]:
        return 0
    if isinstance(phashes[i], str) and isinstance(phashes[j], str):
        return hash_distance(phashes[i], phashes[j])
    return -1


def _log_frame(logged: pd.DataFrame | None) -> pd.DataFrame:
    if logged is None or logged.empty or not {"step", "batch", "path"} <= set(logged.columns):
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "batch": pd.Series(dtype="int64"), "path": []})
    out = logged[["step", "batch", "path"]].dropna()
    return out.astype({"step": "int64", "batch": "int64", "path": "str"}).drop_duplicates()


def _scopes(paths: list[str], placed: pd.DataFrame) -> tuple[Scope, ...]:
    """Where one group repeats (see the module docstring); a file re-logged by its own batch is not a repeat."""
    found: list[Scope] = []
    if not placed.empty:
        if (placed.groupby(["step", "batch"])["path"].nunique() > 1).any():
            found.append("within_batch")
        if (placed.groupby("step")["batch"].nunique() > 1).any():
            found.append("across_batches")
        firsts = placed.groupby(["batch", "path"])["step"].min()  # each (batch, file) counted from its first log
        if len(firsts) > 1 and firsts.nunique() > 1:
            found.append("across_steps")
    unlogged = len(set(paths) - set(placed["path"])) if not placed.empty else len(paths)
    if unlogged and len(paths) > 1 and (not found or unlogged == len(paths)):
        found.append("folder")
    return tuple(found)


def _repeats(
    occurrences: pd.DataFrame, log: pd.DataFrame, groups: list[DuplicateGroup], min_share: float
) -> list[BatchRepeat]:
    """For each pair of batches sharing pictures: the later one repeats the earlier one from its first shared
    step (a tie goes to the lower batch number as the source); kept when the share is at least `min_share`."""
    occ = occurrences.dropna(subset=["batch"])
    if occ.empty:
        return []
    occ = occ.astype({"batch": "int64", "step": "int64"})
    first = occ.groupby(["batch", "group"])["step"].min()  # when each batch first logged each group
    batches_of: dict[int, list[int]] = {}
    for batch, gid in first.index:
        batches_of.setdefault(int(gid), []).append(int(batch))
    pairs: dict[tuple[int, int], set[int]] = {}
    for gid, batches in batches_of.items():
        for i, a in enumerate(batches):
            for b in batches[i + 1 :]:
                pairs.setdefault((min(a, b), max(a, b)), set()).add(gid)
    kind_of = {g.group: g.kind for g in groups}
    found: dict[int, BatchRepeat] = {}
    for (a, b), shared in pairs.items():
        first_a = min(int(first[(a, g)]) for g in shared)
        first_b = min(int(first[(b, g)]) for g in shared)
        source, batch, since = (a, b, first_b) if first_a <= first_b else (b, a, first_a)
        mine = log[(log["batch"] == batch) & (log["step"] >= since)]
        paths = set(mine["path"])
        group_of = occ[(occ["batch"] == batch) & (occ["group"].isin(shared))]
        repeated = paths & set(group_of["path"])
        if not paths or len(repeated) / len(paths) < min_share:
            continue
        repeat = BatchRepeat(
            batch=batch,
            source_batch=source,
            since_step=since,
            n_repeated=len(repeated),
            n_images=len(paths),
            kind="exact" if all(kind_of[g] == "exact" for g in shared) else "near",
            groups=tuple(sorted(shared)),
        )
        best = found.get(batch)
        if best is None or (repeat.n_repeated, -repeat.since_step) > (best.n_repeated, -best.since_step):
            found[batch] = repeat
    return sorted(found.values(), key=lambda r: (r.since_step, r.batch))


def _and(items: Sequence[int]) -> str:
    shown = [str(i) for i in items[:6]] + (["…"] if len(items) > 6 else [])
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
