"""Batches: many Samples as flat torch tensors, ready for a device and a YOLO trainer.

:func:`collate` turns a list of :class:`~detaug.sample.Sample` into a
:class:`Batch`: one (B, 3, H, W) uint8 image tensor (images of different size
are padded bottom-right with the ``fill`` colour -- grey 114 by default -- up
to the largest height and width; the valid size of each is kept in ``sizes``
and the fill in ``Batch.fill``) and *flat* per-object tensors, one row
per object of the whole batch, with ``batch_idx`` saying which image a row
belongs to (sorted, objects of an image in their order). Boxes stay absolute
pixel xyxy in each image's frame (the padding adds nothing at the top or left,
so the frame is unchanged). :meth:`Batch.to_yolo` converts to the dict an
Ultralytics detection trainer reads (normalised cxcywh): the only conversion,
at the edge.

>>> import numpy as np
>>> from detaug.sample import Sample
>>> a = Sample.create(np.zeros((4, 6, 3), np.uint8), [[0, 0, 2, 2], [1, 1, 5, 3]], [0, 2])
>>> b = Sample.create(np.zeros((2, 8, 3), np.uint8))
>>> batch = collate([a, b])
>>> tuple(batch.images.shape), batch.batch_idx.tolist(), batch.sizes.tolist()
((2, 3, 4, 8), [0, 0], [[4, 6], [2, 8]])
>>> int(batch.images[1, 0, 3, 0])  # padding
114
>>> y = batch.to_yolo()
>>> y["bboxes"][0].tolist(), y["cls"].tolist(), y["batch_idx"].tolist()
([0.125, 0.25, 0.25, 0.5], [[0.0], [2.0]], [0.0, 0.0])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from detaug.canvas import DEFAULT_FILL, Fill, as_fill
from detaug.sample import Sample

__all__ = ["Batch", "collate"]

#: The default ``fill``: grey 114, Ultralytics' letterbox colour (padding of collated images).

#: A fill value as Batch records it: (r, g, b) ints in 0..255.


@dataclass(frozen=True, eq=False)
class Batch:
    """A batch of B images and their M objects, as torch tensors on one device.

    Attributes:
        images: (B, 3, H, W), RGB. uint8 0..255 as collated; a
            :class:`~detaug.batch_transforms.mixer.BatchMixer` with
            ``output_dtype`` returns a floating tensor normalised to [0, 1].
            Pixels outside an image's valid region (``sizes``) are padding,
            of colour ``fill``.
        batch_idx: (M,) int64, the image each object belongs to, in [0, B).
            :func:`collate` and the mixer produce it sorted ascending, with each
            image's objects in their original order.
        classes: (M,) int64 class ids.
        boxes: (M, 4) float32, absolute pixel xyxy in the frame of image
            ``batch_idx`` (top-left of the tensor is the origin).
        weights: (M,) float32 in (0, 1], per-object loss weights.
        sizes: (B, 2) int64, the valid (height, width) of each image; the rest
            of the (H, W) tensor is padding.
        metas: the B samples' ``meta`` as plain dicts (host-side, never moved;
            plain dicts so a Batch pickles across DataLoader worker processes).
        fill: (r, g, b) ints, the colour of the padding (``collate``'s
            ``fill``; an int given here is a grey level). Batch transforms
            that need the padding's colour (the mixer) check it against theirs.

    Tensors never get written into by detaug; every op returns a new Batch.
    """

    images: torch.Tensor
    batch_idx: torch.Tensor
    classes: torch.Tensor
    boxes: torch.Tensor
    weights: torch.Tensor
    sizes: torch.Tensor
    metas: tuple[Mapping[str, Any], ...] = ()
    fill: Fill = (DEFAULT_FILL, DEFAULT_FILL, DEFAULT_FILL)

    def __post_init__(self) -> None:
        im = self.images
        if im.ndim != 4 or im.shape[1] != 3:
            raise ValueError(f"images: expected (B, 3, H, W), got {tuple(im.shape)}")
        b = im.shape[0]
        m = self.batch_idx.shape[0] if self.batch_idx.ndim == 1 else -1
        if m < 0 or self.batch_idx.dtype != torch.int64:
            raise ValueError(f"batch_idx: expected (M,) int64, got {tuple(self.batch_idx.shape)} {self.batch_idx.dtype}")
        if self.classes.shape != (m,) or self.classes.dtype != torch.int64:
            raise ValueError(f"classes: expected ({m},) int64, got {tuple(self.classes.shape)} {self.classes.dtype}")
        if self.boxes.shape != (m, 4) or self.boxes.dtype != torch.float32:
            raise ValueError(f"boxes: expected ({m}, 4) float32, got {tuple(self.boxes.shape)} {self.boxes.dtype}")
        if self.weights.shape != (m,) or self.weights.dtype != torch.float32:
            raise ValueError(f"weights: expected ({m},) float32, got {tuple(self.weights.shape)} {self.weights.dtype}")
        if self.sizes.shape != (b, 2) or self.sizes.dtype != torch.int64:
            raise ValueError(f"sizes: expected ({b}, 2) int64, got {tuple(self.sizes.shape)} {self.sizes.dtype}")
        if len(self.metas) not in (0, b):
            raise ValueError(f"metas: expected {b} entries (or none), got {len(self.metas)}")
        object.__setattr__(self, "metas", tuple(dict(m) for m in self.metas))
        object.__setattr__(self, "fill", as_fill(self.fill))

    # ------------------------------------------------------------------ info
    @property
    def batch_size(self) -> int:
        """B, the number of images."""
        return int(self.images.shape[0])

    @property
    def num_objects(self) -> int:
        """M, the number of objects in the whole batch."""
        return int(self.batch_idx.shape[0])

    @property
    def device(self) -> torch.device:
        """The device of every tensor of the batch."""
        return self.images.device

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the padded image tensor."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def counts(self) -> torch.Tensor:
        """(B,) int64, the number of objects of each image (on the batch's device)."""
        return torch.bincount(self.batch_idx, minlength=self.batch_size)

    def replace(self, **changes: Any) -> Batch:
        """A copy with some fields replaced (fields are checked again)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        h, w = self.shape
        return (
            f"Batch(images={self.batch_size}x3x{h}x{w} {self.images.dtype}, "
            f"objects={self.num_objects}, device={self.device})"
        )

    # ------------------------------------------------------------------ devices
    def _map(self, fn: Any) -> Batch:
        return Batch(
            images=fn(self.images),
            batch_idx=fn(self.batch_idx),
            classes=fn(self.classes),
            boxes=fn(self.boxes),
            weights=fn(self.weights),
            sizes=fn(self.sizes),
            metas=self.metas,
            fill=self.fill,
        )

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        """The batch with every tensor on ``device`` (no copy when already there).

        ``non_blocking=True`` overlaps host-to-device copies with compute when
        the source is pinned (see :meth:`pin_memory`).
        """
        dev = torch.device(device)
        return self._map(lambda t: t.to(dev, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """The batch with its CPU tensors in page-locked memory.

        ``torch.utils.data.DataLoader(pin_memory=True)`` calls this on custom
        batch types. Without an accelerator (nothing to pin for) the batch is
        returned unchanged, as DataLoader itself does.
        """
        if not torch.cuda.is_available() or self.device.type != "cpu":
            return self
        return self._map(lambda t: t.pin_memory())

    # ------------------------------------------------------------------ export
    def to_yolo(self) -> dict[str, Any]:
        """The batch as the dict an Ultralytics detection trainer reads.

        Keys (B images, M objects; tensors stay on the batch's device):

        - ``img``: (B, 3, H, W) uint8 RGB (the trainer divides by 255 itself);
        - ``cls``: (M, 1) float32 class ids;
        - ``bboxes``: (M, 4) float32 normalised cxcywh, relative to the padded
          (H, W) the network sees;
        - ``batch_idx``: (M,) float32 image index of each object;
        - ``weights``: (M,) float32 per-object loss weights (detaug's addition,
          read by :mod:`detaug.loss`);
        - ``im_file``, ``ori_shape``, ``resized_shape``, ``ratio_pad``: tuples of
          B entries: ``meta["path"]``, ``meta["orig_size"]`` (h0, w0), the valid
          (h, w), and ``((h / h0, w / w0), (0, 0))`` (pads are bottom-right), like
          Ultralytics' own collate leaves them.

        Raises:
            ValueError: if ``images`` is not uint8 (a mixer with ``output_dtype``
                already divided by 255 and the trainer would do it again).
        """
        if self.images.dtype != torch.uint8:
            raise ValueError(
                f"images: to_yolo() needs uint8 images (Ultralytics divides by 255), got "
                f"{self.images.dtype}; build the BatchMixer with output_dtype=None or the DevicePainter with "
                f"output_dtype=torch.uint8"
            )
        h, w = self.shape
        b = self.boxes
        scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=b.device)
        cxcywh = torch.stack(
            [(b[:, 0] + b[:, 2]) * 0.5, (b[:, 1] + b[:, 3]) * 0.5, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
            dim=1,
        )
        sizes = [tuple(int(v) for v in s) for s in self.sizes.tolist()]
        metas = self.metas or tuple({} for _ in range(self.batch_size))
        ori = tuple(tuple(int(v) for v in m.get("orig_size", s)) for m, s in zip(metas, sizes, strict=True))
        return {
            "img": self.images,
            "cls": self.classes.to(torch.float32).view(-1, 1),
            "bboxes": cxcywh / scale,
            "batch_idx": self.batch_idx.to(torch.float32),
            "weights": self.weights,
            "im_file": tuple(str(m.get("path", "")) for m in metas),
            "ori_shape": ori,
            "resized_shape": tuple(sizes),
            "ratio_pad": tuple(((s[0] / o[0], s[1] / o[1]), (0, 0)) for s, o in zip(sizes, ori, strict=True)),
        }


def _new_images(bsz: int, h: int, w: int) -> torch.Tensor:
    """An uninitialised (bsz, 3, h, w) uint8 CPU tensor; in a DataLoader worker its storage is shared
    memory (as torch's ``default_collate`` makes it), so handing the batch to the main process copies nothing."""
    proto = torch.empty(0, dtype=torch.uint8)
    if torch.utils.data.get_worker_info() is not None:
        storage = proto._typed_storage()._new_shared(bsz * 3 * h * w, device=proto.device)
        return proto.new(storage).resize_(bsz, 3, h, w)
    return torch.empty((bsz, 3, h, w), dtype=torch.uint8)


def _to_planes(image: NDArray[np.uint8], planes: NDArray[np.uint8]) -> None:
    """Copy an (h, w, 3) image into the (3, h, w) view ``planes`` (one de-interleaving pass, OpenCV's split)."""
    if image.flags.c_contiguous:
        out = cv2.split(image, [planes[0], planes[1], planes[2]])
        if all(np.shares_memory(o, planes) for o in out):
            return
    planes[...] = image.transpose(2, 0, 1)  # OpenCV could not write into the view: numpy's strided copy


def collate(samples: Sequence[Sample], fill: int | Sequence[int] = DEFAULT_FILL) -> Batch:
    """Collate Samples into a :class:`Batch` (usable as a DataLoader ``collate_fn``).

    Images are copied into one (B, 3, H, W) uint8 tensor of the largest height
    and width, each top-left, the rest filled with ``fill``. Per-object arrays
    are concatenated once (no loop over objects); ``batch_idx`` is sorted.

    Args:
        samples: B >= 1 Samples (polygons, if any, are not carried).
        fill: the padding colour, an int (grey level) or (r, g, b); 114 by
            default. Recorded as ``Batch.fill``. Use
            ``functools.partial(collate, fill=...)`` as a ``collate_fn``.

    Returns:
        A CPU Batch; tensors do not share memory with the Samples.
    """
    rgb = as_fill(fill)
    samples = list(samples)
    if not samples:
        raise ValueError("samples: cannot collate an empty list")
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            raise ValueError(f"samples[{i}]: expected a Sample, got {type(s).__name__}")
    bsz = len(samples)
    sizes = np.array([s.image.shape[:2] for s in samples], dtype=np.int64).reshape(bsz, 2)
    h, w = (int(v) for v in sizes.max(axis=0))
    tensor = _new_images(bsz, h, w)
    images = tensor.numpy()
    colour = np.array(rgb, np.uint8)[:, None, None]
    for i, s in enumerate(samples):
        _to_planes(s.image, images[i, :, : s.height, : s.width])  # HWC -> CHW
        if s.height < h:  # padding only where the image does not reach
            images[i, :, s.height:, :] = colour
        if s.width < w:
            images[i, :, : s.height, s.width:] = colour
    counts = np.array([s.num_objects for s in samples], dtype=np.int64)
    batch_idx = np.repeat(np.arange(bsz, dtype=np.int64), counts)
    boxes = np.concatenate([s.boxes for s in samples]).astype(np.float32, copy=False).reshape(-1, 4)
    classes = np.concatenate([s.classes for s in samples]).astype(np.int64, copy=False)
    weights = np.concatenate([s.weights for s in samples]).astype(np.float32, copy=False)
    return Batch(
        images=tensor,
        batch_idx=torch.from_numpy(batch_idx),
        classes=torch.from_numpy(np.ascontiguousarray(classes)),
        boxes=torch.from_numpy(np.ascontiguousarray(boxes)),
        weights=torch.from_numpy(np.ascontiguousarray(weights)),
        sizes=torch.from_numpy(sizes),
        metas=tuple(dict(s.meta) for s in samples),
        fill=rgb,
    )
