"""Exact greedy class-aware non-maximum suppression, without a per-box Python loop."""

from __future__ import annotations

import torch

__all__ = ["nms"]


def nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Greedy class-aware NMS: (K,) int64 indices of the kept boxes, by descending score.

    Greedy NMS keeps box i (in score order) iff no *kept* higher-scored box of
    its class overlaps it by more than ``iou_thr``. That rule has exactly one
    solution, and iterating it from "keep all" fixes one more leading entry per
    round, so the vectorised iteration below reaches it (usually in a few rounds).
    O(N^2) memory: meant for the few hundred candidates of one image.

    Args:
        boxes: (N, 4) float abs xyxy.
        scores: (N,) float.
        classes: (N,) int; only boxes of equal class suppress each other
            (pass zeros for class-agnostic NMS).
        iou_thr: IoU above which a kept box suppresses a lower one.

    >>> b = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [2, 0, 12, 10], [0, 0, 10, 10.]])
    >>> nms(b, torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0, 0, 0, 1]), 0.7).tolist()
    [0, 2, 3]
    """
    order = torch.argsort(scores, descending=True, stable=True)
    b, c = boxes[order], classes[order]
    n = b.shape[0]
    if n == 0:
        return order
    iw = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0])).clamp_min(0)
    ih = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1])).clamp_min(0)
    inter = iw * ih
    area = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp_min(1e-9)
    earlier = torch.ones((n, n), dtype=torch.bool, device=b.device).triu(1)  # [j, i]: j before i
    suppresses = earlier & (iou > iou_thr) & (c[:, None] == c[None, :])
    keep = torch.ones(n, dtype=torch.bool, device=b.device)
    for _ in range(n):
        new = ~(suppresses & keep[:, None]).any(0)
        if torch.equal(new, keep):
            break
        keep = new
    return order[keep]
