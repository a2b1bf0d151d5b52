"""Keys that carry their epoch: a sampler whose indices need no ``set_epoch`` anywhere.

A :class:`~detaug.mix_dataset.MixDataset` item is a pure function of
``(seed, epoch, index)``. Telling every DataLoader worker the epoch at the
right time is fragile (persistent workers, prefetching iterators, trainers
that never call ``set_epoch``), so :class:`EpochSampler` yields *keys*
``(epoch, index)`` instead of bare indices: each key says which epoch's
sample it asks for, whichever process serves it. A new pass over the sampler
(a new ``iter()``, as every DataLoader epoch and Ultralytics'
``InfiniteDataLoader`` make) is the next epoch.

The order of an epoch is :func:`epoch_order` (a permutation drawn from the
run's seed and the epoch alone), split into contiguous shards, one per
distributed rank, so ranks see disjoint items and a shard visits neighbours
of the epoch's order one after another.

>>> s = EpochSampler(6, seed=1)
>>> first, second = list(s), list(s)
>>> [e for e, _ in first] == [0] * 6, [e for e, _ in second] == [1] * 6
(True, True)
>>> sorted(i for _, i in first) == list(range(6))
True
>>> [EpochSampler(6, seed=1, num_replicas=2, rank=r).shard(0).tolist() for r in (0, 1)] == [
...     epoch_order(1, 0, 6)[:3].tolist(), epoch_order(1, 0, 6)[3:].tolist()]
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.utils.data
from numpy.typing import NDArray

__all__ = ["EpochSampler", "epoch_order", "as_key", "EpochBlocks"]

# Distinguishes the order's stream from the items' SeedSequence([seed, epoch, index]) streams.
_ORDER_STREAM = 0x0D0E


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool = True) -> NDArray[np.int64]:
    """(n,) int64: the order in which epoch ``epoch`` of a run with ``seed`` visits ``n`` items.

    A pure function of its arguments (numpy's PCG64 from a SeedSequence), so
    every process computes the same order without being told it.

    >>> epoch_order(0, 3, 5, shuffle=False).tolist()
    [0, 1, 2, 3, 4]
    >>> bool((epoch_order(0, 3, 5) == epoch_order(0, 3, 5)).all())
    True
    """
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    ss = np.random.SeedSequence([int(seed), int(epoch)], spawn_key=(_ORDER_STREAM,))
    return np.random.default_rng(ss).permutation(n).astype(np.int64)


class EpochBlocks:
    """Blocks of ``block`` consecutive positions of :func:`epoch_order`: where an item's partners come from.

    Position ``p`` of epoch ``e``'s order belongs to the block
    ``[p // block * block, that + block)`` (the last one may be shorter).
    :class:`EpochSampler` with the same seed visits that order, and a
    DataLoader hands each worker whole batches of consecutive keys, so when
    ``block`` divides the batch size the items of a block are served one after
    another by one worker: partners drawn inside the block were just decoded.
    Everything here is a pure function of ``(seed, epoch, index)``; the orders
    of the last two epochs asked for are kept.

    >>> b = EpochBlocks(seed=1, n=10, block=4)
    >>> order = epoch_order(1, 0, 10)
    >>> b.members(0, int(order[5])).tolist() == order[4:8].tolist()
    True
    >>> b.members(0, int(order[9])).tolist() == order[8:].tolist()
    True
    """

    def __init__(self, seed: int, n: int, block: int) -> None:
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
            raise ValueError(f"block: expected an int >= 1, got {block!r}")
        self.seed, self.n, self.block = int(seed), int(n), int(block)
        self._orders: dict[int, tuple[NDArray[np.int64], NDArray[np.int64]]] = {}

    def _order(self, epoch: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        got = self._orders.get(epoch)
        if got is None:
            order = epoch_order(self.seed, epoch, self.n)
            position = np.empty_like(order)
            position[order] = np.arange(self.n, dtype=np.int64)
            if len(self._orders) >= 2:
                self._orders.pop(next(iter(self._orders)))
            got = self._orders[epoch] = (order, position)
        return got

    def members(self, epoch: int, index: int) -> NDArray[np.int64]:
        """(k,) int64, k <= block: the dataset indices of the block holding ``index`` in ``epoch``, in order."""
        order, position = self._order(int(epoch))
        start = int(position[int(index)]) // self.block * self.block
        return order[start:start + self.block]

    def __getstate__(self) -> dict[str, Any]:
        return {"seed": self.seed, "n": self.n, "block": self.block, "_orders": {}}


def as_key(key: Any, default_epoch: int) -> tuple[int, int]:
    """``(epoch, index)`` from a dataset key: an int index, or an ``(epoch, index)`` pair.

    >>> as_key(5, 2), as_key((7, 5), 2)
    ((2, 5), (7, 5))
    """
    if isinstance(key, (tuple, list)):
        if len(key) != 2:
            raise ValueError(f"key: expected an index or an (epoch, index) pair, got {key!r}")
        epoch, index = key
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"key: the epoch must be an int >= 0, got {key!r}")
        return int(epoch), int(index)
    if isinstance(key, torch.Tensor) and key.numel() == 2:
        e, i = (int(v) for v in key.tolist())
        return as_key((e, i), default_epoch)
    return int(default_epoch), int(key)


class EpochSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` keys; every new iteration is the next epoch.

    Args:
        data_source: the dataset (or its length). When it has a ``seed``
            attribute (a MixDataset) and ``seed`` is None, that seed is used,
            so the sampler's order and the dataset's partner choice agree.
        shuffle: visit :func:`epoch_order` (True) or 0..n-1.
        seed: the order's seed (default: the dataset's, else 0).
        start_epoch: the epoch of the first iteration (to resume a run).
        num_replicas, rank: distributed training: rank ``r`` gets the ``r``-th
            contiguous shard of the epoch's order; the order is padded by
            wrapping around so every rank gets the same number of keys
            (``drop_last=True`` truncates instead).
        drop_last: see above.

    ``set_epoch(e)`` makes the *next* iteration epoch ``e`` (for loops that call
    it, e.g. code written for DistributedSampler); without it the sampler counts.
    """

    def __init__(self, data_source: Any, shuffle: bool = True, seed: int | None = None,
                 start_epoch: int = 0, num_replicas: int = 1, rank: int = 0, drop_last: bool = False) -> None:
        n = data_source if isinstance(data_source, (int, np.integer)) else len(data_source)
        if isinstance(n, bool) or int(n) < 1:
            raise ValueError(f"data_source: expected a non-empty dataset or a length >= 1, got {data_source!r}")
        if seed is None:
            seed = int(getattr(data_source, "seed", 0))
        for name, v, lo in (("seed", seed, 0), ("start_epoch", start_epoch, 0), ("num_replicas", num_replicas, 1),
                            ("rank", rank, 0)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
        if rank >= num_replicas:
            raise ValueError(f"rank: expected an int < num_replicas={num_replicas}, got {rank}")
        self.n = int(n)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.drop_last = bool(drop_last)
        self._next_epoch = int(start_epoch)
        per = self.n // self.num_replicas if self.drop_last else -(-self.n // self.num_replicas)
        if per < 1:
            raise ValueError(f"num_replicas: {num_replicas} ranks with drop_last leave no item of {self.n} for a rank")
        self.num_samples = per

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will serve."""
        return self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration serve epoch ``epoch``."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch: expected an int >= 0, got {epoch!r}")
        self._next_epoch = int(epoch)

    def shard(self, epoch: int) -> NDArray[np.int64]:
        """(num_samples,) int64: the dataset indices this rank visits in ``epoch``, in order."""
        order = epoch_order(self.seed, epoch, self.n, self.shuffle)
        total = self.num_samples * self.num_replicas
        if total > self.n:
            order = np.resize(order, total)  # wrap around, as DistributedSampler pads
        start = self.rank * self.num_samples
        return order[start:start + self.num_samples]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self._next_epoch
        self._next_epoch += 1
        for i in self.shard(epoch).tolist():
            yield (epoch, i)

    def __len__(self) -> int:
        return self.num_samples
