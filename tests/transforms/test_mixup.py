"""MixUp: pixel blend vs. weights, union of objects, canvas, params and purity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug.sample import Sample
from detaug.transforms.mixup import (
    LAM_EPS,
    MixUp,
    MixUpParams,
    clip_lam,
    mixup_pixels,
    mixup_weights,
    pad_to_canvas,
)


def random_sample(rng: np.random.Generator, h: int, w: int, n: int, polygons: bool = True, cls0: int = 0) -> Sample:
    x1 = rng.uniform(0, w - 4, n)
    y1 = rng.uniform(0, h - 4, n)
    x2 = np.minimum(x1 + rng.uniform(2, w / 2, n), w)
    y2 = np.minimum(y1 + rng.uniform(2, h / 2, n), h)
    boxes = np.stack([x1, y1, x2, y2], 1)
    polys = [np.array([[a, b], [c, b], [c, d], [a, d]]) for a, b, c, d in boxes] if polygons else None
    return Sample.create(
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        boxes,
        np.arange(cls0, cls0 + n),
        rng.uniform(0.2, 1.0, n),
        polygons=polys,
        meta={"path": f"img{cls0}.jpg"},
    )


def snapshot(s: Sample) -> tuple:
    polys = None if s.polygons is None else tuple(p.tobytes() for p in s.polygons)
    return (s.image.tobytes(), s.image.shape, s.boxes.tobytes(), s.classes.tobytes(), s.weights.tobytes(), polys)


# ----------------------------------------------------------------------------- pixels


def test_pixels_match_float64_reference_and_spec():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    for lam in [0.001, 0.25, 0.5, 0.6180339, 0.999]:
        out = mixup_pixels(a, b, lam)
        assert out.dtype == np.uint8 and out.flags.c_contiguous and out.shape == a.shape
        ref64 = np.floor(lam * a.astype(np.float64) + (1 - lam) * b.astype(np.float64) + 0.5)
        assert np.abs(out.astype(np.int64) - ref64).max() <= 1  # float32 vs float64 at .5 ties
        assert (out == ref64).mean() > 0.999
        # The spec's exact float32 recipe.
        l32 = np.float32(lam)
        ref32 = np.floor(l32 * a.astype(np.float32) + (np.float32(1) - l32) * b.astype(np.float32) + np.float32(0.5))
        np.testing.assert_array_equal(out, ref32.astype(np.uint8))


def test_pixels_extremes_stay_in_range():
    a = np.full((2, 2, 3), 255, np.uint8)
    for lam in np.linspace(0, 1, 101):
        assert mixup_pixels(a, a, float(lam)).min() == 255
        assert mixup_pixels(a * 0, a * 0, float(lam)).max() == 0


def test_mixup_pixels_rejects_other_dtypes():
    with pytest.raises(ValueError, match="a: expected a uint8"):
        mixup_pixels(np.zeros((2, 2, 3), np.float32), np.zeros((2, 2, 3), np.uint8), 0.5)
    with pytest.raises(ValueError, match="b: expected a uint8"):
        mixup_pixels(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint16), 0.5)


def test_mixup_pixels_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes"):
        mixup_pixels(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8), 0.5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), alpha=st.sampled_from([0.3, 1.5, 32.0]))
def test_weights_recover_the_pixel_blend(seed: int, alpha: float):
    """lam solved from the pixels by least squares equals the lam in the weights."""
    rng = np.random.default_rng(seed)
    a, b = random_sample(rng, 40, 50, 3, cls0=0), random_sample(rng, 40, 50, 2, cls0=10)
    t = MixUp(alpha, alpha)
    out = t(a, [b], rng)
    lam_a = out.weights[:3] / a.weights
    lam_b = out.weights[3:] / b.weights
    np.testing.assert_allclose(lam_a, lam_a[0], rtol=1e-6)
    np.testing.assert_allclose(lam_a[0] + lam_b, 1.0, atol=1e-6)
    da = a.image.astype(np.float64) - b.image.astype(np.float64)
    db = out.image.astype(np.float64) - b.image.astype(np.float64)
    lam_px = float((da * db).sum() / (da * da).sum())
    # out = lam * a + (1 - lam) * b + e with |e| <= 0.5 per pixel (rounding; lam itself is exact in float32),
    # so the least-squares lam is off by (da . e) / (da . da), at most 0.5 * sum|da| / sum da^2.
    bound = 0.5 * np.abs(da).sum() / (da * da).sum() + 1e-6
    assert abs(lam_px - float(lam_a[0])) <= bound
    assert bound < 1e-2  # random images: the check stays sharp (at most 4e-3 over 1,200 seeds)
    assert np.all(out.weights > 0) and np.all(out.weights <= 1)


# ----------------------------------------------------------------------------- objects


def test_union_of_objects_in_order_with_polygons():
    rng = np.random.default_rng(2)
    a, b = random_sample(rng, 30, 30, 3, cls0=0), random_sample(rng, 30, 30, 4, cls0=10)
    out = MixUp().apply(a, [b], MixUpParams(0.3))
    np.testing.assert_array_equal(out.boxes, np.concatenate([a.boxes, b.boxes]))
    assert out.classes.tolist() == [0, 1, 2, 10, 11, 12, 13]
    np.testing.assert_array_equal(out.weights[:3], a.weights * np.float32(0.3))
    np.testing.assert_array_equal(out.weights[3:], b.weights * (np.float32(1) - np.float32(0.3)))
    assert out.polygons is not None and len(out.polygons) == 7
    for p, q in zip(out.polygons, a.polygons + b.polygons, strict=True):
        np.testing.assert_array_equal(p, q)
    assert out.meta["path"] == "img0.jpg"
    # Polygons are dropped unless both sides have them.
    b_np = b.replace(polygons=None)
    assert MixUp().apply(a, [b_np], MixUpParams(0.3)).polygons is None
    assert MixUp().apply(b_np, [a], MixUpParams(0.3)).polygons is None


def test_empty_samples():
    rng = np.random.default_rng(3)
    a = Sample.create(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    b = random_sample(rng, 8, 8, 2, polygons=False)
    out = MixUp().apply(a, [b], MixUpParams(0.5))
    assert out.num_objects == 2 and out.boxes.dtype == np.float32 and out.classes.dtype == np.int64
    out = MixUp().apply(a, [a], MixUpParams(0.5))
    assert out.num_objects == 0 and out.boxes.shape == (0, 4)


def test_mixup_weights_helper():
    w = mixup_weights(np.array([1.0, 0.5], np.float32), np.array([1.0], np.float32), 0.25)
    assert w.dtype == np.float32 and w.tolist() == [0.25, 0.125, 0.75]


# ----------------------------------------------------------------------------- canvas


def test_different_sizes_go_on_a_grey_canvas():
    rng = np.random.default_rng(4)
    a = random_sample(rng, 20, 30, 2)  # H 20, W 30
    b = random_sample(rng, 25, 10, 2, cls0=5)  # H 25, W 10
    lam = 0.4
    out = MixUp().apply(a, [b], MixUpParams(lam))
    assert out.size == (25, 30)
    grey_a = pad_to_canvas(a.image, 25, 30)
    grey_b = pad_to_canvas(b.image, 25, 30)
    np.testing.assert_array_equal(out.image, mixup_pixels(grey_a, grey_b, lam))
    # Where only a exists it is blended with 114; where neither exists the result is 114.
    np.testing.assert_array_equal(out.image[:20, 10:], mixup_pixels(a.image[:, 10:], np.full_like(a.image[:, 10:], 114), lam))
    assert (out.image[20:, 10:] == 114).all()
    np.testing.assert_array_equal(out.image[20:, :10], mixup_pixels(np.full_like(b.image[20:], 114), b.image[20:], lam))
    np.testing.assert_array_equal(out.boxes, np.concatenate([a.boxes, b.boxes]))  # coordinates kept


def test_pad_to_canvas_crops_and_returns_same_array_when_sized():
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert pad_to_canvas(img, 2, 4) is img
    out = pad_to_canvas(img, 3, 2)
    np.testing.assert_array_equal(out[:2], img[:, :2])
    assert (out[2] == 114).all()


# ----------------------------------------------------------------------------- params


def test_lam_distribution_and_clipping():
    rng = np.random.default_rng(5)
    s = random_sample(rng, 8, 8, 1)
    lams = np.array([MixUp(32.0, 32.0).sample_params(rng, s, [s]).lam for _ in range(4000)])
    assert abs(lams.mean() - 0.5) < 0.005
    assert abs(lams.std() - np.sqrt(32 * 32 / (64**2 * 65))) < 0.005
    lams = np.array([MixUp(0.02, 0.02).sample_params(rng, s, [s]).lam for _ in range(400)])
    assert lams.min() == LAM_EPS and lams.max() == 1 - LAM_EPS
    assert clip_lam(-3) == LAM_EPS and clip_lam(0.3) == 0.3


@pytest.mark.parametrize("kwargs, name", [({"alpha": 0}, "alpha"), ({"beta": -1.0}, "beta"), ({"alpha": float("nan")}, "alpha")])
def test_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MixUp(**kwargs)


def test_apply_rejects_wrong_partner_count():
    s = random_sample(np.random.default_rng(6), 8, 8, 1)
    with pytest.raises(ValueError, match="partner"):
        MixUp().apply(s, [s, s], MixUpParams(0.5))
    with pytest.raises(ValueError, match="lam"):
        MixUp().apply(s, [s], MixUpParams(1.5))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_pure_aligned_and_replayable(seed: int):
    rng = np.random.default_rng(seed)
    a = random_sample(rng, int(rng.integers(8, 40)), int(rng.integers(8, 40)), int(rng.integers(0, 4)))
    b = random_sample(rng, int(rng.integers(8, 40)), int(rng.integers(8, 40)), int(rng.integers(0, 4)), cls0=10)
    before = snapshot(a), snapshot(b)
    t = MixUp()
    p = t.sample_params(np.random.default_rng(seed), a, [b])
    assert p == t.sample_params(np.random.default_rng(seed), a, [b])
    out1, out2 = t.apply(a, [b], p), t.apply(a, [b], p)
    assert snapshot(out1) == snapshot(out2)
    assert (snapshot(a), snapshot(b)) == before
    n = out1.num_objects
    assert n == a.num_objects + b.num_objects
    assert out1.classes.shape == out1.weights.shape == (n,) and len(out1.polygons) == n
    assert out1.image.flags.c_contiguous
    assert np.all((out1.weights > 0) & (out1.weights <= 1))
    h, w = out1.size
    bx = out1.boxes
    assert np.all((bx[:, 0] >= 0) & (bx[:, 2] <= w) & (bx[:, 1] >= 0) & (bx[:, 3] <= h))
    assert np.all((bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1]))
