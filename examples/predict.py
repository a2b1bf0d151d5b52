"""Inference: a :class:`~examples.detector.TinyDetector`'s outputs -> per-image detections."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from examples.detector import TinyDetector, decode, make_anchors, pad_to_stride
from examples.nms import nms

__all__ = ["Detections", "predict"]


@dataclass(frozen=True)
class Detections:
    """Detections of one image: (K, 4) float32 abs xyxy, (K,) float32 scores, (K,) int64 classes."""

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor


@torch.no_grad()
def predict(
    model: TinyDetector,
    images: torch.Tensor,
    conf: float = 0.25,
    iou: float = 0.6,
    max_det: int = 100,
    pre_nms: int = 1000,
    agnostic: bool = False,
) -> list[Detections]:
    """Detect objects in (B, 3, H, W) float images in [0, 1] (any H, W; padded to the stride).

    Per image: the best class of each cell, cells with a score >= ``conf``
    (at most ``pre_nms`` by score), :func:`~examples.nms.nms` (class-aware, or
    across classes with ``agnostic``), the ``max_det`` best. Boxes are
    clipped to the (unpadded) image. Puts ``model`` in eval mode.

    Returns one :class:`Detections` per image, on ``images``' device.
    """
    model.eval()
    h, w = images.shape[-2:]
    x = pad_to_stride(images)
    logits, dist = model(x)
    points, _ = make_anchors(x.shape[-2], x.shape[-1], x.device)
    boxes = decode(points, dist)
    boxes = torch.stack([boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h),
                         boxes[..., 2].clamp(0, w), boxes[..., 3].clamp(0, h)], -1)
    scores, classes = logits.sigmoid().max(-1)
    out = []
    for i in range(images.shape[0]):  # a handful of images
        s = scores[i]
        cand = torch.nonzero(s >= conf).squeeze(1)
        cand = cand[torch.argsort(s[cand], descending=True)][:pre_nms]
        groups = torch.zeros_like(classes[i, cand]) if agnostic else classes[i, cand]
        keep = cand[nms(boxes[i, cand], s[cand], groups, iou)][:max_det]
        out.append(Detections(boxes=boxes[i, keep].float(), scores=s[keep].float(), classes=classes[i, keep]))
    return out
