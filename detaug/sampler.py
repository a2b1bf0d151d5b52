"""Epoch orders and keys: which image a sample slot shows, and a sampler whose keys carry their epoch.

A :class:`~detaug.mix_dataset.MixDataset` sample is named by a *key*
``(epoch, position)``: the ``position``-th sample of epoch ``epoch``. The
dataset owns the order: position ``p`` of epoch ``e`` shows dataset item
``epoch_order(seed, e, n)[p]`` (a permutation drawn from the run's seed and
the epoch alone, so every process computes it without being told), and its
Mosaic/MixUp/CutMix partners come from the same :class:`EpochOrder` block of
consecutive positions. Reading positions in order therefore reads each image
about once, whoever reads them: the main process, DataLoader workers (each
gets whole batches of consecutive keys), or distributed ranks (each gets a
contiguous shard of positions).

Telling every DataLoader worker the epoch at the right time is fragile
(persistent workers, prefetching iterators, trainers that never call
``set_epoch``), so :class:`EpochSampler` yields keys ``(epoch, position)``
instead of bare positions: each key says which epoch's sample it asks for,
whichever process serves it. A new pass over the sampler (a new ``iter()``,
as every DataLoader epoch and Ultralytics' ``InfiniteDataLoader`` make) is
the next epoch.

>>> s = EpochSampler(6)
>>> first, second = list(s), list(s)
>>> first == [(0, p) for p in range(6)], second[0]
(True, (1, 0))
>>> [EpochSampler(6, num_replicas=2, rank=r).shard().tolist() for r in (0, 1)]
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.utils.data
from numpy.typing import NDArray

from detaug.transforms.limits import check_int

__all__ = ["EpochSampler", "EpochOrder", "epoch_order", "as_key"]

# Distinguishes the order's stream from the items' SeedSequence([seed, epoch, index]) streams.
_ORDER_STREAM = 0x0D0E


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool = True) -> NDArray[np.int64]:
    """(n,) int64: the dataset item shown at each position of epoch ``epoch`` of a run with ``seed``.

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


class EpochOrder:
    """The orders of a run's epochs (:func:`epoch_order`) and their blocks of ``block`` consecutive positions.

    Position ``p`` of epoch ``e`` shows item ``index(e, p)``; its block is
    positions ``[p // block * block, that + block)`` (the last one may be
    shorter), where a :class:`~detaug.mix_dataset.MixDataset` draws the
    item's mixing partners. A DataLoader hands each worker whole batches of
    consecutive keys, so when ``block`` divides the batch size a block is
    served by one worker, one item after another: its partners were just
    decoded. Everything is a pure function of ``(seed, epoch, position)``;
    the orders of the last two epochs asked for are kept.

    >>> o = EpochOrder(seed=1, n=10, block=4)
    >>> order = epoch_order(1, 0, 10)
    >>> o.index(0, 5) == int(order[5]), o.members(0, 5).tolist() == order[4:8].tolist()
    (True, True)
    >>> o.members(0, 9).tolist() == order[8:].tolist(), o.position(0, int(order[7]))
    (True, 7)
    """

    def __init__(self, seed: int, n: int, block: int, shuffle: bool = True) -> None:
        self.seed, self.n, self.block, self.shuffle = int(seed), int(n), check_int("block", block, 1), bool(shuffle)
        self._orders: dict[int, tuple[NDArray[np.int64], NDArray[np.int64]]] = {}

    def _order(self, epoch: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        got = self._orders.get(epoch)
        if got is None:
            order = epoch_order(self.seed, epoch, self.n, self.shuffle)
            position = np.empty_like(order)
            position[order] = np.arange(self.n, dtype=np.int64)
            if len(self._orders) >= 2:
                self._orders.pop(next(iter(self._orders)))
            got = self._orders[epoch] = (order, position)
        return got

    def order(self, epoch: int) -> NDArray[np.int64]:
        """(n,) int64, read-only: the item at each position of ``epoch``."""
        order = self._order(int(epoch))[0]
        order.setflags(write=False)
        return order

    def index(self, epoch: int, position: int) -> int:
        """The dataset item at ``position`` of ``epoch``."""
        return int(self._order(int(epoch))[0][int(position)])

    def position(self, epoch: int, index: int) -> int:
        """The position of dataset item ``index`` in ``epoch``."""
        return int(self._order(int(epoch))[1][int(index)])

    def members(self, epoch: int, position: int) -> NDArray[np.int64]:
        """(k,) int64, k <= block: the items of the block holding ``position`` in ``epoch``, in order."""
        order = self._order(int(epoch))[0]
        start = int(position) // self.block * self.block
        return order[start:start + self.block]

    def __getstate__(self) -> dict[str, Any]:
        return {"seed": self.seed, "n": self.n, "block": self.block, "shuffle": self.shuffle, "_orders": {}}


def as_key(key: Any, default_epoch: int) -> tuple[int, int]:
    """``(epoch, position)`` from a dataset key: an int position, or an ``(epoch, position)`` pair.

    >>> as_key(5, 2), as_key((7, 5), 2)
    ((2, 5), (7, 5))
    """
    if isinstance(key, (tuple, list)):
        if len(key) != 2:
            raise ValueError(f"key: expected a position or an (epoch, position) pair, got {key!r}")
        epoch, position = key
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"key: the epoch must be an int >= 0, got {key!r}")
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
            raise ValueError(f"key: the position must be an int, got {key!r}")
        return int(epoch), int(position)
    if isinstance(key, torch.Tensor) and key.numel() == 2 and not key.is_floating_point():
        e, p = (int(v) for v in key.tolist())
        return as_key((e, p), default_epoch)
    if isinstance(key, torch.Tensor) and key.numel() == 1 and not key.is_floating_point():
        return int(default_epoch), int(key.item())
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise ValueError(f"key: expected a position or an (epoch, position) pair of ints, got {key!r}")
    return int(default_epoch), int(key)


class EpochSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """Yields ``(epoch, position)`` keys, positions in order; every new iteration is the next epoch.

    Args:
        data_source: the dataset (or its length).
        start_epoch: the epoch of the first iteration (to resume a run).
        num_replicas, rank: distributed training: rank ``r`` gets the ``r``-th
            contiguous shard of the epoch's positions; the positions are padded by
            wrapping around so every rank gets the same number of keys
            (``drop_last=True`` truncates instead).
        drop_last: see above.

    The shuffle is the dataset's (:class:`EpochOrder`): positions are visited
    in order so that the blocks whose items share partners are served by
    one worker. ``set_epoch(e)`` makes the *next* iteration epoch ``e`` (for
    loops that call it, e.g. code written for DistributedSampler); without it
    the sampler counts.
    """

    def __init__(self, data_source: Any, start_epoch: int = 0, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = False) -> None:
        n = data_source if isinstance(data_source, (int, np.integer)) else len(data_source)
        if isinstance(n, bool) or int(n) < 1:
            raise ValueError(f"data_source: expected a non-empty dataset or a length >= 1, got {data_source!r}")
        for name, v, lo in (("start_epoch", start_epoch, 0), ("num_replicas", num_replicas, 1), ("rank", rank, 0)):
            check_int(name, v, lo)
        if rank >= num_replicas:
            raise ValueError(f"rank: expected an int < num_replicas={num_replicas}, got {rank}")
        self.n = int(n)
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
        self._next_epoch = check_int("epoch", epoch)

    def shard(self) -> NDArray[np.int64]:
        """(num_samples,) int64: the positions this rank visits in every epoch, in order."""
        start = self.rank * self.num_samples
        return np.arange(start, start + self.num_samples, dtype=np.int64) % self.n  # wraps around to pad

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self._next_epoch
        self._next_epoch += 1
        for p in self.shard().tolist():
            yield (epoch, p)

    def __len__(self) -> int:
        return self.num_samples
