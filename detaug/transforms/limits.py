"""The valid range of every hyperparameter, written once: the transforms and AugmentConfig both check here.

>>> check_range("shear", 10)
10.0
>>> check_range("translate", 1.5)
Traceback (most recent call last):
...
ValueError: translate must be in [0, 1] (fraction of the output size), got 1.5
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LIMITS", "check_range", "check_beta", "check_int", "MIN_IMG_SIZE", "check_img_size"]

#: name -> (lowest, highest, what the unit is). Ultralytics' own checks are
#: looser or absent; these are the ranges inside which the maths is meaningful.
LIMITS: dict[str, tuple[float, float, str]] = {
    "mosaic": (0.0, 1.0, "probability"),
    "mosaic9": (0.0, 1.0, "probability"),
    "mixup": (0.0, 1.0, "probability"),
    "cutmix": (0.0, 1.0, "probability"),
    "flipud": (0.0, 1.0, "probability"),
    "fliplr": (0.0, 1.0, "probability"),
    "degrees": (0.0, 180.0, "degrees"),
    "translate": (0.0, 1.0, "fraction of the output size"),
    "scale": (0.0, 0.99, "the range is 1 - scale .. 1 + scale"),
    "shear": (0.0, 89.0, "degrees"),
    "perspective": (0.0, 0.1, "projective term; Ultralytics uses 0 to 0.001"),
    "hsv_h": (0.0, 1.0, "gain range"),
    "hsv_s": (0.0, 1.0, "gain range"),
    "hsv_v": (0.0, 1.0, "gain range"),
    "min_size": (0.0, math.inf, "pixels"),
    "min_area_ratio": (0.0, 1.0, "ratio"),
    "max_aspect_ratio": (1.0, math.inf, "ratio"),
    "min_visible": (0.0, 1.0, "fraction"),
}

#: Smallest output side: a Mosaic needs a centre strictly inside the frame.
MIN_IMG_SIZE = 2


def check_range(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number inside ``LIMITS[name]``; ValueError naming ``name`` otherwise."""
    lo, hi, what = LIMITS[name]
    expected = f"a probability in [{lo:g}, {hi:g}]" if what == "probability" else f"in [{lo:g}, {hi:g}] ({what})"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number {expected}, got {value!r}")
    v = float(value)
    if math.isnan(v) or not (lo <= v <= hi) or (math.isinf(v) and not math.isinf(hi)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return v


def check_beta(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number > 0 (a Beta distribution's parameter); ValueError naming ``name``.

    >>> check_beta("mixup_alpha", 1.5)
    1.5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or not float(value) > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_int(name: str, value: object, lo: int = 0) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``lo``; ValueError naming ``name`` otherwise.

    >>> check_int("epoch", 3)
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}: expected an int >= {lo}, got {value!r}")
    return int(value)


def check_img_size(value: object, name: str = "img_size") -> int:
    """``value`` as an int >= MIN_IMG_SIZE; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < MIN_IMG_SIZE:
        raise ValueError(f"{name} must be an int >= {MIN_IMG_SIZE}, got {value!r}")
    return int(value)
