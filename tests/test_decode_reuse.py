"""Decode reuse: positions in an epoch, block partners, the per-process buffer, the reads counter, and replay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch.utils.data

from detaug import AugmentConfig, MixDataset, Sample
from detaug.sampler import EpochOrder, EpochSampler, epoch_order

N = 1024  # distinct small JPEGs: an uncached dataset (the 2,048-file COCO set is measured in the README)


class DiskImages(torch.utils.data.Dataset):
    """An uncached dataset: every item decodes its own small JPEG."""

    def __init__(self, root: Path) -> None:
        self.files = sorted(root.glob("*.jpg"))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Sample:
        img = cv2.cvtColor(cv2.imread(str(self.files[i])), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        return Sample.create(img, [[2, 2, w - 3, h - 3]], [i % 7], meta={"index": i})


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> DiskImages:
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(N):
        h, w = int(rng.integers(24, 40)), int(rng.integers(24, 40))
        img = np.full((h, w, 3), (i * 7) % 256, np.uint8)
        img[h // 4: h // 2, w // 4: w // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
        cv2.imwrite(str(root / f"{i:05d}.jpg"), img)
    return DiskImages(root)


def _keep(batch: list[Sample]) -> list[Sample]:
    return batch


def _config() -> AugmentConfig:
    return AugmentConfig(img_size=32, mosaic=1.0, mixup=0.1)


def _epoch(ds: MixDataset, workers: int, epoch: int = 0, persistent: bool = False,
           sampler: torch.utils.data.Sampler | None = None) -> dict[tuple[int, int], Sample]:
    """One epoch through a DataLoader (batch 16), keyed by (epoch, position)."""
    sampler = EpochSampler(ds, start_epoch=epoch) if sampler is None else sampler
    loader = torch.utils.data.DataLoader(ds, batch_size=16, sampler=sampler, num_workers=workers,
                                         collate_fn=_keep, persistent_workers=persistent and workers > 0)
    return {(s.meta["epoch"], s.meta["position"]): s for batch in loader for s in batch}


def test_block_partners_are_the_default_and_read_each_source_about_once(disk: DiskImages) -> None:
    ds = MixDataset(disk, _config(), seed=3)
    assert ds.partners == "block" and ds.orders.block == 16
    served = _epoch(ds, workers=2)
    assert len(served) == N
    assert sorted(s.meta["index"] for s in served.values()) == list(range(N))  # one epoch: every image once
    st = ds.stats
    assert st["items"] == N
    assert st["reads_per_item"] <= 1.3, st
    # every partner of a sample lies in its block of the epoch's order
    order = EpochOrder(3, N, 16)
    for (e, p), s in list(served.items())[:200]:
        assert s.meta["index"] == order.index(e, p)
        members = set(order.members(e, p).tolist())
        assert set(s.meta["tiles"]) <= members
        for _, tiles in s.meta["mixed_with"]:
            assert set(tiles) <= members


def test_reading_positions_in_a_plain_loop_reads_each_source_about_once(disk: DiskImages) -> None:
    ds = MixDataset(disk, _config(), seed=4)
    got = [ds[k] for k in range(256)]  # the epoch set by set_epoch (0), positions in order
    assert ds.stats["reads_per_item"] <= 1.3, ds.stats
    assert [s.meta["position"] for s in got] == list(range(256))
    assert len({s.meta["index"] for s in got}) == 256
    assert [s.meta["index"] for s in got] == epoch_order(4, 0, N)[:256].tolist()


def test_uniform_partners_read_more(disk: DiskImages) -> None:
    ds = MixDataset(disk, _config(), seed=3, partners="uniform")
    for k in range(64):
        ds[(0, k)]
    assert ds.stats["reads_per_item"] > 3.0


def test_a_shuffling_sampler_is_still_one_correct_epoch(disk: DiskImages) -> None:
    small = torch.utils.data.Subset(disk, range(96))
    ds = MixDataset(small, _config(), seed=6)
    shuffled = torch.utils.data.RandomSampler(range(96), generator=torch.Generator().manual_seed(0))
    served = _epoch(ds, workers=0, sampler=shuffled)
    assert sorted(s.meta["index"] for s in served.values()) == list(range(96))
    fresh = MixDataset(small, _config(), seed=6)
    for key, s in list(served.items())[::7]:
        r = fresh[key]
        assert np.array_equal(s.image, r.image) and np.array_equal(s.boxes, r.boxes)


def test_a_worker_serves_what_the_main_process_replays(disk: DiskImages) -> None:
    part = torch.utils.data.Subset(disk, range(384))
    ds = MixDataset(part, _config(), seed=5, block=8)
    served = _epoch(ds, workers=2, epoch=1)
    fresh = MixDataset(part, _config(), seed=5, block=8)  # empty buffer, other order of reads
    for key in list(served)[::16]:
        a, b = served[key], fresh[key]
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)
        assert a.meta["tiles"] == b.meta["tiles"]
        c = fresh[fresh.key_of(a.meta["index"], epoch=1)]  # the same sample, found by its image
        assert np.array_equal(a.image, c.image)


def test_same_samples_whatever_workers_and_persistence(disk: DiskImages) -> None:
    small = torch.utils.data.Subset(disk, range(96))
    ref = MixDataset(small, _config(), seed=1)
    ds = MixDataset(small, _config(), seed=1)
    sampler = EpochSampler(ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, sampler=sampler, num_workers=2, collate_fn=_keep,
                                         persistent_workers=True)
    for _ in range(2):
        for batch in loader:
            for s in batch:
                r = ref[(s.meta["epoch"], s.meta["position"])]
                assert np.array_equal(s.image, r.image) and np.array_equal(s.boxes, r.boxes)
    assert ds.stats["items"] == 2 * 96


def test_no_shuffle_shows_item_p_at_position_p(disk: DiskImages) -> None:
    small = torch.utils.data.Subset(disk, range(40))
    ds = MixDataset(small, _config(), seed=2, shuffle=False)
    assert [ds[(3, p)].meta["index"] for p in (0, 17, 39)] == [0, 17, 39]
    assert ds.key_of(17, epoch=3) == (3, 17)
    # the random stream of an item does not depend on where it is shown: same parameters either way
    shuffled = MixDataset(small, AugmentConfig(img_size=32, mosaic=0.0), seed=2)
    plain = MixDataset(small, AugmentConfig(img_size=32, mosaic=0.0), seed=2, shuffle=False)
    a, b = shuffled[shuffled.key_of(11)], plain[11]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)


def test_buffer_is_bounded_and_outputs_do_not_depend_on_it(disk: DiskImages) -> None:
    a = MixDataset(disk, _config(), seed=2, buffer=0, partners="uniform")
    b = MixDataset(disk, _config(), seed=2, buffer=5, buffer_bytes=20_000, partners="uniform")
    for k in range(0, 400, 7):
        x, y, z = a[(0, k)], b[(0, k)], b[(0, k)]  # b's second read of the item hits its buffer
        assert np.array_equal(x.image, y.image) and np.array_equal(x.image, z.image)
        assert len(b._buffer.items) <= 5 and b._buffer.held <= 20_000
    assert 2 * a.stats["reads"] > b.stats["reads"] > a.stats["reads"] > 0
    b.reset_stats()
    assert b.stats == {"items": 0, "reads": 0, "reads_per_item": 0.0}


def test_blocks_cover_the_order_and_small_datasets() -> None:
    b = EpochOrder(seed=4, n=10, block=4)
    order = epoch_order(4, 2, 10)
    assert b.order(2).tolist() == order.tolist()
    seen = [tuple(b.members(2, p).tolist()) for p in range(10)]
    assert sorted(set(seen)) == sorted({tuple(order[k:k + 4].tolist()) for k in (0, 4, 8)})
    assert [b.position(2, int(i)) for i in order] == list(range(10))
    data = [Sample.create(np.full((8, 8, 3), 9, np.uint8), [[1, 1, 6, 6]], [0])]
    ds = MixDataset(data, AugmentConfig(img_size=8, mixup=1.0))
    assert ds[0].meta["tiles"] == (0, 0, 0, 0)


@pytest.mark.parametrize("kw", [{"partners": "near"}, {"block": 0}, {"buffer": -1}, {"buffer_bytes": 1.5},
                                {"shuffle": 1}])
def test_bad_arguments_are_named(kw: dict) -> None:
    data = [Sample.create(np.zeros((8, 8, 3), np.uint8), [[1, 1, 6, 6]], [0])]
    with pytest.raises(ValueError, match=next(iter(kw))):
        MixDataset(data, AugmentConfig(img_size=8), **kw)


def test_keys_and_key_of_name_what_is_wrong() -> None:
    data = [Sample.create(np.zeros((8, 8, 3), np.uint8), [[1, 1, 6, 6]], [0]) for _ in range(3)]
    ds = MixDataset(data, AugmentConfig(img_size=8))
    for key in (1.7, "1", (0, 1.5), (0, "2"), True):
        with pytest.raises(ValueError, match="key"):
            ds[key]
    assert ds[torch.tensor(2)].meta["position"] == 2 and ds[torch.tensor([1, 2])].meta["epoch"] == 1
    with pytest.raises(ValueError, match="epoch"):
        ds.key_of(0, epoch=-1)
    with pytest.raises(ValueError, match="index"):
        ds.key_of(1.0)
    with pytest.raises(IndexError):
        ds.key_of(3)
