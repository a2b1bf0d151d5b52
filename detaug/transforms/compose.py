"""Chaining single-sample transforms: :class:`Compose` and :class:`RandomApply`.

Both are :class:`~detaug.transforms.base.Transform` s themselves, with frozen
params that record every inner draw, so a composed pipeline replays exactly
from its params. Mixing transforms (which need partners) are not accepted here;
``MixDataset`` applies those.

>>> import numpy as np
>>> from detaug.sample import Sample
>>> from detaug.transforms.photometric import RandomFlip
>>> s = Sample.create(np.zeros((4, 10, 3), np.uint8), [[1, 0, 3, 2]], [0])
>>> t = Compose([RandomFlip(p=1.0), RandomApply(RandomFlip("vertical", p=1.0), p=0.0)])
>>> t(s, np.random.default_rng(0)).boxes.tolist()
[[7.0, 0.0, 9.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detaug.sample import Sample
from detaug.transforms.base import MixTransform, Transform

__all__ = ["ComposeParams", "Compose", "RandomApplyParams", "RandomApply"]


def _check_transform(t: object, name: str) -> None:
    if isinstance(t, MixTransform):
        raise ValueError(f"{name}: {t!r} is a MixTransform; Compose/RandomApply take single-sample transforms")
    if not isinstance(t, Transform):
        raise ValueError(f"{name}: expected a detaug Transform, got {type(t).__name__}")


@dataclass(frozen=True)
class ComposeParams:
    """The params of each transform of a :class:`Compose`, in order.

    Attributes:
        params: one entry per transform.
    """

    params: tuple[Any, ...]


class Compose(Transform[ComposeParams]):
    """Apply transforms one after the other.

    Args:
        transforms: single-sample :class:`Transform` s.

    A transform's params may depend on the sample it sees (e.g. its size after
    a crop), so :meth:`sample_params` has to run the chain to draw them; it
    returns only the params. Use ``__call__`` (one pass) or
    :meth:`sample_and_apply` (one pass, params too) on hot paths.
    """

    def __init__(self, transforms: Sequence[Transform[Any]]) -> None:
        ts = tuple(transforms)
        for i, t in enumerate(ts):
            _check_transform(t, f"transforms[{i}]")
        self.transforms: tuple[Transform[Any], ...] = ts

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"

    def __len__(self) -> int:
        return len(self.transforms)

    def sample_and_apply(self, rng: np.random.Generator, sample: Sample) -> tuple[Sample, ComposeParams]:
        """Draw each transform's params on the sample it will see, apply it; one pass.

        Returns the output and the params that :meth:`apply` replays exactly.
        """
        params = []
        for t in self.transforms:  # a handful of transforms
            p = t.sample_params(rng, sample)
            sample = t.apply(sample, p)
            params.append(p)
        return sample, ComposeParams(params=tuple(params))

    def sample_params(self, rng: np.random.Generator, sample: Sample) -> ComposeParams:
        """The params of every transform (runs the chain; see the class note)."""
        return self.sample_and_apply(rng, sample)[1]

    def apply(self, sample: Sample, params: ComposeParams) -> Sample:
        """Apply each transform with its params, in order."""
        if len(params.params) != len(self.transforms):
            raise ValueError(
                f"params: expected {len(self.transforms)} entries (one per transform), got {len(params.params)}"
            )
        for t, p in zip(self.transforms, params.params, strict=True):
            sample = t.apply(sample, p)
        return sample

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return self.sample_and_apply(rng, sample)[0]


@dataclass(frozen=True)
class RandomApplyParams:
    """Whether the inner transform ran, and its params.

    Attributes:
        applied: True when the inner transform is applied.
        params: the inner transform's params, ``None`` when not applied.
    """

    applied: bool
    params: Any = None


class RandomApply(Transform[RandomApplyParams]):
    """Apply ``transform`` with probability ``p``.

    Args:
        transform: a single-sample :class:`Transform`.
        p: probability in [0, 1]. One uniform draw decides; the inner params
            are drawn only when it applies.
    """

    def __init__(self, transform: Transform[Any], p: float = 0.5) -> None:
        _check_transform(transform, "transform")
        if not (0.0 <= p <= 1.0):
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.transform = transform
        self.p = float(p)

    def __repr__(self) -> str:
        return f"RandomApply({self.transform!r}, p={self.p})"

    def sample_params(self, rng: np.random.Generator, sample: Sample) -> RandomApplyParams:
        """``applied = U(0, 1) < p``; then the inner params if applied."""
        if not rng.random() < self.p:
            return RandomApplyParams(applied=False, params=None)
        return RandomApplyParams(applied=True, params=self.transform.sample_params(rng, sample))

    def apply(self, sample: Sample, params: RandomApplyParams) -> Sample:
        """The inner transform with ``params.params``, or ``sample`` itself."""
        if not params.applied:
            return sample
        return self.transform.apply(sample, params.params)
