"""Safe image loading: paths confined to a data root, a pixel-count cap, and typed errors for bad files."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from analysis.core.config import DataQualityConfig
from analysis.core.errors import ImageLoadError, UnsafePath

DEFAULT_MAX_PIXELS: int = DataQualityConfig().max_image_pixels
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm", ".pnm", ".jp2"}
)


def resolve_under_root(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """The real path of `path` (relative to `root`, or absolute inside it); `UnsafePath` if it escapes `root`.

    Refused: any `..` component, absolute paths outside the root, and symlinks whose target lies outside the root.
    """
    raw = os.fspath(path)
    if not raw or "\x00" in raw:
        raise UnsafePath(f"refused image path {raw!r}: empty or contains a NUL byte")
    root_real = Path(root).resolve()
    p = Path(raw)
    if ".." in p.parts:
        raise UnsafePath(f"refused image path {raw!r}: '..' is not allowed (paths must stay under {root_real})")
    candidate = p if p.is_absolute() else root_real / p
    try:
        real = candidate.resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13), too many levels
        raise UnsafePath(f"refused image path {raw!r}: cannot be resolved ({exc})") from None
    if not real.is_relative_to(root_real):
        why = "a symlink pointing" if not p.is_absolute() else "an absolute path"
        raise UnsafePath(f"refused image path {raw!r}: {why} outside the data root {root_real}")
    return real


def _truncated_jpeg(data: bytes) -> bool:
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file as OpenCV does (grey or BGR, original bit depth, EXIF orientation applied).

    Raises `ImageLoadError` for a missing, zero-byte, truncated, corrupt or non-image file, and for images with more
    than `max_pixels` pixels (decompression bombs), checked from the header before anything is decoded.
    """
    cap = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageLoadError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{p}: is a directory, not an image") from None
    except OSError as exc:
        raise ImageLoadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageLoadError(f"{p}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p) as im:
                w, h = im.size
                fmt = im.format
    except Image.DecompressionBombError:
        raise ImageLoadError(f"{p}: too many pixels (decompression bomb), limit {cap:,}") from None
    except Exception:  # PIL raises many types for non-images (UnidentifiedImageError, SyntaxError, ...)
        raise ImageLoadError(f"{p}: not an image or unreadable header") from None
    if w * h > cap:
        raise ImageLoadError(f"{p}: {w}x{h} = {w * h:,} pixels exceeds the limit of {cap:,} (decompression bomb?)")
    if w <= 0 or h <= 0:
        raise ImageLoadError(f"{p}: image has no pixels ({w}x{h})")
    if fmt == "JPEG" and _truncated_jpeg(data):
        raise ImageLoadError(f"{p}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if img is None:
        img = _load_with_pil(p, cap)
    if img.shape[0] != h and img.shape[1] != w and img.shape[0] != w:
        raise ImageLoadError(f"{p}: decoded size {img.shape[1]}x{img.shape[0]} does not match header {w}x{h}")
    return img


def _load_with_pil(p: Path, cap: int) -> np.ndarray:
    """Fallback decoder for formats OpenCV lacks; PIL raises on truncated data."""
    saved = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    return np.asarray(im).astype(np.uint16)
                rgb = im.convert("L" if im.mode in ("1", "L", "LA", "P") and _is_grey(im) else "RGB")
                arr = np.asarray(rgb)
    except Exception as exc:
        raise ImageLoadError(f"{p}: corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    return arr


def _is_grey(im: Image.Image) -> bool:
    return im.mode in ("1", "L", "LA")


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether the name looks like an image (by suffix); used by folder scans."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
