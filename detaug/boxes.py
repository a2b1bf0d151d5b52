"""Pure box maths (numpy); polygons are in :mod:`detaug.polygons`.

Internal format everywhere in detaug: **absolute pixel xyxy**, float32,
shape (N, 4), in the frame of the image the boxes belong to. The conversions
to and from YOLO (normalised cxcywh) and COCO (absolute xywh) exist for the
edges of the library (``detaug.io`` and ``Batch.to_yolo``).

No function here writes into its arguments; each returns a new array.
Computations run in float64 and results come back as float32 unless noted.

>>> import numpy as np
>>> b = yolo_to_xyxy(np.array([[0.5, 0.5, 0.5, 0.25]]), width=200, height=100)
>>> b.tolist()
[[50.0, 37.5, 150.0, 62.5]]
>>> xyxy_to_yolo(b, width=200, height=100).tolist()
[[0.5, 0.5, 0.5, 0.25]]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "xyxy_to_cxcywh",
    "cxcywh_to_xyxy",
    "xyxy_to_xywh",
    "xywh_to_xyxy",
    "yolo_to_xyxy",
    "xyxy_to_yolo",
    "coco_to_xyxy",
    "xyxy_to_coco",
    "box_area",
    "box_intersection",
    "box_iou",
    "box_ioa",
    "clip_boxes",
    "clip_boxes_to_rect",
    "box_candidates",
]

F32 = NDArray[np.float32]


def _as4(boxes: ArrayLike) -> NDArray[np.float64]:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        b = b.reshape(-1, 4)
    return b


def xyxy_to_cxcywh(boxes: ArrayLike) -> F32:
    """(N, 4) xyxy -> (N, 4) centre-x, centre-y, width, height (same units).

    >>> xyxy_to_cxcywh([[0, 0, 4, 2]]).tolist()
    [[2.0, 1.0, 4.0, 2.0]]
    """
    b = _as4(boxes)
    out = np.stack(
        [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
        axis=1,
    )
    return out.astype(np.float32)


def cxcywh_to_xyxy(boxes: ArrayLike) -> F32:
    """(N, 4) centre-x, centre-y, width, height -> (N, 4) xyxy (same units).

    >>> cxcywh_to_xyxy([[2, 1, 4, 2]]).tolist()
    [[0.0, 0.0, 4.0, 2.0]]
    """
    b = _as4(boxes)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    out = np.stack([b[:, 0] - half_w, b[:, 1] - half_h, b[:, 0] + half_w, b[:, 1] + half_h], axis=1)
    return out.astype(np.float32)


def xyxy_to_xywh(boxes: ArrayLike) -> F32:
    """(N, 4) xyxy -> (N, 4) top-left x, y, width, height.

    >>> xyxy_to_xywh([[1, 2, 4, 6]]).tolist()
    [[1.0, 2.0, 3.0, 4.0]]
    """
    b = _as4(boxes)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1).astype(np.float32)


def xywh_to_xyxy(boxes: ArrayLike) -> F32:
    """(N, 4) top-left x, y, width, height -> (N, 4) xyxy.

    >>> xywh_to_xyxy([[1, 2, 3, 4]]).tolist()
    [[1.0, 2.0, 4.0, 6.0]]
    """
    b = _as4(boxes)
    return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1).astype(np.float32)


def yolo_to_xyxy(boxes: ArrayLike, width: float, height: float) -> F32:
    """YOLO rows (N, 4) normalised cxcywh in [0, 1] -> absolute pixel xyxy for a W x H image."""
    b = _as4(boxes) * np.array([width, height, width, height], dtype=np.float64)
    return cxcywh_to_xyxy(b)


def xyxy_to_yolo(boxes: ArrayLike, width: float, height: float) -> F32:
    """Absolute pixel xyxy (N, 4) in a W x H image -> YOLO normalised cxcywh."""
    c = xyxy_to_cxcywh(boxes).astype(np.float64)
    return (c / np.array([width, height, width, height], dtype=np.float64)).astype(np.float32)


def coco_to_xyxy(boxes: ArrayLike) -> F32:
    """COCO ``bbox`` rows (N, 4) absolute [x, y, w, h] -> absolute xyxy."""
    return xywh_to_xyxy(boxes)


def xyxy_to_coco(boxes: ArrayLike) -> F32:
    """Absolute xyxy (N, 4) -> COCO ``bbox`` rows [x, y, w, h]."""
    return xyxy_to_xywh(boxes)


def box_area(boxes: ArrayLike) -> F32:
    """(N, 4) xyxy -> (N,) area; boxes with x2 < x1 or y2 < y1 have area 0.

    >>> box_area([[0, 0, 2, 3], [5, 5, 4, 9]]).tolist()
    [6.0, 0.0]
    """
    b = _as4(boxes)
    w = np.clip(b[:, 2] - b[:, 0], 0, None)
    h = np.clip(b[:, 3] - b[:, 1], 0, None)
    return (w * h).astype(np.float32)


def box_intersection(a: ArrayLike, b: ArrayLike) -> F32:
    """Pairwise intersection areas: (N, 4) and (M, 4) xyxy -> (N, M).

    >>> box_intersection([[0, 0, 2, 2]], [[1, 1, 3, 3], [5, 5, 6, 6]]).tolist()
    [[1.0, 0.0]]
    """
    a, b = _as4(a), _as4(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return (wh[..., 0] * wh[..., 1]).astype(np.float32)


def box_iou(a: ArrayLike, b: ArrayLike) -> F32:
    """Pairwise IoU: (N, 4) and (M, 4) xyxy -> (N, M); 0 where the union is empty.

    >>> round(float(box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]])[0, 0]), 4)
    0.3333
    """
    inter = box_intersection(a, b).astype(np.float64)
    union = box_area(a).astype(np.float64)[:, None] + box_area(b).astype(np.float64)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out.astype(np.float32)


def box_ioa(a: ArrayLike, b: ArrayLike) -> F32:
    """Pairwise intersection over the area of ``a``: (N, 4), (M, 4) -> (N, M).

    The fraction of each box of ``a`` that lies inside each box of ``b``;
    0 for a box of zero area.

    >>> box_ioa([[0, 0, 2, 2]], [[1, 0, 3, 2]]).tolist()
    [[0.5]]
    """
    inter = box_intersection(a, b).astype(np.float64)
    area = box_area(a).astype(np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(area > 0, inter / area, 0.0)
    return out.astype(np.float32)


def clip_boxes(boxes: ArrayLike, width: float, height: float) -> F32:
    """Clip (N, 4) xyxy boxes to the image rectangle [0, W] x [0, H].

    >>> clip_boxes([[-5, 2, 12, 20]], width=10, height=8).tolist()
    [[0.0, 2.0, 10.0, 8.0]]
    """
    return clip_boxes_to_rect(boxes, 0.0, 0.0, width, height)


def clip_boxes_to_rect(boxes: ArrayLike, x1: float, y1: float, x2: float, y2: float) -> F32:
    """Clip (N, 4) xyxy boxes to the rectangle [x1, x2] x [y1, y2].

    A box outside the rectangle becomes a zero-area box on its border.

    >>> clip_boxes_to_rect([[0, 0, 10, 10], [20, 20, 30, 30]], 5, 5, 15, 15).tolist()
    [[5.0, 5.0, 10.0, 10.0], [15.0, 15.0, 15.0, 15.0]]
    """
    b = _as4(boxes)
    lo = np.array([x1, y1, x1, y1], dtype=np.float64)
    hi = np.array([x2, y2, x2, y2], dtype=np.float64)
    return np.clip(b, lo, hi).astype(np.float32)


def box_candidates(
    before: ArrayLike,
    after: ArrayLike,
    min_size: float = 2.0,
    min_area_ratio: float = 0.1,
    max_aspect_ratio: float = 100.0,
    eps: float = 1e-9,
) -> NDArray[np.bool_]:
    """Which boxes survive a geometric step.

    Args:
        before: (N, 4) xyxy, each box transformed but *not* clipped.
        after: (N, 4) xyxy, the same boxes after clipping (same frame).
        min_size: minimum width and height of ``after`` in pixels (>=).
        min_area_ratio: minimum ``area(after) / area(before)``.
        max_aspect_ratio: maximum of ``w/h`` and ``h/w`` of ``after``.

    Returns:
        (N,) bool; always False for boxes of zero width or height.

    >>> box_candidates([[0, 0, 10, 10]] * 3,
    ...                [[0, 0, 10, 10], [0, 0, 10, 0.5], [0, 0, 3, 3]]).tolist()
    [True, False, False]
    """
    b1, b2 = _as4(before), _as4(after)
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    positive = (w2 > 0) & (h2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
        ratio = (w2 * h2) / (np.clip(w1, 0, None) * np.clip(h1, 0, None) + eps)
    return positive & (w2 >= min_size) & (h2 >= min_size) & (ratio >= min_area_ratio) & (ar <= max_aspect_ratio)
