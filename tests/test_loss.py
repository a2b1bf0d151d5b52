"""Per-object weights in a YOLO loss: padding, anchor gathering, target scaling, the assigner wrapper."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from detaug.loss import (
    WEIGHTINGS,
    WeightedAssigner,
    anchor_weights,
    check_weighting,
    padded_gt_weights,
    weight_targets,
    weighted_v8_detection_loss,
)


def padded_reference(batch_idx, weights, b, max_obj, pad=0.0):
    """Loop reference: the j-th object of image i (flat order) goes to slot [i, j]."""
    out = torch.full((b, max_obj), pad)
    fill = [0] * b
    for i, w in zip(batch_idx.tolist(), weights.tolist(), strict=True):
        out[int(i), fill[int(i)]] = w
        fill[int(i)] += 1
    return out


def random_assignment(g, b=3, a=50, c=4, max_obj=5):
    scores = torch.rand(b, a, c, generator=g)
    fg = torch.rand(b, a, generator=g) < 0.4
    scores = scores * fg.unsqueeze(-1)  # assigners give zero targets on background
    gt_idx = torch.randint(0, max_obj, (b, a), generator=g)
    return scores, fg, gt_idx


@pytest.mark.parametrize("seed", range(4))
def test_padded_gt_weights_matches_loop_reference(seed):
    g = torch.Generator().manual_seed(seed)
    bi = torch.randint(0, 4, (17,), generator=g)  # unsorted on purpose
    w = torch.rand(17, generator=g)
    ref = padded_reference(bi, w, 4, int(torch.bincount(bi, minlength=4).max()))
    assert torch.equal(padded_gt_weights(bi, w, 4), ref)
    assert torch.equal(padded_gt_weights(bi.float(), w, 4, max_objects=9, pad_value=-1.0),
                       padded_reference(bi, w, 4, 9, pad=-1.0))


def test_padded_gt_weights_empty_and_mismatch():
    out = padded_gt_weights(torch.zeros(0, dtype=torch.int64), torch.zeros(0), 3)
    assert out.shape == (3, 0)
    with pytest.raises(ValueError, match="weights"):
        padded_gt_weights(torch.zeros(3, dtype=torch.int64), torch.ones(2), 1)


def test_weight_one_is_the_unweighted_targets():
    g = torch.Generator().manual_seed(0)
    scores, fg, gt_idx = random_assignment(g)
    box_w = torch.rand(3, 50, generator=g)
    dfl_w = torch.rand(3, 50, 4, generator=g)
    ws, wb, wd = weight_targets(scores, fg, gt_idx, torch.ones(3, 5), box_w, dfl_w)
    assert torch.equal(ws, scores) and torch.equal(wb, box_w) and torch.equal(wd, dfl_w)


def test_weight_scales_exactly_that_objects_anchors():
    g = torch.Generator().manual_seed(1)
    scores, fg, gt_idx = random_assignment(g)
    box_w = torch.rand(3, 50, generator=g)
    gt_w = torch.ones(3, 5)
    gt_w[1, 2] = 0.3
    ws, wb = weight_targets(scores, fg, gt_idx, gt_w, box_w)
    mine = torch.zeros(3, 50, dtype=torch.bool)
    mine[1] = fg[1] & (gt_idx[1] == 2)
    assert mine.any()
    torch.testing.assert_close(ws[mine], scores[mine] * 0.3)
    torch.testing.assert_close(wb[mine], box_w[mine] * 0.3)
    assert torch.equal(ws[~mine], scores[~mine]) and torch.equal(wb[~mine], box_w[~mine])
    # Background anchors pointing at the object (gt_idx 2, not fg) keep weight 1.
    aw = anchor_weights(fg, gt_idx, gt_w)
    assert (aw[1][~fg[1] & (gt_idx[1] == 2)] == 1).all()


def test_weighted_loss_terms_scale_per_object():
    """In a YOLOv8-style loss (BCE on target scores, box loss weighted by target_scores.sum(-1)),
    an object's box-loss contribution scales exactly by its weight."""
    g = torch.Generator().manual_seed(2)
    scores, fg, gt_idx = random_assignment(g, b=2, a=40, c=3, max_obj=3)
    iou_loss = torch.rand(2, 40, generator=g)  # per-anchor (1 - IoU)

    def box_loss_of(ts, sel):
        return ((iou_loss * ts.sum(-1)) * (fg & sel)).sum()

    gt_w = torch.ones(2, 3)
    gt_w[0, 1] = 0.25
    (ws,) = weight_targets(scores, fg, gt_idx, gt_w)
    obj = torch.zeros(2, 40, dtype=torch.bool)
    obj[0] = gt_idx[0] == 1
    torch.testing.assert_close(box_loss_of(ws, obj), 0.25 * box_loss_of(scores, obj))
    torch.testing.assert_close(box_loss_of(ws, ~obj), box_loss_of(scores, ~obj))
    logits = torch.randn(2, 40, 3, generator=g)
    bce_w = F.binary_cross_entropy_with_logits(logits, ws, reduction="none")
    bce = F.binary_cross_entropy_with_logits(logits, scores, reduction="none")
    assert torch.equal(bce_w[~obj], bce[~obj]) and not torch.equal(bce_w[obj & fg], bce[obj & fg])


class FakeAssigner:
    """Stands in for Ultralytics' TaskAlignedAssigner (same call signature and outputs)."""

    topk = 10

    def __init__(self, scores, fg, gt_idx):
        self.out = (torch.zeros(fg.shape, dtype=torch.int64), torch.zeros(*fg.shape, 4), scores, fg, gt_idx)

    def __call__(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt):
        return self.out


def test_weighted_assigner_targets_weighting_scales_target_scores():
    g = torch.Generator().manual_seed(3)
    scores, fg, gt_idx = random_assignment(g, b=2, a=30, c=2, max_obj=4)
    wrapped = WeightedAssigner(FakeAssigner(scores, fg, gt_idx), weighting="targets")
    assert wrapped.topk == 10  # attributes of the wrapped assigner stay visible
    gt_labels = torch.zeros(2, 4, 1)
    args = (None, None, None, gt_labels, None, None)
    assert wrapped(*args)[2] is scores  # no weights set: passes through
    batch_idx = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])  # as in an Ultralytics batch (float)
    weights = torch.tensor([1.0, 0.5, 0.2, 1.0, 0.7])
    wrapped.set_weights(batch_idx, weights)
    out = wrapped(*args)
    gt_w = padded_gt_weights(batch_idx, weights, 2, max_objects=4)
    expect = weight_targets(scores, fg, gt_idx, gt_w)[0]
    assert torch.equal(out[2], expect) and out[3] is fg and out[4] is gt_idx
    assert not torch.equal(out[2], scores)
    assert torch.equal(wrapped.last_anchor_weights, anchor_weights(fg, gt_idx, gt_w))
    wrapped.set_weights(None, None)
    assert wrapped(*args)[2] is scores


def test_weighted_assigner_loss_weighting_keeps_targets_and_records_anchor_weights():
    g = torch.Generator().manual_seed(4)
    scores, fg, gt_idx = random_assignment(g, b=2, a=30, c=2, max_obj=4)
    wrapped = WeightedAssigner(FakeAssigner(scores, fg, gt_idx))
    assert wrapped.weighting == WEIGHTINGS[0] == "loss"
    assert wrapped.last_anchor_weights is None
    batch_idx = torch.tensor([0, 0, 1, 1, 1])
    weights = torch.tensor([1.0, 0.5, 0.2, 1.0, 0.7])
    wrapped.set_weights(batch_idx, weights)
    out = wrapped(None, None, None, torch.zeros(2, 4, 1), None, None)
    assert out[2] is scores  # the targets are Ultralytics' own
    aw = wrapped.last_anchor_weights
    assert aw.shape == (2, 30) and (aw[~fg] == 1).all()
    assert torch.equal(aw, anchor_weights(fg, gt_idx, padded_gt_weights(batch_idx, weights, 2, max_objects=4)))


def test_weighting_is_checked():
    assert check_weighting("targets") == "targets"
    with pytest.raises(ValueError, match="weighting"):
        WeightedAssigner(FakeAssigner(*random_assignment(torch.Generator().manual_seed(0))), weighting="scores")


def test_weighted_assigner_rejects_non_callable():
    with pytest.raises(ValueError, match="assigner"):
        WeightedAssigner(3)


@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is not None, reason="ultralytics is installed")
def test_ultralytics_subclass_needs_ultralytics():
    with pytest.raises(ImportError, match="ultralytics"):
        weighted_v8_detection_loss()
