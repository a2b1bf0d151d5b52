"""detaug: object-detection augmentation for YOLO-style training.

The names below are imported on first use (PEP 562), so ``import detaug.io``
or ``detaug.sample`` does not pull in torch and the batch stage.

>>> import detaug
>>> detaug.Sample.__name__, "MixDataset" in detaug.__all__
('Sample', True)
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "Sample": "detaug.sample",
    "Labels": "detaug.sample",
    "SamplePlan": "detaug.plan",
    "DatasetError": "detaug.io.validate",
    "YoloDataset": "detaug.data",
    "CocoDataset": "detaug.data",
    "AugmentConfig": "detaug.config",
    "MixDataset": "detaug.mix_dataset",
    "EpochSampler": "detaug.sampler",
    "collate": "detaug.batch",
    "Batch": "detaug.batch",
    "BatchMixer": "detaug.batch_transforms",
    "BatchHSV": "detaug.batch_transforms",
    "collate_plans": "detaug.batch_transforms",
    "DevicePainter": "detaug.batch_transforms",
    "SourceBank": "detaug.batch_transforms",
}

__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'detaug' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
