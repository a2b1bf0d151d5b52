"""detaug: object-detection augmentation for YOLO-style training."""

from detaug.batch import Batch, collate
from detaug.batch_transforms import BatchHSV, BatchMixer, DevicePainter, SourceBank, collate_plans
from detaug.config import AugmentConfig
from detaug.data import CocoDataset, MixDataset, YoloDataset
from detaug.io.validate import DatasetError
from detaug.plan import SamplePlan
from detaug.sample import Labels, Sample
from detaug.sampler import EpochSampler

__all__ = [
    "Sample",
    "Labels",
    "SamplePlan",
    "DatasetError",
    "YoloDataset",
    "CocoDataset",
    "AugmentConfig",
    "MixDataset",
    "EpochSampler",
    "collate",
    "Batch",
    "BatchMixer",
    "BatchHSV",
    "collate_plans",
    "DevicePainter",
    "SourceBank",
]
__version__ = "0.1.0"
