"""Detection MixUp: blend two images, keep the union of their objects.

Following Zhang et al. 2019 ("Bag of Freebies for Training Object Detection
Neural Networks"): ``lam ~ Beta(alpha, beta)``, pixels ``lam * a + (1 - lam) * b``,
the objects of both images are kept and each object's loss weight is scaled by
the share of its image in the blend (``lam * w_a`` and ``(1 - lam) * w_b``).

The exact arithmetic (shared with the GPU :class:`detaug.batch_transforms.BatchMixer`):

- ``lam`` is clipped to ``[1e-3, 1 - 1e-3]`` so every weight stays in (0, 1];
- pixels: ``floor(lam * a + (1 - lam) * b + 0.5)`` in float32, with ``lam``
  and ``1 - lam`` both float32 (``1 - lam`` computed in float32);
- objects: base objects first, then partner objects, each in their order.

Ultralytics' MixUp is ``MixUp(alpha=32.0, beta=32.0)`` (``lam`` near 0.5).

>>> import numpy as np
>>> from detaug.sample import Labels, Sample
>>> a = Sample.create(np.full((4, 4, 3), 200, np.uint8), [[0, 0, 2, 2]], [1])
>>> b = Sample.create(np.full((4, 4, 3), 100, np.uint8), [[1, 1, 4, 4]], [2])
>>> out = MixUp().apply(a, [b], MixUpParams(lam=0.75))
>>> int(out.image[0, 0, 0]), out.classes.tolist(), out.weights.tolist()
(175, [1, 2], [0.75, 0.25])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from detaug.sample import Labels, Sample
from detaug.transforms.base import MixTransform
from detaug.transforms.limits import check_beta

__all__ = [
    "MixUpParams",
    "MixUp",
    "LAM_EPS",
    "DEFAULT_FILL",
    "clip_lam",
    "mixup_pixels",
    "pad_to_canvas",
    "mixup_weights",
]

#: ``lam`` is clipped to ``[LAM_EPS, 1 - LAM_EPS]``.
LAM_EPS = 1e-3
#: Grey used for canvas padding (Ultralytics' letterbox colour).
DEFAULT_FILL = 114


@dataclass(frozen=True)
class MixUpParams:
    """Parameters of one MixUp.

    Attributes:
        lam: share of the base image, in ``[1e-3, 1 - 1e-3]``.
    """

    lam: float


def clip_lam(lam: float) -> float:
    """Clip a drawn ``lam`` to ``[LAM_EPS, 1 - LAM_EPS]``.

    >>> clip_lam(0.0), clip_lam(0.5), clip_lam(1.0)
    (0.001, 0.5, 0.999)
    """
    return float(min(max(float(lam), LAM_EPS), 1.0 - LAM_EPS))


#: float32 elements per block of rows blended at once (two such temporaries).
_BLEND_BLOCK = 1 << 16


def _lam_pair(lam: float) -> tuple[np.float32, np.float32]:
    lam32 = np.float32(lam)
    return lam32, np.float32(1.0) - lam32


def mixup_pixels(a: NDArray[np.uint8], b: NDArray[np.uint8], lam: float) -> NDArray[np.uint8]:
    """Blend two same-shape uint8 images: ``floor(lam * a + (1 - lam) * b + 0.5)``.

    Computed in float32 (``lam`` cast to float32 first and ``1 - lam`` taken
    in float32). The result is always in 0..255.

    Args:
        a, b: (H, W, C) uint8, same shape.
        lam: share of ``a``.

    Returns:
        (H, W, C) uint8, C-contiguous, a new array.

    >>> a = np.array([[[255, 0, 3]]], np.uint8); b = np.array([[[0, 255, 4]]], np.uint8)
    >>> mixup_pixels(a, b, 0.5).tolist()
    [[[128, 128, 4]]]
    """
    if a.shape != b.shape:
        raise ValueError(f"mixup_pixels: shapes differ: {a.shape} vs {b.shape}")
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim < 1:
            raise ValueError(f"{name}: expected a uint8 array with at least one axis, got "
                             f"{getattr(x, 'dtype', type(x).__name__)} of shape {getattr(x, 'shape', None)}")
    lam32, rest32 = _lam_pair(lam)
    out = np.empty(a.shape, dtype=np.uint8)
    if out.size == 0:
        return out
    # The same float32 operations, element by element, in blocks of rows whose
    # temporaries stay in cache (and are not fresh pages for every image).
    rows_in = np.ascontiguousarray(a).reshape(a.shape[0], -1)
    rows_b = np.ascontiguousarray(b).reshape(a.shape[0], -1)
    rows_out = out.reshape(a.shape[0], -1)
    step = max(1, _BLEND_BLOCK // rows_in.shape[1])
    ta = np.empty((min(step, len(rows_in)), rows_in.shape[1]), dtype=np.float32)
    tb = np.empty_like(ta)
    for r0 in range(0, len(rows_in), step):
        n = min(step, len(rows_in) - r0)
        x, y = ta[:n], tb[:n]
        np.multiply(rows_in[r0:r0 + n], lam32, out=x, dtype=np.float32)
        np.multiply(rows_b[r0:r0 + n], rest32, out=y, dtype=np.float32)
        x += y
        x += np.float32(0.5)
        # x is in [0.5, 255.5 + 255 * 2**-23): the cast truncates, which is the floor, and never reaches 256
        np.copyto(rows_out[r0:r0 + n], x, casting="unsafe")
    return out


def mixup_weights(
    w_a: NDArray[np.float32], w_b: NDArray[np.float32], lam: float
) -> NDArray[np.float32]:
    """``concat(lam * w_a, (1 - lam) * w_b)`` in float32 (same float32 ``lam`` as the pixels).

    >>> mixup_weights(np.ones(1, np.float32), np.full(2, 0.5, np.float32), 0.75).tolist()
    [0.75, 0.125, 0.125]
    """
    lam32, rest32 = _lam_pair(lam)
    wa = np.asarray(w_a, np.float32) * lam32
    wb = np.asarray(w_b, np.float32) * rest32
    return np.ascontiguousarray(np.concatenate([wa, wb]).astype(np.float32))


def pad_to_canvas(
    image: NDArray[np.uint8], height: int, width: int, fill: int = DEFAULT_FILL
) -> NDArray[np.uint8]:
    """Place ``image`` top-left on a ``height x width`` canvas filled with ``fill``.

    Pixels beyond the canvas are cropped. Returns ``image`` itself when the
    size already matches (it is never written into), otherwise a new array.
    Object coordinates are unchanged by this placement.

    >>> pad_to_canvas(np.zeros((1, 2, 3), np.uint8), 2, 1)[:, :, 0].tolist()
    [[0], [114]]
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    out = np.full((height, width, image.shape[2]), fill, dtype=np.uint8)
    ch, cw = min(h, height), min(w, width)
    out[:ch, :cw] = image[:ch, :cw]
    return out


def _concat_polygons(a: Labels | Sample, b: Labels | Sample) -> tuple[NDArray[np.float32], ...] | None:
    if a.polygons is None or b.polygons is None:
        return None
    return tuple(a.polygons) + tuple(b.polygons)


def mixup_labels(a: Labels | Sample, b: Labels | Sample, lam: float) -> Labels:
    """The objects of a MixUp (the one MixUp label rule): the union, weights ``lam * w_a``, ``(1 - lam) * w_b``.

    Both are placed top-left on a canvas of the larger height and width;
    objects keep their coordinates. Meta is ``a``'s.

    >>> one = Labels((4, 4), np.zeros((1, 4), np.float32), np.zeros(1, np.int64), np.ones(1, np.float32))
    >>> out = mixup_labels(one, one.replace(size=(6, 2)), 0.75)
    >>> out.size, out.weights.tolist()
    ((6, 4), [0.75, 0.25])
    """
    h, w = max(a.height, b.height), max(a.width, b.width)
    return Labels(
        (h, w),
        np.ascontiguousarray(np.concatenate([a.boxes, b.boxes]).astype(np.float32)),
        np.ascontiguousarray(np.concatenate([a.classes, b.classes]).astype(np.int64)),
        mixup_weights(a.weights, b.weights, lam),
        _concat_polygons(a, b),
        a.meta,
    )


class MixUp(MixTransform[MixUpParams]):
    """Detection MixUp with one partner.

    Args:
        alpha, beta: parameters of ``lam ~ Beta(alpha, beta)`` (both > 0).
            The default Beta(1.5, 1.5) is Zhang et al.'s; Ultralytics uses
            Beta(32, 32).

    When the images differ in size, both are placed top-left on a canvas of
    the larger height and the larger width filled with 114; objects keep
    their coordinates. The output keeps the base sample's ``meta``.
    """

    num_partners = 1

    def __init__(self, alpha: float = 1.5, beta: float = 1.5) -> None:
        check_beta("alpha", alpha)
        check_beta("beta", beta)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def __repr__(self) -> str:
        return f"MixUp(alpha={self.alpha}, beta={self.beta})"

    def sample_params(
        self, rng: np.random.Generator, sample: Sample, partners: Sequence[Sample]
    ) -> MixUpParams:
        """Draw ``lam ~ Beta(alpha, beta)`` (one draw), clipped to ``[1e-3, 1 - 1e-3]``."""
        return MixUpParams(lam=clip_lam(rng.beta(self.alpha, self.beta)))

    def apply(self, sample: Sample, partners: Sequence[Sample], params: MixUpParams) -> Sample:
        """Blend ``sample`` (share ``lam``) with ``partners[0]`` (share ``1 - lam``).

        Returns a Sample of size (max H, max W) whose objects are the base's
        then the partner's, weights ``lam * w_a`` and ``(1 - lam) * w_b``.
        """
        if len(partners) != 1:
            raise ValueError(f"partners: MixUp needs exactly 1 partner, got {len(partners)}")
        if not (0.0 <= params.lam <= 1.0):
            raise ValueError(f"params.lam must be in [0, 1], got {params.lam}")
        a, b = sample, partners[0]
        labels = mixup_labels(a, b, params.lam)
        h, w = labels.size
        return labels.with_image(mixup_pixels(pad_to_canvas(a.image, h, w), pad_to_canvas(b.image, h, w), params.lam))
