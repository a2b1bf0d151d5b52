from __future__ import annotations

import cv2
import numpy as np
import pytest

from detaug.io import images as I
from detaug.io.images import (
    ImageCache,
    ImageError,
    decode_image,
    inspect_image,
    probe_header,
    read_image,
    resize_long_side,
    resized_shape,
    to_rgb8,
)


def quadrants(h: int = 32, w: int = 48) -> np.ndarray:
    """RGB image with four flat quadrants of different colours (16-px aligned for JPEG)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (220, 20, 20)
    img[: h // 2, w // 2 :] = (20, 220, 20)
    img[h // 2 :, : w // 2] = (20, 20, 220)
    img[h // 2 :, w // 2 :] = (220, 220, 220)
    return img


# EXIF orientation -> how a viewer displays the stored pixels a (TIFF/EXIF 2.3 spec).
ORIENT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("endian", ["MM", "II"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, helpers, orientation, endian):
    stored = quadrants()
    data = helpers.jpeg_with_orientation(stored, orientation, endian)
    path = helpers.write(tmp_path / f"o{orientation}.jpg", data)
    out = read_image(path)
    ref = np.ascontiguousarray(ORIENT[orientation](stored))
    assert out.shape == ref.shape
    assert np.abs(out.astype(int) - ref).mean() < 4  # JPEG noise only; a wrong rotation is ~100
    head = probe_header(data)
    assert head is not None and head.orientation == orientation
    assert (head.height, head.width) == out.shape[:2]
    assert inspect_image(path).height == out.shape[0]


def test_output_is_rgb_uint8_contiguous(helpers):
    rgb = np.zeros((12, 14, 3), np.uint8)
    rgb[..., 0] = 200  # red
    out = decode_image(helpers.encode(rgb, ".png"))
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.shape == (12, 14, 3)
    assert out[0, 0].tolist() == [200, 0, 0]


def test_jpeg_decodes_to_the_pixels_of_opencvs_bgr_decode(helpers):
    """Colour and grey JPEGs (decoded to RGB by libjpeg) equal cv2.imdecode's BGR swapped to RGB."""
    rng = np.random.default_rng(3)
    colour = cv2.GaussianBlur(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), (5, 5), 1.5)
    for img in (colour, colour[:, :, 1].copy()):
        data = helpers.encode(img, ".jpg")
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        out = decode_image(data)
        assert out.dtype == np.uint8 and out.flags.c_contiguous and out.shape == (40, 56, 3)
        assert np.array_equal(out, bgr[:, :, ::-1])


def test_jpeg_decodes_the_same_without_opencvs_rgb_flag(helpers, monkeypatch):
    """OpenCV < 4.11 has no IMREAD_COLOR_RGB: JPEGs then decode as BGR and are swapped, same pixels."""
    img = cv2.GaussianBlur(np.random.default_rng(4).integers(0, 256, (24, 40, 3), dtype=np.uint8), (5, 5), 1.5)
    data = helpers.encode(img, ".jpg")
    fast = decode_image(data)
    monkeypatch.setattr(I, "_JPEG_RGB_FLAGS", None)
    assert np.array_equal(decode_image(data), fast)


def test_grey_alpha_16bit(helpers):
    grey = np.arange(12 * 13, dtype=np.uint8).reshape(12, 13)
    out = decode_image(helpers.encode(grey, ".png"))
    assert out.shape == (12, 13, 3) and (out == grey[..., None]).all()

    bgra = np.zeros((12, 13, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 0  # fully transparent
    out = decode_image(helpers.encode(bgra, ".png"))
    assert out.shape == (12, 13, 3) and out[0, 0].tolist() == [30, 20, 10]  # alpha dropped, RGB order

    g16 = np.full((12, 13), 40000, np.uint16)
    out = decode_image(helpers.encode(g16, ".png"))
    assert out.dtype == np.uint8 and (out == round(40000 / 257)).all()

    rgb16 = np.zeros((12, 13, 3), np.uint16)  # helpers.encode takes RGB
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 257 * 7
    out = decode_image(helpers.encode(rgb16, ".png"))
    assert out[0, 0].tolist() == [255, 7, 0]

    bgra16 = np.full((12, 13, 4), 514, np.uint16)
    out = decode_image(helpers.encode(bgra16, ".png"))
    assert out.shape == (12, 13, 3) and (out == 2).all()


def test_to_rgb8_float_and_bad_shape():
    assert to_rgb8(np.full((2, 2), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]
    with pytest.raises(ValueError, match="image"):
        to_rgb8(np.zeros((2, 2, 2), np.uint8))


def test_unicode_path(tmp_path, helpers):
    path = helpers.write(tmp_path / "ñandú" / "图像 1.png", helpers.encode(quadrants()))
    assert read_image(path).shape == (32, 48, 3)
    assert inspect_image(path).width == 48


def test_bomb_rejected_from_header_before_decoding(monkeypatch, helpers):
    data = helpers.png_claiming_size(30000, 20000)
    assert probe_header(data).width == 30000

    def boom(*a, **k):
        raise AssertionError("decoded a decompression bomb")

    monkeypatch.setattr(I.cv2, "imdecode", boom)
    with pytest.raises(ImageError) as e:
        decode_image(data, max_pixels=100_000_000, source="bomb.png")
    assert e.value.kind == "too_large" and "bomb.png" in str(e.value) and "600000000" in str(e.value)


def test_tiff_and_pnm_sizes_come_from_the_header_before_decoding(tmp_path, helpers, monkeypatch):
    data = helpers.encode(np.zeros((100, 100, 3), np.uint8), ".tiff")
    assert probe_header(data) == I.ImageHeader("tiff", 100, 100, 1)
    ppm = helpers.encode(np.zeros((30, 70, 3), np.uint8), ".ppm")
    assert probe_header(ppm) == I.ImageHeader("pnm", 30, 70, 1)
    assert decode_image(data, max_pixels=None).shape == (100, 100, 3)
    path = helpers.write(tmp_path / "x.tif", data)
    monkeypatch.setattr(I.cv2, "imdecode", lambda *a, **k: pytest.fail("decoded a bomb"))
    with pytest.raises(ImageError, match="too_large"):
        decode_image(data, max_pixels=5000)
    with pytest.raises(ImageError, match="too_large"):
        inspect_image(path, max_pixels=5000, full_decode=True)


def test_file_without_a_readable_header_is_never_decoded(monkeypatch):
    monkeypatch.setattr(I.cv2, "imdecode", lambda *a, **k: pytest.fail("decoded without a header"))
    with pytest.raises(ImageError, match="not_image") as e:
        decode_image(b"GIF89a" + bytes(100), source="x.gif")
    assert "x.gif" in str(e.value) and "not decoded" in str(e.value)


@pytest.mark.parametrize("ext,fmt", [(".jpg", "jpeg"), (".png", "png"), (".bmp", "bmp"), (".webp", "webp")])
def test_probe_header_matches_decoder(helpers, ext, fmt):
    for h, w in [(17, 33), (40, 9)]:
        data = helpers.encode(np.zeros((h, w, 3), np.uint8), ext)
        head = probe_header(data)
        assert head is not None and head.format == fmt and (head.height, head.width) == (h, w)
    lossless = cv2.imencode(".webp", np.zeros((5, 7, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])[1]
    assert (probe_header(lossless.tobytes()).height, probe_header(lossless.tobytes()).width) == (5, 7)


def test_inspect_errors(tmp_path, helpers):
    good = helpers.encode(quadrants(), ".jpg")
    cases = {
        "missing_file": tmp_path / "nope.jpg",
        "empty_file": helpers.write(tmp_path / "empty.jpg", b""),
        "truncated": helpers.write(tmp_path / "trunc.jpg", good[: len(good) // 2]),
        "not_image": helpers.write(tmp_path / "text.jpg", b"this is not an image at all"),
        "unsupported_format": helpers.write(tmp_path / "anim.gif", b"GIF89a..."),
        "too_small": helpers.write(tmp_path / "tiny.png", helpers.encode(np.zeros((5, 40, 3), np.uint8))),
    }
    png = helpers.encode(quadrants(), ".png")
    cases_png = helpers.write(tmp_path / "trunc.png", png[:-20])
    for kind, path in cases.items():
        with pytest.raises(ImageError) as e:
            inspect_image(path)
        assert e.value.kind == kind, (kind, str(e.value))
        assert str(path) in str(e.value)
    with pytest.raises(ImageError, match="truncated"):
        inspect_image(cases_png)
    with pytest.raises(ImageError, match="unreadable"):
        inspect_image(helpers.write(tmp_path / "d.png" / "x", b"").parent)
    assert inspect_image(cases["too_small"], min_side=5).height == 5


def test_truncated_jpeg_found_by_scan(tmp_path, helpers):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    good = helpers.encode(noise, ".jpg")
    # OpenCV 4.x decodes a truncated JPEG into a grey-filled image (5.x fails): the scan's EOI check
    # reports it either way, without decoding.
    with pytest.raises(ImageError, match="truncated"):
        inspect_image(helpers.write(tmp_path / "t.jpg", good[:-100]))
    inspect_image(helpers.write(tmp_path / "ok.jpg", good + b"\x00" * 10))  # padding after EOI is fine


def test_resized_shape_and_resize_long_side():
    img = np.zeros((100, 300, 3), np.uint8)
    out, (sx, sy) = resize_long_side(img, 150)
    assert out.shape == (50, 150, 3) and sx == sy == 0.5
    same, s = resize_long_side(img, None)
    assert same is img and s == (1.0, 1.0)
    assert resized_shape(1, 1000, 64) == (1, 64)  # never a zero side
    out, (sx, sy) = resize_long_side(np.zeros((7, 3, 3), np.uint8), 10)
    assert out.shape == (10, 4, 3) and sx == 4 / 3 and sy == 10 / 7


def test_resize_interpolation_choice():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    down, _ = resize_long_side(img, 30)
    assert np.array_equal(down, cv2.resize(img, (30, 20), interpolation=cv2.INTER_AREA))
    up, _ = resize_long_side(img, 120)
    assert np.array_equal(up, cv2.resize(img, (120, 80), interpolation=cv2.INTER_LINEAR))
    assert up.flags.c_contiguous and down.flags.c_contiguous


def test_image_cache_one_buffer_and_fallbacks():
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(4, 5), (6, 2), (3, 3), (2, 2)]]
    shapes = [im.shape[:2] for im in imgs]
    shapes[3] = (9, 9)  # "file changed": loader returns another shape -> not cached
    errors = []

    def load(i):
        if i == 2:
            raise ImageError("not_image", f"img{i}.png", "broken")
        return imgs[i]

    cache = ImageCache.build(shapes, load, workers=3, progress=False, on_error=lambda i, e: errors.append(i))
    assert cache.buffer.ndim == 1 and cache.buffer.flags.c_contiguous and not cache.buffer.flags.writeable
    assert cache.nbytes == sum(h * w * 3 for h, w in shapes)
    assert np.array_equal(cache.get(0), imgs[0]) and np.array_equal(cache.get(1), imgs[1])
    got = cache.get(0)
    assert np.shares_memory(got, cache.buffer) and got.flags.c_contiguous  # a view, no copy per sample
    with pytest.raises(ValueError, match="read-only"):
        got[:] = 0  # nobody can write into the cache through it
    assert np.array_equal(cache.get(0), imgs[0])
    assert cache.get(2) is None and errors == [2]
    assert cache.get(3) is None


def test_reduced_jpeg_decoding_keeps_labels_exact(tmp_path):
    """A 1280x960 JPEG read for img_size 320 decodes at 1/2 (or less) and matches the full path."""
    import cv2

    from detaug.io.images import jpeg_reduction, probe_header, read_image, resize_long_side

    img = np.full((960, 1280, 3), 30, np.uint8)
    img[200:520, 400:880] = (250, 40, 40)  # a red block, edges on multiples of 8
    p = tmp_path / "big.jpg"
    cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    head = probe_header(p.read_bytes())
    assert jpeg_reduction(head, 320) == 4 and jpeg_reduction(head, 700) == 1
    reduced = read_image(p, min_long_side=320)
    assert reduced.shape == (240, 320, 3)
    full, _ = resize_long_side(read_image(p), 320)
    small, _ = resize_long_side(reduced, 320)
    assert small.shape == full.shape == (240, 320, 3)
    assert np.abs(small.astype(int) - full.astype(int)).mean() < 2.0
    # The block lands where the scaled label says: x 100..220, y 50..130.
    ys, xs = np.nonzero(small[..., 0] > 140)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (100, 50, 220, 130)
