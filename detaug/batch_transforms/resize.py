"""OpenCV's ``cv2.resize`` on the device: which warps the OpenCV painter draws with it, and its pixels bit for bit.

The OpenCV painter (:func:`detaug.canvas.paint_canvas`) draws a warp that
:func:`detaug.geometry.aligned_rect` places on whole pixels (the plans snap
axis-aligned warps so that they are) with one ``cv2.resize``, over the pixels
the source covers by at least half, grown by a column / row at the seams
between tiles (:func:`detaug.canvas.seam_rects`). :class:`DevicePainter
<detaug.batch_transforms.painter.DevicePainter>` finds those warps with
:func:`resize_mode` and paints them with :func:`resized`: OpenCV's 8-bit
bilinear resize (11-bit weights, the rounding of its vector code), in integers.
"""

from __future__ import annotations

import torch

from detaug.batch_transforms.plan_batch import PlanBatch

__all__ = ["resize_mode", "resized"]


def resize_mode(batch: PlanBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Warps the OpenCV painter draws with ``cv2.resize``: (C, K) bool and their (C, K, 4) int64 written rects.

    The rules of :func:`detaug.geometry.aligned_rect` (axis-aligned, crop corner on
    a whole pixel, the pixels covered by at least half) and of
    :func:`detaug.canvas.seam_rects`, read from the float64 OpenCV inverses.
    """
    c, crop, roi = batch.warp_cv_inverse, batch.warp_crop, batch.warp_roi
    a, b, row2 = c[..., 0, 0], c[..., 1, 1], batch.warp_inverse[..., 2, :].to(torch.float64)
    skew = torch.maximum(c[..., 0, 1].abs(), c[..., 1, 0].abs())
    skew = torch.maximum(skew, (row2 - torch.tensor([0.0, 0.0, 1.0], device=c.device, dtype=c.dtype)).abs().amax(-1))
    k = torch.stack([1.0 / a, 1.0 / b], -1)  # (C, K, 2) scales
    o = roi[..., :2] + 0.5 - (c[..., :, 2] + 0.5) * k  # where the crop's corner lands
    rz = (a > 0) & (b > 0) & (skew <= 1e-12) & ((o - o.round()).abs() <= 1e-6).all(-1)
    o = o.round()
    x0, y0, x1, y1 = torch.cat([o, o + torch.floor((crop[..., 2:] - crop[..., :2]) * k + (0.5 + 1e-8))], -1
                               ).to(torch.int64).unbind(-1)
    ok = rz[:, None, :]  # a seam no tile covers: one more column / row
    gx = (ok & (x0[:, None] == x1[..., None] + 1) & (y0[:, None] < y1[..., None]) & (y0[..., None] < y1[:, None]))
    gy = (ok & (y0[:, None] == y1[..., None] + 1) & (x0[:, None] < x1[..., None]) & (x0[..., None] < x1[:, None]))
    return rz, torch.stack([x0, y0, x1 + gx.any(-1), y1 + gy.any(-1)], -1)


def resized(src: torch.Tensor, cv_inv: torch.Tensor, crop: torch.Tensor, rect: torch.Tensor, x: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
    """``cv2.resize`` (bilinear, 8-bit: 11-bit weights, its vector rounding) bit for bit: (n, 3, h, S) float32.

    ``src`` (n, Hmax, Wmax, 3) uint8 sources; ``cv_inv`` (n, 2, 3), ``crop`` and
    ``rect`` (n, 4) of resize-mode warps (others: any finite values); canvas
    pixel centres x (n, 1, S), y (n, h, 1). Columns clamp their weights at
    the crop's edges, rows only their taps, as OpenCV does.
    """
    def taps(d: torch.Tensor, scale: torch.Tensor, c0: torch.Tensor, size: torch.Tensor, col: bool):
        f = ((d + 0.5) * scale - 0.5).to(torch.float32)  # OpenCV: float from double
        s = torch.floor(f)
        f = f - s
        if col:
            f = torch.where((s < 0) | (s >= size - 1), 0.0, f)
            s = torch.where(s < 0, 0.0, torch.where(s >= size - 1, size - 1.0, s))
        w1, w0 = torch.round(f * 2048.0).to(torch.int32), torch.round((1.0 - f) * 2048.0).to(torch.int32)
        s = s.to(torch.int64)
        return c0 + s.clamp(min=0).minimum(size - 1), c0 + (s + 1).clamp(min=0).minimum(size - 1), w0, w1

    n = src.shape[0]
    scale = torch.where(cv_inv[:, :, :2].diagonal(dim1=1, dim2=2) > 0, cv_inv[:, :, :2].diagonal(dim1=1, dim2=2), 1.0)
    size = crop[:, 2:] - crop[:, :2]
    dx = (x.to(torch.float64) - 0.5 - rect[:, 0, None, None])[:, 0]  # (n, S) index in the resized crop
    dy = (y.to(torch.float64) - 0.5 - rect[:, 1, None, None])[:, :, 0]  # (n, h)
    xa, xb, a0, a1 = taps(dx, scale[:, :1], crop[:, :1], size[:, :1], True)
    ya, yb, b0, b1 = taps(dy, scale[:, 1:], crop[:, 1:2], size[:, 1:], False)
    i = torch.arange(n, device=src.device)[:, None, None]

    def row(yy: torch.Tensor) -> torch.Tensor:  # (n, h, S, 3) int32: the horizontal pass, weights 2048
        return (src[i, yy[:, :, None], xa[:, None, :]].to(torch.int32) * a0[:, None, :, None]
                + src[i, yy[:, :, None], xb[:, None, :]].to(torch.int32) * a1[:, None, :, None])

    v = (((row(ya) >> 4) * b0[:, :, None, None]) >> 16) + (((row(yb) >> 4) * b1[:, :, None, None]) >> 16)
    return ((v + 2) >> 2).clamp_(0, 255).permute(0, 3, 1, 2).to(torch.float32)
