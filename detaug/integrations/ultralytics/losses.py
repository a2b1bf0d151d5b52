"""Ultralytics' detection losses with detaug's per-object weights (``batch["weights"]``).

:class:`WeightedDetectionLoss` subclasses ``v8DetectionLoss`` (YOLOv8, YOLO11);
:class:`WeightedE2ELoss` subclasses ``E2ELoss`` (YOLO26) and weights both of its
branches (one-to-many and one-to-one). :func:`weighted_criterion` picks the
one matching a model, as ``DetectionModel.init_criterion`` does.
:class:`~detaug.integrations.ultralytics.DetaugTrainer` installs it on the
training model itself (``model.criterion``, no lambda, never pickled:
Ultralytics' checkpoints hold the EMA copy of the model, made before the
criterion is set, with any criterion stripped).

What a weight multiplies is the ``weighting`` (see :mod:`detaug.loss`):
``"loss"`` (default) multiplies each object's classification BCE and box
terms by its weight and keeps Ultralytics' targets and normaliser, so a batch
whose weights are all 1 gives exactly the native loss; ``"targets"`` scales
the assigner's target scores instead.

A batch without ``"weights"`` gets the native loss. Everything else (the
assigner, class weights from ``cls_pw``, the gains ``box``/``cls``/``dfl``,
E2ELoss' one-to-many decay) is Ultralytics' own code, run unchanged.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from detaug.loss import WEIGHTINGS, WeightedAssigner, check_weighting

try:
    from ultralytics.utils.loss import E2ELoss as _E2EBase
    from ultralytics.utils.loss import v8DetectionLoss as _V8Base
except ImportError as e:  # Ultralytics is an optional peer: the classes exist, using them raises
    _V8Base = _E2EBase = object
    _MISSING: ImportError | None = e
else:
    _MISSING = None

__all__ = ["WeightedDetectionLoss", "WeightedE2ELoss", "weighted_criterion"]

# Position of target_scores in Ultralytics' BboxLoss.forward(pred_dist, pred_bboxes,
# anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask, ...).
_BOX_SCORES_ARG = 4


def require_ultralytics(what: str) -> None:
    """Raise ImportError naming ``what`` when Ultralytics cannot be imported."""
    if _MISSING is not None:
        raise ImportError(f"{what} needs the optional package 'ultralytics' (pip install ultralytics)") from _MISSING


class _PerAnchorBCE:
    """The loss's BCE (reduction none, (B, A, C)) times each anchor's weight ("loss" weighting)."""

    def __init__(self, bce: Any, assigner: WeightedAssigner) -> None:
        self.bce, self.assigner = bce, assigner

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.bce(pred, target)
        aw = self.assigner.last_anchor_weights
        return out if aw is None else out * aw.unsqueeze(-1).to(out.dtype)


class _PerAnchorBox:
    """The box loss with its per-anchor weights (``target_scores``) times each anchor's weight.

    Only the box terms' weights are scaled; the normaliser ``target_scores_sum``
    the loss passes stays the native one.
    """

    def __init__(self, box_loss: Any, assigner: WeightedAssigner) -> None:
        self.box_loss, self.assigner = box_loss, assigner

    def __getattr__(self, name: str) -> Any:  # dfl_loss, ... of the wrapped module
        if name == "box_loss":
            raise AttributeError(name)
        return getattr(self.box_loss, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        aw = self.assigner.last_anchor_weights
        if aw is not None:
            if "target_scores" in kwargs:
                kwargs["target_scores"] = kwargs["target_scores"] * aw.unsqueeze(-1).to(kwargs["target_scores"].dtype)
            else:
                args = list(args)
                ts = args[_BOX_SCORES_ARG]
                args[_BOX_SCORES_ARG] = ts * aw.unsqueeze(-1).to(ts.dtype)
        return self.box_loss(*args, **kwargs)


class WeightedDetectionLoss(_V8Base):  # type: ignore[misc, valid-type]
    """Ultralytics' ``v8DetectionLoss`` applying ``batch["weights"]`` ((M,) float, one per object).

    Args:
        model: the de-paralleled DetectionModel (with ``model.args`` set), as for
            ``v8DetectionLoss``.
        tal_topk, tal_topk2: the task-aligned assigner's top-k, as for ``v8DetectionLoss``.
        weighting: ``"loss"`` (default) or ``"targets"`` (:mod:`detaug.loss`).

    ``self.assigner`` is a :class:`~detaug.loss.WeightedAssigner`; after each
    call its ``last_anchor_weights`` is the (B, A) weight every anchor was given.
    """

    def __init__(self, model: Any, tal_topk: int = 10, tal_topk2: int | None = None,
                 weighting: str = WEIGHTINGS[0]) -> None:
        require_ultralytics("WeightedDetectionLoss")
        weighting = check_weighting(weighting)
        super().__init__(model, tal_topk=tal_topk, tal_topk2=tal_topk2)
        self.weighting = weighting
        self.assigner = WeightedAssigner(self.assigner, weighting)
        if weighting == "loss":
            self.bce = _PerAnchorBCE(self.bce, self.assigner)
            self.bbox_loss = _PerAnchorBox(self.bbox_loss, self.assigner)

    def loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """Ultralytics' ``loss`` with the batch's ``batch_idx``/``weights`` given to the assigner.

        ``E2ELoss`` calls ``loss`` on each branch directly and ``__call__``
        ends in it, so both paths are weighted.
        """
        weights = batch.get("weights")
        self.assigner.last_anchor_weights = None  # set again by the assigner call, for this batch only
        self.assigner.set_weights(batch.get("batch_idx") if weights is not None else None, weights)
        try:
            return super().loss(preds, batch)
        finally:
            self.assigner.set_weights(None, None)  # last_anchor_weights stays, for inspection


class WeightedE2ELoss(_E2EBase):  # type: ignore[misc, valid-type]
    """Ultralytics' ``E2ELoss`` (YOLO26) whose two branches are :class:`WeightedDetectionLoss`.

    Args:
        model: the de-paralleled DetectionModel with an end-to-end head.
        weighting: ``"loss"`` (default) or ``"targets"``, for both branches.
    """

    def __init__(self, model: Any, weighting: str = WEIGHTINGS[0]) -> None:
        require_ultralytics("WeightedE2ELoss")
        weighting = check_weighting(weighting)
        super().__init__(model, loss_fn=partial(WeightedDetectionLoss, weighting=weighting))
        self.weighting = weighting


def weighted_criterion(model: Any, weighting: str = WEIGHTINGS[0]) -> Any:
    """The weighted loss for ``model``: the class of ``model.init_criterion()``, weighted.

    Args:
        model: a de-paralleled Ultralytics DetectionModel with ``model.args`` set.
        weighting: ``"loss"`` (default) or ``"targets"``.

    Returns:
        a :class:`WeightedE2ELoss` where the model builds an ``E2ELoss``, a
        :class:`WeightedDetectionLoss` where it builds a ``v8DetectionLoss``.

    Raises:
        ValueError: for any other criterion (segmentation, pose, OBB, ...).
    """
    require_ultralytics("weighted_criterion")
    weighting = check_weighting(weighting)
    native = model.init_criterion()
    if type(native) is _E2EBase and type(native.one2many) is _V8Base:
        out: Any = WeightedE2ELoss(model, weighting)
    elif type(native) is _V8Base:
        out = WeightedDetectionLoss(model, weighting=weighting)
    else:
        raise ValueError(
            f"model: detaug weights v8DetectionLoss and E2ELoss, this model builds {type(native).__name__}"
        )
    return out
