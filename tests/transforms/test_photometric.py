"""RandomHSV and RandomFlip: exact references, pixel oracles, purity and replay."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug.sample import Sample
from detaug.transforms.photometric import (
    FlipParams,
    HSVParams,
    RandomFlip,
    RandomHSV,
    apply_hsv,
    flip_boxes,
    hsv_luts,
)


def colour(k: int) -> np.ndarray:
    return np.array([1 + k % 250, 200, 1 + (k // 250) % 250], np.uint8)


def painted(rng: np.random.Generator, h: int, w: int, n: int, polygons: bool = True) -> Sample:
    """Black image with n integer boxes painted in unique colours (later ones on top)."""
    x1 = rng.integers(0, w - 2, n)
    y1 = rng.integers(0, h - 2, n)
    x2 = x1 + rng.integers(1, np.maximum(w - x1, 2))
    y2 = y1 + rng.integers(1, np.maximum(h - y1, 2))
    boxes = np.stack([x1, y1, np.minimum(x2, w), np.minimum(y2, h)], 1).astype(np.float64)
    img = np.zeros((h, w, 3), np.uint8)
    for i, (a, b, c, d) in enumerate(boxes.astype(int)):
        img[b:d, a:c] = colour(i)
    polys = None
    if polygons:
        polys = [np.array([[a, b], [c, b], [c, d], [np.nan, np.nan], [a, b], [a, d], [c, d]]) for a, b, c, d in boxes]
    return Sample.create(img, boxes, np.arange(n), rng.uniform(0.1, 1, n), polygons=polys)


def snapshot(s: Sample) -> tuple:
    polys = None if s.polygons is None else tuple(p.tobytes() for p in s.polygons)
    return (s.image.tobytes(), s.image.shape, s.boxes.tobytes(), s.classes.tobytes(), s.weights.tobytes(), polys)


# ----------------------------------------------------------------------------- HSV


def test_hsv_identity():
    rng = np.random.default_rng(0)
    s = painted(rng, 20, 30, 3)
    t = RandomHSV(0.0, 0.0, 0.0)
    p = t.sample_params(rng, s)
    assert p == HSVParams((1.0, 1.0, 1.0))
    out = t.apply(s, p)
    assert out.image.tobytes() == s.image.tobytes() and out.image is not s.image
    np.testing.assert_array_equal(out.boxes, s.boxes)


def test_hsv_luts_match_float64_reference():
    rng = np.random.default_rng(1)
    for _ in range(20):
        g = rng.uniform(0.2, 2.0, 3)
        luts = hsv_luts(g)
        assert luts.shape == (3, 256) and luts.dtype == np.uint8
        for x in range(256):
            assert luts[0, x] == int(np.floor((x + (g[0] - 1) * 180) % 180))
            assert luts[1, x] == int(np.floor(min(x * g[1], 255)))
            assert luts[2, x] == int(np.floor(min(x * g[2], 255)))


def test_hsv_pixels_match_per_pixel_reference():
    """Random pixels: RGB->HSV, float64 per-pixel arithmetic, HSV->RGB."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for _ in range(5):
        g = rng.uniform(0.3, 1.7, 3)
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float64)
        ref = np.stack(
            [np.floor(np.mod(hsv[..., 0] + (g[0] - 1) * 180, 180)), np.floor(np.clip(hsv[..., 1] * g[1], 0, 255)), np.floor(np.clip(hsv[..., 2] * g[2], 0, 255))],
            axis=-1,
        ).astype(np.uint8)
        expected = cv2.cvtColor(ref, cv2.COLOR_HSV2RGB)
        out = apply_hsv(img, g)
        np.testing.assert_array_equal(out, expected)
        assert out.flags.c_contiguous


def test_hsv_value_gain_on_grey_pixels_is_exact():
    """Grey pixels have S = 0, so only the value gain acts: v' = floor(min(v * g, 255))."""
    v = np.arange(256, dtype=np.uint8)
    img = np.repeat(v[None, :, None], 3, axis=2)
    for g in (0.6, 1.0, 1.3):
        out = apply_hsv(img, (1.3, 1.7, g))
        expected = np.floor(np.minimum(v * g, 255)).astype(np.uint8)
        np.testing.assert_array_equal(out[0, :, 0], expected)
        np.testing.assert_array_equal(out[0, :, 1], expected)
        np.testing.assert_array_equal(out[0, :, 2], expected)


def test_hsv_treats_images_as_rgb():
    # RGB blue has hue 120 (OpenCV units); a hue gain of 1.5 shifts it by 90 to 30, yellow.
    # Were the image read as BGR, it would be red (hue 0) and become 90, cyan.
    blue = np.zeros((1, 1, 3), np.uint8)
    blue[..., 2] = 255
    assert apply_hsv(blue, (1.5, 1.0, 1.0)).ravel().tolist() == [255, 255, 0]


def test_hue_shift_is_additive_so_reds_move_too():
    # Pure red has hue 0: a multiplicative gain could never move it; the additive shift does.
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    assert apply_hsv(red, (1.0 + 30 / 180, 1.0, 1.0)).ravel().tolist() != [255, 0, 0]


def test_hsv_params_range_and_replay():
    rng = np.random.default_rng(3)
    s = painted(rng, 16, 16, 2)
    t = RandomHSV(0.1, 0.5, 0.3)
    gains = np.array([t.sample_params(rng, s).gains for _ in range(2000)])
    lo, hi = np.array([0.9, 0.5, 0.7]), np.array([1.1, 1.5, 1.3])
    assert np.all(gains >= lo) and np.all(gains <= hi)
    assert np.all(gains.min(0) < lo + 0.01) and np.all(gains.max(0) > hi - 0.01)
    p = t.sample_params(np.random.default_rng(7), s)
    assert p == t.sample_params(np.random.default_rng(7), s)
    before = snapshot(s)
    assert t.apply(s, p).image.tobytes() == t.apply(s, p).image.tobytes()
    assert snapshot(s) == before


@pytest.mark.parametrize("kwargs, name", [({"hsv_h": -0.1}, "hsv_h"), ({"hsv_s": float("nan")}, "hsv_s"), ({"hsv_v": -1}, "hsv_v")])
def test_hsv_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomHSV(**kwargs)


# ----------------------------------------------------------------------------- flips


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_flip_pixel_oracle(direction):
    """Each object's colour is found again exactly inside its flipped box."""
    rng = np.random.default_rng(4)
    h, w = 23, 37
    boxes = np.array([[1, 2, 9, 7], [20, 10, 36, 22], [5, 15, 12, 23]], np.float64)
    img = np.zeros((h, w, 3), np.uint8)
    for i, (a, b, c, d) in enumerate(boxes.astype(int)):
        img[b:d, a:c] = colour(i)
    s = Sample.create(img, boxes, [0, 1, 2], polygons=[[[a, b], [c, b], [c, d], [a, d]] for a, b, c, d in boxes])
    out = RandomFlip(direction, p=1.0)(s, rng)
    for i in range(3):
        ys, xs = np.nonzero(np.all(out.image == colour(i), axis=2))
        assert out.boxes[i].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        poly = out.polygons[i]
        assert [poly[:, 0].min(), poly[:, 1].min(), poly[:, 0].max(), poly[:, 1].max()] == out.boxes[i].tolist()
    ref = img[:, ::-1] if direction == "horizontal" else img[::-1]
    np.testing.assert_array_equal(out.image, ref)
    assert out.image.flags.c_contiguous


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), direction=st.sampled_from(["horizontal", "vertical"]))
def test_double_flip_is_identity(seed, direction):
    rng = np.random.default_rng(seed)
    s = painted(rng, int(rng.integers(3, 40)), int(rng.integers(3, 40)), int(rng.integers(0, 5)))
    s = s.replace(image=rng.integers(0, 256, s.image.shape, dtype=np.uint8))
    before = snapshot(s)
    t = RandomFlip(direction, p=1.0)
    once = t.apply(s, FlipParams(True))
    twice = t.apply(once, FlipParams(True))
    assert snapshot(twice) == snapshot(s)  # grid coordinates: exact
    assert snapshot(s) == before
    assert np.isnan(once.polygons[0][3]).all() if once.polygons else True
    # Float coordinates: back to within float32 rounding; flipped boxes stay valid.
    fb = rng.uniform(0, 30, (10, 4)).astype(np.float32)
    fb = np.concatenate([np.minimum(fb[:, :2], fb[:, 2:]), np.maximum(fb[:, :2], fb[:, 2:]) + 0.1], 1)
    back = flip_boxes(flip_boxes(fb, 31.0, direction), 31.0, direction)
    np.testing.assert_allclose(back, fb, atol=4e-6)
    flipped = flip_boxes(fb, 31.0, direction)
    assert np.all(flipped[:, 2:] > flipped[:, :2])


def test_flip_probability_and_no_flip():
    rng = np.random.default_rng(5)
    s = painted(rng, 10, 10, 2)
    t = RandomFlip(p=0.3)
    flips = np.array([t.sample_params(rng, s).flip for _ in range(4000)])
    assert abs(flips.mean() - 0.3) < 0.03
    assert not any(RandomFlip(p=0.0).sample_params(rng, s).flip for _ in range(100))
    assert all(RandomFlip(p=1.0).sample_params(rng, s).flip for _ in range(100))
    assert RandomFlip().apply(s, FlipParams(False)) is s


@pytest.mark.parametrize("kwargs, name", [({"direction": "diagonal"}, "direction"), ({"p": 1.5}, "p")])
def test_flip_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomFlip(**kwargs)
