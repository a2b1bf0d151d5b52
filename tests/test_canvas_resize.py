"""Axis-aligned warps painted with cv2.resize: the snap, the resize itself, and no fill-coloured seam between tiles."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from detaug import geometry
from detaug.batch_transforms.painter import DevicePainter
from detaug.batch_transforms.plan_batch import collate_plans
from detaug.canvas import paint_canvas
from detaug.plan import SamplePlan
from detaug.sample import Sample
from detaug.transforms.affine import AffineParams, RandomAffine, letterbox_matrix
from detaug.transforms.mosaic import Mosaic

FILL = (114, 114, 114)


def test_snap_moves_by_at_most_half_a_pixel_and_lands_the_corner_on_whole_pixels():
    rng = np.random.default_rng(0)
    for _ in range(500):
        k = rng.uniform(0.1, 4.0, 2)
        m = geometry.translation(*rng.uniform(-300, 300, 2)) @ geometry.scaling(*k)
        origin = rng.integers(0, 200, 2).astype(float)
        before = m.copy()
        got = geometry.snap_translation(m, tuple(origin))
        assert np.array_equal(m, before)  # never writes into its argument
        assert np.array_equal(got[:, :2], m[:, :2]) and np.array_equal(got[2], m[2])
        assert np.all(np.abs(got[:2, 2] - m[:2, 2]) <= 0.5 + 1e-6)
        corner = got[:2, :2] @ origin + got[:2, 2]
        assert np.allclose(corner, np.round(corner), atol=1e-9)
    r = geometry.translation(3.3, 1.2) @ geometry.rotation_scale(5, 1.2)
    assert np.array_equal(geometry.snap_translation(r, (2, 2)), r)
    with pytest.raises(ValueError, match="m:"):
        geometry.snap_translation(np.eye(2))


@pytest.mark.parametrize("seed", range(6))
def test_resize_paints_the_same_map_as_warp_affine(seed):
    """Inside its rect a resize-painted crop is the bilinear warp by its map (edges clamped), within a level."""
    rng = np.random.default_rng(seed)
    src = cv2.resize(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), (int(rng.integers(5, 60)),
                     int(rng.integers(5, 60))), interpolation=cv2.INTER_CUBIC)
    m = geometry.snap_translation(geometry.translation(*rng.uniform(-10, 40, 2)) @ geometry.scaling(
        *rng.uniform(0.3, 2.5, 2)))
    rect = geometry.aligned_rect(src.shape[:2], m)
    assert rect is not None
    dst = np.full((80, 90, 3), 7, np.uint8)
    geometry.warp_into(dst, src, m)
    mc = geometry.translation(-0.5, -0.5) @ m @ geometry.translation(0.5, 0.5)
    ref = cv2.warpAffine(src, mc[:2], (90, 80), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = max(rect[0], 0), max(rect[1], 0), min(rect[2], 90), min(rect[3], 80)
    inside = np.zeros((80, 90), bool)
    inside[y0:y1, x0:x1] = True
    assert inside.any()
    assert np.abs(dst[inside].astype(int) - ref[inside].astype(int)).max() <= 1
    assert np.all(dst[~inside] == 7)
    # the whole image (affine alone): the pixels covered by at least half, the fill around them
    whole = geometry.warp_image(src, m, (80, 90), fill=FILL)
    assert np.array_equal(whole[inside], dst[inside]) and np.all(whole[~inside] == 114)


def test_the_affine_alone_is_snapped_and_exactly_resized():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    s = Sample.create(img, boxes=[[3, 4, 20, 30]], classes=[0])
    aff = RandomAffine(translate=0.2, scale=0.5, img_size=64)
    for _ in range(10):
        p = aff.sample_params(rng, s)
        m = aff.matrix(s, p)
        assert geometry.aligned_rect(img.shape[:2], m) is not None
        out = aff.apply(s, p)
        np.testing.assert_allclose(out.boxes[0], np.clip(geometry.warp_boxes(s.boxes, m)[0], 0, 64), atol=1e-4)
        lb = letterbox_matrix((37, 53), p, 64)
        assert geometry.aligned_rect(img.shape[:2], lb) is not None
        assert abs(lb[0, 0] - 64 / 53 * p.scale) < 1e-12
    rot = aff.matrix(s, AffineParams(degrees=3))
    assert geometry.aligned_rect(img.shape[:2], rot) is None


def _covered(mosaic: Mosaic, tiles, params, s: int) -> np.ndarray:
    """(s, s) bool: pixels whose square lies inside the union of the tiles' visible rects, *unsnapped* maps."""
    a = mosaic.output_matrix(params)
    order = params.cell_sources()
    cells = [tiles[k] for k in order]
    rects = []
    for place in mosaic.placements(cells, params):
        if not place.empty:
            x1, y1, x2, y2 = place.visible_rect
            q = geometry.warp_points([[x1, y1], [x2, y2]], a @ place.matrix)
            rects.append((*q.min(0), *q.max(0)))
    t = np.array([1e-3, 0.5, 1 - 1e-3])
    yy, xx = np.mgrid[0:s, 0:s]
    inside = np.ones((s, s), bool)
    for dx in t:
        for dy in t:
            px, py = xx + dx, yy + dy
            hit = np.zeros((s, s), bool)
            for x1, y1, x2, y2 in rects:
                hit |= (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2)
            inside &= hit
    return inside


@pytest.mark.parametrize("n", [4, 9])
def test_no_fill_coloured_seam_between_tiles(n):
    """Tiles snapped independently may end up a pixel apart: the painters leave no fill pixel between them."""
    rng = np.random.default_rng(n)
    checked = 0
    for trial in range(60):
        s = int(rng.integers(24, 80))
        sizes = [(int(rng.integers(8, 90)), int(rng.integers(8, 90))) for _ in range(n)]
        tiles = [Sample.create(np.full((h, w, 3), (30 + 20 * i, 200 - 15 * i, 60), np.uint8)) for i, (h, w) in
                 enumerate(sizes)]
        mosaic = Mosaic(n=n, img_size=s, center=(0.3, 1.7), affine=RandomAffine(translate=0.3, scale=0.6))
        p = mosaic.sample_params(rng, tiles[0], tiles[1:])
        labels, canvas = mosaic.plan(tiles, p)
        for w in canvas.warps:  # every tile is painted by a resize (else the test proves nothing)
            x0, y0, x1, y1 = w.crop
            assert geometry.aligned_rect((y1 - y0, x1 - x0), w.matrix @ geometry.translation(x0, y0)) is not None
        images = [t.image for t in tiles]
        inside = _covered(mosaic, tiles, p, s)
        cpu = paint_canvas(canvas, images, s, FILL)
        assert not np.any(np.all(cpu[inside] == FILL, axis=-1)), f"trial {trial}: a fill pixel inside the tiles"
        plan = SamplePlan(s, FILL, tuple(range(n)), tuple(t.size for t in tiles), (canvas,), labels)
        dev = DevicePainter()(collate_plans([(plan, tuple(images))])).images[0].permute(1, 2, 0).numpy()
        assert np.array_equal(dev, cpu), f"trial {trial}: device painter differs"
        checked += int(inside.sum())
    assert checked > 60 * 100


def test_device_painter_reads_resize_mode_from_plans_without_moving_labels():
    """Labels come from the plan; a batch of snapped mosaics is painted bit for bit like OpenCV's resize."""
    rng = np.random.default_rng(5)
    items = []
    for _ in range(3):
        tiles = [Sample.create(rng.integers(0, 256, (int(rng.integers(20, 60)), int(rng.integers(20, 60)), 3),
                                            dtype=np.uint8), boxes=[[1, 1, 15, 15]], classes=[0]) for _ in range(4)]
        mosaic = Mosaic(n=4, img_size=48, affine=RandomAffine(translate=0.1, scale=0.5))
        labels, canvas = mosaic.plan(tiles, mosaic.sample_params(rng, tiles[0], tiles[1:]))
        plan = SamplePlan(48, FILL, (0, 1, 2, 3), tuple(t.size for t in tiles), (canvas,), labels)
        items.append((plan, tuple(t.image for t in tiles)))
    batch = DevicePainter()(collate_plans(items))
    for i, (plan, images) in enumerate(items):
        got = batch.images[i].permute(1, 2, 0).numpy()
        assert np.array_equal(got, paint_canvas(plan.canvases[0], images, 48, FILL))
    assert torch.equal(batch.boxes, torch.from_numpy(np.concatenate([p.labels.boxes for p, _ in items])))
