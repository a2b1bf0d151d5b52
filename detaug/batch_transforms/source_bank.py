"""SourceBank: a dataset's source images resident on the painter's device.

With a bank, DataLoader workers plan items and ship only the dataset indices
of their sources (``MixDataset(output="plan", ship_sources=False)``); the
:class:`~detaug.batch_transforms.painter.DevicePainter` gathers the pixels on
the device. Each image crosses to the device once per run instead of once per
use (a Mosaic with MixUp reads about 8 sources per item), and the loader's
work is planning alone.

Memory: ``N x Hmax x Wmax x 3`` bytes on the device (``nbytes``), every
image padded to the largest; COCO128 at 640 is 157 MB (128 x 640 x 640 x 3),
a 2,048-image set at 640 about 2.5 GB. For a dataset that
does not fit, ship sources with each batch instead (the default).

>>> import numpy as np
>>> from detaug import Sample
>>> data = [Sample.create(np.full((4, 6, 3), 10 * i, np.uint8)) for i in range(3)]
>>> bank = SourceBank.from_dataset(data)
>>> bank.images.shape, bank.sizes.tolist()
(torch.Size([3, 4, 6, 3]), [[4, 6], [4, 6], [4, 6]])
>>> imgs, sizes = bank.gather(torch.tensor([2, 0]))
>>> imgs[:, 0, 0, 0].tolist()
[20, 0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["SourceBank", "DEFAULT_MAX_BYTES"]

#: ``from_dataset`` refuses to build a bank larger than this (bytes), unless told otherwise.
DEFAULT_MAX_BYTES = 16 << 30


@dataclass(frozen=True, eq=False)
class SourceBank:
    """Source images of a dataset, packed on one device.

    Attributes:
        images: (N, Hmax, Wmax, 3) uint8 RGB, image ``i`` top-left, zero-padded.
        sizes: (N, 2) int64 (h, w) of each image, on the same device.
    """

    images: torch.Tensor
    sizes: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[3] != 3:
            raise ValueError(f"images: expected (N, H, W, 3) uint8, got {tuple(self.images.shape)} {self.images.dtype}")
        if self.sizes.shape != (self.images.shape[0], 2):
            raise ValueError(f"sizes: expected ({self.images.shape[0]}, 2), got {tuple(self.sizes.shape)}")
        if self.sizes.device != self.images.device:
            raise ValueError(f"sizes: on {self.sizes.device}, images on {self.images.device}")

    @classmethod
    def from_dataset(cls, dataset: Any, device: torch.device | str = "cpu",
                     max_bytes: int | None = DEFAULT_MAX_BYTES) -> SourceBank:
        """Read ``dataset[i].image`` for every i once and pack them on ``device``.

        Args:
            dataset: a map-style dataset of Samples (the one a MixDataset wraps,
                e.g. a ``YoloDataset``; its indices are the plans' ``sources``).
            device: where the bank lives (the painter's device).
            max_bytes: refuse (ValueError naming the size) a bank larger than
                this; ``None``: no limit.
        """
        n = len(dataset)
        if n < 1:
            raise ValueError("dataset: is empty")
        first = []
        for i in range(n):
            item = dataset[i]
            if not isinstance(getattr(item, "image", None), np.ndarray):
                raise ValueError(f"dataset: item {i} is a {type(item).__name__}, not a Sample with an image; pass the "
                                 "dataset a MixDataset wraps (its .dataset), not the MixDataset")
            first.append(item.image)
        hmax = max(im.shape[0] for im in first)
        wmax = max(im.shape[1] for im in first)
        nbytes = n * hmax * wmax * 3
        if max_bytes is not None and nbytes > max_bytes:
            raise ValueError(f"dataset: a bank of {n} images of up to {hmax}x{wmax} needs {nbytes / 2**30:.1f} GiB, "
                             f"more than max_bytes={max_bytes / 2**30:.1f} GiB; ship sources with each batch instead")
        host = torch.zeros((n, hmax, wmax, 3), dtype=torch.uint8)
        packed = host.numpy()
        for i, im in enumerate(first):
            packed[i, : im.shape[0], : im.shape[1]] = im  # a copy: read-only images are fine
        sizes = torch.tensor([im.shape[:2] for im in first], dtype=torch.int64)
        return cls(host.to(device), sizes.to(device))

    @property
    def nbytes(self) -> int:
        """Bytes the images take on their device."""
        return self.images.numel()

    @property
    def device(self) -> torch.device:
        """The bank's device."""
        return self.images.device

    def check_ids(self, ids: torch.Tensor) -> None:
        """ValueError (naming ``ids``) unless every dataset index in ``ids`` is one of the bank's images (a host sync)."""
        n = self.images.shape[0]
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
            raise ValueError(f"ids: dataset indices {int(ids.min())}..{int(ids.max())}, the bank holds {n} images: "
                             "build it from the dataset the MixDataset wraps")

    def gather(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and sizes of dataset indices ``ids`` ((U,) int64): (U, Hmax, Wmax, 3) uint8, (U, 2) int64."""
        ids = ids.to(self.images.device, torch.int64)
        self.check_ids(ids)
        return self.images.index_select(0, ids), self.sizes.index_select(0, ids)
