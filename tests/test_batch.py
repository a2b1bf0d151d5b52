"""collate / Batch / to_yolo: layout, padding, no sharing, devices, the Ultralytics batch format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug.batch import DEFAULT_FILL, Batch, collate
from detaug.sample import Sample

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make_sample(rng: np.random.Generator, h: int, w: int, n: int, path: str = "x.jpg") -> Sample:
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    x1 = rng.uniform(0, w - 2, n)
    y1 = rng.uniform(0, h - 2, n)
    x2 = np.minimum(x1 + rng.uniform(1, w, n), w)
    y2 = np.minimum(y1 + rng.uniform(1, h, n), h)
    return Sample.create(
        img,
        np.stack([x1, y1, x2, y2], 1),
        rng.integers(0, 80, n),
        rng.uniform(0.1, 1.0, n),
        meta={"path": path, "orig_size": (2 * h, 2 * w)},
    )


def test_collate_layout_padding_and_order():
    rng = np.random.default_rng(0)
    samples = [make_sample(rng, 20, 30, 3), make_sample(rng, 25, 12, 0), make_sample(rng, 7, 40, 2)]
    b = collate(samples)
    assert isinstance(b, Batch)
    assert b.images.shape == (3, 3, 25, 40) and b.images.dtype == torch.uint8
    assert b.sizes.tolist() == [[20, 30], [25, 12], [7, 40]]
    assert b.batch_idx.tolist() == [0, 0, 0, 2, 2]
    assert b.counts().tolist() == [3, 0, 2]
    for i, s in enumerate(samples):
        img = b.images[i].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(img[: s.height, : s.width], s.image)
        pad = np.ones(img.shape[:2], bool)
        pad[: s.height, : s.width] = False
        assert (img[pad] == DEFAULT_FILL).all()
        sel = (b.batch_idx == i).numpy()
        np.testing.assert_array_equal(b.boxes.numpy()[sel], s.boxes)
        np.testing.assert_array_equal(b.classes.numpy()[sel], s.classes)
        np.testing.assert_array_equal(b.weights.numpy()[sel], s.weights)
    assert [m["path"] for m in b.metas] == ["x.jpg"] * 3
    assert (b.boxes.dtype, b.classes.dtype, b.weights.dtype, b.batch_idx.dtype) == (
        torch.float32, torch.int64, torch.float32, torch.int64
    )


def test_collate_shares_no_memory_with_samples():
    rng = np.random.default_rng(1)
    s = make_sample(rng, 8, 8, 2)
    before = (s.image.copy(), s.boxes.copy(), s.weights.copy())
    b = collate([s])
    b.images.fill_(0)
    b.boxes.fill_(-1)
    b.weights.fill_(0)
    np.testing.assert_array_equal(s.image, before[0])
    np.testing.assert_array_equal(s.boxes, before[1])
    np.testing.assert_array_equal(s.weights, before[2])


def test_collate_rejects_bad_input():
    with pytest.raises(ValueError, match="samples"):
        collate([])
    with pytest.raises(ValueError, match=r"samples\[0\]"):
        collate([np.zeros((2, 2, 3), np.uint8)])  # type: ignore[list-item]


def test_batch_validates_fields():
    b = collate([make_sample(np.random.default_rng(2), 6, 6, 2)])
    with pytest.raises(ValueError, match="classes"):
        b.replace(classes=b.classes[:1])
    with pytest.raises(ValueError, match="boxes"):
        b.replace(boxes=b.boxes.double())
    with pytest.raises(ValueError, match="sizes"):
        b.replace(sizes=torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="images"):
        b.replace(images=b.images[:, :2])


@given(
    st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(0, 4)), min_size=1, max_size=5),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=30, deadline=None)
def test_collate_property_ragged(specs, seed):
    rng = np.random.default_rng(seed)
    samples = [make_sample(rng, h + 2, w + 2, n) for h, w, n in specs]
    b = collate(samples)
    assert b.batch_size == len(samples) and b.num_objects == sum(s.num_objects for s in samples)
    assert torch.all(b.batch_idx[1:] >= b.batch_idx[:-1])
    assert b.counts().tolist() == [s.num_objects for s in samples]
    for i, s in enumerate(samples):
        np.testing.assert_array_equal(b.images[i, :, : s.height, : s.width].permute(1, 2, 0).numpy(), s.image)


def test_to_yolo_spec_and_round_trip():
    """Keys, dtypes and shapes of what an Ultralytics DetectionTrainer reads from a batch."""
    rng = np.random.default_rng(3)
    samples = [make_sample(rng, 32, 48, 4, "a.jpg"), make_sample(rng, 40, 20, 0, "b.jpg"), make_sample(rng, 16, 16, 1)]
    b = collate(samples)
    y = b.to_yolo()
    bsz, m = 3, 5
    spec = {  # key: (dtype, shape)
        "img": (torch.uint8, (bsz, 3, 40, 48)),
        "cls": (torch.float32, (m, 1)),
        "bboxes": (torch.float32, (m, 4)),
        "batch_idx": (torch.float32, (m,)),
        "weights": (torch.float32, (m,)),
    }
    for k, (dtype, shape) in spec.items():
        assert y[k].dtype == dtype and tuple(y[k].shape) == shape, k
    assert set(y) == set(spec) | {"im_file", "ori_shape", "resized_shape", "ratio_pad"}
    assert y["im_file"] == ("a.jpg", "b.jpg", "x.jpg")
    assert y["ori_shape"] == ((64, 96), (80, 40), (32, 32))
    assert y["resized_shape"] == ((32, 48), (40, 20), (16, 16))
    assert y["ratio_pad"][0] == ((0.5, 0.5), (0, 0))
    # Round trip: normalised cxcywh (relative to the padded 40 x 48) back to absolute xyxy.
    cx, cy, w, h = (y["bboxes"].double() * torch.tensor([48, 40, 48, 40], dtype=torch.float64)).unbind(1)
    back = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    torch.testing.assert_close(back, b.boxes.double(), atol=1e-4, rtol=0)
    assert (y["bboxes"] >= 0).all() and (y["bboxes"] <= 1).all()
    assert y["cls"].squeeze(1).long().tolist() == b.classes.tolist()
    assert y["batch_idx"].long().tolist() == b.batch_idx.tolist()


def test_to_yolo_refuses_float_images():
    b = collate([make_sample(np.random.default_rng(4), 8, 8, 1)])
    with pytest.raises(ValueError, match="uint8"):
        b.replace(images=b.images.float() / 255).to_yolo()


@pytest.mark.parametrize("device", DEVICES)
def test_to_device_pin_and_pickle(device):
    b = collate([make_sample(np.random.default_rng(5), 8, 9, 2), make_sample(np.random.default_rng(6), 5, 5, 1)])
    moved = b.to(device)
    assert moved.device.type == device and moved.sizes.device.type == device and moved.boxes.device.type == device
    back = moved.to("cpu")
    for f in ("images", "batch_idx", "classes", "boxes", "weights", "sizes"):
        assert torch.equal(getattr(back, f), getattr(b, f)), f
    pinned = b.pin_memory()
    assert torch.equal(pinned.images, b.images)
    if torch.cuda.is_available():
        assert pinned.images.is_pinned()
    again = pickle.loads(pickle.dumps(b))  # DataLoader workers send batches between processes
    assert torch.equal(again.images, b.images) and again.metas == b.metas


@pytest.mark.parametrize(("fill", "rgb"), [(114, (114, 114, 114)), (0, (0, 0, 0)), ((10, 20, 30), (10, 20, 30))])
def test_collate_fill_pads_and_is_recorded(fill, rgb):
    rng = np.random.default_rng(7)
    samples = [make_sample(rng, 6, 9, 1), make_sample(rng, 4, 3, 0)]
    b = collate(samples, fill=fill)
    assert b.fill == rgb
    img = b.images[1].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(img[:4, :3], samples[1].image)
    assert (img[4:] == rgb).all() and (img[:, 3:] == rgb).all()
    assert b.to("cpu").fill == rgb and b.pin_memory().fill == rgb and b.replace().fill == rgb
    assert pickle.loads(pickle.dumps(b)).fill == rgb
    assert collate(samples).fill == (DEFAULT_FILL,) * 3


@pytest.mark.parametrize("fill", [256, -1, (1, 2), (1, 2, 300), "grey", 1.5, True])
def test_collate_fill_validation(fill):
    with pytest.raises(ValueError, match="fill"):
        collate([make_sample(np.random.default_rng(8), 4, 4, 0)], fill=fill)


class _Ragged(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> Sample:
        return make_sample(np.random.default_rng(i), 10 + i, 14 - i, i % 3)


def test_collate_in_a_worker_fills_shared_memory_the_main_process_reads():
    """In a DataLoader worker the images go straight into shared memory (no copy to send them), same pixels."""
    ds = _Ragged()
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    for k, b in enumerate(loader):
        ref = collate([ds[i] for i in range(4 * k, 4 * k + 4)])
        assert b.images.is_shared() and not ref.images.is_shared()
        assert torch.equal(b.images, ref.images) and torch.equal(b.boxes, ref.boxes)
        assert (b.images[0, :, 10 + 4 * k:] == DEFAULT_FILL).all()  # padding below the first, shortest image
