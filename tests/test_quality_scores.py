"""The individual scores: units, direction and robustness claims made in quality/scores.py."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from benchmarks.labelled_images import add_noise, gaussian_blur, jpeg, render_text_page, rotate
from quality import scores as S


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    return render_text_page(640, 480, size=20, seed=11)


def _blobs(seed: int) -> np.ndarray:
    """A textured, text-free 'photo': smoothed random noise."""
    rng = np.random.default_rng(seed)
    f = cv2.GaussianBlur(rng.uniform(0, 255, (480, 640)).astype(np.float32), (0, 0), 4)
    return cv2.normalize(f, np.empty_like(f), 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float01", "bool", "bgra", "int32"])
def test_to_gray_normalises_dtypes_to_uint8(page, dtype):
    img = {
        "uint8": page,
        "uint16": page.astype(np.uint16) * 257,
        "float01": page.astype(np.float64) / 255.0,
        "bool": page > 128,
        "bgra": cv2.cvtColor(page, cv2.COLOR_GRAY2BGRA),
        "int32": page.astype(np.int32),
    }[dtype]
    g = S.to_gray(img)
    assert g.dtype == np.uint8 and g.shape == page.shape
    ref = np.where(page > 128, 255, 0) if dtype == "bool" else page
    assert np.abs(g.astype(int) - ref).max() <= 1


def test_to_gray_rejects_odd_shapes():
    with pytest.raises(ValueError):
        S.to_gray(np.zeros((10, 10, 2), np.uint8))


def test_downscale_uses_an_integer_factor():
    g = np.zeros((1501, 2003), np.uint8)
    small, k = S.downscale(g, 1024)
    assert k == 2 and small.shape == (750, 1001)
    same, k1 = S.downscale(g[:500, :800], 1024)
    assert k1 == 1 and same.shape == (500, 800)


@pytest.mark.parametrize("sigma", [3.0, 8.0, 15.0])
def test_noise_sigma_estimates_added_noise(sigma):
    flat = np.full((300, 400), 128, np.uint8)
    est = S.noise_sigma(add_noise(flat, sigma, seed=2))
    assert est == pytest.approx(sigma, rel=0.2)


def test_blur_score_units_follow_the_definition():
    """100 = an ideal step blurred by σ 1.5 px; 150 = σ 1 px; 50 = σ 3 px (±20% on straight edges)."""
    img = np.zeros((400, 400), np.float32)
    cv2.rectangle(img, (100, 100), (300, 300), 200.0, -1)
    img += 30
    for sigma, expected in [(1.0, 150), (1.5, 100), (3.0, 50)]:
        got = S.blur_score(np.clip(gaussian_blur(img, sigma) + 0.5, 0, 255).astype(np.uint8))
        assert got == pytest.approx(expected, rel=0.2), (sigma, got)


def test_blur_score_ignores_contrast_and_ink(page):
    faded = (255 - (255 - page.astype(np.float32)) * 0.35).astype(np.uint8)
    inverted = 255 - page
    base = S.blur_score(page)
    assert S.blur_score(faded) == pytest.approx(base, rel=0.2)
    assert S.blur_score(inverted) == pytest.approx(base, rel=0.1)
    blurred = gaussian_blur(page, 2.5)
    assert S.blur_score((255 - (255 - blurred.astype(np.float32)) * 0.35).astype(np.uint8)) < 100


def test_blur_is_judged_at_the_viewing_scale():
    """A sharp 2000-px page is sharp; the same page blurred by σ 4 px (σ ≈ 2 px when viewed 1024 px wide) is not."""
    big = render_text_page(2000, 1500, size=60, seed=1)
    assert S.blur_score(big) > 150
    assert S.blur_score(gaussian_blur(big, 4.0)) < 100


def test_noise_and_jpeg_keep_their_verdicts(page):
    assert S.blur_score(add_noise(page, 10, seed=1)) > 100
    assert S.blur_score(jpeg(page, 25)) > 100
    assert S.blur_score(add_noise(gaussian_blur(page, 3.0), 10, seed=1)) < 100


def test_flat_and_empty_images():
    assert S.blur_score(np.zeros((200, 200), np.uint8)) == 0.0
    assert math.isnan(S.rotation_angle(np.zeros((200, 200), np.uint8)))
    assert S.contrast(np.full((50, 50), 90, np.uint8)) == 0.0
    assert S.brightness(np.full((50, 50), 255, np.uint8)) == pytest.approx(1.0)
    assert S.score_from_sigma(float("nan")) == 0.0
    assert S.score_from_sigma(0.01) == S.BLUR_CAP


@pytest.mark.parametrize("seed", [0, 1])
def test_rotation_is_not_invented_on_text_free_textures(seed):
    angle = S.rotation_angle(_blobs(seed))
    assert math.isnan(angle) or abs(angle) < 15


@pytest.mark.parametrize("angle", [-27.0, 12.0])
def test_rotation_of_text_pasted_on_a_busy_background(angle):
    canvas = _blobs(3)
    canvas[100:360, 150:510] = rotate(render_text_page(360, 260, size=18, seed=4), angle)
    r = S.rotation(canvas)
    assert r.angle == pytest.approx(angle, abs=0.3)
    assert 0 < r.confidence <= 1


@pytest.mark.parametrize("case", ["inverted", "faded", "blurred", "noisy", "small"])
def test_rotation_robust_to_degradations(page, case):
    tilted = rotate(page, -9.0)
    img = {
        "inverted": 255 - tilted,
        "faded": (255 - (255 - tilted.astype(np.float32)) * 0.4).astype(np.uint8),
        "blurred": gaussian_blur(tilted, 2.0),
        "noisy": add_noise(tilted, 12, seed=3),
        "small": cv2.resize(
            rotate(render_text_page(640, 480, size=40, lines=4, seed=2), -9.0), (200, 150), interpolation=cv2.INTER_AREA
        ),
    }[case]
    assert S.rotation_angle(img) == pytest.approx(-9.0, abs=0.4)


def test_score_image_columns(page):
    out = S.score_image(cv2.cvtColor(page, cv2.COLOR_GRAY2BGR))
    assert set(out) == {
        "width",
        "height",
        "blur_score",
        "rotation_angle",
        "rotation_confidence",
        "orientation",
        "orientation_confidence",
        "brightness",
        "contrast",
        "noise",
    }
    assert (out["width"], out["height"]) == (640, 480)
    assert 0.0 <= out["brightness"] <= 1.0 and out["contrast"] > 0.9


def test_stored_calibration_matches_the_computed_one():
    """The blur calibration is stored as constants (it costs ~40 ms per process); it must equal a fresh computation,
    so a change to the edge measurement cannot leave a stale table behind."""
    steep, sigmas = S.compute_calibration()
    np.testing.assert_allclose(S._CALIBRATION[0], steep, rtol=1e-6)
    np.testing.assert_array_equal(S._CALIBRATION[1], sigmas)


@pytest.mark.parametrize("shape", [(37, 64), (331, 400), (430, 517), (700, 1003), (1024, 999)])
def test_noise_sigma_samples_the_same_response_as_filtering_the_whole_image(shape):
    """The sampled (strided, separable) response is exactly the full filter's at the sampled pixels, for odd and
    even sides and sampling steps 1, 2, 3, 5 and 7."""
    h, w = shape
    img = add_noise(cv2.resize(_blobs(2), (w, h), interpolation=cv2.INTER_LINEAR), 6, seed=4)
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    full = np.abs(cv2.filter2D(img, cv2.CV_16S, k)[1:-1, 1:-1])
    step = max(1, int(math.sqrt(full.size / 20000)))
    assert S.noise_sigma(img) == float(np.median(full[::step, ::step])) / (0.6745 * 6.0)


def test_rotation_is_deterministic_and_thread_safe(page):
    """Points are sampled with a per-thread generator rewound to one seed: same image, same angle, on any thread."""
    from concurrent.futures import ThreadPoolExecutor

    img = add_noise(rotate(page, 7.0), 6, seed=1)
    first = S.rotation_angle(img)
    with ThreadPoolExecutor(4) as pool:
        angles = list(pool.map(S.rotation_angle, [img] * 8))
    assert angles == [first] * 8
    assert first == pytest.approx(7.0, abs=0.3)


@pytest.mark.parametrize(
    "name",
    ["pyp-habibi_p4_pdfrot0.png", "dedoc-short_lines-2.png", "ed-ocr-ja-text-4.png", "rtess-orientation_reverse.png"],
)
def test_a_page_with_little_ink_is_not_washed_out(name):
    """Real pages of one word or a few short lines (benchmarks/data/images, batches 2-23): under 1 % of their pixels
    are ink, so the 1st and 99th percentiles were both paper and the filter called them "washed out, low contrast
    0.00"."""
    from pathlib import Path

    import cv2

    from quality.filter import ImageQualityFilter

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "images" / "rotation" / name
    stored = cv2.imread(str(path))
    assert stored is not None
    page = cv2.cvtColor(stored, cv2.COLOR_BGR2RGB)
    assert S.contrast(page) >= 0.2
    verdict = ImageQualityFilter().assess_image_quality(page)
    assert not [r for r in verdict["reason_codes"] if r == "contrast"], verdict["reasons"]


def test_noise_on_blank_paper_and_a_low_contrast_page_stay_low_contrast():
    rng = np.random.default_rng(3)
    noisy_blank = np.clip(200 + rng.normal(0, 8, (400, 600)), 0, 255).astype(np.uint8)
    assert S.contrast(noisy_blank) < 0.3 and S.contrast(noisy_blank) == pytest.approx(S.contrast(noisy_blank.T))
    faint = np.full((400, 600), 200, np.uint8)
    faint[100:300:20, 50:550] = 185  # text lines 15 grey levels darker than the paper, 5 % of the pixels
    assert S.contrast(faint) < 0.1
