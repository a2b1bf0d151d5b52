"""The data model: one image and its objects.

A :class:`Sample` is immutable. Every op in detaug takes Samples and returns
new ones; per-object fields (``boxes``, ``classes``, ``weights`` and the
optional ``polygons``) always have the same length N and travel together
through :meth:`Sample.select`.

Coordinate frame: ``boxes`` and ``polygons`` are absolute pixel coordinates in
*this* image, x to the right, y down, with the pixel grid's outer edges at
0 and W (resp. 0 and H). A box covering the whole image is ``[0, 0, W, H]``.

>>> import numpy as np
>>> s = Sample.create(np.zeros((4, 6, 3), np.uint8),
...                   boxes=[[0, 0, 2, 2], [1, 1, 5, 3]], classes=[0, 2])
>>> s.num_objects, s.weights.tolist()
(2, [1.0, 1.0])
>>> s.select(np.array([False, True])).boxes.tolist()
[[1.0, 1.0, 5.0, 3.0]]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Sample", "Labels", "Polygons"]

#: Per-object polygons: one (K_i, 2) float32 array per object. An object made
#: of several parts stores them in one array, the parts separated by a row of
#: NaN (see :func:`detaug.polygons.split_rings`).
Polygons = tuple[NDArray[np.float32], ...]


def _as_polygons(polygons: Sequence[ArrayLike] | None, n: int) -> Polygons | None:
    if polygons is None:
        return None
    out = tuple(np.ascontiguousarray(np.asarray(p, dtype=np.float32).reshape(-1, 2)) for p in polygons)
    if len(out) != n:
        raise ValueError(f"polygons: expected {n} polygons (one per box), got {len(out)}")
    return out


def _check_objects(boxes: NDArray[np.float32], weights: NDArray[np.float32]) -> None:
    """Reject boxes that are not finite or inverted, and weights outside (0, 1], naming the field and row."""
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"boxes: row {i} is not finite: {boxes[i].tolist()}")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        i = int(np.flatnonzero(inverted)[0])
        raise ValueError(f"boxes: row {i} is inverted (x2 < x1 or y2 < y1), expected xyxy: {boxes[i].tolist()}")
    wbad = ~(np.isfinite(weights) & (weights > 0) & (weights <= 1))
    if wbad.any():
        i = int(np.flatnonzero(wbad)[0])
        raise ValueError(f"weights: row {i} is {float(weights[i])!r}, expected a weight in (0, 1]")


def _check_fields(obj: Any) -> None:
    """Shapes and dtypes of the per-object fields of a Sample or Labels; freezes ``meta`` (in place, at init)."""
    b = obj.boxes
    if b.dtype != np.float32 or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes: expected (N, 4) float32, got {b.shape} {b.dtype}")
    n = b.shape[0]
    if obj.classes.dtype != np.int64 or obj.classes.shape != (n,):
        raise ValueError(f"classes: expected ({n},) int64, got {obj.classes.shape} {obj.classes.dtype}")
    if obj.weights.dtype != np.float32 or obj.weights.shape != (n,):
        raise ValueError(f"weights: expected ({n},) float32, got {obj.weights.shape} {obj.weights.dtype}")
    if obj.polygons is not None and len(obj.polygons) != n:
        raise ValueError(f"polygons: expected {n} polygons, got {len(obj.polygons)}")
    if not isinstance(obj.meta, MappingProxyType):
        object.__setattr__(obj, "meta", MappingProxyType(dict(obj.meta)))


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its objects.

    Attributes:
        image: (H, W, 3) uint8, RGB, C-contiguous.
        boxes: (N, 4) float32, absolute pixel xyxy in this image's frame.
        classes: (N,) int64, contiguous class ids 0..nc-1.
        weights: (N,) float32 in (0, 1], the per-object loss weight.
        polygons: ``None`` or a tuple of N (K_i, 2) float32 arrays, absolute
            pixel xy in this image's frame, aligned with ``boxes``.
        meta: read-only mapping: ``path`` (source file), ``orig_size``
            ((h, w) before resizing), ``id`` and whatever a loader adds.

    Construct with :meth:`create`, which converts dtypes; the plain
    constructor checks shapes and dtypes and converts nothing.
    """

    image: NDArray[np.uint8]
    boxes: NDArray[np.float32]
    classes: NDArray[np.int64]
    weights: NDArray[np.float32]
    polygons: Polygons | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image: expected (H, W, 3) array, got shape {getattr(img, 'shape', None)}")
        if img.dtype != np.uint8:
            raise ValueError(f"image: expected uint8, got {img.dtype}")
        if not img.flags.c_contiguous:
            raise ValueError("image: must be C-contiguous")
        _check_fields(self)

    @classmethod
    def create(
        cls,
        image: ArrayLike,
        boxes: ArrayLike | None = None,
        classes: ArrayLike | None = None,
        weights: ArrayLike | None = None,
        polygons: Sequence[ArrayLike] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Sample:
        """Build a Sample, converting every field to its canonical dtype.

        Missing ``boxes``/``classes`` mean no objects; missing ``weights`` mean 1.
        Raises ValueError naming the field and row for a box that is not
        finite or is inverted (x2 < x1 or y2 < y1), or a weight outside (0, 1].
        """
        image = np.ascontiguousarray(image)
        b = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
        n = b.shape[0]
        c = np.zeros((n,), np.int64) if classes is None else np.asarray(classes, np.int64).reshape(-1)
        w = np.ones((n,), np.float32) if weights is None else np.asarray(weights, np.float32).reshape(-1)
        _check_objects(b, w)
        return cls(
            image=image,
            boxes=np.ascontiguousarray(b),
            classes=np.ascontiguousarray(c),
            weights=np.ascontiguousarray(w),
            polygons=_as_polygons(polygons, n),
            meta=dict(meta or {}),
        )

    @property
    def num_objects(self) -> int:
        """N, the number of objects."""
        return int(self.boxes.shape[0])

    @property
    def height(self) -> int:
        """H, image height in pixels."""
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        """W, image width in pixels."""
        return int(self.image.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return self.height, self.width

    def select(self, keep: ArrayLike) -> Sample:
        """Index every per-object field together.

        Args:
            keep: (N,) bool mask or an int index array (order is kept, repeats allowed).

        Returns:
            A new Sample sharing ``image`` and ``meta``.
        """
        k = np.asarray(keep)
        if k.dtype == bool:
            if k.shape != (self.num_objects,):
                raise ValueError(f"keep: bool mask must have shape ({self.num_objects},), got {k.shape}")
            idx = np.flatnonzero(k)
        else:
            idx = k.astype(np.int64).reshape(-1)
        polys = None if self.polygons is None else tuple(self.polygons[i] for i in idx)
        return dataclasses.replace(
            self,
            boxes=self.boxes[idx],
            classes=self.classes[idx],
            weights=self.weights[idx],
            polygons=polys,
        )

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields replaced (fields are checked again)."""
        return dataclasses.replace(self, **changes)

    def with_meta(self, **items: Any) -> Sample:
        """A copy whose meta has ``items`` added."""
        return dataclasses.replace(self, meta={**self.meta, **items})

    @property
    def labels(self) -> Labels:
        """This sample without its pixels: its size, objects and meta (no copy)."""
        return Labels(self.size, self.boxes, self.classes, self.weights, self.polygons, self.meta)

    def __reduce__(self) -> tuple[Any, ...]:
        # meta is a read-only mappingproxy, which pickle cannot take: send a dict
        # (DataLoader workers pickle every Sample they return).
        return (
            type(self),
            (self.image, self.boxes, self.classes, self.weights, self.polygons, dict(self.meta)),
        )

    def __repr__(self) -> str:
        poly = "" if self.polygons is None else ", polygons"
        return (
            f"Sample(image={self.height}x{self.width}, objects={self.num_objects}{poly}, "
            f"path={self.meta.get('path')!r})"
        )


@dataclass(frozen=True, eq=False)
class Labels:
    """A Sample without pixels: the image size, the objects and meta.

    What a plan computes before any pixel exists (see :mod:`detaug.plan`).
    The per-object fields are those of :class:`Sample`, with the same dtypes,
    shapes and frame (absolute pixel xyxy in an image of ``size``), so every
    label rule takes a Labels or a Sample alike.

    >>> lab = Labels((4, 6), np.zeros((1, 4), np.float32), np.zeros(1, np.int64), np.ones(1, np.float32))
    >>> lab.width, lab.num_objects, lab.with_image(np.zeros((4, 6, 3), np.uint8)).size
    (6, 1, (4, 6))
    """

    size: tuple[int, int]
    boxes: NDArray[np.float32]
    classes: NDArray[np.int64]
    weights: NDArray[np.float32]
    polygons: Polygons | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.size)
        object.__setattr__(self, "size", (h, w))
        _check_fields(self)

    num_objects = Sample.num_objects
    select = Sample.select
    replace = Sample.replace
    with_meta = Sample.with_meta

    @property
    def height(self) -> int:
        """H of the image these labels belong to."""
        return self.size[0]

    @property
    def width(self) -> int:
        """W of the image these labels belong to."""
        return self.size[1]

    def with_image(self, image: NDArray[np.uint8]) -> Sample:
        """The Sample of these labels and ``image``, which must have ``size``."""
        if tuple(image.shape[:2]) != self.size:
            raise ValueError(f"image: expected size {self.size}, got {tuple(image.shape[:2])}")
        return Sample(np.ascontiguousarray(image), self.boxes, self.classes, self.weights, self.polygons,
                      dict(self.meta))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.size, self.boxes, self.classes, self.weights, self.polygons, dict(self.meta)))

    def __repr__(self) -> str:
        poly = "" if self.polygons is None else ", polygons"
        return f"Labels(size={self.height}x{self.width}, objects={self.num_objects}{poly})"
