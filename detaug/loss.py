"""Per-object loss weights in a YOLO (task-aligned assigner) loss.

MixUp and CutMix lower the weight of each object (``lam * w``, ``(1 - lam) * w``,
``visible * w``). A YOLOv8-style loss can use them after its assigner has
matched anchors to ground-truth objects: every foreground anchor takes the
weight of the object it was assigned (background anchors take 1). What the
weight then multiplies is the *weighting*; detaug offers two:

``"loss"`` (the default; "Bag of Freebies", Zhang et al. 2019)
    Each object's loss terms are multiplied by its weight: the classification
    BCE of its anchors (all classes) and their box terms (IoU and DFL). The
    targets and the loss's normaliser (Ultralytics' ``target_scores.sum()``)
    stay the native ones. So an object of weight ``w`` pulls ``w`` times as
    hard, towards the same target; with every weight 1 the loss is the native
    one bit for bit; with every weight ``w`` the box and DFL losses are exactly
    ``w`` times the native ones and the classification loss is
    ``background + w * foreground`` (background anchors are untouched).

``"targets"`` (detaug's earlier behaviour)
    The assigner's target scores (B, A, C) of the object's anchors are
    multiplied by its weight. That also lowers the classification *target*
    (the model is taught to score a weight-``w`` object ``w``), and since
    Ultralytics divides every term by ``max(target_scores.sum(), 1)``, a
    weight acts relative to the batch's others: with every weight ``w`` the
    box and DFL losses are multiplied by ``w * max(S, 1) / max(w * S, 1)``
    (``S`` the native sum): unchanged while ``w * S >= 1``, ``w`` times the
    native ones when ``S <= 1``; and the classification loss changes (targets
    ``w`` times smaller, background BCE divided by a smaller sum), typically
    up, not down: a constant weight does not "train as if it were 1".

The pieces here are pure functions, with no Ultralytics import:

- :func:`padded_gt_weights`: flat ``batch_idx``/``weights`` (M,) -> (B, max_obj),
  in the same slots as the loss's padded ground-truth tensor (objects of an
  image in their order);
- :func:`anchor_weights`: (B, A) weight of each anchor's matched object;
- :func:`weight_targets`: any per-anchor tensors scaled by those weights (the
  target scores for ``"targets"``; per-anchor loss terms for ``"loss"``);
- :class:`WeightedAssigner`: wraps an assigner with Ultralytics'
  ``TaskAlignedAssigner`` signature, records the anchor weights of each call
  and, for ``"targets"``, weights its target scores.

Ultralytics' own losses (``v8DetectionLoss`` for YOLOv8/YOLO11, ``E2ELoss`` for
YOLO26) get their weighted subclasses in
:mod:`detaug.integrations.ultralytics` (``WeightedDetectionLoss``,
``WeightedE2ELoss``); ``DetaugTrainer`` installs them.

>>> import torch
>>> gt_w = padded_gt_weights(torch.tensor([0, 1, 1]), torch.tensor([0.5, 1.0, 0.25]), batch_size=2)
>>> gt_w.tolist()
[[0.5, 0.0], [1.0, 0.25]]
>>> scores = torch.ones(2, 3, 1)                      # B=2 images, A=3 anchors, C=1 class
>>> fg = torch.tensor([[True, False, False], [True, True, False]])
>>> gt_idx = torch.tensor([[0, 0, 0], [1, 0, 0]])      # matched object per anchor
>>> weight_targets(scores, fg, gt_idx, gt_w)[0].squeeze(-1).tolist()
[[0.5, 1.0, 1.0], [0.25, 1.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "WEIGHTINGS",
    "check_weighting",
    "padded_gt_weights",
    "anchor_weights",
    "weight_targets",
    "WeightedAssigner",
]

#: The weightings a loss weight can have (see the module docstring); the first is the default.
WEIGHTINGS = ("loss", "targets")


def check_weighting(weighting: Any, name: str = "weighting") -> str:
    """``weighting`` if it is one of :data:`WEIGHTINGS`, else ValueError naming ``name``.

    >>> check_weighting("loss")
    'loss'
    >>> check_weighting("scores", name="object_weighting")
    Traceback (most recent call last):
    ...
    ValueError: object_weighting: expected one of ('loss', 'targets'), got 'scores'
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"{name}: expected one of {WEIGHTINGS}, got {weighting!r}")
    return str(weighting)


def padded_gt_weights(
    batch_idx: torch.Tensor,
    weights: torch.Tensor,
    batch_size: int,
    max_objects: int | None = None,
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Scatter flat per-object weights into a padded (B, max_obj) tensor.

    Slot ``[i, j]`` holds the weight of the j-th object (in flat order) whose
    ``batch_idx`` is ``i``: the layout YOLO losses use for their padded
    ground-truth tensor (Ultralytics' ``v8DetectionLoss.preprocess``).
    Vectorised (a stable sort and a scatter).

    Args:
        batch_idx: (M,) integer (or float holding integers) image index per
            object, each in [0, B).
        weights: (M,) float per-object weights.
        batch_size: B.
        max_objects: width of the output; ``None`` = the largest per-image count
            (one host sync to read it). Must be >= that count. When given,
            nothing syncs with the host.
        pad_value: value of the empty slots.

    Returns:
        (B, max_obj) float32 on ``weights``' device.
    """
    bi = batch_idx.reshape(-1).to(torch.int64)
    w = weights.reshape(-1).to(torch.float32)
    if bi.shape != w.shape:
        raise ValueError(f"weights: expected {tuple(bi.shape)} like batch_idx, got {tuple(w.shape)}")
    dev = w.device
    bi = bi.to(dev)
    counts = torch.zeros(batch_size, dtype=torch.int64, device=dev).scatter_add_(0, bi, torch.ones_like(bi))
    if max_objects is None:
        max_objects = int(counts.max()) if bi.numel() else 0
    out = torch.full((batch_size, int(max_objects)), float(pad_value), dtype=torch.float32, device=dev)
    if bi.numel() == 0:
        return out
    order = torch.argsort(bi, stable=True)
    sorted_bi = bi[order]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(bi.numel(), device=dev) - starts[sorted_bi]
    out[sorted_bi, slot] = w[order]
    return out


def anchor_weights(fg_mask: torch.Tensor, target_gt_idx: torch.Tensor, gt_weights: torch.Tensor) -> torch.Tensor:
    """(B, A) weight of the object each foreground anchor is matched to; 1 on background.

    Args:
        fg_mask: (B, A) bool, the assigner's foreground anchors.
        target_gt_idx: (B, A) int64 index into the padded objects of each image.
        gt_weights: (B, max_obj) per-object weights (:func:`padded_gt_weights`).

    Returns:
        (B, A) in ``gt_weights``' dtype and device.
    """
    if gt_weights.shape[1] == 0:
        return torch.ones(fg_mask.shape, dtype=gt_weights.dtype, device=gt_weights.device)
    idx = target_gt_idx.to(torch.int64).clamp(0, gt_weights.shape[1] - 1)
    matched = torch.gather(gt_weights, 1, idx)
    return torch.where(fg_mask.bool(), matched, torch.ones_like(matched))


def weight_targets(
    target_scores: torch.Tensor,
    fg_mask: torch.Tensor,
    target_gt_idx: torch.Tensor,
    gt_weights: torch.Tensor,
    *box_terms: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Scale each anchor's targets (or loss terms) by the weight of the object it was assigned.

    Args:
        target_scores: (B, A, C) classification targets from the assigner (or
            any (B, A, ...) per-anchor tensor, e.g. a per-anchor BCE).
        fg_mask: (B, A) bool foreground anchors.
        target_gt_idx: (B, A) matched object index into ``gt_weights``' columns.
        gt_weights: (B, max_obj) per-object weights (:func:`padded_gt_weights`).
        box_terms: any per-anchor box-loss weights or terms with leading
            dimensions (B, A) (e.g. a (B, A) IoU-loss weight, a (B, A, 4) DFL
            weight), scaled the same way.

    Returns:
        ``(weighted target_scores, *weighted box_terms)``, new tensors in the
        inputs' dtypes. With all weights 1 they equal the inputs exactly.
    """
    aw = anchor_weights(fg_mask, target_gt_idx, gt_weights)
    out = [target_scores * aw.unsqueeze(-1).to(target_scores.dtype)]
    for t in box_terms:
        if tuple(t.shape[:2]) != tuple(aw.shape):
            raise ValueError(f"box_terms: expected leading dims {tuple(aw.shape)}, got {tuple(t.shape)}")
        out.append(t * aw.reshape(aw.shape + (1,) * (t.ndim - 2)).to(t.dtype))
    return tuple(out)


class WeightedAssigner:
    """Wrap a task-aligned assigner: record each call's anchor weights; for ``"targets"``, apply them.

    The wrapped callable must have Ultralytics' ``TaskAlignedAssigner``
    signature ``(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes,
    mask_gt)`` and return ``(target_labels, target_bboxes, target_scores,
    fg_mask, target_gt_idx)``. Before each loss call, :meth:`set_weights`
    with the batch's flat ``batch_idx``/``weights``; the padded weights are
    built to the width of ``gt_labels`` (B, max_obj, 1).

    Args:
        assigner: the assigner to wrap.
        weighting: ``"loss"`` (default): outputs pass through unchanged and
            :attr:`last_anchor_weights` holds the (B, A) weights for the loss
            to multiply its per-anchor terms by. ``"targets"``: the returned
            ``target_scores`` are multiplied by them (see the module docstring).

    Attributes:
        last_anchor_weights: (B, A) float32 weight of each anchor in the last
            call made with weights set (1 on background), else ``None``; a
            loss using it sets it to ``None`` before each call.

    Without weights set it passes the assigner's output through unchanged.
    """

    def __init__(self, assigner: Callable[..., Any], weighting: str = WEIGHTINGS[0]) -> None:
        if not callable(assigner):
            raise ValueError(f"assigner must be callable, got {type(assigner).__name__}")
        self.assigner = assigner
        self.weighting = check_weighting(weighting)
        self._flat: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_anchor_weights: torch.Tensor | None = None

    def set_weights(self, batch_idx: torch.Tensor | None, weights: torch.Tensor | None) -> None:
        """Use these (M,) per-object weights for the next calls (``None`` clears)."""
        self._flat = None if batch_idx is None or weights is None else (batch_idx, weights)

    def __getattr__(self, name: str) -> Any:  # topk, num_classes, ... of the wrapped assigner
        if name == "assigner":
            raise AttributeError(name)
        return getattr(self.assigner, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.assigner(*args, **kwargs)
        if self._flat is None:
            return out
        target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx = out
        gt_labels = kwargs["gt_labels"] if "gt_labels" in kwargs else args[3]
        batch_idx, weights = self._flat
        gt_w = padded_gt_weights(
            batch_idx.to(target_scores.device),
            weights.to(target_scores.device),
            batch_size=target_scores.shape[0],
            max_objects=int(gt_labels.shape[1]),
        )
        self.last_anchor_weights = anchor_weights(fg_mask, target_gt_idx, gt_w)
        if self.weighting == "targets":
            (target_scores,) = weight_targets(target_scores, fg_mask, target_gt_idx, gt_w)
        return target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx
