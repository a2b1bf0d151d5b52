"""AugmentConfig: the augmentation hyperparameters of a MixDataset.

Field names follow Ultralytics' hyperparameter keys where one exists
(``mosaic, mixup, cutmix, degrees, translate, scale, shear, perspective,
flipud, fliplr, hsv_h, hsv_s, hsv_v, close_mosaic``), so an Ultralytics
``hyp.yaml`` means the same thing here; the rest are detaug's own, named
``<op>_<argument>`` after the transform argument they set (``mixup_alpha`` is
``MixUp(alpha)``, ``mosaic_center`` is ``Mosaic(center)``,
``cutmix_on_background`` is ``CutMix(on_background)``). ``img_size`` and
``fill`` are the same names in every op, ``collate`` and ``BatchMixer``.
Valid ranges are :data:`detaug.transforms.limits.LIMITS`, the table the
transforms check too.

>>> cfg = AugmentConfig(mixup=0.2, degrees=5)
>>> cfg.mosaic, cfg.mixup, cfg.mixup_alpha
(1.0, 0.2, 1.5)
>>> AugmentConfig(mixup=1.5)
Traceback (most recent call last):
...
ValueError: mixup must be a probability in [0, 1], got 1.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from detaug.canvas import Fill, as_fill
from detaug.transforms.affine import RandomAffine
from detaug.transforms.base import BoxFilter
from detaug.transforms.cutmix import CutMix
from detaug.transforms.limits import LIMITS, check_beta, check_img_size, check_range
from detaug.transforms.mixup import MixUp
from detaug.transforms.mosaic import Mosaic
from detaug.transforms.photometric import RandomFlip, RandomHSV

__all__ = ["AugmentConfig", "Pipeline"]

# Keys of an Ultralytics hyp/default yaml whose name differs from ours.
_ALIASES = {"imgsz": "img_size"}


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation hyperparameters (Ultralytics names where they exist).

    Probabilities:
        mosaic: probability of Mosaic (otherwise the random affine alone).
        mosaic9: given a Mosaic, probability that it has 9 tiles instead of 4.
        mixup: probability of detection MixUp with a second pre-transformed sample.
        cutmix: probability of detection CutMix with a second pre-transformed sample.
        flipud, fliplr: probabilities of vertical / horizontal flips.

    Geometry (Ultralytics RandomPerspective semantics):
        degrees: rotation drawn uniformly in (-degrees, degrees).
        translate: translation drawn in (-translate, translate) x output size.
        scale: scale drawn in (1 - scale, 1 + scale); 0 <= scale < 1.
        shear: shear angle drawn in (-shear, shear) degrees per axis.
        perspective: projective terms drawn in (-perspective, perspective).
        mosaic_center: range of the Mosaic centre as a fraction of img_size.
        fill: grey level of pixels no source reaches.

    Box filter after every geometric step:
        min_size: minimum box width and height in pixels.
        min_area_ratio: minimum area / area of the same box transformed but not clipped.
        max_aspect_ratio: maximum of w/h and h/w.

    Mixing:
        mixup_alpha, mixup_beta: Beta(alpha, beta) of MixUp's lambda (1.5, 1.5 as in
            "Bag of Freebies"; Ultralytics uses 32, 32).
        cutmix_alpha: Beta(alpha, alpha) of CutMix's lambda.
        min_visible: CutMix drops objects whose visible fraction is below this.
        weight_by_visibility: CutMix multiplies an object's weight by its visible fraction.
        cutmix_on_background: CutMix only where the rectangle covers no base box.

    Colour:
        hsv_h, hsv_s, hsv_v: HSV gains (Ultralytics semantics).

    Schedule:
        img_size: output side s (images are s x s).
        close_mosaic: Mosaic, MixUp and CutMix are off for the last ``close_mosaic``
            epochs when ``epochs`` is given.
        epochs: total number of training epochs, or None (never close).
    """

    mosaic: float = 1.0
    mosaic9: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    close_mosaic: int = 10
    epochs: int | None = None
    img_size: int = 640
    mosaic_center: tuple[float, float] = (0.5, 1.5)
    fill: int = 114
    mixup_alpha: float = 1.5
    mixup_beta: float = 1.5
    cutmix_alpha: float = 1.0
    min_size: float = 2.0
    min_area_ratio: float = 0.1
    max_aspect_ratio: float = 100.0
    min_visible: float = 0.3
    weight_by_visibility: bool = True
    cutmix_on_background: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in LIMITS:
            check_range(name, getattr(self, name))
        for name in ("mixup_alpha", "mixup_beta", "cutmix_alpha"):
            check_beta(name, getattr(self, name))
        _check("fill", self.fill, 0, 255, "in [0, 255]")
        check_img_size(self.img_size)
        if not isinstance(self.close_mosaic, int) or self.close_mosaic < 0:
            raise ValueError(f"close_mosaic must be an int >= 0, got {self.close_mosaic!r}")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise ValueError(f"epochs must be None or an int >= 1, got {self.epochs!r}")
        c = tuple(self.mosaic_center)
        if len(c) != 2 or not all(_is_number(v) for v in c) or not 0.0 <= c[0] <= c[1] <= 2.0:
            raise ValueError(f"mosaic_center must be (lo, hi) with 0 <= lo <= hi <= 2, got {self.mosaic_center!r}")
        object.__setattr__(self, "mosaic_center", (float(c[0]), float(c[1])))
        for name in ("weight_by_visibility", "cutmix_on_background"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    def mixing_active(self, epoch: int) -> bool:
        """False during the last ``close_mosaic`` epochs (when ``epochs`` is set)."""
        return self.epochs is None or epoch < self.epochs - self.close_mosaic

    def pipeline(self) -> Pipeline:
        """The transforms this config stands for, built once (what :class:`~detaug.mix_dataset.MixDataset` runs).

        >>> p = AugmentConfig(img_size=64, degrees=5, fill=0).pipeline()
        >>> p.mosaic4.n, p.affine.degrees, p.fill
        (4, 5.0, (0, 0, 0))
        """
        box_filter = BoxFilter(self.min_size, self.min_area_ratio, self.max_aspect_ratio)
        s = self.img_size
        affine = RandomAffine(degrees=self.degrees, translate=self.translate, scale=self.scale, shear=self.shear,
                              perspective=self.perspective, img_size=s, fill=self.fill, box_filter=box_filter)
        return Pipeline(
            box_filter=box_filter,
            affine=affine,
            mosaic4=Mosaic(4, s, self.mosaic_center, affine, self.fill, box_filter),
            mosaic9=Mosaic(9, s, self.mosaic_center, affine, self.fill, box_filter),
            mixup=MixUp(self.mixup_alpha, self.mixup_beta),
            cutmix=CutMix(self.cutmix_alpha, self.min_visible, self.weight_by_visibility, self.cutmix_on_background),
            hsv=RandomHSV(self.hsv_h, self.hsv_s, self.hsv_v),
            fliplr=RandomFlip("horizontal", self.fliplr),
            flipud=RandomFlip("vertical", self.flipud),
            fill=as_fill(self.fill),
        )

    def replace(self, **changes: Any) -> AugmentConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], strict: bool = True) -> AugmentConfig:
        """Build from a mapping such as an Ultralytics hyp file.

        Args:
            values: field names (or Ultralytics aliases such as ``imgsz``) to values.
                ``imgsz``/``img_size`` may be a list or tuple ``[h, w]``, as Ultralytics
                accepts: the output side is its largest value (what Ultralytics'
                trainer trains at for a list); a one-element list is that side.
            strict: unknown keys raise ValueError naming them; with ``strict=False``
                they are kept in ``extra`` (an Ultralytics ``default.yaml`` has many
                keys that are not augmentation settings).

        >>> AugmentConfig.from_dict({"imgsz": [480, 640], "mixup": 0.1}).img_size
        640
        """
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in values.items():
            name = _ALIASES.get(key, key)
            if name == "img_size" and isinstance(value, (list, tuple)):
                if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise ValueError(f"{key} must be an int or a list of ints, got {value!r}")
                kwargs[name] = max(value)
            elif name in known:
                kwargs[name] = tuple(value) if isinstance(value, list) else value
            else:
                extra[key] = value
        if extra and strict:
            raise ValueError(f"unknown augmentation keys: {sorted(extra)} (pass strict=False to ignore them)")
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_yaml(cls, path: str | Path, strict: bool = True) -> AugmentConfig:
        """Load from a yaml mapping; errors name the file."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{path}: cannot read augmentation config: {e}") from e
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a mapping of augmentation settings, got {type(data).__name__}")
        try:
            return cls.from_dict(data, strict=strict)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from e


@dataclass(frozen=True)
class Pipeline:
    """The transforms of an :class:`AugmentConfig` (:meth:`AugmentConfig.pipeline`), in the order they run.

    Mosaic-4 or -9 (fused with ``affine``) or ``affine`` alone; ``mixup``;
    ``cutmix``; ``hsv``, ``fliplr``, ``flipud``. Every geometric step uses
    ``box_filter``; every canvas is filled with ``fill``.
    """

    box_filter: BoxFilter
    affine: RandomAffine
    mosaic4: Mosaic
    mosaic9: Mosaic
    mixup: MixUp
    cutmix: CutMix
    hsv: RandomHSV
    fliplr: RandomFlip
    flipud: RandomFlip
    fill: Fill


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(name: str, v: Any, lo: float, hi: float, what: str) -> None:
    if not _is_number(v) or not (lo <= v <= hi):
        raise ValueError(f"{name} must be {what}, got {v!r}")
