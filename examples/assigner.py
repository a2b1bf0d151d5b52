"""Which cells learn which object: a Batch's objects padded per image, and centre sampling.

:func:`pad_targets` lays a :class:`detaug.Batch`'s flat per-object tensors out
as (B, G, ...) slots, the layout of :func:`detaug.loss.padded_gt_weights`;
:func:`assign` matches every cell of the detector (see
:func:`examples.detector.make_anchors`) to at most one of those slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from detaug import Batch
from detaug.loss import padded_gt_weights

__all__ = ["PaddedTargets", "pad_targets", "assign"]


@dataclass(frozen=True)
class PaddedTargets:
    """A batch's objects padded per image (the layout of :func:`detaug.loss.padded_gt_weights`).

    Attributes:
        boxes: (B, G, 4) float32 abs xyxy (zeros in empty slots).
        classes: (B, G) int64 (0 in empty slots).
        mask: (B, G) bool, True for real objects.
        weights: (B, G) float32 per-object loss weights (0 in empty slots).
    """

    boxes: torch.Tensor
    classes: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor


def pad_targets(batch: Batch) -> PaddedTargets:
    """Scatter the flat per-object tensors of ``batch`` into per-image slots (one host sync).

    Slot ``[i, j]`` is the j-th object of image i in flat order, exactly as
    :func:`detaug.loss.padded_gt_weights` lays out the weights; G is the
    largest object count of an image (0 for a batch without objects).
    """
    bsz, dev = batch.batch_size, batch.device
    bi = batch.batch_idx
    counts = torch.bincount(bi, minlength=bsz)
    g = int(counts.max()) if bi.numel() else 0
    weights = padded_gt_weights(bi, batch.weights, bsz, max_objects=g)
    boxes = torch.zeros((bsz, g, 4), dtype=torch.float32, device=dev)
    classes = torch.zeros((bsz, g), dtype=torch.int64, device=dev)
    mask = torch.zeros((bsz, g), dtype=torch.bool, device=dev)
    if bi.numel():
        order = torch.argsort(bi, stable=True)
        sbi = bi[order]
        slot = torch.arange(bi.numel(), device=dev) - (torch.cumsum(counts, 0) - counts)[sbi]
        boxes[sbi, slot] = batch.boxes[order]
        classes[sbi, slot] = batch.classes[order]
        mask[sbi, slot] = True
    return PaddedTargets(boxes=boxes, classes=classes, mask=mask, weights=weights)


def assign(
    points: torch.Tensor,
    strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_mask: torch.Tensor,
    radius: float = 2.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre-sampling assignment of cells to ground-truth boxes (vectorised).

    A cell is a candidate for a box when its centre lies strictly inside the
    box and within ``radius`` of its own stride from the box centre (in x and
    in y), or when it is the cell nearest the box centre (so that boxes
    smaller than a cell still get one). A cell that is a candidate for several
    boxes goes to the one of smallest area.

    Args:
        points: (A, 2) float cell centres (x, y), input pixels.
        strides: (A,) float stride of each cell.
        gt_boxes: (B, G, 4) float abs xyxy.
        gt_mask: (B, G) bool real objects.
        radius: centre-sampling radius in strides.

    Returns:
        ``fg``: (B, A) bool foreground cells; ``gt_idx``: (B, A) int64 slot of
        the assigned box (0 for background cells).

    >>> pts = torch.tensor([[4.0, 4.0], [12.0, 4.0], [20.0, 4.0]])
    >>> fg, idx = assign(pts, torch.full((3,), 8.0), torch.tensor([[[0.0, 0.0, 16.0, 8.0]]]),
    ...                  torch.ones(1, 1, dtype=torch.bool))
    >>> fg.tolist(), idx.tolist()
    ([[True, True, False]], [[0, 0, 0]])
    """
    if radius <= 0:
        raise ValueError(f"radius: expected > 0 strides, got {radius}")
    bsz, g = gt_mask.shape
    a = points.shape[0]
    if g == 0:
        return (torch.zeros((bsz, a), dtype=torch.bool, device=points.device),
                torch.zeros((bsz, a), dtype=torch.int64, device=points.device))
    px, py = points[:, 0].view(1, 1, a), points[:, 1].view(1, 1, a)
    x1, y1, x2, y2 = (gt_boxes[..., k : k + 1] for k in range(4))  # (B, G, 1)
    inside = (px > x1) & (px < x2) & (py > y1) & (py < y2)
    cx, cy = (x1 + x2) * 0.5, (y1 + y2) * 0.5
    r = radius * strides.view(1, 1, a)
    near_centre = ((px - cx).abs() < r) & ((py - cy).abs() < r)
    d2 = (px - cx) ** 2 + (py - cy) ** 2  # (B, G, A)
    nearest = F.one_hot(d2.argmin(-1), a).bool()
    cand = ((inside & near_centre) | nearest) & gt_mask.unsqueeze(-1)
    area = ((x2 - x1) * (y2 - y1)).expand(bsz, g, a)
    area = torch.where(cand, area, torch.full_like(area, math.inf))
    best_area, gt_idx = area.min(1)  # (B, A)
    fg = torch.isfinite(best_area)
    return fg, torch.where(fg, gt_idx, torch.zeros_like(gt_idx))
