"""The Ultralytics adapter against Ultralytics' documented per-sample and batch formats.

The spec below is what Ultralytics' ``YOLODataset`` yields after its ``Format``
transform (``bbox_format="xywh"``, ``normalize=True``, ``batch_idx=True``) and
what ``YOLODataset.collate_fn`` makes of a list of them, i.e. what a
``DetectionTrainer`` reads (``preprocess_batch`` divides ``img`` by 255 itself).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from detaug.batch import collate
from detaug.boxes import xyxy_to_yolo
from detaug.config import AugmentConfig
from detaug.integrations.ultralytics import (
    FirstItems,
    TrainerSampler,
    UltralyticsDataset,
    sample_to_ultralytics,
)
from detaug.sample import Sample

# key -> (type, dtype, shape with n = objects of the sample)
PER_SAMPLE_SPEC = {
    "img": (torch.Tensor, torch.uint8, lambda n, h, w: (3, h, w)),
    "cls": (torch.Tensor, torch.float32, lambda n, h, w: (n, 1)),
    "bboxes": (torch.Tensor, torch.float32, lambda n, h, w: (n, 4)),
    "batch_idx": (torch.Tensor, torch.float32, lambda n, h, w: (n,)),
    "weights": (torch.Tensor, torch.float32, lambda n, h, w: (n,)),
}
PER_SAMPLE_META = {"im_file": str, "ori_shape": tuple, "resized_shape": tuple, "ratio_pad": tuple, "detaug": dict}
# key -> (dtype, shape with b images, m objects)
BATCH_SPEC = {
    "img": (torch.uint8, lambda b, m, h, w: (b, 3, h, w)),
    "cls": (torch.float32, lambda b, m, h, w: (m, 1)),
    "bboxes": (torch.float32, lambda b, m, h, w: (m, 4)),
    "batch_idx": (torch.float32, lambda b, m, h, w: (m,)),
    "weights": (torch.float32, lambda b, m, h, w: (m,)),
}


def make_sample(rng, h, w, n, path):
    x1 = rng.uniform(0, w - 4, n)
    y1 = rng.uniform(0, h - 4, n)
    boxes = np.stack([x1, y1, np.minimum(x1 + rng.uniform(2, w / 2, n), w), np.minimum(y1 + rng.uniform(2, h / 2, n), h)], 1)
    return Sample.create(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), boxes, rng.integers(0, 80, n),
                         rng.uniform(0.1, 1, n), meta={"path": path, "orig_size": (h * 3, w * 3)})


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    return [make_sample(rng, 32, 48, 3, "a.jpg"), make_sample(rng, 32, 48, 0, "b.jpg"), make_sample(rng, 32, 48, 2, "c.jpg")]


def test_per_sample_format(samples):
    ds = UltralyticsDataset(samples)
    assert len(ds) == 3
    for s, d in zip(samples, (ds[i] for i in range(3)), strict=True):
        n = s.num_objects
        assert set(d) == set(PER_SAMPLE_SPEC) | set(PER_SAMPLE_META)
        for k, (typ, dtype, shape) in PER_SAMPLE_SPEC.items():
            assert isinstance(d[k], typ) and d[k].dtype == dtype and tuple(d[k].shape) == shape(n, 32, 48), k
        for k, typ in PER_SAMPLE_META.items():
            assert isinstance(d[k], typ), k
        assert d["im_file"] == s.meta["path"]
        assert d["ori_shape"] == (96, 144) and d["resized_shape"] == (32, 48)
        assert d["ratio_pad"] == ((32 / 96, 48 / 144), (0, 0))
        np.testing.assert_array_equal(d["img"].permute(1, 2, 0).numpy(), s.image)  # RGB, CHW
        assert d["batch_idx"].eq(0).all()
        cx, cy, bw, bh = (d["bboxes"].double() * torch.tensor([48, 32, 48, 32])).unbind(1)
        back = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        np.testing.assert_allclose(back.numpy(), s.boxes, atol=1e-4)
        np.testing.assert_array_equal(d["cls"].squeeze(1).numpy(), s.classes.astype(np.float32))
        np.testing.assert_array_equal(d["weights"].numpy(), s.weights)


def test_collate_fn_format_and_offsets(samples):
    ds = UltralyticsDataset(samples)
    batch = UltralyticsDataset.collate_fn([ds[i] for i in range(3)])
    for k, (dtype, shape) in BATCH_SPEC.items():
        assert batch[k].dtype == dtype and tuple(batch[k].shape) == shape(3, 5, 32, 48), k
    assert batch["batch_idx"].tolist() == [0.0, 0.0, 0.0, 2.0, 2.0]
    assert batch["im_file"] == ("a.jpg", "b.jpg", "c.jpg")
    assert batch["ori_shape"] == ((96, 144),) * 3
    # The same samples through detaug's own collate + to_yolo give the same batch.
    y = collate(samples).to_yolo()
    for k in ("img", "cls", "batch_idx", "weights", "im_file", "ori_shape", "resized_shape", "ratio_pad"):
        a, b = batch[k], y[k]
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, k
    torch.testing.assert_close(batch["bboxes"], y["bboxes"], atol=1e-6, rtol=0)


def test_collate_fn_pads_ragged_images_and_renormalises():
    rng = np.random.default_rng(1)
    a, b = make_sample(rng, 20, 40, 2, "a"), make_sample(rng, 30, 10, 1, "b")
    batch = UltralyticsDataset.collate_fn([sample_to_ultralytics(a), sample_to_ultralytics(b)])
    assert tuple(batch["img"].shape) == (2, 3, 30, 40)
    assert (batch["img"][0, :, 20:] == 114).all() and (batch["img"][1, :, :, 10:] == 114).all()
    torch.testing.assert_close(batch["bboxes"], collate([a, b]).to_yolo()["bboxes"], atol=1e-6, rtol=0)


def test_adapter_errors_and_set_epoch():
    class Epochs(list):
        epoch = None

        def set_epoch(self, e):
            self.epoch = e

    src = Epochs([Sample.create(np.zeros((4, 4, 3), np.uint8))])
    ds = UltralyticsDataset(src)
    ds.set_epoch(3)
    assert src.epoch == 3
    with pytest.raises(ValueError, match="dataset"):
        UltralyticsDataset(5)
    with pytest.raises(ValueError, match=r"dataset\[0\]"):
        UltralyticsDataset([np.zeros(3)])[0]
    with pytest.raises(ValueError, match="batch"):
        UltralyticsDataset.collate_fn([])


def test_works_with_a_dataloader(samples):
    loader = torch.utils.data.DataLoader(UltralyticsDataset(samples), batch_size=2,
                                         collate_fn=UltralyticsDataset.collate_fn)
    first, second = list(loader)
    assert first["batch_idx"].tolist() == [0.0, 0.0, 0.0] and second["batch_idx"].tolist() == [0.0, 0.0]


# --- what a trainer reads besides items; epochs through keys (no Ultralytics needed) -------------

SHAPES = Path(__file__).resolve().parents[2] / "datasets" / "shapes"


@pytest.fixture(scope="module")
def shapes_train():
    from detaug.data import YoloDataset

    return YoloDataset(SHAPES / "shapes.yaml", "train", img_size=64, progress=False)


def test_labels_in_ultralytics_form_without_decoding(shapes_train):
    from detaug.mix_dataset import MixDataset

    ds = UltralyticsDataset(MixDataset(shapes_train, AugmentConfig(img_size=64), seed=0))
    labels = ds.labels
    assert len(labels) == len(shapes_train) and ds.labels is labels  # cached
    for i in (0, 7):
        raw = shapes_train[i]
        lb = labels[i]
        assert lb["im_file"] == raw.meta["path"] and lb["shape"] == raw.meta["orig_size"]
        assert lb["cls"].dtype == np.float32 and lb["cls"].shape == (raw.num_objects, 1)
        np.testing.assert_array_equal(lb["cls"][:, 0], raw.classes)
        h, w = raw.size
        np.testing.assert_allclose(lb["bboxes"], xyxy_to_yolo(raw.boxes, w, h), atol=1e-3)
    single = UltralyticsDataset(FirstItems(shapes_train, 5), single_cls=True)
    assert len(single.labels) == 5 and all((lb["cls"] == 0).all() for lb in single.labels)
    assert (single[2]["cls"] == 0).all() and single.mix is None


def test_keys_carry_epochs_and_close_mosaic_turns_mixing_off(shapes_train):
    from detaug.mix_dataset import MixDataset

    cfg = AugmentConfig(img_size=64, mixup=1.0, epochs=None)
    ds = UltralyticsDataset(MixDataset(shapes_train, cfg, seed=1))
    a, b = ds[(0, 3)], ds[(1, 3)]
    assert a["detaug"]["epoch"] == 0 and b["detaug"]["epoch"] == 1 and a["detaug"]["position"] == 3
    assert not torch.equal(a["img"], b["img"]) and torch.equal(ds[(0, 3)]["img"], a["img"])
    assert len(a["detaug"]["tiles"]) == 4 and a["detaug"]["mixed_with"][0][0] == "mixup"
    first_closed = ds.close_mosaic(SimpleNamespace(epochs=10, close_mosaic=2))
    assert first_closed == 8 and ds.mix.config.mixing_active(7) and not ds.mix.config.mixing_active(8)
    late = ds[(8, 3)]["detaug"]
    assert late["tiles"] == (late["index"],) and late["mixed_with"] == ()
    assert UltralyticsDataset(samples_list()).close_mosaic(SimpleNamespace(epochs=3, close_mosaic=1)) is None


def samples_list():
    return [Sample.create(np.zeros((8, 8, 3), np.uint8), [[1, 1, 5, 5]], [0])]


def test_first_items_validates():
    with pytest.raises(ValueError, match="n"):
        FirstItems([1, 2], 3)
    with pytest.raises(ValueError, match="dataset"):
        FirstItems(5, 1)
    with pytest.raises(IndexError):
        FirstItems([1, 2, 3], 2)[2]


def test_trainer_sampler_ignores_set_epoch_for_a_pass_already_begun():
    s = TrainerSampler(6)
    first = iter(s)  # epoch 0's pass begins (a prefetching iterator would be here)
    s.set_epoch(0)  # what a DDP trainer calls at the start of epoch 0: already served
    assert {e for e, _ in first} == {0} and {e for e, _ in iter(s)} == {1}
    s.set_epoch(5)
    assert {e for e, _ in iter(s)} == {5}
    s.restart(5)  # a reset loader replays epoch 5
    assert {e for e, _ in iter(s)} == {5}


def test_plain_dataloader_persistent_workers_serve_new_epochs_without_set_epoch(shapes_train):
    """The mechanism is not Ultralytics-specific: keys carry epochs into persistent workers."""
    from detaug.mix_dataset import MixDataset
    from detaug.sampler import EpochSampler

    ds = UltralyticsDataset(FirstItems(MixDataset(shapes_train, AugmentConfig(img_size=64), seed=2), 8))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=EpochSampler(ds), num_workers=2,
                                         persistent_workers=True, collate_fn=UltralyticsDataset.collate_fn)
    epochs = [list(loader) for _ in range(2)]
    for e, batches in enumerate(epochs):
        metas = [m for b in batches for m in b["detaug"]]
        assert {m["epoch"] for m in metas} == {e} and sorted(m["position"] for m in metas) == list(range(8))
        for b in batches:  # each image is the one its key names
            for img, m in zip(b["img"], b["detaug"], strict=True):
                assert torch.equal(img, ds[(m["epoch"], m["position"])]["img"])
