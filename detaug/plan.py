"""SamplePlan: everything about one augmented item, decided before any pixel is painted.

A plan is small, frozen and picklable. It says which source images an item
reads (dataset indices, in :attr:`SamplePlan.sources`), how each is warped
into a canvas (:class:`TileWarp`: a 3x3 map and the integer crop that is
drawn), how canvases are combined (:class:`Blend` for MixUp,
:class:`Paste` for CutMix), the colour jitter and the flips, the fill value,
and the final labels, computed once, in numpy, on the CPU.

Painters turn a plan plus its source images into pixels:
:func:`detaug.paint.paint` with OpenCV (the per-sample path, what
``MixDataset[i]`` returns) and the device painter of
:mod:`detaug.batch_transforms` with torch. Both read the same plan, so their
labels are identical by construction.

The painting program, in this order (``s = size``):

1. every canvas (``canvases[k]``, an ``s x s`` image): start from ``fill``;
   draw each :class:`TileWarp` (bilinear, OpenCV's pixel-centre convention:
   output pixel centre ``(x + 0.5, y + 0.5)`` maps back through the inverse of
   ``matrix`` to a continuous source point, source pixel ``(i, j)`` has its
   centre at ``(j + 0.5, i + 0.5)``; only pixels whose pre-image lies inside
   the tile's ``crop`` are written, except ``whole=True`` warps, which write
   every pixel, the fill where the pre-image leaves the source image);
   then, when ``frame`` is set, reset to ``fill`` every pixel whose centre
   lies outside the quad ``frame`` maps the square ``[0, frame_side]^2`` to;
2. ``image = canvas 0``; with :attr:`SamplePlan.blend`:
   ``image = lam * image + (1 - lam) * canvas[blend.canvas]``;
3. with :attr:`SamplePlan.paste`: ``image[y1:y2, x1:x2] = canvas[paste.canvas][y1:y2, x1:x2]``;
4. with :attr:`SamplePlan.hsv`: the HSV jitter of :func:`detaug.transforms.photometric.apply_hsv`;
5. flips: left-right, then up-down.

>>> import numpy as np
>>> from detaug.sample import Labels
>>> lab = Labels((8, 8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
>>> warp = TileWarp(source=0, crop=(0, 0, 8, 8), matrix=np.eye(3))
>>> p = SamplePlan(size=8, fill=(114, 114, 114), sources=(3,), source_sizes=((8, 8),),
...                canvases=(CanvasPlan((warp,)),), labels=lab)
>>> p.num_sources, p.canvases[0].warps[0].crop
(1, (0, 0, 8, 8))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detaug.canvas import CanvasPlan, TileWarp
from detaug.sample import Labels

__all__ = ["TileWarp", "CanvasPlan", "Blend", "Paste", "SamplePlan"]  # TileWarp, CanvasPlan: re-exported from canvas


@dataclass(frozen=True)
class Blend:
    """MixUp: ``lam * image + (1 - lam) * canvases[canvas]`` (float32, rounded half up)."""

    canvas: int
    lam: float


@dataclass(frozen=True)
class Paste:
    """CutMix: ``image[y1:y2, x1:x2] = canvases[canvas][y1:y2, x1:x2]``; ``rect`` is int (x1, y1, x2, y2)."""

    canvas: int
    rect: tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class SamplePlan:
    """Everything about one augmented item (see the module docs for the painting program).

    Attributes:
        size: s, the side of every canvas and of the output.
        fill: (r, g, b) uint8 levels where no source reaches.
        sources: dataset indices of the images read, each once.
        source_sizes: (h, w) of each source image as served, aligned with ``sources``.
        canvases: canvas 0 is the item's own; others are mixing partners.
        blend: MixUp, or None.
        paste: CutMix, or None (applied after ``blend``).
        hsv: (hue, saturation, value) gains of the colour jitter, or None.
        flip_lr, flip_ud: flips, applied last.
        labels: the final objects, in the ``s x s`` output frame, and the meta
            of the served Sample (index, epoch, seed, tiles, mixed_with, ...).
    """

    size: int
    fill: tuple[int, int, int]
    sources: tuple[int, ...]
    source_sizes: tuple[tuple[int, int], ...]
    canvases: tuple[CanvasPlan, ...]
    labels: Labels
    blend: Blend | None = None
    paste: Paste | None = None
    hsv: tuple[float, float, float] | None = None
    flip_lr: bool = False
    flip_ud: bool = False

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.source_sizes):
            raise ValueError(f"source_sizes: expected {len(self.sources)} (one per source), got {len(self.source_sizes)}")
        if not self.canvases:
            raise ValueError("canvases: a plan needs at least one canvas")
        for c in self.canvases:
            for w in c.warps:
                if not 0 <= w.source < len(self.sources):
                    raise ValueError(f"canvases: a warp reads source {w.source}, the plan has {len(self.sources)}")
        for step in (self.blend, self.paste):
            if step is not None and not 0 < step.canvas < len(self.canvases):
                raise ValueError(f"{type(step).__name__.lower()}: canvas {step.canvas} is not a partner canvas")
        if self.labels.size != (self.size, self.size):
            raise ValueError(f"labels: expected size {(self.size, self.size)}, got {self.labels.size}")

    @property
    def num_sources(self) -> int:
        """Number of distinct source images the plan reads."""
        return len(self.sources)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.size, self.fill, self.sources, self.source_sizes, self.canvases, self.labels,
                             self.blend, self.paste, self.hsv, self.flip_lr, self.flip_ud))

    def check_images(self, images: Any) -> None:
        """ValueError unless ``images`` is one (h, w, 3) uint8 array per source, of the size in ``source_sizes``."""
        if len(images) != self.num_sources:
            raise ValueError(f"images: the plan reads {self.num_sources} sources, got {len(images)} images")
        for k, (img, hw) in enumerate(zip(images, self.source_sizes, strict=True)):
            if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (hw[0], hw[1], 3)):
                raise ValueError(f"images: source {k} (dataset index {self.sources[k]}) should be a "
                                 f"{hw[0]}x{hw[1]}x3 uint8 image, got {getattr(img, 'shape', None)} "
                                 f"{getattr(img, 'dtype', type(img).__name__)}")

    def describe(self) -> str:
        """A few human-readable lines: sources, canvases, mixing, colour, flips, objects."""
        lines = [f"plan: {self.size}x{self.size}, fill {self.fill}, sources {list(self.sources)}"]
        for k, c in enumerate(self.canvases):
            reads = ", ".join(f"#{self.sources[w.source]}{' crop ' + str(w.crop) if not w.whole else ''}"
                              for w in c.warps)
            kind = "mosaic" if c.frame is not None else "affine"
            lines.append(f"  canvas {k} ({kind}, {len(c.warps)} warps): {reads}")
        if self.blend is not None:
            lines.append(f"  mixup: canvas {self.blend.canvas}, lam {self.blend.lam:.3f}")
        if self.paste is not None:
            lines.append(f"  cutmix: canvas {self.paste.canvas}, rect {self.paste.rect}")
        if self.hsv is not None:
            lines.append("  hsv gains: " + ", ".join(f"{g:.3f}" for g in self.hsv))
        lines.append(f"  flips: lr={self.flip_lr} ud={self.flip_ud}; objects: {self.labels.num_objects}")
        return "\n".join(lines)
