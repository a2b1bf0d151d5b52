"""DetaugTrainer: Ultralytics' DetectionTrainer with detaug's training set, epochs and weighted loss.

The whole change for an Ultralytics user::

    from detaug.integrations.ultralytics import DetaugTrainer
    YOLO("yolo11n.yaml").train(data="coco128.yaml", epochs=100, trainer=DetaugTrainer)

What it does differently from ``DetectionTrainer`` (everything else, validation
included, is Ultralytics' own code):

- the training set is ``YoloDataset`` (the data yaml's ``train`` images, long
  side ``imgsz``, the first ``round(N * fraction)`` of them) + ``MixDataset``
  with :func:`augment_config` of the trainer's own arguments, served through
  :class:`~detaug.integrations.ultralytics.dataset.UltralyticsDataset`;
- its loader is Ultralytics' ``InfiniteDataLoader`` with an
  :class:`~detaug.sampler.EpochSampler`: every key is ``(epoch, position)``, so
  each epoch is a different, replayable draw whatever ``workers`` is and
  however far the persistent iterator prefetches; Mosaic/MixUp/CutMix
  partners come from the item's block of 16 positions, so with a batch size
  that 16 divides each worker decodes each of its images about once per epoch;
- ``close_mosaic``: from epoch ``epochs - close_mosaic`` on, Mosaic, MixUp and
  CutMix are off (the keys say which epoch; the trainer's own
  ``_close_dataloader_mosaic`` call logs it and restarts the loader on it);
- ``paint="device"`` (a detaug option): the workers only plan, and
  ``preprocess_batch`` paints each batch on the trainer's device with
  :class:`~detaug.batch_transforms.DevicePainter` (same plans, same labels);
  when the training images fit (a quarter of the free device memory) they
  are put there once in a :class:`~detaug.batch_transforms.SourceBank` and
  the loader ships plans only, else each batch ships its sources;
- the loss is :func:`~detaug.integrations.ultralytics.losses.weighted_criterion`
  of the model (``v8DetectionLoss`` or ``E2ELoss``, weighted by
  ``batch["weights"]``), set as the training model's ``criterion``; no
  checkpoint refers to detaug, so ``best.pt`` loads where detaug is not installed.

detaug-only options (:data:`DETAUG_OPTIONS`: ``mosaic9``, ``mixup_alpha``,
``mixup_beta``, ``weight_by_visibility``, ``object_weighting``, ...) are passed
like any other argument, ``model.train(..., trainer=DetaugTrainer, mosaic9=0.2)``;
the trainer takes them out before Ultralytics checks its arguments. The run
directory gets ``detaug.yaml``: the full AugmentConfig, seed and source, what
``tools/visualize.py --augment detaug.yaml --seed S --epoch E --index I`` needs
to replay a sample (each batch's ``batch["detaug"]`` names its epoch, index and position).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from detaug.batch_transforms.painter import DevicePainter
from detaug.batch_transforms.plan_batch import PlanBatch
from detaug.batch_transforms.source_bank import SourceBank
from detaug.config import AugmentConfig
from detaug.data import YoloDataset
from detaug.integrations.ultralytics.dataset import FirstItems, UltralyticsDataset, replay_info
from detaug.integrations.ultralytics.losses import require_ultralytics, weighted_criterion
from detaug.loss import WEIGHTINGS, check_weighting
from detaug.mix_dataset import MixDataset
from detaug.sampler import EpochSampler

try:
    from ultralytics.data.build import InfiniteDataLoader
    from ultralytics.models.yolo.detect import DetectionTrainer as _TrainerBase
    from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK
    from ultralytics.utils.torch_utils import torch_distributed_zero_first, unwrap_model
except ImportError:  # Ultralytics is an optional peer: DetaugTrainer() then raises ImportError
    _TrainerBase = object
    DEFAULT_CFG = None

__all__ = ["DetaugTrainer", "TrainerSampler", "augment_config", "MAPPED_ARGS", "DETAUG_OPTIONS"]

#: Ultralytics arguments that become AugmentConfig fields, with Ultralytics' meaning
#: (``imgsz`` -> ``img_size``; ``epochs`` is set too, unless ``time`` re-plans epochs).
MAPPED_ARGS = ("imgsz", "mosaic", "mixup", "cutmix", "degrees", "translate", "scale", "shear",
               "perspective", "flipud", "fliplr", "hsv_h", "hsv_s", "hsv_v", "close_mosaic")
#: Options Ultralytics does not have, accepted by DetaugTrainer: AugmentConfig fields, and
#: ``object_weighting`` (``"loss"``, the default, or ``"targets"``; see :mod:`detaug.loss`).
DETAUG_OPTIONS = ("mosaic9", "mosaic_center", "fill", "mixup_alpha", "mixup_beta", "cutmix_alpha",
                  "min_size", "min_area_ratio", "max_aspect_ratio", "min_visible", "weight_by_visibility",
                  "cutmix_on_background", "object_weighting", "paint")
#: ``paint``: who paints the training images. ``"opencv"`` (default): the DataLoader
#: workers, per sample. ``"device"``: the workers only plan and fetch sources
#: (``MixDataset(output="plan")``, :func:`~detaug.batch_transforms.collate_plans`);
#: ``preprocess_batch`` paints the batch with :class:`~detaug.batch_transforms.DevicePainter`
#: on the trainer's device.
PAINTERS = ("opencv", "device")
# Ultralytics augmentations detaug does not do: a non-default value is reported, not silently dropped.
_NOT_DONE = {"copy_paste": 0.0, "bgr": 0.0}


def augment_config(args: Any, options: Mapping[str, Any] | None = None) -> AugmentConfig:
    """The AugmentConfig a DetaugTrainer trains with.

    Args:
        args: Ultralytics' arguments (the trainer's ``args`` namespace or a
            mapping): :data:`MAPPED_ARGS`, ``epochs`` and ``time``.
        options: detaug-only AugmentConfig fields (:data:`DETAUG_OPTIONS` less
            ``object_weighting``).

    ``imgsz`` may be a list (its largest side, as Ultralytics trains). With
    ``time`` set Ultralytics re-plans ``epochs`` as it goes, so ``epochs`` is
    left None and close_mosaic happens when the trainer calls it.

    >>> cfg = augment_config({"imgsz": [320, 256], "mixup": 0.2, "epochs": 30, "close_mosaic": 5},
    ...                      {"mixup_alpha": 32.0, "mixup_beta": 32.0})
    >>> cfg.img_size, cfg.mixup, cfg.mixup_alpha, cfg.mixing_active(24), cfg.mixing_active(25)
    (320, 0.2, 32.0, True, False)
    """
    values = dict(args) if isinstance(args, Mapping) else vars(args)
    opts = dict(options or {})
    if "object_weighting" in opts:
        raise ValueError("options: object_weighting is a loss option, not an AugmentConfig field")
    cfg = AugmentConfig.from_dict({k: values[k] for k in MAPPED_ARGS if k in values})
    epochs = values.get("epochs")
    epochs = None if values.get("time") or epochs is None else int(epochs)
    return cfg.replace(epochs=epochs, **opts)


class TrainerSampler(EpochSampler):
    """:class:`~detaug.sampler.EpochSampler` for a trainer loop whose iterator prefetches.

    A DDP trainer calls ``set_epoch(e)`` at the start of epoch ``e``; with a
    persistent, prefetching iterator the pass of epoch ``e`` may already have
    begun (its keys carry ``e``), and honouring the call would serve ``e``
    twice. Such a call is a no-op here; :meth:`restart` always takes effect
    (for a loader whose iterator is reset).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: int | None = None

    def __iter__(self) -> Any:
        epoch = self.epoch
        EpochSampler.set_epoch(self, epoch + 1)
        self.started = epoch
        return iter([(epoch, p) for p in self.shard().tolist()])

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch``, unless that epoch's pass has already begun."""
        if epoch != self.started:
            super().set_epoch(epoch)

    def restart(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (call it right before resetting the loader's iterator)."""
        super().set_epoch(epoch)
        self.started = None


class DetaugTrainer(_TrainerBase):  # type: ignore[misc, valid-type]
    """Ultralytics' ``DetectionTrainer`` training on detaug's augmentation (see the module docstring).

    Args:
        cfg, overrides, _callbacks: as for ``DetectionTrainer``; ``overrides``
            may also hold :data:`DETAUG_OPTIONS`.

    Attributes:
        detaug_options: the detaug-only options given (AugmentConfig fields).
        object_weighting: ``"loss"`` or ``"targets"``.
        augment: the AugmentConfig of the training set (after it is built).
    """

    def __init__(self, cfg: Any = DEFAULT_CFG, overrides: dict[str, Any] | None = None,
                 _callbacks: dict[str, Any] | None = None) -> None:
        require_ultralytics("DetaugTrainer")
        overrides = dict(overrides or {})
        options = {k: overrides.pop(k) for k in DETAUG_OPTIONS if k in overrides}
        self.object_weighting = check_weighting(options.pop("object_weighting", WEIGHTINGS[0]),
                                                name="object_weighting")
        self.paint = options.pop("paint", PAINTERS[0])
        if self.paint not in PAINTERS:
            raise ValueError(f"paint: expected one of {PAINTERS}, got {self.paint!r}")
        self.painter = DevicePainter() if self.paint == "device" else None
        AugmentConfig(**options)  # ValueError naming a bad option now, not after the model is built
        self.detaug_options = options
        self.augment: AugmentConfig | None = None
        super().__init__(cfg, overrides, _callbacks)
        if getattr(self.args, "classes", None) is not None:
            raise ValueError("classes: DetaugTrainer trains on every class of the data (filtering is not supported)")

    # ------------------------------------------------------------------ data

    def build_dataset(self, img_path: Any, mode: str = "train", batch: int | None = None) -> Any:
        """The training set (detaug) for ``mode="train"``; Ultralytics' own otherwise."""
        if mode != "train":
            return super().build_dataset(img_path, mode, batch)
        if not isinstance(img_path, (str, os.PathLike)):
            raise ValueError(f"data: DetaugTrainer needs one train source (a folder or a .txt), got {img_path!r}")
        for k, default in _NOT_DONE.items():
            if getattr(self.args, k, default) != default:
                LOGGER.warning(f"detaug: {k}={getattr(self.args, k)} is not done by DetaugTrainer (ignored)")
        if getattr(self.args, "augmentations", None):
            LOGGER.warning("detaug: 'augmentations' are not applied by DetaugTrainer (ignored)")
        self.augment = cfg = augment_config(self.args, self.detaug_options)
        names = self.data["names"]
        names = [names[k] for k in sorted(names)] if isinstance(names, Mapping) else list(names)
        cache = self.args.cache
        cache = "ram" if cache in (True, "ram") else "auto" if cache == "disk" else None
        base: Any = YoloDataset(img_path, img_size=cfg.img_size, cache=cache, names=names,
                                progress=RANK in {-1, 0}, workers=max(1, min(8, os.cpu_count() or 1)))
        fraction = float(self.args.fraction)
        if fraction < 1.0:
            base = FirstItems(base, max(1, round(len(base) * fraction)))
        bank = self._source_bank(base, cfg.img_size) if self.paint == "device" else None
        if self.painter is not None:
            self.painter.bank = bank
        mix = MixDataset(base, cfg, seed=int(self.args.seed), output="plan" if self.paint == "device" else "sample",
                         ship_sources=bank is None)
        if RANK in {-1, 0}:
            self._write_replay_file(cfg, img_path, fraction)
        return UltralyticsDataset(mix, single_cls=bool(self.args.single_cls))

    def _source_bank(self, base: Any, img_size: int) -> SourceBank | None:
        """The training images resident on the trainer's device, when they fit (``paint="device"``).

        At most a quarter of the device's free memory (CUDA) or 2 GiB (CPU),
        counted as ``N * img_size^2 * 3`` bytes; otherwise None and every batch
        ships its sources. Built once, reading each image once.
        """
        need = len(base) * img_size * img_size * 3
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            limit = free // 4
        else:
            limit = 2 << 30
        if need > limit:
            LOGGER.info(f"detaug: the {len(base)} training images need up to {need / 2**30:.1f} GiB on "
                        f"{self.device}, more than {limit / 2**30:.1f} GiB: each batch ships its sources")
            return None
        bank = SourceBank.from_dataset(base, self.device)
        LOGGER.info(f"detaug: {len(base)} training images on {self.device} ({bank.nbytes / 2**30:.2f} GiB): "
                    "the loader ships plans only, the painter reads the images there")
        return bank

    def _write_replay_file(self, cfg: AugmentConfig, source: Any, fraction: float) -> None:
        fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "extra"}
        fields["mosaic_center"] = list(fields["mosaic_center"])
        info = {**fields, "seed": int(self.args.seed), "source": str(source), "fraction": fraction,
                "object_weighting": self.object_weighting}
        Path(self.save_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.save_dir) / "detaug.yaml").write_text(yaml.safe_dump(info, sort_keys=False), encoding="utf-8")

    def get_dataloader(self, dataset_path: Any, batch_size: int = 16, rank: int = 0, mode: str = "train") -> Any:
        """Training: an InfiniteDataLoader over the detaug set with a :class:`TrainerSampler`.

        Validation is Ultralytics' own loader. Workers follow ``args.workers``
        (which Ultralytics sets to 0 on a CPU device), at most the CPU count and
        the number of batches.
        """
        if mode != "train":
            return super().get_dataloader(dataset_path, batch_size, rank, mode)
        with torch_distributed_zero_first(rank):
            dataset = self.build_dataset(dataset_path, mode, batch_size)
        world = max(int(self.world_size or 1), 1)
        sampler = TrainerSampler(dataset, start_epoch=int(getattr(self, "epoch", self.start_epoch) or 0),
                                 num_replicas=world, rank=max(RANK, 0) if world > 1 else 0)
        batch = max(1, min(int(batch_size), len(sampler)))
        drop_last = bool(self.args.compile) and len(sampler) > batch and len(sampler) % batch != 0
        batches = len(sampler) // batch if drop_last else math.ceil(len(sampler) / batch)
        workers = min(int(self.args.workers), os.cpu_count() or 1, batches if batches > 1 else 0)
        return InfiniteDataLoader(
            dataset=dataset, batch_size=batch, sampler=sampler, num_workers=workers,
            collate_fn=UltralyticsDataset.collate_fn, pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers > 0 else None, drop_last=drop_last,
        )

    def preprocess_batch(self, batch: Any) -> dict[str, Any]:
        """Ultralytics' preprocessing; a :class:`PlanBatch` (``paint="device"``) is painted on the device first.

        Painting runs outside autocast (it is pixel arithmetic, not the model),
        then the Batch becomes Ultralytics' dict (:meth:`Batch.to_yolo`, with
        each sample's replay info under ``"detaug"``) and goes through the
        usual move, ``/ 255`` and multi-scale.
        """
        if isinstance(batch, PlanBatch):
            with torch.autocast(self.device.type, enabled=False):
                painted = self.painter(batch.to(self.device))
            metas = painted.metas or ()
            yolo = painted.to_yolo()
            if self.args.single_cls:
                yolo["cls"] = torch.zeros_like(yolo["cls"])
            yolo["detaug"] = tuple(replay_info(m) for m in metas)
            batch = yolo
        return super().preprocess_batch(batch)

    # ------------------------------------------------------------------ schedule

    def _setup_train(self) -> None:
        super()._setup_train()
        self.train_loader.sampler.restart(self.start_epoch)  # a resumed run continues its epochs
        model = unwrap_model(self.model)
        native = getattr(model, "criterion", None)  # set by Ultralytics when resuming a YOLO26 run
        model.criterion = weighted_criterion(model, self.object_weighting)
        for k in ("updates", "o2m", "o2o"):  # E2ELoss' one-to-many decay, carried over
            if hasattr(native, k):
                setattr(model.criterion, k, getattr(native, k))
        if RANK in {-1, 0}:
            c = self.augment
            LOGGER.info(
                f"detaug: training set from {self.data['train']}, seed {self.args.seed}, "
                f"mosaic={c.mosaic} mosaic9={c.mosaic9} mixup={c.mixup} Beta({c.mixup_alpha}, {c.mixup_beta}) "
                f"cutmix={c.cutmix}; {type(model.criterion).__name__} ({self.object_weighting} weighting); "
                f"replay info in {Path(self.save_dir) / 'detaug.yaml'}"
            )

    def _close_dataloader_mosaic(self) -> None:
        super()._close_dataloader_mosaic()  # the dataset's close_mosaic(hyp); Ultralytics logs it
        self.train_loader.sampler.restart(self.epoch)  # the reset iterator starts this very epoch
        if RANK in {-1, 0}:
            LOGGER.info(f"detaug: Mosaic, MixUp and CutMix off from epoch {self.epoch + 1} "
                        f"(close_mosaic={self.args.close_mosaic})")

    def _handle_nan_recovery(self, epoch: int) -> bool:
        redo = super()._handle_nan_recovery(epoch)
        if redo:  # the epoch is trained again: serve its keys again, not the prefetched next ones
            self.train_loader.sampler.restart(epoch)
            self.train_loader.reset()
        return redo
