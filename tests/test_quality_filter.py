"""ImageQualityFilter and the scores behind it, on rendered text with known degradations."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image

from analysis.core.config import AnalyzerConfig, DataQualityConfig
from analysis.core.errors import ImageLoadError
from benchmarks.labelled_images import add_noise, gaussian_blur, jpeg, motion_blur, render_text_page, rotate
from data_quality import ImageQualityFilter as HandbookFilter
from quality import ImageQualityFilter
from quality import scores as S


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    return render_text_page(640, 480, size=22, seed=3)


def test_handbook_import_names_and_defaults():
    f = HandbookFilter()
    assert HandbookFilter is ImageQualityFilter
    assert f.min_resolution == (100, 100) and f.max_rotation == 15 and f.blur_threshold == 100
    cfg = DataQualityConfig(min_resolution=[50, 60], max_rotation_degrees=30, blur_threshold=50)
    g = ImageQualityFilter.from_config(cfg)
    assert (g.min_resolution, g.max_rotation, g.blur_threshold) == ((50, 60), 30, 50)


def test_sharp_page_is_acceptable(page):
    r = ImageQualityFilter().assess_image_quality(page)
    assert r["is_acceptable"], r["reasons"]
    assert r["reasons"] == []
    assert (r["width"], r["height"]) == (640, 480)
    assert r["blur_score"] > 130
    assert abs(r["rotation_angle"]) < 0.3
    for key in ("brightness", "contrast", "noise", "rotation_confidence"):
        assert key in r


@pytest.mark.parametrize("sigma", [2.0, 3.0, 5.0])
def test_gaussian_blur_is_flagged(page, sigma):
    r = ImageQualityFilter().assess_image_quality(gaussian_blur(page, sigma))
    assert not r["is_acceptable"]
    assert r["blur_score"] < 100
    assert any("blurry" in x for x in r["reasons"])


def test_blur_score_decreases_with_blur(page):
    values = [S.blur_score(S.to_gray(gaussian_blur(page, s) if s else page)) for s in (0, 1, 2, 3, 4)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("angle", [0.0, 90.0, 45.0])
def test_motion_blur_is_flagged_in_any_direction(page, angle):
    r = ImageQualityFilter().assess_image_quality(motion_blur(page, 11, angle))
    assert r["blur_score"] < 100, r


def test_noise_and_jpeg_do_not_pose_as_sharpness(page):
    blurred_noisy = add_noise(gaussian_blur(page, 2.5), 12, seed=1)
    sharp_noisy = add_noise(page, 12, seed=2)
    assert S.blur_score(S.to_gray(blurred_noisy)) < 100 < S.blur_score(S.to_gray(sharp_noisy))
    assert S.blur_score(S.to_gray(jpeg(page, 30))) > 100


@pytest.mark.parametrize("angle", [-30.0, -12.5, 3.7, 16.0, 29.0])
def test_rotation_is_estimated_counter_clockwise_positive(page, angle):
    r = ImageQualityFilter().assess_image_quality(rotate(page, angle))
    assert r["rotation_angle"] == pytest.approx(angle, abs=0.4)
    assert r["is_acceptable"] == (abs(angle) <= 15)
    if abs(angle) > 15:
        assert any("rotated" in x for x in r["reasons"])


def test_every_failed_check_is_reported(page):
    small = cv2.resize(rotate(page, 25), (180, 70), interpolation=cv2.INTER_AREA)
    bad = gaussian_blur(small, 3)
    r = ImageQualityFilter().assess_image_quality(bad)
    assert not r["is_acceptable"]
    assert any(x.startswith("resolution 180x70") for x in r["reasons"])
    assert any("blurry" in x for x in r["reasons"])
    # one code per message, same order: what tables and root causes group by (never the message text)
    assert len(r["reason_codes"]) == len(r["reasons"])
    assert r["reason_codes"][0] == "resolution" and "blur" in r["reason_codes"]


def test_reason_codes_name_each_check_beside_its_message():
    f = ImageQualityFilter(min_resolution=(100, 100), max_rotation=5, blur_threshold=100, min_contrast=0.1)
    scores = {
        "width": 80,
        "height": 60,
        "rotation_angle": -9.0,
        "blur_score": 20.0,
        "contrast": 0.03,
        "brightness": 0.1,
    }
    failures = f.failures(scores)
    assert [x.code for x in failures] == ["resolution", "rotation", "blur", "contrast"]
    assert [x.message for x in failures] == f.reasons(scores)
    assert failures[-1].message.startswith("too dark, low contrast 0.03")
    assert (
        f.failures({**scores, "width": 200, "height": 200, "rotation_angle": 0.0, "blur_score": 500.0, "contrast": 0.5})
        == []
    )


def test_low_contrast_is_flagged(page):
    faded = (page.astype(np.float32) * 0.05 + 240).astype(np.uint8)
    r = ImageQualityFilter().assess_image_quality(faded)
    assert any("low contrast" in x for x in r["reasons"])
    assert "contrast" in r["reason_codes"]
    assert ImageQualityFilter(min_contrast=0).assess_image_quality(faded)["contrast"] < 0.1


@pytest.mark.parametrize("kind", ["bgr", "bgra", "uint16", "float01", "pil_rgb", "pil_l", "path"])
def test_accepts_every_input_form(page, kind, tmp_path):
    bgr = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    image = {
        "bgr": bgr,
        "bgra": cv2.cvtColor(page, cv2.COLOR_GRAY2BGRA),
        "uint16": page.astype(np.uint16) * 257,
        "float01": page.astype(np.float32) / 255.0,
        "pil_rgb": Image.fromarray(bgr[:, :, ::-1]),
        "pil_l": Image.fromarray(page),
        "path": tmp_path / "p.png",
    }[kind]
    if kind == "path":
        cv2.imwrite(str(image), page)
    ref = ImageQualityFilter().assess_image_quality(page)
    r = ImageQualityFilter().assess_image_quality(image)
    assert r["is_acceptable"]
    assert r["blur_score"] == pytest.approx(ref["blur_score"], rel=0.02)
    assert r["rotation_angle"] == pytest.approx(ref["rotation_angle"], abs=0.05)


def test_filter_batch_keeps_only_acceptable(page, tmp_path):
    bad_file = tmp_path / "broken.png"
    bad_file.write_bytes(b"not a png")
    images = [page, gaussian_blur(page, 3), rotate(page, 28), page[:50, :50], bad_file, page]
    kept = ImageQualityFilter().filter_batch(images)
    assert len(kept) == 2 and all(k is page for k in kept)


def test_bad_inputs_raise_typed_errors(tmp_path):
    f = ImageQualityFilter()
    with pytest.raises(ImageLoadError):
        f.assess_image_quality(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError):
        f.assess_image_quality(object())
    with pytest.raises(ImageLoadError):
        f.assess_image_quality(np.zeros((0, 0), np.uint8))


def test_blank_image_has_no_rotation_and_is_flat():
    r = ImageQualityFilter().assess_image_quality(np.full((200, 200), 255, np.uint8))
    assert math.isnan(r["rotation_angle"])
    assert not r["is_acceptable"]  # no edges at all: blur score 0 and zero contrast


def test_config_default_is_used_by_filter():
    assert ImageQualityFilter().min_contrast == AnalyzerConfig().data_quality.min_contrast
