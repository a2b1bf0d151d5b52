"""Canvas patches: the PATCH-squares of a canvas a warp touches, their pixels, and reading and writing them.

The device painter paints each warp over the patches of the canvas the
rectangle it writes touches (a Mosaic tile about a quarter of the canvas),
not over the whole canvas per warp slot. :func:`rect_patches` lists them on
the host (``collate_plans`` ships the lists in the PlanBatch), the rest index
the (C, 3, Sp, Sp) uint8 canvases, Sp the canvas side rounded up to whole patches.

>>> import numpy as np
>>> chosen = np.array([[True]]); rect = np.array([[[30, 0, 70, 40]]])
>>> warps, origins, counts = rect_patches(chosen, rect, (1,), np.array([False]), np.array([False]), 64)
>>> origins.tolist(), counts  # x in [30, 64) touches two patch columns, y in [0, 40) two rows
([[0, 0], [32, 0], [0, 32], [32, 32]], (4,))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["PATCH", "rect_patches", "patch_pixels", "read_patches", "write_patches"]

#: Side of the square canvas patches in which every warp is painted.
PATCH = 32


def rect_patches(chosen: NDArray[np.bool_], rect: NDArray[np.int64], counts: Sequence[int],
                 flip_lr: NDArray[np.bool_], flip_ud: NDArray[np.bool_], size: int
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64], tuple[int, ...]]:
    """The :data:`PATCH`-squares of the canvas that each chosen warp's rect (clipped to the canvas) touches.

    Args:
        chosen: (C, K) bool, the warps to list.
        rect: (C, K, 4) int64 (x0, y0, x1, y1) canvas pixels each writes, unflipped.
        counts: K ints, the canvas rows 0..counts[k]-1 that have a k-th warp.
        flip_lr, flip_ud: (C,) bool flips of each canvas row's plan.
        size: the canvas side S.

    Returns:
        (P,) int64 flat warp index ``row * K + k``, (P, 2) int64 (x, y)
        top-left pixel of each patch in the canvas's stored pixel order
        (stored column j holds unflipped column ``S - 1 - j`` when flipped),
        sorted by slot k, and the K patch counts.
    """
    n_c, n_k = chosen.shape
    live = chosen & (np.arange(n_c)[:, None] < np.asarray(counts, np.int64)[None, :])
    k, r = np.nonzero(live.T)  # slot-major, rows ascending within a slot
    x0, y0, x1, y1 = np.clip(rect[r, k], 0, size).T
    ok = (x0 < x1) & (y0 < y1)
    k, r, x0, y0, x1, y1 = k[ok], r[ok], x0[ok], y0[ok], x1[ok], y1[ok]
    lr, ud = flip_lr[r], flip_ud[r]
    x0, x1 = np.where(lr, size - x1, x0), np.where(lr, size - x0, x1)
    y0, y1 = np.where(ud, size - y1, y0), np.where(ud, size - y0, y1)
    px0, py0 = x0 // PATCH, y0 // PATCH
    nx, ny = (x1 - 1) // PATCH + 1 - px0, (y1 - 1) // PATCH + 1 - py0
    per_warp = nx * ny
    start = np.repeat(np.cumsum(per_warp) - per_warp, per_warp)
    j = np.arange(int(per_warp.sum()), dtype=np.int64) - start  # index of the patch within its warp, line by line
    nxr = np.repeat(nx, per_warp)
    origins = np.stack([(np.repeat(px0, per_warp) + j % nxr) * PATCH, (np.repeat(py0, per_warp) + j // nxr) * PATCH], 1)
    warps = np.repeat(r * n_k + k, per_warp).astype(np.int64)
    per_slot = tuple(int(v) for v in np.bincount(k, weights=per_warp, minlength=n_k).astype(np.int64))
    return warps, origins.astype(np.int64).reshape(-1, 2), per_slot


def patch_pixels(size: int, origin: torch.Tensor, flip_lr: torch.Tensor, flip_ud: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unflipped canvas column and row of every pixel of P patches: (P, T) int64 x and y.

    ``origin`` (P, 2) int64 stored-order top-left (x, y); ``flip_lr``/``flip_ud``
    (P,) bool of each patch's canvas (stored pixel j is unflipped ``size - 1 - j``).
    """
    j = torch.arange(PATCH, device=origin.device)
    xs, ys = origin[:, :1] + j, origin[:, 1:] + j
    return torch.where(flip_lr[:, None], size - 1 - xs, xs), torch.where(flip_ud[:, None], size - 1 - ys, ys)


def _grid(canvas: torch.Tensor) -> torch.Tensor:
    n_c, _, sp, _ = canvas.shape
    return canvas.view(n_c, 3, sp // PATCH, PATCH, sp // PATCH, PATCH)


def read_patches(canvas: torch.Tensor, canvas_row: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """P patches of the (C, 3, Sp, Sp) ``canvas``: (P, 3, T, T), a new tensor.

    ``canvas_row`` (P,) int64 and ``origin`` (P, 2) int64 stored-order (x, y) top-left pixels.
    """
    return _grid(canvas)[canvas_row, :, origin[:, 1] // PATCH, :, origin[:, 0] // PATCH, :]


def write_patches(canvas: torch.Tensor, canvas_row: torch.Tensor, origin: torch.Tensor, val: torch.Tensor) -> None:
    """Write ``val`` (P, 3, T, T) uint8 into the P patches of ``canvas`` (as :func:`read_patches`), in place.

    No two patches may be the same square of one canvas.
    """
    _grid(canvas)[canvas_row, :, origin[:, 1] // PATCH, :, origin[:, 0] // PATCH, :] = val
