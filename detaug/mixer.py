"""BatchMixer: detection MixUp and CutMix on a whole :class:`~detaug.batch.Batch`, on any device.

Each image ``i`` of the batch is mixed with a partner ``perm[i]`` from the
*original* batch (a random permutation without fixed points when B > 1), with
its own mode drawn independently: MixUp with probability ``mixup``, CutMix with
probability ``cutmix``, else unchanged. The arithmetic is exactly the
per-sample :class:`~detaug.transforms.mixup.MixUp` and
:class:`~detaug.transforms.cutmix.CutMix` (same lam clipping, rounding, box
cutting, visibility filter, weights and object order), vectorised over the
batch with torch: no Python loop over images or objects, every random draw
from one ``torch.Generator`` on the batch's device.

Host-device synchronisation: :meth:`BatchMixer.apply` makes exactly one, a
three-number read (how many objects survive, how many MixUp and how many
CutMix rows), because the output sizes depend on the data. Nothing is synced per
image or per object.

:func:`reference_mix` is the slow reference: the same params applied by
looping the per-sample transforms (tests and ``tools/benchmark.py`` compare
against it).

>>> import numpy as np, torch
>>> from detaug.sample import Sample
>>> from detaug.batch import collate
>>> a = Sample.create(np.full((8, 8, 3), 200, np.uint8), [[0, 0, 4, 4]], [1])
>>> b = Sample.create(np.full((8, 8, 3), 100, np.uint8), [[2, 2, 8, 8]], [2])
>>> batch = collate([a, b])
>>> params = BatchMixParams(perm=torch.tensor([1, 0]), mode=torch.tensor([MIXUP, NONE]),
...                         lam=torch.tensor([0.75, 1.0]), rect=torch.zeros(2, 4, dtype=torch.int64))
>>> out = BatchMixer().apply(batch, params)
>>> int(out.images[0, 0, 0, 0]), out.batch_idx.tolist(), out.classes.tolist(), out.weights.tolist()
(175, [0, 0, 1], [1, 2, 2], [0.75, 0.25, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from detaug.batch import PAD_VALUE, Batch, collate
from detaug.sample import Sample
from detaug.transforms.cutmix import CutMix, CutMixParams
from detaug.transforms.mixup import LAM_EPS, MixUp, MixUpParams

__all__ = [
    "BatchMixer",
    "BatchMixParams",
    "NONE",
    "MIXUP",
    "CUTMIX",
    "DEFAULT_SEED",
    "CPU_STEP_BYTES",
    "blend_rows",
    "mixup_weight",
    "paste_rows",
    "reference_mix",
    "sample_beta",
]

#: Per-image modes in :attr:`BatchMixParams.mode`.
NONE, MIXUP, CUTMIX = 0, 1, 2
#: Seed of the generators a BatchMixer creates when none is given.
DEFAULT_SEED = 0
# Marsaglia-Tsang gamma sampling: candidates drawn per value. Each is accepted
# with probability > 0.95, so all 16 failing has probability < 1e-20.
_GAMMA_CANDIDATES = 16


@dataclass(frozen=True, eq=False)
class BatchMixParams:
    """The parameters of one batch mix (tensors on the batch's device).

    Attributes:
        perm: (B,) int64 permutation; image ``i`` is mixed with ``perm[i]`` of
            the original batch (not checked: that would need a host sync).
        mode: (B,) int64: :data:`NONE`, :data:`MIXUP` or :data:`CUTMIX`.
        lam: (B,) float32: MixUp's share of the base image (clipped to
            [1e-3, 1 - 1e-3]) or CutMix's drawn lam; 1 for NONE rows.
        rect: (B, 4) int64 CutMix rectangle (x1, y1, x2, y2), integer pixel
            edges in the base image's frame, non-empty for CUTMIX rows; zeros
            elsewhere (an empty rectangle pastes nothing).
    """

    perm: torch.Tensor
    mode: torch.Tensor
    lam: torch.Tensor
    rect: torch.Tensor

    def __post_init__(self) -> None:
        b = self.perm.shape[0] if self.perm.ndim == 1 else -1
        if b < 0 or self.perm.dtype != torch.int64:
            raise ValueError(f"perm: expected (B,) int64, got {tuple(self.perm.shape)} {self.perm.dtype}")
        if self.mode.shape != (b,) or self.mode.dtype != torch.int64:
            raise ValueError(f"mode: expected ({b},) int64, got {tuple(self.mode.shape)} {self.mode.dtype}")
        if self.lam.shape != (b,) or not self.lam.is_floating_point():
            raise ValueError(f"lam: expected ({b},) float, got {tuple(self.lam.shape)} {self.lam.dtype}")
        if self.rect.shape != (b, 4) or self.rect.dtype != torch.int64:
            raise ValueError(f"rect: expected ({b}, 4) int64, got {tuple(self.rect.shape)} {self.rect.dtype}")
        object.__setattr__(self, "lam", self.lam.to(torch.float32))

    def to(self, device: torch.device | str) -> BatchMixParams:
        """The params on ``device``."""
        return BatchMixParams(
            perm=self.perm.to(device), mode=self.mode.to(device), lam=self.lam.to(device), rect=self.rect.to(device)
        )


# ----------------------------------------------------------------------------- sampling
def _sample_gamma(concentration: float, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n,) float32 draws of Gamma(concentration, 1), vectorised Marsaglia-Tsang.

    ``torch.distributions`` cannot take a generator, so this draws
    ``_GAMMA_CANDIDATES`` proposals per value from ``generator`` and keeps the
    first accepted one (no data-dependent loop, no host sync). Concentrations
    below 1 use ``Gamma(a) = Gamma(a + 1) * U ** (1 / a)``.
    """
    a = float(concentration)
    boost = a < 1.0
    d = (a + 1.0 if boost else a) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    k = _GAMMA_CANDIDATES
    x = torch.randn((n, k), generator=generator, device=device)
    u = torch.rand((n, k), generator=generator, device=device)
    v = (1.0 + c * x) ** 3
    ok = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-30)))
    first = torch.argmax(ok.to(torch.uint8), dim=1, keepdim=True)  # first accepted (0 if none: ~never)
    g = (d * v.clamp_min(0)).gather(1, first).squeeze(1)
    if boost:
        ub = torch.rand((n,), generator=generator, device=device)
        g = g * ub.clamp_min(1e-30) ** (1.0 / a)
    return g


def sample_beta(
    alpha: float, beta: float, n: int, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """(n,) float32 draws of Beta(alpha, beta) from ``generator`` (X / (X + Y), X, Y gamma).

    >>> g = torch.Generator().manual_seed(0)
    >>> lam = sample_beta(2.0, 5.0, 20000, g, "cpu")
    >>> bool(abs(lam.mean() - 2 / 7) < 0.01), bool(((lam > 0) & (lam < 1)).all())
    (True, True)
    """
    dev = torch.device(device)
    x = _sample_gamma(alpha, n, generator, dev)
    y = _sample_gamma(beta, n, generator, dev)
    return x / (x + y).clamp_min(1e-30)


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = torch.cuda.current_device() if a.index is None else a.index
        ib = torch.cuda.current_device() if b.index is None else b.index
        return ia == ib
    return a.index == b.index or a.index is None or b.index is None


class DeviceGenerators:
    """The ``torch.Generator`` a batch transform draws from on a batch's device.

    A user's generator is used as given, after checking it lives on the batch's
    device; without one, a generator per device is created on first use and
    seeded with ``seed``, so runs are reproducible. Shared by
    :class:`BatchMixer` and :class:`detaug.batch_hsv.BatchHSV`.
    """

    def __init__(self, generator: torch.Generator | None, seed: int) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator
        self.seed = int(seed)
        self._made: dict[str, torch.Generator] = {}

    def for_device(self, device: torch.device) -> torch.Generator:
        """The generator to use for a batch on ``device``."""
        if self.generator is not None:
            if not _same_device(torch.device(self.generator.device), device):
                raise ValueError(
                    f"generator: it is on {self.generator.device} but the batch is on {device}; "
                    "create the torch.Generator on the batch's device"
                )
            return self.generator
        key = str(device)
        if key not in self._made:
            self._made[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._made[key]


# ----------------------------------------------------------------------------- mixer
class BatchMixer:
    """Detection MixUp / CutMix over a batch, vectorised, on the batch's device.

    Args:
        mixup: probability that an image gets MixUp.
        cutmix: probability that an image gets CutMix (``mixup + cutmix <= 1``;
            the modes are exclusive: ``u < mixup`` -> MixUp, ``u < mixup +
            cutmix`` -> CutMix, else unchanged).
        mixup_alpha, mixup_beta: MixUp's ``lam ~ Beta(alpha, beta)``.
        cutmix_alpha: CutMix's ``lam ~ Beta(alpha, alpha)``.
        min_visible: CutMix drops objects whose visible fraction is below this.
        weight_by_visibility: CutMix multiplies weights by the visible fraction.
        generator: a ``torch.Generator`` on the device the batches will be on.
            ``None``: one is created per device on first use, seeded with
            ``seed``, so runs are reproducible.
        output_dtype: ``None`` keeps uint8 images; ``torch.float16`` /
            ``torch.float32`` / ``torch.bfloat16`` return images divided by 255
            (MixUp rows are then not rounded to integer grey levels).
        seed: seed of the lazily created generators.

    The output never shares or modifies the input's tensors. ``metas`` are
    kept as the base images' (the pairing stays on the device).
    """

    def __init__(
        self,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mixup_alpha: float = 1.5,
        mixup_beta: float = 1.5,
        cutmix_alpha: float = 1.0,
        min_visible: float = 0.3,
        weight_by_visibility: bool = True,
        generator: torch.Generator | None = None,
        output_dtype: torch.dtype | None = None,
        seed: int = DEFAULT_SEED,
    ) -> None:
        for name, p in (("mixup", mixup), ("cutmix", cutmix)):
            if not (0.0 <= p <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if mixup + cutmix > 1.0 + 1e-9:
            raise ValueError(f"cutmix: mixup + cutmix must be <= 1 (modes are exclusive), got {mixup} + {cutmix}")
        for name, v in (("mixup_alpha", mixup_alpha), ("mixup_beta", mixup_beta), ("cutmix_alpha", cutmix_alpha)):
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be > 0, got {v}")
        if not (0.0 <= min_visible <= 1.0):
            raise ValueError(f"min_visible must be in [0, 1], got {min_visible}")
        if output_dtype is not None and output_dtype not in (torch.float16, torch.float32, torch.bfloat16):
            raise ValueError(f"output_dtype must be None, torch.float16, torch.bfloat16 or torch.float32, got {output_dtype}")
        self.mixup = float(mixup)
        self.cutmix = float(cutmix)
        self.mixup_alpha = float(mixup_alpha)
        self.mixup_beta = float(mixup_beta)
        self.cutmix_alpha = float(cutmix_alpha)
        self.min_visible = float(min_visible)
        self.weight_by_visibility = bool(weight_by_visibility)
        self.output_dtype = output_dtype
        self._rng = DeviceGenerators(generator, seed)

    @property
    def generator(self) -> torch.Generator | None:
        """The generator given to the constructor (``None``: one per device, seeded with ``seed``)."""
        return self._rng.generator

    @property
    def seed(self) -> int:
        """Seed of the generators created per device when none was given."""
        return self._rng.seed

    def __repr__(self) -> str:
        return (
            f"BatchMixer(mixup={self.mixup}, cutmix={self.cutmix}, mixup_alpha={self.mixup_alpha}, "
            f"mixup_beta={self.mixup_beta}, cutmix_alpha={self.cutmix_alpha}, min_visible={self.min_visible}, "
            f"weight_by_visibility={self.weight_by_visibility}, output_dtype={self.output_dtype})"
        )

    def _generator_for(self, device: torch.device) -> torch.Generator:
        return self._rng.for_device(device)

    # ------------------------------------------------------------------ params
    def sample_params(self, batch: Batch) -> BatchMixParams:
        """Draw the pairing, modes, lams and rectangles for ``batch`` (on its device).

        Draw order (all from one generator): a permutation (the partners form
        one random cycle, so no image is its own partner when B > 1), B
        uniforms for the modes, B MixUp lams, B CutMix lams, B centre-x and B
        centre-y uniforms. CutMix rectangles follow
        :func:`detaug.transforms.cutmix.sample_rect` for each image's valid
        size; a CutMix row whose rectangle comes out empty becomes NONE, and so
        does every row when B == 1.
        """
        dev = batch.device
        g = self._generator_for(dev)
        n = batch.batch_size
        ar = torch.arange(n, device=dev)
        order = torch.randperm(n, generator=g, device=dev)
        perm = torch.empty_like(order)
        perm[order] = order.roll(-1)  # image order[k] is mixed with order[k + 1]: one cycle
        u = torch.rand((n,), generator=g, device=dev)
        lam_mix = sample_beta(self.mixup_alpha, self.mixup_beta, n, g, dev).clamp(LAM_EPS, 1.0 - LAM_EPS)
        lam_cut = sample_beta(self.cutmix_alpha, self.cutmix_alpha, n, g, dev)
        cx = torch.rand((n,), generator=g, device=dev)
        cy = torch.rand((n,), generator=g, device=dev)

        hw = batch.sizes.to(torch.float32)
        h, w = hw[:, 0], hw[:, 1]
        cut = torch.sqrt((1.0 - lam_cut).clamp_min(0.0))
        cut_w, cut_h = w * cut, h * cut
        cx, cy = cx * w, cy * h
        x1 = torch.minimum(torch.round(cx - cut_w / 2).clamp_min(0.0), w)
        x2 = torch.minimum(torch.round(cx + cut_w / 2).clamp_min(0.0), w)
        y1 = torch.minimum(torch.round(cy - cut_h / 2).clamp_min(0.0), h)
        y2 = torch.minimum(torch.round(cy + cut_h / 2).clamp_min(0.0), h)
        rect = torch.stack([x1, y1, x2, y2], dim=1).to(torch.int64)

        mode = torch.full((n,), NONE, dtype=torch.int64, device=dev)
        mode = torch.where(u < self.mixup + self.cutmix, CUTMIX, mode)
        mode = torch.where(u < self.mixup, MIXUP, mode)
        empty = (rect[:, 2] <= rect[:, 0]) | (rect[:, 3] <= rect[:, 1])
        mode = torch.where((mode == CUTMIX) & empty, NONE, mode)
        mode = torch.where(perm == ar, NONE, mode)
        lam = torch.where(mode == MIXUP, lam_mix, torch.where(mode == CUTMIX, lam_cut, 1.0))
        rect = torch.where((mode == CUTMIX)[:, None], rect, 0)
        return BatchMixParams(perm=perm, mode=mode, lam=lam.to(torch.float32), rect=rect)

    def __call__(self, batch: Batch) -> Batch:
        """``apply(batch, sample_params(batch))``."""
        return self.apply(batch, self.sample_params(batch))

    # ------------------------------------------------------------------ apply
    def apply(self, batch: Batch, params: BatchMixParams) -> Batch:
        """Mix ``batch`` with fixed ``params`` (a new Batch; the input is untouched).

        Objects of each output image: its own (MixUp: weight ``lam * w``;
        CutMix: the part the rectangle leaves, filtered and weighted by
        visibility) then its partner's (MixUp: weight ``(1 - lam) * w``;
        CutMix: clipped to the rectangle, filtered and weighted), each in
        their order; ``batch_idx`` stays sorted. ``sizes`` of MixUp rows
        become the larger of the two images' (as the per-sample MixUp's canvas).
        """
        if batch.images.dtype != torch.uint8:
            raise ValueError(f"batch.images: BatchMixer mixes uint8 images, got {batch.images.dtype}")
        dev = batch.device
        n = batch.batch_size
        if params.perm.shape[0] != n:
            raise ValueError(f"params: made for a batch of {params.perm.shape[0]} images, this one has {n}")
        if params.perm.device != dev:
            raise ValueError(f"params: on {params.perm.device}, the batch is on {dev}")
        perm, mode, lam, rect = params.perm, params.mode, params.lam, params.rect
        is_mix = mode == MIXUP
        rest = 1.0 - lam  # float32, as the per-sample MixUp

        # --- objects: M base candidates then M partner candidates.
        bi = batch.batch_idx
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(n, device=dev)
        row_p = inv[bi]  # the image whose partner owns each object
        boxes, w = batch.boxes, batch.weights
        mode_b, mode_p = mode[bi], mode[row_p]
        rect_b, rect_p = rect[bi].to(torch.float32), rect[row_p].to(torch.float32)

        cut, vis_b = _cut_boxes(boxes, rect_b)
        clip, vis_p = _paste_boxes(boxes, rect_p)
        cut_b, cut_p = mode_b == CUTMIX, mode_p == CUTMIX
        box_b = torch.where(cut_b[:, None], cut, boxes)
        box_p = torch.where(cut_p[:, None], clip, boxes)
        vw_b = w * vis_b if self.weight_by_visibility else w
        vw_p = w * vis_p if self.weight_by_visibility else w
        w_b = torch.where(mode_b == MIXUP, w * lam[bi], torch.where(cut_b, vw_b, w))
        w_p = torch.where(mode_p == MIXUP, w * rest[row_p], vw_p)
        keep_b = ~cut_b | _survives(box_b, vis_b, self.min_visible)
        keep_p = (mode_p == MIXUP) | (cut_p & _survives(box_p, vis_p, self.min_visible))

        all_boxes = torch.cat([box_b, box_p])
        all_w = torch.cat([w_b, w_p])
        all_cls = torch.cat([batch.classes, batch.classes])
        all_row = torch.cat([bi, row_p])
        keep = torch.cat([keep_b, keep_p])
        # Sort key: image, then base (0) before partner (1); dropped last. Stable.
        key = all_row * 2 + torch.cat([torch.zeros_like(bi), torch.ones_like(bi)])
        key = torch.where(keep, key, 2 * n)
        order = torch.argsort(key, stable=True)

        # The one host sync: how many objects survive, how many MixUp / CutMix rows.
        is_cut = mode == CUTMIX
        counts = torch.stack([keep.sum(), is_mix.sum(), is_cut.sum()]).tolist()
        n_keep, n_mix, n_cut = (int(v) for v in counts)
        sel = order[:n_keep]

        # --- images.
        images = _mix_images(
            batch.images,
            perm,
            _rows_where(is_mix, n_mix),
            _rows_where(is_cut, n_cut),
            lam,
            rest,
            rect,
            self.output_dtype,
        )
        sizes = torch.where(is_mix[:, None], torch.maximum(batch.sizes, batch.sizes[perm]), batch.sizes)
        return Batch(
            images=images,
            batch_idx=all_row[sel].contiguous(),
            classes=all_cls[sel].contiguous(),
            boxes=all_boxes[sel].contiguous(),
            weights=all_w[sel].contiguous(),
            sizes=sizes,
            metas=batch.metas,
        )

    def reference_apply(self, batch: Batch, params: BatchMixParams) -> Batch:
        """:func:`reference_mix` with this mixer's CutMix settings (slow; for tests and benchmarks)."""
        return reference_mix(
            batch, params, min_visible=self.min_visible, weight_by_visibility=self.weight_by_visibility
        )


# ----------------------------------------------------------------------------- kernels
def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)


def _cut_boxes(boxes: torch.Tensor, rect: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row :func:`detaug.transforms.cutmix.cut_boxes`: (M, 4) boxes, (M, 4) rects -> (new, visible)."""
    bx1, by1, bx2, by2 = boxes.unbind(1)
    rx1, ry1, rx2, ry2 = rect.unbind(1)
    area = _area(boxes)
    iw = (torch.minimum(bx2, rx2) - torch.maximum(bx1, rx1)).clamp_min(0)
    ih = (torch.minimum(by2, ry2) - torch.maximum(by1, ry1)).clamp_min(0)
    vis = torch.where(area > 0, 1.0 - iw * ih / area.clamp_min(1e-30), 0.0).clamp(0.0, 1.0)
    span_y = (ry1 <= by1) & (ry2 >= by2)
    span_x = (rx1 <= bx1) & (rx2 >= bx2)
    left = span_y & (rx1 <= bx1) & (rx2 > bx1)
    right = span_y & (rx2 >= bx2) & (rx1 < bx2)
    top = span_x & (ry1 <= by1) & (ry2 > by1)
    bottom = span_x & (ry2 >= by2) & (ry1 < by2)
    new = torch.stack(
        [
            torch.where(left, torch.minimum(rx2, bx2), bx1),
            torch.where(top, torch.minimum(ry2, by2), by1),
            torch.where(right, torch.maximum(rx1, bx1), bx2),
            torch.where(bottom, torch.maximum(ry1, by1), by2),
        ],
        dim=1,
    )
    return new, vis


def _paste_boxes(boxes: torch.Tensor, rect: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row :func:`detaug.transforms.cutmix.paste_boxes`: boxes clipped to rects, visible fraction."""
    lo = torch.cat([rect[:, :2], rect[:, :2]], dim=1)
    hi = torch.cat([rect[:, 2:], rect[:, 2:]], dim=1)
    clipped = torch.minimum(torch.maximum(boxes, lo), hi)
    area = _area(boxes)
    vis = torch.where(area > 0, _area(clipped) / area.clamp_min(1e-30), 0.0).clamp(0.0, 1.0)
    return clipped, vis


def _survives(boxes: torch.Tensor, vis: torch.Tensor, min_visible: float) -> torch.Tensor:
    positive = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return (vis >= min_visible) & (vis > 0) & positive


def _rows_where(flag: torch.Tensor, count: int) -> torch.Tensor:
    """The indices of the ``count`` True entries of ``flag`` (B,), found on the device (no sync)."""
    return torch.argsort((~flag).to(torch.uint8), stable=True)[:count]


#: Bytes of each image row that one step of the CPU image loop handles (rounded
#: to whole lines). The mixed rows' int16 temporaries of a step then stay in the
#: L2 cache. On a 2-core Xeon 16 and 32 KiB tie (49 vs 48 ms at B=64, 2 threads)
#: and larger steps lose; 32 KiB halves the number of ops, which matters when
#: other processes (DataLoader workers) share the cores. Other devices do the
#: whole image in one step.
CPU_STEP_BYTES = 32768


def _new_images_like(images: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous uint8 tensor of ``images``' shape on its device.

    On the CPU the memory comes from numpy, which asks Linux for transparent
    huge pages for large arrays (``madvise``), as the per-sample path's
    :func:`~detaug.batch.collate` does: a fresh 79 MB batch (64 x 640 x 640)
    then takes ~40 page faults instead of ~19,000, which was half of the cost
    of writing it. The tensor cannot be resized in place (no op here does).
    """
    if images.device.type == "cpu":
        return torch.from_numpy(np.empty(tuple(images.shape), dtype=np.uint8))
    return torch.empty(images.shape, dtype=torch.uint8, device=images.device)


def _words(*ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The uint8 tensors ``ts`` viewed as int64 words when all their layouts allow it, else as given.

    Copies and bitwise ops then handle 8 pixels per element; all or none are
    viewed, so they stay compatible with each other.
    """

    def fits(t: torch.Tensor) -> bool:
        return (
            t.stride(-1) == 1
            and t.shape[-1] % 8 == 0
            and t.storage_offset() % 8 == 0
            and all(st % 8 == 0 for st in t.stride()[:-1])
        )

    return tuple(t.view(torch.int64) for t in ts) if all(fits(t) for t in ts) else ts


def mixup_weight(lam: torch.Tensor) -> torch.Tensor:
    """(n,) float lam -> (n, 1) int16 ``round(lam * 256)`` in 0..256, the weight of :func:`blend_rows`."""
    return torch.round(lam.to(torch.float32) * 256.0).to(torch.int16)[:, None]


def blend_rows(dst: torch.Tensor, src: torch.Tensor, rows: torch.Tensor, partners: torch.Tensor,
               weight: torch.Tensor) -> None:
    """MixUp pixels in integer arithmetic: ``dst[k] = blend(src[rows[k]], src[partners[k]])``.

    Args:
        dst: (n, C) uint8, contiguous, written.
        src: (B, C) uint8 (any row stride), read.
        rows, partners: (n,) int64 rows of ``src``.
        weight: (n, 1) int16 ``L = round(lam * 256)`` (:func:`mixup_weight`).

    Each pixel is ``floor((a * L + b * (256 - L) + 128) / 256)``: the exact
    ``floor(lam * a + (1 - lam) * b + 0.5)`` of the per-sample MixUp with lam
    quantised to 1/256. ``|L / 256 - lam| <= 1/512`` moves the blend by at most
    ``255 / 512 < 0.5`` grey levels, so the result is within 1 grey level of the
    float32 one (tested for every (a, b) pair). The sum lies in 128..65408 and
    is computed in int16 with wrap-around (two's complement, as on every torch
    backend); the arithmetic shift and the truncating uint8 cast then give its
    bits 8..15 exactly. Four int16 passes instead of the float32 seven.

    >>> src = torch.tensor([[255, 0, 3, 200], [0, 255, 4, 100]], dtype=torch.uint8)
    >>> dst = torch.empty(2, 4, dtype=torch.uint8)
    >>> blend_rows(dst, src, torch.tensor([0, 1]), torch.tensor([1, 0]), mixup_weight(torch.tensor([0.5, 0.25])))
    >>> dst.tolist()
    [[128, 128, 4, 150], [191, 64, 3, 175]]
    """
    torch.index_select(src, 0, rows, out=dst)
    acc = dst.to(torch.int16)
    acc.mul_(weight).add_(128)
    torch.index_select(src, 0, partners, out=dst)
    acc.addcmul_(dst.to(torch.int16), 256 - weight)
    dst.copy_(acc.bitwise_right_shift_(8))


def paste_rows(dst: torch.Tensor, src: torch.Tensor, rows: torch.Tensor, partners: torch.Tensor,
               mask: torch.Tensor) -> None:
    """CutMix pixels: ``dst[k] = where(mask[k], src[partners[k]], src[rows[k]])`` with byte masks.

    Args:
        dst: (n, C) uint8, contiguous, written.
        src: (B, C) uint8 (any row stride), read.
        rows, partners: (n,) int64 rows of ``src``.
        mask: (n, C) uint8, contiguous, 255 where the partner shows, else 0.

    Computed as ``base ^ ((partner ^ base) & mask)`` on int64 words where the
    layout allows (:func:`_words`): exact, and no per-pixel condition.

    >>> src = torch.tensor([[1, 2, 3], [7, 8, 9]], dtype=torch.uint8)
    >>> dst = torch.empty(1, 3, dtype=torch.uint8)
    >>> paste_rows(dst, src, torch.tensor([0]), torch.tensor([1]), torch.tensor([[0, 255, 255]], dtype=torch.uint8))
    >>> dst.tolist()
    [[1, 8, 9]]
    """
    torch.index_select(src, 0, partners, out=dst)
    d, base, m = _words(dst, src.index_select(0, rows), mask)
    d.bitwise_xor_(base).bitwise_and_(m).bitwise_xor_(base)


def _mix_images(
    images: torch.Tensor,
    perm: torch.Tensor,
    mix_rows: torch.Tensor,
    cut_rows: torch.Tensor,
    lam: torch.Tensor,
    rest: torch.Tensor,
    rect: torch.Tensor,
    output_dtype: torch.dtype | None,
    step_bytes: int | None = None,
) -> torch.Tensor:
    """The mixed image tensor (a new one; ``images`` is only read).

    Memory traffic is the cost here, so every output byte is written once. On
    the CPU the whole batch goes through cache-sized blocks of lines: each step
    copies those lines of the unmixed rows, gathers those lines of the MixUp
    rows and their
    partners (:func:`blend_rows`) and of the CutMix rows and their partners
    (:func:`paste_rows`, with the rectangle as a byte mask built by broadcasting
    a per-row line mask against a per-row column mask), and writes the results
    back with one ``index_copy_``. The loop runs over blocks of lines (memory),
    never over images: all rows are handled by each op. Step size
    :data:`CPU_STEP_BYTES` on the CPU, so the temporaries stay in cache. On
    other devices the input is copied whole and the mixed rows are rewritten
    in one step. ``step_bytes`` forces the blocked path (tests).

    uint8 output: MixUp rows are within 1 grey level of
    :func:`detaug.transforms.mixup.mixup_pixels` (see :func:`blend_rows`),
    CutMix rows exact. Float ``output_dtype``: the MixUp rows are recomputed
    in float32 and not rounded.
    """
    dev = images.device
    b, c, h, w = images.shape
    n_lines, n = c * h, c * h * w
    images = images.contiguous()
    out = _new_images_like(images)
    n_mix, n_cut = mix_rows.numel(), cut_rows.numel()
    blocked = step_bytes is not None or dev.type == "cpu"
    if n_mix + n_cut == 0 or not blocked:
        out.copy_(images)
        n_none, parts = 0, [mix_rows, cut_rows]
    else:
        # The unmixed rows ride along in the blocks: no separate whole-batch copy.
        n_none = b - n_mix - n_cut
        unmixed = torch.ones(b, dtype=torch.bool, device=dev)
        unmixed[mix_rows] = False
        unmixed[cut_rows] = False
        none_rows = _rows_where(unmixed, n_none)
        parts = [mix_rows, cut_rows, none_rows]
    if n_mix + n_cut:
        x2, o2 = images.view(b, n), out.view(b, n)
        rows = torch.cat(parts)
        mix_partners, cut_partners = perm[mix_rows], perm[cut_rows]
        weight = mixup_weight(lam[mix_rows])
        r = rect[cut_rows]
        full = torch.full((), 255, dtype=torch.uint8, device=dev)
        zero = torch.zeros((), dtype=torch.uint8, device=dev)
        ys = (torch.arange(n_lines, device=dev) % h)[None]
        xs = torch.arange(w, device=dev)[None]
        line_in = torch.where((ys >= r[:, 1:2]) & (ys < r[:, 3:4]), full, zero)  # (n_cut, C*H)
        col_in = torch.where((xs >= r[:, 0:1]) & (xs < r[:, 2:3]), full, zero)  # (n_cut, W)
        if not blocked:
            step = n_lines
        else:
            step = max(8, (step_bytes or CPU_STEP_BYTES) // w // 8 * 8)  # whole lines, 8-byte multiple
        n_mixed = n_mix + n_cut
        for l0 in range(0, n_lines, step):  # blocks of memory, not images
            l1 = min(l0 + step, n_lines)
            xc = x2[:, l0 * w : l1 * w]
            res = torch.empty((n_mixed + n_none, xc.shape[1]), dtype=torch.uint8, device=dev)
            if n_mix:
                blend_rows(res[:n_mix], xc, mix_rows, mix_partners, weight)
            if n_cut:
                mask = (line_in[:, l0:l1, None] & col_in[:, None, :]).view(n_cut, -1)
                paste_rows(res[n_mix:n_mixed], xc, cut_rows, cut_partners, mask)
            if n_none:
                torch.index_select(xc, 0, none_rows, out=res[n_mixed:])
            dst, res = _words(o2[:, l0 * w : l1 * w], res)
            dst.index_copy_(0, rows, res)
    if output_dtype is None:
        return out
    out = out.to(output_dtype).div_(255.0)
    if n_mix:
        blend = images.index_select(0, mix_rows).to(torch.float32).mul_(lam[mix_rows].view(-1, 1, 1, 1))
        blend.add_(images.index_select(0, perm[mix_rows]).to(torch.float32).mul_(rest[mix_rows].view(-1, 1, 1, 1)))
        out.index_copy_(0, mix_rows, blend.div_(255.0).to(output_dtype))
    return out


# ----------------------------------------------------------------------------- reference
def _row_sample(batch: Batch, i: int, counts: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> Sample:
    h, w = (int(v) for v in sizes[i])
    s, e = int(starts[i]), int(starts[i] + counts[i])
    img = batch.images[i, :, :h, :w].permute(1, 2, 0).contiguous().numpy()
    return Sample.create(
        img,
        boxes=batch.boxes[s:e].numpy(),
        classes=batch.classes[s:e].numpy(),
        weights=batch.weights[s:e].numpy(),
        meta=batch.metas[i] if batch.metas else {},
    )


def reference_mix(
    batch: Batch, params: BatchMixParams, *, min_visible: float = 0.3, weight_by_visibility: bool = True
) -> Batch:
    """THE SLOW REFERENCE: ``params`` applied by looping the per-sample transforms.

    For each image ``i``: :class:`~detaug.transforms.mixup.MixUp` ``.apply``
    with ``MixUpParams(lam[i])``, or :class:`~detaug.transforms.cutmix.CutMix`
    ``.apply`` with ``CutMixParams(lam[i], rect[i])``, partner ``perm[i]`` of
    the original batch, then :func:`~detaug.batch.collate` (padded to the
    input's (H, W)) and back to the batch's device. What
    :meth:`BatchMixer.apply` must equal; used by the parity tests and by
    ``tools/benchmark.py --mixer`` as the per-sample baseline. Needs
    ``batch_idx`` sorted (as :func:`~detaug.batch.collate` makes it); returns
    uint8 images.
    """
    dev = batch.device
    cpu = batch.to("cpu")
    p = params.to("cpu")
    n = cpu.batch_size
    counts = cpu.counts().numpy()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    sizes = cpu.sizes.numpy()
    samples = [_row_sample(cpu, i, counts, starts, sizes) for i in range(n)]
    mixup = MixUp()
    cutmix = CutMix(min_visible=min_visible, weight_by_visibility=weight_by_visibility)
    perm, mode, lam, rect = p.perm.tolist(), p.mode.tolist(), p.lam.tolist(), p.rect.tolist()
    out = []
    for i in range(n):  # the per-sample loop this module exists to avoid
        a, b = samples[i], samples[perm[i]]
        if mode[i] == MIXUP:
            out.append(mixup.apply(a, [b], MixUpParams(lam=lam[i])))
        elif mode[i] == CUTMIX:
            r = tuple(rect[i])
            empty = r[2] <= r[0] or r[3] <= r[1]
            out.append(cutmix.apply(a, [b], CutMixParams(lam=lam[i], rect=None if empty else r)))
        else:
            out.append(a)
    res = collate(out)
    h, w = cpu.shape
    if res.shape != (h, w):
        images = torch.full((n, 3, h, w), PAD_VALUE, dtype=torch.uint8)
        rh, rw = res.shape
        images[:, :, :rh, :rw] = res.images
        res = res.replace(images=images)
    return res.replace(metas=cpu.metas).to(dev)
