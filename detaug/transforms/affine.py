"""Random affine / perspective warp with Ultralytics' hyperparameters.

:class:`RandomAffine` draws an :class:`AffineParams` and warps a Sample once:
the image with one ``cv2.warpAffine`` (``cv2.warpPerspective`` when the
perspective terms are not zero), the boxes and polygons with
:func:`detaug.geometry.warp_objects`, then drops the objects the
:class:`~detaug.transforms.base.BoxFilter` rejects.

The matrix is composed like Ultralytics' ``RandomPerspective``
(``M = T @ S @ R @ P @ C``, see :func:`detaug.geometry.ultralytics_matrix`),
so ``degrees``, ``translate``, ``scale``, ``shear`` and ``perspective`` mean
the same thing as in an Ultralytics ``hyp.yaml``.

All coordinates are in the continuous pixel frame of :mod:`detaug.geometry`
(image edges at 0 and W).

>>> import numpy as np
>>> s = Sample.create(np.zeros((64, 64, 3), np.uint8), boxes=[[8, 8, 24, 40]], classes=[3])
>>> out = RandomAffine(translate=0.0, scale=0.0, img_size=64).apply(s, AffineParams.identity())
>>> out.boxes.tolist(), out.classes.tolist(), np.array_equal(out.image, s.image)
([[8.0, 8.0, 24.0, 40.0]], [3], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detaug import geometry
from detaug.canvas import DEFAULT_FILL, FillLike, as_fill, filled_image
from detaug.polygons import flatten_polygons
from detaug.sample import Polygons, Sample
from detaug.transforms.base import BoxFilter, Transform
from detaug.transforms.limits import check_range

__all__ = [
    "AffineParams",
    "RandomAffine",
    "WarpedLabels",
    "warp_labels",
    "warp_sample",
    "letterbox_matrix",
    "visible_crop",
    "crop_bounds",
]



# ----------------------------------------------------------------------------- validation helpers


def as_size(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``int`` or ``(h, w)`` -> ``(h, w)`` of positive ints; ValueError naming ``name`` otherwise.

    >>> as_size(32, "out_size"), as_size((20, 30), "out_size")
    ((32, 32), (20, 30))
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        hw: tuple[object, ...] = (value, value)
    elif isinstance(value, Sequence) and len(value) == 2:
        hw = tuple(value)
    else:
        raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in hw):
        raise ValueError(f"{name} must be positive ints, got {value!r}")
    return int(hw[0]), int(hw[1])  # type: ignore[call-overload]


# ----------------------------------------------------------------------------- params


@dataclass(frozen=True)
class AffineParams:
    """One draw of the random affine/perspective warp (Ultralytics meaning).

    Attributes:
        degrees: rotation in degrees, positive = counter-clockwise on screen.
        scale: uniform scale factor (> 0).
        shear_x, shear_y: shear angles in degrees.
        persp_x, persp_y: projective terms (``w = persp_x x + persp_y y + 1``,
            x and y measured from the input's centre).
        translate_x, translate_y: offset of the input's centre from the
            output's centre, as fractions of the output width / height.
    """

    degrees: float = 0.0
    scale: float = 1.0
    shear_x: float = 0.0
    shear_y: float = 0.0
    persp_x: float = 0.0
    persp_y: float = 0.0
    translate_x: float = 0.0
    translate_y: float = 0.0

    def __post_init__(self) -> None:
        for f in ("degrees", "scale", "shear_x", "shear_y", "persp_x", "persp_y", "translate_x", "translate_y"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise ValueError(f"{f} must be a finite number, got {v!r}")
            object.__setattr__(self, f, float(v))
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        if max(abs(self.shear_x), abs(self.shear_y)) >= 90:
            raise ValueError(f"shear_x and shear_y must be in (-90, 90), got {self.shear_x}, {self.shear_y}")

    @classmethod
    def identity(cls) -> AffineParams:
        """No rotation, scale 1, no shear, no perspective, centred.

        With ``in_size == out_size`` its matrix is the identity.
        """
        return cls()

    def matrix(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> geometry.M3:
        """The (3, 3) float64 map from the input frame (h, w) to the output frame (h, w).

        Composed as ``T @ S @ R @ P @ C`` (:func:`detaug.geometry.ultralytics_matrix`):
        the input's centre goes to ``((0.5 + translate_x) * out_w, (0.5 + translate_y) * out_h)``.

        >>> AffineParams(translate_x=0.25).matrix((10, 20), (10, 20))[:2].tolist()
        [[1.0, 0.0, 5.0], [0.0, 1.0, 0.0]]
        """
        return geometry.ultralytics_matrix(
            in_size,
            out_size,
            degrees=self.degrees,
            scale=self.scale,
            shear_x=self.shear_x,
            shear_y=self.shear_y,
            persp_x=self.persp_x,
            persp_y=self.persp_y,
            translate_x=self.translate_x,
            translate_y=self.translate_y,
        )


# ----------------------------------------------------------------------------- the warp of one sample


class WarpedLabels(NamedTuple):
    """Objects that survived one geometric step, in the output frame.

    boxes (M, 4) float32 xyxy; classes (M,) int64; weights (M,) float32;
    polygons None or M (K, 2) float32 arrays (clipped to the output).
    """

    boxes: NDArray[np.float32]
    classes: NDArray[np.int64]
    weights: NDArray[np.float32]
    polygons: Polygons | None


def _in_front(sample: Sample, m: geometry.M3) -> NDArray[np.bool_]:
    """(N,) bool: every point of the object has a positive projective denominator.

    Under a perspective warp, points with ``w <= 0`` lie beyond the horizon and
    their images are meaningless; such objects are dropped.
    """
    n = sample.num_objects
    if geometry.is_affine(m) or n == 0:
        return np.ones(n, dtype=bool)
    if sample.polygons is not None:
        pts, ring, obj_of_ring = flatten_polygons(sample.polygons)
        den = pts @ m[2, :2] + m[2, 2]
        bad = np.bincount(obj_of_ring[ring][~(den > 1e-9)], minlength=n)
        return bad == 0
    b = sample.boxes.astype(np.float64)
    corners = b[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(n, 4, 2)
    den = corners @ m[2, :2] + m[2, 2]
    return np.all(den > 1e-9, axis=1)


def warp_labels(
    sample: Sample,
    matrix: ArrayLike,
    out_size: tuple[int, int],
    box_filter: BoxFilter = BoxFilter(),  # noqa: B008 (frozen, immutable default)
    visible_rect: tuple[float, float, float, float] | None = None,
) -> WarpedLabels:
    """Warp ``sample``'s objects by ``matrix`` into an ``out_size`` (h, w) image and filter them.

    Args:
        sample: the source; its boxes/polygons are in its own frame.
        matrix: (3, 3) map from ``sample``'s frame to the output frame.
        out_size: (h, w) of the output; results are clipped to it.
        box_filter: which objects survive (measured in output pixels).
        visible_rect: optional (x1, y1, x2, y2) in ``sample``'s frame: only that
            part of each object counts as visible (e.g. a Mosaic tile's cell).

    Returns:
        The surviving objects, per-object fields aligned, in the output frame.
        Objects reaching beyond a perspective warp's horizon are dropped.
    """
    m = np.asarray(matrix, dtype=np.float64)
    boxes, polygons, keep = geometry.warp_objects(
        sample.boxes,
        sample.polygons,
        m,
        out_size,
        visible_rect=visible_rect,
        min_size=box_filter.min_size,
        min_area_ratio=box_filter.min_area_ratio,
        max_aspect_ratio=box_filter.max_aspect_ratio,
    )
    keep = keep & _in_front(sample, m)
    idx = np.flatnonzero(keep)
    polys = None if polygons is None else tuple(polygons[i] for i in idx)
    return WarpedLabels(
        np.ascontiguousarray(boxes[idx], dtype=np.float32),
        sample.classes[idx],
        sample.weights[idx],
        polys,
    )


def crop_bounds(size: tuple[int, int], visible_rect: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) pixel bounds of an image of ``size`` (h, w) that ``visible_rect`` touches.

    The continuous rect is rounded outwards to whole pixels and clipped to the
    image; the result may be empty (x1 == x0 or y1 == y0).

    >>> crop_bounds((10, 10), (2.5, 0, 6, 4.2))
    (2, 0, 6, 5)
    """
    h, w = size
    x1, y1, x2, y2 = visible_rect
    c0 = min(max(int(math.floor(x1)), 0), w)
    r0 = min(max(int(math.floor(y1)), 0), h)
    c1 = min(max(int(math.ceil(x2)), c0), w)
    r1 = min(max(int(math.ceil(y2)), r0), h)
    return c0, r0, c1, r1


def visible_crop(
    image: NDArray[np.uint8], visible_rect: tuple[float, float, float, float]
) -> tuple[NDArray[np.uint8], tuple[int, int]]:
    """The pixels of ``image`` that ``visible_rect`` (continuous x1, y1, x2, y2) touches.

    Returns a view of ``image`` (no copy) and the (x, y) pixel offset of its
    top-left corner (see :func:`crop_bounds`); the view may be empty.

    >>> img = np.zeros((10, 10, 3), np.uint8)
    >>> crop, off = visible_crop(img, (2.5, 0, 6, 4.2))
    >>> crop.shape, off
    ((5, 4, 3), (2, 0))
    """
    c0, r0, c1, r1 = crop_bounds(image.shape[:2], visible_rect)
    return image[r0:r1, c0:c1], (c0, r0)


def warp_sample(
    sample: Sample,
    matrix: ArrayLike,
    out_size: tuple[int, int],
    fill: FillLike = DEFAULT_FILL,
    box_filter: BoxFilter = BoxFilter(),  # noqa: B008 (frozen, immutable default)
    visible_rect: tuple[float, float, float, float] | None = None,
) -> Sample:
    """Warp a whole Sample by ``matrix`` into an ``out_size`` (h, w) image, once.

    Args:
        sample: the source Sample (not modified).
        matrix: (3, 3) map from ``sample``'s continuous frame to the output's.
        out_size: (h, w) of the output image.
        fill: colour of output pixels no source pixel reaches.
        box_filter: which objects survive.
        visible_rect: optional (x1, y1, x2, y2) in ``sample``'s frame; only this
            part of the image is drawn and only this part of each object counts.

    Returns:
        A new Sample: (out_h, out_w, 3) uint8 image, the surviving objects
        (classes, weights and polygons aligned) and ``sample.meta``.
    """
    out_h, out_w = as_size(tuple(out_size), "out_size")
    bv = as_fill(fill)
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"matrix must be a finite (3, 3) array, got shape {m.shape}")
    if visible_rect is None:
        image = geometry.warp_image(sample.image, m, (out_h, out_w), fill=bv)
    else:
        image = filled_image(out_h, out_w, bv)
        crop, (cx, cy) = visible_crop(sample.image, visible_rect)
        if crop.size:
            geometry.warp_into(image, crop, m @ geometry.translation(cx, cy))
    lab = warp_labels(sample, m, (out_h, out_w), box_filter, visible_rect)
    return sample.replace(
        image=image, boxes=lab.boxes, classes=lab.classes, weights=lab.weights, polygons=lab.polygons
    )


def letterbox_matrix(size: tuple[int, int], params: AffineParams, img_size: int) -> geometry.M3:
    """The (3, 3) map of the affine alone: an image of ``size`` (h, w) scaled so that its long side is
    ``img_size``, then warped by ``params`` into the ``img_size x img_size`` output.

    Snapped (:func:`detaug.geometry.snap_translation` at the image's corner,
    moved by at most half a pixel) when axis-aligned, so that the painters
    resize the image onto whole pixels; compute the labels with it.

    >>> letterbox_matrix((50, 100), AffineParams(translate_x=0.013), 64)[:2].tolist()
    [[0.64, 0.0, 1.0], [0.0, 0.64, 16.0]]
    """
    h, w = size
    ratio = img_size / max(h, w)
    m = params.matrix((h * ratio, w * ratio), (img_size, img_size)) @ geometry.scaling(ratio)
    return geometry.snap_translation(m)


# ----------------------------------------------------------------------------- the transform


class RandomAffine(Transform[AffineParams]):
    """Random rotation, scale, shear, perspective and translation (Ultralytics RandomPerspective).

    Args:
        degrees: rotation drawn uniformly in (-degrees, degrees), in [0, 180].
        translate: the input's centre lands at uniform(0.5 - t, 0.5 + t) of the
            output width and height (t in [0, 1]).
        scale: a float ``s`` in [0, 1) means uniform(1 - s, 1 + s); or a
            ``(min, max)`` pair with 0 < min <= max.
        shear: shear angles drawn in (-shear, shear) degrees per axis, in [0, 89].
        perspective: projective terms drawn in (-perspective, perspective) per
            axis, in [0, 0.1] (Ultralytics uses 0 to 0.001).
        img_size: output side (int) or (h, w).
        fill: grey level or (r, g, b) of pixels no source reaches.
        box_filter: which objects survive the warp.

    >>> aff = RandomAffine(degrees=10, img_size=(48, 64))
    >>> s = Sample.create(np.full((30, 40, 3), 7, np.uint8), boxes=[[5, 5, 25, 20]])
    >>> out = aff(s, np.random.default_rng(0))
    >>> out.image.shape
    (48, 64, 3)
    """

    def __init__(
        self,
        degrees: float = 0.0,
        translate: float = 0.1,
        scale: float | tuple[float, float] = 0.5,
        shear: float = 0.0,
        perspective: float = 0.0,
        img_size: int | tuple[int, int] = 640,
        fill: FillLike = DEFAULT_FILL,
        box_filter: BoxFilter = BoxFilter(),  # noqa: B008 (frozen, immutable default)
    ) -> None:
        self.degrees = check_range("degrees", degrees)
        self.translate = check_range("translate", translate)
        if isinstance(scale, Sequence) and not isinstance(scale, str):
            if len(scale) != 2:
                raise ValueError(f"scale must be a float or a (min, max) pair, got {scale!r}")
            lo, hi = (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
                      for v in scale)
            if not (0 < lo <= hi < math.inf):
                raise ValueError(f"scale (min, max) must satisfy 0 < min <= max, got {scale!r}")
        else:
            s = check_range("scale", scale)
            lo, hi = 1.0 - s, 1.0 + s
        self.scale_range: tuple[float, float] = (lo, hi)
        self.shear = check_range("shear", shear)
        self.perspective = check_range("perspective", perspective)
        self.img_size = as_size(img_size, "img_size")
        self.fill = as_fill(fill)
        if not isinstance(box_filter, BoxFilter):
            raise ValueError(f"box_filter must be a BoxFilter, got {box_filter!r}")
        self.box_filter = box_filter

    def __repr__(self) -> str:
        return (
            f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale_range}, "
            f"shear={self.shear}, perspective={self.perspective}, img_size={self.img_size})"
        )

    def draw(self, rng: np.random.Generator) -> AffineParams:
        """Draw parameters; they do not depend on any image (Mosaic reuses this)."""
        p, d, sh, t = self.perspective, self.degrees, self.shear, self.translate
        persp_x, persp_y = rng.uniform(-p, p), rng.uniform(-p, p)
        degrees = rng.uniform(-d, d)
        scale = rng.uniform(*self.scale_range)
        shear_x, shear_y = rng.uniform(-sh, sh), rng.uniform(-sh, sh)
        translate_x, translate_y = rng.uniform(-t, t), rng.uniform(-t, t)
        return AffineParams(
            degrees=float(degrees),
            scale=float(scale),
            shear_x=float(shear_x),
            shear_y=float(shear_y),
            persp_x=float(persp_x),
            persp_y=float(persp_y),
            translate_x=float(translate_x),
            translate_y=float(translate_y),
        )

    def sample_params(self, rng: np.random.Generator, sample: Sample) -> AffineParams:
        """Draw an :class:`AffineParams` from ``rng`` (``sample`` is not needed)."""
        return self.draw(rng)

    def matrix(self, sample: Sample, params: AffineParams) -> geometry.M3:
        """The (3, 3) map from ``sample``'s frame to the output frame.

        Snapped (:func:`detaug.geometry.snap_translation`, by at most half a
        pixel) when axis-aligned, so that the image is one ``cv2.resize`` pasted
        at whole pixels; labels and pixels both follow this map.
        """
        return geometry.snap_translation(params.matrix(sample.size, self.img_size))

    def apply(self, sample: Sample, params: AffineParams) -> Sample:
        """Warp ``sample`` into an ``img_size`` image with ``params``; never modifies ``sample``."""
        return warp_sample(
            sample, self.matrix(sample, params), self.img_size, self.fill, self.box_filter
        )
