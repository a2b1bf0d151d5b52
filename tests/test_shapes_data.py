"""The shipped datasets/shapes set: files, YOLO/COCO agreement, labels vs pixels.

The pixel oracle: objects are drawn in saturated colours on muted
backgrounds, so every object's visible interior in the JPEG must show its own
colour and the background around the objects must show none of it. The
colours come from re-running the (deterministic) generator, which also
proves the committed files are what the generator makes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detaug.polygons import polygons_to_boxes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "datasets" / "shapes"
SPLITS = {"train": 24, "val": 8}
CAT_IDS = [1, 3, 5, 8, 13]
NAMES = ["circle", "triangle", "rectangle", "star", "hexagon"]


def _load_generator():
    spec = importlib.util.spec_from_file_location("shapes_generate", DATA / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen():
    return _load_generator()


@pytest.fixture(scope="module")
def scenes(gen):
    return {sc.file_name: sc for sc in gen.make_scenes(gen.SEED)}


@pytest.fixture(scope="module")
def coco():
    return {s: json.loads((DATA / "annotations" / f"instances_{s}.json").read_text()) for s in SPLITS}


def _yolo_rows(split: str, stem: str) -> list[list[float]]:
    text = (DATA / "labels" / split / f"{stem}.txt").read_text()
    return [[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]


def _image_rgb(split: str, name: str) -> np.ndarray:
    bgr = cv2.imread(str(DATA / "images" / split / name), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    return bgr[:, :, ::-1]


def _shoelace(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _mask(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    """Independent rasteriser: the pixels whose centres cv2 fills at 1/16 px."""
    m = np.zeros((h, w), np.uint8)
    fixed = np.round((poly - 0.5) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(m, [fixed], 1, cv2.LINE_8, 4)
    return m.astype(bool)


def test_files_sizes_and_yaml():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 2_000_000, total
    for split, n in SPLITS.items():
        jpgs = sorted((DATA / "images" / split).glob("*.jpg"))
        txts = sorted((DATA / "labels" / split).glob("*.txt"))
        assert len(jpgs) == n and [p.stem for p in jpgs] == [p.stem for p in txts]
    cfg = yaml.safe_load((DATA / "shapes.yaml").read_text())
    assert cfg["path"] == "." and cfg["train"] == "images/train" and cfg["val"] == "images/val"
    assert cfg["names"] == dict(enumerate(NAMES))
    assert (DATA / "README.md").read_text().count("generate.py") >= 2


def test_coco_structure_and_image_sizes(coco):
    shapes_seen = set()
    for split, d in coco.items():
        assert [c["id"] for c in d["categories"]] == CAT_IDS
        assert [c["name"] for c in d["categories"]] == NAMES
        assert len(d["images"]) == SPLITS[split]
        ids = [a["id"] for a in d["annotations"]]
        assert len(set(ids)) == len(ids)
        for im in d["images"]:
            h, w = _image_rgb(split, im["file_name"]).shape[:2]
            assert (im["height"], im["width"]) == (h, w)
            assert 240 <= h <= 400 and 240 <= w <= 400
            shapes_seen.add("portrait" if h > w else "landscape" if w > h else "square")
        for a in d["annotations"]:
            assert a["iscrowd"] == 0 and a["category_id"] in CAT_IDS
    assert shapes_seen == {"portrait", "landscape", "square"}


def test_boxes_are_tight_boxes_of_polygons_and_coco_matches_yolo(coco):
    n_objects = n_border = n_overlap = n_background = 0
    per_class = np.zeros(len(NAMES), int)
    for split, d in coco.items():
        by_image = {im["id"]: [] for im in d["images"]}
        for a in d["annotations"]:
            by_image[a["image_id"]].append(a)
        for im in d["images"]:
            w, h = im["width"], im["height"]
            anns = by_image[im["id"]]
            rows = _yolo_rows(split, Path(im["file_name"]).stem)
            assert len(rows) == len(anns), im["file_name"]
            n_background += not anns
            boxes = []
            for a, row in zip(anns, rows, strict=True):
                seg = np.array(a["segmentation"][0], np.float64).reshape(-1, 2)
                assert len(a["segmentation"]) == 1 and len(seg) >= 3
                # Polygon inside the image; box == its tight box (exact, both rounded to 4 dp).
                assert (seg >= 0).all() and (seg[:, 0] <= w).all() and (seg[:, 1] <= h).all()
                tight = polygons_to_boxes([seg])[0].astype(np.float64)
                x, y, bw, bh = a["bbox"]
                np.testing.assert_allclose([x, y, x + bw, y + bh], tight, atol=2e-4)
                np.testing.assert_allclose(a["area"], _shoelace(seg), atol=1e-3)
                assert a["area"] <= bw * bh + 1e-3
                # YOLO row: class through the sorted-id mapping, same polygon.
                cls = int(row[0])
                assert row[0] == cls and CAT_IDS[cls] == a["category_id"]
                xy = np.array(row[1:]).reshape(-1, 2)
                assert ((xy >= 0) & (xy <= 1)).all()
                np.testing.assert_allclose(xy * [w, h], seg, atol=1e-6 * max(w, h) + 1e-9)
                per_class[cls] += 1
                n_objects += 1
                boxes.append(tight)
                n_border += bool(tight[0] == 0 or tight[1] == 0 or tight[2] == w or tight[3] == h)
            b = np.array(boxes).reshape(-1, 4)
            inter_w = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
            inter_h = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
            hit = (inter_w > 0) & (inter_h > 0)
            n_overlap += int(np.triu(hit, 1).sum())
    assert n_background == 1
    assert n_objects >= 100 and (per_class >= 15).all(), per_class
    assert n_border >= 15 and n_overlap >= 15, (n_border, n_overlap)


def test_generator_reproduces_the_committed_labels(gen, scenes, coco):
    for split, d in coco.items():
        regenerated = gen.coco_json([sc for sc in scenes.values() if sc.split == split])
        assert regenerated == d
    for name, sc in scenes.items():
        text = (DATA / "labels" / sc.split / name).with_suffix(".txt").read_text()
        assert text.splitlines() == gen.yolo_lines(sc)


def test_generator_fill_matches_the_polygon_subpixel(gen):
    """fill_polygon paints the polygon in the continuous frame: the painted
    pixels' centroid (pixel centres at +0.5) matches the polygon's on
    average, so there is no half-pixel shift. cv2.fillPoly fills each row from round(x_left) to round(x_right)
    (pixel-centre frame) inclusive: it never underfills, and every painted
    pixel's centre lies within 0.5 px of the polygon's box."""
    rng = np.random.default_rng(3)
    errors = []
    for cls in list(range(len(NAMES))) * 10:
        poly = gen.snap(gen.shape_outline(cls, rng, 70.0) + rng.uniform(95, 105, 2))
        img = gen.fill_polygon(np.zeros((200, 200, 3), np.uint8), poly, (255, 0, 0))
        m = img[..., 0] == 255
        area = _shoelace(poly)
        # At most one extra pixel per row and column crossed by each edge, plus the vertices.
        bound = np.abs(poly - np.roll(poly, 1, axis=0)).sum() + len(poly) + 4
        assert 0 <= m.sum() - area <= bound, (cls, m.sum(), area, bound)
        ys, xs = np.nonzero(m)
        # Pixels lie within half a pixel of the polygon's box.
        x1, y1, x2, y2 = polygons_to_boxes([poly])[0]
        assert xs.min() + 0.5 >= x1 - 0.5 and xs.max() + 0.5 <= x2 + 0.5
        assert ys.min() + 0.5 >= y1 - 0.5 and ys.max() + 0.5 <= y2 + 0.5
        # Polygon centroid (float64 reference).
        x, y = poly[:, 0], poly[:, 1]
        cr = x * np.roll(y, -1) - np.roll(x, -1) * y
        a6 = 3.0 * cr.sum()
        cx, cy = ((x + np.roll(x, -1)) * cr).sum() / a6, ((y + np.roll(y, -1)) * cr).sum() / a6
        errors.append((xs.mean() + 0.5 - cx, ys.mean() + 0.5 - cy))
    errors = np.array(errors)
    # One shape's pixel centroid can be off by up to 0.5 px (a rectangle's edge
    # rounds to whole pixels); averaged over random sub-pixel positions the
    # error vanishes, unless the drawing is shifted.
    assert np.abs(errors).max() < 0.5 and np.abs(errors.mean(axis=0)).max() < 0.06, errors.mean(axis=0)


def test_pixels_show_each_object_where_its_polygon_is(scenes, coco):
    """Pixel oracle over every JPEG: the labelled polygons (read from disk) say
    where each object is; the object's colour must be there and nowhere else."""
    tol = 40  # JPEG q90 with chroma subsampling, away from edges
    n_checked = n_centroid = 0
    for split, d in coco.items():
        anns_of = {im["id"]: [] for im in d["images"]}
        for a in d["annotations"]:
            anns_of[a["image_id"]].append(a)
        for im in d["images"]:
            img = _image_rgb(split, im["file_name"]).astype(np.int16)
            h, w = img.shape[:2]
            sc = scenes[im["file_name"]]
            anns = anns_of[im["id"]]
            assert len(anns) == len(sc.shapes)
            polys = [np.array(a["segmentation"][0], np.float64).reshape(-1, 2) for a in anns]
            masks = [_mask(p, h, w) for p in polys]
            # Visible part of each object: not covered by those drawn after it.
            covered = np.zeros((h, w), bool)
            visible = [None] * len(masks)
            for i in range(len(masks) - 1, -1, -1):
                visible[i] = masks[i] & ~covered
                covered |= masks[i]
            colours = np.array([s.color for s in sc.shapes], np.int16).reshape(-1, 3)
            for i, (poly, vis) in enumerate(zip(polys, visible, strict=True)):
                assert vis.sum() >= 0.6 * masks[i].sum()
                depth = cv2.distanceTransform(vis.astype(np.uint8), cv2.DIST_L2, 3)
                inner = depth >= 3
                if inner.sum() < 10:
                    continue
                close = np.abs(img[inner] - colours[i]).max(axis=1) <= tol
                assert close.mean() > 0.98, (im["file_name"], i, close.mean())
                n_checked += 1
                # The brief's oracle: an unoccluded object's colour at its centroid.
                if vis.sum() == masks[i].sum():
                    x, y = poly[:, 0], poly[:, 1]
                    cr = x * np.roll(y, -1) - np.roll(x, -1) * y
                    cx = ((x + np.roll(x, -1)) * cr).sum() / (3.0 * cr.sum())
                    cy = ((y + np.roll(y, -1)) * cr).sum() / (3.0 * cr.sum())
                    if cv2.pointPolygonTest(poly.astype(np.float32), (cx, cy), True) >= 3:
                        assert np.abs(img[int(cy), int(cx)] - colours[i]).max() <= tol
                        n_centroid += 1
            # Background at least 3 px from every object: no object's colour there.
            if len(masks):
                outside = cv2.distanceTransform((~covered).astype(np.uint8), cv2.DIST_L2, 3) >= 3
                bg = img[outside]
                near = np.abs(bg[:, None, :] - colours[None]).max(axis=2) <= tol
                assert near.mean() < 0.001, (im["file_name"], near.mean())
            chroma = img.max(axis=2) - img.min(axis=2)
            assert np.percentile(chroma[outside if len(masks) else slice(None)], 99.9) < 110
    assert n_checked >= 140 and n_centroid >= 60, (n_checked, n_centroid)


@pytest.mark.parametrize("split", list(SPLITS))
def test_detaug_loaders_read_the_same_objects_from_yolo_and_coco(split):
    from detaug import CocoDataset, YoloDataset

    yolo = YoloDataset(DATA / "shapes.yaml", split=split, img_size=None, strict=True, progress=False)
    coco = CocoDataset(
        DATA / "annotations" / f"instances_{split}.json", DATA / "images" / split,
        img_size=None, strict=True, progress=False,
    )
    assert yolo.names == coco.names == NAMES
    assert len(yolo) == len(coco) == SPLITS[split]
    by_name = {Path(coco[i].meta["path"]).name: coco[i] for i in range(len(coco))}
    for i in range(len(yolo)):
        a = yolo[i]
        b = by_name[Path(a.meta["path"]).name]
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.classes, b.classes)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        assert a.polygons is not None and b.polygons is not None
        for pa, pb in zip(a.polygons, b.polygons, strict=True):
            np.testing.assert_allclose(pa, pb, atol=1e-3)
