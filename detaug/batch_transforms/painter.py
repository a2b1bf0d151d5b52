"""DevicePainter: a :class:`~detaug.batch_transforms.plan_batch.PlanBatch` painted with torch, on its device.

The batch-stage twin of :func:`detaug.paint.paint` (OpenCV, per sample): the
same painting program (:mod:`detaug.plan`), for the whole batch at once, with
a fixed number of batched torch calls -- a loop over warp slots (at most 9
Mosaic tiles) and over memory blocks on the CPU, never over samples, objects
or pixels. Labels are the plans' own (no box rule here).

How each step reproduces the OpenCV painter (OpenCV 5's rules; OpenCV 4's with ``opencv=4``):

* warps, slot by slot (slot k: the k-th warp of canvases ``0..slot_counts[k]``),
  each over the 32-pixel canvas patches the rectangle it writes touches
  (:mod:`~detaug.batch_transforms.patches`; ``collate_plans`` lists them), so
  a Mosaic tile costs about its own area, not the whole canvas:

  - warps the OpenCV painter draws with ``cv2.resize`` (axis-aligned, crop
    corner on a whole pixel: the plans snap Ultralytics' default warps so)
    are OpenCV's 8-bit resize in integers
    (:mod:`~detaug.batch_transforms.resize`), bit for bit but in the two
    cases that module names (within one level there), written inside the
    rect the OpenCV painter resizes into;
  - the others (rotation, shear, perspective) are sampled:
    :mod:`~detaug.batch_transforms.sampled_warps` (``grid_sample`` of the
    crop-masked source and its coverage, ``rgb + (1 - cov) * below``, with
    OpenCV 5's or 4's border and rounding rules);

* Mosaic frame clip: pixels whose centre maps outside the frame square get
  the fill (a column test and a line test when every frame is axis-aligned);
* MixUp: ``floor(lam * a + (1 - lam) * b + 0.5)`` in float32, as
  :func:`~detaug.transforms.mixup.mixup_pixels`; CutMix: the partner canvas
  inside the rectangle;
* HSV: :func:`~detaug.batch_transforms.hsv.jitter_pixels` (OpenCV's 8-bit
  conversions) through the plans' tables, bit for bit, by
  :func:`~detaug.batch_transforms.hsv_tables.jitter` (the rule itself lives
  only in hsv.py). It is the rule of OpenCV's vector code; OpenCV's scalar
  HSV -> RGB, which it runs on the last ``width % 32`` pixels of each row,
  puts some colours one level apart, so at widths that are no multiple of 32
  (never a YOLO size) a flipped image can differ there;
* flips cost nothing: each canvas is painted in its plan's flipped pixel
  order (output pixel ``j`` holds unflipped pixel ``S - 1 - j``), so the
  frame test, the CutMix rectangle and the blend all see unflipped positions.

Memory traffic (the GPU is bandwidth bound; ``tools/painter_traffic.py``
counts it): canvases are uint8 (integer levels); every warp works on its
patches only; off the CPU the resize patches of a whole batch go through each
integer pass together, before the slots; no step syncs with the host.

Agreement with OpenCV on the CPU (tests/batch_transforms/test_painter.py):
resized warps (Ultralytics' default augmentation), MixUp, CutMix, flips and
HSV are bit for bit; sampled warps leave >= 99.7% of pixels identical with
OpenCV 5.0 and 4.14, the rest 1 grey level off (float32 rounding), except a
few after HSV, where a 1-level difference can move the hue.

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

from detaug.batch import Batch
from detaug.batch_transforms.hsv_tables import jitter
from detaug.batch_transforms.patches import PATCH, patch_pixels, read_patches, write_patches
from detaug.batch_transforms.plan_batch import PlanBatch
from detaug.batch_transforms.resize import resized_patches
from detaug.batch_transforms.sampled_warps import (
    PatchWarps,
    in_rect,
    map_points,
    sample_patches,
    source_volume,
)
from detaug.batch_transforms.source_bank import SourceBank

__all__ = ["DevicePainter", "CPU_STEP_PIXELS"]

#: Canvas pixels painted per step on the CPU, in whole patches (256 of them by
#: default), so that a step's temporaries (a few MB) stay near the cache.
#: Other devices paint every resized patch of a batch in one step and the
#: sampled patches of a slot in one step. Read at every call (tests shrink it).
CPU_STEP_PIXELS = 262144

#: Pixels of every jittered image per HSV step on the CPU (table reads stay in cache).
_HSV_STEP = 16384

def _check_patch_counts(batch: PlanBatch) -> None:
    """The patch lists and their per-slot counts agree (host-side shapes only: no sync)."""
    for name, counts, warps in (("slot_resize_patches", batch.slot_resize_patches, batch.resize_patch_warp),
                                ("slot_sample_patches", batch.slot_sample_patches, batch.sample_patch_warp)):
        if len(counts) != len(batch.slot_counts) or sum(counts) != warps.shape[0]:
            raise ValueError(f"batch: {name} {counts} does not count the {warps.shape[0]} patches of "
                             f"{len(batch.slot_counts)} warp slots (build PlanBatches with collate_plans)")


def _per_warp(wid: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rows of a (C, K, ...) warp tensor ``t`` at flat warp indices ``wid`` (``row * K + k``): (P, ...)."""
    return t.flatten(0, 1).index_select(0, wid)


def _centres(size: int, flip: torch.Tensor) -> torch.Tensor:
    """(n, size) float32 pixel-centre coordinates ``j + 0.5``, reversed (``size - j - 0.5``) where ``flip``."""
    c = torch.arange(size, device=flip.device, dtype=torch.float32) + 0.5
    return torch.where(flip[:, None], size - c, c)


class DevicePainter:
    """Paints a :class:`PlanBatch` on its device: a :class:`~detaug.batch.Batch` of (B, 3, S, S) images.

    Args:
        output_dtype: ``torch.uint8`` (0..255, what :meth:`Batch.to_yolo`
            needs) or ``torch.float16`` (images / 255, in [0, 1]).
        bank: a :class:`~detaug.batch_transforms.source_bank.SourceBank` of
            the dataset the plans read, on the painter's device: batches
            collated from items without pixels (``ship_sources=False``) read
            their sources from it. The first such batch is checked against it
            (dataset indices in range, image sizes equal: one host sync), and
            again after ``bank`` is set to another one.
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
        self._checked_bank: SourceBank | None = None  # the bank the last check passed for

    def _check_bank(self, batch: PlanBatch) -> None:
        """The first batch painted from a bank (also one set later): its sources are the bank's images (indices and
        sizes; one host sync)."""
        self.bank.check_ids(batch.source_ids)
        if not torch.equal(self.bank.sizes.index_select(0, batch.source_ids), batch.source_sizes):
            raise ValueError("bank: its images' sizes differ from the plans' sources: build it from the dataset the "
                             "MixDataset wraps, at the same img_size")
        self._checked_bank = self.bank

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
            if self._checked_bank is not self.bank:
                self._check_bank(batch)
        dev, s = batch.device, batch.size
        n_c = batch.num_canvases
        _check_patch_counts(batch)
        fill8 = torch.empty((1, 3, 1, 1), dtype=torch.uint8, device=dev)
        for c, v in enumerate(batch.fill):  # from host scalars: no host-to-device copy (that would sync)
            fill8[:, c].fill_(v)
        sp = -(-s // PATCH) * PATCH  # warps paint whole patches: the side rounded up to them
        canvas_p = fill8.expand(n_c, 3, sp, sp).contiguous()  # uint8: every canvas value is an integer level
        fill = fill8.to(torch.float32)
        canvas = canvas_p[:, :, :s, :s]
        flip_lr = batch.flip_lr[batch.canvas_item]
        flip_ud = batch.flip_ud[batch.canvas_item]
        step = max(1, CPU_STEP_PIXELS // PATCH**2) if dev.type == "cpu" else None  # patches per step
        n_rz = sum(batch.slot_resize_patches)
        # resize-mode patches read only sources: in one step (off the CPU), all of them before any slot
        ahead = self._resized(batch, 0, n_rz, flip_lr, flip_ud) if n_rz and (step is None or n_rz <= step) else None
        r0 = m0 = 0
        for k, n in enumerate(batch.slot_counts):  # warp slots, not canvases
            m1 = m0 + (batch.slot_sample_patches[k] if batch.slot_sample_patches else 0)
            if m1 > m0:
                volume = source_volume(self._sources(batch, k, n), batch.warp_crop[:n, k])
                for q in range(m0, m1, step or m1 - m0):  # blocks of patches (one block off the CPU)
                    self._sample(batch, canvas_p, volume, k, q, min(q + (step or m1), m1), flip_lr, flip_ud, fill)
                del volume
            r1 = r0 + (batch.slot_resize_patches[k] if batch.slot_resize_patches else 0)
            for q in range(r0, r1, step or max(1, r1 - r0)):
                q1 = min(q + (step or r1), r1)
                part = [t[q:q1] for t in ahead] if ahead is not None else self._resized(batch, q, q1, flip_lr, flip_ud)
                self._write_resized(batch, canvas_p, q, q1, *part)
            m0, r0 = m1, r1
        xs = _centres(s, flip_lr)[:, None, :]  # (C, 1, S)
        ys = _centres(s, flip_ud)[:, :, None]  # (C, S, 1)
        canvas = canvas if sp == s else canvas.contiguous()
        return self._frame_clip(batch, canvas, fill8, flip_lr, flip_ud, xs, ys)

    @staticmethod
    def _write_resized(batch: PlanBatch, canvas_p: torch.Tensor, lo: int, hi: int, row: torch.Tensor,
                       rect: torch.Tensor, x: torch.Tensor, y: torch.Tensor, val: torch.Tensor) -> None:
        """Resize-mode patches lo..hi-1 (:meth:`_resized`) written inside their warps' rects, in place."""
        origin = batch.resize_patch_origin[lo:hi]
        a, b = rect[:, :2].clamp(min=0), rect[:, 2:].clamp(max=batch.size)
        inside = ((y >= a[:, 1:]) & (y < b[:, 1:]))[:, :, None] & ((x >= a[:, :1]) & (x < b[:, :1]))[:, None]
        write_patches(canvas_p, row, origin, torch.where(inside[:, None], val, read_patches(canvas_p, row, origin)))

    def _resized(self, batch: PlanBatch, lo: int, hi: int, flip_lr: torch.Tensor, flip_ud: torch.Tensor
                 ) -> tuple[torch.Tensor, ...]:
        """Patches lo..hi-1 of resize-mode warps: canvas rows, warp rects, pixels' unflipped x and y, (P, 3, T, T) pixels."""
        wid = batch.resize_patch_warp[lo:hi]
        row = wid // batch.warp_source.shape[1]

        images, src_rows = self._pixels(batch, _per_warp(wid, batch.warp_source))
        x, y = patch_pixels(batch.size, batch.resize_patch_origin[lo:hi], flip_lr.index_select(0, row),
                            flip_ud.index_select(0, row))
        rect = _per_warp(wid, batch.warp_rect)
        val = resized_patches(images, src_rows, _per_warp(wid, batch.warp_cv_inverse), _per_warp(wid, batch.warp_crop),
                              rect, x, y)
        return row, rect, x, y, val

    @staticmethod
    def _frame_clip(batch: PlanBatch, canvas: torch.Tensor, fill8: torch.Tensor, flip_lr: torch.Tensor,
                    flip_ud: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """The Mosaic frame clip of the (C, 3, S, S) uint8 canvases (a new tensor): the fill where a centre leaves the frame."""
        if not batch.any_frame:
            return canvas
        framed = batch.frame_side > 0
        side = batch.frame_side[:, None, None]
        if batch.frame_aligned:  # u depends on x alone, v on y alone: a column test and a line test
            m = batch.frame_inverse
            u = m[:, 0, 0, None, None] * xs + m[:, 0, 2, None, None]  # (C, 1, S), as map_points' sum with m[0, 1] = 0
            v = m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None]  # (C, S, 1)
            out = (~((u >= 0) & (u <= side)) | ~((v >= 0) & (v <= side))) & framed[:, None, None]
        else:
            u, v = map_points(batch.frame_inverse, xs, ys, batch.frame_affine)
            out = ~((u >= 0) & (u <= side) & (v >= 0) & (v <= side)) & framed[:, None, None]
        return torch.where(out[:, None], fill8, canvas)

    def _pixels(self, batch: PlanBatch, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the sources of ``batch`` rows ``rows`` are: (images (U, Hmax, Wmax, 3) uint8, their rows in it)."""
        if batch.sources.shape[0] or self.bank is None:
            return batch.sources, rows
        # ids only (ship_sources=False): the pixels are in the bank, on this device
        return self.bank.images, batch.source_ids.index_select(0, rows)

    def _sources(self, batch: PlanBatch, k: int, n: int) -> torch.Tensor:
        """Slot k's sources for canvases 0..n-1: (n, Hmax, Wmax, 3) uint8."""
        images, rows = self._pixels(batch, batch.warp_source[:n, k])
        return images.index_select(0, rows)

    def _sample(self, batch: PlanBatch, canvas_p: torch.Tensor, volume: torch.Tensor, k: int, lo: int, hi: int,
                flip_lr: torch.Tensor, flip_ud: torch.Tensor, fill: torch.Tensor) -> None:
        """Sampled patches lo..hi-1, all of slot k (:func:`~detaug.batch_transforms.sampled_warps.sample_patches`)."""
        wid = batch.sample_patch_warp[lo:hi]
        row = wid // batch.warp_source.shape[1]  # the canvas row, and the warp's slice of the slot's volume
        origin = batch.sample_patch_origin[lo:hi]

        x, y = patch_pixels(batch.size, origin, flip_lr.index_select(0, row), flip_ud.index_select(0, row))
        warps = PatchWarps(*(_per_warp(wid, t) for t in (batch.warp_inverse, batch.warp_cv_inverse, batch.warp_crop,
                                                          batch.warp_roi, batch.warp_whole)), row,
                           affine=batch.slot_affine[k], any_whole=batch.slot_whole[k] if batch.slot_whole else True)
        below = read_patches(canvas_p, row, origin)
        val = sample_patches(volume, warps, x.to(torch.float32)[:, None, :] + 0.5, y.to(torch.float32)[:, :, None] + 0.5,
                             below, fill, self.opencv)
        write_patches(canvas_p, row, origin, val)

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
            a.add_(canvas.index_select(0, batch.blend_canvas).to(torch.float32).mul_(rest))  # two roundings, no FMA
            out.index_copy_(0, batch.blend_rows, a.add_(0.5).floor_().clamp_(max=255.0).to(torch.uint8))
        if batch.paste_rows.numel():
            rows = batch.paste_rows
            x = _centres(s, batch.flip_lr[rows])[:, None, :] - 0.5
            y = _centres(s, batch.flip_ud[rows])[:, :, None] - 0.5
            inside = in_rect(batch.paste_rect, x, y)[:, None]
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
