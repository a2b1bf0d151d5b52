"""Feed detaug Samples to an Ultralytics YOLO trainer.

:class:`UltralyticsDataset` wraps any map-style dataset of
:class:`~detaug.sample.Sample` (a ``MixDataset``, ``YoloDataset``, a list) and
returns per-sample dicts in the format of Ultralytics' ``YOLODataset`` after
its ``Format`` transform; its static :meth:`UltralyticsDataset.collate_fn`
batches them like ``YOLODataset.collate_fn`` (stack images, concatenate the
per-object tensors, offset ``batch_idx``). Ultralytics itself is not needed.

Per-sample dict (n objects):

==================  ==============================  =====================================
key                 value                           meaning
==================  ==============================  =====================================
``img``             (3, H, W) uint8 tensor          RGB (Ultralytics' Format flips its BGR
                                                    reads to RGB; detaug is RGB already)
``cls``             (n, 1) float32 tensor           class ids
``bboxes``          (n, 4) float32 tensor           normalised cx, cy, w, h in [0, 1]
``batch_idx``       (n,) float32 tensor             zeros; collate_fn adds the offsets
``weights``         (n,) float32 tensor             per-object loss weights (detaug)
``im_file``         str                             ``meta["path"]``
``ori_shape``       (h0, w0)                        ``meta["orig_size"]`` (else the size)
``resized_shape``   (h, w)                          this image's size
``ratio_pad``       ((h / h0, w / w0), (0, 0))      ``meta["ratio_pad"]`` if present
==================  ==============================  =====================================

>>> import numpy as np
>>> from detaug.sample import Sample
>>> s = Sample.create(np.zeros((10, 20, 3), np.uint8), [[0, 0, 10, 5]], [3], meta={"path": "a.jpg"})
>>> d = UltralyticsDataset([s, s])[0]
>>> tuple(d["img"].shape), d["cls"].tolist(), d["bboxes"].tolist()
((3, 10, 20), [[3.0]], [[0.25, 0.25, 0.5, 0.5]])
>>> b = UltralyticsDataset.collate_fn([d, d])
>>> b["batch_idx"].tolist(), tuple(b["img"].shape), b["im_file"]
([0.0, 1.0], (2, 3, 10, 20), ('a.jpg', 'a.jpg'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from detaug.batch import PAD_VALUE
from detaug.boxes import xyxy_to_yolo
from detaug.sample import Sample

__all__ = ["UltralyticsDataset", "sample_to_ultralytics"]

# Keys concatenated over objects by the collate function (as Ultralytics does).
_CAT_KEYS = ("cls", "bboxes", "weights")


class _SampleSource(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def sample_to_ultralytics(sample: Sample) -> dict[str, Any]:
    """One Sample as Ultralytics' per-sample training dict (see the module table).

    The image is copied (HWC -> CHW), so the dict shares no memory with the Sample.
    """
    h, w = sample.size
    meta = sample.meta
    ori = tuple(int(v) for v in meta.get("orig_size", (h, w)))
    if len(ori) != 2 or min(ori) <= 0:
        raise ValueError(f"meta['orig_size']: expected (h0, w0) > 0, got {meta.get('orig_size')!r}")
    ratio_pad = meta.get("ratio_pad", ((h / ori[0], w / ori[1]), (0, 0)))
    n = sample.num_objects
    return {
        "img": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))),
        "cls": torch.from_numpy(sample.classes.astype(np.float32).reshape(n, 1)),
        "bboxes": torch.from_numpy(xyxy_to_yolo(sample.boxes, w, h).reshape(n, 4)),
        "batch_idx": torch.zeros(n, dtype=torch.float32),
        "weights": torch.from_numpy(sample.weights.astype(np.float32, copy=True)),
        "im_file": str(meta.get("path", "")),
        "ori_shape": ori,
        "resized_shape": (h, w),
        "ratio_pad": ratio_pad,
    }


class UltralyticsDataset(torch.utils.data.Dataset):
    """A map-style dataset of Ultralytics-format dicts over a dataset of Samples.

    Args:
        dataset: anything with ``len()`` and ``[i] -> Sample`` (e.g. a
            ``MixDataset``, whose ``set_epoch`` this forwards).

    Use with ``torch.utils.data.DataLoader(..., collate_fn=UltralyticsDataset.collate_fn)``.
    """

    def __init__(self, dataset: _SampleSource) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise ValueError(f"dataset: expected a map-style dataset of Samples, got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        if not isinstance(sample, Sample):
            raise ValueError(f"dataset[{index}]: expected a Sample, got {type(sample).__name__}")
        return sample_to_ultralytics(sample)

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped dataset's ``set_epoch`` (if it has one)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    @staticmethod
    def collate_fn(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Batch per-sample dicts like Ultralytics' ``YOLODataset.collate_fn``.

        ``img`` is stacked to (B, 3, H, W); ``cls``, ``bboxes``, ``weights`` and
        ``batch_idx`` are concatenated, ``batch_idx`` offset by the image's
        position; other keys become tuples. Images of different sizes (which
        Ultralytics' own collate rejects) are padded bottom-right with 114 to
        the largest and their ``bboxes`` re-normalised to the padded size.
        """
        items = list(batch)
        if not items:
            raise ValueError("batch: cannot collate an empty list")
        keys = sorted(items[0])
        for i, d in enumerate(items):
            if sorted(d) != keys:
                raise ValueError(f"batch[{i}]: keys {sorted(d)} differ from batch[0]'s {keys}")
        sizes = [tuple(d["img"].shape[1:]) for d in items]
        hmax, wmax = max(s[0] for s in sizes), max(s[1] for s in sizes)
        out: dict[str, Any] = {}
        for k in keys:
            vals = [d[k] for d in items]
            if k == "img":
                if all(s == (hmax, wmax) for s in sizes):
                    out[k] = torch.stack(vals, 0)
                else:
                    img = torch.full((len(vals), vals[0].shape[0], hmax, wmax), PAD_VALUE, dtype=vals[0].dtype)
                    for i, v in enumerate(vals):  # one copy per image
                        img[i, :, : v.shape[1], : v.shape[2]] = v
                    out[k] = img
            elif k == "bboxes":
                scale = [
                    torch.tensor([s[1] / wmax, s[0] / hmax, s[1] / wmax, s[0] / hmax], dtype=torch.float32)
                    for s in sizes
                ]
                out[k] = torch.cat([v * sc for v, sc in zip(vals, scale, strict=True)], 0)
            elif k in _CAT_KEYS:
                out[k] = torch.cat(vals, 0)
            elif k == "batch_idx":
                out[k] = torch.cat([v + i for i, v in enumerate(vals)], 0)
            else:
                out[k] = tuple(vals)
        return out
