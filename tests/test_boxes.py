"""Box and polygon maths against float64 references and rasterised truth."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from detaug import boxes as B
from detaug import polygons as P

coord = st.floats(-50, 150, allow_nan=False, width=32)


def _shoelace(p: np.ndarray) -> float:
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0].astype(np.float64), p[:, 1].astype(np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _raster(poly: np.ndarray, shape: tuple[int, int], scale: int) -> np.ndarray:
    """Mask of a polygon on a grid `scale` times finer than pixels."""
    m = np.zeros((shape[0] * scale, shape[1] * scale), np.uint8)
    if len(poly):
        pts = np.round(poly.astype(np.float64) * scale * 16 - 8).astype(np.int32)
        cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return m


@st.composite
def xyxy(draw, n_max: int = 6):
    n = draw(st.integers(0, n_max))
    a = np.array([[draw(coord) for _ in range(4)] for _ in range(n)], np.float64).reshape(-1, 4)
    lo = np.minimum(a[:, :2], a[:, 2:])
    hi = np.maximum(a[:, :2], a[:, 2:]) + 0.5
    return np.concatenate([lo, hi], axis=1).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(xyxy(), st.integers(16, 400), st.integers(16, 400))
def test_format_round_trips(b, w, h):
    np.testing.assert_allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(b)), b, atol=1e-4)
    np.testing.assert_allclose(B.xywh_to_xyxy(B.xyxy_to_xywh(b)), b, atol=1e-4)
    np.testing.assert_allclose(B.coco_to_xyxy(B.xyxy_to_coco(b)), b, atol=1e-4)
    np.testing.assert_allclose(B.yolo_to_xyxy(B.xyxy_to_yolo(b, w, h), w, h), b, atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(xyxy(), xyxy())
def test_iou_ioa_match_float64_reference(a, b):
    ref_inter = np.zeros((len(a), len(b)))
    for i, p in enumerate(a.astype(np.float64)):
        for j, q in enumerate(b.astype(np.float64)):
            w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            ref_inter[i, j] = w * h
    area_a = (a[:, 2] - a[:, 0]).astype(np.float64) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]).astype(np.float64) * (b[:, 3] - b[:, 1])
    np.testing.assert_allclose(B.box_intersection(a, b), ref_inter, rtol=1e-5, atol=1e-3)
    union = area_a[:, None] + area_b[None, :] - ref_inter
    np.testing.assert_allclose(B.box_iou(a, b), ref_inter / union, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(B.box_ioa(a, b), ref_inter / area_a[:, None], rtol=1e-4, atol=1e-6)


def test_functions_do_not_write_into_inputs():
    b = np.array([[-5, 2, 12, 20], [1, 1, 3, 3]], np.float32)
    keep = b.copy()
    B.clip_boxes(b, 10, 8)
    B.box_candidates(b, b)
    B.xyxy_to_yolo(b, 10, 8)
    np.testing.assert_array_equal(b, keep)
    poly = [np.array([[-2, -2], [4, -2], [4, 4]], np.float32)]
    keep_p = poly[0].copy()
    P.clip_polygons(poly, 0, 0, 3, 3)
    np.testing.assert_array_equal(poly[0], keep_p)


def test_box_candidates_each_rule():
    before = np.array([[0, 0, 10, 10]] * 6, np.float32)
    after = np.array(
        [
            [0, 0, 10, 10],  # kept
            [0, 0, 1.9, 10],  # too narrow
            [0, 0, 10, 1.9],  # too short
            [0, 0, 3, 3],  # 9% of the area
            [0, 0, 0, 0],  # zero area
            [0, 0, 2, 10],  # aspect 5 > 4
        ],
        np.float32,
    )
    keep = B.box_candidates(before, after, min_size=2, min_area_ratio=0.1, max_aspect_ratio=4)
    assert keep.tolist() == [True, False, False, False, False, False]
    assert B.box_candidates(before[:1], after[:1], min_size=0, min_area_ratio=0, max_aspect_ratio=1).tolist() == [True]


def test_multipart_polygons_flatten_round_trip():
    nan = [np.nan, np.nan]
    polys = [
        np.array([[0, 0], [4, 0], [4, 4], nan, [10, 10], [12, 10], [12, 12]], np.float32),
        np.zeros((0, 2), np.float32),
        np.array([[1, 1], [2, 1], [2, 3]], np.float32),
    ]
    pts, ring, obj = P.flatten_polygons(polys)
    assert obj.tolist() == [0, 0, 2]
    assert np.bincount(ring).tolist() == [3, 3, 3]
    back = P.unflatten_polygons(pts, ring, obj, 3)
    for p, q in zip(polys, back, strict=True):
        np.testing.assert_array_equal(np.isnan(p), np.isnan(q))
        np.testing.assert_allclose(np.nan_to_num(p), np.nan_to_num(q))
    assert P.polygons_to_boxes(polys).tolist() == [[0, 0, 12, 12], [0, 0, 0, 0], [1, 1, 2, 3]]


def _parts(poly: np.ndarray) -> list[np.ndarray]:
    return [r.astype(np.float64) for r in P.split_rings(poly)] if len(poly) else []


def _area(poly: np.ndarray) -> float:
    return sum(_shoelace(r) for r in _parts(poly))


def _slab_reference(poly: np.ndarray, rect: tuple[float, float, float, float]) -> tuple[float, np.ndarray | None]:
    """Exact float64 area and tight box of the closure of interior(poly) ∩ interior(rect).

    An independent oracle (no clipping involved): cut the plane into vertical
    slabs at every x where the slice ``poly ∩ {x = c} ∩ rect`` can change
    combinatorially (vertex x's, the rect's sides, the x's where edges cross
    the rect's top and bottom). Inside a slab the slice length is linear in
    x, so the midpoint rule is exact, and a slab is part of the region iff
    its midpoint slice has positive length. Zero-area spikes, vertices
    touching the rect from outside and zero-length edges contribute nothing.
    Run once per axis for the box. ``poly`` must be simple (even-odd rule).
    """

    def along(p: np.ndarray, lo: float, hi: float, lo2: float, hi2: float) -> tuple[float, float, float]:
        a, b = p, np.roll(p, -1, axis=0)
        ev = [p[:, 0], [lo, hi]]
        for level in (lo2, hi2):
            m = (a[:, 1] > level) != (b[:, 1] > level)
            t = (level - a[m, 1]) / (b[m, 1] - a[m, 1])
            ev.append(a[m, 0] + t * (b[m, 0] - a[m, 0]))
        ev = np.unique(np.clip(np.concatenate(ev), lo, hi))
        area, first, last = 0.0, np.inf, -np.inf
        for c0, c1 in zip(ev[:-1], ev[1:], strict=True):
            mid = (c0 + c1) / 2
            m = (a[:, 0] > mid) != (b[:, 0] > mid)
            t = (mid - a[m, 0]) / (b[m, 0] - a[m, 0])
            ys = np.sort(a[m, 1] + t * (b[m, 1] - a[m, 1]))
            length = np.clip(np.minimum(ys[1::2], hi2) - np.maximum(ys[0::2], lo2), 0, None).sum()
            if length > 0:
                area += (c1 - c0) * length
                first, last = min(first, c0), max(last, c1)
        return area, first, last

    p = poly.astype(np.float64)
    x1, y1, x2, y2 = rect
    area, bx1, bx2 = along(p, x1, x2, y1, y2)
    _, by1, by2 = along(p[:, ::-1], y1, y2, x1, x2)
    return area, (np.array([bx1, by1, bx2, by2]) if area > 0 else None)


@st.composite
def star_polygon(draw, k_min: int = 3, k_max: int = 12):
    """A random simple star-shaped (often concave) polygon, maybe with repeated vertices.

    Angles strictly increase with every gap < pi, so the polygon is simple and
    has no zero-area spikes; repeated vertices add zero-length edges.
    """
    k = draw(st.integers(k_min, k_max))
    cx, cy = draw(st.floats(-10, 70)), draw(st.floats(-10, 70))
    gaps = np.array([draw(st.floats(1, 1.9)) for _ in range(k)])
    angles = draw(st.floats(0, 2 * np.pi)) + 2 * np.pi * np.cumsum(gaps) / gaps.sum()
    radii = np.array([draw(st.floats(3, 40)) for _ in range(k)])
    poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.float32)
    repeats = np.array([draw(st.sampled_from([1, 1, 1, 2, 3])) for _ in range(k)])
    return np.repeat(poly, repeats, axis=0)


@st.composite
def clip_rect(draw, poly: np.ndarray):
    """Integer sides, or sides through polygon vertices (points exactly on the clip lines)."""

    def side(lo: int, hi: int, axis: int) -> float:
        return draw(st.one_of(st.integers(lo, hi).map(float), st.sampled_from(poly[:, axis].tolist())))

    x1, x2 = sorted((side(0, 20, 0), side(25, 60, 0)))
    y1, y2 = sorted((side(0, 20, 1), side(25, 60, 1)))
    return float(x1), float(y1), float(x2), float(y2)


def _inside_even_odd(q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Which points q (M, 2) lie inside a multi-part polygon (even-odd over all parts)."""
    inside = np.zeros(len(q), bool)
    for r in _parts(poly):
        a, b = r, np.roll(r, -1, axis=0)
        m = (a[None, :, 1] > q[:, None, 1]) != (b[None, :, 1] > q[:, None, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            x = a[None, :, 0] + (q[:, None, 1] - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / (
                b[None, :, 1] - a[None, :, 1]
            )
        inside ^= ((m & (q[:, None, 0] < x)).sum(1) % 2).astype(bool)
    return inside


def _check_clip(poly: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Checks that hold for every simple polygon; returns the clipped polygon."""
    x1, y1, x2, y2 = rect
    clipped = P.clip_polygons([poly], x1, y1, x2, y2)[0]
    assert clipped.dtype == np.float32 and clipped.ndim == 2 and clipped.shape[1] == 2
    ref_area, ref_box = _slab_reference(poly, rect)
    # The area is the exact area of poly ∩ rect (float32 output rounding only).
    assert abs(_area(clipped) - ref_area) <= 1e-3 + 1e-5 * ref_area
    # Every part is a real ring with area; all vertices lie in the rectangle.
    for r in _parts(clipped):
        assert len(r) >= 3 and _shoelace(r) > 0
        assert np.isfinite(r).all()
        assert ((r[:, 0] >= x1) & (r[:, 0] <= x2) & (r[:, 1] >= y1) & (r[:, 1] <= y2)).all()
    # The tight box is exactly the true one: no bridge corners, no slivers.
    if ref_box is None:
        assert len(clipped) == 0
    elif len(clipped) == 0:
        assert ref_area < 1e-6  # only a region too thin for float32 may vanish
    else:
        np.testing.assert_allclose(P.polygons_to_boxes([clipped])[0], ref_box, atol=1e-4)
    return clipped


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_clip_polygon_matches_rasterised_intersection(data):
    poly = data.draw(star_polygon())
    rect = data.draw(clip_rect(poly))
    clipped = _check_clip(poly, rect)
    x1, y1, x2, y2 = rect
    if x2 <= x1 or y2 <= y1:
        return  # an empty rectangle: _check_clip saw that nothing is left
    # Pixel oracle: 160 x 160 sample centres over the rectangle.
    n = 160
    dx, dy = (x2 - x1) / n, (y2 - y1) / n
    gx, gy = x1 + (np.arange(n) + 0.5) * dx, y1 + (np.arange(n) + 0.5) * dy
    q = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    truth = _inside_even_odd(q, poly)
    ours = _inside_even_odd(q, clipped)
    # Same samples (they may only disagree at samples on a boundary edge).
    assert (truth != ours).sum() <= 2
    perimeter = 2 * ((x2 - x1) + (y2 - y1)) + np.abs(np.diff(np.r_[poly, poly[:1]], axis=0)).sum()
    assert abs(_area(clipped) - truth.sum() * dx * dy) <= 0.5 * perimeter * max(dx, dy) + 1.0
    if truth.any():  # the box covers every true sample
        box = P.polygons_to_boxes([clipped])[0]
        xs, ys = q[truth, 0], q[truth, 1]
        assert box[0] <= xs.min() and box[1] <= ys.min() and box[2] >= xs.max() and box[3] >= ys.max()


def _segments_meet(p1, p2, p3, p4) -> bool:
    """Closed segments p1p2 and p3p4 share a point (exact for integer coordinates)."""

    def orient(a, b, c):
        return np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    def within(a, b, c):
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    o1, o2, o3, o4 = orient(p1, p2, p3), orient(p1, p2, p4), orient(p3, p4, p1), orient(p3, p4, p2)
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and within(p1, p2, p3))
        or (o2 == 0 and within(p1, p2, p4))
        or (o3 == 0 and within(p3, p4, p1))
        or (o4 == 0 and within(p3, p4, p2))
    )


def _untangle(p: np.ndarray) -> np.ndarray | None:
    """2-opt: reverse the run between two crossing edges until no two edges meet; None if stuck."""
    n = len(p)
    for _ in range(200):
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if 1 < j - i < n - 1]
        hit = next((ij for ij in pairs if _segments_meet(p[ij[0]], p[ij[0] + 1], p[ij[1]], p[(ij[1] + 1) % n])), None)
        if hit is None:
            u, v = p - np.roll(p, 1, axis=0), np.roll(p, -1, axis=0) - p
            turn, back = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0], (u * v).sum(1) < 0
            spikes = ((turn == 0) & back).any()
            zero = (p == np.roll(p, -1, axis=0)).all(1).any()
            return None if spikes or zero or _shoelace(p) == 0 else p
        i, j = hit
        p = np.concatenate([p[: i + 1], p[i + 1 : j + 1][::-1], p[j + 1 :]])
    return None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=3, max_size=10, unique=True),
    st.tuples(*[st.integers(-1, 21)] * 4),
)
def test_clip_general_simple_polygons_on_a_grid(points, sides):
    """Arbitrary simple polygons (not star-shaped) with integer vertices and integer clip lines:
    many vertices and whole edges lie exactly on the clip lines."""
    poly = _untangle(np.array(points, np.float32))
    assume(poly is not None)
    x1, x2 = sorted(sides[:2])
    y1, y2 = sorted(sides[2:])
    for p in (poly, poly[::-1].copy()):  # both orientations
        for part in _parts(_check_clip(p, (x1, y1, x2, y2))):
            # No doubled vertex where the ring leaves the line and comes back at once.
            assert not (part == np.roll(part, 1, axis=0)).all(1).any()


@settings(max_examples=40, deadline=None)
@given(st.lists(star_polygon(k_max=8), min_size=1, max_size=5), st.data())
def test_clip_many_objects_at_once_equals_one_by_one(polys, data):
    """The vectorised bookkeeping (rings of many objects, multi-part inputs) is per-object exact."""
    nan = np.full((1, 2), np.nan, np.float32)
    objects = [polys[0]]
    for p in polys[1:]:  # some objects get several parts
        if data.draw(st.booleans()):
            objects[-1] = np.concatenate([objects[-1], nan, p])
        else:
            objects.append(p)
    rect = data.draw(clip_rect(polys[0]))
    together = P.clip_polygons(objects, *rect)
    assert len(together) == len(objects)
    for obj, got in zip(objects, together, strict=True):
        alone = P.clip_polygons([obj], *rect)[0]
        np.testing.assert_array_equal(got, alone)
        ref_parts = [_slab_reference(p, rect) for p in _parts(obj)]
        assert abs(_area(got) - sum(a for a, _ in ref_parts)) <= 1e-3 * len(ref_parts)


def _raster_truth(poly: np.ndarray, rect: tuple[int, int, int, int], s: int = 8) -> np.ndarray:
    """Sample-centre mask of poly ∩ rect on a grid `s` times finer than pixels over [0, 32)^2."""
    g = (np.arange(32 * s) + 0.5) / s
    q = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    x1, y1, x2, y2 = rect
    in_rect = (q[:, 0] > x1) & (q[:, 0] < x2) & (q[:, 1] > y1) & (q[:, 1] < y2)
    return (_inside_even_odd(q, poly) & in_rect).reshape(32 * s, 32 * s)


def _mask_box(mask: np.ndarray, s: int = 8) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / s


def _components(mask: np.ndarray) -> list[np.ndarray]:
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    return [labels == i for i in range(1, n)]


def test_concave_u_crossing_a_side_twice_gives_two_parts():
    # A U (opening upwards in image coordinates: arms at x in [4, 10] and [18, 24]).
    u = np.array([[4, 4], [24, 4], [24, 28], [18, 28], [18, 12], [10, 12], [10, 28], [4, 28]], np.float32)
    rect = (0, 16, 30, 30)  # keeps only the arms below y = 16
    clipped = P.clip_polygons([u], *rect)[0]
    parts = _parts(clipped)
    assert len(parts) == 2
    boxes = P.polygons_to_boxes(parts)
    # Old Sutherland-Hodgman gave one ring with a bridge along y = 16, box (4, 16, 24, 28) -- right --
    # but two separate parts must each have their own box.
    truth = _raster_truth(u, rect)
    comps = sorted(_components(truth), key=lambda m: np.nonzero(m)[1].min())
    assert len(comps) == 2
    want = [_mask_box(m) for m in comps]
    got = sorted(boxes.tolist())
    np.testing.assert_allclose(got, want, atol=1 / 8)
    np.testing.assert_allclose(got, [[4, 16, 10, 28], [18, 16, 24, 28]])
    for part, comp in zip(sorted(parts, key=lambda r: r[:, 0].min()), comps, strict=True):
        assert abs(_shoelace(part) - comp.sum() / 64) <= 0.5
        assert _shoelace(part) == pytest.approx(6 * 12)


def test_bridge_corner_is_not_in_the_box():
    # A "C" opening to the right: x >= 16 cuts off its two arms as separate pieces. Plain
    # Sutherland-Hodgman joins them with a zero-area bridge along x = 16, and y <= 15 then
    # leaves the bridge's end (16, 15) as a vertex: box [16, 0, 30, 15] instead of the true one.
    c = np.array([[5, 0], [30, 0], [30, 8], [12, 8], [12, 22], [30, 22], [30, 30], [5, 30]], np.float32)
    rect = (16, -1, 40, 15)
    clipped = P.clip_polygons([c], *rect)[0]
    box = P.polygons_to_boxes([clipped])[0]
    np.testing.assert_array_equal(box, [16, 0, 30, 8])
    truth = _raster_truth(c, rect)
    np.testing.assert_allclose(box, _mask_box(truth), atol=1 / 8)
    assert _area(clipped) == 14 * 8 and abs(_area(clipped) - truth.sum() / 64) <= 0.5
    # Both arms kept: two parts, as in the rasterised truth.
    both = P.clip_polygons([c], *(16, -1, 40, 31))[0]
    assert len(_parts(both)) == 2 == len(_components(_raster_truth(c, (16, -1, 40, 31))))
    assert _area(both) == 2 * 14 * 8


def test_multi_part_object():
    nan = [np.nan, np.nan]
    u = [[4, 4], [24, 4], [24, 28], [18, 28], [18, 12], [10, 12], [10, 28], [4, 28]]
    obj = np.array(u + [nan] + [[40, 40], [50, 40], [50, 50]] + [nan] + [[26, 20], [34, 20], [34, 26]], np.float32)
    other = np.array([[1, 1], [3, 1], [3, 3]], np.float32)
    out = P.clip_polygons([obj, other, np.zeros((0, 2), np.float32)], 0, 16, 30, 30)
    parts = _parts(out[0])
    # U -> two arms; the triangle at (40..50) is outside; the last part is cut at x = 30.
    assert len(parts) == 3 and np.isnan(out[0][:, 0]).sum() == 2
    assert sorted(P.polygons_to_boxes(parts).tolist()) == [
        [4.0, 16.0, 10.0, 28.0],
        [18.0, 16.0, 24.0, 28.0],
        [26.0, 20.0, 30.0, 23.0],  # the hypotenuse meets x = 30 at y = 23
    ]
    assert P.polygons_to_boxes([out[0]])[0].tolist() == [4.0, 16.0, 30.0, 28.0]
    truth = _raster_truth(obj, (0, 16, 30, 30))  # even-odd over all parts (they are disjoint)
    assert abs(_area(out[0]) - truth.sum() / 64) <= 1.0
    assert out[1].shape == (0, 2) and out[2].shape == (0, 2)


def test_area_equals_rasterised_intersection_for_random_concave_polygons():
    rng = np.random.default_rng(7)
    polys = []
    for _ in range(40):
        k = int(rng.integers(5, 21))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(2, 14, k)
        c = rng.uniform(0, 32, 2)
        polys.append(np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1).astype(np.float32))
    rect = (4, 6, 27, 25)
    out = P.clip_polygons(polys, *rect)
    n_split = 0
    for p, got in zip(polys, out, strict=True):
        truth = _raster_truth(p, rect)
        ref_area, ref_box = _slab_reference(p, rect)
        perimeter = np.linalg.norm(np.diff(np.r_[p, p[:1]], axis=0), axis=1).sum() + 2 * (23 + 19)
        assert abs(_area(got) - truth.sum() / 64) <= 0.25 * perimeter / 8 + 0.5
        assert abs(_area(got) - ref_area) <= 1e-3
        if truth.any():
            # The box holds every true sample cell (up to the half cell from centre to edge)...
            box, cells = P.polygons_to_boxes([got])[0], _mask_box(truth)
            assert (box[:2] <= cells[:2] + 1 / 16).all() and (box[2:] >= cells[2:] - 1 / 16).all()
            # ... and is the exact one (slivers thinner than a sample are real, the raster misses them).
            np.testing.assert_allclose(box, ref_box, atol=1e-4)
        n_split += len(_parts(got)) > 1
    assert n_split >= 2  # the sample really exercises splitting


def test_points_on_the_line_make_no_slivers():
    # Touching the line from outside: a vertex, or a whole edge, on x = 10 -> nothing is left.
    tri_vertex = np.array([[0, 0], [10, 5], [0, 10]], np.float32)
    tri_edge = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    # Touching the line from inside: a vertex or an edge on x = 10 -> unchanged.
    inner_vertex = np.array([[20, 0], [10, 5], [20, 10]], np.float32)
    inner_edge = np.array([[10, 0], [20, 0], [20, 10], [10, 10]], np.float32)
    # Concave, touching from inside at a reflex notch tip (10, 5): the two lobes stay one part.
    notch = np.array([[10, 0], [20, 0], [20, 10], [10, 10], [15, 5]], np.float32)
    # A spike lying along the line x = 10 on a polygon inside: the spike has no area and goes.
    spike = np.array([[10, 0], [20, 0], [20, 10], [10, 10], [10, 20], [10, 10]], np.float32)
    out = P.clip_polygons([tri_vertex, tri_edge, inner_vertex, inner_edge, notch, spike], 10, -5, 30, 30)
    assert out[0].shape == (0, 2) and out[1].shape == (0, 2)
    np.testing.assert_array_equal(P.polygons_to_boxes(out[2:]), [[10, 0, 20, 10]] * 4)
    assert _area(out[2]) == 50 and _area(out[3]) == 100 and _area(out[4]) == 75 and _area(out[5]) == 100
    assert all(len(_parts(o)) == 1 for o in out[2:])
    assert [len(o) for o in out[2:]] == [3, 4, 5, 4]  # no doubled touching vertex, spike gone
    # Zero-length edges and repeated vertices anywhere, also across the line.
    dup = np.array([[5, 5], [5, 5], [15, 5], [15, 5], [15, 5], [15, 15], [10, 15], [10, 15], [5, 15]], np.float32)
    got = P.clip_polygons([dup], 10, 0, 30, 30)[0]
    assert _area(got) == 50 and P.polygons_to_boxes([got])[0].tolist() == [10, 5, 15, 15]
    # A rectangle equal to the polygon and a degenerate (empty) rectangle.
    np.testing.assert_array_equal(P.polygons_to_boxes(P.clip_polygons([inner_edge], 10, 0, 20, 10)), [[10, 0, 20, 10]])
    assert P.clip_polygons([inner_edge], 15, 0, 15, 10)[0].shape == (0, 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 25), st.integers(-5, 25)), min_size=0, max_size=12))
def test_self_intersecting_and_degenerate_rings_do_not_crash(points):
    """Result is approximate for self-intersecting rings, but always well formed."""
    poly = np.array(points, np.float32).reshape(-1, 2)
    out = P.clip_polygons([poly, poly[::-1]], 0, 0, 20, 20)
    for o in out:
        assert o.dtype == np.float32 and o.ndim == 2 and o.shape[1] == 2
        for r in _parts(o):
            assert len(r) >= 3 and _shoelace(r) > 0 and np.isfinite(r).all()
            assert (r >= 0).all() and (r <= 20).all()
    box = P.polygons_to_boxes(out)
    assert (box[:, 2] >= box[:, 0]).all() and (box[:, 3] >= box[:, 1]).all()


def test_clip_polygons_is_fast_for_many_concave_polygons():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 2 * np.pi, (1000, 20)), axis=1)
    r = rng.uniform(5, 80, (1000, 20))
    c = rng.uniform(-20, 660, (1000, 1, 2))
    polys = list((c + np.stack([r * np.cos(a), r * np.sin(a)], -1)).astype(np.float32))
    out = P.clip_polygons(polys, 0, 0, 640, 640)
    assert sum(len(_parts(o)) > 1 for o in out) > 0
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        P.clip_polygons(polys, 0, 0, 640, 640)
        times.append(time.perf_counter() - t0)
    assert float(np.median(times)) < 0.05  # ~5 ms on one core; generous for loaded CI machines


def test_clip_polygon_outside_vanishes_and_inside_is_unchanged():
    inside = np.array([[2, 2], [5, 2], [5, 6]], np.float32)
    outside = np.array([[20, 20], [25, 20], [25, 26]], np.float32)
    a, b = P.clip_polygons([inside, outside], 0, 0, 10, 10)
    np.testing.assert_allclose(a, inside)
    assert b.shape == (0, 2)


def test_split_rings():
    p = np.array([[0, 0], [1, 0], [1, 1], [np.nan, np.nan], [3, 3], [4, 3], [4, 4]], np.float32)
    rings = P.split_rings(p)
    assert len(rings) == 2 and all(r.shape == (3, 2) for r in rings)


@pytest.mark.parametrize("fn", [B.xyxy_to_cxcywh, B.cxcywh_to_xyxy, B.box_area])
def test_empty_inputs(fn):
    assert len(fn(np.zeros((0, 4), np.float32))) == 0
