"""THE SLOW REFERENCES: batch transforms' params applied by looping the per-sample transforms.

What :class:`~detaug.batch_transforms.mixer.BatchMixer` and
:class:`~detaug.batch_transforms.hsv.BatchHSV` must equal, image by image.
For tests and for ``tools/benchmark.py --mixer`` (the per-sample baseline);
no production module imports this one.

>>> import numpy as np, torch
>>> from detaug.batch import collate
>>> from detaug.sample import Sample
>>> from detaug.batch_transforms.mixer import BatchMixParams
>>> a = Sample.create(np.full((4, 4, 3), 200, np.uint8), [[0, 0, 2, 2]], [1])
>>> b = Sample.create(np.full((4, 4, 3), 100, np.uint8), [[1, 1, 4, 4]], [2])
>>> ref = reference_mix(collate([a, b]), BatchMixParams.create(2, mixup={0: (1, 0.75)}))
>>> int(ref.images[0, 0, 0, 0]), ref.weights.tolist()
(175, [0.75, 0.25, 1.0])
"""

from __future__ import annotations

import numpy as np
import torch

from detaug.batch import Batch, collate
from detaug.batch_transforms.hsv import BatchHSVParams
from detaug.batch_transforms.mixer import BatchMixParams
from detaug.sample import Sample
from detaug.transforms.cutmix import CutMix, CutMixParams
from detaug.transforms.mixup import MixUp, MixUpParams
from detaug.transforms.photometric import apply_hsv

__all__ = ["batch_samples", "reference_mix", "reference_hsv"]


def batch_samples(batch: Batch) -> list[Sample]:
    """The B Samples of a uint8 ``batch``: each image cropped to its valid size, its objects, its meta (CPU)."""
    cpu = batch.to("cpu")
    counts = cpu.counts().numpy()
    ends = np.cumsum(counts)
    out = []
    for i, (h, w) in enumerate(cpu.sizes.tolist()):
        s, e = int(ends[i] - counts[i]), int(ends[i])
        out.append(Sample.create(
            cpu.images[i, :, :h, :w].permute(1, 2, 0).contiguous().numpy(),
            boxes=cpu.boxes[s:e].numpy(), classes=cpu.classes[s:e].numpy(), weights=cpu.weights[s:e].numpy(),
            meta=cpu.metas[i] if cpu.metas else {},
        ))
    return out


def _on_canvas(s: Sample, h: int, w: int, fill: tuple[int, int, int]) -> Sample:
    """``s`` placed top-left on an h x w canvas of ``fill`` (what MixUp's canvas is with this fill)."""
    if s.size == (h, w):
        return s
    img = np.empty((h, w, 3), np.uint8)
    img[...] = np.array(fill, np.uint8)
    img[: s.height, : s.width] = s.image
    return s.replace(image=img)


def _pad_to(res: Batch, shape: tuple[int, int], fill: tuple[int, int, int]) -> Batch:
    if res.shape == shape:
        return res
    n = res.batch_size
    images = torch.empty((n, 3, *shape), dtype=torch.uint8)
    images[...] = torch.tensor(fill, dtype=torch.uint8).view(1, 3, 1, 1)
    rh, rw = res.shape
    images[:, :, :rh, :rw] = res.images
    return res.replace(images=images)


def reference_mix(
    batch: Batch, params: BatchMixParams, *, min_visible: float = 0.3, weight_by_visibility: bool = True
) -> Batch:
    """``params`` applied by looping the per-sample transforms, row by row.

    For each row ``i``: :class:`~detaug.transforms.mixup.MixUp` ``.apply``
    with its MixUp partner (of the original batch) and ``MixUpParams(mixup_lam[i])``
    where ``mixup[i]``, both on a canvas of the batch's ``fill``; then
    :class:`~detaug.transforms.cutmix.CutMix` ``.apply`` of that with its
    CutMix partner (of the original batch) and ``CutMixParams(cutmix_lam[i],
    rect[i])`` where ``cutmix[i]``. Then :func:`~detaug.batch.collate` (with
    the batch's fill, padded to its (H, W)) and back to the batch's device.
    Needs ``batch_idx`` sorted (as collate makes it); returns uint8 images.
    """
    fill = batch.fill
    samples = batch_samples(batch)
    p = params.to("cpu")
    mix, mix_p, mix_lam = p.mixup.tolist(), p.mixup_partner.tolist(), p.mixup_lam.tolist()
    cut, cut_p, cut_lam, rect = p.cutmix.tolist(), p.cutmix_partner.tolist(), p.cutmix_lam.tolist(), p.rect.tolist()
    mixup = MixUp()
    cutmix = CutMix(min_visible=min_visible, weight_by_visibility=weight_by_visibility)
    out = []
    for i, s in enumerate(samples):  # the per-sample loop the batch mixer exists to avoid
        if mix[i]:
            b = samples[mix_p[i]]
            h, w = max(s.height, b.height), max(s.width, b.width)
            s = mixup.apply(_on_canvas(s, h, w, fill), [_on_canvas(b, h, w, fill)], MixUpParams(lam=mix_lam[i]))
        if cut[i]:
            r = tuple(rect[i])
            empty = r[2] <= r[0] or r[3] <= r[1]
            s = cutmix.apply(s, [samples[cut_p[i]]], CutMixParams(lam=cut_lam[i], rect=None if empty else r))
        out.append(s)
    res = _pad_to(collate(out, fill=fill), batch.shape, fill)
    return res.replace(metas=batch.metas).to(batch.device)


def reference_hsv(batch: Batch, params: BatchHSVParams) -> Batch:
    """``params`` applied by :func:`~detaug.transforms.photometric.apply_hsv` on each whole (padded) image."""
    cpu = batch.to("cpu")
    gains = params.gains.detach().to("cpu", torch.float64).numpy()
    images = [apply_hsv(np.ascontiguousarray(im.permute(1, 2, 0).numpy()), g) for im, g in zip(cpu.images, gains,
                                                                                                 strict=True)]
    out = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return batch.replace(images=out.to(batch.device))
