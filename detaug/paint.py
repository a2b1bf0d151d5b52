"""Painting a :class:`~detaug.plan.SamplePlan` with OpenCV: the per-sample path.

``MixDataset[i]`` is ``paint(plan, images)`` of ``MixDataset.plan(i)``: the
same OpenCV calls, in the same order, as the transforms' own ``apply``, so the
pixels are bit-identical to applying the transforms one by one.

>>> import numpy as np
>>> from detaug.plan import CanvasPlan, SamplePlan, TileWarp
>>> from detaug.sample import Labels
>>> lab = Labels((4, 4), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
>>> half = np.diag([0.5, 0.5, 1.0])
>>> p = SamplePlan(size=4, fill=(114, 114, 114), sources=(0,), source_sizes=((4, 4),),
...                canvases=(CanvasPlan((TileWarp(0, (0, 0, 4, 4), half, whole=True),)),), labels=lab)
>>> img = paint(p, [np.full((4, 4, 3), 7, np.uint8)])
>>> img[:, :, 0].tolist()
[[7, 7, 114, 114], [7, 7, 114, 114], [114, 114, 114, 114], [114, 114, 114, 114]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from detaug.canvas import paint_canvas
from detaug.plan import SamplePlan
from detaug.transforms.cutmix import paste_pixels
from detaug.transforms.mixup import mixup_pixels
from detaug.transforms.photometric import apply_hsv, flip_image

__all__ = ["paint"]


def paint(plan: SamplePlan, images: Sequence[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    """The item's image: (size, size, 3) uint8 RGB, C-contiguous, a new array.

    Args:
        plan: the item's plan.
        images: one (h, w, 3) uint8 RGB image per ``plan.sources`` entry, of
            the size recorded in ``plan.source_sizes``; not modified.
    """
    plan.check_images(images)
    s, fill = plan.size, plan.fill
    img = paint_canvas(plan.canvases[0], images, s, fill)
    if plan.blend is not None:
        img = mixup_pixels(img, paint_canvas(plan.canvases[plan.blend.canvas], images, s, fill), plan.blend.lam)
    if plan.paste is not None:
        x1, y1, x2, y2 = plan.paste.rect
        partner = paint_canvas(plan.canvases[plan.paste.canvas], images, s, fill, within=(x1, y1, x2, y2))
        if partner.shape == img.shape and img.flags.writeable:
            img[y1:y2, x1:x2] = partner[y1:y2, x1:x2]  # paste_pixels, in place (img is ours)
        else:
            img = paste_pixels(img, partner, plan.paste.rect)
    # img is a new array of ours from here: jitter and flip it in place (no new arrays)
    ours = img.flags.c_contiguous and img.flags.writeable
    if plan.hsv is not None:
        img = apply_hsv(img, plan.hsv, inplace=ours)
    if plan.flip_lr:
        img = flip_image(img, "horizontal", inplace=ours)
    if plan.flip_ud:
        img = flip_image(img, "vertical", inplace=ours)
    return np.ascontiguousarray(img)
