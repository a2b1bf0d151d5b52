"""Per-object loss weights in a YOLO (task-aligned assigner) loss.

MixUp and CutMix lower the weight of each object (``lam * w``, ``(1 - lam) * w``,
``visible * w``). A YOLOv8-style loss uses them after the assigner has matched
anchors to ground-truth objects: every foreground anchor takes the weight of
the object it was assigned, and that weight scales

- its classification target (``target_scores``, (B, A, C)), and
- its box-loss terms (IoU and DFL; Ultralytics weights those by
  ``target_scores.sum(-1)``, so scaling the scores scales them too; a loss with
  separate per-anchor box weights passes them as ``box_terms``).

Background anchors are not touched (their target is 0 whatever the weight).

The pieces are pure functions:

- :func:`padded_gt_weights`: flat ``batch_idx``/``weights`` (M,) -> (B, max_obj),
  in the same slots as the loss's padded ground-truth tensor (objects of an
  image in their order);
- :func:`anchor_weights`: (B, A) weight of each anchor's matched object;
- :func:`weight_targets`: the scaled targets.

:class:`WeightedAssigner` wraps any assigner with Ultralytics'
``TaskAlignedAssigner`` call signature so that its ``target_scores`` come out
weighted; :func:`weighted_v8_detection_loss` builds the matching subclass of
Ultralytics' ``v8DetectionLoss`` when Ultralytics is installed (it is not a
dependency of detaug). The pattern, for a trainer whose batches carry
``batch["weights"]`` (see :meth:`detaug.batch.Batch.to_yolo`)::

    from ultralytics.models.yolo.detect import DetectionTrainer
    from detaug.loss import weighted_v8_detection_loss

    WeightedLoss = weighted_v8_detection_loss()

    class Trainer(DetectionTrainer):
        def get_model(self, *args, **kwargs):
            model = super().get_model(*args, **kwargs)
            model.init_criterion = lambda: WeightedLoss(model)
            return model

``WeightedLoss.__call__(preds, batch)`` hands ``batch["batch_idx"]`` and
``batch["weights"]`` to its wrapped assigner and otherwise runs Ultralytics'
own loss unchanged. Note Ultralytics normalises by ``target_scores.sum()``,
which then includes the weights: an object's weight acts relative to the
other objects of the batch (a batch whose weights are all ``w`` trains as if
they were 1).

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
    "padded_gt_weights",
    "anchor_weights",
    "weight_targets",
    "WeightedAssigner",
    "weighted_v8_detection_loss",
]


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
    """Scale each anchor's targets by the weight of the object it was assigned.

    Args:
        target_scores: (B, A, C) classification targets from the assigner.
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
    """Wrap a task-aligned assigner so its ``target_scores`` carry per-object weights.

    The wrapped callable must have Ultralytics' ``TaskAlignedAssigner``
    signature ``(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes,
    mask_gt)`` and return ``(target_labels, target_bboxes, target_scores,
    fg_mask, target_gt_idx)``. Before each loss call, :meth:`set_weights`
    with the batch's flat ``batch_idx``/``weights``; the padded weights are
    built to the width of ``gt_labels`` (B, max_obj, 1). Without weights set
    it passes the assigner's output through unchanged.
    """

    def __init__(self, assigner: Callable[..., Any]) -> None:
        if not callable(assigner):
            raise ValueError(f"assigner must be callable, got {type(assigner).__name__}")
        self.assigner = assigner
        self._flat: tuple[torch.Tensor, torch.Tensor] | None = None

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
        (target_scores,) = weight_targets(target_scores, fg_mask, target_gt_idx, gt_w)
        return target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx


def weighted_v8_detection_loss() -> type:
    """A subclass of Ultralytics' ``v8DetectionLoss`` that applies ``batch["weights"]``.

    Created on call, so detaug does not need Ultralytics. The subclass wraps
    ``self.assigner`` in a :class:`WeightedAssigner` and, in ``__call__``,
    gives it the batch's ``batch_idx`` and ``weights`` (when the batch has
    them); everything else is Ultralytics' loss. See the module docstring for
    how to plug it into a trainer.

    Raises:
        ImportError: if Ultralytics is not installed.
    """
    try:
        from ultralytics.utils.loss import v8DetectionLoss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("weighted_v8_detection_loss needs the optional package 'ultralytics'") from e

    class WeightedV8DetectionLoss(v8DetectionLoss):  # type: ignore[misc, valid-type]
        """Ultralytics' v8DetectionLoss with per-object weights (``batch["weights"]``)."""

        def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(model, *args, **kwargs)
            self.assigner = WeightedAssigner(self.assigner)

        def __call__(self, preds: Any, batch: dict[str, Any]) -> Any:
            self.assigner.set_weights(batch.get("batch_idx"), batch.get("weights"))
            try:
                return super().__call__(preds, batch)
            finally:
                self.assigner.set_weights(None, None)

    return WeightedV8DetectionLoss
