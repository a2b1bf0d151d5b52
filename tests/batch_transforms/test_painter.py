"""DevicePainter + collate_plans: parity with the OpenCV painter (detaug.paint.paint), per op and over random configs.

Labels are the plans' (identical to the per-sample path by construction);
pixels must be within 2 grey levels of OpenCV's for >= 99.9% of them and
their mean absolute difference below 0.5. Every parity test runs on the CPU
and, marked ``cuda``, on a CUDA device when there is one.
"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import detaug.batch_transforms.painter as painter_mod
from detaug import AugmentConfig, MixDataset, Sample
from detaug.batch_transforms import hsv_tables
from detaug.batch_transforms.painter import DevicePainter
from detaug.batch_transforms.plan_batch import PlanBatch, collate_plans
from detaug.paint import paint
from detaug.sampler import EpochSampler

CUDA = pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])
DEVICES = ["cpu", CUDA]
S = 64
NO_COLOUR = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "fliplr": 0.0}

CONFIGS = {
    "mosaic4": AugmentConfig(img_size=S, mosaic=1.0, **NO_COLOUR),
    "mosaic9": AugmentConfig(img_size=S, mosaic=1.0, mosaic9=1.0, **NO_COLOUR),
    "rotation": AugmentConfig(img_size=S, mosaic=0.0, degrees=30, **NO_COLOUR),
    "shear": AugmentConfig(img_size=S, mosaic=0.0, shear=10, **NO_COLOUR),
    "perspective": AugmentConfig(img_size=S, mosaic=0.5, perspective=0.001, **NO_COLOUR),
    "flips": AugmentConfig(img_size=S, mosaic=0.5, fliplr=0.5, flipud=0.5, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0),
    "hsv": AugmentConfig(img_size=S, mosaic=0.5, hsv_h=0.05, hsv_s=0.7, hsv_v=0.4, fliplr=0.0),
    "mixup": AugmentConfig(img_size=S, mosaic=0.5, mixup=1.0, **NO_COLOUR),
    "cutmix": AugmentConfig(img_size=S, mosaic=0.5, cutmix=1.0, **NO_COLOUR),
}


def make_data(n: int = 12, seed: int = 0, lo: int = 40, hi: int = 90) -> list[Sample]:
    """Textured random images (smooth blobs + fine noise + hard-edged rectangles) with boxes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
        coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img += rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, [w - 8, h - 8], (k, 2))
        boxes = np.minimum(np.concatenate([xy, xy + rng.uniform(4, 30, (k, 2))], 1), [w, h, w, h])
        for x1, y1, x2, y2 in boxes.astype(int):
            img[y1:y2, x1:x2] = rng.integers(0, 256, 3)
        out.append(Sample.create(np.clip(img, 0, 255).astype(np.uint8), boxes, rng.integers(0, 3, k),
                                 meta={"path": f"img{i}.png"}))
    return out


DATA = make_data()


def painted(cfg: AugmentConfig, device: str, seed: int = 1, n: int = 8, data=DATA, dtype=torch.uint8):
    ds = MixDataset(data, cfg, seed=seed, output="plan")
    items = [ds[i] for i in range(n)]
    batch = DevicePainter(dtype)(collate_plans(items).to(device))
    return items, batch


def check_parity(items, batch, name: str) -> tuple[int, float, float]:
    ref = np.stack([paint(p, im) for p, im in items]).astype(np.int16)
    got = batch.images.cpu().permute(0, 2, 3, 1).numpy().astype(np.int16)
    d = np.abs(got - ref)
    share, mad = float((d <= 2).mean()), float(d.mean())
    assert share >= 0.999 and mad < 0.5, f"{name}: max {d.max()}, within 2: {share:.5f}, mean {mad:.4f}"
    return int(d.max()), share, mad


def check_labels(items, batch) -> None:
    b = batch.to("cpu")
    counts = np.bincount(b.batch_idx.numpy(), minlength=len(items))
    ends = np.cumsum(counts)
    for i, (plan, _) in enumerate(items):
        rows = slice(ends[i] - counts[i], ends[i])
        lab = plan.labels
        assert b.boxes[rows].numpy().tobytes() == lab.boxes.tobytes()
        assert b.classes[rows].tolist() == lab.classes.tolist()
        assert b.weights[rows].numpy().tobytes() == lab.weights.tobytes()
        assert b.metas[i] == dict(lab.meta)
    assert b.sizes.tolist() == [[S, S]] * len(items)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_parity_per_op(name, device):
    items, batch = painted(CONFIGS[name], device)
    assert batch.images.device.type == device and batch.images.dtype == torch.uint8
    assert tuple(batch.images.shape) == (len(items), 3, S, S)
    check_parity(items, batch, name)
    check_labels(items, batch)


def test_each_op_is_exercised():
    def plans(cfg):
        ds = MixDataset(DATA, cfg, seed=1)
        return [ds.plan(i) for i in range(12)]

    assert any(c.frame is not None for p in plans(CONFIGS["mosaic4"]) for c in p.canvases)
    assert any(len(p.canvases[0].warps) > 4 for p in plans(CONFIGS["mosaic9"]))
    assert any(p.blend is not None for p in plans(CONFIGS["mixup"]))
    assert any(p.paste is not None for p in plans(CONFIGS["cutmix"]))
    assert any(p.hsv is not None for p in plans(CONFIGS["hsv"]))
    flips = plans(CONFIGS["flips"])
    assert any(p.flip_lr for p in flips) and any(p.flip_ud for p in flips)
    assert any(not np.allclose(c.warps[0].matrix[2], [0, 0, 1]) for p in plans(CONFIGS["perspective"])
               for c in p.canvases)


@pytest.mark.parametrize("device", DEVICES)
def test_parity_over_random_configs(device):
    rng = np.random.default_rng(2024)
    for trial in range(4):
        u = rng.uniform(size=12)
        cfg = AugmentConfig(
            img_size=int(rng.choice([48, 64])), mosaic=float(u[0]), mosaic9=float(u[1]) * 0.5,
            degrees=float(u[2]) * 40, shear=float(u[3]) * 8, perspective=float(u[4]) * 0.001,
            translate=float(u[5]) * 0.2, scale=0.2 + float(u[6]) * 0.5, mixup=float(u[7]), cutmix=float(u[8]),
            fliplr=float(u[9]), flipud=float(u[10]) * 0.5, hsv_h=0.03, hsv_s=float(u[11]), hsv_v=0.4,
            fill=int(rng.integers(0, 256)),
        )
        data = make_data(8, seed=trial)
        items, batch = painted(cfg, device, seed=trial, n=6, data=data)
        check_parity(items, batch, f"trial {trial}: {cfg}")
        check_labels_any_size(items, batch)


def check_labels_any_size(items, batch) -> None:
    b = batch.to("cpu")
    assert b.boxes.numpy().tobytes() == np.concatenate([p.labels.boxes for p, _ in items]).tobytes()
    assert b.classes.tolist() == np.concatenate([p.labels.classes for p, _ in items]).tolist()


def test_labels_equal_the_per_sample_path():
    cfg = AugmentConfig(img_size=S, mosaic=0.7, mixup=0.5, cutmix=0.5, degrees=10, fliplr=0.5)
    ds = MixDataset(DATA, cfg, seed=5)
    planned = MixDataset(DATA, cfg, seed=5, output="plan")
    batch = DevicePainter()(collate_plans([planned[i] for i in range(8)]))
    counts = batch.counts().tolist()
    ends = np.cumsum(counts)
    for i in range(8):
        s = ds[i]
        rows = slice(ends[i] - counts[i], ends[i])
        assert batch.boxes[rows].numpy().tobytes() == s.boxes.tobytes()
        assert batch.classes[rows].tolist() == s.classes.tolist()
        assert batch.weights[rows].numpy().tobytes() == s.weights.tobytes()
        assert batch.metas[i] == s.meta


def test_shared_sources_are_shipped_once_and_distinct_pixels_are_not_merged():
    ds = MixDataset(DATA, CONFIGS["mosaic4"], seed=1, output="plan")
    items = [ds[i] for i in range(12)]
    reads = sum(p.num_sources for p, _ in items)
    pb = collate_plans(items)
    assert pb.sources.shape[0] == len({j for p, _ in items for j in p.sources}) < reads
    # the same dataset index with other pixels (e.g. a random dataset) is a second source
    plan, images = items[0]
    other = (plan, tuple(im.copy() for im in images[:-1]) + (255 - images[-1],))
    assert collate_plans([items[0], other]).sources.shape[0] == plan.num_sources + 1
    assert collate_plans([items[0], (plan, tuple(im.copy() for im in images))]).sources.shape[0] == plan.num_sources


def test_replays_exactly_and_blocks_do_not_change_pixels(monkeypatch):
    items, a = painted(CONFIGS["flips"], "cpu")
    pb = pickle.loads(pickle.dumps(collate_plans(items)))  # what a DataLoader worker ships
    b = DevicePainter()(pb)
    monkeypatch.setattr(painter_mod, "CPU_STEP_PIXELS", 5 * S)
    c = DevicePainter()(pb)
    assert torch.equal(a.images, b.images) and torch.equal(a.images, c.images)


@pytest.mark.parametrize("device", DEVICES)
def test_float16_output_is_uint8_over_255(device):
    items, a = painted(CONFIGS["hsv"], device, n=4)
    _, b = painted(CONFIGS["hsv"], device, n=4, dtype=torch.float16)
    assert b.images.dtype == torch.float16 and b.images.device.type == device
    torch.testing.assert_close(b.images, (a.images.to(torch.float16) / 255.0), atol=0, rtol=0)


def test_dataloader_with_workers_and_epoch_keys():
    ds = MixDataset(DATA, CONFIGS["mixup"], seed=3, output="plan")
    loader = DataLoader(ds, batch_size=4, sampler=EpochSampler(ds), num_workers=2, collate_fn=collate_plans,
                        pin_memory=True)
    pb = next(iter(loader))
    assert isinstance(pb, PlanBatch) and pb.batch_size == 4
    keys = list(EpochSampler(ds))[:4]
    batch = DevicePainter()(pb)
    ref = np.stack([paint(*ds.plan_with_images(k)) for k in keys]).astype(np.int16)
    d = np.abs(batch.images.permute(0, 2, 3, 1).numpy().astype(np.int16) - ref)
    assert (d <= 2).mean() >= 0.999
    assert [m["position"] for m in batch.metas] == [k[1] for k in keys]


def test_errors_name_the_argument():
    ds = MixDataset(DATA, CONFIGS["mosaic4"], seed=1, output="plan")
    item = ds[0]
    with pytest.raises(ValueError, match="items"):
        collate_plans([])
    with pytest.raises(ValueError, match=r"items\[0\]"):
        collate_plans([item.plan])
    with pytest.raises(ValueError, match=r"items\[0\]"):
        collate_plans([(item.plan, item.images[:-1])])
    other = MixDataset(DATA, AugmentConfig(img_size=32), seed=1, output="plan")[0]
    with pytest.raises(ValueError, match=r"items\[1\]"):
        collate_plans([item, other])
    with pytest.raises(ValueError, match="output_dtype"):
        DevicePainter(torch.float32)
    with pytest.raises(ValueError, match="opencv"):
        DevicePainter(opencv=3)
    assert DevicePainter().opencv == int(cv2.__version__.split(".")[0])
    with pytest.raises(ValueError, match="batch"):
        DevicePainter()(item)


def test_to_moves_every_tensor_and_pin_memory_is_safe():
    pb = collate_plans([MixDataset(DATA, CONFIGS["cutmix"], seed=1, output="plan")[i] for i in range(3)])
    assert pb.to("cpu").device.type == "cpu"
    assert pb.pin_memory().batch_size == 3
    assert pb.num_canvases >= 3 and len(pb.slot_counts) == len(pb.slot_affine)


@pytest.mark.parametrize("device", DEVICES)
def test_hsv_through_tables_is_jitter_pixels_bit_for_bit(device):
    """The painter's table HSV (hsv_tables.jitter) is hsv.jitter_pixels exactly (tables made by its kernels)."""
    from detaug.batch_transforms import hsv
    g = torch.Generator().manual_seed(7)
    luts = hsv.batch_hsv_luts(torch.rand(5, 3, generator=g) * 1.6 + 0.2).to(device)
    px = torch.randint(0, 256, (5, 3, 50000), dtype=torch.uint8, generator=g).to(device)
    px[0, :, :256] = torch.arange(256, dtype=torch.uint8, device=device)  # greys: hue and saturation 0
    want = hsv.jitter_pixels(px, luts)
    got = hsv_tables.jitter(px, luts.to(torch.uint8)).transpose(1, 2)
    assert torch.equal(got, want)


def test_host_flags_only_skip_work(monkeypatch):
    """Without slot_whole/any_frame/frame_affine (the general paths) the pixels are the same."""
    import dataclasses
    items, a = painted(CONFIGS["flips"], "cpu")
    pb = collate_plans(items)
    assert pb.any_frame and pb.frame_affine and len(pb.slot_whole) == len(pb.slot_counts)
    assert pb.frame_aligned and not any(pb.slot_sample_patches)  # axis-aligned: every warp a resize
    general = dataclasses.replace(pb, slot_whole=(), any_frame=True, frame_affine=False, frame_aligned=False)
    assert torch.equal(DevicePainter()(general).images, a.images)


def test_a_source_bank_paints_what_shipped_sources_paint():
    from detaug.batch_transforms.source_bank import SourceBank

    data = make_data()
    cfg = AugmentConfig(img_size=64, mosaic=1.0, mosaic9=0.3, mixup=0.5, cutmix=0.5, degrees=10, fliplr=0.5)
    shipped = MixDataset(data, cfg, seed=4, output="plan")
    ids_only = MixDataset(data, cfg, seed=4, output="plan", ship_sources=False)
    keys = [(2, i) for i in range(len(data))]
    a = collate_plans([shipped[k] for k in keys])
    b = collate_plans([ids_only[k] for k in keys])
    assert b.sources.shape[0] == 0 and b.source_ids.numel() > 0
    assert sorted(b.source_ids.tolist()) == sorted(set(b.source_ids.tolist()))
    want = DevicePainter()(a)
    got = DevicePainter(bank=SourceBank.from_dataset(data))(b)
    assert torch.equal(got.images, want.images)
    assert torch.equal(got.boxes, want.boxes) and torch.equal(got.weights, want.weights)
    with pytest.raises(ValueError, match="no source pixels"):
        DevicePainter()(b)
    with pytest.raises(ValueError, match="ship_sources"):
        collate_plans([shipped[keys[0]], ids_only[keys[1]]])



def test_a_bank_of_another_dataset_or_size_is_refused_by_name():
    from detaug.batch_transforms.source_bank import SourceBank

    data = make_data()
    cfg = AugmentConfig(img_size=64, mosaic=1.0)
    ids_only = MixDataset(data, cfg, seed=4, output="plan", ship_sources=False)
    b = collate_plans([ids_only[i] for i in range(len(data))])
    smaller = [Sample.create(s.image[: s.image.shape[0] // 2]) for s in data]  # same count, other sizes
    with pytest.raises(ValueError, match="bank: its images' sizes differ"):
        DevicePainter(bank=SourceBank.from_dataset(smaller))(b)
    with pytest.raises(ValueError, match="the bank holds 3 images"):
        DevicePainter(bank=SourceBank.from_dataset(data[:3]))(b)
    with pytest.raises(ValueError, match="dataset: item 0 is a PlannedItem"):
        SourceBank.from_dataset(ids_only)
    painter = DevicePainter(bank=SourceBank.from_dataset(data))
    painter(b)
    assert painter._checked_bank is painter.bank  # once: later batches are not synced for it
    painter.bank = SourceBank.from_dataset(smaller)  # as DetaugTrainer sets it: checked again
    with pytest.raises(ValueError, match="bank: its images' sizes differ"):
        painter(b)


def test_float16_output_is_refused_by_to_yolo_naming_the_painter():
    items, b = painted(CONFIGS["mosaic4"], "cpu", n=2, dtype=torch.float16)
    with pytest.raises(ValueError, match="DevicePainter with output_dtype=torch.uint8"):
        b.to_yolo()


def test_plans_without_pixels_decode_nothing_and_paint_the_same(tmp_path):
    from pathlib import Path

    from detaug import YoloDataset
    from detaug.batch_transforms.source_bank import SourceBank

    shapes = Path(__file__).resolve().parents[2] / "datasets" / "shapes" / "shapes.yaml"
    base = YoloDataset(shapes, img_size=64, progress=False, cache=None)
    cfg = AugmentConfig(img_size=64, mosaic=1.0, mixup=0.5, cutmix=0.3)
    ids_only = MixDataset(base, cfg, seed=1, output="plan", ship_sources=False)
    shipped = MixDataset(base, cfg, seed=1, output="plan")
    keys = [(0, i) for i in range(8)]
    b = collate_plans([ids_only[k] for k in keys])
    assert ids_only.stats["reads"] == 0  # planned from the label table: no image decoded
    a = collate_plans([shipped[k] for k in keys])
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.weights, b.weights)
    got = DevicePainter(bank=SourceBank.from_dataset(base))(b)
    assert torch.equal(got.images, DevicePainter()(a).images)


@pytest.mark.parametrize("size", [50, 72, 96])
def test_axis_aligned_configs_are_painted_bit_for_bit_at_any_size(size):
    """Ultralytics' default warps (translate + scale) are resizes: the device painter then equals OpenCV exactly.

    Sizes that are no multiple of the 32-pixel patches, both flips, Mosaic 4
    and 9, MixUp, CutMix, on canvases of several plans; HSV at 96. (OpenCV's
    8-bit HSV -> RGB gives some colours one level apart in the last
    ``width % 32`` pixels of each row, which its vector code does not reach;
    the painters' table is its vector code's, so at widths that are no
    multiple of 32 -- never a YOLO size -- a flipped image may differ there.)
    """
    colour = {} if size % 32 == 0 else {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}
    cfgs = [AugmentConfig(img_size=size, mosaic=1.0, mosaic9=0.5, fliplr=0.5, flipud=0.5, mixup=0.5, **colour),
            AugmentConfig(img_size=size, mosaic=0.5, cutmix=1.0, fliplr=0.5, flipud=0.5, **colour)]
    for cfg in cfgs:
        items, batch = painted(cfg, "cpu", seed=size, n=10)
        pb = collate_plans(items)
        assert not any(pb.slot_sample_patches) and sum(pb.slot_resize_patches) > 0
        assert any(p.flip_lr for p, _ in items) and any(p.flip_ud for p, _ in items)
        assert (pb.hsv_rows.numel() > 0) == (size % 32 == 0)
        ref = np.stack([paint(p, im) for p, im in items])
        assert np.array_equal(batch.images.permute(0, 2, 3, 1).numpy(), ref)


def test_a_batch_where_only_some_plans_jitter_colour():
    """HSV rows that are not the whole batch are jittered apart and put back (the others untouched)."""
    with_hsv = MixDataset(DATA, CONFIGS["hsv"], seed=4, output="plan")
    without = MixDataset(DATA, CONFIGS["mosaic4"], seed=4, output="plan")
    items = [with_hsv[0], without[1], with_hsv[2], without[3]]
    pb = collate_plans(items)
    assert pb.hsv_rows.tolist() == [0, 2]
    got = DevicePainter()(pb).images.permute(0, 2, 3, 1).numpy().astype(np.int16)
    d = np.abs(got - np.stack([paint(p, im) for p, im in items]).astype(np.int16))
    assert (d <= 2).mean() >= 0.999 and d.mean() < 0.5
    assert np.array_equal(d[[1, 3]], np.zeros_like(d[[1, 3]]))  # resized tiles, no colour: exact


@pytest.mark.parametrize("device", DEVICES)
def test_resize_canvases_are_exact_on_every_device(device):
    """The patches of resize-mode warps are integer arithmetic: every canvas equals OpenCV's on any device."""
    from detaug.canvas import paint_canvas
    items, _ = painted(AugmentConfig(img_size=96, mosaic=1.0, mosaic9=0.5, fliplr=0.5, flipud=0.5, mixup=0.5),
                       "cpu", seed=7, n=8)
    pb = collate_plans(items)
    got = DevicePainter().paint_canvases(pb.to(device)).cpu().permute(0, 2, 3, 1).numpy()
    rows = 0
    for r in range(pb.num_canvases):
        b = int(pb.canvas_item[r])
        plan, images = items[b]
        k = 0 if int(pb.main_canvas[b]) == r else plan.blend.canvas  # the plan's own canvas or its MixUp partner
        ref = paint_canvas(plan.canvases[k], images, 96, plan.fill)
        ref = ref[:, ::-1] if plan.flip_lr else ref
        ref = ref[::-1] if plan.flip_ud else ref
        assert np.array_equal(got[r], ref), f"canvas row {r}"
        rows += 1
    assert rows > 8 and sum(pb.slot_resize_patches) > 0


def test_mixup_blend_is_mixup_pixels_bit_for_bit():
    """Two separately rounded products then a sum, as mixup_pixels (a fused multiply-add, rounding once, put
    one value of the lam=0.3 batch one level off)."""
    from detaug import geometry
    from detaug.canvas import CanvasPlan, TileWarp
    from detaug.plan import Blend, SamplePlan
    from detaug.sample import Labels

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    items = []
    for size, scale, lam in [(32, 0.5, 0.3)] + [(48, 0.75, float(v)) for v in rng.uniform(0.05, 0.95, 16)]:
        lab = Labels((size, size), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
        canvases = tuple(CanvasPlan((TileWarp(i, (0, 0, 64, 64), geometry.scaling(scale), whole=True),)) for i in (0, 1))
        items.append((SamplePlan(size, (114, 114, 114), (0, 1), ((64, 64), (64, 64)), canvases, lab,
                                 blend=Blend(1, lam)), (a, b)))
    for group in (items[:1], items[1:]):  # one batch per size
        got = DevicePainter()(collate_plans(group)).images.permute(0, 2, 3, 1).numpy()
        assert np.array_equal(got, np.stack([paint(p, im) for p, im in group]))


def test_patch_counts_that_do_not_match_the_lists_are_refused():
    import dataclasses
    items, _ = painted(AugmentConfig(img_size=S, mosaic=1.0, degrees=10), "cpu", n=3)
    pb = collate_plans(items)
    assert sum(pb.slot_sample_patches) > 0
    half = tuple(c // 2 for c in pb.slot_sample_patches)
    for bad in (dataclasses.replace(pb, slot_sample_patches=()), dataclasses.replace(pb, slot_sample_patches=half),
                dataclasses.replace(pb, slot_resize_patches=(1,) * len(pb.slot_counts))):
        with pytest.raises(ValueError, match="batch: slot_"):
            DevicePainter()(bad)
