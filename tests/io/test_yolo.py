from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from detaug import DatasetError, YoloDataset
from detaug.io.validate import DatasetWarning
from detaug.io.yolo import image_to_label_path, list_images, load_data_yaml, parse_label_text

GOOD_ROWS = "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.3\n"

# (bad row put on line 3, problem kind)
BAD_ROWS = [
    ("0 0.5 0.5 0.2", "columns"),
    ("0", "columns"),
    ("0 0.5 abc 0.2 0.2", "non_numeric"),
    ("0 0.5,0.5 0.2 0.2 0.1", "non_numeric"),
    ("0 0.5 nan 0.2 0.2", "non_finite"),
    ("0 0.5 0.5 inf 0.2", "non_finite"),
    ("0 0.5 0.5 1.2 0.2", "out_of_range"),
    ("0 1.5 0.5 0.2 0.2", "out_of_range"),
    ("0 0.1 0.1 0.5 0.1 -0.2 0.3", "out_of_range"),
    ("0 0.5 0.5 0 0.2", "zero_size"),
    ("0 0.5 0.5 0.2 -0.1", "zero_size"),
    ("0 0.1 0.1 0.2 0.1 0.3 0.1", "zero_size"),  # collinear polygon: zero height
    ("-1 0.5 0.5 0.2 0.2", "bad_class"),
    ("3 0.5 0.5 0.2 0.2", "bad_class"),
    ("1.5 0.5 0.5 0.2 0.2", "bad_class"),
    ("0 0.50 0.5 0.2 0.20", "duplicate"),  # same numbers as line 1
    ("0 0.1 0.1 0.5 0.1 0.5", "odd_coordinates"),
    ("0 0.1 0.1 0.5 0.1 0.5 0.5 0.3", "odd_coordinates"),
]


@pytest.mark.parametrize("row,kind", BAD_ROWS)
def test_parse_bad_row(row, kind):
    labels, problems = parse_label_text(GOOD_ROWS + row + "\n", nc=3, file="lab/a.txt")
    assert [(p.kind, p.file, p.line) for p in problems] == [(kind, "lab/a.txt", 3)]
    assert labels.classes.tolist() == [0, 1]  # good rows kept
    np.testing.assert_allclose(labels.boxes, [[0.4, 0.4, 0.6, 0.6], [0.2, 0.1, 0.3, 0.4]], atol=1e-12)


def test_parse_clip_within_tolerance_and_rounding_noise():
    text = "0 0.9 0.5 0.2004 0.2\n1 0.9 0.5 0.2000001 0.2\n"
    labels, problems = parse_label_text(text, nc=2, file="a.txt", tolerance=1e-3)
    assert [(p.kind, p.line, p.severity) for p in problems] == [("clipped", 1, "warning")]
    assert labels.boxes[:, 2].tolist() == [1.0, 1.0]  # both clipped, only the real overshoot reported
    _, problems = parse_label_text(text, nc=2, file="a.txt", tolerance=1e-4)
    assert [p.kind for p in problems] == ["out_of_range"]


def test_parse_polygons_blank_lines_and_unknown_nc():
    text = "\n2 0.1 0.2 0.5 0.2 0.3 0.6\n\n7 0.5 0.5 0.2 0.2\n"
    labels, problems = parse_label_text(text, nc=None, file="a.txt")
    assert not problems and labels.classes.tolist() == [2, 7]
    np.testing.assert_allclose(labels.boxes[0], [0.1, 0.2, 0.5, 0.6])
    np.testing.assert_allclose(labels.polygons[0], [[0.1, 0.2], [0.5, 0.2], [0.3, 0.6]])
    assert labels.polygons[1] is None


def test_label_path_rule():
    assert image_to_label_path("/d/images/train/x.jpg") == Path("/d/labels/train/x.txt")
    assert image_to_label_path("/images/a/images/b/x.PNG") == Path("/images/a/labels/b/x.txt")
    assert image_to_label_path("/d/images2/x.jpg") == Path("/d/images2/x.txt")
    assert image_to_label_path("rel/images/x.tar.jpg") == Path("rel/labels/x.tar.txt")
    assert image_to_label_path("/d/other/images.jpg") == Path("/d/other/images.txt")


# ------------------------------------------------------------------------------- datasets


def _clean(helpers, tmp_path):
    return helpers.make_yolo(tmp_path / "ds")


def _lenient(*args, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = YoloDataset(*args, progress=False, **kw)
    summaries = [w for w in rec if issubclass(w.category, DatasetWarning)]
    return ds, summaries


@pytest.mark.parametrize("row,kind", BAD_ROWS)
def test_dataset_bad_row_lenient_and_strict(tmp_path, helpers, row, kind):
    d = _clean(helpers, tmp_path)
    label = d.labels / "a.txt"
    good = label.read_text()
    assert len(good.splitlines()) == 2
    reference = [YoloDataset(d.yaml, img_size=None, progress=False)[i] for i in range(3)]
    if kind == "duplicate":
        row = " ".join(t + "0" if "." in t else t for t in good.splitlines()[0].split())  # same numbers
    label.write_text(good + row + "\n")
    ds, summaries = _lenient(d.yaml, img_size=None)
    assert len(summaries) == 1  # ONE summary warning
    assert kind in str(summaries[0].message) and str(label) in str(summaries[0].message)
    assert ds.report.counts() == {kind: 1}
    p = ds.report.problems[0]
    assert (p.file, p.line) == (str(label), 3)
    assert len(ds) == 3
    for i in range(3):  # every good sample still there, unchanged
        np.testing.assert_array_equal(ds[i].boxes, reference[i].boxes)
        np.testing.assert_array_equal(ds[i].image, reference[i].image)
    with pytest.raises(DatasetError) as e:
        YoloDataset(d.yaml, strict=True, progress=False)
    assert f"{label}:3: {kind}" in str(e.value)
    ds2, _ = _lenient(d.yaml, skip_image_on_bad_row=True)
    assert len(ds2) == 2 and "a" not in ds2.ids


def test_dataset_clipped_is_a_warning_not_an_error(tmp_path, helpers):
    d = _clean(helpers, tmp_path)
    label = d.labels / "b.txt"
    label.write_text(label.read_text() + "0 0.9 0.5 0.2004 0.2\n")
    ds, summaries = _lenient(d.yaml, img_size=None)
    assert len(summaries) == 1 and ds.report.counts() == {"clipped": 1}
    with pytest.warns(DatasetWarning):
        strict = YoloDataset(d.yaml, strict=True, progress=False, img_size=None)  # does not raise
    s = strict[strict.ids.index("b")]
    assert s.num_objects == 2 and s.boxes[1, 2] == s.width


def _bad_image_cases(helpers, d, tmp_path):
    """kind -> (path that must be named, callable that creates the bad input, extra kwargs)."""
    img = d.images
    jpg = helpers.encode(helpers.painted(40, 40, [(0, 0, 10, 10)]), ".jpg")
    return {
        "empty_file": (img / "e.png", lambda p: helpers.write(p, b""), {}),
        "truncated": (img / "t.jpg", lambda p: helpers.write(p, jpg[: len(jpg) // 2]), {}),
        "not_image": (img / "n.png", lambda p: helpers.write(p, b"\x00 hello, not a png" * 10), {}),
        "unsupported_format": (img / "g.gif", lambda p: helpers.write(p, b"GIF89a" + b"\x00" * 30), {}),
        "too_small": (img / "s.png", lambda p: helpers.write(p, helpers.encode(np.zeros((5, 40, 3), np.uint8))),
                      {}),
        "too_large": (img / "big.png", lambda p: helpers.write(p, helpers.png_claiming_size(100, 100)),
                      {"max_pixels": 5000}),
        "unreadable": (d.labels / "u.txt", lambda p: (
            helpers.write(img / "u.png", helpers.encode(np.zeros((20, 20, 3), np.uint8))),
            helpers.write(p, b"0 0.5 0.5 \xff\xfe 0.1\n")), {}),
    }


@pytest.mark.parametrize("kind", ["empty_file", "truncated", "not_image", "unsupported_format", "too_small",
                                  "too_large", "unreadable"])
def test_dataset_bad_image_lenient_and_strict(tmp_path, helpers, kind):
    d = _clean(helpers, tmp_path)
    path, make, kw = _bad_image_cases(helpers, d, tmp_path)[kind]
    make(path)
    ds, summaries = _lenient(d.yaml, **kw)
    assert len(summaries) == 1 and str(path) in str(summaries[0].message)
    assert ds.report.counts() == {kind: 1} and ds.report.problems[0].file == str(path)
    assert sorted(ds.ids) == ["a", "b", "c"]
    assert [ds[i].num_objects for i in range(3)] == [ds.num_objects(i) for i in range(3)]
    with pytest.raises(DatasetError, match=kind) as e:
        YoloDataset(d.yaml, strict=True, progress=False, **kw)
    assert str(path) in str(e.value)


def test_dataset_missing_file_from_list(tmp_path, helpers):
    d = _clean(helpers, tmp_path)
    helpers.write(d.root / "train.txt", "./images/train/a.png\nimages/train/missing.png\n"
                  f"{d.images / 'b.png'}\n# comment\n\nimages/train/c.png\nimages/train/notes.md\n")
    cfg = yaml.safe_load(d.yaml.read_text())
    helpers.write(d.yaml, yaml.safe_dump({**cfg, "train": "train.txt"}))
    ds, summaries = _lenient(d.yaml)
    assert ds.report.counts() == {"missing_file": 1, "unsupported_format": 1}
    missing = ds.report.of_kind("missing_file")[0]
    assert missing.file == str(d.root / "images/train/missing.png")
    assert "train.txt:7" in ds.report.of_kind("unsupported_format")[0].message
    assert ds.ids == ["a", "b", "c"]
    with pytest.raises(DatasetError, match="notes.md"):  # listing problems come first
        YoloDataset(d.yaml, strict=True, progress=False)
    helpers.write(d.root / "train.txt", "images/train/a.png\nimages/train/missing.png\n")
    with pytest.raises(DatasetError, match="missing.png: missing_file"):
        YoloDataset(d.yaml, strict=True, progress=False)


def test_files_are_never_modified(tmp_path, helpers):
    d = _clean(helpers, tmp_path)
    (d.labels / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n0 0.9 0.5 0.2004 0.2\nx\n")
    helpers.write(d.images / "t.jpg", helpers.encode(np.zeros((30, 30, 3), np.uint8), ".jpg")[:-50])

    def snapshot():
        return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.root.rglob("*")) if p.is_file()}

    before = snapshot()
    ds, _ = _lenient(d.yaml, cache="ram")
    _ = [ds[i] for i in range(len(ds))]
    assert snapshot() == before


# ------------------------------------------------------------------------------- data yaml


def test_yaml_names_list_vs_dict(tmp_path, helpers):
    a = helpers.make_yolo(tmp_path / "l", names=["zero", "one", "two"])
    b = helpers.make_yolo(tmp_path / "d", names={2: "two", 0: "zero", 1: "one"})
    da, db = YoloDataset(a.yaml, progress=False), YoloDataset(b.yaml, progress=False)
    assert da.names == db.names == ["zero", "one", "two"] and da.nc == db.nc == 3


@pytest.mark.parametrize("bad,msg", [
    ({"names": {0: "a", 2: "c"}}, "without gaps"),
    ({"names": ["a", "b"], "nc": 3}, "'nc' is 3"),
    ({"names": "abc"}, "must be a list"),
    ({"names": None, "nc": None}, "neither"),
])
def test_yaml_bad_names(tmp_path, helpers, bad, msg):
    d = helpers.make_yolo(tmp_path / "ds")
    cfg = {**yaml.safe_load(d.yaml.read_text()), **bad}
    helpers.write(d.yaml, yaml.safe_dump(cfg))
    with pytest.raises(DatasetError, match=msg) as e:
        YoloDataset(d.yaml, progress=False)
    assert str(d.yaml) in str(e.value)


def test_yaml_nc_only_and_relative_path(tmp_path, helpers, monkeypatch):
    d = helpers.make_yolo(tmp_path / "ds")
    cfgdir = tmp_path / "configs" / "deep"
    helpers.write(cfgdir / "data.yml", yaml.safe_dump({"path": "../../ds", "train": "images/train", "nc": 3}))
    monkeypatch.chdir(helpers.write(tmp_path / "elsewhere" / "x", "").parent)
    cfg = load_data_yaml(Path(os.path.relpath(cfgdir / "data.yml")))
    assert cfg.root == d.root.resolve() and cfg.names == ["class0", "class1", "class2"]
    ds = YoloDataset(os.path.relpath(cfgdir / "data.yml"), progress=False)
    assert sorted(ds.ids) == ["a", "b", "c"]
    # no 'path': the yaml's folder is the root
    helpers.write(d.root / "nopath.yaml", yaml.safe_dump({"train": "images/train", "names": ["a", "b", "c"]}))
    assert len(YoloDataset(d.root / "nopath.yaml", progress=False)) == 3


def test_yaml_train_list_of_folders_and_txt(tmp_path, helpers):
    d = helpers.make_yolo(tmp_path / "ds")
    extra = tmp_path / "ds" / "images" / "extra"
    helpers.write(extra / "z.png", helpers.encode(helpers.painted(30, 30, [(2, 2, 12, 12)])))
    helpers.write(tmp_path / "ds" / "labels" / "extra" / "z.txt", "1 0.2333 0.2333 0.3333 0.3333\n")
    cfg = yaml.safe_load(d.yaml.read_text())
    helpers.write(d.yaml, yaml.safe_dump({**cfg, "train": ["images/train", "images/extra"], "val": "v.txt"}))
    helpers.write(d.root / "v.txt", "images/extra/z.png\n")
    ds = YoloDataset(d.yaml, progress=False)
    assert ds.ids == ["a", "b", "c", "z"] and ds[3].classes.tolist() == [1]
    val = YoloDataset(d.yaml, split="val", progress=False)
    assert val.ids == ["z"]
    with pytest.raises(DatasetError, match="split 'test' not found"):
        YoloDataset(d.yaml, split="test", progress=False)
    helpers.write(d.yaml, yaml.safe_dump({**cfg, "train": "images/nothere"}))
    with pytest.raises(DatasetError, match="nothere"):
        YoloDataset(d.yaml, progress=False)


def test_images_folder_source(tmp_path, helpers):
    d = helpers.make_yolo(tmp_path / "ds")
    ds = YoloDataset(d.images, progress=False)
    assert ds.names == ["0", "1", "2"] and len(ds) == 3
    ds = YoloDataset(d.images, progress=False, names=["p", "q", "r", "s"])
    assert ds.nc == 4
    helpers.write(d.images / ".hidden.png", b"junk")
    helpers.write(d.images / "README.md", "notes")
    assert [p.name for p in list_images([d.images])] == ["a.png", "b.png", "c.png"]
    with pytest.raises(DatasetError, match="does not exist"):
        YoloDataset(tmp_path / "nope", progress=False)


def test_polygons_mixed_with_boxes(tmp_path, helpers):
    d = helpers.make_yolo(tmp_path / "ds")
    # a.png is 64 wide, 48 high: one polygon row and one box row
    (d.labels / "a.txt").write_text("2 0.125 0.25 0.5 0.25 0.25 0.75\n1 0.5 0.5 0.25 0.5\n")
    ds = YoloDataset(d.yaml, img_size=128, progress=False)  # x2 upscale
    a, b, c = (ds[ds.ids.index(k)] for k in "abc")
    np.testing.assert_allclose(a.polygons[0], [[16, 24], [64, 24], [32, 72]], atol=1e-4)
    np.testing.assert_allclose(a.boxes[0], [16, 24, 64, 72], atol=1e-4)
    np.testing.assert_allclose(a.polygons[1], [[48, 24], [80, 24], [80, 72], [48, 72]], atol=1e-4)  # rectangle
    assert len(b.polygons) == 1 and b.polygons[0].shape == (4, 2)  # box-only image gets rectangles too
    assert c.polygons == ()  # background
    assert YoloDataset(d.yaml, progress=False, polygons=False)[0].polygons is None
    assert helpers.make_yolo(tmp_path / "plain") and YoloDataset(tmp_path / "plain" / "data.yaml",
                                                                 progress=False)[0].polygons is None


def test_exif_rotated_image_labels_in_displayed_frame(tmp_path, helpers):
    d = helpers.make_yolo(tmp_path / "ds")
    displayed = helpers.painted(60, 40, [(5, 10, 25, 30)])  # 60 high, 40 wide, as a viewer shows it
    stored = np.ascontiguousarray(np.rot90(displayed, 1))  # orientation 6 = rotate stored 90 deg CW
    helpers.write(d.images / "r.jpg", helpers.jpeg_with_orientation(stored, 6))
    helpers.write(d.labels / "r.txt", helpers.yolo_row(0, (5, 10, 25, 30), 40, 60) + "\n")
    ds = YoloDataset(d.yaml, img_size=120, progress=False)
    s = ds[ds.ids.index("r")]
    assert s.meta["orig_size"] == (60, 40) and s.image.shape == (120, 80, 3)
    np.testing.assert_allclose(s.boxes[0], [10, 20, 50, 60], atol=1e-3)
    inside = s.image[22:58, 12:48].reshape(-1, 3).mean(axis=0)
    assert np.abs(inside - helpers.COLOURS[0]).max() < 10  # the painted object is under its box


def test_no_usable_image_is_an_error(tmp_path, helpers):
    d = helpers.make_yolo(tmp_path / "ds")
    for p in d.images.iterdir():
        p.write_bytes(b"")
    with pytest.raises(DatasetError, match="no usable images") as e:  # the summary is in the message
        YoloDataset(d.yaml, progress=False)
    assert "empty_file: 3" in str(e.value)
    helpers.write(d.root / "list.txt", b"\xff\xfe\x00bad")
    with pytest.raises(DatasetError, match="cannot read image list"):
        YoloDataset(d.root / "list.txt", progress=False)
