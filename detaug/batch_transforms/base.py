"""The batch-transform protocol and the one place where its generators are looked up.

A batch transform works on a whole :class:`~detaug.batch.Batch`, on the device
its tensors are on, and mirrors the per-sample protocol of
:mod:`detaug.transforms.base`:

- ``sample_params(batch) -> Params``: draws a frozen dataclass of tensors
  (on the batch's device) from the transform's ``torch.Generator`` for that
  device (:meth:`BatchTransform.generator_for`), never from a global RNG;
- ``apply(batch, params) -> Batch``: a pure function of its inputs (a new
  Batch; the input's tensors are never written into);
- ``__call__(batch)``: the two chained.

Generators: a user's ``torch.Generator`` is used as given, after checking it
lives on the batch's device; without one, a generator per device is created
on first use and seeded with ``seed``, so runs are reproducible.

>>> import numpy as np, torch
>>> from detaug.batch import collate
>>> from detaug.sample import Sample
>>> class Noop(BatchTransform[int]):
...     def sample_params(self, batch): return 0
...     def apply(self, batch, params): return batch
>>> t = Noop(seed=3)
>>> g = t.generator_for(torch.device("cpu"))
>>> g is t.generator_for(torch.device("cpu")), g.initial_seed(), t.generator, t.seed
(True, 3, None, 3)
>>> t(collate([Sample.create(np.zeros((2, 2, 3), np.uint8))])).batch_size
1
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

import torch

from detaug.batch import Batch

__all__ = ["BatchTransform", "DEFAULT_SEED", "same_device"]

P = TypeVar("P")

#: Seed of the generators a batch transform creates when none is given.
DEFAULT_SEED = 0


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same (``cuda`` and ``cuda:<current>`` are)."""
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = torch.cuda.current_device() if a.index is None else a.index
        ib = torch.cuda.current_device() if b.index is None else b.index
        return ia == ib
    return a.index == b.index or a.index is None or b.index is None


class BatchTransform(ABC, Generic[P]):
    """A transform of a whole Batch on its device, drawing from a per-device ``torch.Generator``.

    Args:
        generator: a ``torch.Generator`` on the device the batches will be on,
            or ``None``: one is created per device on first use, seeded with
            ``seed``.
        seed: seed of the lazily created generators.
    """

    def __init__(self, generator: torch.Generator | None = None, seed: int = DEFAULT_SEED) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self._generator = generator
        self._seed = int(seed)
        self._made: dict[str, torch.Generator] = {}

    @property
    def generator(self) -> torch.Generator | None:
        """The generator given to the constructor (``None``: one per device, seeded with ``seed``)."""
        return self._generator

    @property
    def seed(self) -> int:
        """Seed of the generators created per device when none was given."""
        return self._seed

    def generator_for(self, device: torch.device) -> torch.Generator:
        """The generator to draw from for a batch on ``device``.

        Raises:
            ValueError: (naming ``generator``) if the user's generator is on
                another device.
        """
        if self._generator is not None:
            if not same_device(torch.device(self._generator.device), device):
                raise ValueError(
                    f"generator: it is on {self._generator.device} but the batch is on {device}; "
                    "create the torch.Generator on the batch's device"
                )
            return self._generator
        key = str(device)
        if key not in self._made:
            self._made[key] = torch.Generator(device=device).manual_seed(self._seed)
        return self._made[key]

    @abstractmethod
    def sample_params(self, batch: Batch) -> P:
        """Draw this transform's parameters for ``batch`` (tensors on its device)."""

    @abstractmethod
    def apply(self, batch: Batch, params: P) -> Batch:
        """Apply with fixed ``params``; returns a new Batch, never modifies ``batch``."""

    def __call__(self, batch: Batch) -> Batch:
        """``apply(batch, sample_params(batch))``."""
        return self.apply(batch, self.sample_params(batch))
