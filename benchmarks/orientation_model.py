"""Train `quality/orientation_model.npz`: the small network that `quality.orientation.glyph_votes` asks, glyph by
glyph, whether a glyph reads upright or upside down, in any of the scripts below.

    python -m benchmarks.orientation_model [--font-dir DIR ...] [--per-script N] [--hidden H] [--out PATH]

Pages of the passages in `benchmarks/data/glyph_texts/` (one short text per language, written for this project) are
rendered upright with PIL in several fonts and sizes, clean, as scans (blur, noise, low contrast), turned by up to
40°, as light ink on a dark ground and out of focus (a Gaussian of 1.5-3 px); each page goes through the same
stroke mask, glyph finder, levelling and glyph frames as `quality.orientation` reads a page with once it knows the
line direction. Up to N frames per script
(a seeded random choice) train a one-hidden-layer network g (tanh, H units) so that s(x) = g(x) - g(x turned 180°)
is positive for every upright frame: s is antisymmetric by construction (turning the page over negates every
glyph's score), and glyphs that read the same both ways ("o", "x", "n"/"u") learn a score near 0. The loss is the
logistic loss of s, each script weighted equally, with a small L2 penalty; L-BFGS from a seeded start.

Fonts: DejaVu and Liberation (Latin, Cyrillic, Greek, and DejaVu's Hebrew, Georgian and Armenian) and the Noto fonts
of Debian's `fonts-noto-core` and `fonts-noto-cjk` for the other scripts (`apt-get install fonts-noto-core
fonts-noto-cjk`; looked for under /usr/share/fonts and every --font-dir). A script none of whose fonts is found is
left out with a warning; the model file lists the scripts it was trained on (`scripts`).

The real pages of `benchmarks/data/images` are never used here: the model learns from rendered text only, and the
real-image benchmark measures it.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.optimize import minimize

from quality.orientation import FINE_GLYPH_PX, FRAME, ORIENTATION_MODEL, glyph_frames, glyphs, lines_of
from quality.pixels import noise_sigma
from quality.rotation import _stroke_mask

TEXTS = Path(__file__).parent / "data" / "glyph_texts"
PAGE_WIDTH = 600  # below quality.rotation.ROT_SIDE, so the page is read at the size it is drawn
SIZES = (13, 16, 20, 25, 31)
L2 = 1e-4  # weight penalty of the training loss
FONT_DIRS = (Path("/usr/share/fonts"),)

# language -> (script, font file names; the first one found is used for each name)
LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {}
_LATIN_FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "LiberationSans-Regular.ttf", "LiberationSerif-Regular.ttf")
for _lang in ("en", "de", "fr"):
    LANGUAGES[_lang] = ("Latin", _LATIN_FONTS)
for _lang in ("ru", "uk", "bg", "sr"):
    LANGUAGES[_lang] = ("Cyrillic", _LATIN_FONTS)
LANGUAGES["el"] = ("Greek", _LATIN_FONTS)
LANGUAGES["he"] = ("Hebrew", ("NotoSansHebrew-Regular.ttf", "NotoSerifHebrew-Regular.ttf", "DejaVuSans.ttf"))
LANGUAGES["ar"] = ("Arabic", ("NotoNaskhArabic-Regular.ttf", "NotoSansArabic-Regular.ttf"))
LANGUAGES["fa"] = ("Arabic", ("NotoNaskhArabic-Regular.ttf", "NotoSansArabic-Regular.ttf"))
LANGUAGES["hi"] = ("Devanagari", ("NotoSansDevanagari-Regular.ttf", "NotoSerifDevanagari-Regular.ttf"))
LANGUAGES["bn"] = ("Bengali", ("NotoSansBengali-Regular.ttf", "NotoSerifBengali-Regular.ttf"))
LANGUAGES["ta"] = ("Tamil", ("NotoSansTamil-Regular.ttf", "NotoSerifTamil-Regular.ttf"))
LANGUAGES["th"] = ("Thai", ("NotoSansThai-Regular.ttf", "NotoSerifThai-Regular.ttf"))
LANGUAGES["ka"] = ("Georgian", ("NotoSansGeorgian-Regular.ttf", "NotoSerifGeorgian-Regular.ttf", "DejaVuSans.ttf"))
LANGUAGES["hy"] = ("Armenian", ("NotoSansArmenian-Regular.ttf", "NotoSerifArmenian-Regular.ttf", "DejaVuSans.ttf"))
for _lang in ("zh", "ja", "ko"):
    LANGUAGES[_lang] = ("CJK", ("NotoSansCJK-Regular.ttc", "NotoSerifCJK-Regular.ttc"))
RIGHT_TO_LEFT = {"he", "ar", "fa"}
NO_SPACES = {"zh", "ja", "th"}  # broken between characters


def find_font(name: str, dirs: tuple[Path, ...]) -> Path | None:
    for d in dirs:
        hits = sorted(d.rglob(name)) if d.is_dir() else []
        if hits:
            return hits[0]
    return None


def render_page(text: str, font_path: Path, size: int, lang: str) -> np.ndarray:
    """The passage set upright in `font_path` at `size` px on a white page PAGE_WIDTH wide, black ink."""
    font = ImageFont.truetype(str(font_path), size)
    direction = "rtl" if lang in RIGHT_TO_LEFT else None
    img = Image.new("L", (PAGE_WIDTH, 2000), 255)
    draw = ImageDraw.Draw(img)
    words, sep = (list(text), "") if lang in NO_SPACES else (text.split(), " ")
    margin, lines, line = 24, [], ""
    for word in words:
        longer = f"{line}{sep}{word}" if line else word
        if line and draw.textlength(longer, font=font, direction=direction) > PAGE_WIDTH - 2 * margin:
            lines.append(line)
            line = word
        else:
            line = longer
    lines.append(line)
    y = margin
    for line in lines:
        if y > 2000 - 2 * size - margin:
            break
        x = margin
        if direction:
            x = PAGE_WIDTH - margin - int(draw.textlength(line, font=font, direction=direction))
        draw.text((x, y), line, font=font, fill=0, direction=direction)
        y += int(size * 1.6)
    return np.array(img)[: max(y + margin, PAGE_WIDTH)]


def scanned(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The page as a mediocre scan: slight blur, grey paper, weaker ink, sensor noise."""
    import cv2

    g = cv2.GaussianBlur(page, (0, 0), rng.uniform(0.5, 1.1)).astype(np.float32)
    g = g * rng.uniform(0.55, 0.8) + rng.uniform(40, 90) + rng.normal(0.0, rng.uniform(2, 8), g.shape)
    return np.clip(g, 0, 255).astype(np.uint8)


def turned(g: np.ndarray, angle: float, paper: int) -> np.ndarray:
    """`g` turned `angle` degrees CCW (bilinear, canvas grown to keep the page), as a skewed scan is."""
    import cv2

    h, w = g.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c + 1), int(h * c + w * s + 1)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(g, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=paper)


def page_frames(g: np.ndarray, angle: float = 0.0, dark: bool = True) -> np.ndarray:
    """Glyph frames of a grey page whose upright lines run at `angle` degrees CCW, read as `quality.orientation`
    reads it once it knows the line direction (ink dark or light: `dark`); none when its glyphs are small enough
    that the reader would look at a finer image instead."""
    mask = _stroke_mask(g, dark, 0.0, noise_sigma(g))
    found = glyphs(mask)
    if len(found.stats) == 0 or found.size() < FINE_GLYPH_PX:
        return np.zeros((0, 0), np.float32)
    lines = lines_of(found, angle)
    return np.zeros((0, 0), np.float32) if lines is None else glyph_frames(lines, limit=100_000)


def variants(page: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, float, bool]]:
    """(grey image, angle of its lines, dark ink) for one rendered page: clean; a mediocre scan; a scan turned by
    up to 40° either way; light ink on a dark ground (a screenshot in dark mode, a sign); an out-of-focus scan."""
    angle = float(rng.uniform(-40.0, 40.0))
    return [
        (page, 0.0, True),
        (scanned(page, rng), 0.0, True),
        (turned(scanned(page, rng), angle, 255), angle, True),
        (255 - scanned(page, rng), 0.0, False),
        (blurred(page, rng), 0.0, True),
    ]


def blurred(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The page out of focus: a scan blurred by a Gaussian of 1.5-3 px (letters merge at their thin joins)."""
    import cv2

    return scanned(cv2.GaussianBlur(page, (0, 0), rng.uniform(1.5, 3.0)), rng)


def build(font_dirs: tuple[Path, ...], per_script: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(frames of all scripts, each frame's script as an index into the third item, the scripts covered)."""
    rng = np.random.default_rng(seed)
    by_script: dict[str, list[np.ndarray]] = {}
    for lang, (script, names) in LANGUAGES.items():
        text = (TEXTS / f"{lang}.txt").read_text(encoding="utf-8").strip()
        fonts = [p for p in (find_font(n, font_dirs) for n in names) if p is not None]
        if not fonts:
            print(f"warning: no font for {lang} ({script}); left out")
            continue
        for font in fonts:
            for size in SIZES:
                page = render_page(text, font, size, lang)
                for g, angle, dark in variants(page, rng):
                    frames = page_frames(g, angle, dark)
                    if len(frames):
                        by_script.setdefault(script, []).append(frames)
    out, which = [], []
    for i, script in enumerate(sorted(by_script)):
        frames = np.concatenate(by_script[script])
        pick = random.Random(f"{seed}:{script}").sample(range(len(frames)), min(per_script, len(frames)))
        out.append(frames[sorted(pick)])
        which.append(np.full(len(pick), i, np.intp))
        print(f"{script}: {len(frames)} glyph frames, {len(pick)} kept")
    return np.concatenate(out).astype(np.float32), np.concatenate(which), sorted(by_script)


def train(frames: np.ndarray, script_of: np.ndarray, hidden: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of g (see the module doc) fitted to upright `frames` (N, FRAME * FRAME), scripts weighted equally."""
    x = frames.astype(np.float64)
    t = np.ascontiguousarray(x.reshape(-1, FRAME, FRAME)[:, ::-1, ::-1]).reshape(len(x), -1)
    weight = 1.0 / np.bincount(script_of)[script_of]
    weight /= weight.sum()
    d = x.shape[1]

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return p[: d * hidden].reshape(d, hidden), p[d * hidden : d * hidden + hidden], p[d * hidden + hidden :]

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        w1, b1, w2 = unpack(p)
        zx, zt = np.tanh(x @ w1 + b1), np.tanh(t @ w1 + b1)
        s = (zx - zt) @ w2
        ds = -weight / (1.0 + np.exp(s))  # d loss / d s
        dzx, dzt = np.outer(ds, w2) * (1 - zx**2), -np.outer(ds, w2) * (1 - zt**2)
        grad = np.concatenate([(x.T @ dzx + t.T @ dzt).ravel(), dzx.sum(0) + dzt.sum(0), (zx - zt).T @ ds])
        return float(weight @ np.logaddexp(0.0, -s) + L2 * (p @ p)), grad + 2.0 * L2 * p

    start = np.random.default_rng(seed).normal(0.0, 0.1, d * hidden + 2 * hidden)
    fit = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    w1, b1, w2 = unpack(fit.x)
    print(f"trained: loss {fit.fun:.4f} after {fit.nit} iterations")
    return {"w1": w1.astype(np.float32), "b1": b1.astype(np.float32), "w2": w2.astype(np.float32)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--font-dir", type=Path, action="append", default=[], help="more folders to look for fonts in")
    ap.add_argument("--per-script", type=int, default=20_000, help="frames per script at most")
    ap.add_argument("--hidden", type=int, default=64, help="hidden units")
    ap.add_argument("--out", type=Path, default=ORIENTATION_MODEL)
    args = ap.parse_args()
    frames, script_of, scripts = build((*FONT_DIRS, *args.font_dir), args.per_script)
    weights = train(frames, script_of, args.hidden)
    np.savez_compressed(args.out, w1=weights["w1"], b1=weights["b1"], w2=weights["w2"], scripts=np.array(scripts))
    print(f"{len(frames)} frames of {len(scripts)} scripts -> {args.out}")


if __name__ == "__main__":
    main()
