"""PlanBatch: a batch of :class:`~detaug.plan.SamplePlan` and their source pixels as tensors, for a device painter.

:func:`collate_plans` is the ``collate_fn`` of a ``MixDataset(output="plan")``
loader: it turns B :class:`~detaug.mix_dataset.PlannedItem` into one
:class:`PlanBatch` of CPU tensors (pinned when asked) that
:class:`~detaug.batch_transforms.painter.DevicePainter` paints on any device.
Nothing is decided here: every number is read from the plans (labels
included), so painting replays the batch exactly.

Packing of the pixels: the batch's **unique** sources (a source read by
several plans -- same dataset index, same pixels -- is shipped once) in one
zero-padded uint8 tensor ``sources`` of shape (U, Hmax, Wmax, 3), HWC as
decoded. Why padded HWC rather than a flat byte buffer with offsets:
``grid_sample`` (the painter's warp) reads a rectangular (N, C, H, W) input,
so a padded pack is sampled as it is, with no per-pixel index arithmetic; HWC
makes collating one row-wise memcpy per source (no transpose on the CPU
worker) and the device-side view ``permute(0, 3, 1, 2)`` is free. The
padding costs bytes only for images of other shapes than the largest (sources
are served at long side ``img_size``), and the zeros are never read as pixels
(the painter masks every read by its crop).

Warps are laid out in *slots*: canvases (every canvas of every plan, C in all)
are sorted by their number of warps, descending, so slot ``k`` (the k-th warp
of a canvas) of the first ``slot_counts[k]`` canvases is one batched op over a
contiguous prefix; the painter loops over the (at most 9) slots, never over
canvases.

>>> import numpy as np
>>> from detaug.plan import CanvasPlan, SamplePlan, TileWarp
>>> from detaug.sample import Labels
>>> lab = Labels((4, 4), np.array([[0, 0, 2, 2]], np.float32), np.array([1]), np.ones(1, np.float32))
>>> warp = TileWarp(0, (0, 0, 4, 3), np.eye(3), whole=True)
>>> plan = SamplePlan(4, (114, 114, 114), (7,), ((3, 4),), (CanvasPlan((warp,)),), lab)
>>> img = np.zeros((3, 4, 3), np.uint8)
>>> pb = collate_plans([(plan, (img,)), (plan, (img,))])  # the same source twice: shipped once
>>> tuple(pb.sources.shape), pb.slot_counts, pb.batch_idx.tolist(), pb.batch_size
((1, 3, 4, 3), (2,), [0, 1], 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.data
from numpy.typing import NDArray

from detaug import geometry
from detaug.batch import Batch, Fill
from detaug.batch_transforms.patches import rect_patches
from detaug.canvas import resize_rects
from detaug.plan import SamplePlan
from detaug.transforms.photometric import hsv_luts

__all__ = ["PlanBatch", "collate_plans"]


@dataclass(frozen=True, eq=False)
class PlanBatch:
    """B plans and their unique source images, as tensors on one device (CPU as collated).

    Frames: canvas and output pixels have their centre at ``(j + 0.5, i + 0.5)``
    (continuous frame, pixel edges at integers, x right, y down), sources
    likewise. U unique sources, C canvases, K warp slots, M objects.

    Pixels:
        sources: (U, Hmax, Wmax, 3) uint8 RGB, zero-padded bottom-right; or
            (0, 0, 0, 3) when the items shipped no pixels
            (``MixDataset(output="plan", ship_sources=False)``): the painter
            then reads them from its :class:`~detaug.batch_transforms.source_bank.SourceBank`.
        source_sizes: (U, 2) int64 (h, w) of each source.
        source_ids: (U,) int64 dataset index of each source.

    Canvases (rows sorted by warp count, descending; ``slot_counts[k]`` rows have a k-th warp):
        warp_source: (C, K) int64 row of ``sources`` (0 where a canvas has no k-th warp).
        warp_inverse: (C, K, 3, 3) float32 canvas -> source map (the inverse of
            :attr:`TileWarp.matrix <detaug.canvas.TileWarp>`); identity where unused.
        warp_crop: (C, K, 4) int64 (x0, y0, x1, y1) source pixels the warp reads.
        warp_roi: (C, K, 4) int64 (x0, y0, x1, y1) canvas pixels it may write
            (the rectangle the OpenCV painter runs over; the whole canvas for
            ``whole`` warps).
        warp_cv_inverse: (C, K, 2, 3) float64: the inverse affine map OpenCV's
            warp call of this warp uses (destination pixel indices relative to
            the ROI -> crop pixel indices), for OpenCV 4's fixed-point rules.
        warp_whole: (C, K) bool: the warp writes every pixel of its ROI, the fill
            where its pre-image leaves the crop (otherwise: OpenCV's
            ``BORDER_TRANSPARENT``, the canvas below shows through).
        warp_resize: (C, K) bool: the OpenCV painter draws the warp with one
            ``cv2.resize`` (:func:`detaug.canvas.resize_rects`), over
        warp_rect: (C, K, 4) int64 (x0, y0, x1, y1) canvas pixels (zeros where not).
        resize_patch_warp, resize_patch_origin: (P,) int64 flat warp index
            ``row * K + k`` and (P, 2) int64 (x, y) top-left pixel, in the
            canvas's stored (flipped) pixel order, of every
            :data:`~detaug.batch_transforms.patches.PATCH`-square of a canvas
            that a resize-mode warp's rect (clipped to the canvas) touches;
            sorted by slot, ``slot_resize_patches[k]`` of slot k.
        sample_patch_warp, sample_patch_origin: the same for the other warps
            (painted by sampling) and their ROI; ``slot_sample_patches[k]`` of slot k.
        frame_inverse: (C, 3, 3) float32 canvas -> Mosaic frame map (identity if none).
        frame_side: (C,) float32 side of the frame square; 0 where the canvas has
            no frame clip (or its frame crosses a perspective horizon, which the
            OpenCV painter leaves to the warps).
        canvas_item: (C,) int64 the plan (0..B-1) each canvas belongs to.

    Items (B plans; subsets as row lists, their lengths known on the host):
        main_canvas: (B,) int64 canvas row of each plan's canvas 0.
        blend_rows, blend_canvas, blend_lam: (nb,) int64 plans, int64 partner
            canvas rows, float32 ``lam`` (MixUp: ``lam * image + (1 - lam) * partner``).
        paste_rows, paste_canvas, paste_rect: (np,) int64, (np,) int64, (np, 4)
            int64 (x1, y1, x2, y2) of the CutMix paste, in the unflipped frame.
        hsv_rows, hsv_luts: (nh,) int64 plans with a colour jitter and their
            (nh, 3, 256) uint8 tables (:func:`~detaug.transforms.photometric.hsv_luts`).
        flip_lr, flip_ud: (B,) bool.

    Labels (the plans', unchanged; a :class:`~detaug.batch.Batch` once painted):
        batch_idx (M,) int64, classes (M,) int64, boxes (M, 4) float32 xyxy
        pixels of the ``size x size`` output, weights (M,) float32, metas.

    Host-side: ``size`` (S), ``fill`` (r, g, b), ``slot_counts`` (K ints),
    ``slot_affine`` (K bools: every map of slot k is affine, so the painter
    skips the perspective divide), ``slot_resize_patches`` and
    ``slot_sample_patches`` (K ints each: the patches of slot k), ``slot_whole`` (K bools: some warp of slot k
    is ``whole``; empty: unknown, taken as True), ``any_frame`` (some canvas has
    a frame clip; the painter skips the clip otherwise), ``frame_affine`` (every
    ``frame_inverse`` is affine: no perspective divide in the clip),
    ``frame_aligned`` (every ``frame_inverse`` is affine and axis-aligned: the
    clip is a column test times a row test).
    """

    sources: torch.Tensor
    source_sizes: torch.Tensor
    source_ids: torch.Tensor
    warp_source: torch.Tensor
    warp_inverse: torch.Tensor
    warp_crop: torch.Tensor
    warp_roi: torch.Tensor
    warp_cv_inverse: torch.Tensor
    warp_whole: torch.Tensor
    warp_resize: torch.Tensor
    warp_rect: torch.Tensor
    resize_patch_warp: torch.Tensor
    resize_patch_origin: torch.Tensor
    sample_patch_warp: torch.Tensor
    sample_patch_origin: torch.Tensor
    frame_inverse: torch.Tensor
    frame_side: torch.Tensor
    canvas_item: torch.Tensor
    main_canvas: torch.Tensor
    blend_rows: torch.Tensor
    blend_canvas: torch.Tensor
    blend_lam: torch.Tensor
    paste_rows: torch.Tensor
    paste_canvas: torch.Tensor
    paste_rect: torch.Tensor
    hsv_rows: torch.Tensor
    hsv_luts: torch.Tensor
    flip_lr: torch.Tensor
    flip_ud: torch.Tensor
    batch_idx: torch.Tensor
    classes: torch.Tensor
    boxes: torch.Tensor
    weights: torch.Tensor
    size: int
    fill: Fill
    slot_counts: tuple[int, ...]
    slot_affine: tuple[bool, ...] = ()
    slot_whole: tuple[bool, ...] = ()
    slot_resize_patches: tuple[int, ...] = ()
    slot_sample_patches: tuple[int, ...] = ()
    any_frame: bool = True
    frame_affine: bool = False
    frame_aligned: bool = False
    metas: tuple[dict[str, Any], ...] = ()

    @property
    def batch_size(self) -> int:
        """B, the number of plans."""
        return int(self.main_canvas.shape[0])

    @property
    def num_canvases(self) -> int:
        """C, the number of canvases painted (every plan's, partners included)."""
        return int(self.canvas_item.shape[0])

    @property
    def device(self) -> torch.device:
        """The device of every tensor."""
        return self.sources.device

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)}

    def to(self, device: torch.device | str, non_blocking: bool = True) -> PlanBatch:
        """Every tensor on ``device`` (asynchronous from pinned memory)."""
        dev = torch.device(device)
        return dataclasses.replace(self, **{k: v.to(dev, non_blocking=non_blocking)
                                            for k, v in self._tensors().items()})

    def pin_memory(self) -> PlanBatch:
        """Every CPU tensor in page-locked memory (what ``DataLoader(pin_memory=True)`` calls).

        Unchanged without CUDA (nothing to pin for) or off the CPU.
        """
        if not torch.cuda.is_available() or self.device.type != "cpu":
            return self
        return dataclasses.replace(self, **{k: v.pin_memory() for k, v in self._tensors().items()})

    def labels_batch(self, images: torch.Tensor) -> Batch:
        """The :class:`~detaug.batch.Batch` of these labels with ``images`` (B, 3, S, S), on their device."""
        dev = images.device
        s = self.size
        return Batch(
            images=images,
            batch_idx=self.batch_idx.to(dev), classes=self.classes.to(dev),
            boxes=self.boxes.to(dev), weights=self.weights.to(dev),
            sizes=torch.full((self.batch_size, 2), s, dtype=torch.int64, device=dev),  # no host copy: no sync
            metas=self.metas, fill=self.fill,
        )


def _item(item: Any, i: int) -> tuple[SamplePlan, Sequence[NDArray[np.uint8]]]:
    try:
        plan, images = item
    except (TypeError, ValueError):
        raise ValueError(f"items[{i}]: expected a PlannedItem (plan, images), got {type(item).__name__}") from None
    if not isinstance(plan, SamplePlan):
        raise ValueError(f"items[{i}]: expected a SamplePlan first, got {type(plan).__name__}")
    if len(images) == 0 and plan.num_sources:
        return plan, images  # no pixels shipped: the painter's SourceBank has them
    try:
        plan.check_images(images)
    except ValueError as e:
        raise ValueError(f"items[{i}]: {e}") from None
    return plan, images


def _same_pixels(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> bool:
    if a.shape != b.shape:
        return False
    if a is b or (a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.strides == b.strides):
        return True
    return bool(np.array_equal(a, b))


def _cv_inverse(m: NDArray[np.float64], roi: tuple[int, int, int, int]) -> NDArray[np.float64]:
    """(2, 3): the inverse OpenCV's warpAffine takes of ``m`` (crop -> canvas, continuous) drawn over ``roi``.

    The OpenCV painter's call maps crop pixel indices to ROI pixel indices
    (pixel centres at integers); warpAffine inverts that in double, as here.
    """
    c = geometry.translation(-0.5 - roi[0], -0.5 - roi[1]) @ m @ geometry.translation(0.5, 0.5)
    d = c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22, a12, a21 = c[1, 1] * d, c[0, 0] * d, -c[0, 1] * d, -c[1, 0] * d
    return np.array([[a11, a12, -a11 * c[0, 2] - a12 * c[1, 2]], [a21, a22, -a21 * c[0, 2] - a22 * c[1, 2]]])


def _frame(canvas: Any) -> tuple[NDArray[np.float64], float]:
    """The canvas -> frame map and side, or (identity, 0) where the OpenCV painter does not clip.

    Mirrors :func:`~detaug.canvas.clear_outside_frame`'s one skip: a frame
    whose corners cross a perspective horizon is left to the warps.
    """
    if canvas.frame is None:
        return np.eye(3), 0.0
    a, side = canvas.frame, float(canvas.frame_side)
    corners = np.array([[0.0, 0.0], [side, 0.0], [side, side], [0.0, side]])
    if not geometry.is_affine(a) and np.any(corners @ a[2, :2] + a[2, 2] <= 1e-9):
        return np.eye(3), 0.0
    return np.linalg.inv(a), side


def collate_plans(items: Sequence[Any], pin_memory: bool = False) -> PlanBatch:
    """B :class:`~detaug.mix_dataset.PlannedItem` (or ``(plan, images)`` pairs) -> one CPU :class:`PlanBatch`.

    Args:
        items: B >= 1 items; every plan must have the same ``size`` and ``fill``
            (one Batch has one of each).
        pin_memory: allocate the tensors in page-locked memory (only with
            CUDA available; do it in the main process -- in DataLoader workers
            prefer ``DataLoader(pin_memory=True)``, which calls
            :meth:`PlanBatch.pin_memory`).

    Sources with the same dataset index and the same pixels (same array, or
    equal bytes) are packed once. Cost: one copy of each unique source, a few
    numpy ops per warp; no pixel is computed.
    """
    items = list(items)
    if not items:
        raise ValueError("items: cannot collate an empty list")
    pairs = [_item(it, i) for i, it in enumerate(items)]
    size, fill = pairs[0][0].size, pairs[0][0].fill
    for i, (p, _) in enumerate(pairs):
        if p.size != size or tuple(p.fill) != tuple(fill):
            raise ValueError(f"items[{i}]: size {p.size} and fill {p.fill} differ from items[0]'s {size}, {fill}")
    # unique sources: dataset index -> [(row, image)], pixels compared on a repeated index
    shipped = [len(images) > 0 for plan, images in pairs if plan.num_sources]
    if any(shipped) and not all(shipped):
        raise ValueError("items: some carry source pixels and some do not (ship_sources must be the same for all)")
    if shipped and not shipped[0]:  # ids only: one row per dataset index
        pairs = [(plan, [None] * plan.num_sources) for plan, _ in pairs]
    rows_of: dict[int, list[tuple[int, NDArray[np.uint8]]]] = {}
    unique: list[NDArray[np.uint8]] = []
    unique_ids: list[int] = []
    unique_sizes: list[tuple[int, int]] = []
    src_row: list[list[int]] = []
    for plan, images in pairs:
        rows = []
        for idx, img, hw in zip(plan.sources, images, plan.source_sizes, strict=True):
            if img is None:
                cands = rows_of.setdefault(int(idx), [])
                if not cands:
                    cands.append((len(unique_ids), None))
                    unique_ids.append(int(idx))
                    unique_sizes.append((int(hw[0]), int(hw[1])))
                rows.append(cands[0][0])
                continue
            cands = rows_of.setdefault(int(idx), [])
            row = next((r for r, other in cands if _same_pixels(img, other)), -1)
            if row < 0:
                row = len(unique)
                unique.append(img)
                unique_ids.append(int(idx))
                unique_sizes.append((int(img.shape[0]), int(img.shape[1])))
                cands.append((row, img))
            rows.append(row)
        src_row.append(rows)
    # canvases: (item, canvas k) -> kept warps (a warp whose ROI misses the canvas draws nothing)
    canvases = []  # (item, warps as (row, inverse, crop, roi, whole, affine), frame inverse, frame side)
    for b, (plan, _) in enumerate(pairs):
        for cv in plan.canvases:
            warps = []
            for w, rect in zip(cv.warps, resize_rects(cv), strict=True):
                x0, y0, x1, y1 = w.crop
                m = w.crop_map()
                if w.whole:
                    roi: tuple[int, int, int, int] | None = (0, 0, size, size)
                else:
                    roi = geometry.warped_bounds((y1 - y0, x1 - x0), m, (size, size))
                if roi is not None:
                    affine = geometry.is_affine(w.matrix)
                    cv_inv = _cv_inverse(m, roi)
                    warps.append((src_row[b][w.source], np.linalg.inv(w.matrix), w.crop, roi, w.whole, affine, cv_inv,
                                  rect))
            canvases.append((b, warps, *_frame(cv)))
    order = sorted(range(len(canvases)), key=lambda c: -len(canvases[c][1]))  # stable: ties keep plan order
    row_of_canvas = np.empty(len(canvases), np.int64)
    row_of_canvas[order] = np.arange(len(canvases))
    n_c = len(canvases)
    n_k = max((len(c[1]) for c in canvases), default=0)
    slot_counts = tuple(sum(1 for c in canvases if len(c[1]) > k) for k in range(n_k))
    slot_affine = tuple(all(c[1][k][5] for c in canvases if len(c[1]) > k) for k in range(n_k))
    slot_whole = tuple(any(c[1][k][4] for c in canvases if len(c[1]) > k) for k in range(n_k))
    w_src = np.zeros((n_c, n_k), np.int64)
    w_inv = np.tile(np.eye(3), (n_c, n_k, 1, 1))
    w_crop = np.zeros((n_c, n_k, 4), np.int64)
    w_roi = np.zeros((n_c, n_k, 4), np.int64)
    w_whole = np.zeros((n_c, n_k), bool)
    w_cv = np.zeros((n_c, n_k, 2, 3))
    w_resize = np.zeros((n_c, n_k), bool)
    w_rect = np.zeros((n_c, n_k, 4), np.int64)
    f_inv = np.tile(np.eye(3), (n_c, 1, 1))
    f_side = np.zeros(n_c, np.float32)
    c_item = np.zeros(n_c, np.int64)
    for r, c in enumerate(order):
        b, warps, finv, side = canvases[c]
        c_item[r], f_inv[r], f_side[r] = b, finv, side
        for k, (row, inv, crop, roi, whole, _, cv_inv, rect) in enumerate(warps):
            w_src[r, k], w_inv[r, k], w_crop[r, k], w_roi[r, k], w_whole[r, k] = row, inv, crop, roi, whole
            w_cv[r, k] = cv_inv
            if rect is not None:
                w_resize[r, k], w_rect[r, k] = True, rect
    frame_affine = bool(np.all(f_inv[:, 2] == (0.0, 0.0, 1.0)))
    p_lr = np.array([p.flip_lr for p, _ in pairs], bool)[c_item]
    p_ud = np.array([p.flip_ud for p, _ in pairs], bool)[c_item]
    rz_warp, rz_origin, slot_rz = rect_patches(w_resize, w_rect, slot_counts, p_lr, p_ud, int(size))
    # rect_patches keeps rows < slot_counts[k], the ones with a k-th warp: the others are the sampled warps
    sm_warp, sm_origin, slot_sm = rect_patches(~w_resize, w_roi, slot_counts, p_lr, p_ud, int(size))
    # items: first canvas of each plan, then its partners in plan order
    first = np.cumsum([0] + [len(p.canvases) for p, _ in pairs])[:-1]
    plans = [p for p, _ in pairs]
    blend = [(b, row_of_canvas[first[b] + p.blend.canvas], p.blend.lam) for b, p in enumerate(plans) if p.blend]
    paste = [(b, row_of_canvas[first[b] + p.paste.canvas], p.paste.rect) for b, p in enumerate(plans) if p.paste]
    hsv = [(b, hsv_luts(p.hsv)) for b, p in enumerate(plans) if p.hsv is not None]
    counts = [p.labels.num_objects for p in plans]
    lab = [p.labels for p in plans]
    # pixels: one memcpy of each unique source into the zero-padded pack
    hmax = max((im.shape[0] for im in unique), default=0)
    wmax = max((im.shape[1] for im in unique), default=0)
    pin = bool(pin_memory) and torch.cuda.is_available()
    shape = (len(unique), hmax, wmax, 3)
    if not pin and torch.utils.data.get_worker_info() is not None:
        # in a DataLoader worker, write the pack straight into shared memory (as default_collate
        # does), so sending the batch to the main process copies no pixel again
        pack = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(int(np.prod(shape))), 0, shape)
    else:
        pack = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
    pk = pack.numpy()
    for u, im in enumerate(unique):
        h, w = im.shape[:2]
        pk[u, :h, :w] = im
        pk[u, h:] = 0
        pk[u, :h, w:] = 0

    def t(a: Any, dtype: torch.dtype) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(a)).to(dtype)
        return x.pin_memory() if pin else x

    def col(rows: list[tuple[Any, ...]], j: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        return t(np.array([r[j] for r in rows]).reshape(shape), dtype)

    return PlanBatch(
        sources=pack,
        source_sizes=t(np.array(unique_sizes, np.int64).reshape(-1, 2), torch.int64),
        source_ids=t(np.array(unique_ids, np.int64), torch.int64),
        warp_source=t(w_src, torch.int64), warp_inverse=t(w_inv, torch.float32), warp_crop=t(w_crop, torch.int64),
        warp_roi=t(w_roi, torch.int64), warp_cv_inverse=t(w_cv, torch.float64), warp_whole=t(w_whole, torch.bool),
        warp_resize=t(w_resize, torch.bool), warp_rect=t(w_rect, torch.int64),
        resize_patch_warp=t(rz_warp, torch.int64), resize_patch_origin=t(rz_origin, torch.int64),
        sample_patch_warp=t(sm_warp, torch.int64), sample_patch_origin=t(sm_origin, torch.int64),
        frame_inverse=t(f_inv, torch.float32), frame_side=t(f_side, torch.float32), canvas_item=t(c_item, torch.int64),
        main_canvas=t(row_of_canvas[first], torch.int64),
        blend_rows=col(blend, 0, torch.int64, (-1,)), blend_canvas=col(blend, 1, torch.int64, (-1,)),
        blend_lam=col(blend, 2, torch.float32, (-1,)),
        paste_rows=col(paste, 0, torch.int64, (-1,)), paste_canvas=col(paste, 1, torch.int64, (-1,)),
        paste_rect=col(paste, 2, torch.int64, (-1, 4)),
        hsv_rows=col(hsv, 0, torch.int64, (-1,)), hsv_luts=col(hsv, 1, torch.uint8, (-1, 3, 256)),
        flip_lr=t([p.flip_lr for p in plans], torch.bool), flip_ud=t([p.flip_ud for p in plans], torch.bool),
        batch_idx=t(np.repeat(np.arange(len(plans)), counts), torch.int64),
        classes=t(np.concatenate([x.classes for x in lab]), torch.int64),
        boxes=t(np.concatenate([x.boxes for x in lab]).reshape(-1, 4), torch.float32),
        weights=t(np.concatenate([x.weights for x in lab]), torch.float32),
        size=int(size), fill=(int(fill[0]), int(fill[1]), int(fill[2])), slot_counts=slot_counts, slot_affine=slot_affine,
        slot_whole=slot_whole, slot_resize_patches=slot_rz, slot_sample_patches=slot_sm,
        any_frame=bool(np.any(f_side > 0)), frame_affine=frame_affine,
        frame_aligned=frame_affine and bool(np.all(f_inv[:, [0, 1], [1, 0]] == 0)), metas=tuple(dict(x.meta) for x in lab),
    )
