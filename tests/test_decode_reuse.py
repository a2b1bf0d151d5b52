"""Decode reuse: the per-process buffer of source Samples, block partners, the reads counter, and replay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch.utils.data

from detaug import AugmentConfig, MixDataset, Sample
from detaug.sampler import EpochBlocks, EpochSampler, epoch_order

N = 2048


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


def _epoch(ds: MixDataset, workers: int, epoch: int = 0, persistent: bool = False) -> dict[tuple[int, int], Sample]:
    sampler = EpochSampler(ds, start_epoch=epoch)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, sampler=sampler, num_workers=workers,
                                         collate_fn=_keep, persistent_workers=persistent and workers > 0)
    return {(s.meta["epoch"], s.meta["index"]): s for batch in loader for s in batch}


def test_block_partners_read_each_source_about_once(disk: DiskImages) -> None:
    ds = MixDataset(disk, _config(), seed=3, partners="block", block=16)
    served = _epoch(ds, workers=2)
    assert len(served) == N
    st = ds.stats
    assert st["items"] == N
    assert st["reads_per_item"] <= 1.3, st
    # every partner of a sample lies in its block of the epoch's order
    blocks = EpochBlocks(3, N, 16)
    for (e, i), s in list(served.items())[:200]:
        members = set(blocks.members(e, i).tolist())
        assert set(s.meta["tiles"]) <= members
        for _, tiles in s.meta["mixed_with"]:
            assert set(tiles) <= members


def test_uniform_partners_are_the_default_and_read_more(disk: DiskImages) -> None:
    ds = MixDataset(disk, _config(), seed=3)
    assert ds.partners == "uniform"
    for k in range(64):
        ds[(0, k)]
    assert ds.stats["reads_per_item"] > 3.0


def test_a_worker_serves_what_the_main_process_replays(disk: DiskImages) -> None:
    ds = MixDataset(disk, _config(), seed=5, partners="block", block=8)
    served = _epoch(ds, workers=2, epoch=1)
    fresh = MixDataset(disk, _config(), seed=5, partners="block", block=8)  # empty buffer, other order of reads
    for key in list(served)[:: N // 24]:
        a, b = served[key], fresh[key]
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)
        assert a.meta["tiles"] == b.meta["tiles"]


def test_same_samples_whatever_workers_and_persistence(disk: DiskImages) -> None:
    small = torch.utils.data.Subset(disk, range(96))
    ref = MixDataset(small, _config(), seed=1, partners="block", block=16)
    ds = MixDataset(small, _config(), seed=1, partners="block", block=16)
    sampler = EpochSampler(ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, sampler=sampler, num_workers=2, collate_fn=_keep,
                                         persistent_workers=True)
    for _ in range(2):
        for batch in loader:
            for s in batch:
                r = ref[(s.meta["epoch"], s.meta["index"])]
                assert np.array_equal(s.image, r.image) and np.array_equal(s.boxes, r.boxes)
    assert ds.stats["items"] == 2 * 96


def test_buffer_is_bounded_and_outputs_do_not_depend_on_it(disk: DiskImages) -> None:
    a = MixDataset(disk, _config(), seed=2, buffer=0)
    b = MixDataset(disk, _config(), seed=2, buffer=5, buffer_bytes=20_000)
    for k in range(0, 400, 7):
        x, y, z = a[(0, k)], b[(0, k)], b[(0, k)]  # b's second read of the item hits its buffer
        assert np.array_equal(x.image, y.image) and np.array_equal(x.image, z.image)
        assert len(b._buffer.items) <= 5 and b._buffer.held <= 20_000
    assert 2 * a.stats["reads"] > b.stats["reads"] > a.stats["reads"] > 0
    b.reset_stats()
    assert b.stats == {"items": 0, "reads": 0, "reads_per_item": 0.0}


def test_blocks_cover_the_order_and_small_datasets() -> None:
    b = EpochBlocks(seed=4, n=10, block=4)
    order = epoch_order(4, 2, 10)
    seen = [tuple(b.members(2, int(i)).tolist()) for i in order]
    assert sorted(set(seen)) == sorted({tuple(order[k:k + 4].tolist()) for k in (0, 4, 8)})
    data = [Sample.create(np.full((8, 8, 3), 9, np.uint8), [[1, 1, 6, 6]], [0])]
    ds = MixDataset(data, AugmentConfig(img_size=8, mixup=1.0), partners="block")
    assert ds[0].meta["tiles"] == (0, 0, 0, 0)


@pytest.mark.parametrize("kw", [{"partners": "near"}, {"block": 0}, {"buffer": -1}, {"buffer_bytes": 1.5}])
def test_bad_arguments_are_named(kw: dict) -> None:
    data = [Sample.create(np.zeros((8, 8, 3), np.uint8), [[1, 1, 6, 6]], [0])]
    with pytest.raises(ValueError, match=next(iter(kw))):
        MixDataset(data, AugmentConfig(img_size=8), **kw)
