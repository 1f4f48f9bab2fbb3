"""`ImageQualityFilter`: the handbook's data-quality filter, thresholds -> `is_acceptable` + reasons.

Each check returns a `QualityFailure`: a `QualityReason` code (grouped and counted by tables and root causes) and
a human message (shown). Results carry both, as `reason_codes` and `reasons`, in the same order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from analysis.core.config import DataQualityConfig
from analysis.core.errors import ImageLoadError
from analysis.core.vocabulary import QualityReason
from quality.io import load_image
from quality.orientation import MIN_ORIENTATION_CONFIDENCE  # below it an orientation is reported but not flagged
from quality.scores import score_image

_DEFAULTS = DataQualityConfig()


@dataclass(frozen=True)
class QualityFailure:
    """One failed check: its code (what tables and root causes group by) and the human message (what people read)."""

    code: QualityReason
    message: str


def resolution_reason(width: int, height: int, min_resolution: tuple[int, int]) -> QualityFailure | None:
    mw, mh = min_resolution
    if width < mw or height < mh:
        return QualityFailure(QualityReason.RESOLUTION, f"resolution {width}x{height} below minimum {mw}x{mh}")
    return None


def rotation_reason(angle: float, max_rotation: float) -> QualityFailure | None:
    if angle is not None and not math.isnan(angle) and abs(angle) > max_rotation:
        return QualityFailure(QualityReason.ROTATION, f"rotated {angle:+.1f}° (more than ±{max_rotation:g}°)")
    return None


def orientation_reason(
    orientation: float | None, confidence: float | None, min_confidence: float = MIN_ORIENTATION_CONFIDENCE
) -> QualityFailure | None:
    """The failure of a page on its side (90/270, degrees CCW) or upside down (180) when that answer is confident."""
    if orientation is None or confidence is None or math.isnan(orientation) or math.isnan(confidence):
        return None
    turned = round(orientation) % 360
    if turned == 0 or confidence < min_confidence:
        return None
    how = "upside down" if turned == 180 else "on its side"
    return QualityFailure(QualityReason.ORIENTATION, f"page {how}: turned {turned}° counter-clockwise")


def blur_reason(blur: float, blur_threshold: float) -> QualityFailure | None:
    if blur < blur_threshold:
        return QualityFailure(
            QualityReason.BLUR, f"blurry: blur score {blur:.0f} below {blur_threshold:g} (higher = sharper)"
        )
    return None


def contrast_reason(contrast: float, brightness: float, min_contrast: float) -> QualityFailure | None:
    if min_contrast > 0 and contrast < min_contrast:
        tone = "too dark, " if brightness < 0.25 else "washed out, " if brightness > 0.8 else ""
        return QualityFailure(QualityReason.CONTRAST, f"{tone}low contrast {contrast:.2f} below {min_contrast:g}")
    return None


def unreadable_reason(error: object) -> QualityFailure:
    """The failure of an image that could not be loaded or scored (`error` is why)."""
    return QualityFailure(QualityReason.UNREADABLE, f"unreadable: {error}")


def image_to_array(image: Any) -> np.ndarray:
    """numpy array (as OpenCV loads it), PIL image, or a path -> numpy array (grey/BGR/BGRA)."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(Path(image))
    if isinstance(image, Image.Image):
        mode = image.mode
        if mode in ("1", "L", "I;16", "I", "F"):
            return np.asarray(image)
        if mode == "RGBA" or mode == "LA" or mode == "P":
            arr = np.asarray(image.convert("RGBA"))
            return arr[:, :, [2, 1, 0, 3]]
        arr = np.asarray(image.convert("RGB"))
        return np.ascontiguousarray(arr[:, :, ::-1])
    raise ImageLoadError(f"unsupported image type {type(image).__name__}: pass a numpy array, PIL image or path")


class ImageQualityFilter:
    """Flags images too small, too rotated, too blurry or too flat for training; keeps the handbook's constructor.

    `blur_threshold` is in `blur_score` units (higher = sharper; 100 = edges as soft as a Gaussian blur of σ 1.5 px).
    `max_rotation` is in degrees of text skew either way. `min_resolution` is (width, height) in pixels.
    """

    def __init__(
        self,
        min_resolution: tuple[int, int] = _DEFAULTS.min_resolution,
        max_rotation: float = _DEFAULTS.max_rotation_degrees,
        blur_threshold: float = _DEFAULTS.blur_threshold,
        min_contrast: float = _DEFAULTS.min_contrast,
        max_pixels: int = _DEFAULTS.max_image_pixels,
    ) -> None:
        if isinstance(min_resolution, int):
            min_resolution = (min_resolution, min_resolution)
        self.min_resolution = (int(min_resolution[0]), int(min_resolution[1]))
        self.max_rotation = float(max_rotation)
        self.blur_threshold = float(blur_threshold)
        self.min_contrast = float(min_contrast)
        self.max_pixels = int(max_pixels)

    @classmethod
    def from_config(cls, cfg: DataQualityConfig) -> ImageQualityFilter:
        return cls(
            min_resolution=cfg.min_resolution,
            max_rotation=cfg.max_rotation_degrees,
            blur_threshold=cfg.blur_threshold,
            min_contrast=cfg.min_contrast,
            max_pixels=cfg.max_image_pixels,
        )

    def failures(self, scores: dict[str, Any]) -> list[QualityFailure]:
        """Every failed check for a dict of scores, in a fixed order (resolution, rotation, orientation, blur,
        contrast)."""
        found = [
            resolution_reason(scores["width"], scores["height"], self.min_resolution),
            rotation_reason(scores["rotation_angle"], self.max_rotation),
            orientation_reason(scores.get("orientation"), scores.get("orientation_confidence")),
            blur_reason(scores["blur_score"], self.blur_threshold),
            contrast_reason(scores["contrast"], scores["brightness"], self.min_contrast),
        ]
        return [f for f in found if f is not None]

    def reasons(self, scores: dict[str, Any]) -> list[str]:
        """The messages of every failed check for a dict of scores, in the order of `failures`."""
        return [f.message for f in self.failures(scores)]

    def assess_image_quality(self, image: Any) -> dict[str, Any]:
        """Scores + `is_acceptable` + `reasons` (messages) + `reason_codes` for a numpy array, PIL image or path.

        `reason_codes` holds the `QualityReason` value of each message, in the same order. A path that cannot be
        loaded raises `ImageLoadError` (a clear, typed error).
        """
        arr = (
            load_image(Path(image), self.max_pixels) if isinstance(image, (str, os.PathLike)) else image_to_array(image)
        )
        if arr.size == 0:
            raise ImageLoadError("empty image (no pixels)")
        result: dict[str, Any] = dict(score_image(arr))
        failures = self.failures(result)
        result["is_acceptable"] = not failures
        result["reasons"] = [f.message for f in failures]
        result["reason_codes"] = [f.code.value for f in failures]
        return result

    def filter_batch(self, images: Iterable[Any]) -> list[Any]:
        """The acceptable images, in order. Images that cannot be loaded are dropped (they are not acceptable)."""
        kept = []
        for img in images:
            try:
                if self.assess_image_quality(img)["is_acceptable"]:
                    kept.append(img)
            except ImageLoadError:
                continue
        return kept

    def __repr__(self) -> str:
        return (
            f"ImageQualityFilter(min_resolution={self.min_resolution}, max_rotation={self.max_rotation:g}, "
            f"blur_threshold={self.blur_threshold:g}, min_contrast={self.min_contrast:g})"
        )
