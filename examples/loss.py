"""The example's detection loss, scaled by detaug's per-object weights.

MixUp and CutMix lower an object's weight (``Batch.weights``); here that
weight becomes the classification target of every cell assigned to the
object and scales its box term, through :func:`detaug.loss.weight_targets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from detaug.loss import weight_targets
from examples.assigner import PaddedTargets, assign
from examples.detector import decode

__all__ = ["giou", "LossParts", "detection_loss"]


def giou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Generalised IoU of matching rows of (N, 4) float xyxy boxes: (N,) in (-1, 1].

    >>> g = giou(torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1]]), torch.tensor([[0.0, 0, 2, 2], [2, 0, 3, 1]]))
    >>> [round(v, 3) for v in g.tolist()]  # identical; disjoint, hull 3 x 1 with a gap of 1
    [1.0, -0.333]
    """
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp_min(0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp_min(0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]).clamp_min(0) * (a[:, 3] - a[:, 1]).clamp_min(0)
    area_b = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    union = area_a + area_b - inter + eps
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    hull = cw * ch + eps
    return inter / union - (hull - union) / hull


@dataclass(frozen=True)
class LossParts:
    """The loss of one batch.

    Attributes:
        total: 0-d float, ``cls + box_gain * box`` (carries the graph).
        cls, box: 0-d float, its parts (detached).
        num_fg: the number of foreground cells (the normaliser).
    """

    total: torch.Tensor
    cls: torch.Tensor
    box: torch.Tensor
    num_fg: int


def detection_loss(
    cls_logits: torch.Tensor,
    dist: torch.Tensor,
    points: torch.Tensor,
    strides: torch.Tensor,
    targets: PaddedTargets,
    box_gain: float = 2.0,
    radius: float = 2.5,
) -> LossParts:
    """The weighted detection loss.

    :func:`~examples.assigner.assign` matches cells to boxes; the
    classification target of a foreground cell is the one-hot of its box's
    class and its box term is ``1 - GIoU(pred, box)``; both are scaled by the
    box's weight with :func:`detaug.loss.weight_targets` (a MixUp object of
    weight 0.3 trains its cells towards score 0.3 and counts 0.3 in the box
    loss). Background cells train towards 0. Classification:
    BCE-with-logits summed over cells and classes; both terms are divided by
    the number of foreground cells (not by the sum of weights, so a weight
    lowers an object's pull in absolute terms).

    Args:
        cls_logits: (B, A, C) float class logits.
        dist: (B, A, 4) float predicted ltrb distances, pixels.
        points, strides: (A, 2) and (A,) from :func:`examples.detector.make_anchors`.
        targets: from :func:`examples.assigner.pad_targets`.
        box_gain: weight of the box term.
        radius: centre-sampling radius of the assignment, in strides.
    """
    nc = cls_logits.shape[-1]
    fg, gt_idx = assign(points, strides, targets.boxes, targets.mask, radius)
    if targets.classes.shape[1]:
        tgt_cls = torch.gather(targets.classes, 1, gt_idx)
        tgt_box = torch.gather(targets.boxes, 1, gt_idx.unsqueeze(-1).expand(-1, -1, 4))
    else:
        tgt_cls = torch.zeros_like(gt_idx)
        tgt_box = torch.zeros(gt_idx.shape + (4,), dtype=dist.dtype, device=dist.device)
    scores = F.one_hot(tgt_cls, nc).to(cls_logits.dtype) * fg.unsqueeze(-1)
    scores, box_w = weight_targets(scores, fg, gt_idx, targets.weights, fg.to(dist.dtype))
    n = fg.sum()
    denom = n.clamp_min(1).to(cls_logits.dtype)
    cls_loss = F.binary_cross_entropy_with_logits(cls_logits, scores, reduction="sum") / denom
    pred = decode(points, dist)
    box_loss = ((1.0 - giou(pred[fg], tgt_box[fg])) * box_w[fg]).sum() / denom
    return LossParts(total=cls_loss + box_gain * box_loss, cls=cls_loss.detach(), box=box_loss.detach(),
                     num_fg=int(n))
