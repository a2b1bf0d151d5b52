"""Warps that are not resizes, painted on the device by sampling: per canvas patch, OpenCV 5's or 4's rules.

Every patch pixel centre goes through its warp's inverse map to a source
point, and ``grid_sample`` (bilinear, ``align_corners=False`` -- the
continuous frame with pixel centres at half integers, OpenCV's convention)
reads a 4-channel source: RGB zeroed outside the warp's crop, plus the crop's
indicator, whose sample is the weight ``cov`` of the taps inside the crop.
The pixel is ``rgb + (1 - cov) * below``, rounded: ``below`` is the fill for
``whole`` warps (``BORDER_CONSTANT``) and the canvas under the tile otherwise.

The sources of a warp slot are the slices of one volume (:func:`source_volume`)
and each patch samples its warp's slice: a trilinear ``grid_sample`` whose
depth coordinate lands exactly on the slice (the depth is a power of two, so
the normalised coordinate is exact and the next slice's weight exactly 0),
which is the bilinear sample of that source. So all patches of a slot, of
whatever warps, are one call.

OpenCV 5: float32 source points, taps outside a tile blend with the canvas
below (its ``BORDER_TRANSPARENT``), round half to even; a pixel outside the
warp's ROI gets a point far off every source (zero colour, zero coverage:
the canvas below is kept). OpenCV 4: source points on its fixed-point 1/32
pixel grid (affine maps computed exactly as its integer code does), a tile
writes where its top-left tap is inside the crop and replicates the crop's
last column and row, round half up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PatchWarps", "source_volume", "sample_patches", "map_points", "in_rect"]

#: A normalised grid_sample coordinate far outside every source (every tap out: zero colour, zero coverage).
_FAR = -1.0e4


def map_points(m: torch.Tensor, x: torch.Tensor, y: torch.Tensor, affine: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (x (n, 1, W), y (n, H, 1)) through (n, 3, 3) maps: (n, H, W) x and y.

    With ``affine`` the last row is taken as (0, 0, 1); otherwise the
    perspective divide, and points sent to infinity come back far outside
    every image.
    """
    def row(i: int) -> torch.Tensor:
        # (n, H, 1) + (n, 1, W) * a: the (n, H, W) result is written twice, not thrice
        return (m[:, i, 1, None, None] * y + m[:, i, 2, None, None]) + m[:, i, 0, None, None] * x

    if affine:
        return row(0), row(1)
    w = row(2)
    u, v = row(0).div_(w), row(1).div_(w)
    bad = ~(torch.isfinite(u) & torch.isfinite(v))
    far = torch.full((), -1e6, device=m.device)
    return torch.where(bad, far, u), torch.where(bad, far, v)


def in_rect(rect: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, H, W) bool: ``x`` (n, 1, W), ``y`` (n, H, 1) inside the (n, 4) rectangles ``[x0, x1) x [y0, y1)``."""
    r = rect[:, :, None, None]
    return (x >= r[:, 0]) & (x < r[:, 2]) & (y >= r[:, 1]) & (y < r[:, 3])


def _quantize(u: torch.Tensor) -> torch.Tensor:
    """Continuous coordinates moved to OpenCV 4's grid of 1/32 pixel (``INTER_BITS``), nearest, in the pixel-centre frame."""
    return u.sub(0.5).mul_(32.0).add_(0.5).floor_().div_(32.0).add_(0.5)


def _cv4_affine(m: torch.Tensor, roi: torch.Tensor, crop: torch.Tensor, x: torch.Tensor, y: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV 4's warpAffine source points, exactly: (n, H, W) float32 x and y in the continuous source frame.

    ``m``: (n, 2, 3) float64 inverse maps (:attr:`PlanBatch.warp_cv_inverse`);
    x (n, 1, W), y (n, H, 1) canvas pixel centres. OpenCV rounds each term to
    1/1024 (``AB_BITS``), then the sum to the 1/32 grid (``INTER_BITS``), in integers.
    """
    dx = x.to(torch.float64) - 0.5 - roi[:, 0, None, None]  # pixel indices relative to the ROI
    dy = y.to(torch.float64) - 0.5 - roi[:, 1, None, None]
    out = []
    for i in (0, 1):
        row = torch.round((m[:, i, 1, None, None] * dy + m[:, i, 2, None, None]) * 1024.0) + 16.0
        q = torch.floor((row + torch.round(m[:, i, 0, None, None] * dx * 1024.0)) / 32.0)  # 1/32 crop pixels
        out.append((q / 32.0 + (crop[:, i, None, None] + 0.5)).to(torch.float32))
    return out[0], out[1]


def source_volume(sources: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
    """A warp slot's n sources as the slices of a (1, 4, D, Hmax, Wmax) float32 volume, D the least power of two >= n.

    ``sources`` (n, Hmax, Wmax, 3) uint8, ``crop`` (n, 4) int64 (x0, y0, x1, y1)
    each warp reads. Slice i: RGB zeroed outside crop i, then the crop's
    indicator; slice n (if D > n) is zero (the next slice of the last one),
    the others past it are never read. The indicator is separable (a row vector times a
    column vector), so each channel group is written in one pass.
    """
    n, hmax, wmax, _ = sources.shape
    depth = 1 << max(n - 1, 0).bit_length()  # the least power of two >= n
    vol = torch.empty((4, depth, hmax, wmax), dtype=torch.float32, device=sources.device)
    if depth > n:
        vol[:, n].zero_()  # the last slice's neighbour: read with weight 0, so it must be finite
    c = crop[:, :, None, None]
    xs = torch.arange(wmax, device=sources.device)
    ys = torch.arange(hmax, device=sources.device)[:, None]
    cols = ((xs >= c[:, 0]) & (xs < c[:, 2])).to(torch.float32)  # (n, 1, Wmax)
    rows = ((ys >= c[:, 1]) & (ys < c[:, 3])).to(torch.float32)  # (n, Hmax, 1)
    torch.mul(rows, cols, out=vol[3, :n])
    torch.mul(sources.permute(3, 0, 1, 2), vol[3:, :n], out=vol[:3, :n])  # uint8 * float32 -> float32
    return vol[None]


@dataclass(frozen=True)
class PatchWarps:
    """The warp each of P patches samples (rows of :class:`~detaug.batch_transforms.plan_batch.PlanBatch`'s warp tensors).

    Attributes:
        inverse: (P, 3, 3) float32 canvas -> source maps.
        cv_inverse: (P, 2, 3) float64 OpenCV's inverse (OpenCV 4's rule).
        crop: (P, 4) int64 source pixels read. roi: (P, 4) int64 canvas pixels written.
        whole: (P,) bool. slice: (P,) int64 the warp's slice of the slot's volume.
        affine: every map is affine (no perspective divide). any_whole: some warp is ``whole``.
    """

    inverse: torch.Tensor
    cv_inverse: torch.Tensor
    crop: torch.Tensor
    roi: torch.Tensor
    whole: torch.Tensor
    slice: torch.Tensor
    affine: bool
    any_whole: bool


def _grid_v5(w: PatchWarps, x: torch.Tensor, y: torch.Tensor, hmax: int, wmax: int, z: torch.Tensor) -> torch.Tensor:
    """(P, T, T, 3) float32 normalised source points and slice ``z`` (P,), OpenCV 5's float rule (x (P, 1, T), y (P, T, 1) centres).

    Affine: the map composed with the source normalisation (float64, then
    float32), two broadcast adds written into the grid; perspective: the
    points through :func:`map_points`.
    """
    r = w.roi[:, :, None]
    col_out = ((x[:, 0] - 0.5 < r[:, 0]) | (x[:, 0] - 0.5 >= r[:, 2]))[:, None, :]  # (P, 1, T)
    row_out = ((y[:, :, 0] - 0.5 < r[:, 1]) | (y[:, :, 0] - 0.5 >= r[:, 3]))[:, :, None]  # (P, T, 1)
    if w.affine:
        # normalised source point = (m[i, 1] * y + m[i, 2]) + m[i, 0] * x, straight into the grid; the
        # far offset of a column (for x) or a line (for y) outside the ROI sends its points off every source
        inv = w.inverse.to(torch.float64)  # [[2 / wmax, 0, -1], [0, 2 / hmax, -1]] @ inv, row by row from host scalars
        m = torch.stack([inv[:, 0] * (2.0 / wmax) - inv[:, 2], inv[:, 1] * (2.0 / hmax) - inv[:, 2]], 1).to(torch.float32)
        grid = torch.empty((x.shape[0], y.shape[1], x.shape[2], 3), dtype=torch.float32, device=x.device)
        rx = m[:, 0, 1, None, None] * y + m[:, 0, 2, None, None]  # (P, T, 1)
        cx = torch.where(col_out, _FAR, m[:, 0, 0, None, None] * x)  # (P, 1, T)
        ry = torch.where(row_out, _FAR, m[:, 1, 1, None, None] * y + m[:, 1, 2, None, None])
        cy = m[:, 1, 0, None, None] * x
        torch.add(rx, cx, out=grid[..., 0])
        torch.add(ry, cy, out=grid[..., 1])
        grid[..., 2] = z[:, None, None]
        return grid
    u, v = map_points(w.inverse, x, y)
    far = (row_out | col_out).expand_as(u)
    u, v = u.mul_(2.0 / wmax).sub_(1.0).masked_fill_(far, _FAR), v.mul_(2.0 / hmax).sub_(1.0).masked_fill_(far, _FAR)
    return torch.stack([u, v, z[:, None, None].expand_as(u)], dim=-1)


def _grid_v4(w: PatchWarps, x: torch.Tensor, y: torch.Tensor, hmax: int, wmax: int, z: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV 4's rule: (P, T, T, 3) normalised source points and slice ``z``, and the (P, T, T) bool pixels written."""
    whole = w.whole[:, None, None]
    crop = w.crop[:, :, None, None].to(torch.float32) + 0.5  # first pixel centre, last + 1
    write = in_rect(w.roi, x - 0.5, y - 0.5)  # pixel indices in the ROI
    if w.affine:
        u, v = _cv4_affine(w.cv_inverse, w.roi, w.crop, x, y)
    else:
        u, v = map_points(w.inverse, x, y)
        u, v = _quantize(u), _quantize(v)  # source points on a 1/32 grid
    # a tile writes where its top-left tap is in ...
    write &= whole | ((u >= crop[:, 0]) & (u < crop[:, 2]) & (v >= crop[:, 1]) & (v < crop[:, 3]))
    # ... and replicates its last column and row
    u = torch.where(whole, u, torch.minimum(torch.maximum(u, crop[:, 0]), crop[:, 2] - 1.0))
    v = torch.where(whole, v, torch.minimum(torch.maximum(v, crop[:, 1]), crop[:, 3] - 1.0))
    u, v = u.mul(2.0 / wmax).sub_(1.0), v.mul(2.0 / hmax).sub_(1.0)
    return torch.stack([u, v, z[:, None, None].expand_as(u)], dim=-1), write


def sample_patches(volume: torch.Tensor, w: PatchWarps, x: torch.Tensor, y: torch.Tensor, below: torch.Tensor,
                   fill: torch.Tensor, opencv: int) -> torch.Tensor:
    """The P patches painted by their warps: (P, 3, T, T) uint8.

    ``volume`` from :func:`source_volume`; ``x`` (P, 1, T) and ``y`` (P, T, 1)
    float32 unflipped pixel centres of the patch pixels; ``below`` (P, 3, T, T)
    uint8 the canvas under them; ``fill`` (1, 3, 1, 1) float32.
    """
    _, _, depth, hmax, wmax = volume.shape
    v4 = opencv < 5
    z = (w.slice.to(torch.float32) * 2.0 + 1.0) / depth - 1.0  # exact: depth is a power of two
    grid, write = _grid_v4(w, x, y, hmax, wmax, z) if v4 else (_grid_v5(w, x, y, hmax, wmax, z), None)
    got = F.grid_sample(volume, grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    rgb, cov = got[:3].transpose(0, 1), got[3:].transpose(0, 1)  # (P, 3, T, T), (P, 1, T, T)
    base = torch.where(w.whole[:, None, None, None], fill, below) if w.any_whole else below
    val = torch.addcmul(rgb, base, 1.0 - cov)  # convex: no clamp
    val = val.add_(0.5).floor_() if v4 else val.round_()  # OpenCV 4 rounds half up, 5 half to even
    if write is not None:
        val = torch.where(write[:, None], val, below)
    return val.to(torch.uint8)  # exact: integer levels in 0..255
