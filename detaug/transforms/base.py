"""The transform protocol: parameters are sampled apart from their application.

Every transform has

- ``sample_params(rng, ...) -> Params``: draws a frozen, typed dataclass from an
  injected ``numpy.random.Generator`` (never a global RNG);
- ``apply(...) -> Sample``: a pure function of its inputs and the params;
- ``__call__``: the two chained.

Single-sample transforms (:class:`Transform`) take ``apply(sample, params)``.
Mixing transforms (:class:`MixTransform`) take partners:
``apply(sample, partners, params)``; ``num_partners`` says how many the caller
must supply (the caller, e.g. ``MixDataset``, draws the partner indices from the
same generator, so a whole sample replays from one seed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from detaug.sample import Sample

__all__ = ["Transform", "MixTransform", "BoxFilter", "P"]

P = TypeVar("P")


@dataclass(frozen=True)
class BoxFilter:
    """Which objects survive a geometric step (see :func:`detaug.boxes.box_candidates`).

    Attributes:
        min_size: minimum width and height in output pixels.
        min_area_ratio: minimum visible area / area of the object transformed
            but not clipped.
        max_aspect_ratio: maximum of w/h and h/w.
    """

    min_size: float = 2.0
    min_area_ratio: float = 0.1
    max_aspect_ratio: float = 100.0

    def __post_init__(self) -> None:
        if not (self.min_size >= 0):
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if not (0 <= self.min_area_ratio <= 1):
            raise ValueError(f"min_area_ratio must be in [0, 1], got {self.min_area_ratio}")
        if not (self.max_aspect_ratio >= 1):
            raise ValueError(f"max_aspect_ratio must be >= 1, got {self.max_aspect_ratio}")


class Transform(ABC, Generic[P]):
    """A transform of one Sample."""

    @abstractmethod
    def sample_params(self, rng: np.random.Generator, sample: Sample) -> P:
        """Draw this transform's parameters for ``sample`` from ``rng``."""

    @abstractmethod
    def apply(self, sample: Sample, params: P) -> Sample:
        """Apply with fixed ``params``; never modifies ``sample``."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return self.apply(sample, self.sample_params(rng, sample))


class MixTransform(ABC, Generic[P]):
    """A transform that combines a Sample with ``num_partners`` others."""

    num_partners: int = 1

    @abstractmethod
    def sample_params(self, rng: np.random.Generator, sample: Sample, partners: Sequence[Sample]) -> P:
        """Draw the parameters for mixing ``sample`` with ``partners``."""

    @abstractmethod
    def apply(self, sample: Sample, partners: Sequence[Sample], params: P) -> Sample:
        """Mix with fixed ``params``; never modifies any input."""

    def __call__(self, sample: Sample, partners: Sequence[Sample], rng: np.random.Generator) -> Sample:
        return self.apply(sample, partners, self.sample_params(rng, sample, partners))
