#!/usr/bin/env python
"""Train a tiny anchor-free detector on detaug batches, end to end.

How detaug feeds a trainer, in one file you can read top to bottom:

1. data: ``YoloDataset`` wrapped in ``MixDataset`` (Mosaic + random affine +
   flips + HSV, replayable per ``(seed, epoch, index)``), a
   ``torch.utils.data.DataLoader`` with ``collate_fn=detaug.batch.collate``
   and ``ds.set_epoch(epoch)`` at every epoch;
2. on the model's device: ``batch.to(device)``, then
   ``detaug.mixer.BatchMixer`` (MixUp / CutMix on the whole batch, images out
   as float32 in [0, 1]);
3. the model: a small YOLO-style detector in plain torch (conv/BN/SiLU
   backbone to stride 16, a top-down neck, a decoupled head shared by the
   stride-8 and stride-16 levels predicting per-cell class logits and ltrb
   distances, no objectness);
4. the loss: every cell whose centre lies inside a ground-truth box and
   within ``radius`` strides of its centre is assigned to the smallest such
   box (and every box gets at least the cell nearest its centre); the
   per-object weights (``batch.weights``, lowered by MixUp and CutMix) scale
   each assigned cell's classification target and its box-loss term through
   :func:`detaug.loss.weight_targets`;
5. at the end: predictions (score threshold + class-aware NMS) on a few val
   images drawn next to their labels with :mod:`detaug.viz`.

Every random number comes from an explicit generator (the model init, the
DataLoader's shuffling, the dataset's ``seed`` and the mixer's
``torch.Generator``), so a run is reproducible for a given ``--seed`` on a
given device.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "datasets" / "shapes" / "shapes.yaml"
DEFAULT_OUT = Path("out") / "train_example.png"

if str(ROOT) not in sys.path:  # run from a checkout without installing detaug
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from tqdm import tqdm  # noqa: E402

from detaug import YoloDataset  # noqa: E402
from detaug.batch import PAD_VALUE, Batch, collate  # noqa: E402
from detaug.loss import padded_gt_weights, weight_targets  # noqa: E402
from detaug.mixer import BatchMixer  # noqa: E402
from detaug.sample import Sample  # noqa: E402
from detaug.viz import draw_sample, make_grid, save_png, side_by_side  # noqa: E402

try:  # MixDataset is the augmenting wrapper; fall back to plain (resized) images without it.
    from detaug.config import AugmentConfig  # noqa: E402
    from detaug.data import MixDataset  # type: ignore[attr-defined]  # noqa: E402
except ImportError:  # pragma: no cover - only while detaug.data has no MixDataset
    MixDataset = None  # type: ignore[assignment, misc]

#: Strides of the two prediction levels (the input side must be a multiple of the largest).
STRIDES = (8, 16)


# ============================================================================ model
class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU; ``k`` x ``k`` kernel, 'same' padding / ``s``."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(inplace=True),
        )


class Residual(nn.Module):
    """``x + conv3x3(conv3x3(x))`` at constant width."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(c, c), ConvBNAct(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyDetector(nn.Module):
    """A small anchor-free, objectness-free detector (FCOS / YOLOv8-like head).

    Backbone: stride-2 ConvBNAct stages to stride 4, 8 and 16 (widths ``w, 2w,
    4w, 8w``), a residual block after each of the last three. Neck: the
    stride-16 map is projected to ``4w`` channels and added, upsampled, to the
    stride-8 map. Head: one decoupled head shared by both levels, a class
    branch (``nc`` logits per cell) and a box branch (4 distances per cell,
    left/top/right/bottom from the cell centre, ``softplus(x) * stride`` px).

    Args:
        nc: number of classes.
        width: base channel width ``w``.

    ``forward(images)`` takes (B, 3, H, W) float images in [0, 1] with H and W
    multiples of 16 and returns ``(cls_logits, dist)``: (B, A, nc) and (B, A,
    4) float, the A = H*W/64 + H*W/256 cells of the stride-8 level (row-major)
    followed by those of the stride-16 level; ``dist`` in input pixels.
    """

    def __init__(self, nc: int, width: int = 16) -> None:
        super().__init__()
        if nc < 1:
            raise ValueError(f"nc: expected >= 1 classes, got {nc}")
        if width < 4:
            raise ValueError(f"width: expected >= 4, got {width}")
        w = width
        self.nc = nc
        self.stem = nn.Sequential(ConvBNAct(3, w, 3, 2), ConvBNAct(w, 2 * w, 3, 2), Residual(2 * w))
        self.down8 = nn.Sequential(ConvBNAct(2 * w, 4 * w, 3, 2), Residual(4 * w))
        self.down16 = nn.Sequential(ConvBNAct(4 * w, 8 * w, 3, 2), Residual(8 * w))
        self.lateral16 = ConvBNAct(8 * w, 4 * w, 1)
        self.smooth8 = ConvBNAct(4 * w, 4 * w)
        self.cls_branch = nn.Sequential(ConvBNAct(4 * w, 4 * w), nn.Conv2d(4 * w, nc, 1))
        self.box_branch = nn.Sequential(ConvBNAct(4 * w, 4 * w), nn.Conv2d(4 * w, 4, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = images.shape[-2:]
        if h % STRIDES[-1] or w % STRIDES[-1]:
            raise ValueError(f"images: H and W must be multiples of {STRIDES[-1]}, got {h}x{w}")
        c4 = self.stem(images)
        c8 = self.down8(c4)
        p16 = self.lateral16(self.down16(c8))
        p8 = self.smooth8(c8 + F.interpolate(p16, scale_factor=2.0, mode="nearest"))
        cls_out, box_out = [], []
        for feat, stride in zip((p8, p16), STRIDES, strict=True):
            cls_out.append(self.cls_branch(feat).flatten(2).transpose(1, 2))  # (B, h*w, nc)
            box_out.append(F.softplus(self.box_branch(feat)).flatten(2).transpose(1, 2) * stride)
        return torch.cat(cls_out, 1), torch.cat(box_out, 1)


def init_weights(model: nn.Module, generator: torch.Generator, prior: float = 0.01) -> nn.Module:
    """Initialise every conv from ``generator`` (no global RNG); returns ``model``.

    Convs: Kaiming-uniform (the PyTorch default, drawn from ``generator``);
    BatchNorm: weight 1, bias 0; the class branch's last bias:
    ``-log((1 - prior) / prior)`` so every cell starts at score ``prior``
    (RetinaNet's prior, which keeps the early background loss small).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if isinstance(model, TinyDetector):
        last = model.cls_branch[-1]
        nn.init.constant_(last.bias, -math.log((1.0 - prior) / prior))
    return model


def pad_to_stride(images: torch.Tensor, stride: int = STRIDES[-1], value: float = PAD_VALUE / 255.0) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, H', W') with H', W' the next multiples of ``stride``.

    Padding goes bottom-right (like :func:`detaug.batch.collate`), so box
    coordinates are unchanged. Returns ``images`` itself when nothing is needed.
    """
    h, w = images.shape[-2:]
    ph, pw = -h % stride, -w % stride
    if ph == 0 and pw == 0:
        return images
    return F.pad(images, (0, pw, 0, ph), value=value)


def make_anchors(h: int, w: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres and strides of an ``h`` x ``w`` input, in the model's output order.

    Returns:
        points: (A, 2) float32 (x, y) cell centres in input pixels (continuous
            frame: cell (i, j) of stride s has its centre at ((j + 0.5) s, (i + 0.5) s)).
        strides: (A,) float32 the stride of each cell.

    >>> p, s = make_anchors(32, 16, "cpu")
    >>> p.shape, p[:3].tolist(), s.tolist()[-2:]
    (torch.Size([10, 2]), [[4.0, 4.0], [12.0, 4.0], [4.0, 12.0]], [16.0, 16.0])
    """
    pts, strs = [], []
    for s in STRIDES:
        ys = (torch.arange(h // s, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w // s, device=device, dtype=torch.float32) + 0.5) * s
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pts.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))
        strs.append(torch.full((gx.numel(),), float(s), device=device))
    return torch.cat(pts), torch.cat(strs)


def decode(points: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """ltrb distances (..., A, 4) from cell centres (A, 2) -> (..., A, 4) abs xyxy boxes."""
    return torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1)


# ============================================================================ targets
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
    :func:`detaug.loss.padded_gt_weights` lays out the weights.
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
        points: (A, 2) cell centres (x, y), input pixels.
        strides: (A,) stride of each cell.
        gt_boxes: (B, G, 4) abs xyxy.
        gt_mask: (B, G) bool real objects.
        radius: centre-sampling radius in strides.

    Returns:
        ``fg``: (B, A) bool foreground cells; ``gt_idx``: (B, A) int64 slot of
        the assigned box (0 for background cells).
    """
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


def giou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Generalised IoU of matching rows of (N, 4) xyxy boxes: (N,) in (-1, 1]."""
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
    """The loss of one batch: ``total = cls + box_gain * box`` (0-d tensors) and the fg count."""

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

    :func:`assign` matches cells to boxes; the classification target of a
    foreground cell is the one-hot of its box's class and its box term is
    ``1 - GIoU(pred, box)``; both are scaled by the box's weight with
    :func:`detaug.loss.weight_targets` (a MixUp object of weight 0.3 trains
    its cells towards score 0.3 and counts 0.3 in the box loss). Background
    cells train towards 0. Classification: BCE-with-logits summed over cells
    and classes; both terms are divided by the number of foreground cells
    (not by the sum of weights, so a weight lowers an object's pull in
    absolute terms).

    Args:
        cls_logits: (B, A, C) class logits.
        dist: (B, A, 4) predicted ltrb distances, pixels.
        points, strides: from :func:`make_anchors`.
        targets: from :func:`pad_targets`.
        box_gain: weight of the box term.
        radius: centre-sampling radius of :func:`assign`.
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


# ============================================================================ inference
def nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Exact greedy class-aware NMS without a per-box loop: indices kept, by descending score.

    Greedy NMS keeps box i (in score order) iff no *kept* higher-scored box of
    its class overlaps it by more than ``iou_thr``. That rule has exactly one
    solution, and iterating it from "keep all" fixes one more leading entry per
    round, so the vectorised iteration below reaches it (usually in a few rounds).

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
    (at most ``pre_nms`` by score), :func:`nms` (class-aware, or across classes
    with ``agnostic``), the ``max_det`` best. Boxes are clipped to the
    (unpadded) image.
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


# ============================================================================ training
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        history: total loss of every step, in order (floats).
        cls_history, box_history: its classification and box parts.
        model: the trained model (in eval mode, on the training device).
        names: class names of the dataset.
        seconds: wall time of the training loop (data loading included).
        augmented: whether batches came from ``MixDataset`` (False: plain resized images).
    """

    history: list[float]
    cls_history: list[float]
    box_history: list[float]
    model: TinyDetector
    names: list[str]
    seconds: float
    augmented: bool
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` / ``"auto"``: cuda when available, else cpu; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_dataset(data: str | Path, img_size: int, seed: int, mosaic: float = 1.0) -> Any:
    """The training source: ``MixDataset(YoloDataset(data), AugmentConfig(...), seed)``.

    MixUp and CutMix are left to the :class:`~detaug.mixer.BatchMixer` on the
    device (``mixup=0, cutmix=0`` here), so images are mixed once.
    ``MixDataset.set_epoch`` reaches persistent workers (the epoch is shared).
    Without ``MixDataset`` (older detaug) this is the plain ``YoloDataset``.
    """
    base = YoloDataset(data, split="train", img_size=img_size, progress=False)
    if MixDataset is None:  # pragma: no cover
        return base
    cfg = AugmentConfig(img_size=img_size, mosaic=mosaic, mixup=0.0, cutmix=0.0, degrees=0.0,
                        translate=0.1, scale=0.5, fliplr=0.5, flipud=0.0)
    return MixDataset(base, cfg, seed=seed)


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t)))


def train(
    data: str | Path = DEFAULT_DATA,
    steps: int = 300,
    batch_size: int = 16,
    img_size: int = 256,
    workers: int = 2,
    mixup: float = 0.3,
    cutmix: float = 0.3,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    width: int = 16,
    mosaic: float = 1.0,
    progress: bool = True,
) -> TrainResult:
    """Train :class:`TinyDetector` for ``steps`` optimiser steps; returns the loss history.

    The loop is the point of this example: ``ds.set_epoch(epoch)`` ->
    DataLoader(collate) -> ``batch.to(device)`` -> ``BatchMixer`` ->
    model -> :func:`detection_loss` with the mixed batch's weights -> AdamW
    (linear warm-up, cosine decay, gradient clipping at 10).
    """
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    if batch_size < 2:
        raise ValueError(f"batch_size: expected >= 2 (the mixer pairs images), got {batch_size}")
    if img_size < 32 or img_size % STRIDES[-1]:
        raise ValueError(f"img_size: expected a multiple of {STRIDES[-1]} >= 32, got {img_size}")
    if workers < 0:
        raise ValueError(f"workers: expected >= 0, got {workers}")
    dev = resolve_device(device)

    ds = build_dataset(data, img_size, seed, mosaic)
    names = list(getattr(ds, "names", None) or getattr(getattr(ds, "dataset", None), "names", []))
    if len(ds) < batch_size:
        raise ValueError(f"batch_size: {batch_size} is more than the {len(ds)} training images")
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
        pin_memory=dev.type == "cuda",
        generator=torch.Generator().manual_seed(seed),  # shuffling (and worker seeds) without global RNG
    )
    mixer = BatchMixer(mixup=mixup, cutmix=cutmix, output_dtype=torch.float32,
                       generator=torch.Generator(device=dev).manual_seed(seed))

    model = TinyDetector(len(names), width=width)
    init_weights(model, torch.Generator().manual_seed(seed))
    model.to(dev).train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.99))
    warmup = min(50, max(1, steps // 10))

    anchors: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    totals: list[torch.Tensor] = []
    parts: list[torch.Tensor] = []
    bar = tqdm(total=steps, desc="train", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    step, epoch = 0, 0
    while step < steps:
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        for batch in loader:
            if any(m.get("epoch", epoch) != epoch for m in batch.metas):  # a cheap self-check
                raise RuntimeError(f"the DataLoader served samples of epoch {batch.metas[0].get('epoch')} "
                                   f"during epoch {epoch}: set_epoch did not reach the workers")
            batch = mixer(batch.to(dev))  # MixUp / CutMix on the device; images float32 in [0, 1]
            images = pad_to_stride(batch.images)
            key = (images.shape[-2], images.shape[-1])
            if key not in anchors:
                anchors[key] = make_anchors(key[0], key[1], dev)
            points, strides = anchors[key]
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, steps, lr, warmup)
            cls_logits, dist = model(images)
            loss = detection_loss(cls_logits, dist, points, strides, pad_targets(batch))
            opt.zero_grad(set_to_none=True)
            loss.total.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            totals.append(loss.total.detach())
            parts.append(torch.stack([loss.cls, loss.box]))
            step += 1
            bar.update(1)
            if progress and (step % 10 == 0 or step == steps):
                recent = torch.stack(totals[-10:]).mean().item()
                bar.set_postfix(loss=f"{recent:.3f}", epoch=epoch)
            if step >= steps:
                break
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    p = torch.stack(parts).cpu()
    return TrainResult(
        history=torch.stack(totals).cpu().tolist(),
        cls_history=p[:, 0].tolist(),
        box_history=p[:, 1].tolist(),
        model=model,
        names=names,
        seconds=seconds,
        augmented=MixDataset is not None,
        extra={"epochs": epoch, "device": str(dev)},
    )


# ============================================================================ picture
def render_predictions(
    model: TinyDetector,
    data: str | Path = DEFAULT_DATA,
    img_size: int = 256,
    num: int = 6,
    conf: float = 0.3,
    split: str = "val",
) -> np.ndarray:
    """Labels (left) and predictions (right, tagged with their scores) of ``num`` images of ``split``.

    Predictions use class-agnostic NMS: one box per object, tagged with its best class.

    Returns an (H, W, 3) uint8 RGB grid, two pairs per row.
    """
    ds = YoloDataset(data, split=split, img_size=img_size, progress=False)
    samples = [ds[i] for i in range(min(num, len(ds)))]
    dev = next(model.parameters()).device
    batch = collate(samples).to(dev)
    dets = predict(model, batch.images.float() / 255.0, conf=conf, agnostic=True)
    names = ds.names
    tiles = []
    for s, d in zip(samples, dets, strict=True):
        h, w = s.image.shape[:2]
        keep = (d.boxes[:, 2] <= w) & (d.boxes[:, 3] <= h)  # drop boxes lying in the padding only
        b = d.boxes[keep].cpu().numpy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
        pred = Sample.create(s.image, boxes=b, classes=d.classes[keep].cpu().numpy(),
                             weights=d.scores[keep].clamp(1e-3, 1.0).cpu().numpy())
        name = Path(s.meta["path"]).name
        tiles.append(side_by_side(draw_sample(s.replace(polygons=None), names),
                                  draw_sample(pred, names),
                                  titles=(f"{name}: labels", f"predictions (score >= {conf})")))
    return make_grid(tiles, cols=2, pad=6)


# ============================================================================ CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_example.py",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  python tools/train_example.py --steps 300 --img-size 256 --mixup 0.3 --cutmix 0.3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"YOLO data yaml (default: {DEFAULT_DATA.relative_to(ROOT)})")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default: 300)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    p.add_argument("--img-size", type=int, default=256, help="training side, a multiple of 16 (default: 256)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default: 2)")
    p.add_argument("--mosaic", type=float, default=1.0, help="Mosaic probability (default: 1.0)")
    p.add_argument("--mixup", type=float, default=0.3, help="BatchMixer MixUp probability (default: 0.3)")
    p.add_argument("--cutmix", type=float, default=0.3, help="BatchMixer CutMix probability (default: 0.3)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default: 2e-3)")
    p.add_argument("--width", type=int, default=16, help="model base width (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of every generator (default: 0)")
    p.add_argument("--device", default="auto", help="'auto' (cuda if available, else cpu), 'cpu', 'cuda:0', ...")
    p.add_argument("--conf", type=float, default=0.3, help="score threshold of the drawn predictions (default: 0.3)")
    p.add_argument("--num-images", type=int, default=6, help="val images in the picture (default: 6)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"predictions PNG (default: {DEFAULT_OUT})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Train, draw predictions on val images, print the PNG path and the loss figures; returns 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.img_size < 32 or args.img_size % STRIDES[-1]:
        parser.error(f"--img-size must be a multiple of {STRIDES[-1]} >= 32, got {args.img_size}")
    if args.batch_size < 2:
        parser.error(f"--batch-size must be >= 2, got {args.batch_size}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    for name in ("mosaic", "mixup", "cutmix"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name} must be in [0, 1], got {getattr(args, name)}")
    if args.mixup + args.cutmix > 1.0:
        parser.error(f"--mixup + --cutmix must be <= 1, got {args.mixup + args.cutmix}")

    res = train(data=args.data, steps=args.steps, batch_size=args.batch_size, img_size=args.img_size,
                workers=args.workers, mixup=args.mixup, cutmix=args.cutmix, lr=args.lr, seed=args.seed,
                device=args.device, width=args.width, mosaic=args.mosaic, progress=not args.quiet)
    grid = render_predictions(res.model, args.data, args.img_size, args.num_images, args.conf)
    path = save_png(args.out, grid)
    k = min(10, len(res.history))
    first, last = float(np.mean(res.history[:k])), float(np.mean(res.history[-k:]))
    print(f"trained {len(res.history)} steps ({res.extra['epochs']} epochs) on {res.extra['device']} "
          f"in {res.seconds:.1f} s; augmented={res.augmented}")
    print(f"loss: mean of first {k} steps {first:.4f}, last {k} steps {last:.4f} "
          f"(cls {np.mean(res.cls_history[-k:]):.4f}, box {np.mean(res.box_history[-k:]):.4f})")
    print(f"predictions: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
