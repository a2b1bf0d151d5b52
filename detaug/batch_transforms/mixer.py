"""BatchMixer: detection MixUp and CutMix on a whole :class:`~detaug.batch.Batch`, on its device.

``mixup`` and ``cutmix`` mean what they mean in :class:`~detaug.mix_dataset.MixDataset`:
two independent per-image probabilities, MixUp first, then CutMix on the
result. Each image ``i`` draws

- MixUp with probability ``mixup``: blended with ``mixup_partner[i]`` of the
  *original* batch, ``lam ~ Beta(mixup_alpha, mixup_beta)`` clipped to
  [1e-3, 1 - 1e-3]; the row's valid size becomes the larger of the two;
- then, independently, CutMix with probability ``cutmix``: a rectangle of
  ``cutmix_partner[i]`` of the *original* batch pasted into the (possibly
  blended) row, ``lam ~ Beta(cutmix_alpha, cutmix_alpha)``, the rectangle
  drawn as :func:`detaug.transforms.cutmix.sample_rect` in the row's valid
  size, then clipped to the partner's valid size (only a partner's own
  pixels are ever pasted, never its padding; a rectangle clipped to nothing
  means no CutMix).

The partners of each kind form one random cycle (nobody is their own
partner when B > 1; a single image is left alone).

Who computes what: the pairs, lams and rectangles are drawn on the batch's
device from the mixer's ``torch.Generator``. The LABELS are then computed on
the CPU with the per-sample path's own numpy rules,
:func:`~detaug.transforms.mixup.mixup_labels` and
:func:`~detaug.transforms.cutmix.cutmix_labels` (the label tensors are small),
so they are the per-sample labels by construction. The PIXELS are painted on
the batch's device by :func:`~detaug.batch_transforms.kernels.mix_images`.
Host-device traffic per call: the params and the labels go to the CPU once,
the new labels come back once.

>>> import numpy as np, torch
>>> from detaug.sample import Sample
>>> from detaug.batch import collate
>>> a = Sample.create(np.full((8, 8, 3), 200, np.uint8), [[0, 0, 4, 4]], [1])
>>> b = Sample.create(np.full((8, 8, 3), 100, np.uint8), [[2, 2, 8, 8]], [2])
>>> batch = collate([a, b])
>>> params = BatchMixParams.create(2, mixup={0: (1, 0.75)}, cutmix={1: (0, 0.5, (0, 0, 4, 8))})
>>> out = BatchMixer().apply(batch, params)
>>> int(out.images[0, 0, 0, 0]), out.batch_idx.tolist(), out.classes.tolist(), out.weights.tolist()
(175, [0, 0, 1, 1], [1, 2, 2, 1], [0.75, 0.25, 0.6666666, 1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from detaug.batch import DEFAULT_FILL, Batch, as_fill
from detaug.batch_transforms.base import DEFAULT_SEED, BatchTransform
from detaug.batch_transforms.kernels import mix_images
from detaug.batch_transforms.sampling import random_cycle, sample_beta
from detaug.sample import Labels
from detaug.transforms.cutmix import cutmix_labels
from detaug.transforms.limits import check_beta, check_range
from detaug.transforms.mixup import LAM_EPS, mixup_labels

__all__ = ["BatchMixer", "BatchMixParams"]

_FIELDS = ("mixup", "mixup_partner", "mixup_lam", "cutmix", "cutmix_partner", "cutmix_lam", "rect")


@dataclass(frozen=True, eq=False)
class BatchMixParams:
    """The parameters of one batch mix (tensors on the batch's device, B rows).

    Attributes:
        mixup: (B,) bool, rows that get MixUp.
        mixup_partner: (B,) int64, the row of the original batch each row is
            blended with (read where ``mixup``).
        mixup_lam: (B,) float32, the row's share of the blend, in [0, 1]
            (1 where no MixUp).
        cutmix: (B,) bool, rows that get CutMix (after their MixUp, if any).
        cutmix_partner: (B,) int64, the row of the original batch pasted from.
        cutmix_lam: (B,) float32, CutMix's drawn lam (informational; the
            rectangle is what is applied).
        rect: (B, 4) int64 (x1, y1, x2, y2) integer pixel edges, inside both
            the row's valid size (after its MixUp) and the partner's valid
            size where ``cutmix``; zeros elsewhere. An empty rectangle pastes
            nothing (as the per-sample ``CutMixParams(rect=None)``).
    """

    mixup: torch.Tensor
    mixup_partner: torch.Tensor
    mixup_lam: torch.Tensor
    cutmix: torch.Tensor
    cutmix_partner: torch.Tensor
    cutmix_lam: torch.Tensor
    rect: torch.Tensor

    def __post_init__(self) -> None:
        b = self.mixup.shape[0] if self.mixup.ndim == 1 else -1
        expect = {"mixup": ((b,), "bool"), "mixup_partner": ((b,), "int64"), "mixup_lam": ((b,), "float"),
                  "cutmix": ((b,), "bool"), "cutmix_partner": ((b,), "int64"), "cutmix_lam": ((b,), "float"),
                  "rect": ((b, 4), "int64")}
        for name, (shape, kind) in expect.items():
            t = getattr(self, name)
            ok = {"bool": t.dtype == torch.bool, "int64": t.dtype == torch.int64,
                  "float": t.is_floating_point()}[kind]
            if b < 0 or tuple(t.shape) != shape or not ok:
                raise ValueError(f"{name}: expected {shape} {kind}, got {tuple(t.shape)} {t.dtype}")
            if t.device != self.mixup.device:
                raise ValueError(f"{name}: on {t.device}, the other params are on {self.mixup.device}")
        object.__setattr__(self, "mixup_lam", self.mixup_lam.to(torch.float32))
        object.__setattr__(self, "cutmix_lam", self.cutmix_lam.to(torch.float32))

    @property
    def batch_size(self) -> int:
        """B, the number of rows."""
        return int(self.mixup.shape[0])

    @property
    def device(self) -> torch.device:
        """The device of the tensors."""
        return self.mixup.device

    def to(self, device: torch.device | str) -> BatchMixParams:
        """The params on ``device``."""
        return BatchMixParams(**{f: getattr(self, f).to(device) for f in _FIELDS})

    @classmethod
    def create(
        cls,
        batch_size: int,
        mixup: Mapping[int, tuple[int, float]] | None = None,
        cutmix: Mapping[int, tuple[int, float, Sequence[int]]] | None = None,
        device: torch.device | str = "cpu",
    ) -> BatchMixParams:
        """Params written by hand: ``mixup[row] = (partner, lam)``, ``cutmix[row] = (partner, lam, rect)``.

        >>> p = BatchMixParams.create(3, mixup={2: (0, 0.4)})
        >>> p.mixup.tolist(), p.mixup_partner.tolist(), p.mixup_lam.tolist()
        ([False, False, True], [0, 0, 0], [1.0, 1.0, 0.4000000059604645])
        """
        n = int(batch_size)
        t = {f: torch.zeros(n, dtype=torch.bool) for f in ("mixup", "cutmix")}
        t.update({f: torch.zeros(n, dtype=torch.int64) for f in ("mixup_partner", "cutmix_partner")})
        t.update({f: torch.ones(n, dtype=torch.float32) for f in ("mixup_lam", "cutmix_lam")})
        t["rect"] = torch.zeros((n, 4), dtype=torch.int64)
        for row, (partner, lam) in (mixup or {}).items():
            t["mixup"][row], t["mixup_partner"][row], t["mixup_lam"][row] = True, partner, lam
        for row, (partner, lam, rect) in (cutmix or {}).items():
            t["cutmix"][row], t["cutmix_partner"][row], t["cutmix_lam"][row] = True, partner, lam
            t["rect"][row] = torch.as_tensor(list(rect), dtype=torch.int64)
        return cls(**{k: v.to(device) for k, v in t.items()})


class BatchMixer(BatchTransform[BatchMixParams]):
    """Detection MixUp and CutMix over a batch, labels by the per-sample rules, pixels on the batch's device.

    Args:
        mixup: probability that an image gets MixUp (in [0, 1]).
        cutmix: probability that an image gets CutMix, independently, after
            its MixUp if any (in [0, 1]), as in MixDataset.
        mixup_alpha, mixup_beta: MixUp's ``lam ~ Beta(alpha, beta)``.
        cutmix_alpha: CutMix's ``lam ~ Beta(alpha, alpha)``.
        min_visible: CutMix drops objects whose visible fraction is below this.
        weight_by_visibility: CutMix multiplies weights by the visible fraction.
        generator: a ``torch.Generator`` on the device the batches will be on
            (``None``: one per device, seeded with ``seed``).
        output_dtype: ``None`` keeps uint8 images; ``torch.float16`` /
            ``torch.float32`` / ``torch.bfloat16`` return images divided by 255
            (MixUp pixels are then not rounded to integer grey levels).
        seed: seed of the lazily created generators.
        fill: the padding colour (int or (r, g, b), 114 by default); a batch
            whose ``fill`` (``collate(samples, fill=...)``) differs is refused,
            since a MixUp blends an image's padding as the per-sample MixUp
            blends its ``fill`` canvas.

    The output never shares or modifies the input's tensors. ``metas`` are
    kept as the base images'.
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
        fill: int | Sequence[int] = DEFAULT_FILL,
    ) -> None:
        super().__init__(generator, seed)
        check_range("mixup", mixup)
        check_range("cutmix", cutmix)
        for name, v in (("mixup_alpha", mixup_alpha), ("mixup_beta", mixup_beta), ("cutmix_alpha", cutmix_alpha)):
            check_beta(name, v)
        check_range("min_visible", min_visible)
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
        self.fill = as_fill(fill)

    def __repr__(self) -> str:
        return (
            f"BatchMixer(mixup={self.mixup}, cutmix={self.cutmix}, mixup_alpha={self.mixup_alpha}, "
            f"mixup_beta={self.mixup_beta}, cutmix_alpha={self.cutmix_alpha}, min_visible={self.min_visible}, "
            f"weight_by_visibility={self.weight_by_visibility}, output_dtype={self.output_dtype}, fill={self.fill})"
        )

    # ------------------------------------------------------------------ params
    def sample_params(self, batch: Batch) -> BatchMixParams:
        """Draw the pairings, choices, lams and rectangles for ``batch`` (on its device, no host sync).

        Draw order (one generator): the MixUp partners' cycle, the CutMix
        partners' cycle (:func:`~detaug.batch_transforms.sampling.random_cycle`),
        B MixUp and B CutMix uniforms, B MixUp lams, B CutMix lams, B
        centre-x and B centre-y uniforms.
        """
        dev = batch.device
        g = self.generator_for(dev)
        n = batch.batch_size
        mix_p = random_cycle(n, g, dev)
        cut_p = random_cycle(n, g, dev)
        u_mix = torch.rand((n,), generator=g, device=dev)
        u_cut = torch.rand((n,), generator=g, device=dev)
        lam_mix = sample_beta(self.mixup_alpha, self.mixup_beta, n, g, dev).clamp(LAM_EPS, 1.0 - LAM_EPS)
        lam_cut = sample_beta(self.cutmix_alpha, self.cutmix_alpha, n, g, dev)
        cx = torch.rand((n,), generator=g, device=dev)
        cy = torch.rand((n,), generator=g, device=dev)

        paired = torch.full((n,), n > 1, dtype=torch.bool, device=dev)
        mixup = (u_mix < self.mixup) & paired
        sizes = torch.where(mixup[:, None], torch.maximum(batch.sizes, batch.sizes[mix_p]), batch.sizes)
        hw = sizes.to(torch.float32)
        h, w = hw[:, 0], hw[:, 1]
        # The rectangle of detaug.transforms.cutmix.sample_rect, in the row's valid size.
        cut = torch.sqrt((1.0 - lam_cut).clamp_min(0.0))
        cut_w, cut_h = w * cut, h * cut
        cx, cy = cx * w, cy * h
        x1 = torch.minimum(torch.round(cx - cut_w / 2).clamp_min(0.0), w)
        x2 = torch.minimum(torch.round(cx + cut_w / 2).clamp_min(0.0), w)
        y1 = torch.minimum(torch.round(cy - cut_h / 2).clamp_min(0.0), h)
        y2 = torch.minimum(torch.round(cy + cut_h / 2).clamp_min(0.0), h)
        rect = torch.stack([x1, y1, x2, y2], dim=1).to(torch.int64)
        # Only the partner's valid pixels are pasted: clip to its size.
        ph, pw = batch.sizes[cut_p, 0], batch.sizes[cut_p, 1]
        rect = torch.stack([rect[:, 0], rect[:, 1], torch.minimum(rect[:, 2], pw), torch.minimum(rect[:, 3], ph)], 1)
        empty = (rect[:, 2] <= rect[:, 0]) | (rect[:, 3] <= rect[:, 1])
        cutmix = (u_cut < self.cutmix) & paired & ~empty
        return BatchMixParams(
            mixup=mixup, mixup_partner=mix_p, mixup_lam=torch.where(mixup, lam_mix, 1.0),
            cutmix=cutmix, cutmix_partner=cut_p, cutmix_lam=torch.where(cutmix, lam_cut, 1.0),
            rect=torch.where(cutmix[:, None], rect, 0),
        )

    # ------------------------------------------------------------------ apply
    def apply(self, batch: Batch, params: BatchMixParams) -> Batch:
        """Mix ``batch`` with fixed ``params`` (a new Batch on its device; the input is untouched).

        Row ``i``'s objects are ``mixup_labels`` of it and its MixUp partner
        (where ``mixup[i]``), then ``cutmix_labels`` of that and its CutMix
        partner in ``rect[i]`` (where ``cutmix[i]``); ``batch_idx`` stays
        sorted. ``sizes`` of MixUp rows become the larger of the two images'.

        Raises:
            ValueError: naming ``batch.images`` (not uint8), ``params`` (another
                batch size or device), ``fill`` (the batch's padding is another
                colour) or ``params.<field>`` (values out of range).
        """
        if batch.images.dtype != torch.uint8:
            raise ValueError(f"batch.images: BatchMixer mixes uint8 images, got {batch.images.dtype}")
        n, dev = batch.batch_size, batch.device
        if params.batch_size != n:
            raise ValueError(f"params: made for a batch of {params.batch_size} images, this one has {n}")
        if params.device != dev:
            raise ValueError(f"params: on {params.device}, the batch is on {dev}")
        if batch.fill != self.fill:
            raise ValueError(f"fill: the batch is padded with {batch.fill} (collate's fill) but this mixer's "
                             f"fill is {self.fill}; give both the same fill")
        # The params and the labels to the CPU (small): one packed transfer for the params.
        packed = torch.cat([params.mixup[:, None], params.mixup_partner[:, None], params.mixup_lam[:, None],
                            params.cutmix[:, None], params.cutmix_partner[:, None], params.rect], 1)
        cols = packed.to(torch.float64).cpu().numpy()
        mix_p, cut_p, rect = cols[:, 1].astype(np.int64), cols[:, 4].astype(np.int64), cols[:, 5:9].astype(np.int64)
        # An empty rectangle pastes nothing (the per-sample CutMixParams(rect=None)).
        mix, cut = cols[:, 0] != 0, (cols[:, 3] != 0) & (rect[:, 2] > rect[:, 0]) & (rect[:, 3] > rect[:, 1])
        lam = cols[:, 2].astype(np.float32)
        sizes = batch.sizes.cpu().numpy()
        _check(n, sizes, mix, mix_p, lam, cut, cut_p, rect)

        labels, out_sizes = _mix_labels(batch, sizes, mix, mix_p, lam, cut, cut_p, rect, self)
        mix_rows, cut_rows = np.flatnonzero(mix), np.flatnonzero(cut)
        images = mix_images(batch.images, mix_rows, mix_p[mix_rows], lam[mix_rows], cut_rows, cut_p[cut_rows],
                            rect[cut_rows], self.output_dtype)
        counts = np.array([lab[0].shape[0] for lab in labels], np.int64)
        return Batch(
            images=images,
            batch_idx=torch.from_numpy(np.repeat(np.arange(n, dtype=np.int64), counts)).to(dev),
            classes=torch.from_numpy(np.concatenate([lab[1] for lab in labels])).to(dev),
            boxes=torch.from_numpy(np.concatenate([lab[0] for lab in labels]).reshape(-1, 4)).to(dev),
            weights=torch.from_numpy(np.concatenate([lab[2] for lab in labels])).to(dev),
            sizes=torch.from_numpy(out_sizes).to(dev),
            metas=batch.metas,
            fill=batch.fill,
        )


def _check(n: int, sizes: np.ndarray, mix: np.ndarray, mix_p: np.ndarray, lam: np.ndarray, cut: np.ndarray,
           cut_p: np.ndarray, rect: np.ndarray) -> None:
    """Raise a ValueError naming the field if the params cannot apply to a batch of these valid sizes."""
    for name, flag, partner in (("mixup_partner", mix, mix_p), ("cutmix_partner", cut, cut_p)):
        bad = flag & ((partner < 0) | (partner >= n))
        if bad.any():
            raise ValueError(f"params.{name}: row {int(np.flatnonzero(bad)[0])} names a row outside 0..{n - 1}")
    if (mix & ~((lam >= 0) & (lam <= 1))).any():
        raise ValueError(f"params.mixup_lam: must be in [0, 1], got {lam[mix].tolist()}")
    hw = np.where(mix[:, None], np.maximum(sizes, sizes[np.clip(mix_p, 0, n - 1)]), sizes)
    ph = sizes[np.clip(cut_p, 0, n - 1)]
    x1, y1, x2, y2 = rect.T
    inside = (0 <= x1) & (x2 <= hw[:, 1]) & (0 <= y1) & (y2 <= hw[:, 0])
    bad = cut & ~inside
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"params.rect: row {i}'s {tuple(rect[i].tolist())} is not inside its valid size "
                         f"{tuple(hw[i].tolist())}")
    bad = cut & ((x2 > ph[:, 1]) | (y2 > ph[:, 0]))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"params.rect: row {i}'s {tuple(rect[i].tolist())} reaches outside its CutMix partner "
                         f"(row {int(cut_p[i])}, valid size {tuple(ph[i].tolist())}): only a partner's own pixels "
                         "can be pasted; clip the rectangle to it")


def _mix_labels(batch: Batch, sizes: np.ndarray, mix: np.ndarray, mix_p: np.ndarray, lam: np.ndarray,
                cut: np.ndarray, cut_p: np.ndarray, rect: np.ndarray, mixer: BatchMixer
                ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """Each row's (boxes, classes, weights) by the per-sample label rules (numpy, CPU), and the (B, 2) sizes.

    A loop over the mixed rows, each a call of
    :func:`~detaug.transforms.mixup.mixup_labels` and/or
    :func:`~detaug.transforms.cutmix.cutmix_labels` on that row's few objects.
    """
    boxes = batch.boxes.cpu().numpy()
    classes = batch.classes.cpu().numpy()
    weights = batch.weights.cpu().numpy()
    counts = np.bincount(batch.batch_idx.cpu().numpy(), minlength=batch.batch_size)
    ends = np.cumsum(counts)
    starts = ends - counts

    def row(i: int) -> Labels:
        s, e = starts[i], ends[i]
        return Labels((int(sizes[i, 0]), int(sizes[i, 1])), boxes[s:e], classes[s:e], weights[s:e])

    out, out_sizes = [], sizes.copy()
    for i in range(batch.batch_size):  # small label arrays; the pixels are done for all rows at once
        if not (mix[i] or cut[i]):
            out.append((boxes[starts[i]:ends[i]], classes[starts[i]:ends[i]], weights[starts[i]:ends[i]]))
            continue
        lab = row(i)
        if mix[i]:
            lab = mixup_labels(lab, row(int(mix_p[i])), float(lam[i]))
        if cut[i]:
            r = tuple(int(v) for v in rect[i])
            lab = cutmix_labels(lab, row(int(cut_p[i])), r, mixer.min_visible, mixer.weight_by_visibility)
        out.append((lab.boxes, lab.classes, lab.weights))
        out_sizes[i] = lab.size
    return out, out_sizes
