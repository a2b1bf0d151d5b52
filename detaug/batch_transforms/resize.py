"""OpenCV's ``cv2.resize`` on the device, in integers, for canvas patches.

The OpenCV painter (:func:`detaug.canvas.paint_canvas`) draws a warp that
:func:`detaug.geometry.aligned_rect` places on whole pixels (the plans snap
axis-aligned warps so that they are) with one ``cv2.resize``, over the rect
:func:`detaug.canvas.resize_rects` gives. :func:`~detaug.batch_transforms.plan_batch.collate_plans`
ships those rects (``PlanBatch.warp_resize``, ``warp_rect``) and the canvas
patches each touches (:mod:`~detaug.batch_transforms.patches`);
:class:`DevicePainter <detaug.batch_transforms.painter.DevicePainter>`
computes their pixels with :func:`resized_patches` and writes those inside the rect.

The pixels are OpenCV's 8-bit bilinear resize (11-bit weights, the rounding
of its vector code), bit for bit, except in two cases OpenCV itself treats
apart, where they are within one grey level: a scale within about 1e-4 of one
(the OpenCV painter then warps: ``geometry._paste_resized``) and an exact 2x
downscale of both axes (OpenCV's resize switches to its area code there).
"""

from __future__ import annotations

import torch

__all__ = ["resized_patches"]


def resized_patches(images: torch.Tensor, rows: torch.Tensor, cv_inv: torch.Tensor, crop: torch.Tensor,
                    rect: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``cv2.resize`` (bilinear, 8-bit: 11-bit weights, its vector rounding) bit for bit: (P, 3, T, T) uint8.

    ``images`` (U, Hmax, Wmax, 3) uint8 sources and ``rows`` (P,) int64 the one
    each patch reads; ``cv_inv`` (P, 2, 3), ``crop`` and ``rect`` (P, 4) of the
    patch's warp; ``x`` (P, T) and ``y`` (P, T) int64 unflipped canvas column
    and row of each patch pixel (:func:`~detaug.batch_transforms.patches.patch_pixels`). Columns clamp their
    weights at the crop's edges, rows only their taps, as OpenCV does. Every
    value is at most 255 (a tap pair's weights sum to at most 2049, so the
    sum stays below 1021 * 4): no clamp. Both line taps go through each
    integer pass together, as one (2, P, T, T, 3) tensor.
    """
    def taps(d: torch.Tensor, scale: torch.Tensor, c0: torch.Tensor, size: torch.Tensor, col: bool):
        f = ((d + 0.5) * scale - 0.5).to(torch.float32)  # OpenCV: float from double
        s = torch.floor(f)
        f = f - s
        if col:
            f = torch.where((s < 0) | (s >= size - 1), 0.0, f)
            s = torch.where(s < 0, 0.0, torch.where(s >= size - 1, size - 1.0, s))
        w = torch.stack([torch.round((1.0 - f) * 2048.0), torch.round(f * 2048.0)]).to(torch.int32)
        s = s.to(torch.int64)
        return torch.minimum(torch.stack([s, s + 1]).clamp_(min=0), size - 1).add_(c0), w  # (2, P, T) each

    scale = cv_inv[:, :, :2].diagonal(dim1=1, dim2=2)  # > 0: resize-mode warps are axis-aligned scalings
    size = crop[:, 2:] - crop[:, :2]
    xt, xw = taps((x - rect[:, :1]).to(torch.float64), scale[:, :1], crop[:, :1], size[:, :1], True)
    yt, yw = taps((y - rect[:, 1:2]).to(torch.float64), scale[:, 1:], crop[:, 1:2], size[:, 1:], False)
    i, lines = rows[:, None, None], yt[:, :, :, None]  # (2, P, T, 1): the two line taps
    # the horizontal pass of both lines: (2, P, T, T, 3) int32, (a * w0 + b * w1) >> 4
    h = torch.mul(images[i, lines, xt[0, :, None, :]], xw[0, :, None, :, None])
    h.addcmul_(images[i, lines, xt[1, :, None, :]], xw[1, :, None, :, None]).bitwise_right_shift_(4)
    # vertical: ((h0 * w0) >> 16) + ((h1 * w1) >> 16), then (+ 2) >> 2; the + 2 rides in the first term as 2 << 16
    two = torch.full((1,), 2 << 16, dtype=torch.int32, device=images.device)  # from a host scalar: no copy, no sync
    torch.addcmul(two, h[0], yw[0, :, :, None, None], out=h[0])
    h[1].mul_(yw[1, :, :, None, None])
    v = torch.add(*h.bitwise_right_shift_(16), out=h[0])
    out = torch.empty(v.shape, dtype=torch.uint8, device=v.device)
    return torch.bitwise_right_shift(v, 2, out=out).permute(0, 3, 1, 2)
