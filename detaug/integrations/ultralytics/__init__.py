"""Ultralytics integration: train a YOLO model with detaug by changing two lines.

::

    from detaug.integrations.ultralytics import DetaugTrainer
    YOLO("yolo11n.yaml").train(data="coco128.yaml", epochs=100, trainer=DetaugTrainer)

Modules:

- :mod:`~detaug.integrations.ultralytics.dataset`: :class:`UltralyticsDataset`
  (Samples -> Ultralytics' per-sample dicts, collate, ``labels``,
  ``close_mosaic``); needs no Ultralytics.
- :mod:`~detaug.integrations.ultralytics.losses`: :class:`WeightedDetectionLoss`
  (YOLOv8/YOLO11), :class:`WeightedE2ELoss` (YOLO26), :func:`weighted_criterion`.
- :mod:`~detaug.integrations.ultralytics.trainer`: :class:`DetaugTrainer`,
  :func:`augment_config` (the mapping of Ultralytics' arguments).

Ultralytics is an optional peer: without it everything imports, and the
classes that need it raise ImportError when used.
"""

from detaug.integrations.ultralytics.dataset import (
    FirstItems,
    UltralyticsDataset,
    sample_to_ultralytics,
    yolo_labels,
)
from detaug.integrations.ultralytics.losses import (
    WeightedDetectionLoss,
    WeightedE2ELoss,
    weighted_criterion,
)
from detaug.integrations.ultralytics.trainer import (
    DETAUG_OPTIONS,
    MAPPED_ARGS,
    DetaugTrainer,
    TrainerSampler,
    augment_config,
)

__all__ = [
    "DetaugTrainer",
    "TrainerSampler",
    "augment_config",
    "MAPPED_ARGS",
    "DETAUG_OPTIONS",
    "UltralyticsDataset",
    "FirstItems",
    "sample_to_ultralytics",
    "yolo_labels",
    "WeightedDetectionLoss",
    "WeightedE2ELoss",
    "weighted_criterion",
]
