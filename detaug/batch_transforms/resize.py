"""OpenCV's ``cv2.resize`` on the device, in integers.

The OpenCV painter (:func:`detaug.canvas.paint_canvas`) draws a warp that
:func:`detaug.geometry.aligned_rect` places on whole pixels (the plans snap
axis-aligned warps so that they are) with one ``cv2.resize``, over the rect
:func:`detaug.canvas.resize_rects` gives; :func:`~detaug.batch_transforms.plan_batch.collate_plans`
ships those rects (``PlanBatch.warp_resize``, ``warp_rect``) and
:class:`DevicePainter <detaug.batch_transforms.painter.DevicePainter>` paints
them with :func:`resized`: OpenCV's 8-bit bilinear resize (11-bit weights,
the rounding of its vector code). The same pixels as OpenCV, except in two
cases OpenCV itself treats apart, where they are within one grey level: a
scale within about 1e-4 of one (the OpenCV painter then warps:
``geometry._paste_resized``) and an exact 2x downscale of both axes (OpenCV's
resize switches to its area code there).
"""

from __future__ import annotations

import torch

__all__ = ["resized"]


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
