"""The example detector: a small anchor-free, objectness-free model in plain torch.

:class:`TinyDetector` predicts, for every cell of a stride-8 and a stride-16
grid, ``nc`` class logits and four ltrb distances (pixels from the cell
centre). :func:`make_anchors` gives those cells' centres in the model's
output order and :func:`decode` turns distances into boxes. Everything
random (the init) comes from a ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detaug.batch import DEFAULT_FILL

__all__ = ["STRIDES", "ConvBNAct", "Residual", "TinyDetector", "init_weights", "pad_to_stride", "make_anchors",
           "decode"]

#: Strides of the two prediction levels (the input side must be a multiple of the largest).
STRIDES = (8, 16)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU; ``k`` x ``k`` kernel, 'same' padding / ``s``."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(inplace=True),
        )


class Residual(nn.Module):
    """``x + conv3x3(conv3x3(x))`` at constant width ``c``: (B, c, H, W) -> (B, c, H, W)."""

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

    >>> m = TinyDetector(nc=3, width=4)
    >>> logits, dist = m(torch.zeros(2, 3, 32, 48))
    >>> logits.shape, dist.shape  # 4*6 stride-8 cells + 2*3 stride-16 cells
    (torch.Size([2, 30, 3]), torch.Size([2, 30, 4]))
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
    BatchNorm: weight 1, bias 0; the class branch's last bias of a
    :class:`TinyDetector`: ``-log((1 - prior) / prior)`` so every cell starts
    at score ``prior`` (RetinaNet's prior, which keeps the early background
    loss small).
    """
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior: expected a probability in (0, 1), got {prior}")
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


def pad_to_stride(images: torch.Tensor, stride: int = STRIDES[-1],
                  fill: float | Sequence[float] = DEFAULT_FILL / 255.0) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W') of the same dtype, H' and W' the next multiples of ``stride``.

    The padding goes bottom-right, like :func:`detaug.collate`'s, so box
    coordinates are unchanged; it is ``fill`` in the images' own scale (one
    value, or one per channel; default: collate's grey 114 as a float in
    [0, 1]). Returns ``images`` itself when nothing is needed.

    >>> x = pad_to_stride(torch.zeros(1, 3, 20, 32), fill=(0.1, 0.2, 0.3))
    >>> x.shape, x[0, :, -1, 0].tolist() == torch.tensor([0.1, 0.2, 0.3]).tolist()
    (torch.Size([1, 3, 32, 32]), True)
    """
    if stride < 1:
        raise ValueError(f"stride: expected >= 1, got {stride}")
    h, w = images.shape[-2:]
    ph, pw = -h % stride, -w % stride
    if ph == 0 and pw == 0:
        return images
    out = images.new_empty((*images.shape[:-2], h + ph, w + pw))
    if isinstance(fill, (int, float)):
        out.fill_(fill)
    else:
        values = torch.as_tensor(fill, dtype=images.dtype, device=images.device)
        if values.shape != (images.shape[-3],):
            raise ValueError(f"fill: expected one value or {images.shape[-3]} (one per channel), got {fill!r}")
        out.copy_(values.view(-1, 1, 1).expand_as(out))
    out[..., :h, :w] = images
    return out


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
    """ltrb distances (..., A, 4) from cell centres (A, 2) -> (..., A, 4) abs xyxy boxes (same dtype).

    >>> decode(torch.tensor([[8.0, 8.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]])).tolist()
    [[7.0, 6.0, 11.0, 12.0]]
    """
    return torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1)
