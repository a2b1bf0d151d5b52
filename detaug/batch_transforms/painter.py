"""DevicePainter: a :class:`~detaug.batch_transforms.plan_batch.PlanBatch` painted with torch, on its device.

The batch-stage twin of :func:`detaug.paint.paint` (OpenCV, per sample): the
same painting program (:mod:`detaug.plan`), for the whole batch at once, with
a fixed number of batched torch calls -- a loop over warp slots (at most 9
Mosaic tiles) and over memory blocks on the CPU, never over samples, objects
or pixels. Labels are the plans' own (no box rule here).

How each step reproduces the OpenCV painter (OpenCV 5's rules; OpenCV 4's with ``opencv=4``):

* warps: for warp slot k of canvases ``0..slot_counts[k]``, every canvas
  pixel centre goes through the warp's inverse map to a source point, and
  ``grid_sample`` (bilinear, ``align_corners=False`` -- the continuous frame
  with pixel centres at half integers, OpenCV's convention) reads a 4-channel
  source: RGB zeroed outside the warp's crop, plus the crop's indicator. The
  indicator's sample is the weight ``cov`` of the taps inside the crop, and
  the pixel is ``rgb + (1 - cov) * below``, rounded: ``below`` is the fill for
  ``whole`` warps (``BORDER_CONSTANT``) and the canvas under the tile
  otherwise; written inside the rectangle the OpenCV painter runs over
  (``warp_roi``). OpenCV 5: float32 source points, taps outside a tile blend
  with the canvas below (its ``BORDER_TRANSPARENT``), round half to even.
  OpenCV 4: source points on its fixed-point 1/32 pixel grid (affine maps
  computed exactly as its integer code does), a tile writes where its
  top-left tap is inside the crop and replicates the crop's last column and
  row, round half up;
* warps the OpenCV painter draws with ``cv2.resize`` (axis-aligned, crop corner
  on a whole pixel: the plans snap them so) are painted by
  :mod:`~detaug.batch_transforms.resize` over the rects ``collate_plans`` ships
  (bit for bit but in the two cases that module names, within one level there);
* Mosaic frame clip: pixels whose centre maps outside the frame square get the fill;
* MixUp: ``floor(lam * a + (1 - lam) * b + 0.5)`` in float32, as
  :func:`~detaug.transforms.mixup.mixup_pixels`; CutMix: the partner canvas
  inside the rectangle;
* HSV: :func:`~detaug.batch_transforms.hsv.jitter_pixels` (OpenCV's 8-bit
  conversions) through the plans' tables, bit for bit, read from two tables
  that hsv.py's kernels fill once per device (every RGB colour -> HSV, every
  HSV triple -> RGB; the rule itself lives only in hsv.py);
* flips cost nothing: each canvas is painted in its plan's flipped pixel
  order (output pixel ``j`` holds unflipped pixel ``S - 1 - j``), so the
  frame test, the CutMix rectangle and the blend all see unflipped positions.

Memory traffic (the GPU is bandwidth bound): canvases are uint8 (integer
levels); sources are converted to float32 per slot in one pass (RGB masked by
the separable crop indicator); a pixel outside a tile's ROI gets a grid point
far off every source, so it samples zero colour and zero coverage and keeps
the canvas below (no write mask, no ``where``); the grid of an affine slot is
two broadcast adds of the map, pre-composed with the source normalisation.

Agreement with OpenCV on the CPU (tests/batch_transforms/test_painter.py,
textured 64 x 64 images): >= 99.7% of pixels identical with OpenCV 5.0 and
4.14, the rest 1 grey level off (float32 rounding), except a few after HSV,
where a 1-level difference can move the hue.

>>> import numpy as np
>>> from detaug.plan import CanvasPlan, SamplePlan, TileWarp
>>> from detaug.sample import Labels
>>> from detaug.batch_transforms.plan_batch import collate_plans
>>> lab = Labels((4, 4), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
>>> warp = TileWarp(0, (0, 0, 4, 4), np.diag([0.5, 0.5, 1.0]), whole=True)
>>> plan = SamplePlan(4, (114, 114, 114), (0,), ((4, 4),), (CanvasPlan((warp,)),), lab, flip_lr=True)
>>> batch = DevicePainter()(collate_plans([(plan, (np.full((4, 4, 3), 7, np.uint8),))]))
>>> batch.images[0, 0].tolist()
[[114, 114, 7, 7], [114, 114, 7, 7], [114, 114, 114, 114], [114, 114, 114, 114]]
"""

from __future__ import annotations

import cv2
import torch
import torch.nn.functional as F

from detaug.batch import Batch
from detaug.batch_transforms.hsv_tables import jitter
from detaug.batch_transforms.plan_batch import PlanBatch
from detaug.batch_transforms.resize import PATCH, patch_pixels, resized_patches, write_patches
from detaug.batch_transforms.source_bank import SourceBank

__all__ = ["DevicePainter", "CPU_STEP_PIXELS"]

#: Canvas pixels (summed over the canvases of a warp slot) painted per step on
#: the CPU, in whole lines, so that a step's float32 temporaries (~1 MB each)
#: stay in cache. Other devices paint a slot in one step. Read at every call
#: (tests shrink it).
CPU_STEP_PIXELS = 262144

#: Pixels of every jittered image per HSV step on the CPU (table reads stay in cache).
_HSV_STEP = 16384

#: A normalised grid_sample coordinate far outside every source (every tap out: zero colour, zero coverage).
_FAR = -1.0e4


def _centres(size: int, flip: torch.Tensor) -> torch.Tensor:
    """(n, size) float32 pixel-centre coordinates ``j + 0.5``, reversed (``size - j - 0.5``) where ``flip``."""
    c = torch.arange(size, device=flip.device, dtype=torch.float32) + 0.5
    return torch.where(flip[:, None], size - c, c)


def _map(m: torch.Tensor, x: torch.Tensor, y: torch.Tensor, affine: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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


def _in_rect(rect: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, H, W) bool: ``x`` (n, 1, W), ``y`` (n, H, 1) inside the (n, 4) rectangles ``[x0, x1) x [y0, y1)``."""
    r = rect[:, :, None, None]
    return (x >= r[:, 0]) & (x < r[:, 2]) & (y >= r[:, 1]) & (y < r[:, 3])


class DevicePainter:
    """Paints a :class:`PlanBatch` on its device: a :class:`~detaug.batch.Batch` of (B, 3, S, S) images.

    Args:
        output_dtype: ``torch.uint8`` (0..255, what :meth:`Batch.to_yolo`
            needs) or ``torch.float16`` (images / 255, in [0, 1]).
        bank: a :class:`~detaug.batch_transforms.source_bank.SourceBank` of
            the dataset the plans read, on the painter's device: batches
            collated from items without pixels (``ship_sources=False``) read
            their sources from it.
        opencv: the OpenCV major version whose warp rules to follow (None:
            the installed one, so both painters agree on a machine). 5 (and
            later): float source points, taps outside a tile blend with the
            canvas below, round half to even. 4: source points on a 1/32 pixel
            grid, a tile writes where its top-left tap is inside its crop and
            replicates its last column and row, round half up.

    Painting is a pure function of the PlanBatch (no randomness): a batch
    replays exactly. The input is never written into.
    """

    def __init__(self, output_dtype: torch.dtype = torch.uint8, opencv: int | None = None,
                 bank: SourceBank | None = None) -> None:
        if output_dtype not in (torch.uint8, torch.float16):
            raise ValueError(f"output_dtype: expected torch.uint8 or torch.float16, got {output_dtype!r}")
        if opencv is None:
            opencv = int(cv2.__version__.split(".")[0])
        if isinstance(opencv, bool) or not isinstance(opencv, int) or opencv < 4:
            raise ValueError(f"opencv: expected a major version >= 4 (or None: the installed one), got {opencv!r}")
        self.output_dtype = output_dtype
        self.opencv = opencv
        if bank is not None and not isinstance(bank, SourceBank):
            raise ValueError(f"bank: expected a SourceBank or None, got {type(bank).__name__}")
        self.bank = bank

    def __repr__(self) -> str:
        return f"DevicePainter(output_dtype={self.output_dtype}, opencv={self.opencv})"

    def __call__(self, batch: PlanBatch) -> Batch:
        """The painted Batch (images and labels on ``batch.device``)."""
        images = self.paint_images(batch)
        return batch.labels_batch(images)

    # ------------------------------------------------------------------ canvases
    def paint_canvases(self, batch: PlanBatch) -> torch.Tensor:
        """Every canvas of the batch: (C, 3, S, S) uint8 on ``batch.device``, rows as in ``batch``.

        Step 1 of the painting program (warps, then the Mosaic frame clip),
        each canvas in its plan's flipped pixel order.
        """
        if not isinstance(batch, PlanBatch):
            raise ValueError(f"batch: expected a PlanBatch, got {type(batch).__name__}")
        if batch.sources.shape[0] == 0 and batch.source_ids.numel():
            if self.bank is None:
                raise ValueError("batch: carries no source pixels (ship_sources=False); build the painter with "
                                 "bank=SourceBank.from_dataset(the dataset the plans read, device)")
            if self.bank.device != batch.device:
                raise ValueError(f"bank: on {self.bank.device}, the batch on {batch.device}")
        dev, s = batch.device, batch.size
        n_c = batch.num_canvases
        fill8 = torch.tensor(batch.fill, dtype=torch.uint8, device=dev).view(1, 3, 1, 1)
        sp = -(-s // PATCH) * PATCH  # resize-mode warps paint whole patches: the side rounded up to them
        canvas_p = fill8.expand(n_c, 3, sp, sp).contiguous()  # uint8: every canvas value is an integer level
        canvas = canvas_p[:, :, :s, :s]
        flip_lr = batch.flip_lr[batch.canvas_item]
        flip_ud = batch.flip_ud[batch.canvas_item]
        xs = _centres(s, flip_lr)[:, None, :]  # (C, 1, S)
        ys = _centres(s, flip_ud)[:, :, None]  # (C, S, 1)
        v4 = self.opencv < 5
        n_p = sum(batch.slot_patches)
        step = max(1, CPU_STEP_PIXELS // PATCH**2) if dev.type == "cpu" else max(1, n_p)
        # resize-mode patches read only sources: in one step (off the CPU), all of them before any slot
        ahead = self._resized(batch, 0, n_p, flip_lr, flip_ud) if 0 < n_p <= step else None
        p0 = 0
        for k, n in enumerate(batch.slot_counts):  # warp slots, not canvases
            if not batch.slot_sampled or batch.slot_sampled[k]:
                self._sample_slot(batch, k, n, canvas, fill8, xs, ys, v4)
            p1 = p0 + (batch.slot_patches[k] if batch.slot_patches else 0)
            step = max(1, p1 - p0) if ahead is not None else step
            for q in range(p0, p1, step):  # blocks of patches (one block off the CPU)
                q1 = min(q + step, p1)
                row, x, y, val = ahead if ahead is not None else self._resized(batch, q, q1, flip_lr, flip_ud)
                if ahead is not None:
                    row, x, y, val = row[q:q1], x[q:q1], y[q:q1], val[q:q1]
                wid = batch.patch_warp[q:q1]
                write_patches(canvas_p, s, val, batch.warp_rect.flatten(0, 1).index_select(0, wid), row,
                              batch.patch_origin[q:q1], x, y)
            p0 = p1
        return self._frame_clip(batch, canvas, fill8, flip_lr, flip_ud, xs, ys)

    def _sample_slot(self, batch: PlanBatch, k: int, n: int, canvas: torch.Tensor, fill8: torch.Tensor,
                     xs: torch.Tensor, ys: torch.Tensor, v4: bool) -> None:
        """Warp slot k of canvases 0..n-1 by sampling (the warps a resize does not paint), in place on ``canvas``."""
        s = batch.size
        fill = fill8.to(torch.float32)
        src = self._read(batch, k, n, self._sources(batch, k, n))  # (n, 4, Hmax, Wmax) float32
        rz = batch.warp_resize[:n, k, None]
        roi = torch.where(rz, torch.zeros_like(batch.warp_roi[:n, k]), batch.warp_roi[:n, k])  # resize: patches
        whole = (batch.warp_whole[:n, k] & ~batch.warp_resize[:n, k])[:, None, None]  # a whole canvas starts as fill
        any_whole = batch.slot_whole[k] if batch.slot_whole else True
        step = max(1, CPU_STEP_PIXELS // (n * s)) if batch.device.type == "cpu" else s
        for l0 in range(0, s, step):  # blocks of canvas lines (one block off the CPU)
            h = min(step, s - l0)
            y = ys[:n, l0 : l0 + h]
            below = canvas[:n, :, l0 : l0 + h]  # (n, 3, h, S) uint8 view
            if v4:
                got, write = self._sample_v4(batch, src, k, n, xs[:n], y, roi, whole)
            else:
                got = F.grid_sample(src, self._grid_v5(batch, src, k, n, xs[:n], y, roi),
                                    mode="bilinear", padding_mode="zeros", align_corners=False)
                write = None  # folded into the grid: unwritten pixels sample nothing (rgb = cov = 0)
            base = torch.where(whole[:, None], fill, below) if any_whole else below
            val = torch.addcmul(got[:, :3], base, 1.0 - got[:, 3:])  # convex: no clamp
            val = val.add_(0.5).floor_() if v4 else val.round_()  # OpenCV 4 rounds half up, 5 half to even
            if write is not None:
                val = torch.where(write[:, None], val, below)
            below.copy_(val)  # exact: integer levels in 0..255

    def _resized(self, batch: PlanBatch, lo: int, hi: int, flip_lr: torch.Tensor, flip_ud: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches lo..hi-1 of resize-mode warps: their canvas rows, pixels' unflipped x and y, and (P, 3, T, T) pixels."""
        wid = batch.patch_warp[lo:hi]
        row = wid // batch.warp_source.shape[1]

        def per_warp(t: torch.Tensor) -> torch.Tensor:
            return t.flatten(0, 1).index_select(0, wid)

        src_rows = per_warp(batch.warp_source)
        if batch.sources.shape[0] or self.bank is None:
            images = batch.sources
        else:  # ids only (ship_sources=False): the pixels are in the bank, on this device
            images, src_rows = self.bank.images, batch.source_ids.index_select(0, src_rows)
        x, y = patch_pixels(batch.size, batch.patch_origin[lo:hi], flip_lr.index_select(0, row),
                            flip_ud.index_select(0, row))
        val = resized_patches(images, src_rows, per_warp(batch.warp_cv_inverse), per_warp(batch.warp_crop),
                              per_warp(batch.warp_rect), x, y)
        return row, x, y, val

    @staticmethod
    def _grid_v5(batch: PlanBatch, src: torch.Tensor, k: int, n: int, x: torch.Tensor, y: torch.Tensor,
                 roi: torch.Tensor) -> torch.Tensor:
        """Slot k's (n, h, S, 2) float32 ``grid_sample`` grid of canvas lines l0..l0+h, OpenCV 5's float rule.

        ``x`` (n, 1, S), ``y`` (n, h, 1): unflipped pixel centres of the stored
        pixels. Affine slots: the map composed with the source normalisation
        (float64, then float32), two broadcast adds written into the grid;
        perspective slots: the points through :func:`_map`. Pixels outside the
        warp's ROI get a point far outside every source, so they sample zero
        colour and zero coverage (the canvas below is kept).
        """
        hmax, wmax = src.shape[-2], src.shape[-1]
        r = roi[:, :, None]
        xo = x[:, 0] - 0.5  # (n, S) unflipped pixel indices
        yo = y[:, :, 0] - 0.5  # (n, h)
        col_out = ((xo < r[:, 0]) | (xo >= r[:, 2]))[:, None, :]  # (n, 1, S)
        row_out = ((yo < r[:, 1]) | (yo >= r[:, 3]))[:, :, None]  # (n, h, 1)
        if batch.slot_affine[k]:
            # normalised source point = (m[i, 1] * y + m[i, 2]) + m[i, 0] * x, straight into the grid; the
            # far offset of a column (for x) or a line (for y) outside the ROI sends its points off every source
            t_in = torch.tensor([[2.0 / wmax, 0.0, -1.0], [0.0, 2.0 / hmax, -1.0]], dtype=torch.float64,
                                device=src.device)
            m = (t_in @ batch.warp_inverse[:n, k].to(torch.float64)).to(torch.float32)  # (n, 2, 3)
            grid = torch.empty((n, y.shape[1], x.shape[2], 2), dtype=torch.float32, device=src.device)
            rx = m[:, 0, 1, None, None] * y + m[:, 0, 2, None, None]  # (n, h, 1)
            cx = torch.where(col_out, _FAR, m[:, 0, 0, None, None] * x)  # (n, 1, S)
            ry = torch.where(row_out, _FAR, m[:, 1, 1, None, None] * y + m[:, 1, 2, None, None])
            cy = m[:, 1, 0, None, None] * x
            torch.add(rx, cx, out=grid[..., 0])
            torch.add(ry, cy, out=grid[..., 1])
            return grid
        u, v = _map(batch.warp_inverse[:n, k], x, y)
        grid = torch.stack([u.mul_(2.0 / wmax).sub_(1.0), v.mul_(2.0 / hmax).sub_(1.0)], dim=-1)
        return grid.masked_fill_((row_out | col_out)[..., None], _FAR)

    def _sample_v4(self, batch: PlanBatch, src: torch.Tensor, k: int, n: int, x: torch.Tensor, y: torch.Tensor,
                   roi: torch.Tensor, whole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """OpenCV 4's rule: (n, 4, h, S) samples and the (n, h, S) bool pixels the tile writes."""
        hmax, wmax = src.shape[-2], src.shape[-1]
        crop = batch.warp_crop[:n, k, :, None, None].to(torch.float32) + 0.5  # first pixel centre, last + 1
        write = _in_rect(roi, x - 0.5, y - 0.5)  # pixel indices in the ROI
        if batch.slot_affine[k]:
            u, v = _cv4_affine(batch.warp_cv_inverse[:n, k], roi, batch.warp_crop[:n, k], x, y)
        else:
            u, v = _map(batch.warp_inverse[:n, k], x, y)
            u, v = _quantize(u), _quantize(v)  # source points on a 1/32 grid
        # a tile writes where its top-left tap is in ...
        write &= whole | ((u >= crop[:, 0]) & (u < crop[:, 2]) & (v >= crop[:, 1]) & (v < crop[:, 3]))
        # ... and replicates its last column and row
        u = torch.where(whole, u, torch.minimum(torch.maximum(u, crop[:, 0]), crop[:, 2] - 1.0))
        v = torch.where(whole, v, torch.minimum(torch.maximum(v, crop[:, 1]), crop[:, 3] - 1.0))
        scale = torch.tensor([2.0 / wmax, 2.0 / hmax], device=src.device)
        grid = torch.stack([u, v], dim=-1).mul_(scale).sub_(1.0)
        return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False), write

    @staticmethod
    def _frame_clip(batch: PlanBatch, canvas: torch.Tensor, fill8: torch.Tensor, flip_lr: torch.Tensor,
                    flip_ud: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """The Mosaic frame clip, in place on the (C, 3, S, S) uint8 canvases: the fill where a centre leaves the frame."""
        if not batch.any_frame:
            return canvas
        framed = batch.frame_side > 0
        side = batch.frame_side[:, None, None]
        if batch.frame_aligned:  # u depends on x alone, v on y alone: a column test and a line test
            m = batch.frame_inverse
            u = m[:, 0, 0, None, None] * xs + m[:, 0, 2, None, None]  # (C, 1, S), as _map's sum with m[0, 1] = 0
            v = m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None]  # (C, S, 1)
            out = (~((u >= 0) & (u <= side)) | ~((v >= 0) & (v <= side))) & framed[:, None, None]
        else:
            u, v = _map(batch.frame_inverse, xs, ys, batch.frame_affine)
            out = ~((u >= 0) & (u <= side) & (v >= 0) & (v <= side)) & framed[:, None, None]
        return torch.where(out[:, None], fill8, canvas)

    def _sources(self, batch: PlanBatch, k: int, n: int) -> torch.Tensor:
        """Slot k's sources for canvases 0..n-1: (n, Hmax, Wmax, 3) uint8."""
        rows = batch.warp_source[:n, k]
        if batch.sources.shape[0] or self.bank is None:
            return batch.sources.index_select(0, rows)
        # ids only (ship_sources=False): the pixels are in the bank, on this device
        return self.bank.images.index_select(0, batch.source_ids.index_select(0, rows))

    def _read(self, batch: PlanBatch, k: int, n: int, src: torch.Tensor) -> torch.Tensor:
        """:meth:`_sources` (n, Hmax, Wmax, 3) as (n, 4, Hmax, Wmax) float32: RGB zeroed outside the crop + crop mask.

        The crop indicator is separable (a row vector times a column vector),
        so each of the two channel groups is written in one pass.
        """
        _, hmax, wmax, _ = src.shape
        crop = batch.warp_crop[:n, k, :, None, None, None]  # (n, 4, 1, 1, 1)
        xs = torch.arange(wmax, device=src.device)[None, None, :]
        ys = torch.arange(hmax, device=src.device)[None, :, None]
        cols = ((xs >= crop[:, 0]) & (xs < crop[:, 2])).to(torch.float32)  # (n, 1, 1, Wmax)
        rows = ((ys >= crop[:, 1]) & (ys < crop[:, 3])).to(torch.float32)  # (n, 1, Hmax, 1)
        out = torch.empty((n, 4, hmax, wmax), dtype=torch.float32, device=src.device)
        torch.mul(rows, cols, out=out[:, 3:])
        torch.mul(src.permute(0, 3, 1, 2), out[:, 3:], out=out[:, :3])  # uint8 * float32 -> float32
        return out

    # ------------------------------------------------------------------ images
    def paint_images(self, batch: PlanBatch) -> torch.Tensor:
        """The B output images: (B, 3, S, S) ``output_dtype`` on ``batch.device``."""
        canvas = self.paint_canvases(batch)  # (C, 3, S, S) uint8
        dev, s = batch.device, batch.size
        out = canvas.index_select(0, batch.main_canvas)  # (B, 3, S, S) uint8
        if batch.blend_rows.numel():  # float32 only for the blended rows
            lam = batch.blend_lam.view(-1, 1, 1, 1)
            rest = 1.0 - lam  # float32, as mixup_pixels
            a = out.index_select(0, batch.blend_rows).to(torch.float32).mul_(lam)
            a = torch.addcmul(a, canvas.index_select(0, batch.blend_canvas), rest)
            out.index_copy_(0, batch.blend_rows, a.add_(0.5).floor_().clamp_(max=255.0).to(torch.uint8))
        if batch.paste_rows.numel():
            rows = batch.paste_rows
            x = _centres(s, batch.flip_lr[rows])[:, None, :] - 0.5
            y = _centres(s, batch.flip_ud[rows])[:, :, None] - 0.5
            inside = _in_rect(batch.paste_rect, x, y)[:, None]
            out.index_copy_(0, rows, torch.where(inside, canvas.index_select(0, batch.paste_canvas),
                                                 out.index_select(0, rows)))
        if batch.hsv_rows.numel():
            rows = batch.hsv_rows
            every = len(rows) == batch.batch_size  # then rows are 0..B-1: jittered in place
            px = (out if every else out.index_select(0, rows)).view(len(rows), 3, s * s)
            step = _HSV_STEP if dev.type == "cpu" else s * s
            for p0 in range(0, s * s, step):  # blocks of memory, not images
                px[:, :, p0 : p0 + step] = jitter(px[:, :, p0 : p0 + step], batch.hsv_luts).transpose(1, 2)
            if not every:
                out.index_copy_(0, rows, px.view(len(rows), 3, s, s))
        if self.output_dtype == torch.uint8:
            return out
        return out.to(torch.float16).div_(255.0)
