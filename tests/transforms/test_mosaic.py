"""Mosaic: against a naive canvas reference, pixel oracle, one warp per tile, properties."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug import geometry
from detaug.sample import Sample
from detaug.transforms.affine import AffineParams, RandomAffine
from detaug.transforms.base import BoxFilter
from detaug.transforms.mosaic import Mosaic, MosaicParams
from tests.oracle import (
    assert_matches_paint,
    paint_objects,
    reference_affine_matrix,
    reference_box_envelope,
    reference_box_filter,
    reference_warp_points,
)

S = 96
TILE_BG = (40, 40, 40)
# (h, w) before placement; tiles get long side S: as is, as is, x0.96 (inexact), x2
SIZES4 = [(96, 96), (64, 96), (100, 77), (48, 40)]
# every size the pinwheel depends on differs from the ones it could be confused with
SIZES9 = [(96, 80), (64, 96), (100, 77), (72, 96), (96, 96), (120, 75), (24, 48), (90, 100), (80, 96)]


# ----------------------------------------------------------------------------- naive reference


def ref_tile_size(h: int, w: int, s: int) -> tuple[int, int]:
    r = s / max(h, w)
    return max(1, round(h * r)), max(1, round(w * r))


def ref_layout(sizes, n: int, s: int, xc: int, yc: int):
    """Per cell: (x0, y0) of the placed tile in the 2s x 2s frame and its visible rect there.

    Written from the spec, by slicing logic, independently of the code's matrices:
    n = 4 as Ultralytics' mosaic (tiles meet at (xc, yc)); n = 9 the pinwheel on a
    3s x 3s layout, cut by the window at (xc - s//2, yc - s//2).
    """
    out = []
    if n == 4:
        for i, (h, w) in enumerate(sizes):
            if i == 0:
                x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
                x0, y0 = xc - w, yc - h
            elif i == 1:
                x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
                x0, y0 = xc, yc - h
            elif i == 2:
                x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * s, yc + h)
                x0, y0 = xc - w, yc
            else:
                x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * s), min(2 * s, yc + h)
                x0, y0 = xc, yc
            out.append(((x0, y0), (x1a, y1a, max(x2a, x1a), max(y2a, y1a))))
        return out
    hp = wp = None
    h0 = w0 = None
    ox, oy = xc - s // 2, yc - s // 2
    for i, (h, w) in enumerate(sizes):
        if i == 0:
            h0, w0 = h, w
            c = (s, s)
        elif i == 1:
            c = (s, s - h)
        elif i == 2:
            c = (s + wp, s - h)
        elif i == 3:
            c = (s + w0, s)
        elif i == 4:
            c = (s + w0, s + hp)
        elif i == 5:
            c = (s + w0 - w, s + h0)
        elif i == 6:
            c = (s + w0 - wp - w, s + h0)
        elif i == 7:
            c = (s - w, s + h0 - h)
        else:
            c = (s - w, s + h0 - hp - h)
        hp, wp = h, w
        x0, y0 = c[0] - ox, c[1] - oy
        vis = (max(x0, 0), max(y0, 0), min(x0 + w, 2 * s), min(y0 + h, 2 * s))
        out.append(((x0, y0), (vis[0], vis[1], max(vis[2], vis[0]), max(vis[3], vis[1]))))
    return out


def ref_canvas(tiles, n, s, center, border):
    """The 2s x 2s canvas Ultralytics would build, and a map of which cell each pixel shows (-1: none)."""
    resized = []
    for t in tiles:
        ph, pw = ref_tile_size(t.height, t.width, s)
        img = t.image if (ph, pw) == t.size else cv2.resize(t.image, (pw, ph), interpolation=cv2.INTER_LINEAR)
        resized.append(img)
    canvas = np.empty((2 * s, 2 * s, 3), np.uint8)
    canvas[...] = border
    label = np.full((2 * s, 2 * s), -1, np.int64)
    for i, ((x0, y0), (x1, y1, x2, y2)) in enumerate(ref_layout([r.shape[:2] for r in resized], n, s, *center)):
        canvas[y1:y2, x1:x2] = resized[i][y1 - y0 : y2 - y0, x1 - x0 : x2 - x0]
        label[y1:y2, x1:x2] = i
    return canvas, label


def ref_warp(canvas, a, s, border):
    mc = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]]) @ a @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    if np.allclose(mc[2], [0, 0, 1]):
        return cv2.warpAffine(canvas, mc[:2], (s, s), flags=cv2.INTER_LINEAR, borderValue=border)
    return cv2.warpPerspective(canvas, mc, (s, s), flags=cv2.INTER_LINEAR, borderValue=border)


def interior(label, a, s, margin=1.5):
    """(s, s) map: the cell every output pixel shows, or -9 near a seam (within ``margin`` canvas px).

    -2 marks pixels whose pre-image is outside the canvas.
    """
    ys, xs = np.mgrid[0:s, 0:s]
    q = reference_warp_points(np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1), np.linalg.inv(a))
    n2 = label.shape[0]
    res = None
    for dx in (-margin, 0, margin):
        for dy in (-margin, 0, margin):
            cx, cy = np.floor(q[:, 0] + dx).astype(int), np.floor(q[:, 1] + dy).astype(int)
            inside = (cx >= 0) & (cy >= 0) & (cx < n2) & (cy < n2)
            lab = np.full(len(q), -2)
            lab[inside] = label[cy[inside], cx[inside]]
            res = lab if res is None else np.where(res == lab, res, -9)
    return res.reshape(s, s)


def cell_shifts(mosaic, src, p, tiles, a):
    """Per cell, the (dx, dy) by which the plan moved that tile's map away from the reference's ``a @ placement``.

    The plan snaps axis-aligned tile maps to whole output pixels (so that they
    are painted by a resize): the linear part is the reference's, and the
    translation moves by at most half a pixel; other maps are the reference's.
    References follow the plan's maps with ``translation(dx, dy) @ a`` per cell.
    """
    order = p.cell_sources()
    layout = ref_layout([ref_tile_size(t.height, t.width, S) for t in tiles], p.n, S, *p.center)
    shifts = [np.zeros(2) for _ in tiles]
    for w in mosaic.plan(src, p)[1].warps:
        cell = order.index(w.source)
        (x0, y0), _ = layout[cell]
        ph, pw = ref_tile_size(tiles[cell].height, tiles[cell].width, S)
        ref = a @ np.array([[pw / tiles[cell].width, 0, x0], [0, ph / tiles[cell].height, y0], [0, 0, 1]])
        np.testing.assert_allclose(w.matrix[:, :2], ref[:, :2], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(w.matrix[2], ref[2], rtol=1e-9, atol=1e-12)
        d = w.matrix[:2, 2] - ref[:2, 2]
        aligned = geometry.axis_scales(ref) is not None
        assert np.all(np.abs(d) <= (0.5 + 1e-6 if aligned else 1e-9)), f"cell {cell} moved by {d}"
        shifts[cell] = d
    return shifts


def smooth_image(rng, h, w):
    small = rng.integers(30, 226, (5, 5, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(20, 235))


def tiles_for(sizes, seed):
    rng = np.random.default_rng(seed)
    return [Sample.create(smooth_image(rng, h, w)) for h, w in sizes]


def affine_of(p: AffineParams, s: int) -> np.ndarray:
    return reference_affine_matrix((2 * s, 2 * s), (s, s), p.degrees, p.scale, p.shear_x, p.shear_y,
                                   p.persp_x, p.persp_y, p.translate_x, p.translate_y)


REF_CASES = [
    ("identity", AffineParams.identity(), (96, 96)),
    ("identity-offcentre", AffineParams.identity(), (61, 130)),
    ("rotate", AffineParams(degrees=12, scale=0.8), (110, 80)),
    ("full", AffineParams(degrees=-20, scale=0.6, shear_x=4, shear_y=-2, translate_x=0.1, translate_y=-0.05), (70, 100)),
    ("perspective", AffineParams(degrees=5, scale=0.7, persp_x=3e-4, persp_y=-2e-4), (100, 90)),
    # the output sees the whole frame and beyond: tiles must be cut at the frame's edge
    ("zoom-out", AffineParams(degrees=3, scale=0.35, translate_x=0.1), (60, 125)),
]


@pytest.mark.parametrize("n", [4, 9])
@pytest.mark.parametrize("name, ap, center", REF_CASES, ids=[c[0] for c in REF_CASES])
def test_matches_naive_canvas_reference(n, name, ap, center):
    """Warping tiles straight into the output == building the canvas and warping it, away from seams."""
    sizes = SIZES4 if n == 4 else SIZES9
    tiles = tiles_for(sizes, seed=n)
    border = (3, 3, 3)
    mosaic = Mosaic(n=n, img_size=S, fill=border)
    for primary in (0, n - 1):
        p = MosaicParams(n=n, primary_cell=primary, center=center, affine=ap)
        src = [tiles[k] for k in np.argsort(p.cell_sources())]  # so that cell i shows tiles[i]
        out = mosaic.apply(src[0], src[1:], p)
        canvas, label = ref_canvas(tiles, n, S, center, border)
        a = affine_of(ap, S)
        lab = interior(label, a, S)
        ref = ref_warp(canvas, a, S, border)
        for cell, d in enumerate(cell_shifts(mosaic, src, p, tiles, a)):  # each tile where the plan put it
            if np.any(d != 0):
                ref = np.where((lab == cell)[..., None], ref_warp(canvas, geometry.translation(*d) @ a, S, border), ref)
        tile_px = lab >= 0
        # a tile cut by the frame's edge at a fractional tile pixel may bleed up to
        # ~1.5 tile pixels (3 canvas px for the 2x tile) beyond it
        far = interior(label, a, S, margin=3.5)
        empty_px = (far == -1) | (far == -2)
        assert tile_px.mean() > 0.2 and (tile_px | empty_px).mean() > 0.6, "vacuous: mostly seams"
        diff = np.abs(out.image.astype(int) - ref.astype(int)).max(-1)
        if name.startswith("identity"):
            # integer placement, no warp: a plain copy of the tiles that need no resize
            no_resize = np.isin(lab, [i for i, t in enumerate(tiles) if max(t.size) == S])
            assert no_resize.sum() > S * S // 4
            assert np.array_equal(out.image[no_resize], ref[no_resize])
        # elsewhere one bilinear warp vs the reference's resize + warp of smooth images
        assert diff[tile_px].max() <= 4, f"max diff {diff[tile_px].max()} inside tiles"
        assert np.all(out.image[empty_px] == border), "pixels where no tile lands must be the border value"


@pytest.mark.parametrize("n", [4, 9])
def test_centre_crop_of_square_tiles_is_an_exact_copy(n):
    tiles = tiles_for([(S, S)] * n, seed=11)
    mosaic = Mosaic(n=n, img_size=S)
    for seed in range(5):
        p = mosaic.sample_params(np.random.default_rng(seed), tiles[0], tiles[1:])
        src = [tiles[k] for k in np.argsort(p.cell_sources())]
        out = mosaic.apply(src[0], src[1:], p)
        canvas, _ = ref_canvas(tiles, n, S, p.center, (114, 114, 114))
        assert np.array_equal(out.image, canvas[S // 2 : S // 2 + S, S // 2 : S // 2 + S])


# ----------------------------------------------------------------------------- labels vs reference


def _boxed_tiles(sizes, seed, polygons=False):
    """Tiles with two painted objects each (ids global, colours unique), on TILE_BG."""
    rng = np.random.default_rng(seed)
    tiles, all_colors, k = [], [], 0
    unit = [
        [[0, 0], [3, 0], [3, 7], [9, 7], [9, 10], [0, 10]],
        [[0, 0], [10, 0], [10, 3], [6, 3], [6, 10], [4, 10], [4, 3], [0, 3]],
        [[3, 0], [7, 0], [7, 3], [10, 3], [10, 7], [7, 7], [7, 10], [3, 10], [3, 7], [0, 7], [0, 3], [3, 3]],
        [[0, 0], [4, 0], [4, 4], [7, 4], [7, 7], [10, 7], [10, 10], [0, 10]],
        [[0, 0], [4, 0], [4, 4], [0, 4], [np.nan, np.nan], [6, 6], [10, 6], [10, 10], [6, 10]],
    ]
    n_total = 2 * len(sizes)
    from tests.oracle import distinct_colors

    palette = distinct_colors(n_total, avoid=[(114, 114, 114), TILE_BG])
    for h, w in sizes:
        objs = []
        horizontal = w >= h
        half = (w if horizontal else h) // 2
        other = h if horizontal else w
        for part in range(2):
            ext = min(half, other) - 6
            if polygons:
                q = max(1, ext // 10)
                shape = np.asarray(unit[int(rng.integers(len(unit)))], np.float64) * q
                size = 10 * q
            else:
                size = None
            if polygons:
                ow = oh = size
            else:
                ow, oh = (int(v) for v in rng.integers(max(3, ext // 3), ext + 1, 2))
            a0 = part * half + 3 + int(rng.integers(0, half - 6 - ow + 1 if horizontal else half - 6 - oh + 1))
            b0 = 3 + int(rng.integers(0, (other - 6 - (oh if horizontal else ow)) + 1))
            x0, y0 = (a0, b0) if horizontal else (b0, a0)
            objs.append(shape + [x0, y0] if polygons else np.array([x0, y0, x0 + ow, y0 + oh], np.float64))
        img, cols = paint_objects(h, w, objs, background=TILE_BG, colors=palette[k : k + 2])
        if polygons:
            boxes = [[np.nanmin(p[:, 0]), np.nanmin(p[:, 1]), np.nanmax(p[:, 0]), np.nanmax(p[:, 1])] for p in objs]
            t = Sample.create(img, boxes=boxes, classes=[k, k + 1], polygons=objs)
        else:
            t = Sample.create(img, boxes=np.stack(objs), classes=[k, k + 1])
        tiles.append(t)
        all_colors.append(cols)
        k += 2
    return tiles, np.concatenate(all_colors)


def _reference_objects(tiles, n, s, center, a, shifts):
    """Per object id (float64): whole box moved (unclipped), and the clipped visible box (boxes only).

    Tile i goes through ``translation(*shifts[i]) @ a`` (the plan's snapped map, see :func:`cell_shifts`).
    A moved tile is cut by its cell where it lies (the cell moves with it) and by the frame where
    the frame's clip cuts the pixels (the frame does not move).
    """
    layout = ref_layout([ref_tile_size(t.height, t.width, s) for t in tiles], n, s, *center)
    inf, (xc, yc) = np.inf, center
    cells = [(-inf, -inf, xc, yc), (xc, -inf, inf, yc), (-inf, yc, xc, inf), (xc, yc, inf, inf)] if n == 4 else (
        [(-inf, -inf, inf, inf)] * n)
    frame_out = reference_box_envelope(np.array([0, 0, 2 * s, 2 * s], np.float64), a)[0]
    full, after = {}, {}
    for t, ((x0, y0), vis), d, cell in zip(tiles, layout, shifts, cells, strict=True):
        a_t = geometry.translation(*d) @ a
        if np.any(d != 0):  # an axis-aligned map, moved: cut by the cell, then by the frame in the output
            vis, lim = cell, np.array([*frame_out[:2], *frame_out[2:]])
        else:
            lim = np.array([-inf, -inf, inf, inf])
        ph, pw = ref_tile_size(t.height, t.width, s)
        sx, sy = pw / t.width, ph / t.height
        place = np.array([[sx, 0, x0], [0, sy, y0], [0, 0, 1]], np.float64)
        for j, k in enumerate(t.classes.tolist()):
            if t.polygons is not None:
                pts = t.polygons[j][~np.isnan(t.polygons[j][:, 0])]
                q = reference_warp_points(reference_warp_points(pts, place), a_t)
                full[k] = np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()])
            else:
                b = t.boxes[j].astype(np.float64)
                bc = np.array([b[0] * sx + x0, b[1] * sy + y0, b[2] * sx + x0, b[3] * sy + y0])
                full[k] = reference_box_envelope(bc, a_t)[0]
                clipped = np.clip(bc, [vis[0], vis[1]] * 2, [vis[2], vis[3]] * 2)
                after[k] = np.clip(np.clip(reference_box_envelope(clipped, a_t)[0], lim[:2].tolist() * 2,
                                           lim[2:].tolist() * 2), 0, s)
    ids = sorted(full)
    return np.stack([full[k] for k in ids]), (np.stack([after[k] for k in ids]) if after else None)


ORACLE_CASES = [
    ("identity", None, AffineParams.identity()),
    ("scale-translate", None, AffineParams(scale=1.3, translate_x=0.05, translate_y=-0.08)),
    ("rotate", None, AffineParams(degrees=15, scale=0.7)),
    ("zoom-out", None, AffineParams(scale=0.45, translate_x=-0.1, translate_y=0.05)),
    ("random", RandomAffine(degrees=10, translate=0.1, scale=0.5, shear=2, perspective=2e-4), None),
]


@pytest.mark.parametrize("polygons", [False, True], ids=["boxes", "polygons"])
@pytest.mark.parametrize("n", [4, 9])
@pytest.mark.parametrize("case, affine, ap", ORACLE_CASES, ids=[c[0] for c in ORACLE_CASES])
def test_pixel_oracle_and_reference_labels(case, affine, ap, n, polygons):
    sizes = SIZES4 if n == 4 else SIZES9
    tiles, colors = _boxed_tiles(sizes, seed=n + 7, polygons=polygons)
    f = BoxFilter()
    mosaic = Mosaic(n=n, img_size=S, affine=affine, box_filter=f)
    seen = 0
    for seed in range(4):
        p = mosaic.sample_params(np.random.default_rng(seed), tiles[0], tiles[1:])
        if ap is not None:
            p = MosaicParams(n=n, primary_cell=p.primary_cell, center=p.center, affine=ap)
        order = p.cell_sources()
        src = [tiles[k] for k in np.argsort(order)]
        inputs = [(x.image.copy(), x.boxes.copy()) for x in src]
        out = mosaic.apply(src[0], src[1:], p)
        assert out.image.shape == (S, S, 3)
        for x, (img, b) in zip(src, inputs, strict=True):
            assert np.array_equal(x.image, img) and np.array_equal(x.boxes, b)
        a = affine_of(p.affine, S)
        full, after = _reference_objects(tiles, n, S, p.center, a, cell_shifts(mosaic, src, p, tiles, a))
        aa = p.affine.degrees == 0 and p.affine.shear_x == 0 and p.affine.shear_y == 0 and p.affine.persp_x == 0
        assert_matches_paint(out, colors, full, polygons=polygons, axis_aligned=aa, box_filter=f,
                             backgrounds=[TILE_BG, (114, 114, 114)])
        if not polygons:
            keep, margin = reference_box_filter(full, after)
            ok = margin > 1e-3
            got = np.zeros(len(full), bool)
            got[out.classes] = True
            assert np.array_equal(got[ok], keep[ok]), "keep decisions differ from the float64 reference"
            sel = ok[out.classes]
            np.testing.assert_allclose(out.boxes[sel], after[out.classes[sel]], atol=2e-3)
        else:
            assert out.polygons is not None and len(out.polygons) == out.num_objects
        seen += out.num_objects
    assert seen >= 6


# ----------------------------------------------------------------------------- never a canvas


@pytest.mark.parametrize("rotate", [False, True], ids=["identity", "affine"])
@pytest.mark.parametrize("n", [4, 9])
def test_one_warp_per_visible_tile_straight_into_the_output(n, rotate, monkeypatch):
    sizes = SIZES4 if n == 4 else SIZES9
    tiles = tiles_for(sizes, seed=3)
    affine = RandomAffine(degrees=10, translate=0.1, scale=0.5, shear=2) if rotate else None
    mosaic = Mosaic(n=n, img_size=S, affine=affine)
    calls = []
    real = geometry.warp_into

    def spy(dst, src, m, *args, **kwargs):
        calls.append((dst, src.shape, geometry.warped_bounds(src.shape[:2], m, dst.shape[:2])))
        return real(dst, src, m, *args, **kwargs)

    monkeypatch.setattr(geometry, "warp_into", spy)
    for seed in range(4):
        calls.clear()
        p = mosaic.sample_params(np.random.default_rng(seed), tiles[0], tiles[1:])
        src = [tiles[k] for k in np.argsort(p.cell_sources())]
        out = mosaic.apply(src[0], src[1:], p)
        # expected: tiles whose visible part, warped, overlaps the output (from the reference layout)
        a = affine_of(p.affine, S)
        visible = 0
        for _, (x1, y1, x2, y2) in ref_layout([ref_tile_size(h, w, S) for h, w in sizes], n, S, *p.center):
            if x2 <= x1 or y2 <= y1:
                continue
            quad = reference_warp_points([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], a).astype(np.float32)
            frame = np.array([[0, 0], [S, 0], [S, S], [0, S]], np.float32)
            visible += cv2.intersectConvexConvex(quad, frame)[0] > 1e-6
        assert len(calls) == visible and visible >= 3
        area = 0
        for dst, shape, bounds in calls:
            assert np.shares_memory(dst, out.image) and dst.shape == (S, S, 3)
            assert shape[0] <= max(h for h, _ in sizes) and shape[1] <= max(w for _, w in sizes)
            x0, y0, x1, y1 = bounds
            assert x1 - x0 <= S and y1 - y0 <= S
            area += (x1 - x0) * (y1 - y0)
        # about one warp per output pixel: the ROIs are the bounding rectangles of the warped
        # visible crops; they overlap along the seams, and more where the cells are rotated
        assert area <= (1.6 * S * S if rotate else S * S + len(calls) * 4 * (S + 2))


def test_no_canvas_is_allocated():
    """Peak numpy memory while mosaicking stays far below one 2s x 2s canvas."""
    s = 256
    tiles = [Sample.create(np.full((s, s, 3), 50 + 10 * i, np.uint8), boxes=[[10, 10, 200, 200]]) for i in range(4)]
    mosaic = Mosaic(n=4, img_size=s, affine=RandomAffine(degrees=10, scale=0.5, shear=2))
    p = mosaic.sample_params(np.random.default_rng(0), tiles[0], tiles[1:])
    mosaic.apply(tiles[0], tiles[1:], p)  # warm up
    tracemalloc.start()
    try:
        out = mosaic.apply(tiles[0], tiles[1:], p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    canvas_bytes = (2 * s) * (2 * s) * 3
    assert out.image.nbytes <= peak < 0.6 * canvas_bytes


# ----------------------------------------------------------------------------- params


def test_primary_cell_and_centre_are_random():
    tiles = tiles_for([(32, 32)] * 9, seed=0)
    for n in (4, 9):
        m = Mosaic(n=n, img_size=32, center=(0.5, 1.5))
        ps = [m.sample_params(np.random.default_rng(seed), tiles[0], tiles[1 : n]) for seed in range(60)]
        cells = {p.primary_cell for p in ps}
        assert cells == set(range(n)) if n == 4 else len(cells) >= 7
        xs = np.array([p.center for p in ps])
        assert xs.min() >= 16 and xs.max() < 48 and len(set(xs[:, 0].tolist())) > 10
        assert all(p.affine == AffineParams.identity() for p in ps)
        # the primary sample really lands in its cell: its pixels are in the output where the cell is
        p = next(q for q in ps if q.primary_cell == n - 1)
        marked = [Sample.create(np.full((32, 32, 3), 200 if i == 0 else 60, np.uint8)) for i in range(n)]
        out = m.apply(marked[0], marked[1:], p)
        _, label = ref_canvas(marked, n, 32, p.center, (0, 0, 0))
        lab = interior(label, affine_of(p.affine, 32), 32)
        if (lab == n - 1).any():
            assert np.all(out.image[lab == n - 1] == 200)
            assert not np.any(out.image[(lab >= 0) & (lab != n - 1)] == 200)
    # same seed, same params
    m = Mosaic(n=4, img_size=32, affine=RandomAffine(degrees=5))
    a = m.sample_params(np.random.default_rng(9), tiles[0], tiles[1:4])
    b = m.sample_params(np.random.default_rng(9), tiles[0], tiles[1:4])
    assert a == b and a.affine != AffineParams.identity()


def test_cell_sources():
    assert MosaicParams(n=4, primary_cell=0, center=(0, 0)).cell_sources() == (0, 1, 2, 3)
    assert MosaicParams(n=4, primary_cell=3, center=(0, 0)).cell_sources() == (1, 2, 3, 0)
    assert MosaicParams(n=9, primary_cell=4, center=(0, 0)).cell_sources() == (1, 2, 3, 4, 0, 5, 6, 7, 8)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n": 5}, "n"),
        ({"n": True}, "n"),
        ({"img_size": 0}, "img_size"),
        ({"img_size": 32.0}, "img_size"),
        ({"center": (1.5, 0.5)}, "center"),
        ({"center": (0.5, 2.5)}, "center"),
        ({"center": 1.0}, "center"),
        ({"affine": "yes"}, "affine"),
        ({"fill": -1}, "fill"),
        ({"box_filter": None}, "box_filter"),
    ],
)
def test_constructor_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Mosaic(**kwargs)


def test_partner_count_and_params_are_checked():
    tiles = tiles_for([(16, 16)] * 4, seed=0)
    m = Mosaic(n=4, img_size=16)
    assert m.num_partners == 3 and Mosaic(n=9).num_partners == 8
    with pytest.raises(ValueError, match="partners"):
        m.sample_params(np.random.default_rng(0), tiles[0], tiles[1:3])
    p = m.sample_params(np.random.default_rng(0), tiles[0], tiles[1:])
    with pytest.raises(ValueError, match="partners"):
        m.apply(tiles[0], tiles[1:3], p)
    with pytest.raises(ValueError, match="params"):
        Mosaic(n=9, img_size=16).apply(tiles[0], [tiles[1]] * 8, p)
    with pytest.raises(ValueError, match="primary_cell"):
        MosaicParams(n=4, primary_cell=4, center=(0, 0))


def test_polygons_kept_only_when_every_tile_with_objects_has_them():
    poly = [np.array([[2, 2], [10, 2], [6, 12]], np.float32)]
    with_p = Sample.create(np.zeros((16, 16, 3), np.uint8), boxes=[[2, 2, 10, 12]], polygons=poly)
    without = Sample.create(np.zeros((16, 16, 3), np.uint8), boxes=[[2, 2, 10, 12]])
    empty = Sample.create(np.zeros((16, 16, 3), np.uint8))
    m = Mosaic(n=4, img_size=16)
    p = MosaicParams(n=4, primary_cell=0, center=(16, 16))
    out = m.apply(with_p, [with_p, empty, with_p], p)
    assert out.polygons is not None and len(out.polygons) == out.num_objects
    out = m.apply(with_p, [with_p, without, with_p], p)
    assert out.polygons is None and out.num_objects >= 1


# ----------------------------------------------------------------------------- properties


@st.composite
def tile_sets(draw):
    n = draw(st.sampled_from([4, 9]))
    s = draw(st.sampled_from([16, 24, 32]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    use_polys = draw(st.sampled_from(["all", "none", "mixed"]))
    tiles = []
    for t in range(n):
        h, w = (int(v) for v in rng.integers(4, 48, 2))
        k = int(rng.integers(0, 5))
        xy = rng.uniform(0, [w - 1, h - 1], (k, 2))
        wh = rng.uniform(0.5, [w, h], (k, 2))
        b = np.concatenate([xy, np.minimum(xy + wh, [w, h])], 1)
        polys = None
        if use_polys == "all" or (use_polys == "mixed" and t % 2 == 0):
            polys = [np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]) for x1, y1, x2, y2 in b]
        tiles.append(
            Sample.create(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), boxes=b,
                          classes=np.arange(k) + 10 * t, weights=rng.uniform(0.01, 1, k), polygons=polys)
        )
    return n, s, tiles, seed


@settings(max_examples=40, deadline=None)
@given(data=tile_sets(), affine_on=st.booleans())
def test_properties(data, affine_on):
    n, s, tiles, seed = data
    affine = RandomAffine(degrees=45, translate=0.3, scale=0.6, shear=10, perspective=2e-3) if affine_on else None
    m = Mosaic(n=n, img_size=s, affine=affine)
    snaps = [(t.image.copy(), t.boxes.copy(), t.weights.copy()) for t in tiles]
    p = m.sample_params(np.random.default_rng(seed), tiles[0], tiles[1:])
    out = m.apply(tiles[0], tiles[1:], p)
    again = m(tiles[0], tiles[1:], np.random.default_rng(seed))
    assert out.image.tobytes() == again.image.tobytes() and out.boxes.tobytes() == again.boxes.tobytes()
    for t, (img, b, w) in zip(tiles, snaps, strict=True):
        assert np.array_equal(t.image, img) and np.array_equal(t.boxes, b) and np.array_equal(t.weights, w)
    k = out.num_objects
    assert out.image.shape == (s, s, 3)
    assert out.boxes.shape == (k, 4) and out.classes.shape == (k,) and out.weights.shape == (k,)
    bx = out.boxes
    assert np.all(np.isfinite(bx)) and np.all(bx >= 0) and np.all(bx <= s)
    assert np.all(bx[:, 2] - bx[:, 0] >= 2 - 1e-4) and np.all(bx[:, 3] - bx[:, 1] >= 2 - 1e-4)
    weight_of = {int(c): float(w) for t in tiles for c, w in zip(t.classes, t.weights, strict=True)}
    assert all(weight_of[int(c)] == float(w) for c, w in zip(out.classes, out.weights, strict=True))
    assert np.all((out.weights > 0) & (out.weights <= 1))
    assert len(set(out.classes.tolist())) == k
    needs = any(t.polygons is None and t.num_objects for t in tiles)
    has = any(t.polygons is not None for t in tiles)
    if has and not needs:
        assert out.polygons is not None and len(out.polygons) == k
        for poly in out.polygons:
            q = poly[~np.isnan(poly[:, 0])]
            assert len(q) >= 3 and np.all(q >= -1e-4) and np.all(q <= s + 1e-4)
    else:
        assert out.polygons is None


def test_nothing_is_drawn_outside_the_frame():
    """Zoomed out, the output shows the frame's edge: pixels centred outside it are border, inside are tile."""
    tiles = [Sample.create(np.full((S, S, 3), 200, np.uint8)) for _ in range(4)]
    p = MosaicParams(n=4, primary_cell=0, center=(S, S), affine=AffineParams(degrees=7, scale=0.4, translate_x=0.05))
    out = Mosaic(n=4, img_size=S, fill=9).apply(tiles[0], tiles[1:], p)
    ys, xs = np.mgrid[0:S, 0:S]
    q = reference_warp_points(np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1), np.linalg.inv(affine_of(p.affine, S)))
    depth = np.minimum(q, 2 * S - q).min(axis=1).reshape(S, S)  # canvas px inside the frame (< 0: outside)
    seam = np.abs(q - S).min(axis=1).reshape(S, S)  # canvas px from the lines where the tiles meet
    assert (depth < 0).sum() > S and (depth > 3).sum() > S
    assert np.all(out.image[depth < 0] == 9)
    assert np.all(out.image[(depth > 3) & (seam > 3)] == 200)
    # Known limitation: where two tiles meet at a fractional output position, the seam pixel
    # blends both tiles and, by at most a quarter, the border value (each tile's edge is blended
    # with whatever the output held when it was drawn).
    on_seam = (depth > 3) & (seam <= 3)
    assert on_seam.any()
    assert np.all(np.abs(out.image[on_seam].astype(int) - 200) <= 0.25 * (200 - 9) + 1)
