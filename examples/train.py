"""Training the example detector on detaug batches: the data path, one step, the loop.

Three layers, so that any producer of batches (:class:`detaug.Batch`) can drive the
same step:

1. the batches: :func:`build_dataset` (``YoloDataset`` in ``MixDataset``:
   Mosaic, random affine, flips, HSV), :func:`build_loader` (a DataLoader
   over :class:`detaug.sampler.EpochSampler` keys with ``collate``: every
   key carries its epoch, so no ``set_epoch`` has to reach the workers and
   every new pass is the next epoch) and :func:`mixed_batches` (forever:
   ``batch.to(device)``, then :class:`detaug.BatchMixer` for MixUp / CutMix
   on the device). With ``paint="device"`` the workers only plan and fetch
   sources (``MixDataset(output="plan")``, ``collate_plans``) and a
   :class:`~detaug.batch_transforms.DevicePainter` paints each batch on the
   training device before the mixer: the same pixels, painted by torch;
2. :func:`train_step`: one optimiser step of a
   :class:`~examples.detector.TinyDetector` on one Batch (images and
   labels, per-object weights included) -- whatever produced it;
3. :func:`fit` runs steps over any iterator of Batches (AdamW, linear
   warm-up, cosine decay); :func:`train` wires 1 and 3 together.

Every random number comes from an explicit generator (the model init, the
dataset's seed, which also draws each epoch's order, the DataLoader's worker
seeds and the mixer's ``torch.Generator``), so a run is reproducible for a
given seed on a given device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from detaug import AugmentConfig, Batch, BatchMixer, MixDataset, YoloDataset, collate
from detaug.batch_transforms import DevicePainter, PlanBatch, collate_plans
from detaug.sampler import EpochSampler
from examples.assigner import pad_targets
from examples.detector import STRIDES, TinyDetector, init_weights, make_anchors, pad_to_stride
from examples.loss import LossParts, detection_loss

__all__ = ["DEFAULT_DATA", "PAINTERS", "TrainResult", "resolve_device", "build_dataset", "build_loader",
           "mixed_batches", "train_step", "lr_at", "fit", "train"]

#: Where the training images are painted: "opencv" (per sample, in the DataLoader workers) or "device"
#: (workers plan and fetch sources; a DevicePainter paints each batch on the training device).
PAINTERS = ("opencv", "device")

#: The bundled synthetic shapes set (24 train, 8 val images).
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "datasets" / "shapes" / "shapes.yaml"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` / ``"auto"``: cuda when available, else cpu; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_dataset(data: str | Path, img_size: int, seed: int, mosaic: float = 1.0, paint: str = "opencv"
                  ) -> MixDataset:
    """The training source: ``MixDataset(YoloDataset(data, split="train"), AugmentConfig(...), seed)``.

    Items are ``img_size`` x ``img_size`` Samples, or with ``paint="device"``
    their plans and source images (``output="plan"``). MixUp and CutMix are
    left to the :class:`detaug.BatchMixer` on the device (``mixup=0,
    cutmix=0`` here), so images are mixed once.
    """
    if paint not in PAINTERS:
        raise ValueError(f"paint: expected one of {PAINTERS}, got {paint!r}")
    base = YoloDataset(data, split="train", img_size=img_size, progress=False)
    cfg = AugmentConfig(img_size=img_size, mosaic=mosaic, mixup=0.0, cutmix=0.0, degrees=0.0,
                        translate=0.1, scale=0.5, fliplr=0.5, flipud=0.0)
    return MixDataset(base, cfg, seed=seed, output="plan" if paint == "device" else "sample")


def build_loader(ds: MixDataset, batch_size: int, workers: int, pin_memory: bool = False
                 ) -> torch.utils.data.DataLoader:
    """A DataLoader of batches (:class:`detaug.Batch`, or :class:`PlanBatch` for a plan dataset) over ``EpochSampler(ds)`` keys.

    The sampler visits the positions of each epoch in order (the dataset
    owns the shuffle) and counts epochs itself: each ``iter()`` of the
    loader is the next epoch. Full batches only; persistent workers when
    ``workers > 0``; the workers' seeds come from a generator seeded with
    ``ds.seed`` (the global RNG is never read).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers: expected >= 0, got {workers}")
    if len(ds) < batch_size:
        raise ValueError(f"batch_size: {batch_size} is more than the {len(ds)} training images")
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        sampler=EpochSampler(ds),
        drop_last=True,
        num_workers=workers,
        collate_fn=collate_plans if getattr(ds, "output", "sample") == "plan" else collate,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(ds.seed),
    )


def mixed_batches(loader: torch.utils.data.DataLoader, mixer: BatchMixer, device: torch.device,
                  painter: DevicePainter | None = None) -> Iterator[Batch]:
    """Endless Batches from ``loader`` (one pass per epoch), moved to ``device`` and mixed there.

    Yields what ``mixer`` returns (its ``output_dtype`` decides the images'
    dtype). A loader of :class:`PlanBatch` es needs ``painter``, which paints
    each on ``device`` first (uint8 output). When the loader's sampler is an :class:`EpochSampler`, every
    batch is checked to hold samples of the epoch the pass was for (a
    RuntimeError otherwise).
    """
    sampler = loader.sampler
    while True:
        epoch = sampler.epoch if isinstance(sampler, EpochSampler) else None
        for batch in loader:
            if epoch is not None and any(m.get("epoch") != epoch for m in batch.metas):
                got = sorted({m.get("epoch") for m in batch.metas})
                raise RuntimeError(f"the DataLoader served samples of epochs {got} during epoch {epoch}")
            if isinstance(batch, PlanBatch):
                if painter is None:
                    raise ValueError("painter: the loader yields PlanBatches (a plan dataset); pass a DevicePainter")
                yield mixer(painter(batch.to(device)))
            else:
                yield mixer(batch.to(device))


def train_step(model: TinyDetector, optimizer: torch.optim.Optimizer, batch: Batch,
               max_grad_norm: float = 10.0) -> LossParts:
    """One optimiser step of ``model`` on ``batch``; returns its :class:`~examples.loss.LossParts`.

    ``batch``: a :class:`detaug.Batch` on the model's device; ``images``
    (B, 3, H, W) uint8 (read as x / 255) or float in [0, 1], padded here to
    a multiple of 16 at the bottom-right with ``batch.fill``; ``boxes`` (M, 4) float32 abs xyxy,
    ``classes`` (M,) int64, ``batch_idx`` (M,) int64 and ``weights`` (M,)
    float32 (the per-object loss weights). Gradients are clipped to
    ``max_grad_norm``; the model is left in train mode.
    """
    images = batch.images
    if not images.is_floating_point():
        images = images.float() / 255.0
    images = pad_to_stride(images, fill=[v / 255.0 for v in batch.fill])
    points, strides = make_anchors(images.shape[-2], images.shape[-1], images.device)
    model.train()
    cls_logits, dist = model(images)
    loss = detection_loss(cls_logits, dist, points, strides, pad_targets(batch))
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """The learning rate of step ``step`` of ``steps``: linear warm-up, then cosine decay to 5 %.

    >>> [round(lr_at(s, 10, 1.0, 2), 3) for s in (0, 1, 2, 9)]
    [0.5, 1.0, 1.0, 0.086]
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t)))


@dataclass
class TrainResult:
    """What :func:`fit` and :func:`train` return.

    Attributes:
        history: total loss of every step, in order (floats).
        cls_history, box_history: its classification and box parts.
        model: the trained model (in eval mode, on the training device).
        names: class names of the dataset (empty from :func:`fit`).
        seconds: wall time of the loop (producing the batches included).
        extra: ``epochs`` (passes over the data started) and ``device`` from :func:`train`.
    """

    history: list[float]
    cls_history: list[float]
    box_history: list[float]
    model: TinyDetector
    names: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def fit(model: TinyDetector, batches: Iterable[Batch], steps: int, lr: float = 2e-3,
        progress: bool = False) -> TrainResult:
    """Run :func:`train_step` ``steps`` times: ``model`` on the first ``steps`` items of ``batches``.

    AdamW (weight decay 5e-4 on weights, none on biases and norms, betas
    0.9 / 0.99), learning rate :func:`lr_at` with ``min(50, steps // 10)``
    warm-up steps. The loss is read back to the host once, at the end.
    A ValueError when ``batches`` ends early.
    """
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.99))
    warmup = min(50, max(1, steps // 10))
    losses: list[torch.Tensor] = []
    bar = tqdm(total=steps, desc="train", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    it = iter(batches)
    for step in range(steps):
        batch = next(it, None)
        if batch is None:
            raise ValueError(f"batches: ended after {step} of {steps} steps")
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        loss = train_step(model, opt, batch)
        losses.append(torch.stack([loss.total.detach(), loss.cls, loss.box]))
        bar.update(1)
        if progress and ((step + 1) % 10 == 0 or step + 1 == steps):
            bar.set_postfix(loss=f"{torch.stack(losses[-10:])[:, 0].mean().item():.3f}")
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    h = torch.stack(losses).cpu()
    return TrainResult(history=h[:, 0].tolist(), cls_history=h[:, 1].tolist(), box_history=h[:, 2].tolist(),
                       model=model, seconds=seconds)


def train(
    data: str | Path = DEFAULT_DATA,
    steps: int = 300,
    batch_size: int = 16,
    img_size: int = 256,
    workers: int = 2,
    mixup: float = 0.3,
    cutmix: float = 0.3,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    width: int = 16,
    mosaic: float = 1.0,
    progress: bool = True,
    paint: str = "opencv",
) -> TrainResult:
    """Train a :class:`TinyDetector` of ``width`` on ``data`` for ``steps`` steps; returns the loss history.

    :func:`build_dataset` -> :func:`build_loader` -> :func:`mixed_batches`
    (``BatchMixer(mixup, cutmix)``, images float32 in [0, 1]) -> :func:`fit`.
    ``img_size`` must be a multiple of 16 >= 32; ``batch_size`` >= 2 (the
    mixer pairs images). ``paint``: one of :data:`PAINTERS`.
    """
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    if batch_size < 2:
        raise ValueError(f"batch_size: expected >= 2 (the mixer pairs images), got {batch_size}")
    if img_size < 32 or img_size % STRIDES[-1]:
        raise ValueError(f"img_size: expected a multiple of {STRIDES[-1]} >= 32, got {img_size}")
    dev = resolve_device(device)
    ds = build_dataset(data, img_size, seed, mosaic, paint)
    loader = build_loader(ds, batch_size, workers, pin_memory=dev.type == "cuda")
    mixer = BatchMixer(mixup=mixup, cutmix=cutmix, output_dtype=torch.float32,
                       generator=torch.Generator(device=dev).manual_seed(seed))
    names = list(ds.names or [])
    model = init_weights(TinyDetector(len(names), width=width), torch.Generator().manual_seed(seed)).to(dev)
    first_epoch = loader.sampler.epoch
    painter = DevicePainter() if paint == "device" else None
    res = fit(model, mixed_batches(loader, mixer, dev, painter), steps, lr=lr, progress=progress)
    res.names = names
    res.extra.update(epochs=loader.sampler.epoch - first_epoch, device=str(dev), paint=paint)
    return res
