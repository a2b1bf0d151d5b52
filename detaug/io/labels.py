"""Compact label storage shared by the YOLO and COCO loaders.

Labels are kept *normalised* (x / W, y / H of the original, EXIF-oriented
image) so that they scale to whatever size an image is decoded and resized
to. All objects of all images live in a few flat numpy arrays plus offset
tables (:class:`LabelTable`), not in one Python object per image: forked
DataLoader workers then share these pages instead of copying them as they
touch reference counts.

>>> t = LabelTable.build([
...     ImageLabels(np.array([3]), np.array([[0.1, 0.2, 0.5, 0.6]])),
...     ImageLabels.empty(),
... ])
>>> boxes, classes, polys = t.get(0, width=100, height=50)
>>> boxes.tolist(), classes.tolist(), polys
([[10.0, 10.0, 50.0, 30.0]], [3], None)
>>> t.get(1, 100, 50)[0].shape, t.num_objects
((0, 4), 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from detaug.io.validate import Report

__all__ = ["ImageLabels", "LabelTable", "ScanResult", "rectangle_polygons"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class ImageLabels:
    """The objects of one image, normalised to [0, 1].

    Attributes:
        classes: (n,) int64 class ids 0..nc-1.
        boxes: (n, 4) float64 normalised xyxy.
        polygons: ``None`` (no object has a polygon) or a list of n entries,
            each a (k, 2) float64 normalised polygon (parts separated by a NaN
            row) or ``None`` for an object that only has a box.
    """

    classes: NDArray[np.int64]
    boxes: F64
    polygons: list[F64 | None] | None = None

    @staticmethod
    def empty() -> ImageLabels:
        """A background image."""
        return ImageLabels(np.zeros((0,), np.int64), np.zeros((0, 4), np.float64), None)

    def __len__(self) -> int:
        return int(len(self.classes))


def rectangle_polygons(boxes: F64) -> F64:
    """(n, 4) xyxy -> (n, 4, 2) corner polygons (x1,y1), (x2,y1), (x2,y2), (x1,y2).

    >>> rectangle_polygons(np.array([[0., 1., 2., 3.]]))[0].tolist()
    [[0.0, 1.0], [2.0, 1.0], [2.0, 3.0], [0.0, 3.0]]
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack(
        [b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1
    )


class LabelTable:
    """Normalised labels of M images in flat arrays.

    Attributes:
        obj_offsets: (M+1,) int64; image i owns objects ``obj_offsets[i]:obj_offsets[i+1]``.
        classes: (T,) int64.
        boxes: (T, 4) float64 normalised xyxy.
        point_offsets: (T+1,) int64 or ``None``; object j owns
            ``points[point_offsets[j]:point_offsets[j+1]]``.
        points: (P, 2) float64 normalised polygon vertices (NaN rows separate parts) or ``None``.
    """

    def __init__(self, obj_offsets: NDArray[np.int64], classes: NDArray[np.int64], boxes: F64,
                 point_offsets: NDArray[np.int64] | None, points: F64 | None) -> None:
        self.obj_offsets = obj_offsets
        self.classes = classes
        self.boxes = boxes
        self.point_offsets = point_offsets
        self.points = points

    @property
    def has_polygons(self) -> bool:
        """Whether every object carries a polygon."""
        return self.points is not None

    @property
    def num_objects(self) -> int:
        """T, the number of objects over all images."""
        return int(len(self.classes))

    def __len__(self) -> int:
        return len(self.obj_offsets) - 1

    def count(self, index: int) -> int:
        """Number of objects of image ``index``."""
        return int(self.obj_offsets[index + 1] - self.obj_offsets[index])

    @classmethod
    def build(cls, images: Sequence[ImageLabels], polygons: bool | None = None) -> LabelTable:
        """Pack per-image labels.

        Args:
            images: one :class:`ImageLabels` per image.
            polygons: ``None`` (auto): keep polygons if any object has one, and
                then give every box-only object its 4-corner rectangle, so all
                objects of all images have a polygon; ``True``: always (boxes
                become rectangles); ``False``: drop polygons.
        """
        counts = np.array([len(im) for im in images], dtype=np.int64)
        obj_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if counts.sum():
            classes = np.concatenate([im.classes for im in images]).astype(np.int64)
            boxes = np.concatenate([im.boxes.reshape(-1, 4) for im in images]).astype(np.float64)
        else:
            classes, boxes = np.zeros((0,), np.int64), np.zeros((0, 4), np.float64)
        if polygons is None:
            polygons = any(
                im.polygons is not None and any(p is not None for p in im.polygons) for im in images
            )
        if not polygons:
            return cls(obj_offsets, classes, boxes, None, None)
        rects = rectangle_polygons(boxes)
        parts: list[F64] = []
        j = 0
        for im in images:
            for k in range(len(im)):
                p = None if im.polygons is None else im.polygons[k]
                parts.append(rects[j] if p is None else np.asarray(p, np.float64).reshape(-1, 2))
                j += 1
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        point_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        points = np.concatenate(parts) if parts else np.zeros((0, 2), np.float64)
        return cls(obj_offsets, classes, boxes, point_offsets, points)

    def get(self, index: int, width: float, height: float
            ) -> tuple[NDArray[np.float32], NDArray[np.int64], tuple[NDArray[np.float32], ...] | None]:
        """Objects of image ``index`` in absolute pixels of a (height, width) image.

        Returns:
            boxes (n, 4) float32 xyxy, classes (n,) int64, and polygons (a tuple
            of n (k, 2) float32 arrays) or ``None`` when the table has none.
        """
        a, b = int(self.obj_offsets[index]), int(self.obj_offsets[index + 1])
        scale = np.array([width, height, width, height], np.float64)
        boxes = (self.boxes[a:b] * scale).astype(np.float32)
        classes = self.classes[a:b].copy()
        if self.points is None or self.point_offsets is None:
            return boxes, classes, None
        pa, pb = int(self.point_offsets[a]), int(self.point_offsets[b])
        pts = (self.points[pa:pb] * scale[:2]).astype(np.float32)
        cuts = self.point_offsets[a + 1 : b] - pa
        polys = tuple(np.ascontiguousarray(p) for p in np.split(pts, cuts)) if b > a else ()
        return boxes, classes, polys


@dataclass
class ScanResult:
    """What a loader's scan produced: the usable images and their labels.

    Attributes:
        files: image paths of the M usable images, in dataset order.
        label_files: per image, the label file it came from (YOLO txt, COCO json) or ``None``.
        ids: per image, its id (YOLO: file stem; COCO: the image id).
        sizes: (M, 2) int64 original (h, w) in the EXIF-oriented frame.
        labels: the normalised labels.
        names: class names, index = class id.
        report: the validation report.
        extra: loader-specific information (COCO: ``category_ids``).
    """

    files: list[str]
    label_files: list[str | None]
    ids: list[object]
    sizes: NDArray[np.int64]
    labels: LabelTable
    names: list[str]
    report: Report
    extra: dict[str, object] = field(default_factory=dict)
