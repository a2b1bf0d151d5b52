"""Batch transforms: torch steps on a collated :class:`~detaug.batch.Batch`, on its device.

Mirrors :mod:`detaug.transforms`: :mod:`~detaug.batch_transforms.base` (the
protocol and the per-device generators), :mod:`~detaug.batch_transforms.mixer`
(:class:`BatchMixer`: MixUp and CutMix), :mod:`~detaug.batch_transforms.hsv`
(:class:`BatchHSV`), :mod:`~detaug.batch_transforms.plan_batch` and
:mod:`~detaug.batch_transforms.painter` (:func:`collate_plans` packs
:class:`~detaug.plan.SamplePlan` s and their sources; :class:`DevicePainter`
paints them on the batch's device), :mod:`~detaug.batch_transforms.kernels` (pixel kernels),
:mod:`~detaug.batch_transforms.sampling` (Beta draws and pairings from a
``torch.Generator``) and :mod:`~detaug.batch_transforms.reference` (the slow
per-sample references, for tests and benchmarks only). Labels are always
computed by the per-sample numpy rules; only pixels are painted here.
"""

from detaug.batch_transforms.base import BatchTransform
from detaug.batch_transforms.hsv import BatchHSV, BatchHSVParams
from detaug.batch_transforms.mixer import BatchMixer, BatchMixParams
from detaug.batch_transforms.painter import DevicePainter
from detaug.batch_transforms.plan_batch import PlanBatch, collate_plans
from detaug.batch_transforms.source_bank import SourceBank

__all__ = [
    "BatchTransform", "BatchMixer", "BatchMixParams", "BatchHSV", "BatchHSVParams", "DevicePainter", "PlanBatch",
    "collate_plans", "SourceBank",
]
