from __future__ import annotations

import copy
import json
import math
import warnings

import numpy as np
import pytest

from detaug import CocoDataset, DatasetError
from detaug.io.coco import load_categories
from detaug.io.validate import DatasetWarning

CATEGORIES = [{"id": 10, "name": "c10"}, {"id": 3, "name": "c3"}, {"id": 7, "name": "c7"}]


def base_json() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "one.png", "width": 60, "height": 40},
            {"id": 2, "file_name": "sub/two.jpg", "width": 30, "height": 30},
        ],
        "categories": copy.deepcopy(CATEGORIES),
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [5, 5, 10, 10], "iscrowd": 0,
             "segmentation": [[5, 5, 10, 5, 10, 10], [12, 12, 15, 12, 15, 15, 12, 15]]},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [20, 10, 15, 20], "iscrowd": 0,
             "segmentation": {"counts": [0, 10, 2390], "size": [40, 60]}},
            {"id": 12, "image_id": 1, "category_id": 10, "bbox": [0, 0, 8, 8], "iscrowd": 1,
             "segmentation": {"counts": [0, 64, 2336], "size": [40, 60]}},
            {"id": 13, "image_id": 1, "category_id": 10, "bbox": [40, 30, 20, 10]},  # no segmentation
        ],
    }


def write_coco(tmp_path, helpers, data: dict):
    root = tmp_path / "imgs"
    helpers.write(root / "one.png", helpers.encode(helpers.painted(40, 60, [(5, 5, 15, 15)])))
    helpers.write(root / "sub" / "two.jpg", helpers.encode(helpers.painted(30, 30, []), ".jpg"))
    ann = helpers.write(tmp_path / "ann.json", json.dumps(data))
    return ann, root


def load(ann, root, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = CocoDataset(ann, root, img_size=None, progress=False, **kw)
    return ds, [w for w in rec if issubclass(w.category, DatasetWarning)]


def test_valid_coco(tmp_path, helpers):
    ann, root = write_coco(tmp_path, helpers, base_json())
    ds, summaries = load(ann, root)
    assert not summaries and ds.report.ok
    assert ds.names == ["c3", "c7", "c10"] and ds.category_ids == [3, 7, 10]
    assert ds.category_to_class == {3: 0, 7: 1, 10: 2} and ds.nc == 3
    assert ds.report.crowd == 1 and ds.report.objects == 3 and ds.report.background == 1
    s = ds[0]
    assert s.meta["id"] == 1 and s.meta["path"] == str(root / "one.png") and s.meta["orig_size"] == (40, 60)
    assert s.classes.tolist() == [1, 0, 2]  # crowd annotation 12 left out
    np.testing.assert_array_equal(s.boxes, [[5, 5, 15, 15], [20, 10, 35, 30], [40, 30, 60, 40]])
    poly = s.polygons[0]  # two parts, NaN-separated
    assert poly.shape == (8, 2) and np.isnan(poly[3]).all()
    np.testing.assert_allclose(poly[:3], [[5, 5], [10, 5], [10, 10]])
    np.testing.assert_allclose(s.polygons[1], [[20, 10], [35, 10], [35, 30], [20, 30]])  # RLE: box only
    np.testing.assert_allclose(s.polygons[2], [[40, 30], [60, 30], [60, 40], [40, 40]])  # no segmentation
    bg = ds[1]
    assert bg.num_objects == 0 and bg.polygons == () and bg.meta["path"] == str(root / "sub" / "two.jpg")
    half = CocoDataset(ann, root, img_size=30, progress=False)[0]  # 60x40 -> 30x20
    np.testing.assert_allclose(half.boxes[0], [2.5, 2.5, 7.5, 7.5])
    assert CocoDataset(ann, root, progress=False, polygons=False)[0].polygons is None


def test_categories_sorted_by_id():
    c = load_categories(CATEGORIES, "x.json")
    assert c.names == ["c3", "c7", "c10"]
    with pytest.raises(DatasetError, match="repeats category id 3"):
        load_categories([*CATEGORIES, {"id": 3, "name": "again"}], "x.json")
    with pytest.raises(DatasetError, match=r"x\.json: categories\[0\]"):
        load_categories([{"name": "no id"}], "x.json")


def _ann(**kw):
    return {"id": 100, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4], **kw}


# kind -> mutation of the json; the problem names the annotation id (or image) in the json
JSON_CASES = {
    "unknown_image": lambda d: d["annotations"].append(_ann(image_id=99)),
    "unknown_category": lambda d: d["annotations"].append(_ann(category_id=42)),
    "zero_size": lambda d: d["annotations"].append(_ann(bbox=[1, 1, 0, 5])),
    "missing_key": lambda d: d["annotations"].append({"id": 100, "image_id": 1, "category_id": 3}),
    "malformed": lambda d: d["annotations"].append(_ann(bbox=[1, 2, 3])),
    "non_finite": lambda d: d["annotations"].append(_ann(bbox=[1, math.nan, 3, 3])),
    "out_of_range": lambda d: d["annotations"].append(_ann(bbox=[50, 30, 20, 5])),
    "clipped": lambda d: d["annotations"].append(_ann(bbox=[50, 30, 10.03, 5])),
    "odd_coordinates": lambda d: d["annotations"].append(_ann(segmentation=[[1, 1, 5, 1, 5]])),
    "too_few_points": lambda d: d["annotations"].append(_ann(segmentation=[[1, 1, 5, 1]])),
    "duplicate_id": lambda d: d["annotations"].append(_ann(id=10)),
    "duplicate": lambda d: d["annotations"].append(_ann(id=101, category_id=7, bbox=[5, 5, 10, 10])),
}


@pytest.mark.parametrize("kind", list(JSON_CASES))
def test_json_problem_lenient_and_strict(tmp_path, helpers, kind):
    data = base_json()
    JSON_CASES[kind](data)
    ann, root = write_coco(tmp_path, helpers, data)
    ds, summaries = load(ann, root)
    assert len(summaries) == 1 and kind in str(summaries[0].message)
    assert ds.report.counts() == {kind: 1}
    p = ds.report.problems[0]
    assert p.file == str(ann) and "annotation id 10" in p.message
    assert len(ds) == 2 and ds[1].num_objects == 0
    s = ds[0]
    expected = 3 if kind in ("unknown_image",) or kind not in ("clipped", "odd_coordinates",
                                                               "too_few_points") else 4
    assert s.num_objects == expected and s.classes[:3].tolist() == [1, 0, 2]
    if kind == "clipped":
        assert s.boxes[3].tolist() == [50, 30, 60, 35]
    if kind in ("odd_coordinates", "too_few_points"):  # bad part dropped, box kept as a rectangle
        np.testing.assert_allclose(s.polygons[3], [[1, 1], [5, 1], [5, 5], [1, 5]])
    if kind == "clipped":
        with pytest.warns(DatasetWarning):
            CocoDataset(ann, root, strict=True, progress=False)  # a warning never raises
        return
    with pytest.raises(DatasetError, match=kind) as e:
        CocoDataset(ann, root, strict=True, progress=False)
    assert str(ann) in str(e.value) and "annotation id 10" in str(e.value)


@pytest.mark.parametrize("kind", ["missing_file", "empty_file", "size_mismatch", "missing_key",
                                  "duplicate_id"])
def test_image_problem_lenient_and_strict(tmp_path, helpers, kind):
    data = base_json()
    entry = {"id": 5, "file_name": "three.png", "width": 20, "height": 20}
    named = str(tmp_path / "imgs" / "three.png")
    if kind == "missing_file":
        entry["file_name"] = "gone.png"
        named = str(tmp_path / "imgs" / "gone.png")
    if kind == "missing_key":
        del entry["file_name"]
        named = str(tmp_path / "ann.json")
    if kind == "duplicate_id":
        entry["id"] = 2
        named = str(tmp_path / "ann.json")
    if kind == "size_mismatch":
        entry["width"] = 25
    data["images"].append(entry)
    if kind not in ("missing_key", "duplicate_id"):  # else the annotation would also be an unknown_image
        data["annotations"].append(_ann(id=200, image_id=entry["id"], bbox=[2, 2, 5, 5]))
    ann, root = write_coco(tmp_path, helpers, data)
    content = b"" if kind == "empty_file" else helpers.encode(np.zeros((20, 20, 3), np.uint8))
    helpers.write(root / "three.png", content)
    ds, summaries = load(ann, root)
    assert len(summaries) == 1 and ds.report.counts() == {kind: 1}
    assert ds.report.problems[0].file == named
    assert [ds[i].meta["id"] for i in range(len(ds))] == [1, 2]
    with pytest.raises(DatasetError, match=kind) as e:
        CocoDataset(ann, root, strict=True, progress=False)
    assert named in str(e.value)


def test_json_level_errors(tmp_path, helpers):
    ann, root = write_coco(tmp_path, helpers, base_json())
    ann.write_text('{"images": [\n{"id": 1,}\n]}')
    with pytest.raises(DatasetError, match=r"ann\.json:2: invalid JSON"):
        CocoDataset(ann, root, progress=False)
    data = base_json()
    del data["annotations"]
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="'annotations' missing"):
        CocoDataset(ann, root, progress=False)
    with pytest.raises(DatasetError, match="not found"):
        CocoDataset(tmp_path / "none.json", root, progress=False)
    ann.write_text(json.dumps(base_json()))
    with pytest.raises(DatasetError, match="image_root"):
        CocoDataset(ann, tmp_path / "no_such_dir", progress=False)


def test_size_mismatch_hints_at_exif(tmp_path, helpers):
    data = base_json()
    data["images"][0].update(width=40, height=60)  # json made from the stored (unrotated) pixels
    ann, root = write_coco(tmp_path, helpers, data)
    stored = helpers.painted(60, 40, [])
    helpers.write(root / "one.png", b"")  # replace by a JPEG with orientation 6 under the same name
    (root / "one.png").write_bytes(helpers.jpeg_with_orientation(stored, 6))
    ds, _ = load(ann, root)
    (p,) = ds.report.problems
    assert p.kind == "size_mismatch" and "EXIF orientation" in p.message
