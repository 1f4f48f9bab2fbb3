"""Small JPEG data URIs of the worst images, for the HTML report, inside a total byte budget."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.core.errors import ImageLoadError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

__all__ = [
    "THUMBNAILS_MAX_BYTES",
    "THUMBNAIL_QUALITY",
    "THUMBNAIL_SIDE",
    "Thumbnail",
    "make_thumbnails",
]

THUMBNAIL_SIDE = 160  # px, longest side
THUMBNAIL_QUALITY = 70  # JPEG quality
THUMBNAILS_MAX_BYTES = 1_000_000  # all thumbnails together (JPEG bytes; ~1.33 MB as base64)


@dataclass
class Thumbnail:
    """A small JPEG of one of the worst images, embedded in the HTML as a data URI."""

    path: str
    batch: int | None
    reasons: list[str]
    data_uri: str
    caption: str


def _load_rgb(data_dir: Path, rel: str) -> np.ndarray:
    """An 8-bit RGB array of an image confined to `data_dir` (the project's safe loader: typed errors)."""
    from quality import io as qio

    arr = qio.load_image(qio.resolve_under_root(data_dir, rel))
    if arr.dtype != np.uint8:
        top = float(np.nanmax(arr)) if arr.size else 0.0
        arr = (arr.astype("float64") * (255.0 / top if top > 0 else 0.0)).clip(0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.stack([arr] * 3, axis=-1)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1])  # OpenCV BGR -> RGB


def _jpeg(img: Image, max_bytes: int) -> bytes:
    """The image as JPEG, stepping quality then size down until it fits `max_bytes` (or the last step)."""
    steps = [(THUMBNAIL_SIDE, THUMBNAIL_QUALITY), (THUMBNAIL_SIDE, 50), (120, 45), (96, 40)]
    data = b""
    for side, quality in steps:
        im = img.copy()
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality, optimize=True)
        data = buf.getvalue()
        if len(data) <= max_bytes:
            break
    return data


def make_thumbnails(
    data_dir: Path, rows: list[dict[str, Any]], total_bytes: int = THUMBNAILS_MAX_BYTES
) -> list[Thumbnail]:
    """Small JPEG data URIs of the given quality rows; unreadable images are skipped, never fatal.

    Each thumbnail gets an equal share of `total_bytes` (JPEG bytes), so 100 noisy photos cannot blow the HTML
    size budget: a thumbnail over its share is re-encoded at lower quality, then smaller."""
    from PIL import Image

    share = max(total_bytes // max(len(rows), 1), 2_000)
    thumbs = []
    for row in rows:
        try:
            img = Image.fromarray(_load_rgb(data_dir, row["path"]))
        except (ImageLoadError, OSError, ValueError):
            continue
        uri = "data:image/jpeg;base64," + base64.b64encode(_jpeg(img, share)).decode("ascii")
        caption = "; ".join(row.get("reasons") or []) or "rejected"
        thumbs.append(
            Thumbnail(
                path=row["path"],
                batch=row.get("batch"),
                reasons=list(row.get("reasons") or []),
                data_uri=uri,
                caption=caption,
            )
        )
    return thumbs
