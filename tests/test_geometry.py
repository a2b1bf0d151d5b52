"""Geometry: matrices against hand-built float64 references; image and boxes move together."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug import geometry as G


def _painted_extent(img: np.ndarray, thresh: int = 128) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(img[..., 0] >= thresh)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("tx, ty", [(0.0, 0.0), (7.0, -3.0), (12.5, 4.5)])
def test_image_and_box_move_together_under_scale_and_translation(scale, tx, ty):
    """The continuous frame: a box's edges and its painted pixels stay aligned exactly."""
    img = np.zeros((40, 50, 3), np.uint8)
    box = np.array([[10, 8, 30, 24]], np.float32)
    img[8:24, 10:30] = 255
    m = G.translation(tx, ty) @ G.scaling(scale)
    out = G.warp_image(img, m, (120, 160), fill=0)
    wb = G.warp_boxes(box, m)[0]
    np.testing.assert_allclose(wb, [10 * scale + tx, 8 * scale + ty, 30 * scale + tx, 24 * scale + ty], atol=1e-4)
    # The half-intensity contour of the painted block sits on the warped box edges (within half a pixel).
    ext = _painted_extent(out)
    np.testing.assert_allclose(ext, wb, atol=0.51)


def test_rotation_by_90_degrees_is_exact():
    img = np.zeros((20, 30, 3), np.uint8)
    img[2:6, 3:10] = 255
    m = G.ultralytics_matrix((20, 30), (30, 20), degrees=90)
    out = G.warp_image(img, m, (30, 20), fill=0, interpolation=0)
    wb = G.warp_boxes(np.array([[3, 2, 10, 6]], np.float32), m)[0]
    np.testing.assert_allclose(_painted_extent(out), wb, atol=1e-4)


def _reference_matrix(in_hw, out_hw, deg, s, shx, shy, px, py, tx, ty):
    """Ultralytics' RandomPerspective composition written out element by element in float64."""
    C = np.array([[1, 0, -in_hw[1] / 2], [0, 1, -in_hw[0] / 2], [0, 0, 1]], float)
    P = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]], float)
    a = math.radians(deg)
    R = np.array([[s * math.cos(a), s * math.sin(a), 0], [-s * math.sin(a), s * math.cos(a), 0], [0, 0, 1]])
    S = np.array([[1, math.tan(math.radians(shx)), 0], [math.tan(math.radians(shy)), 1, 0], [0, 0, 1]])
    T = np.array([[1, 0, (0.5 + tx) * out_hw[1]], [0, 1, (0.5 + ty) * out_hw[0]], [0, 0, 1]])
    return T @ S @ R @ P @ C


@settings(max_examples=50, deadline=None)
@given(
    st.floats(-45, 45), st.floats(0.3, 2), st.floats(-10, 10), st.floats(-10, 10),
    st.floats(-1e-3, 1e-3), st.floats(-1e-3, 1e-3), st.floats(-0.3, 0.3), st.floats(-0.3, 0.3),
)
def test_ultralytics_matrix_matches_reference(deg, s, shx, shy, px, py, tx, ty):
    got = G.ultralytics_matrix((480, 640), (320, 320), deg, s, shx, shy, px, py, tx, ty)
    ref = _reference_matrix((480, 640), (320, 320), deg, s, shx, shy, px, py, tx, ty)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # cv2.getRotationMatrix2D agrees on the rotation/scale part (Ultralytics builds R with it).
    import cv2

    np.testing.assert_allclose(G.rotation_scale(deg, s)[:2], cv2.getRotationMatrix2D((0, 0), deg, s), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.floats(-30, 30), st.floats(0.5, 1.5), st.floats(-5e-4, 5e-4), st.floats(-5e-4, 5e-4))
def test_warp_boxes_is_the_corner_envelope(deg, s, px, py):
    m = G.ultralytics_matrix((100, 100), (100, 100), deg, s, 0, 0, px, py)
    b = np.array([[10, 20, 60, 70], [0, 0, 100, 100]], np.float32)
    out = G.warp_boxes(b, m)
    for box, o in zip(b, out, strict=True):
        x1, y1, x2, y2 = box.astype(np.float64)
        c = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]]) @ m.T
        c = c[:, :2] / c[:, 2:]
        np.testing.assert_allclose(o, [*c.min(0), *c.max(0)], rtol=1e-5, atol=1e-3)


def test_warp_into_writes_only_where_the_tile_lands_and_equals_a_full_warp():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    for m in (G.translation(20, 15), G.translation(50, 40) @ G.rotation_scale(25, 1.3) @ G.translation(-20, -15),
              G.translation(50, 40) @ G.perspective(1e-3, -5e-4) @ G.translation(-20, -15)):
        dst = np.full((100, 120, 3), 7, np.uint8)
        G.warp_into(dst, src, m)
        full = G.warp_image(src, m, (100, 120), fill=7)
        inside = np.zeros((100, 120), bool)
        yy, xx = np.mgrid[0:100, 0:120] + 0.5
        inv = np.linalg.inv(m)
        p = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], 1) @ inv.T
        p = p[:, :2] / p[:, 2:]
        inside = ((p[:, 0] > 1) & (p[:, 0] < 39) & (p[:, 1] > 1) & (p[:, 1] < 29)).reshape(100, 120)
        far = ((p[:, 0] < -1) | (p[:, 0] > 41) | (p[:, 1] < -1) | (p[:, 1] > 31)).reshape(100, 120)
        np.testing.assert_array_equal(dst[inside], full[inside])
        assert (dst[far] == 7).all()


def test_warp_objects_filters_and_uses_polygons():
    # A diamond polygon: its tight box after a 45 degree turn is tighter than the warped box.
    poly = np.array([[10, 0], [20, 10], [10, 20], [0, 10]], np.float32)
    box = np.array([[0, 0, 20, 20]], np.float32)
    m = G.translation(50, 50) @ G.rotation_scale(45, 1.0) @ G.translation(-10, -10)
    b_poly, p, keep = G.warp_objects(box, [poly], m, (100, 100))
    b_box, none, keep2 = G.warp_objects(box, None, m, (100, 100))
    assert keep.all() and keep2.all() and none is None
    np.testing.assert_allclose(b_poly[0], [50 - 7.0711, 50 - 7.0711, 50 + 7.0711, 50 + 7.0711], atol=1e-3)
    np.testing.assert_allclose(b_box[0], [50 - 14.1421, 50 - 14.1421, 50 + 14.1421, 50 + 14.1421], atol=1e-3)
    # Mostly outside the output: dropped by the area ratio.
    b, _, keep = G.warp_objects(np.array([[-95, 0, 5, 10]], np.float32), None, G.identity(), (100, 100))
    assert not keep[0] and b[0].tolist() == [0, 0, 5, 10]
    # A visible rect (a mosaic cell) limits what reaches the output.
    b, _, keep = G.warp_objects(np.array([[0, 0, 40, 40]], np.float32), None, G.identity(), (100, 100),
                                visible_rect=(0, 0, 20, 100))
    assert keep[0] and b[0].tolist() == [0, 0, 20, 40]


def test_is_affine():
    assert G.is_affine(G.rotation_scale(10, 2)) and not G.is_affine(G.perspective(1e-4, 0))
