"""Labelled image generator for the image-quality benchmark and tests.

Renders text pages with PIL fonts shipped by the system (DejaVu, Liberation) and applies degradations with known
parameters (Gaussian/motion blur, noise, JPEG, rotation, downscaling, pasting onto photos), so every image has ground
truth: its rotation in degrees (counter-clockwise positive), whether it is blurred, and whether it is acceptable.
"""

from __future__ import annotations

import glob
import math
import random
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = ("invoice total amount date receipt number customer address payment order quantity price tax "
         "account balance reference signature delivery street city postal code phone email item unit "
         "description subtotal discount shipping method bank transfer due").split()


def font_paths() -> list[str]:
    """TrueType fonts available on this machine (DejaVu / Liberation families)."""
    paths = sorted(glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True))
    return [p for p in paths if "Mono" not in p or "DejaVuSansMono.ttf" in p] or paths


def _line(rng: random.Random, n: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(n))
    if rng.random() < 0.5:
        text += f" {rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"
    return text.capitalize()


def render_text_page(width: int = 640, height: int = 480, *, font: str | None = None, size: int = 22,
                     seed: int = 0, background: int = 255, ink: int = 0, lines: int | None = None) -> np.ndarray:
    """A grey uint8 page of left-aligned text lines (dark ink on a light background by default)."""
    rng = random.Random(seed)
    font = font or font_paths()[0]
    f = ImageFont.truetype(font, size)
    img = Image.new("L", (width, height), background)
    d = ImageDraw.Draw(img)
    margin = max(4, width // 16)
    spacing = int(size * 1.6)
    n = lines if lines is not None else max(1, (height - 2 * margin) // spacing)
    y = max(2, (height - n * spacing) // 2)
    for _ in range(n):
        words = max(2, (width - 2 * margin) // (size * 3))
        text = _line(rng, words)
        while d.textlength(text, font=f) > width - 2 * margin and " " in text:
            text = text.rsplit(" ", 1)[0]
        d.text((margin, y), text, fill=ink, font=f)
        y += spacing
    return np.asarray(img)


def rotate(image: np.ndarray, angle: float, border: int | tuple = 255) -> np.ndarray:
    """Rotate counter-clockwise by `angle` degrees about the centre, keeping the size (replicated/filled border)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def motion_blur(image: np.ndarray, length: int, angle: float = 0.0) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    m = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    k = cv2.warpAffine(k, m, (length, length))
    k /= k.sum()
    return cv2.filter2D(image, -1, k)


def add_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = image.astype(np.float32) + rng.normal(0, sigma, image.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
