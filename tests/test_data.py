"""YoloDataset / CocoDataset behaviour: pixel oracle, resize, RAM cache, mid-epoch failures, workers."""

from __future__ import annotations

import json
import multiprocessing
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch.utils.data

import detaug
from detaug import CocoDataset, DatasetError, YoloDataset
from detaug.io.validate import DatasetWarning

COLOURS = np.array([(230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30)], np.uint8)
# (file, (h, w), objects as (class, x1, y1, x2, y2) in integer pixels)
TRUTH = [
    ("p0.png", (90, 130), [(0, 10, 12, 50, 40), (2, 70, 30, 120, 85)]),
    ("p1.jpg", (120, 80), [(1, 5, 60, 45, 110)]),
    ("p2.png", (64, 64), []),
    ("p3.png", (50, 150), [(3, 100, 5, 140, 45), (0, 20, 10, 60, 40), (1, 65, 15, 95, 45)]),
]


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def make_dataset(root: Path) -> tuple[Path, Path, Path]:
    """The same painted objects as YOLO (data.yaml) and COCO (ann.json + images)."""
    images, anns = [], []
    for k, (name, (h, w), objs) in enumerate(TRUTH):
        img = np.full((h, w, 3), 90, np.uint8)
        rows = []
        for j, (c, x1, y1, x2, y2) in enumerate(objs):
            img[y1:y2, x1:x2] = COLOURS[j]
            rows.append(f"{c} {(x1 + x2) / 2 / w:.8f} {(y1 + y2) / 2 / h:.8f} {(x2 - x1) / w:.8f} "
                        f"{(y2 - y1) / h:.8f}")
            anns.append({"id": len(anns) + 1, "image_id": k + 1, "category_id": [5, 9, 11, 20][c],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0, "area": 1})
        ok, buf = cv2.imencode(Path(name).suffix, img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
        _write(root / "images" / "train" / name, buf.tobytes())
        if rows:
            _write(root / "labels" / "train" / (Path(name).stem + ".txt"), "\n".join(rows) + "\n")
        images.append({"id": k + 1, "file_name": name, "width": w, "height": h})
    names = ["a", "b", "c", "d"]
    _write(root / "data.yaml", f"path: .\ntrain: images/train\nnames: {names}\n")
    cats = [{"id": i, "name": n} for i, n in zip([20, 11, 9, 5][::-1], names, strict=True)]
    _write(root / "ann.json", json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root / "data.yaml", root / "ann.json", root / "images" / "train"


@pytest.fixture
def data(tmp_path):
    return make_dataset(tmp_path / "ds")


def found_box(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Continuous-frame xyxy of the pixels close to ``colour``."""
    mask = (np.abs(image.astype(int) - colour).max(axis=2) < 40)
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


@pytest.mark.parametrize("img_size", [None, 64, 200])
def test_pixel_oracle_yolo_and_coco(data, img_size):
    yaml_path, ann, root = data
    yolo = YoloDataset(yaml_path, img_size=img_size, progress=False)
    coco = CocoDataset(ann, root, img_size=img_size, progress=False)
    assert yolo.files == coco.files and len(yolo) == 4
    for i, (_, (h, w), objs) in enumerate(TRUTH):
        y, c = yolo[i], coco[i]
        exp_h, exp_w = (h, w) if img_size is None else (round(h * img_size / max(h, w)),
                                                         round(w * img_size / max(h, w)))
        assert y.image.shape == (exp_h, exp_w, 3) and y.meta["size"] == (exp_h, exp_w)
        assert y.meta["orig_size"] == (h, w) and y.meta["index"] == i
        np.testing.assert_array_equal(y.image, c.image)
        np.testing.assert_allclose(y.boxes, c.boxes, atol=1e-3)
        assert y.classes.tolist() == c.classes.tolist() == [o[0] for o in objs]
        up = max(1.0, exp_w / w)  # edges blur over ~1 source pixel (resampling, JPEG chroma)
        for j in range(len(objs)):  # every box sits on its painted rectangle
            np.testing.assert_allclose(y.boxes[j], found_box(y.image, COLOURS[j]), atol=1.5 * up + 0.5)
            exact = np.array(objs[j][1:], float) * [exp_w / w, exp_h / h, exp_w / w, exp_h / h]
            np.testing.assert_allclose(y.boxes[j], exact, atol=1e-3)
    assert coco.names == yolo.names and coco.category_ids == [5, 9, 11, 20]


def test_meta_and_indexing(data):
    yaml_path, _, root = data
    ds = YoloDataset(yaml_path, progress=False)
    s = ds[-1]
    assert s.meta["index"] == 3 and s.meta["id"] == "p3" and s.meta["path"] == str(root / "p3.png")
    assert s.meta["label_path"] == str(root.parent.parent / "labels" / "train" / "p3.txt")
    assert isinstance(s, detaug.Sample) and s.weights.tolist() == [1.0] * 3
    with pytest.raises(IndexError):
        ds[4]
    assert issubclass(DatasetError, ValueError)


@pytest.mark.parametrize("kw,arg", [
    ({"img_size": 0}, "img_size"), ({"img_size": 1.5}, "img_size"), ({"img_size": True}, "img_size"),
    ({"cache": "disk"}, "cache"), ({"max_pixels": 0}, "max_pixels"), ({"min_image_side": 0}, "min_image_side"),
    ({"coord_tolerance": -1.0}, "coord_tolerance"), ({"workers": 0}, "workers"),
])
def test_argument_validation(data, kw, arg):
    with pytest.raises(ValueError, match=arg):
        YoloDataset(data[0], progress=False, **kw)


def _same(a: detaug.Sample, b: detaug.Sample) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.classes, b.classes)
    assert dict(a.meta) == dict(b.meta)


@pytest.mark.parametrize("img_size", [None, 100])
def test_ram_cache_gives_identical_samples(data, img_size):
    yaml_path, ann, root = data
    plain = YoloDataset(yaml_path, img_size=img_size, progress=False)
    cached = YoloDataset(yaml_path, img_size=img_size, cache="ram", progress=False)
    coco = CocoDataset(ann, root, img_size=img_size, cache=True, progress=False)
    assert cached.cache is not None and cached.cache.buffer.ndim == 1
    assert cached.cache.nbytes == sum(plain[i].image.nbytes for i in range(4))
    for i in range(4):
        _same(plain[i], cached[i])
        np.testing.assert_array_equal(coco[i].image, plain[i].image)
    expected = [plain[i] for i in range(4)]
    for f in root.iterdir():  # served from RAM from now on
        f.unlink()
    for i in range(4):
        _same(expected[i], cached[i])
    with pytest.raises(ValueError, match="read-only"):
        cached[0].image[:] = 0  # samples are read-only views of the one shared buffer
    _same(expected[0], cached[0])


def test_mid_epoch_decode_failure_replaced_by_next_index(data):
    yaml_path, _, root = data
    ds = YoloDataset(yaml_path, progress=False)
    strict = YoloDataset(yaml_path, progress=False, strict=True)
    expected_next = ds[2]
    (root / "p1.jpg").write_bytes(b"garbage, not a jpeg anymore")
    with pytest.warns(DatasetWarning, match=r"p1\.jpg") as rec:
        s = ds[1]
    assert len(rec) == 1 and "decode_failed" in str(rec[0].message)
    assert s.meta["index"] == 2 and s.meta["replaces"] == 1 and "replaces" not in ds[2].meta
    np.testing.assert_array_equal(s.image, expected_next.image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once
        assert ds[1].meta["index"] == 2
    assert ds.report.counts() == {"decode_failed": 1}
    (root / "p3.png").unlink()  # the last item wraps around to 0
    with pytest.warns(DatasetWarning, match="missing_file"):
        assert ds[3].meta["index"] == 0
    (root / "p0.png").write_bytes(b"x" * 100)
    with pytest.raises(DatasetError, match=r"p0\.png: decode_failed: not_image"):
        strict[0]


def _corrupt_png_keeping_header(path: Path) -> None:
    b = bytearray(path.read_bytes())
    start = b.find(b"IDAT") + 8
    for k in range(start, min(start + 200, b.rfind(b"IEND") - 8)):
        b[k] ^= 0x55
    path.write_bytes(bytes(b))


def test_corrupt_pixels_found_while_caching(data):
    yaml_path, _, root = data
    _corrupt_png_keeping_header(root / "p2.png")  # header and IEND intact: the scan cannot tell
    with pytest.warns(DatasetWarning, match=r"p2\.png: not_image") as rec:
        ds = YoloDataset(yaml_path, cache="ram", progress=False)
    assert len(rec) == 1 and ds.report.counts() == {"not_image": 1}
    assert ds[2].meta["index"] == 3 and ds[2].meta["replaces"] == 2
    with pytest.raises(DatasetError, match=r"p2\.png"):
        YoloDataset(yaml_path, cache="ram", strict=True, progress=False)
    with pytest.warns(DatasetWarning, match=r"p2\.png: not_image"):
        YoloDataset(yaml_path, full_decode=True, progress=False)  # full_decode finds it at scan time


class _Probe(torch.utils.data.Dataset):
    def __init__(self, ds: YoloDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        s = self.ds[i]
        return i, os.getpid(), self.ds.cache.buffer.ctypes.data, int(s.image.sum()), s.boxes.tolist()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_forked_workers_share_the_ram_cache(data):
    ds = YoloDataset(data[0], img_size=96, cache="ram", progress=False)
    loader = torch.utils.data.DataLoader(_Probe(ds), batch_size=None, num_workers=2,
                                         multiprocessing_context="fork")
    got = list(loader)
    assert {pid for _, pid, *_ in got} - {os.getpid()}  # ran in worker processes
    assert {addr for _, _, addr, *_ in got} == {ds.cache.buffer.ctypes.data}  # the parent's buffer
    for i, _, _, total, boxes in got:
        assert total == int(ds[i].image.sum()) and boxes == ds[i].boxes.tolist()


def test_lazy_cache_is_filled_by_forked_workers_and_shared(data):
    """Images decoded in DataLoader workers land in ONE shared buffer the parent sees (no per-worker copies)."""
    from torch.utils.data import DataLoader

    yaml_path, _, _ = data
    plain = YoloDataset(yaml_path, img_size=64, cache=None, progress=False)
    lazy = YoloDataset(yaml_path, img_size=64, cache="lazy", progress=False)
    assert lazy.cache is not None and lazy.cache.lazy and not lazy.cache.valid.any()
    loader = DataLoader(lazy, batch_size=2, num_workers=2, collate_fn=list,
                        multiprocessing_context="fork")
    served = [s for batch in loader for s in batch]
    assert lazy.cache.valid.all()  # filled by the workers, visible in the parent
    for i, s in enumerate(served):
        _same(plain[i], s)
        _same(plain[i], lazy[i])  # now from RAM
    assert np.shares_memory(lazy[0].image, lazy.cache.buffer)


def test_auto_cache_falls_back_to_disk_when_memory_is_short(data, monkeypatch):
    from detaug.io.images import ImageCache

    yaml_path, _, _ = data
    assert YoloDataset(yaml_path, progress=False).cache.lazy  # default "auto": fits, so lazy
    monkeypatch.setattr(ImageCache, "fits_in_memory", staticmethod(lambda nbytes, fraction=0.8: False))
    assert YoloDataset(yaml_path, progress=False).cache is None
    with pytest.raises(ValueError, match="cache"):
        YoloDataset(yaml_path, cache="disk", progress=False)


def test_labels_of_is_load_without_pixels(tmp_path):
    from detaug.data import YoloDataset as Yolo

    ds = Yolo(Path(__file__).resolve().parents[1] / "datasets" / "shapes" / "shapes.yaml", img_size=96,
              progress=False, cache=None)
    for i in range(len(ds)):
        a, b = ds.labels_of(i), ds.load(i)
        assert a.size == b.size and dict(a.meta) == dict(b.meta)
        assert a.boxes.tobytes() == b.boxes.tobytes() and a.classes.tolist() == b.classes.tolist()
        assert (a.polygons is None) == (b.polygons is None)
