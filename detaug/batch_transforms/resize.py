"""OpenCV's ``cv2.resize`` on the device, in integers, painted patch by patch.

The OpenCV painter (:func:`detaug.canvas.paint_canvas`) draws a warp that
:func:`detaug.geometry.aligned_rect` places on whole pixels (the plans snap
axis-aligned warps so that they are) with one ``cv2.resize``, over the rect
:func:`detaug.canvas.resize_rects` gives. :func:`~detaug.batch_transforms.plan_batch.collate_plans`
ships those rects (``PlanBatch.warp_resize``, ``warp_rect``) and the
:data:`PATCH`-squares of the canvas each rect touches (:func:`rect_patches`);
:class:`DevicePainter <detaug.batch_transforms.painter.DevicePainter>` paints
them with :func:`resized_patches` and :func:`write_patches`, so a warp costs about its own area (a Mosaic
tile a quarter of the canvas), not the whole canvas.

The pixels are OpenCV's 8-bit bilinear resize (11-bit weights, the rounding
of its vector code), bit for bit, except in two cases OpenCV itself treats
apart, where they are within one grey level: a scale within about 1e-4 of one
(the OpenCV painter then warps: ``geometry._paste_resized``) and an exact 2x
downscale of both axes (OpenCV's resize switches to its area code there).

>>> import numpy as np
>>> resize = np.array([[True]]); rect = np.array([[[30, 0, 70, 40]]])
>>> warps, origins, counts = rect_patches(resize, rect, (1,), np.array([False]), np.array([False]), 64)
>>> origins.tolist(), counts  # x in [30, 64) touches two patch columns, y in [0, 40) two rows
([[0, 0], [32, 0], [0, 32], [32, 32]], (4,))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["PATCH", "rect_patches", "patch_pixels", "resized_patches", "write_patches"]

#: Side of the square canvas patches in which resize-mode warps are painted.
PATCH = 32


def rect_patches(resize: NDArray[np.bool_], rect: NDArray[np.int64], counts: Sequence[int],
                 flip_lr: NDArray[np.bool_], flip_ud: NDArray[np.bool_], size: int
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64], tuple[int, ...]]:
    """The :data:`PATCH`-squares of the canvas that each resize-mode warp's rect (clipped to it) touches.

    Args:
        resize: (C, K) bool, the warps painted by a resize.
        rect: (C, K, 4) int64 (x0, y0, x1, y1) canvas pixels they write, unflipped.
        counts: K ints, the canvas rows 0..counts[k]-1 that have a k-th warp.
        flip_lr, flip_ud: (C,) bool flips of each canvas row's plan.
        size: the canvas side S.

    Returns:
        (P,) int64 flat warp index ``row * K + k``, (P, 2) int64 (x, y)
        top-left pixel of each patch in the canvas's stored pixel order
        (stored column j holds unflipped column ``S - 1 - j`` when flipped),
        sorted by slot k, and the K patch counts.
    """
    n_k = resize.shape[1]
    warps: list[NDArray[np.int64]] = []
    origins: list[NDArray[np.int64]] = []
    per_slot = []
    for k in range(n_k):
        n = 0
        for r in np.flatnonzero(resize[: counts[k], k]):
            x0, y0, x1, y1 = (int(v) for v in np.clip(rect[r, k], 0, size))
            if x0 >= x1 or y0 >= y1:
                continue
            if flip_lr[r]:
                x0, x1 = size - x1, size - x0
            if flip_ud[r]:
                y0, y1 = size - y1, size - y0
            xs = np.arange(x0 // PATCH, (x1 - 1) // PATCH + 1, dtype=np.int64) * PATCH
            ys = np.arange(y0 // PATCH, (y1 - 1) // PATCH + 1, dtype=np.int64) * PATCH
            gy, gx = np.meshgrid(ys, xs, indexing="ij")
            origins.append(np.stack([gx.ravel(), gy.ravel()], 1))
            warps.append(np.full(gx.size, r * n_k + k, np.int64))
            n += gx.size
        per_slot.append(n)
    if not warps:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.int64), tuple(per_slot)
    return np.concatenate(warps), np.concatenate(origins), tuple(per_slot)


def patch_pixels(size: int, origin: torch.Tensor, flip_lr: torch.Tensor, flip_ud: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unflipped canvas column and row of every pixel of P patches: (P, T) int64 x and y.

    ``origin`` (P, 2) int64 stored-order top-left (x, y); ``flip_lr``/``flip_ud``
    (P,) bool of each patch's canvas (stored pixel j is unflipped ``size - 1 - j``).
    """
    j = torch.arange(PATCH, device=origin.device)
    xs, ys = origin[:, :1] + j, origin[:, 1:] + j
    return torch.where(flip_lr[:, None], size - 1 - xs, xs), torch.where(flip_ud[:, None], size - 1 - ys, ys)


def resized_patches(images: torch.Tensor, rows: torch.Tensor, cv_inv: torch.Tensor, crop: torch.Tensor,
                    rect: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``cv2.resize`` (bilinear, 8-bit: 11-bit weights, its vector rounding) bit for bit: (P, 3, T, T) uint8.

    ``images`` (U, Hmax, Wmax, 3) uint8 sources and ``rows`` (P,) int64 the one
    each patch reads; ``cv_inv`` (P, 2, 3), ``crop`` and ``rect`` (P, 4) of the
    patch's warp; ``x`` (P, T) and ``y`` (P, T) int64 unflipped canvas column
    and row of each patch pixel (:func:`patch_pixels`). Columns clamp their
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

    diag = cv_inv[:, :, :2].diagonal(dim1=1, dim2=2)
    scale = torch.where(diag > 0, diag, 1.0)
    size = crop[:, 2:] - crop[:, :2]
    xt, xw = taps((x - rect[:, :1]).to(torch.float64), scale[:, :1], crop[:, :1], size[:, :1], True)
    yt, yw = taps((y - rect[:, 1:2]).to(torch.float64), scale[:, 1:], crop[:, 1:2], size[:, 1:], False)
    i, lines = rows[:, None, None], yt[:, :, :, None]  # (2, P, T, 1): the two line taps
    # the horizontal pass of both lines: (2, P, T, T, 3) int32, (a * w0 + b * w1) >> 4
    h = torch.mul(images[i, lines, xt[0, :, None, :]], xw[0, :, None, :, None])
    h.addcmul_(images[i, lines, xt[1, :, None, :]], xw[1, :, None, :, None]).bitwise_right_shift_(4)
    # vertical: ((h0 * w0) >> 16) + ((h1 * w1) >> 16), then (+ 2) >> 2; the + 2 rides in the first term as 2 << 16
    torch.addcmul(torch.tensor([2 << 16], dtype=torch.int32, device=images.device), h[0], yw[0, :, :, None, None],
                  out=h[0])
    h[1].mul_(yw[1, :, :, None, None])
    v = torch.add(*h.bitwise_right_shift_(16), out=h[0])
    out = torch.empty(v.shape, dtype=torch.uint8, device=v.device)
    return torch.bitwise_right_shift(v, 2, out=out).permute(0, 3, 1, 2)


def write_patches(canvas: torch.Tensor, size: int, val: torch.Tensor, rect: torch.Tensor, canvas_row: torch.Tensor,
                  origin: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
    """Write P patches' pixels ``val`` (P, 3, T, T) uint8 into ``canvas`` where they fall in their ``rect``, in place.

    ``canvas``: (C, 3, Sp, Sp) uint8, Sp the canvas side ``size`` rounded up
    to whole :data:`PATCH` es (pixels past ``size`` are never read). Per
    patch: its warp's ``rect`` (4,) int64, its ``canvas_row``, its
    stored-order ``origin`` (x, y) and its pixels' unflipped ``x``, ``y`` (P, T)
    (:func:`patch_pixels`). Other pixels keep the canvas. No two patches may
    be the same square of one canvas.
    """
    t = PATCH
    n_c, _, sp, _ = canvas.shape
    lo, hi = rect[:, :2].clamp(min=0), rect[:, 2:].clamp(max=size)
    cols = (x >= lo[:, :1]) & (x < hi[:, :1])
    lines = (y >= lo[:, 1:]) & (y < hi[:, 1:])
    grid = canvas.view(n_c, 3, sp // t, t, sp // t, t)
    py, px = origin[:, 1] // t, origin[:, 0] // t
    below = grid[canvas_row, :, py, :, px, :]  # (P, 3, T, T)
    grid[canvas_row, :, py, :, px, :] = torch.where((lines[:, :, None] & cols[:, None, :])[:, None], val, below)
