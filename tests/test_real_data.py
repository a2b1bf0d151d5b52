"""COCO128 through both loaders: the same boxes and classes, image by image (needs DETAUG_REAL_DATA)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from detaug import CocoDataset, YoloDataset

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif("DETAUG_REAL_DATA" not in os.environ, reason="DETAUG_REAL_DATA is not set"),
]

IMG_SIZE = 640


@pytest.fixture(scope="module")
def real():
    base = Path(os.environ["DETAUG_REAL_DATA"])
    yaml_path = base / "coco128" / "coco128.yaml"
    ann = base / "coco_sample" / "annotations" / "instances_train2017.json"
    root = base / "coco128" / "images" / "train2017"
    yolo = YoloDataset(yaml_path, img_size=IMG_SIZE, progress=False)
    coco = CocoDataset(ann, root, img_size=IMG_SIZE, progress=False)
    return yaml_path, ann, root, yolo, coco


def _match(a_boxes, a_cls, b_boxes, b_cls, atol):
    """Greedy one-to-one match of boxes of the same class; returns the max coordinate difference."""
    used = np.zeros(len(b_boxes), bool)
    worst = 0.0
    for box, c in zip(a_boxes, a_cls, strict=True):
        d = np.abs(b_boxes - box).max(axis=1)
        d[(b_cls != c) | used] = np.inf
        j = int(np.argmin(d))
        assert d[j] <= atol, (box, c)
        used[j] = True
        worst = max(worst, float(d[j]))
    return worst


def test_counts_and_class_mapping(real):
    yaml_path, ann, _, yolo, coco = real
    cfg = yaml.safe_load(yaml_path.read_text())
    assert len(yolo) == len(coco) == 128
    assert yolo.report.ok and coco.report.ok, (yolo.report.summary(), coco.report.summary())
    assert yolo.report.objects == coco.report.objects == 929
    assert coco.report.crowd == 10 and yolo.report.background == coco.report.background == 2
    assert coco.category_ids == cfg["coco_category_ids"]  # YOLO id k <-> k-th sorted COCO id
    assert coco.names == yolo.names == [cfg["names"][k] for k in range(80)]
    cats = json.loads(ann.read_text())["categories"]
    assert coco.category_to_class == {c["id"]: sorted(x["id"] for x in cats).index(c["id"]) for c in cats}


def test_same_boxes_image_by_image(real):
    _, ann, _, yolo, coco = real
    by_name = {Path(f).name: i for i, f in enumerate(coco.files)}
    raw = json.loads(ann.read_text())
    raw_anns: dict[int, list] = {}
    for a in raw["annotations"]:
        raw_anns.setdefault(a["image_id"], []).append(a)
    total = crowd = background = 0
    worst = 0.0
    for i in range(len(yolo)):
        y = yolo[i]
        c = coco[by_name[Path(y.meta["path"]).name]]
        assert y.image.shape == c.image.shape and max(y.image.shape[:2]) == IMG_SIZE
        np.testing.assert_array_equal(y.image, c.image)
        assert y.num_objects == c.num_objects
        # ~1e-3 px: 6-decimal YOLO text vs float COCO json
        worst = max(worst, _match(y.boxes, y.classes, c.boxes, c.classes, atol=1e-3 * IMG_SIZE / 640 + 1e-3))
        # independent oracle straight from the json
        h0, w0 = c.meta["orig_size"]
        sx, sy = c.width / w0, c.height / h0
        anns = raw_anns.get(c.meta["id"], [])
        crowd += sum(a["iscrowd"] for a in anns)
        ref = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                        for a in anns if not a["iscrowd"]]).reshape(-1, 4) * [sx, sy, sx, sy]
        ref_cls = np.array([coco.category_to_class[a["category_id"]] for a in anns if not a["iscrowd"]])
        _match(ref, ref_cls.reshape(-1), c.boxes, c.classes, atol=1e-3)
        total += c.num_objects
        background += c.num_objects == 0
        assert c.polygons is not None and all(np.nanmax(p[:, 0]) <= c.width for p in c.polygons)
    assert (total, crowd, background) == (929, 10, 2)
    assert worst < 2e-3


def test_grey_image_and_full_decode(real):
    yaml_path, _, _, yolo, _ = real
    s = yolo[yolo.ids.index("000000000086")]  # the one greyscale JPEG
    assert s.image.shape[2] == 3 and (s.image[..., 0] == s.image[..., 1]).all()
    full = YoloDataset(yaml_path, img_size=None, full_decode=True, progress=False)
    assert full.report.ok and full[yolo.ids.index("000000000086")].meta["size"] == (640, 512)


def test_full_augmentation_on_coco128_keeps_every_invariant(real):
    """Every COCO128 item through Mosaic 4/9 + affine + MixUp + CutMix (polygons from the COCO json)."""
    from detaug import AugmentConfig, MixDataset

    _, _, _, yolo, coco = real
    cfg = AugmentConfig(img_size=320, mosaic9=0.3, mixup=0.3, cutmix=0.3, degrees=10, shear=2,
                        perspective=0.0005, flipud=0.2)
    for base in (yolo, coco):
        ds = MixDataset(base, cfg, seed=4)
        total = 0
        for i in range(0, len(ds), 3):
            s = ds[i]
            b = s.boxes
            assert s.image.shape == (320, 320, 3)
            assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 320).all()
            assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
            assert ((s.weights > 0) & (s.weights <= 1)).all()
            assert ((s.classes >= 0) & (s.classes < 80)).all()
            if s.polygons is not None:
                assert len(s.polygons) == len(b)
            total += len(b)
        assert total > 300  # objects survive: the filter is not dropping everything
        assert (base is yolo) == (ds[0].polygons is None)  # COCO json carries polygons, YOLO boxes do not
