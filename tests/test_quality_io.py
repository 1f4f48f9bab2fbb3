"""Safe paths under a data root and typed errors for files that are not usable images."""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from analysis.core.errors import ImageLoadError, UnsafePath
from quality.io import load_image, resolve_under_root


@pytest.fixture()
def root(tmp_path):
    data = tmp_path / "data"
    (data / "batch_1").mkdir(parents=True)
    img = np.full((120, 160, 3), 200, np.uint8)
    cv2.imwrite(str(data / "batch_1" / "a.png"), img)
    (tmp_path / "secret.png").write_bytes((data / "batch_1" / "a.png").read_bytes())
    return data


def test_relative_and_absolute_inside_root(root):
    assert resolve_under_root(root, "batch_1/a.png") == (root / "batch_1" / "a.png").resolve()
    assert resolve_under_root(root, str((root / "batch_1" / "a.png").resolve())).name == "a.png"


@pytest.mark.parametrize("bad", ["../secret.png", "batch_1/../../secret.png", "batch_1/../batch_1/a.png", ""])
def test_dotdot_and_empty_are_refused(root, bad):
    with pytest.raises(UnsafePath) as e:
        resolve_under_root(root, bad)
    assert "refused" in str(e.value)


def test_absolute_outside_root_is_refused(root):
    with pytest.raises(UnsafePath, match="outside the data root"):
        resolve_under_root(root, str(root.parent / "secret.png"))
    with pytest.raises(UnsafePath):
        resolve_under_root(root, "/etc/passwd")


def test_symlink_out_is_refused_but_symlink_in_is_fine(root):
    os.symlink(root.parent / "secret.png", root / "escape.png")
    os.symlink(root / "batch_1" / "a.png", root / "inside.png")
    with pytest.raises(UnsafePath, match="symlink"):
        resolve_under_root(root, "escape.png")
    assert resolve_under_root(root, "inside.png") == (root / "batch_1" / "a.png").resolve()
    os.symlink(root.parent, root / "updir")
    with pytest.raises(UnsafePath):
        resolve_under_root(root, "updir/secret.png")


def test_unsafe_path_is_an_image_load_error():
    assert issubclass(UnsafePath, ImageLoadError)


def test_load_png_and_jpeg(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "x.png"), img)
    cv2.imwrite(str(tmp_path / "x.jpg"), img)
    assert np.array_equal(load_image(tmp_path / "x.png"), img)
    assert load_image(tmp_path / "x.jpg").shape == (50, 70, 3)
    cv2.imwrite(str(tmp_path / "g.png"), img[:, :, 0])
    assert load_image(tmp_path / "g.png").shape == (50, 70)


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (a decompression bomb shape), with one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_bad_files_raise_image_load_error(tmp_path):
    img = np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "ok.jpg"), img)
    cv2.imwrite(str(tmp_path / "ok.png"), img)
    cases = {
        "empty.png": b"",
        "text.png": b"hello, I am not an image",
        "trunc.jpg": (tmp_path / "ok.jpg").read_bytes()[:5000],
        "trunc.png": (tmp_path / "ok.png").read_bytes()[:60],
        "bomb.png": _png_header_only(50_000, 50_000),
    }
    expected = {
        "empty.png": "empty",
        "text.png": "not an image",
        "trunc.jpg": "truncated",
        "trunc.png": "corrupt",
        "bomb.png": "pixels",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageLoadError, match=expected[name]):
            load_image(tmp_path / name)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_pixel_cap_is_configurable(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((100, 100), np.uint8))
    assert load_image(tmp_path / "a.png", max_pixels=10_000).shape == (100, 100)
    with pytest.raises(ImageLoadError, match="exceeds"):
        load_image(tmp_path / "a.png", max_pixels=9_999)


def test_a_symlink_loop_is_refused_not_a_traceback(tmp_path):
    from analysis.core.errors import UnsafePath
    from quality.io import resolve_under_root

    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(UnsafePath, match="cannot be resolved"):
        resolve_under_root(tmp_path, "a.png")


def test_display_copies_are_rgb_uint8_shrunk_never_enlarged():
    """The one display conversion of the dashboard (Batches, Compare, duplicate groups): a tiny scan keeps its size,
    a large BGRA uint16 page is shrunk to the longer side asked for, colours come out in RGB order."""
    import numpy as np

    from quality.pixels import display_rgb

    tiny = display_rgb(np.full((26, 80), 200, np.uint8), 320)
    assert tiny.shape == (26, 80, 3) and tiny.dtype == np.uint8
    big = display_rgb(np.zeros((1000, 500, 4), np.uint16), 200)
    assert big.shape == (200, 100, 3) and big.dtype == np.uint8
    blue_bgr = np.zeros((4, 4, 3), np.uint8)
    blue_bgr[..., 0] = 255
    assert display_rgb(blue_bgr, 10)[0, 0].tolist() == [0, 0, 255]
    assert display_rgb(np.random.default_rng(0).random((50, 60, 3)), 100).dtype == np.uint8
