"""Labelled image generator for the image-quality benchmark and tests.

Renders text pages and text-line crops with PIL fonts shipped by the system (DejaVu, Liberation) and applies
degradations with known parameters (Gaussian/motion blur, noise, JPEG, rotation, downscaling, pasting onto photos),
so every image has ground truth: its rotation in degrees (counter-clockwise positive), whether it is blurred, and
whether it is acceptable.
"""

from __future__ import annotations

import glob
import random
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = [
    "invoice",
    "total",
    "amount",
    "date",
    "receipt",
    "number",
    "customer",
    "address",
    "payment",
    "order",
    "quantity",
    "price",
    "tax",
    "account",
    "balance",
    "reference",
    "signature",
    "delivery",
    "street",
    "city",
    "postal",
    "code",
    "phone",
    "email",
    "item",
    "unit",
    "description",
    "subtotal",
    "discount",
    "shipping",
    "method",
    "bank",
    "transfer",
    "due",
]


def font_paths() -> list[str]:
    """The DejaVu and Liberation TrueType fonts on this machine (Latin text). Other families are left out even when
    installed: Debian's Noto fonts (which `benchmarks/orientation_model.py` trains with) hold hundreds of files,
    most of them for other scripts or symbols, which draw these Latin words as empty boxes, and the generated set
    then depended on which font packages the machine had (seed 21: accept accuracy 0.983 -> 0.945)."""
    paths = sorted(glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True))
    latin = [p for p in paths if Path(p).parent.name in ("dejavu", "liberation")] or paths
    return [p for p in latin if "Mono" not in p or "DejaVuSansMono.ttf" in p] or latin


def _line(rng: random.Random, n: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(n))
    if rng.random() < 0.5:
        text += f" {rng.randint(1, 99999)}.{rng.randint(0, 99):02d}"
    return text.capitalize()


def render_text_page(
    width: int = 640,
    height: int = 480,
    *,
    font: str | None = None,
    size: int = 22,
    seed: int = 0,
    background: int = 255,
    ink: int = 0,
    lines: int | None = None,
) -> np.ndarray:
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
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def rotate_expand(image: np.ndarray, angle: float, border: int = 255) -> np.ndarray:
    """Rotate counter-clockwise by `angle` degrees, growing the canvas so nothing is cut off (as a scanner's deskew
    preview or a cropped, rotated text line looks)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c + 0.5), int(h * c + w * s + 0.5)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(
        image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def motion_blur(image: np.ndarray, length: int, angle: float = 0.0) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    m = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    k = np.asarray(cv2.warpAffine(k, m, (length, length)), dtype=np.float32)
    k /= k.sum()
    return cv2.filter2D(image, -1, k)


def add_noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = image.astype(np.float32) + rng.normal(0, sigma, image.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert out is not None
    return out


# ------------------------------------------------------------------------------------------- labelled set
PHOTO_NAMES = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "coins",
    "moon",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "cat",
)
MIN_SIDE = 100  # the filter's default min_resolution
MAX_ROTATION = 15.0
REFERENCE_SIDE = 1024  # blur is specified at this viewing scale (see `make_sample`)


@dataclass
class Sample:
    """One labelled image. `angle` is the true text skew (None for photos without text)."""

    name: str
    image: np.ndarray  # grey or BGR uint8
    kind: str  # text | text_on_photo | photo
    angle: float | None
    blurred: bool
    accept: bool
    jpeg_quality: int | None = None
    meta: dict = field(default_factory=dict)


def load_photos() -> list[tuple[str, np.ndarray]]:
    """(name, BGR/grey photo) shipped inside scikit-image (no download), or an empty list if it is not installed."""
    try:
        import skimage.data as data
    except ImportError:
        return []
    out = []
    for name in PHOTO_NAMES:
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # some datasets need a download: skip them
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 3:
            img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_RGB2BGR)
        out.append((name, img))
    return out


def _fit(photo: np.ndarray, w: int, h: int, rng: random.Random) -> np.ndarray:
    """Crop a random region of the photo with aspect w:h and resize it to w x h (downscaling where possible)."""
    ph, pw = photo.shape[:2]
    scale = min(pw / w, ph / h) * rng.uniform(0.6 if pw / w >= 1.6 and ph / h >= 1.6 else 1.0, 1.0)
    cw, ch = max(8, int(w * scale)), max(8, int(h * scale))
    x, y = rng.randint(0, pw - cw), rng.randint(0, ph - ch)
    crop = photo[y : y + ch, x : x + cw]
    interp = cv2.INTER_AREA if cw >= w else cv2.INTER_CUBIC
    out = cv2.resize(crop, (w, h), interpolation=interp)
    return out if out.ndim == 3 else cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


def _true_angle(rng: random.Random) -> float:
    """Rotation up to ±30°, with no labels within 1.5° of the ±15° limit (the verdict there is a coin toss)."""
    r = rng.random()
    if r < 0.25:
        return 0.0
    while True:
        a = round(rng.uniform(-30, 30), 2)
        if abs(abs(a) - MAX_ROTATION) >= 1.5:
            return a


def make_sample(i: int, rng: random.Random, fonts: list[str], photos: list[tuple[str, np.ndarray]]) -> Sample:
    kinds = ["text", "text", "text_line", "text_on_photo", "photo"] if photos else ["text", "text_line"]
    kind = rng.choice(kinds)
    longest = rng.choice([320, 480, 640, 800, 1024, 1400, 2000])
    w = longest
    h = int(longest * rng.uniform(0.55, 0.9))
    size = max(10, int(longest * rng.uniform(0.025, 0.05)))
    font = rng.choice(fonts)
    angle: float | None = None
    meta: dict = {"font": font.rsplit("/", 1)[-1], "font_size": size}
    if kind == "photo":
        name, photo = rng.choice(photos)
        meta["photo"] = name
        f = min(1.0, photo.shape[1] / w, photo.shape[0] / h)  # never upscale: that is blur, not a sharp photo
        w, h = max(MIN_SIDE, int(w * f)), max(MIN_SIDE, int(h * f))
        img = _fit(photo, w, h, rng)
    else:
        angle = _true_angle(rng)
        invert = kind in ("text", "text_line") and rng.random() < 0.15
        faded = rng.random() < 0.2
        bg, ink = (255, 0) if not invert else (20, 235)
        if faded:
            ink = int(bg + (ink - bg) * rng.uniform(0.3, 0.5))
        meta.update(inverted=invert, faded=faded)
        if kind == "text":
            page = render_text_page(w, h, font=font, size=size, seed=i, background=bg, ink=ink)
            if rng.random() < 0.3:  # uneven lighting / paper tone
                grad = np.linspace(rng.uniform(0.75, 1.0), 1.0, w, dtype=np.float32)[None, :]
                page = (page.astype(np.float32) * grad).astype(np.uint8)
            img = rotate(page, angle, border=int(page[0, 0]))
        elif kind == "text_line":  # an OCR line crop: 1-3 lines, rotated with the canvas grown to keep the text
            n_lines = rng.choice([1, 1, 2, 3])
            size = max(size, int(w * rng.uniform(0.045, 0.07)))
            h = max(MIN_SIDE, int(n_lines * size * 1.6 + size))
            page = render_text_page(w, h, font=font, size=size, seed=i, background=bg, ink=ink, lines=n_lines)
            img = rotate_expand(page, angle, border=int(page[0, 0]))
            meta.update(font_size=size, lines=n_lines)
        else:
            pw, ph = int(w * rng.uniform(0.55, 0.8)), int(h * rng.uniform(0.55, 0.8))
            page = render_text_page(pw, ph, font=font, size=size, seed=i, background=bg, ink=ink)
            rot = rotate(page, angle, border=0)
            mask = rotate(np.full_like(page, 255), angle, border=0)
            name, photo = rng.choice(photos)
            meta["photo"] = name
            canvas = _fit(photo, w, h, rng)
            x0, y0 = rng.randint(0, w - pw), rng.randint(0, h - ph)
            region = canvas[y0 : y0 + ph, x0 : x0 + pw]
            m = (mask.astype(np.float32) / 255.0)[:, :, None]
            region[:] = (region * (1 - m) + cv2.cvtColor(rot, cv2.COLOR_GRAY2BGR) * m).astype(np.uint8)
            img = canvas
    small = rng.random() < 0.12
    if small:  # downscale below the minimum resolution
        target = rng.randint(40, 95)
        f = target / min(img.shape[:2])
        img = cv2.resize(
            img, (max(1, int(img.shape[1] * f)), max(1, int(img.shape[0] * f))), interpolation=cv2.INTER_AREA
        )
        meta["downscaled"] = True
    # Blur is specified at the viewing scale: σ in px of a 1024-px-wide view, scaled up for larger images.
    view = max(1.0, max(img.shape[:2]) / REFERENCE_SIDE)
    blur_kind = rng.choice(["none", "none", "none", "gauss", "gauss", "motion"])
    blurred = blur_kind != "none"
    if blur_kind == "gauss":
        s = rng.choice([2.0, 2.5, 3.0, 4.0])
        img = gaussian_blur(img, s * view)
        meta["gauss_sigma"] = s
    elif blur_kind == "motion":
        length = rng.choice([9, 13, 17])
        img = motion_blur(img, max(3, round(length * view)) | 1, rng.uniform(0, 180))
        meta["motion_length"] = length
    noise = rng.choice([0, 0, 4, 8, 12])
    if noise:
        img = add_noise(img, noise, seed=i)
        meta["noise"] = noise
    q = rng.choice([None, None, 90, 60, 35])
    if q:
        img = jpeg(img, q)
    hh, ww = img.shape[:2]
    too_small = ww < MIN_SIDE or hh < MIN_SIDE
    too_rotated = angle is not None and abs(angle) > MAX_ROTATION
    accept = not (blurred or too_small or too_rotated)
    return Sample(f"{i:04d}_{kind}", img, kind, angle, blurred, accept, q, meta)


def make_labelled_set(n: int = 400, seed: int = 0) -> list[Sample]:
    """`n` labelled images, deterministic for a seed."""
    rng = random.Random(seed)
    fonts = font_paths()
    photos = load_photos()
    return [make_sample(i, rng, fonts, photos) for i in range(n)]


def write_set(samples: list[Sample], folder) -> list[str]:
    """Write samples as lossless PNG (JPEG damage is already in the pixels) and return the paths in order."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in samples:
        p = folder / f"{s.name}.png"
        cv2.imwrite(str(p), s.image)
        paths.append(str(p))
    return paths
