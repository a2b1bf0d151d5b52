"""Detection CutMix: paste a rectangle of a partner image into the base image.

The exact semantics (shared with the GPU :class:`detaug.batch_transforms.BatchMixer`):

- ``lam ~ Beta(alpha, alpha)``; the rectangle covers a fraction ``1 - lam`` of
  the image: ``cut = sqrt(1 - lam)``, ``cut_w = W * cut``, ``cut_h = H * cut``,
  centre ``cx ~ U(0, W)``, ``cy ~ U(0, H)`` (drawn in that order after ``lam``),
  ``x1 = clip(round(cx - cut_w / 2), 0, W)``, ``x2 = clip(round(cx + cut_w / 2), 0, W)``
  and the same for y (``round`` is half-to-even, like numpy and torch).
  An empty rectangle means no CutMix.
- pixels: ``out = a; out[y1:y2, x1:x2] = b[y1:y2, x1:x2]``.
- base objects keep what the rectangle leaves visible (see :func:`cut_boxes`),
  partner objects are clipped to the rectangle (see :func:`paste_boxes`).
- an object is kept iff ``visible >= min_visible`` and its new box has
  positive width and height; with ``weight_by_visibility`` its weight is
  multiplied by ``visible``. Kept base objects come first, then kept partner
  objects, each in their original order.

All coordinates are absolute pixels in the base image's continuous frame
(edges at 0 and W); ``rect`` is ``(x1, y1, x2, y2)`` with integer edges.

>>> import numpy as np
>>> from detaug.sample import Labels, Sample
>>> a = Sample.create(np.zeros((10, 10, 3), np.uint8), [[0, 0, 4, 10]], [0])
>>> b = Sample.create(np.full((10, 10, 3), 255, np.uint8), [[2, 2, 8, 8]], [1])
>>> out = CutMix().apply(a, [b], CutMixParams(lam=0.5, rect=(2, 0, 10, 10)))
>>> out.boxes.tolist(), out.classes.tolist(), out.weights.tolist()
([[0.0, 0.0, 2.0, 10.0], [2.0, 2.0, 8.0, 8.0]], [0, 1], [0.5, 1.0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detaug.boxes import box_intersection
from detaug.polygons import clip_polygons, flatten_polygons, polygons_to_boxes, unflatten_polygons
from detaug.sample import Labels, Sample
from detaug.transforms.base import MixTransform
from detaug.transforms.limits import check_beta, check_range
from detaug.transforms.mixup import DEFAULT_FILL

__all__ = [
    "CutMixParams",
    "CutMix",
    "Rect",
    "sample_rect",
    "cut_boxes",
    "paste_boxes",
    "cut_polygons",
    "paste_pixels",
]

#: (x1, y1, x2, y2) integer pixel edges, 0 <= x1 < x2 <= W, 0 <= y1 < y2 <= H.
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class CutMixParams:
    """Parameters of one CutMix.

    Attributes:
        lam: the drawn ``lam`` (the rectangle's intended area fraction is ``1 - lam``).
        rect: the pasted rectangle in the base image, or ``None`` for no CutMix
            (the base sample is returned unchanged).
    """

    lam: float
    rect: Rect | None


def sample_rect(rng: np.random.Generator, h: int, w: int, lam: float) -> Rect | None:
    """Draw the rectangle for ``lam`` in an ``h x w`` image (two draws: cx, then cy).

    Returns ``(x1, y1, x2, y2)`` integer edges clipped to the image, or
    ``None`` when the clipped rectangle is empty.

    >>> sample_rect(np.random.default_rng(0), 100, 200, 0.75)
    (77, 2, 177, 52)
    """
    cut = math.sqrt(max(0.0, 1.0 - float(lam)))
    cut_w, cut_h = w * cut, h * cut
    cx = float(rng.uniform(0.0, w))
    cy = float(rng.uniform(0.0, h))
    x1 = int(np.clip(np.round(cx - cut_w / 2), 0, w))
    x2 = int(np.clip(np.round(cx + cut_w / 2), 0, w))
    y1 = int(np.clip(np.round(cy - cut_h / 2), 0, h))
    y2 = int(np.clip(np.round(cy + cut_h / 2), 0, h))
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def _as_boxes64(boxes: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def cut_boxes(boxes: ArrayLike, rect: Sequence[float]) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """What a pasted rectangle leaves of the base boxes.

    ``visible = 1 - area(box ∩ rect) / area(box)`` (0 for a box of zero area).
    The new box is the tight box of ``box \\ rect``: it shrinks only where the
    rectangle spans the box's whole extent along one axis and covers one end
    along the other (e.g. spans the full height and covers the left end:
    ``x1 = rect.x2``); a box the rectangle covers entirely gets a non-positive
    width and height; otherwise the box is unchanged.

    Args:
        boxes: (N, 4) xyxy, base image frame.
        rect: (x1, y1, x2, y2) in the same frame.

    Returns:
        (new_boxes (N, 4) float32, visible (N,) float64 in [0, 1]).

    >>> b, v = cut_boxes([[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 10]], (6, -1, 12, 11))
    >>> b.tolist(), v.tolist()
    ([[0.0, 0.0, 6.0, 10.0], [0.0, 0.0, 6.0, 10.0], [20.0, 0.0, 30.0, 10.0]], [0.6, 0.6, 1.0])
    """
    b = _as_boxes64(boxes)
    rx1, ry1, rx2, ry2 = (float(v) for v in rect)
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    area = np.clip(bx2 - bx1, 0, None) * np.clip(by2 - by1, 0, None)
    iw = np.clip(np.minimum(bx2, rx2) - np.maximum(bx1, rx1), 0, None)
    ih = np.clip(np.minimum(by2, ry2) - np.maximum(by1, ry1), 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        visible = np.where(area > 0, 1.0 - (iw * ih) / area, 0.0)
    visible = np.clip(visible, 0.0, 1.0)
    span_y = (ry1 <= by1) & (ry2 >= by2)  # rect covers the whole height
    span_x = (rx1 <= bx1) & (rx2 >= bx2)  # rect covers the whole width
    out = b.copy()
    # Left / right end covered (and the whole height spanned).
    left = span_y & (rx1 <= bx1) & (rx2 > bx1)
    right = span_y & (rx2 >= bx2) & (rx1 < bx2)
    out[:, 0] = np.where(left, np.minimum(rx2, bx2), out[:, 0])
    out[:, 2] = np.where(right, np.maximum(rx1, bx1), out[:, 2])
    # Top / bottom end covered (and the whole width spanned).
    top = span_x & (ry1 <= by1) & (ry2 > by1)
    bottom = span_x & (ry2 >= by2) & (ry1 < by2)
    out[:, 1] = np.where(top, np.minimum(ry2, by2), out[:, 1])
    out[:, 3] = np.where(bottom, np.maximum(ry1, by1), out[:, 3])
    return out.astype(np.float32), visible


def paste_boxes(boxes: ArrayLike, rect: Sequence[float]) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Partner boxes seen through the pasted rectangle.

    Args:
        boxes: (N, 4) xyxy in the partner's frame (placed top-left on the base).
        rect: (x1, y1, x2, y2) in the base frame.

    Returns:
        (boxes clipped to ``rect`` (N, 4) float32,
        visible = area(clipped) / area(box) (N,) float64, 0 for a zero-area box).

    >>> b, v = paste_boxes([[0, 0, 4, 4], [10, 10, 12, 12]], (2, 0, 8, 8))
    >>> b.tolist(), v.tolist()
    ([[2.0, 0.0, 4.0, 4.0], [8.0, 8.0, 8.0, 8.0]], [0.5, 0.0])
    """
    b = _as_boxes64(boxes)
    rx1, ry1, rx2, ry2 = (float(v) for v in rect)
    clipped = np.clip(b, [rx1, ry1, rx1, ry1], [rx2, ry2, rx2, ry2])
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    inter = np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(clipped[:, 3] - clipped[:, 1], 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        visible = np.where(area > 0, inter / area, 0.0)
    return clipped.astype(np.float32), np.clip(visible, 0.0, 1.0)


def cut_polygons(
    polygons: Sequence[ArrayLike], rect: Sequence[float], height: int, width: int
) -> tuple[NDArray[np.float32], ...]:
    """What a pasted rectangle leaves of each base polygon, as multi-part polygons.

    The part of the image outside ``rect`` is split into four non-overlapping
    rectangles: the left strip ``[0, x1] x [0, H]``, the right strip
    ``[x2, W] x [0, H]``, and the top and bottom middles ``[x1, x2] x [0, y1]``
    and ``[x1, x2] x [y2, H]``. Each polygon is clipped to each of them
    (:func:`detaug.polygons.clip_polygons`) and the pieces of one object are
    joined, NaN separated, in object order. Objects with nothing left get a
    (0, 2) array.

    >>> sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    >>> [p.shape for p in cut_polygons([sq], (3, 3, 6, 6), 10, 10)]
    [(19, 2)]
    """
    n = len(polygons)
    if n == 0:
        return ()
    x1, y1, x2, y2 = (float(v) for v in rect)
    h, w = float(height), float(width)
    regions = ((0.0, 0.0, x1, h), (x2, 0.0, w, h), (x1, 0.0, x2, y1), (x1, y2, x2, h))
    pts_l, ring_l, obj_l = [], [], []
    ring_offset = 0
    for region in regions:  # four regions, each clipped for all objects at once
        if region[2] <= region[0] or region[3] <= region[1]:
            continue
        pts, ring, obj_of_ring = flatten_polygons(clip_polygons(polygons, *region))
        pts_l.append(pts)
        ring_l.append(ring + ring_offset)
        obj_l.append(obj_of_ring)
        ring_offset += len(obj_of_ring)
    if not pts_l:
        return tuple(np.zeros((0, 2), np.float32) for _ in range(n))
    pts = np.concatenate(pts_l)
    ring = np.concatenate(ring_l)
    obj_of_ring = np.concatenate(obj_l)
    # Regroup the rings by object (stable: region order within an object) and
    # renumber them; then order the points by their new ring (stable).
    order = np.argsort(obj_of_ring, kind="stable")
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    new_ring = new_id[ring]
    porder = np.argsort(new_ring, kind="stable")
    return unflatten_polygons(pts[porder], new_ring[porder], obj_of_ring[order], n)


def paste_pixels(base: NDArray[np.uint8], partner: NDArray[np.uint8], rect: Rect) -> NDArray[np.uint8]:
    """A copy of ``base`` with ``partner[y1:y2, x1:x2]`` pasted at the same place.

    ``partner`` is treated as placed top-left on a canvas of ``base``'s size
    filled with 114 (cropped if larger), without building that canvas.

    >>> out = paste_pixels(np.zeros((2, 3, 3), np.uint8), np.full((1, 2, 3), 9, np.uint8), (1, 0, 3, 2))
    >>> out[:, :, 0].tolist()
    [[0, 9, 114], [0, 114, 114]]
    """
    x1, y1, x2, y2 = rect
    out = base.copy()
    ph, pw = partner.shape[:2]
    if ph >= y2 and pw >= x2:
        out[y1:y2, x1:x2] = partner[y1:y2, x1:x2]
        return out
    out[y1:y2, x1:x2] = DEFAULT_FILL
    cy2, cx2 = min(y2, ph), min(x2, pw)
    if cy2 > y1 and cx2 > x1:
        out[y1:cy2, x1:cx2] = partner[y1:cy2, x1:cx2]
    return out


def _has_points(polygons: Sequence[NDArray[np.float32]]) -> NDArray[np.bool_]:
    return np.array([p.shape[0] > 0 for p in polygons], dtype=bool)


def cutmix_labels(a: Labels | Sample, b: Labels | Sample, rect: Rect, min_visible: float,
                  weight_by_visibility: bool) -> Labels:
    """The objects after pasting ``b``'s ``rect`` into ``a`` (the one CutMix label rule).

    Args:
        a: the base (size (h, w), objects in its frame).
        b: the partner, placed top-left on ``a``'s frame (its objects keep
            their coordinates).
        rect: int (x1, y1, x2, y2) inside ``a``.
        min_visible: objects whose visible fraction (box area) is below this are dropped.
        weight_by_visibility: multiply each kept object's weight by that fraction.

    Returns:
        Labels of ``a``'s size and meta: ``a``'s objects cut to the outside of
        ``rect``, then ``b``'s clipped to it, in that order. Polygons only when
        both have them (an object with a polygon gets the tight box of what is
        left of it).

    >>> lab = lambda box: Labels((10, 10), np.array([box], np.float32), np.zeros(1, np.int64), np.ones(1, np.float32))
    >>> out = cutmix_labels(lab([0, 0, 10, 10]), lab([0, 0, 4, 10]), (0, 0, 5, 10), 0.3, True)
    >>> out.boxes.tolist(), out.weights.tolist()
    ([[5.0, 0.0, 10.0, 10.0], [0.0, 0.0, 4.0, 10.0]], [0.5, 1.0])
    """
    h, w = a.size
    a_boxes, a_vis = cut_boxes(a.boxes, rect)
    b_boxes, b_vis = paste_boxes(b.boxes, rect)
    polygons = None
    if a.polygons is not None and b.polygons is not None:
        a_polys = cut_polygons(a.polygons, rect, h, w)
        b_polys = clip_polygons(b.polygons, *(float(v) for v in rect))
        a_has, b_has = _has_points(a.polygons), _has_points(b.polygons)
        a_boxes = np.where(a_has[:, None], polygons_to_boxes(a_polys), a_boxes).astype(np.float32)
        b_boxes = np.where(b_has[:, None], polygons_to_boxes(b_polys), b_boxes).astype(np.float32)
        polygons = (a_polys, b_polys)
    boxes = np.concatenate([a_boxes, b_boxes]).astype(np.float32)
    visible = np.concatenate([a_vis, b_vis])
    positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    keep = np.flatnonzero((visible >= min_visible) & (visible > 0) & positive)
    weights = np.concatenate([a.weights, b.weights]).astype(np.float32)
    if weight_by_visibility:
        weights = (weights * visible.astype(np.float32)).astype(np.float32)
    classes = np.concatenate([a.classes, b.classes]).astype(np.int64)
    polys_out = None
    if polygons is not None:
        both = polygons[0] + polygons[1]
        polys_out = tuple(both[i] for i in keep.tolist())
    return Labels((h, w), np.ascontiguousarray(boxes[keep]), np.ascontiguousarray(classes[keep]),
                  np.ascontiguousarray(weights[keep]), polys_out, a.meta)


class CutMix(MixTransform[CutMixParams]):
    """Detection CutMix with one partner.

    Args:
        alpha: ``lam ~ Beta(alpha, alpha)`` (> 0); the pasted area is ``1 - lam``.
        min_visible: objects whose visible fraction falls below this are dropped
            (in [0, 1]).
        weight_by_visibility: multiply each object's weight by its visible fraction.
        on_background: only paste where no base box is (up to ``max_tries``
            rectangle draws, each with its own ``lam``; if none fits, no CutMix),
            like Ultralytics' CutMix.
        max_tries: draws for ``on_background`` (>= 1).

    Polygons: partner polygons are clipped to the rectangle, base polygons keep
    their parts outside it (:func:`cut_polygons`); where an object has a
    polygon its new box is the tight box of what is left of it. The visible
    fraction is always the box-area one (as in the batch mixer). The output
    has polygons only when both inputs have them. The base ``meta`` is kept.
    """

    num_partners = 1

    def __init__(
        self,
        alpha: float = 1.0,
        min_visible: float = 0.3,
        weight_by_visibility: bool = True,
        on_background: bool = False,
        max_tries: int = 10,
    ) -> None:
        check_beta("alpha", alpha)
        check_range("min_visible", min_visible)
        if isinstance(max_tries, bool) or not isinstance(max_tries, (int, np.integer)) or max_tries < 1:
            raise ValueError(f"max_tries must be an int >= 1, got {max_tries!r}")
        self.alpha = float(alpha)
        self.min_visible = float(min_visible)
        self.weight_by_visibility = bool(weight_by_visibility)
        self.on_background = bool(on_background)
        self.max_tries = int(max_tries)

    def __repr__(self) -> str:
        return (
            f"CutMix(alpha={self.alpha}, min_visible={self.min_visible}, "
            f"weight_by_visibility={self.weight_by_visibility}, on_background={self.on_background}, "
            f"max_tries={self.max_tries})"
        )

    def sample_params(
        self, rng: np.random.Generator, sample: Sample, partners: Sequence[Sample]
    ) -> CutMixParams:
        """Draw ``lam`` then the rectangle (:func:`sample_rect`) for ``sample``'s size.

        With ``on_background``, repeat (each try draws ``lam``, cx, cy) until a
        non-empty rectangle meets no base box with positive area, at most
        ``max_tries`` times; otherwise ``rect=None``.
        """
        h, w = sample.size
        if not self.on_background:
            lam = float(rng.beta(self.alpha, self.alpha))
            return CutMixParams(lam=lam, rect=sample_rect(rng, h, w, lam))
        first_lam = None
        for _ in range(self.max_tries):  # a handful of tries, not a loop over boxes
            lam = float(rng.beta(self.alpha, self.alpha))
            first_lam = lam if first_lam is None else first_lam
            rect = sample_rect(rng, h, w, lam)
            if rect is None:
                continue
            if not np.any(box_intersection(sample.boxes, np.array([rect], np.float64)) > 0):
                return CutMixParams(lam=lam, rect=rect)
        return CutMixParams(lam=float(first_lam), rect=None)

    def apply(self, sample: Sample, partners: Sequence[Sample], params: CutMixParams) -> Sample:
        """Paste ``partners[0]`` into ``sample`` inside ``params.rect``.

        Returns a Sample of the base's size; see the module docstring for the
        objects that survive and their weights.
        """
        if len(partners) != 1:
            raise ValueError(f"partners: CutMix needs exactly 1 partner, got {len(partners)}")
        a, b = sample, partners[0]
        rect = params.rect
        if rect is None:
            return a
        h, w = a.size
        x1, y1, x2, y2 = (int(v) for v in rect)
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise ValueError(f"params.rect {rect} is not a non-empty rectangle inside the {w}x{h} image")
        rect_i: Rect = (x1, y1, x2, y2)
        labels = cutmix_labels(a, b, rect_i, self.min_visible, self.weight_by_visibility)
        return labels.with_image(paste_pixels(a.image, b.image, rect_i))
