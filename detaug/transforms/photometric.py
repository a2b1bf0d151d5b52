"""Colour and flip transforms: :class:`RandomHSV` and :class:`RandomFlip`.

Both are pure: they return new Samples with C-contiguous images and never
write into their inputs.

>>> import numpy as np
>>> from detaug.sample import Labels, Sample
>>> s = Sample.create(np.zeros((4, 10, 3), np.uint8), [[1, 0, 3, 2]], [0])
>>> RandomFlip().apply(s, FlipParams(flip=True)).boxes.tolist()
[[7.0, 0.0, 9.0, 2.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from detaug.sample import Labels, Sample
from detaug.transforms.base import Transform

__all__ = [
    "HSVParams",
    "RandomHSV",
    "hsv_luts",
    "apply_hsv",
    "FlipParams",
    "RandomFlip",
    "flip_image",
    "flip_boxes",
    "flip_polygons",
]


# ----------------------------------------------------------------------------- HSV


@dataclass(frozen=True)
class HSVParams:
    """Gains of one HSV jitter.

    Attributes:
        gains: (hue, saturation, value) gains, each ``1 + U(-1, 1) * range``.
            Saturation and value multiply; the hue gain ``g`` shifts the hue by
            ``(g - 1) * 180`` OpenCV units (half a turn per unit of gain), as
            Ultralytics >= 8.3.79 does. ``(1.0, 1.0, 1.0)`` is the identity.
    """

    gains: tuple[float, float, float]


def hsv_luts(gains: ArrayLike) -> NDArray[np.uint8]:
    """The three 256-entry lookup tables of an HSV jitter, as Ultralytics builds them.

    With ``x = 0..255`` (float64) and ``gains = (r0, r1, r2)``:
    hue ``(x + (r0 - 1) * 180) % 180`` (an additive shift, which also moves
    reds, unlike the old multiplicative ``x * r0``), saturation
    ``clip(x * r1, 0, 255)``, value ``clip(x * r2, 0, 255)``, each truncated
    to uint8. OpenCV's 8-bit hue is in 0..179, so only the first 180 hue
    entries are ever used.

    Returns:
        (3, 256) uint8: rows hue, saturation, value.

    >>> hsv_luts((1.0, 2.0, 0.5))[:, 100].tolist()
    [100, 200, 50]
    >>> hsv_luts((1.5, 1.0, 1.0))[0, [0, 100]].tolist()
    [90, 10]
    """
    r = np.asarray(gains, dtype=np.float64).reshape(3)
    x = np.arange(256, dtype=np.float64)
    hue = np.mod(x + (r[0] - 1.0) * 180.0, 180.0)
    sat = np.clip(x * r[1], 0, 255)
    val = np.clip(x * r[2], 0, 255)
    return np.stack([hue, sat, val]).astype(np.uint8)


def apply_hsv(image: NDArray[np.uint8], gains: ArrayLike, inplace: bool = False) -> NDArray[np.uint8]:
    """Jitter an (H, W, 3) uint8 **RGB** image in HSV space by ``gains``.

    RGB -> HSV (OpenCV 8-bit: H in 0..179), the tables of :func:`hsv_luts`,
    HSV -> RGB. Gains of exactly ``(1, 1, 1)`` return a copy of ``image``
    (the colour round trip is skipped, so the identity is exact).

    Args:
        image: (H, W, 3) uint8 RGB.
        gains: (3,) hue, saturation, value gains.
        inplace: write the result into ``image`` (which must then be a
            C-contiguous array) and return it: no new array is allocated.

    Returns:
        (H, W, 3) uint8, C-contiguous: a new array, or ``image`` with ``inplace``.

    >>> img = np.full((2, 2, 3), 100, np.uint8)
    >>> out = apply_hsv(img, (1.0, 1.0, 0.5), inplace=True)
    >>> out is img, img[0, 0].tolist()
    (True, [50, 50, 50])
    """
    r = np.asarray(gains, dtype=np.float64).reshape(3)
    if inplace and not (isinstance(image, np.ndarray) and image.flags.c_contiguous and image.flags.writeable):
        raise ValueError("image: inplace needs a writeable C-contiguous array")
    if np.all(r == 1.0):
        return image if inplace else np.ascontiguousarray(image).copy()
    luts = hsv_luts(r)
    # every step is per pixel, so OpenCV may write over its input (a copy is made by the first step otherwise)
    if inplace:
        out = image
        cv2.cvtColor(out, cv2.COLOR_RGB2HSV, dst=out)
    else:
        out = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
    # channel c through luts[c]: three planes through one-channel tables (OpenCV's
    # vectorised path) and back, rather than one pass with a 3-channel table
    planes = cv2.split(out)
    for plane, lut in zip(planes, luts, strict=True):
        cv2.LUT(plane, lut, dst=plane)
    cv2.merge(planes, dst=out)
    cv2.cvtColor(out, cv2.COLOR_HSV2RGB, dst=out)
    return out


class RandomHSV(Transform[HSVParams]):
    """Random hue, saturation and value gains, like Ultralytics' ``RandomHSV``.

    Args:
        hsv_h, hsv_s, hsv_v: gain ranges (>= 0): each gain is
            ``1 + U(-1, 1) * range``. All zero is the identity.

    The hue gain is an additive shift as in current Ultralytics (8.3.79 and
    later, including 8.4): ``hsv_h=0.015`` moves the hue by up to 2.7 OpenCV
    units (5.4 degrees) either way.
    """

    def __init__(self, hsv_h: float = 0.015, hsv_s: float = 0.7, hsv_v: float = 0.4) -> None:
        for name, value in (("hsv_h", hsv_h), ("hsv_s", hsv_s), ("hsv_v", hsv_v)):
            if not (value >= 0):
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.hsv_h, self.hsv_s, self.hsv_v = float(hsv_h), float(hsv_s), float(hsv_v)

    def __repr__(self) -> str:
        return f"RandomHSV(hsv_h={self.hsv_h}, hsv_s={self.hsv_s}, hsv_v={self.hsv_v})"

    def sample_params(self, rng: np.random.Generator, sample: Sample) -> HSVParams:
        """``gains = U(-1, 1, 3) * (hsv_h, hsv_s, hsv_v) + 1`` (one draw of 3 values)."""
        r = rng.uniform(-1.0, 1.0, 3) * np.array([self.hsv_h, self.hsv_s, self.hsv_v]) + 1.0
        return HSVParams(gains=(float(r[0]), float(r[1]), float(r[2])))

    def apply(self, sample: Sample, params: HSVParams) -> Sample:
        """The sample with its image jittered (:func:`apply_hsv`); objects unchanged."""
        return sample.replace(image=apply_hsv(sample.image, params.gains))


# ----------------------------------------------------------------------------- flips

Direction = Literal["horizontal", "vertical"]
_AXIS = {"horizontal": 0, "vertical": 1}


@dataclass(frozen=True)
class FlipParams:
    """Whether this flip happens.

    Attributes:
        flip: True to flip.
    """

    flip: bool


def flip_image(image: NDArray[np.uint8], direction: Direction, inplace: bool = False) -> NDArray[np.uint8]:
    """Mirror an (H, W, C) image left-right ("horizontal") or top-bottom ("vertical").

    Returns a new C-contiguous array, or with ``inplace`` (``image`` must then
    be a writeable C-contiguous (H, W, 3) array) ``image`` itself, mirrored.

    >>> flip_image(np.arange(3, dtype=np.uint8).reshape(1, 3, 1), "horizontal")[0, :, 0].tolist()
    [2, 1, 0]
    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 1, 3)
    >>> flip_image(a, "vertical", inplace=True) is a, a[0, 0].tolist()
    (True, [3, 4, 5])
    """
    code = 1 if _AXIS[direction] == 0 else 0  # OpenCV: 1 mirrors columns, 0 rows
    if inplace:
        if not (isinstance(image, np.ndarray) and image.flags.c_contiguous and image.flags.writeable
                and image.ndim == 3 and image.shape[2] == 3):
            raise ValueError("image: inplace needs a writeable C-contiguous (H, W, 3) array")
        out = cv2.flip(image, code, dst=image)  # OpenCV swaps mirrored pairs, so src == dst is safe
        if out is not image and not np.shares_memory(out, image):
            image[...] = out
        return image
    return np.ascontiguousarray(cv2.flip(np.ascontiguousarray(image), code)).reshape(image.shape)


def flip_boxes(boxes: ArrayLike, size: float, direction: Direction) -> NDArray[np.float32]:
    """Mirror (N, 4) xyxy boxes in an image ``size`` wide (horizontal) or high (vertical).

    Continuous frame, exact: ``x1' = W - x2``, ``x2' = W - x1`` (resp. y with H).

    >>> flip_boxes([[1, 2, 3, 4]], 10, "vertical").tolist()
    [[1.0, 6.0, 3.0, 8.0]]
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = b.copy()
    if _AXIS[direction] == 0:
        out[:, 0], out[:, 2] = size - b[:, 2], size - b[:, 0]
    else:
        out[:, 1], out[:, 3] = size - b[:, 3], size - b[:, 1]
    return out.astype(np.float32)


def flip_polygons(
    polygons: tuple[NDArray[np.float32], ...], size: float, direction: Direction
) -> tuple[NDArray[np.float32], ...]:
    """Mirror every polygon: ``x' = W - x`` (or ``y' = H - y``); NaN separators stay NaN.

    Vertex order is kept (the winding flips, which nothing in detaug relies on).
    """
    axis = _AXIS[direction]
    lengths = [len(p) for p in polygons]
    if not lengths:
        return ()
    pts = np.concatenate([np.asarray(p, np.float32).reshape(-1, 2) for p in polygons]).astype(np.float64)
    pts[:, axis] = size - pts[:, axis]
    parts = np.split(pts.astype(np.float32), np.cumsum(lengths)[:-1])
    return tuple(np.ascontiguousarray(p) for p in parts)


def flip_labels(labels: Labels, direction: Direction) -> Labels:
    """The objects of ``labels`` mirrored in their image (boxes and polygons; size and meta kept).

    >>> lab = Labels((4, 10), np.array([[1, 0, 3, 2]], np.float32), np.zeros(1, np.int64), np.ones(1, np.float32))
    >>> flip_labels(lab, "horizontal").boxes.tolist()
    [[7.0, 0.0, 9.0, 2.0]]
    """
    size = labels.width if direction == "horizontal" else labels.height
    polys = None
    if labels.polygons is not None:
        polys = flip_polygons(labels.polygons, float(size), direction)
    return labels.replace(boxes=np.ascontiguousarray(flip_boxes(labels.boxes, float(size), direction)),
                          polygons=polys)


class RandomFlip(Transform[FlipParams]):
    """Flip the image and its objects with probability ``p``.

    Args:
        direction: "horizontal" (left-right) or "vertical" (top-bottom).
        p: probability of flipping, in [0, 1].
    """

    def __init__(self, direction: Direction = "horizontal", p: float = 0.5) -> None:
        if direction not in _AXIS:
            raise ValueError(f"direction must be 'horizontal' or 'vertical', got {direction!r}")
        if not (0.0 <= p <= 1.0):
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.direction: Direction = direction
        self.p = float(p)

    def __repr__(self) -> str:
        return f"RandomFlip(direction={self.direction!r}, p={self.p})"

    def sample_params(self, rng: np.random.Generator, sample: Sample) -> FlipParams:
        """One uniform draw: flip iff it is below ``p``."""
        return FlipParams(flip=bool(rng.random() < self.p))

    def apply(self, sample: Sample, params: FlipParams) -> Sample:
        """The flipped sample (or ``sample`` itself when ``params.flip`` is False)."""
        if not params.flip:
            return sample
        return flip_labels(sample.labels, self.direction).with_image(flip_image(sample.image, self.direction))
