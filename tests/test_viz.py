"""detaug.viz: pixel checks of the drawn boxes, tags, polygons, grids and PNG output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detaug.sample import Sample
from detaug.viz import (
    MIN_ALPHA,
    add_title,
    class_colors,
    draw_sample,
    label_text,
    line_alpha,
    make_grid,
    save_png,
    side_by_side,
)

BG = 37  # a grey no class colour uses (class colours have saturation >= 0.55)


def _canvas(h: int = 120, w: int = 160) -> np.ndarray:
    return np.full((h, w, 3), BG, np.uint8)


def _band_mask(h: int, w: int, box: tuple[int, int, int, int], t: int) -> np.ndarray:
    """Reference: the outermost t pixels of integer box [x1, x2) x [y1, y2)."""
    x1, y1, x2, y2 = box
    m = np.zeros((h, w), bool)
    m[y1:y2, x1:x2] = True
    m[y1 + t : y2 - t, x1 + t : x2 - t] = False
    return m


# ----------------------------------------------------------------------------- colours


def test_class_colors_distinct_deterministic_and_prefix_stable():
    c = class_colors(24)
    assert c.shape == (24, 3) and c.dtype == np.uint8
    assert np.array_equal(c, class_colors(24))
    assert np.array_equal(class_colors(5), c[:5])
    d = np.linalg.norm(c[:, None].astype(float) - c[None].astype(float), axis=2)
    d[np.diag_indices(24)] = np.inf
    assert d.min() > 25, d.min()
    assert np.linalg.norm(class_colors(8)[:, None].astype(float) - class_colors(8)[None], axis=2)[
        ~np.eye(8, dtype=bool)
    ].min() > 60
    # Saturated enough that a grey background never matches a class colour.
    assert (c.max(1).astype(int) - c.min(1) > 50).all()
    assert class_colors(0).shape == (0, 3)
    with pytest.raises(ValueError, match="nc"):
        class_colors(-1)


def test_label_text_and_alpha():
    assert label_text(0, 0.617, ["cat", "dog"]) == "cat 0.62"
    assert label_text(0, 0.617, ["cat"], show_weights=False) == "cat"
    assert label_text(1, 1.0, {1: "dog"}) == "dog"
    assert label_text(5, 0.5, ["cat"]) == "5 0.50"
    np.testing.assert_allclose(line_alpha(np.array([1.0, 0.62, 0.01, 2.0])), [1.0, 0.62, MIN_ALPHA, 1.0])


# ----------------------------------------------------------------------------- boxes


@pytest.mark.parametrize("t", [1, 2, 3])
def test_box_outlines_exactly_on_box_edges(t):
    h, w = 120, 160
    boxes = [(10, 12, 50, 40), (60, 50, 61 + 30, 50 + 25), (0, 0, w, h), (100, 5, 150, 30)]
    classes = [0, 1, 2, 3]
    s = Sample.create(_canvas(h, w), boxes=boxes, classes=classes)
    out = draw_sample(s, thickness=t, show_labels=False)
    colors = class_colors(4)
    expected = _canvas(h, w)
    for b, c in zip(boxes, classes, strict=True):
        expected[_band_mask(h, w, b, t)] = colors[c]
    np.testing.assert_array_equal(out, expected)


def test_fractional_and_degenerate_boxes_round_to_pixels():
    h, w = 60, 80
    s = Sample.create(_canvas(h, w), boxes=[[10.4, 20.6, 30.3, 40.7], [70.2, 50.1, 70.3, 50.2]], classes=[1, 0])
    out = draw_sample(s, thickness=1, show_labels=False)
    colors = class_colors(2)
    expected = _canvas(h, w)
    expected[_band_mask(h, w, (10, 21, 30, 41), 1)] = colors[1]
    expected[50, 70] = colors[0]  # a sub-pixel box still shows as one pixel
    np.testing.assert_array_equal(out, expected)


def test_weight_sets_line_opacity():
    h, w = 50, 60
    boxes = [(5, 5, 25, 25), (30, 5, 55, 25), (5, 30, 25, 45)]
    s = Sample.create(_canvas(h, w), boxes=boxes, classes=[0, 0, 0], weights=[1.0, 0.5, 0.05])
    out = draw_sample(s, thickness=2, show_labels=False).astype(float)
    col = class_colors(1)[0].astype(float)
    for b, a in zip(boxes, [1.0, 0.5, MIN_ALPHA], strict=True):
        band = _band_mask(h, w, b, 2)
        np.testing.assert_allclose(out[band], np.broadcast_to(col * a + BG * (1 - a), out[band].shape), atol=0.51)
    # Corners are blended once, not twice.
    np.testing.assert_allclose(out[5, 30], col * 0.5 + BG * 0.5, atol=0.51)


def _tag_columns(img: np.ndarray, row: int) -> np.ndarray:
    return np.flatnonzero((img[row] != BG).any(axis=1))


def test_tag_shows_name_and_weight_only_when_below_one():
    h, w = 100, 200
    base = dict(boxes=[[20, 40, 120, 90]], classes=[1])
    full = draw_sample(Sample.create(_canvas(h, w), **base, weights=[1.0]), names=["cat", "dog"])
    low = draw_sample(Sample.create(_canvas(h, w), **base, weights=[0.62]), names=["cat", "dog"])
    hidden = draw_sample(Sample.create(_canvas(h, w), **base, weights=[0.62]), names=["cat", "dog"], show_weights=False)
    row = 38  # just above the box: inside the tag
    c_full, c_low, c_hidden = (_tag_columns(x, row) for x in (full, low, hidden))
    assert c_full.min() == 20 and c_low.min() == 20
    assert c_low.max() > c_full.max() + 15  # " 0.62" makes the tag wider
    assert c_hidden.max() == c_full.max()
    # The tag is filled with the class colour (opaque at weight 1) behind the text...
    col = class_colors(2)[1]
    tag = full[row - 8 : row + 1, 20 : c_full.max() + 1]
    assert (tag == col).all(axis=2).mean() > 0.5
    # ...and holds text: some pixels are neither the colour nor the background.
    assert (~(tag == col).all(axis=2)).any()
    # Nothing is drawn inside the box beyond the outline.
    assert (full[40 + 2 : 90 - 2, 20 + 2 : 120 - 2] == BG).all()


def test_tag_moves_inside_when_box_touches_top():
    s = Sample.create(_canvas(80, 100), boxes=[[10, 0, 90, 60]], classes=[0])
    out = draw_sample(s)
    plain = draw_sample(s, show_labels=False)
    changed = np.argwhere((out != plain).any(axis=2))
    # The tag sits inside the box, at its top-left corner, and is small.
    assert changed[:, 0].min() >= 2 and changed[:, 0].max() < 20
    assert changed[:, 1].min() >= 10 and changed[:, 1].max() < 40
    tag = out[2:16, 12:22]  # a filled rectangle: colour or ink, no background
    assert (tag != BG).any(axis=2).all()
    assert (tag == class_colors(1)[0]).all(axis=2).mean() > 0.3


def test_draw_does_not_touch_the_sample():
    img = _canvas()
    img[::7] = 200
    polys = [np.array([[10, 10], [40, 12], [30, 35]], np.float32)]
    s = Sample.create(img, boxes=[[10, 10, 40, 35]], classes=[3], weights=[0.4], polygons=polys)
    before = (s.image.copy(), s.boxes.copy(), s.classes.copy(), s.weights.copy(), s.polygons[0].copy())
    out = draw_sample(s, names=["a", "b", "c", "d"])
    assert not np.shares_memory(out, s.image)
    assert out.dtype == np.uint8 and out.shape == s.image.shape and out.flags.c_contiguous
    for a, b in zip(before, (s.image, s.boxes, s.classes, s.weights, s.polygons[0]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (out != s.image).any()


def test_empty_sample_gives_an_equal_copy():
    s = Sample.create(_canvas())
    out = draw_sample(s)
    np.testing.assert_array_equal(out, s.image)
    assert not np.shares_memory(out, s.image)


def test_polygons_drawn_as_thin_outlines_of_every_part():
    h, w = 100, 100
    # Two parts (NaN separated): a diamond and a small square.
    diamond = [[50, 10], [80, 40], [50, 70], [20, 40]]
    square = [[85, 80], [95, 80], [95, 90], [85, 90]]
    poly = np.array([*diamond, [np.nan, np.nan], *square], np.float32)
    s = Sample.create(_canvas(h, w), boxes=[[20, 10, 95, 90]], classes=[0], polygons=[poly])
    col = class_colors(1)[0]
    with_poly = draw_sample(s, thickness=1, show_labels=False)
    without = draw_sample(s, thickness=1, show_labels=False, show_polygons=False)
    is_col = (with_poly == col).all(axis=2)
    diff = (with_poly != without).any(axis=2)
    # Vertices and edge midpoints of both parts are painted. They lie on pixel
    # corners, so one of the 2x2 pixels around each is.
    for x, y in [(50, 10), (80, 40), (50, 70), (20, 40), (35, 25), (65, 55), (90, 80), (95, 85), (85, 90)]:
        assert is_col[y - 1 : y + 1, x - 1 : x + 1].any(), (x, y)
    # Outlines, not fills: the insides are untouched and the lines are thin.
    assert (with_poly[40, 30:70] == BG).all() and (with_poly[84:88, 87:93] == BG).all()
    assert diff.sum() < 2.0 * (4 * np.hypot(30, 30) + 40)


# ----------------------------------------------------------------------------- grids


def test_make_grid_layout_and_sizes():
    imgs = [np.full((10 + 5 * k, 20 - k, 3), 10 * (k + 1), np.uint8) for k in range(5)]
    g = make_grid(imgs, pad=3, pad_value=250)
    # 5 images -> 3 columns, 2 rows; cells 30 x 20.
    assert g.shape == (2 * 30 + 3 * 3, 3 * 20 + 4 * 3, 3)
    for k, im in enumerate(imgs):
        r, c = divmod(k, 3)
        y = 3 + r * 33 + (30 - im.shape[0]) // 2
        x = 3 + c * 23 + (20 - im.shape[1]) // 2
        np.testing.assert_array_equal(g[y : y + im.shape[0], x : x + im.shape[1]], im)
    painted = sum(im.shape[0] * im.shape[1] for im in imgs)
    assert (g == 250).all(axis=2).sum() == g.shape[0] * g.shape[1] - painted
    assert make_grid(imgs, cols=1, pad=0).shape == (5 * 30, 20, 3)
    assert make_grid(imgs, cols=9, pad=0).shape == (30, 5 * 20, 3)  # cols capped at len
    assert make_grid([np.zeros((4, 6), np.uint8)], pad=1).shape == (6, 8, 3)  # grey ok


def test_make_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="images"):
        make_grid([])
    with pytest.raises(ValueError, match="cols"):
        make_grid([np.zeros((2, 2, 3), np.uint8)], cols=0)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        make_grid([np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.float32)])


def test_side_by_side_and_titles():
    a = np.full((40, 30, 3), 1, np.uint8)
    b = np.full((20, 50, 3), 2, np.uint8)
    sbs = side_by_side(a, b, pad=2)
    assert sbs.shape == (40 + 4, 2 * 50 + 6, 3)
    np.testing.assert_array_equal(sbs[2:42, 2 + 10 : 2 + 40], a)
    titled = side_by_side(a, b, titles=("before", "after"), pad=2)
    assert titled.shape == (62 + 4, 106, 3)
    t = add_title(a, "before")
    np.testing.assert_array_equal(t[22:], a)
    assert (t[:22] < 128).any() and (t[:22] == 255).mean() > 0.5  # dark text on white
    with pytest.raises(ValueError, match="titles"):
        side_by_side(a, b, titles=["one"])


def test_save_png_roundtrip_rgb(tmp_path):
    img = np.zeros((7, 9, 3), np.uint8)
    img[..., 0] = 200  # pure red in RGB
    img[3, 4] = (1, 2, 3)
    p = save_png(tmp_path / "a" / "b" / "x.png", img)
    assert p.exists()
    back = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back[..., ::-1], img)
