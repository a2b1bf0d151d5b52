"""Per-object weights in a YOLO loss: padding, anchor gathering, target scaling, the assigner wrapper."""

from __future__ import annotations

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


# --- Ultralytics' own losses (run where ultralytics is installed: the peer venv of .ci/run) ---------


def _ultralytics_case(cfg, seed=0, b=2, imgsz=64, nc=5):
    """A real DetectionModel (train mode), its raw predictions on random images and a random batch."""
    pytest.importorskip("ultralytics", reason="needs ultralytics (the peer venv, see .ci/run)")
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    g = torch.Generator().manual_seed(seed)
    model = DetectionModel(cfg, nc=nc, verbose=False)
    model.args = get_cfg()
    model.train()
    preds = model(torch.rand(b, 3, imgsz, imgsz, generator=g))
    m = 7  # objects, over both images
    cxcy = 0.2 + 0.6 * torch.rand(m, 2, generator=g)
    wh = 0.1 + 0.3 * torch.rand(m, 2, generator=g)
    batch = {
        "batch_idx": torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]),
        "cls": torch.randint(0, nc, (m, 1), generator=g).float(),
        "bboxes": torch.cat([cxcy, wh], 1),
    }
    return model, preds, batch


def _items(out):
    return torch.stack(list(out[1].values())).detach()


FAMILIES = ["yolo11n.yaml", "yolo26n.yaml"]


@pytest.mark.parametrize("cfg", FAMILIES)
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_weights_all_one_give_ultralytics_native_loss_exactly(cfg, weighting):
    from detaug.integrations.ultralytics import weighted_criterion

    model, preds, batch = _ultralytics_case(cfg)
    native = model.init_criterion()(preds, batch)
    crit = weighted_criterion(model, weighting)
    weighted = crit(preds, {**batch, "weights": torch.ones(7)})
    assert torch.equal(weighted[0], native[0]) and torch.equal(_items(weighted), _items(native))
    assert torch.equal(crit(preds, batch)[0], native[0])  # a batch without weights: native
    branches = [crit.one2many, crit.one2one] if hasattr(crit, "one2one") else [crit]
    assert all(br.assigner.last_anchor_weights is None for br in branches)  # no weights: nothing recorded


def test_weighted_criterion_matches_the_model_family():
    pytest.importorskip("ultralytics", reason="needs ultralytics (the peer venv, see .ci/run)")
    from ultralytics.utils.loss import E2ELoss, v8DetectionLoss

    from detaug.integrations.ultralytics import (
        WeightedDetectionLoss,
        WeightedE2ELoss,
        weighted_criterion,
    )

    v8 = weighted_criterion(_ultralytics_case("yolo11n.yaml")[0])
    e2e = weighted_criterion(_ultralytics_case("yolo26n.yaml")[0], "targets")
    assert isinstance(v8, WeightedDetectionLoss) and isinstance(v8, v8DetectionLoss)
    assert isinstance(e2e, WeightedE2ELoss) and isinstance(e2e, E2ELoss)
    assert isinstance(e2e.one2many, WeightedDetectionLoss) and isinstance(e2e.one2one, WeightedDetectionLoss)
    assert e2e.one2one.assigner.weighting == "targets" and v8.weighting == "loss"
    with pytest.raises(ValueError, match="weighting"):
        weighted_criterion(_ultralytics_case("yolo11n.yaml")[0], "scores")


@pytest.mark.parametrize("cfg", FAMILIES)
def test_loss_weighting_a_constant_weight_scales_foreground_terms(cfg):
    """"loss" weighting, every weight w: box and DFL are exactly w x native; cls = background + w x foreground."""
    from detaug.integrations.ultralytics import weighted_criterion

    model, preds, batch = _ultralytics_case(cfg, seed=1)
    crit = weighted_criterion(model, "loss")
    items = {w: _items(crit(preds, {**batch, "weights": torch.full((7,), w)})) for w in (1.0, 0.5, 0.25)}
    box_dfl = [0, 2]  # box_loss, cls_loss, dfl_loss
    torch.testing.assert_close(items[0.5][box_dfl], 0.5 * items[1.0][box_dfl])
    torch.testing.assert_close(items[0.25][box_dfl], 0.25 * items[1.0][box_dfl])
    fg_half = items[1.0][1] - items[0.5][1]  # = 0.5 x the foreground anchors' BCE
    torch.testing.assert_close(items[0.5][1] - items[0.25][1], fg_half / 2)
    assert 0 < items[0.5][1] < items[1.0][1]


@pytest.mark.parametrize("cfg", FAMILIES)
def test_targets_weighting_a_constant_weight_is_divided_out_of_box_terms(cfg):
    """"targets" weighting, every weight w: box and DFL are divided by the weighted target sum, which
    Ultralytics clamps to >= 1; so they are unchanged while w x S >= 1 and scale by w x S below
    (S = the native target-score sum). cls changes: its targets are w x the native ones."""
    from detaug.integrations.ultralytics import weighted_criterion

    model, preds, batch = _ultralytics_case(cfg, seed=2)
    crit = weighted_criterion(model, "targets")
    branches = [crit.one2many, crit.one2one] if hasattr(crit, "one2one") else [crit]
    sums = []
    for br in branches:  # record each branch's native target-score sum S
        inner = br.assigner.assigner

        def recording(*args, _inner=inner, **kwargs):
            out = _inner(*args, **kwargs)
            sums.append(out[2].sum())
            return out

        br.assigner.assigner = recording
    one = _items(crit(preds, {**batch, "weights": torch.ones(7)}))
    s = sums[-1]  # the items are the last branch's (E2ELoss reports its one-to-one branch)
    for w in (0.5, 4.0 / float(s) if float(s) > 4 else 0.5):
        got = _items(crit(preds, {**batch, "weights": torch.full((7,), w)}))
        expect = one[[0, 2]] * w * s.clamp(min=1) / (w * s).clamp(min=1)
        torch.testing.assert_close(got[[0, 2]], expect)
        assert not torch.allclose(got[1], one[1])


@pytest.mark.parametrize("cfg", FAMILIES)
def test_loss_weighting_one_objects_weight_acts_linearly_on_its_terms(cfg):
    """One object's weight w (others 1): every loss item is affine in w (its terms x w), in both branches."""
    from detaug.integrations.ultralytics import weighted_criterion

    model, preds, batch = _ultralytics_case(cfg, seed=3)
    crit = weighted_criterion(model, "loss")

    def run(w):
        weights = torch.ones(7)
        weights[4] = w
        return crit(preds, {**batch, "weights": weights})

    out = {w: run(w) for w in (1.0, 0.6, 0.2)}
    a, b = _items(out[1.0]) - _items(out[0.6]), _items(out[0.6]) - _items(out[0.2])
    torch.testing.assert_close(a, b)  # equal steps of w, equal steps of loss
    torch.testing.assert_close(out[1.0][0] - out[0.6][0], out[0.6][0] - out[0.2][0])
    assert (a.abs() > 0).any()  # the object was matched and its weight reached the loss
    branches = [crit.one2many, crit.one2one] if hasattr(crit, "one2one") else [crit]
    for br in branches:  # the last call (w = 0.2) reached every branch's anchors of object 4
        assert br.assigner.last_anchor_weights.min() == pytest.approx(0.2)
