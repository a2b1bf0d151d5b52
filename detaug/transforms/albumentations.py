"""Run any Albumentations transform on a :class:`~detaug.sample.Sample`.

The wrapped transform (or ``A.Compose``) is put inside an ``A.Compose`` that
carries the boxes as ``pascal_voc`` (absolute xyxy, our internal format) with
an object index as their label, and the polygon vertices as keypoints with
their own index (``remove_invisible=False``, so every vertex comes back).
After the call:

- objects whose box Albumentations dropped are dropped everywhere
  (:meth:`Sample.select` on the returned object indices, in their order);
- boxes are clipped to the output image (as Albumentations clips them) and
  objects left with no width or height are dropped;
- polygons are rebuilt from the keypoints and clipped to the output image.

Frames: boxes go through unchanged (Albumentations' boxes use the continuous
frame, like detaug). Albumentations moves keypoints in the pixel-index frame
(pixel centres at integers: a horizontal flip maps ``x -> W - 1 - x``), so the
vertices are shifted by -0.5 on the way in and +0.5 on the way out, which
makes flips, 90-degree rotations, crops and affine warps exact in detaug's
frame; for resizes Albumentations scales keypoints as ``x * s``, so a vertex
can be off by up to ``0.5 * |s - 1|`` pixels there.

Randomness comes from our generator: :meth:`AlbumentationsTransform.sample_params`
draws a seed, and :meth:`~AlbumentationsTransform.apply` reseeds the
Albumentations pipeline with it before each call, so the same params always
give the same output. (The pipeline object is reseeded in place: do not share
one ``AlbumentationsTransform`` between threads.)

>>> import albumentations as A
>>> import numpy as np
>>> from detaug.sample import Sample
>>> s = Sample.create(np.zeros((4, 10, 3), np.uint8), [[1, 0, 3, 2]], [0])
>>> t = AlbumentationsTransform(A.HorizontalFlip(p=1.0))
>>> t(s, np.random.default_rng(0)).boxes.tolist()
[[7.0, 0.0, 9.0, 2.0]]
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import albumentations as A
import numpy as np

from detaug.boxes import clip_boxes
from detaug.polygons import clip_polygons
from detaug.sample import Sample
from detaug.transforms.base import Transform

__all__ = ["AlbumentationsParams", "AlbumentationsTransform"]

_SEED_HIGH = 2**32


@dataclass(frozen=True)
class AlbumentationsParams:
    """The seed an Albumentations pipeline is run with.

    Attributes:
        seed: integer in ``[0, 2**32)`` given to ``Compose.set_random_seed``.
    """

    seed: int


class AlbumentationsTransform(Transform[AlbumentationsParams]):
    """Wrap an Albumentations transform or Compose as a detaug :class:`Transform`.

    Args:
        transform: any ``albumentations`` ``BasicTransform`` or ``BaseCompose``.
            It is deep-copied, so the caller's object is left as it was.
        min_visibility, min_area, min_width, min_height: Albumentations'
            ``BboxParams`` filters (fraction of the box left visible; pixels).
    """

    def __init__(
        self,
        transform: Any,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
        min_width: float = 0.0,
        min_height: float = 0.0,
    ) -> None:
        if not isinstance(transform, (A.BasicTransform, A.BaseCompose)):
            raise ValueError(
                f"transform must be an albumentations transform or Compose, got {type(transform).__name__}"
            )
        if not (0.0 <= min_visibility <= 1.0):
            raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
        for name, value in (("min_area", min_area), ("min_width", min_width), ("min_height", min_height)):
            if not (value >= 0):
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.transform = transform
        with warnings.catch_warnings():
            # Albumentations warns when the wrapped transform ignores boxes or
            # keypoints (e.g. a blur); that is expected here.
            warnings.filterwarnings("ignore", message="Got processor for", category=UserWarning)
            self._pipeline = self._build(transform, min_visibility, min_area, min_width, min_height)

    @staticmethod
    def _build(
        transform: Any, min_visibility: float, min_area: float, min_width: float, min_height: float
    ) -> A.Compose:
        return A.Compose(
            [copy.deepcopy(transform)],
            bbox_params=A.BboxParams(
                format="pascal_voc",
                label_fields=["detaug_obj"],
                min_visibility=float(min_visibility),
                min_area=float(min_area),
                min_width=float(min_width),
                min_height=float(min_height),
                clip=True,
            ),
            keypoint_params=A.KeypointParams(
                format="xy", label_fields=["detaug_kp"], remove_invisible=False
            ),
            p=1.0,
            seed=0,
        )

    def __repr__(self) -> str:
        return f"AlbumentationsTransform({self.transform!r})"

    def sample_params(self, rng: np.random.Generator, sample: Sample) -> AlbumentationsParams:
        """One integer draw: the seed of this call."""
        return AlbumentationsParams(seed=int(rng.integers(0, _SEED_HIGH)))

    def apply(self, sample: Sample, params: AlbumentationsParams) -> Sample:
        """Run the pipeline seeded with ``params.seed``; objects stay aligned.

        Returns a new Sample whose image is whatever size the pipeline makes.
        """
        n = sample.num_objects
        if sample.polygons is not None:
            lengths = np.array([len(p) for p in sample.polygons], dtype=np.int64)
            flat = (
                np.concatenate([np.asarray(p, np.float32).reshape(-1, 2) for p in sample.polygons])
                if lengths.sum()
                else np.zeros((0, 2), np.float32)
            )
        else:
            lengths = np.zeros(0, np.int64)
            flat = np.zeros((0, 2), np.float32)
        finite = np.flatnonzero(~np.isnan(flat).any(axis=1))
        keypoints = flat[finite].astype(np.float64) - 0.5

        self._pipeline.set_random_seed(int(params.seed))
        out = self._pipeline(
            image=sample.image.copy(),
            bboxes=sample.boxes.astype(np.float64),
            detaug_obj=np.arange(n, dtype=np.int64),
            keypoints=keypoints.reshape(-1, 2),
            detaug_kp=np.arange(len(finite), dtype=np.int64),
        )
        image = np.ascontiguousarray(out["image"])
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"{self.transform!r} returned an image of shape {image.shape} and dtype {image.dtype}; "
                "expected (H, W, 3) uint8"
            )
        h, w = image.shape[:2]
        idx = np.asarray(out["detaug_obj"], dtype=np.int64).reshape(-1)
        boxes = np.asarray(out["bboxes"], dtype=np.float64).reshape(-1, 4)[:, :4]
        boxes = clip_boxes(boxes, w, h)

        polygons = None
        if sample.polygons is not None:
            kp = np.asarray(out["keypoints"], dtype=np.float64)
            kp = kp.reshape(len(kp), -1)[:, :2] if kp.size else np.zeros((0, 2))
            kp_idx = np.asarray(out["detaug_kp"], dtype=np.int64).reshape(-1)
            if len(kp_idx) != len(finite):
                raise RuntimeError(f"{self.transform!r} dropped polygon vertices despite remove_invisible=False")
            moved = flat.astype(np.float64).copy()
            moved[finite[kp_idx]] = kp + 0.5
            parts = np.split(moved.astype(np.float32), np.cumsum(lengths)[:-1]) if n else []
            polygons = clip_polygons([parts[i] for i in idx.tolist()], 0.0, 0.0, float(w), float(h))

        result = sample.select(idx).replace(image=image, boxes=boxes, polygons=polygons)
        positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return result if positive.all() else result.select(positive)
