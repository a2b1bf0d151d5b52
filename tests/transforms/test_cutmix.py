"""CutMix: pixel oracles for weights and boxes, brute-force box-minus-rect, polygons, params."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug.boxes import box_intersection
from detaug.polygons import clip_polygons, split_rings
from detaug.sample import Sample
from detaug.transforms.cutmix import (
    CutMix,
    CutMixParams,
    cut_boxes,
    cut_polygons,
    paste_boxes,
    paste_pixels,
    sample_rect,
)

# ----------------------------------------------------------------------------- helpers


def colour(k: int) -> np.ndarray:
    """A unique non-background RGB colour for object k (k < 2**16)."""
    return np.array([1 + k % 250, 1 + (k // 250) % 250, 77], np.uint8)


def tiled_boxes(rng: np.random.Generator, h: int, w: int, cell: int, float_coords: bool) -> np.ndarray:
    """Non-overlapping boxes, one random box per grid cell (some cells empty)."""
    out = []
    for y in range(0, h - cell + 1, cell):
        for x in range(0, w - cell + 1, cell):
            if rng.random() < 0.3:
                continue
            if float_coords:
                x1, y1 = x + rng.uniform(0, cell / 2), y + rng.uniform(0, cell / 2)
                x2, y2 = x1 + rng.uniform(2, cell / 2), y1 + rng.uniform(2, cell / 2)
            else:
                x1, y1 = x + rng.integers(0, cell // 2), y + rng.integers(0, cell // 2)
                x2, y2 = x1 + rng.integers(1, cell // 2 + 1), y1 + rng.integers(1, cell // 2 + 1)
            out.append([x1, y1, x2, y2])
    return np.array(out, np.float64).reshape(-1, 4)


def painted_sample(boxes: np.ndarray, h: int, w: int, cls0: int, polygons: bool = False) -> Sample:
    """Black image; object i painted in colour(cls0 + i) on the pixels whose centres lie in its box."""
    img = np.zeros((h, w, 3), np.uint8)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        img[(xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)] = colour(cls0 + i)
    polys = [np.array([[a, b], [c, b], [c, d], [a, d]]) for a, b, c, d in boxes] if polygons else None
    n = len(boxes)
    return Sample.create(img, boxes, np.arange(cls0, cls0 + n), np.linspace(1.0, 0.5, n), polygons=polys)


def colour_mask(image: np.ndarray, k: int) -> np.ndarray:
    return np.all(image == colour(k), axis=2)


def mask_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def snapshot(s: Sample) -> tuple:
    polys = None if s.polygons is None else tuple(p.tobytes() for p in s.polygons)
    return (s.image.tobytes(), s.boxes.tobytes(), s.classes.tobytes(), s.weights.tobytes(), polys)


def random_rect(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    x1, x2 = sorted(rng.choice(w + 1, 2, replace=False).tolist())
    y1, y2 = sorted(rng.choice(h + 1, 2, replace=False).tolist())
    return x1, y1, x2, y2


def shoelace(poly: np.ndarray) -> float:
    total = 0.0
    for ring in split_rings(poly):
        if len(ring) >= 3:
            x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
            total += abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2
    return total


# ----------------------------------------------------------------------------- pixel oracles


@pytest.mark.parametrize("seed", range(6))
def test_weights_and_boxes_match_measured_pixels_integer_boxes(seed: int):
    """Integer boxes and rect: every visible fraction and box is exact in pixels."""
    rng = np.random.default_rng(seed)
    h, w = 60, 80
    a = painted_sample(tiled_boxes(rng, h, w, 20, False), h, w, cls0=0)
    b = painted_sample(tiled_boxes(rng, h, w, 20, False), h, w, cls0=1000)
    rect = random_rect(rng, h, w)
    t = CutMix(min_visible=0.3)
    out = t.apply(a, [b], CutMixParams(0.5, rect))
    # Pixels: partner inside the rect, base outside.
    x1, y1, x2, y2 = rect
    np.testing.assert_array_equal(out.image[y1:y2, x1:x2], b.image[y1:y2, x1:x2])
    outside = np.ones((h, w), bool)
    outside[y1:y2, x1:x2] = False
    np.testing.assert_array_equal(out.image[outside], a.image[outside])

    src = {int(c): (s, i) for s in (a, b) for i, c in enumerate(s.classes)}
    kept = {int(c): j for j, c in enumerate(out.classes)}
    for k, (s, i) in src.items():
        visible_px = colour_mask(out.image, k).sum()
        frac = visible_px / colour_mask(s.image, k).sum()
        if frac >= 0.3:
            j = kept[k]
            assert out.weights[j] == pytest.approx(s.weights[i] * frac, rel=1e-6)
            assert out.boxes[j].tolist() == mask_bbox(colour_mask(out.image, k))
        else:
            assert k not in kept
    # Order: kept base objects, then kept partner objects, each in order.
    cls = out.classes.tolist()
    assert cls == sorted(cls)


@pytest.mark.parametrize("seed", range(4))
def test_weights_match_measured_pixels_float_boxes(seed: int):
    """Float boxes: measured fraction agrees up to the box's edge pixels."""
    rng = np.random.default_rng(100 + seed)
    h, w = 120, 160
    a = painted_sample(tiled_boxes(rng, h, w, 40, True), h, w, cls0=0)
    b = painted_sample(tiled_boxes(rng, h, w, 40, True), h, w, cls0=1000)
    rect = random_rect(rng, h, w)
    out = CutMix(min_visible=0.0, weight_by_visibility=True).apply(a, [b], CutMixParams(0.5, rect))
    for j, k in enumerate(out.classes.tolist()):
        s, i = (a, k) if k < 1000 else (b, k - 1000)
        bw, bh = s.boxes[i, 2] - s.boxes[i, 0], s.boxes[i, 3] - s.boxes[i, 1]
        frac = colour_mask(out.image, k).sum() / (bw * bh)
        tol = 2 * (bw + bh + 2) / (bw * bh)  # one pixel ring around the box
        assert abs(out.weights[j] / s.weights[i] - frac) <= tol


def test_weight_by_visibility_off_and_min_visible_drop():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float64)
    a = painted_sample(boxes, 10, 40, 0)
    b = painted_sample(np.array([[0, 0, 40, 10]]), 10, 40, 1000)
    rect = (6, 0, 22, 10)  # base 0 keeps 0.6, base 1 keeps 0.8, partner keeps 0.4
    out = CutMix(min_visible=0.5, weight_by_visibility=False).apply(a, [b], CutMixParams(0.5, rect))
    assert out.classes.tolist() == [0, 1]
    np.testing.assert_array_equal(out.weights, a.weights)
    assert out.boxes.tolist() == [[0, 0, 6, 10], [22, 0, 30, 10]]
    out = CutMix(min_visible=0.3).apply(a, [b], CutMixParams(0.5, rect))
    assert out.classes.tolist() == [0, 1, 1000]
    np.testing.assert_allclose(out.weights, [0.6 * a.weights[0], 0.8 * a.weights[1], 0.4 * b.weights[0]], rtol=1e-6)
    assert out.boxes[2].tolist() == [6, 0, 22, 10]


# ----------------------------------------------------------------------------- box-minus-rect


def brute_cut(box: np.ndarray, rect: np.ndarray, scale: int, size: int) -> tuple[list[float] | None, float]:
    """Tight box and visible fraction of box minus rect, rasterised on a 1/scale grid (float64)."""
    n = size * scale
    c = (np.arange(n) + 0.5) / scale
    ys, xs = np.meshgrid(c, c, indexing="ij")
    inside = lambda r: (xs > r[0]) & (xs < r[2]) & (ys > r[1]) & (ys < r[3])  # noqa: E731
    bm, rm = inside(box), inside(rect)
    left = bm & ~rm
    frac = left.sum() / bm.sum()
    if not left.any():
        return None, float(frac)
    yi, xi = np.nonzero(left)
    return [xi.min() / scale, yi.min() / scale, (xi.max() + 1) / scale, (yi.max() + 1) / scale], float(frac)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.integers(0, 24), min_size=4, max_size=4),
    rect=st.lists(st.integers(-2, 14), min_size=4, max_size=4),
)
def test_cut_boxes_matches_rasterised_reference(data, rect):
    # Box on a half-pixel grid in [0, 12], rect on the integer grid (may leave the image).
    bx = np.array(sorted(data[:2]) + sorted(data[2:]), np.float64)[[0, 2, 1, 3]] / 2
    rx = np.array(sorted(rect[:2]) + sorted(rect[2:]), np.float64)[[0, 2, 1, 3]]
    if bx[2] <= bx[0] or bx[3] <= bx[1] or rx[2] <= rx[0] or rx[3] <= rx[1]:
        return
    new, vis = cut_boxes(bx[None], rx)
    ref_box, ref_vis = brute_cut(bx, np.clip(rx, -1, 13), scale=2, size=13)
    assert vis[0] == pytest.approx(ref_vis, abs=1e-12)
    if ref_box is None:
        assert new[0, 2] <= new[0, 0] and new[0, 3] <= new[0, 1]
    else:
        assert new[0].tolist() == ref_box
    # Vectorised over many boxes at once == one at a time.
    many = np.repeat(bx[None], 3, 0) + np.array([[0, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1]])
    nb, nv = cut_boxes(many, rx)
    for i in range(3):
        b1, v1 = cut_boxes(many[i : i + 1], rx)
        assert nb[i].tolist() == b1[0].tolist() and nv[i] == v1[0]


def test_paste_boxes_reference():
    rng = np.random.default_rng(7)
    boxes = np.sort(rng.uniform(-5, 45, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(-1, 4)[:, [0, 2, 1, 3]]
    rect = (10, 5, 30, 25)
    clipped, vis = paste_boxes(boxes, rect)
    assert clipped.dtype == np.float32 and clipped.shape == (50, 4)
    ref_inter = box_intersection(boxes, np.array([rect], np.float64))[:, 0].astype(np.float64)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(vis, ref_inter / area, rtol=1e-5, atol=1e-7)
    assert np.all((clipped[:, 0] >= 10) & (clipped[:, 2] <= 30) & (clipped[:, 1] >= 5) & (clipped[:, 3] <= 25))
    _, v0 = paste_boxes([[3, 3, 3, 8]], rect)  # zero-area box: visible 0, no NaN
    assert v0.tolist() == [0.0]


# ----------------------------------------------------------------------------- polygons


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_cut_polygons_partition_the_area(seed: int):
    """area(cut) + area(clip to rect) == area(polygon); no cut vertex is strictly inside the rect."""
    rng = np.random.default_rng(seed)
    h, w = 50, 60
    n = 5
    polys = []
    for _ in range(n):  # convex polygons, one of them two-part
        c = rng.uniform([5, 5], [w - 5, h - 5])
        ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
        polys.append(np.clip(c + rng.uniform(3, 15) * np.stack([np.cos(ang), np.sin(ang)], 1), 0, [w, h]))
    polys[0] = np.concatenate([polys[0], [[np.nan, np.nan]], polys[1] * 0.5])
    rect = random_rect(rng, h, w)
    cut = cut_polygons(polys, rect, h, w)
    inside = clip_polygons(polys, *map(float, rect))
    assert len(cut) == n
    for p, c, i in zip(polys, cut, inside, strict=True):
        assert c.dtype == np.float32 and c.ndim == 2 and c.shape[1] == 2
        assert shoelace(c) + shoelace(i) == pytest.approx(shoelace(p), rel=1e-4, abs=1e-3)
        pts = c[~np.isnan(c[:, 0])]
        strictly_in = (pts[:, 0] > rect[0] + 1e-4) & (pts[:, 0] < rect[2] - 1e-4)
        strictly_in &= (pts[:, 1] > rect[1] + 1e-4) & (pts[:, 1] < rect[3] - 1e-4)
        assert not strictly_in.any()


def test_polygons_through_cutmix():
    # Base object 0 has two parts; the rect hides its right part entirely, so its
    # box shrinks to the left part (tighter than the box rule).
    two = np.array([[0, 0], [4, 0], [4, 10], [0, 10], [np.nan, np.nan], [12, 0], [16, 0], [16, 10], [12, 10]], np.float32)
    tri = np.array([[20, 0], [30, 0], [20, 10]], np.float32)
    a = Sample.create(np.zeros((10, 40, 3), np.uint8), [[0, 0, 16, 10], [20, 0, 30, 10]], [0, 1], polygons=[two, tri])
    b = Sample.create(np.ones((10, 40, 3), np.uint8), [[8, 2, 40, 8]], [2], polygons=[[[8, 2], [40, 2], [40, 8], [8, 8]]])
    rect = (10, 0, 25, 10)
    out = CutMix(min_visible=0.1).apply(a, [b], CutMixParams(0.5, rect))
    assert out.classes.tolist() == [0, 1, 2]
    assert out.boxes.tolist() == [[0, 0, 4, 10], [25, 0, 30, 5], [10, 2, 25, 8]]
    # Visible fractions are still the box-area ones (as in the batch mixer).
    np.testing.assert_allclose(out.weights, [1 - 60 / 160, 0.5, 15 / 32], rtol=1e-6)
    assert len(out.polygons) == 3
    assert shoelace(out.polygons[0]) == pytest.approx(40)
    assert shoelace(out.polygons[1]) == pytest.approx(12.5)  # triangle right of x=25
    assert shoelace(out.polygons[2]) == pytest.approx(90)
    # Polygons only when both sides have them.
    assert CutMix().apply(a, [b.replace(polygons=None)], CutMixParams(0.5, rect)).polygons is None


# ----------------------------------------------------------------------------- sizes and pixels


def test_partner_of_other_size_is_placed_top_left_on_grey():
    rng = np.random.default_rng(8)
    a = Sample.create(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    small = Sample.create(rng.integers(0, 256, (20, 25, 3), dtype=np.uint8), [[20, 10, 30, 20]], [3])
    rect = (15, 5, 35, 28)
    out = CutMix(min_visible=0.0).apply(a, [small], CutMixParams(0.5, rect))
    canvas = np.full((30, 40, 3), 114, np.uint8)
    canvas[:20, :25] = small.image
    ref = a.image.copy()
    ref[5:28, 15:35] = canvas[5:28, 15:35]
    np.testing.assert_array_equal(out.image, ref)
    # The box keeps its coordinates and is clipped to the rect (grey part included).
    assert out.boxes.tolist() == [[20, 10, 30, 20]]
    big = Sample.create(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8))
    out = CutMix().apply(a, [big], CutMixParams(0.5, rect))
    assert out.size == (30, 40)
    np.testing.assert_array_equal(out.image[5:28, 15:35], big.image[5:28, 15:35])
    np.testing.assert_array_equal(paste_pixels(a.image, big.image, rect), out.image)


def test_rect_none_returns_base_unchanged():
    a = painted_sample(np.array([[1, 1, 5, 5]]), 10, 10, 0)
    out = CutMix().apply(a, [a], CutMixParams(0.5, None))
    assert snapshot(out) == snapshot(a)


@pytest.mark.parametrize("rect", [(0, 0, 0, 5), (3, 0, 11, 5), (-1, 0, 4, 4), (5, 5, 4, 9)])
def test_invalid_rect_rejected(rect):
    a = painted_sample(np.array([[1, 1, 5, 5]]), 10, 10, 0)
    with pytest.raises(ValueError, match="rect"):
        CutMix().apply(a, [a], CutMixParams(0.5, rect))


# ----------------------------------------------------------------------------- params


def test_sample_rect_formula_float64_reference():
    for seed in range(200):
        h, w = 37 + seed % 50, 91 - seed % 40
        lam = (seed % 97) / 97
        r1 = sample_rect(np.random.default_rng(seed), h, w, lam)
        g = np.random.default_rng(seed)
        cx, cy = g.uniform(0, w), g.uniform(0, h)
        cut = math.sqrt(1 - lam)
        xs = [min(max(round(cx - w * cut / 2), 0), w), min(max(round(cx + w * cut / 2), 0), w)]
        ys = [min(max(round(cy - h * cut / 2), 0), h), min(max(round(cy + h * cut / 2), 0), h)]
        ref = None if xs[1] <= xs[0] or ys[1] <= ys[0] else (xs[0], ys[0], xs[1], ys[1])
        assert r1 == ref
        if r1 is not None:
            assert all(isinstance(v, int) for v in r1)


def test_rect_area_tracks_lam():
    rng = np.random.default_rng(9)
    h, w = 400, 600
    for lam in (0.2, 0.5, 0.9):
        areas = []
        for _ in range(300):
            r = sample_rect(rng, h, w, lam)
            cx, cy = (r[0] + r[2]) / 2, (r[1] + r[3]) / 2
            if r[0] > 0 and r[2] < w and r[1] > 0 and r[3] < h:  # not clipped by the border
                areas.append((r[2] - r[0]) * (r[3] - r[1]) / (h * w))
                assert 0 <= cx <= w and 0 <= cy <= h
        assert areas and abs(np.mean(areas) - (1 - lam)) < 0.01


def test_on_background_never_covers_a_base_box():
    rng = np.random.default_rng(10)
    t = CutMix(on_background=True, max_tries=10)
    accepted = 0
    for _ in range(200):
        boxes = tiled_boxes(rng, 64, 64, 32, True)
        a = Sample.create(np.zeros((64, 64, 3), np.uint8), boxes, np.arange(len(boxes)))
        p = t.sample_params(rng, a, [a])
        if p.rect is not None:
            accepted += 1
            assert not np.any(box_intersection(boxes, np.array([p.rect], np.float64)) > 0)
            out = t.apply(a, [a], p)
            np.testing.assert_array_equal(out.boxes[: len(boxes)], a.boxes)  # base objects untouched
            np.testing.assert_array_equal(out.weights[: len(boxes)], a.weights)
    assert accepted > 20
    full = Sample.create(np.zeros((64, 64, 3), np.uint8), [[0, 0, 64, 64]], [0])
    assert t.sample_params(rng, full, [full]).rect is None


@pytest.mark.parametrize(
    "kwargs, name",
    [({"alpha": 0}, "alpha"), ({"min_visible": 1.5}, "min_visible"), ({"max_tries": 0}, "max_tries"), ({"max_tries": 2.5}, "max_tries")],
)
def test_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CutMix(**kwargs)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), on_background=st.booleans(), polys=st.booleans())
def test_pure_aligned_and_replayable(seed: int, on_background: bool, polys: bool):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
    a = painted_sample(tiled_boxes(rng, h, w, 10, True), h, w, 0, polygons=polys)
    hb, wb = int(rng.integers(20, 60)), int(rng.integers(20, 60))
    b = painted_sample(tiled_boxes(rng, hb, wb, 10, True), hb, wb, 1000, polygons=polys)
    before = snapshot(a), snapshot(b)
    t = CutMix(on_background=on_background)
    p = t.sample_params(np.random.default_rng(seed), a, [b])
    assert p == t.sample_params(np.random.default_rng(seed), a, [b])
    out, again = t.apply(a, [b], p), t.apply(a, [b], p)
    assert snapshot(out) == snapshot(again)
    assert (snapshot(a), snapshot(b)) == before
    assert out.size == a.size and out.image.flags.c_contiguous
    n = out.num_objects
    assert out.classes.shape == out.weights.shape == (n,)
    assert (out.polygons is None) == (not polys) and (out.polygons is None or len(out.polygons) == n)
    bx = out.boxes
    assert np.all((bx[:, 0] >= 0) & (bx[:, 2] <= w) & (bx[:, 1] >= 0) & (bx[:, 3] <= h))
    assert np.all((bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1]))
    assert np.all((out.weights > 0) & (out.weights <= 1))
