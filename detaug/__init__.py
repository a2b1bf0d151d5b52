"""detaug: object-detection augmentation for YOLO-style training."""

from detaug.sample import Sample

__all__ = ["Sample"]
__version__ = "0.1.0"
