"""MixDataset: replay by (seed, epoch, position), workers, distributed ranks, schedule, properties."""

from __future__ import annotations

import os
import pickle
import socket

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, DistributedSampler

from detaug import AugmentConfig, MixDataset, Sample


def make_data(n: int = 8, seed: int = 0, polygons: bool = False) -> list[Sample]:
    """Small random Samples of varied sizes, some without objects."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        k = int(rng.integers(0, 5)) if i % 4 else 0
        xy = rng.uniform(0, [w - 8, h - 8], (k, 2))
        wh = rng.uniform(4, 30, (k, 2))
        boxes = np.minimum(np.concatenate([xy, xy + wh], 1), [w, h, w, h])
        polys = None
        if polygons:
            polys = [np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]) for b in boxes]
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out.append(Sample.create(img, boxes, rng.integers(0, 3, k), polygons=polys, meta={"path": f"img{i}.png"}))
    return out


FULL = AugmentConfig(
    img_size=64, mosaic=0.8, mosaic9=0.3, mixup=0.5, cutmix=0.5, degrees=15, shear=3, perspective=0.0005,
    flipud=0.3, fliplr=0.5,
)


def same(a: Sample, b: Sample) -> None:
    assert a.image.tobytes() == b.image.tobytes()
    assert a.boxes.tobytes() == b.boxes.tobytes()
    assert a.classes.tolist() == b.classes.tolist()
    assert a.weights.tobytes() == b.weights.tobytes()


def test_replay_is_byte_identical_and_order_independent():
    data = make_data()
    ds = MixDataset(data, FULL, seed=3)
    forward = [ds[i] for i in range(len(ds))]
    ds2 = MixDataset(data, FULL, seed=3)
    for i in reversed(range(len(ds2))):
        same(ds2[i], forward[i])
    assert all(s.image.shape == (64, 64, 3) for s in forward)
    assert forward[5].meta["position"] == 5 and forward[5].meta["seed"] == 3 and forward[5].meta["epoch"] == 0
    assert sorted(s.meta["index"] for s in forward) == list(range(len(data)))  # positions 0..n-1: one epoch


def test_epoch_and_seed_change_the_stream():
    data = make_data()
    ds = MixDataset(data, FULL, seed=3)
    a = ds[2]
    ds.set_epoch(1)
    b = ds[2]
    assert a.image.tobytes() != b.image.tobytes()
    ds.set_epoch(0)
    same(ds[2], a)
    assert MixDataset(data, FULL, seed=4)[2].image.tobytes() != a.image.tobytes()
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-1)


def test_close_mosaic_turns_mixing_off_for_the_last_epochs():
    data = make_data()
    cfg = AugmentConfig(img_size=64, mosaic=1.0, mixup=1.0, cutmix=1.0, epochs=10, close_mosaic=3)
    ds = MixDataset(data, cfg, seed=0)
    ds.set_epoch(6)
    s = ds[1]
    assert len(s.meta["tiles"]) == 4 and len(s.meta["mixed_with"]) == 2
    ds.set_epoch(7)
    s = ds[1]
    assert s.meta["tiles"] == (s.meta["index"],) and s.meta["mixed_with"] == ()
    assert (s.weights == 1).all()


def test_underlying_samples_are_not_modified():
    data = make_data(polygons=True)
    copies = [(s.image.copy(), s.boxes.copy(), s.weights.copy()) for s in data]
    ds = MixDataset(data, FULL, seed=0)
    for i in range(len(ds)):
        ds[i]
    for s, (img, b, w) in zip(data, copies, strict=True):
        np.testing.assert_array_equal(s.image, img)
        np.testing.assert_array_equal(s.boxes, b)
        np.testing.assert_array_equal(s.weights, w)


@settings(max_examples=25, deadline=None)
@given(
    mosaic=st.floats(0, 1), mosaic9=st.floats(0, 1), mixup=st.floats(0, 1), cutmix=st.floats(0, 1),
    degrees=st.floats(0, 45), scale=st.floats(0, 0.9), shear=st.floats(0, 10), perspective=st.floats(0, 0.001),
    translate=st.floats(0, 0.4), seed=st.integers(0, 2**31), index=st.integers(0, 7), polygons=st.booleans(),
)
def test_properties_over_random_configs(mosaic, mosaic9, mixup, cutmix, degrees, scale, shear, perspective,
                                        translate, seed, index, polygons):
    cfg = AugmentConfig(img_size=64, mosaic=mosaic, mosaic9=mosaic9, mixup=mixup, cutmix=cutmix, degrees=degrees,
                        scale=scale, shear=shear, perspective=perspective, translate=translate)
    s = MixDataset(make_data(polygons=polygons), cfg, seed=seed)[index]
    n = s.num_objects
    assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8 and s.image.flags.c_contiguous
    assert s.boxes.shape == (n, 4) and s.classes.shape == (n,) and s.weights.shape == (n,)
    if s.polygons is not None:
        assert len(s.polygons) == n
    b = s.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= 64).all() and (b[:, 3] <= 64).all()
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    assert ((s.weights > 0) & (s.weights <= 1)).all()


def _collect(loader: DataLoader) -> list[Sample]:
    return [s for batch in loader for s in batch]


def test_dataloader_workers_give_the_same_samples():
    data = make_data()
    ds = MixDataset(data, FULL, seed=11)
    ds.set_epoch(2)
    kw = {"batch_size": 3, "collate_fn": list, "shuffle": False}
    zero = _collect(DataLoader(ds, num_workers=0, **kw))
    two = _collect(DataLoader(ds, num_workers=2, **kw))
    assert len(zero) == len(two) == len(data)
    for a, b in zip(zero, two, strict=True):
        same(a, b)
    for i, s in enumerate(zero):
        same(s, ds[i])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank_main(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ds = MixDataset(make_data(), FULL, seed=5)
        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=9)
        sampler.set_epoch(1)
        ds.set_epoch(1)
        got = []
        for p in sampler:
            s = ds[int(p)]
            got.append((int(p), int(s.meta["index"]), s.image.tobytes(), s.boxes.tobytes()))
        with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(got, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_distributed_ranks_see_disjoint_indices_and_replayable_samples(tmp_path):
    world = 2
    mp.spawn(_rank_main, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    results = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(world)]
    seen = [[i for i, _, _, _ in r] for r in results]
    assert not set(seen[0]) & set(seen[1])  # positions
    assert sorted(seen[0] + seen[1]) == list(range(8))
    seen = [[i for _, i, _, _ in r] for r in results]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(8))
    ds = MixDataset(make_data(), FULL, seed=5)
    ds.set_epoch(1)
    for r in results:
        for p, _, img, boxes in r:
            s = ds[p]
            assert s.image.tobytes() == img and s.boxes.tobytes() == boxes


def test_invalid_arguments_name_themselves():
    with pytest.raises(ValueError, match="dataset"):
        MixDataset([], FULL)
    with pytest.raises(ValueError, match="config"):
        MixDataset(make_data(), {"mosaic": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        MixDataset(make_data(), FULL, seed=-1)
    with pytest.raises(IndexError):
        MixDataset(make_data(), FULL)[8]


def test_no_mosaic_letterboxes_to_img_size_with_boxes_on_objects():
    # One white block on black: without mosaic and with identity affine, the block lands scaled and centred.
    img = np.zeros((40, 80, 3), np.uint8)
    img[10:30, 20:60] = 255
    data = [Sample.create(img, [[20, 10, 60, 30]], [0])]
    cfg = AugmentConfig(img_size=64, mosaic=0, translate=0, scale=0, fliplr=0, hsv_h=0, hsv_s=0, hsv_v=0,
                        fill=0)
    s = MixDataset(data, cfg)[0]
    # scale 64/80 = 0.8; the 80x40 image becomes 64x32, centred vertically (offset 16).
    np.testing.assert_allclose(s.boxes[0], [16, 24, 48, 40], atol=1e-4)
    ys, xs = np.nonzero(s.image[..., 0] > 127)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (16, 24, 48, 40)


def test_set_epoch_reaches_persistent_workers():
    data = make_data()
    ds = MixDataset(data, FULL, seed=2)
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True, collate_fn=list)
    for epoch in range(3):
        ds.set_epoch(epoch)
        got = _collect(loader)
        assert {s.meta["epoch"] for s in got} == {epoch}
        ref = MixDataset(data, FULL, seed=2)
        ref.set_epoch(epoch)
        for i, s in enumerate(got):
            same(s, ref[i])



def test_streams_are_the_documented_seedsequence_children():
    ds = MixDataset(make_data(), FULL, seed=5)
    children = np.random.SeedSequence([5, 3, 2]).spawn(4)
    for got, child in zip(ds.streams(2, 3), children, strict=True):
        assert got.random(4).tolist() == np.random.default_rng(child).random(4).tolist()


class _Draw:
    """An ``extra`` transform that records the next number of the generator it is given."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return sample.with_meta(extra_draw=float(rng.random()))


def test_extra_transforms_draw_after_the_colour_jitter_and_flips():
    """``extra`` gets the colour/flip stream past the plan's 5 draws (3 HSV gains, left-right, up-down)."""
    ds = MixDataset(make_data(), FULL, seed=8, extra=[_Draw()])
    for p in range(4):
        s = ds[(2, p)]
        stream = ds.streams(s.meta["index"], 2)[3]
        stream.random(5)
        assert s.meta["extra_draw"] == float(stream.random())
