"""detaug: object-detection augmentation for YOLO-style training."""

from detaug.batch import Batch, collate
from detaug.batch_transforms import BatchHSV, BatchMixer
from detaug.config import AugmentConfig
from detaug.data import CocoDataset, MixDataset, YoloDataset
from detaug.io.validate import DatasetError
from detaug.sample import Sample

__all__ = [
    "Sample",
    "DatasetError",
    "YoloDataset",
    "CocoDataset",
    "AugmentConfig",
    "MixDataset",
    "collate",
    "Batch",
    "BatchMixer",
    "BatchHSV",
]
__version__ = "0.1.0"
