"""Feed detaug Samples to an Ultralytics YOLO trainer (Ultralytics itself is not needed here).

:class:`UltralyticsDataset` wraps any map-style dataset of
:class:`~detaug.sample.Sample` (a ``MixDataset``, ``YoloDataset``, a list) and
returns per-sample dicts in the format of Ultralytics' ``YOLODataset`` after
its ``Format`` transform; its static :meth:`UltralyticsDataset.collate_fn`
batches them like ``YOLODataset.collate_fn`` (stack images, concatenate the
per-object tensors, offset ``batch_idx``). It also gives what a
``DetectionTrainer`` reads from a dataset besides items: ``labels`` (for
``cls_pw``, ``plots=True`` and auto-batch) and ``close_mosaic(hyp)``. Keys may be
positions or ``(epoch, position)`` pairs (:class:`~detaug.sampler.EpochSampler`).

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
``detaug``          dict                            what replays the sample: ``epoch``,
                                                    ``index``, ``position``, ``seed``,
                                                    ``tiles``, ``mixed_with`` (those
                                                    in meta)
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

from detaug.batch import DEFAULT_FILL
from detaug.batch_transforms.plan_batch import PlanBatch, collate_plans
from detaug.boxes import xyxy_to_yolo
from detaug.mix_dataset import MixDataset, PlannedItem
from detaug.sample import Sample

__all__ = ["UltralyticsDataset", "FirstItems", "sample_to_ultralytics", "yolo_labels"]

# Keys concatenated over objects by the collate function (as Ultralytics does).
_CAT_KEYS = ("cls", "bboxes", "weights")
# Sample meta copied into the per-sample "detaug" dict (what replays the sample).
REPLAY_META = ("epoch", "index", "position", "seed", "tiles", "mixed_with")


def replay_info(meta: Any) -> dict[str, Any]:
    """The entries of a sample's meta that replay it (``batch["detaug"]``): epoch, index, position, seed, tiles,
    mixed_with."""
    return {k: meta[k] for k in REPLAY_META if k in meta}


class _SampleSource(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: Any) -> Sample: ...


def sample_to_ultralytics(sample: Sample, single_cls: bool = False) -> dict[str, Any]:
    """One Sample as Ultralytics' per-sample training dict (see the module table).

    The image is copied (HWC -> CHW), so the dict shares no memory with the
    Sample. ``single_cls=True`` serves every class id as 0 (Ultralytics' ``single_cls``).
    """
    h, w = sample.size
    meta = sample.meta
    ori = tuple(int(v) for v in meta.get("orig_size", (h, w)))
    if len(ori) != 2 or min(ori) <= 0:
        raise ValueError(f"meta['orig_size']: expected (h0, w0) > 0, got {meta.get('orig_size')!r}")
    ratio_pad = meta.get("ratio_pad", ((h / ori[0], w / ori[1]), (0, 0)))
    n = sample.num_objects
    cls = np.zeros((n, 1), np.float32) if single_cls else sample.classes.astype(np.float32).reshape(n, 1)
    return {
        "img": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))),
        "cls": torch.from_numpy(cls),
        "bboxes": torch.from_numpy(xyxy_to_yolo(sample.boxes, w, h).reshape(n, 4)),
        "batch_idx": torch.zeros(n, dtype=torch.float32),
        "weights": torch.from_numpy(sample.weights.astype(np.float32, copy=True)),
        "im_file": str(meta.get("path", "")),
        "ori_shape": ori,
        "resized_shape": (h, w),
        "ratio_pad": ratio_pad,
        "detaug": replay_info(meta),
    }


class FirstItems(torch.utils.data.Dataset):
    """The first ``n`` items of a dataset (Ultralytics' ``fraction``: the first ``round(N * fraction)`` images).

    Wrap the source dataset (as DetaugTrainer does): over a ``MixDataset``
    the first ``n`` items are the first ``n`` positions of each epoch, ``n``
    images drawn anew every epoch.

    Args:
        dataset: map-style dataset.
        n: how many items, 1 <= n <= len(dataset).

    >>> FirstItems(list("abcde"), 2)[1], len(FirstItems(list("abcde"), 2))
    ('b', 2)
    """

    def __init__(self, dataset: Any, n: int) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise ValueError(f"dataset: expected a map-style dataset, got {type(dataset).__name__}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(dataset):
            raise ValueError(f"n: expected an int in [1, {len(dataset)}], got {n!r}")
        self.dataset, self.n = dataset, int(n)

    @property
    def names(self) -> list[str] | None:
        """Class names of the wrapped dataset, when it has them."""
        return getattr(self.dataset, "names", None)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: Any) -> Any:
        """Item ``key``: an int, or an ``(epoch, position)`` key passed on with the position checked."""
        epoch, i = key if isinstance(key, tuple) and len(key) == 2 else (None, key)
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} items")
        return self.dataset[i % self.n] if epoch is None else self.dataset[(epoch, i % self.n)]


def yolo_labels(dataset: Any, single_cls: bool = False) -> list[dict[str, Any]]:
    """Per-image labels in the form of Ultralytics' ``YOLODataset.labels``, without augmenting.

    Follows ``.dataset`` down through wrappers (a ``MixDataset``, whose
    positions show all of its images, :class:`FirstItems`) to the source
    dataset and returns the first ``len(dataset)`` images' labels. A detaug ``YoloDataset`` or
    ``CocoDataset`` is read from its label table (no image is decoded); any
    other source is read item by item.

    Returns:
        one dict per image: ``im_file`` (str), ``shape`` (h0, w0), ``cls`` (n, 1)
        float32, ``bboxes`` (n, 4) float32 normalised cx, cy, w, h,
        ``normalized`` True, ``bbox_format`` ``"xywh"``.
    """
    n = len(dataset)
    src = dataset
    while hasattr(src, "dataset") and not hasattr(src, "_labels"):
        src = src.dataset
    table = getattr(src, "_labels", None)
    if table is not None:
        files, sizes = src.files, src.orig_sizes
    out = []
    for i in range(n):
        if table is not None:
            xyxy, classes, _ = table.get(i, 1.0, 1.0)
            path, shape = files[i], (int(sizes[i, 0]), int(sizes[i, 1]))
            xywh = xyxy_to_yolo(np.asarray(xyxy, np.float32).reshape(-1, 4), 1, 1)
        else:
            s = src[i]
            xywh = xyxy_to_yolo(s.boxes, s.width, s.height)
            classes, path, shape = s.classes, str(s.meta.get("path", "")), tuple(s.meta.get("orig_size", s.size))
        k = len(classes)
        cls = np.zeros((k, 1), np.float32) if single_cls else np.asarray(classes, np.float32).reshape(k, 1)
        out.append({"im_file": str(path), "shape": shape, "cls": cls,
                    "bboxes": np.asarray(xywh, np.float32).reshape(k, 4), "normalized": True,
                    "bbox_format": "xywh"})
    return out


class UltralyticsDataset(torch.utils.data.Dataset):
    """A map-style dataset of Ultralytics-format dicts over a dataset of Samples.

    Args:
        dataset: anything with ``len()`` and ``[key] -> Sample`` (e.g. a
            ``MixDataset``, whose ``set_epoch`` this forwards, and whose
            ``(epoch, position)`` keys it passes through).
        single_cls: serve every class id as 0 (Ultralytics' ``single_cls``).

    Use with ``torch.utils.data.DataLoader(..., collate_fn=UltralyticsDataset.collate_fn)``;
    with ``sampler=EpochSampler(ds)`` every epoch is a different, replayable one.
    """

    def __init__(self, dataset: _SampleSource, single_cls: bool = False) -> None:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise ValueError(f"dataset: expected a map-style dataset of Samples, got {type(dataset).__name__}")
        if not isinstance(single_cls, bool):
            raise ValueError(f"single_cls: expected a bool, got {single_cls!r}")
        self.dataset = dataset
        self.single_cls = single_cls
        self._labels: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> dict[str, Any] | PlannedItem:
        """The Ultralytics dict of item ``key``; a ``MixDataset(output="plan")`` item is passed on unpainted."""
        sample = self.dataset[key]
        if isinstance(sample, PlannedItem):
            return sample
        if not isinstance(sample, Sample):
            raise ValueError(f"dataset[{key}]: expected a Sample, got {type(sample).__name__}")
        return sample_to_ultralytics(sample, self.single_cls)

    @property
    def labels(self) -> list[dict[str, Any]]:
        """The source images' labels, as Ultralytics' ``YOLODataset.labels`` (:func:`yolo_labels`); cached."""
        if self._labels is None:
            self._labels = yolo_labels(self.dataset, self.single_cls)
        return self._labels

    @property
    def mix(self) -> MixDataset | None:
        """The ``MixDataset`` this serves from (through ``.dataset`` wrappers), or ``None``."""
        src: Any = self.dataset
        while not isinstance(src, MixDataset) and hasattr(src, "dataset"):
            src = src.dataset
        return src if isinstance(src, MixDataset) else None

    def close_mosaic(self, hyp: Any) -> int | None:
        """Turn Mosaic, MixUp and CutMix off from epoch ``hyp.epochs - hyp.close_mosaic`` on.

        Called by Ultralytics' trainer when it reaches that epoch. The
        MixDataset's config gets these ``epochs``/``close_mosaic`` (its
        ``mixing_active``), so the items of every later epoch key, in any
        worker created from now on, come without mixing. Returns that first
        closed epoch, or ``None`` when there is no MixDataset.
        """
        mix = self.mix
        if mix is None:
            return None
        epochs, close = int(hyp.epochs), int(hyp.close_mosaic)
        mix.config = mix.config.replace(epochs=epochs, close_mosaic=min(close, epochs))
        return max(epochs - close, 0)

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped dataset's ``set_epoch`` (if it has one)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    @staticmethod
    def collate_fn(batch: Sequence[dict[str, Any]] | Sequence[PlannedItem]) -> dict[str, Any] | PlanBatch:
        """Batch per-sample dicts like Ultralytics' ``YOLODataset.collate_fn``.

        Planned items (``MixDataset(output="plan")``) become one
        :class:`~detaug.batch_transforms.PlanBatch` instead, which
        ``DetaugTrainer.preprocess_batch`` paints on the trainer's device.

        ``img`` is stacked to (B, 3, H, W); ``cls``, ``bboxes``, ``weights`` and
        ``batch_idx`` are concatenated, ``batch_idx`` offset by the image's
        position; other keys become tuples. Images of different sizes (which
        Ultralytics' own collate rejects) are padded bottom-right with 114 to
        the largest and their ``bboxes`` re-normalised to the padded size.
        """
        items = list(batch)
        if not items:
            raise ValueError("batch: cannot collate an empty list")
        if isinstance(items[0], PlannedItem):
            return collate_plans(items)
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
                    img = torch.full((len(vals), vals[0].shape[0], hmax, wmax), DEFAULT_FILL, dtype=vals[0].dtype)
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
