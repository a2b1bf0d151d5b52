"""BatchHSV: the HSV colour jitter of a whole :class:`~detaug.batch.Batch`, on its device.

The same jitter as the per-sample :class:`~detaug.transforms.photometric.RandomHSV`
(:func:`~detaug.transforms.photometric.apply_hsv`), vectorised over the batch in
torch so a trainer can turn HSV off in the loader (``AugmentConfig(hsv_h=0,
hsv_s=0, hsv_v=0)``) and run it on the GPU instead. Per image: RGB -> OpenCV
8-bit HSV (H in 0..179) -> the three tables -> HSV -> RGB.

The tables are the per-sample path's own: :func:`batch_hsv_luts` builds them
with the numpy :func:`~detaug.transforms.photometric.hsv_luts` (one rule, on
the CPU: B x 3 x 256 bytes) and moves them to the batch's device. Both
colour conversions are written out in torch to reproduce OpenCV's 8-bit ones
bit for bit (:func:`rgb_to_hsv8`, :func:`hsv8_to_rgb`, :func:`jitter_pixels`
are the pixel kernels, also used by the device painter):

* RGB -> HSV (:func:`rgb_to_hsv8`) is OpenCV's integer algorithm: ``V = max``,
  ``S`` and ``H`` from fixed-point reciprocal tables (12 fractional bits,
  rounded). Exact on all 2^24 colours (integer ops, so on every device).
* HSV -> RGB (:func:`hsv8_to_rgb`) is OpenCV's float32 sector formula, with
  ``1 - s * f`` fused (one rounding, as OpenCV's FMA build computes it) and the
  result truncated to uint8, which is what OpenCV 5.0's SIMD path returns.
  Exact on all 180 * 256 * 256 HSV triples against the OpenCV 5.0 x86-64
  (AVX2) wheel. OpenCV's scalar tail (the last ``W mod 32`` pixels of each
  image row with AVX2) rounds instead of truncating, so for widths that are
  not a multiple of the SIMD width ``apply_hsv`` differs from this by at most
  1 grey level there (and so may a build without FMA). On CUDA, float32
  rounding in HSV -> RGB may differ by 1 at a boundary.

>>> import numpy as np
>>> from detaug.sample import Sample
>>> from detaug.batch import collate
>>> batch = collate([Sample.create(np.full((2, 2, 3), (200, 100, 50), np.uint8))] * 2)
>>> out = BatchHSV().apply(batch, BatchHSVParams(gains=torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.5]])))
>>> out.images[:, :, 0, 0].tolist()
[[200, 100, 50], [100, 50, 25]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from detaug.batch import Batch
from detaug.batch_transforms.base import DEFAULT_SEED, BatchTransform
from detaug.transforms.photometric import hsv_luts

__all__ = [
    "BatchHSV",
    "BatchHSVParams",
    "CPU_STEP_PIXELS",
    "batch_hsv_luts",
    "rgb_to_hsv8",
    "hsv8_to_rgb",
    "jitter_pixels",
]

#: Pixels of every image handled per step on the CPU (the temporaries of a
#: step, ~60 bytes a pixel, then stay in cache). Other devices do one step.
#: Read at every call (tests shrink it).
CPU_STEP_PIXELS = 4096

_SHIFT = 12  # OpenCV's hsv_shift: fractional bits of the reciprocal tables
# Sector (0..5) -> which of (v, p, q, t) is R, G, B (OpenCV's sector formula).
_SECTORS = ((0, 3, 1), (2, 0, 1), (1, 0, 3), (1, 2, 0), (3, 1, 0), (0, 1, 2))


@dataclass(frozen=True, eq=False)
class BatchHSVParams:
    """The gains of one batch HSV jitter (a tensor on the batch's device).

    Attributes:
        gains: (B, 3) float32, per image (hue, saturation, value) gains as in
            :class:`~detaug.transforms.photometric.HSVParams`: the hue shifts
            by ``(g - 1) * 180`` OpenCV units, saturation and value multiply.
            A row of exactly ``(1, 1, 1)`` leaves its image unchanged.
    """

    gains: torch.Tensor

    def __post_init__(self) -> None:
        g = self.gains
        if g.ndim != 2 or g.shape[1] != 3 or not g.is_floating_point():
            raise ValueError(f"gains: expected (B, 3) float, got {tuple(g.shape)} {g.dtype}")
        object.__setattr__(self, "gains", g.to(torch.float32))

    def to(self, device: torch.device | str) -> BatchHSVParams:
        """The params on ``device``."""
        return BatchHSVParams(gains=self.gains.to(device))


# ----------------------------------------------------------------------------- kernels
def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's fixed-point reciprocals, (256,) int32: ``round(255 * 2^12 / i)`` and ``round(30 * 2^12 / i)``.

    Entry 0 is 0 (V = 0 gives S = 0; no spread gives H = 0).
    """
    i = torch.arange(256, dtype=torch.float64, device=device)
    safe = i.clamp_min(1.0)
    sdiv = torch.where(i > 0, torch.round((255 << _SHIFT) / safe), 0.0).to(torch.int32)
    hdiv = torch.where(i > 0, torch.round((180 << _SHIFT) / (6.0 * safe)), 0.0).to(torch.int32)
    return sdiv, hdiv


def rgb_to_hsv8(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV's 8-bit RGB -> HSV of three equally shaped integer tensors (values 0..255).

    Returns int64 ``(h, s, v)``: ``v = max``, ``s = round(255 * (v - min) / v)``
    and ``h`` the hue in 2-degree units (0..179), both through OpenCV's
    rounded reciprocal tables, so the result is OpenCV's exactly.

    >>> t = lambda *v: torch.tensor(v)
    >>> [x.tolist() for x in rgb_to_hsv8(t(255, 0, 10), t(0, 255, 20), t(0, 0, 30))]
    [[0, 60, 105], [255, 255, 170], [255, 255, 30]]
    """
    sdiv, hdiv = _tables(r.device)
    r, g, b = r.to(torch.int32), g.to(torch.int32), b.to(torch.int32)
    v = torch.maximum(torch.maximum(r, g), b)
    d = v - torch.minimum(torch.minimum(r, g), b)
    half = 1 << (_SHIFT - 1)
    s = (d * sdiv[v.long()] + half) >> _SHIFT
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * d, r - g + 4 * d))
    h = (h * hdiv[d.long()] + half) >> _SHIFT
    h = torch.where(h < 0, h + 180, h)
    return h.long(), s.long(), v.long()


def hsv8_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit HSV -> RGB: integer ``h`` in 0..179, ``s``, ``v`` in 0..255 (same shape S).

    Float32 sector formula on ``h / 30``, ``s / 255``, ``v / 255`` (each as
    OpenCV scales them), ``1 - s * f`` with a single rounding (float64, exact
    for these operands), times 255, truncated.

    Returns:
        (3, *S) uint8, channels R, G, B.

    >>> t = lambda *v: torch.tensor(v)
    >>> hsv8_to_rgb(t(0, 60, 105), t(255, 255, 170), t(255, 255, 30)).tolist()
    [[255, 0, 10], [0, 255, 19], [0, 0, 30]]
    """
    f32, f64 = torch.float32, torch.float64
    hf = h.to(f32) * torch.tensor(6.0 / 180.0, dtype=f32)
    sf = s.to(f32) * torch.tensor(1.0 / 255.0, dtype=f32)
    vf = v.to(f32) * torch.tensor(1.0 / 255.0, dtype=f32)
    sector = torch.floor(hf)
    frac = hf - sector
    s64 = sf.to(f64)
    p = vf * (1.0 - sf)
    q = vf * (1.0 - s64 * frac.to(f64)).to(f32)
    t = vf * (1.0 - s64 * (1.0 - frac).to(f64)).to(f32)
    tab = torch.stack([vf, p, q, t]).mul_(255.0)  # (4, *S)
    pick = torch.tensor(_SECTORS, dtype=torch.int64, device=h.device)[sector.long().clamp_(0, 5)]  # (*S, 3)
    rgb = tab.gather(0, pick.movedim(-1, 0))
    return rgb.clamp_(0.0, 255.0).to(torch.uint8)  # truncation, as OpenCV 5's 8-bit path


def batch_hsv_luts(gains: torch.Tensor) -> torch.Tensor:
    """(B, 3) gains -> (B, 3, 256) int64 tables on the gains' device: row by row
    :func:`~detaug.transforms.photometric.hsv_luts` (numpy, on the CPU; one host sync).

    >>> batch_hsv_luts(torch.tensor([[1.5, 2.0, 0.5]]))[0, :, 100].tolist()
    [10, 200, 50]
    """
    rows = gains.detach().to("cpu", torch.float64).numpy().reshape(-1, 3)
    tables = np.stack([hsv_luts(g) for g in rows]) if len(rows) else np.zeros((0, 3, 256), np.uint8)
    return torch.from_numpy(tables.astype(np.int64)).to(gains.device)


def jitter_pixels(pixels: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """The HSV jitter of (B, 3, N) uint8 RGB pixels through (B, 3, 256) int64 tables.

    Returns a new (B, 3, N) uint8 tensor (every row goes through the round trip).
    """
    h, s, v = rgb_to_hsv8(pixels[:, 0], pixels[:, 1], pixels[:, 2])
    h = luts[:, 0].gather(1, h)
    s = luts[:, 1].gather(1, s)
    v = luts[:, 2].gather(1, v)
    return hsv8_to_rgb(h, s, v).transpose(0, 1)


# ----------------------------------------------------------------------------- transform
class BatchHSV(BatchTransform[BatchHSVParams]):
    """Random hue, saturation and value gains for every image of a batch, on its device.

    Args:
        hsv_h, hsv_s, hsv_v: gain ranges (>= 0), as
            :class:`~detaug.transforms.photometric.RandomHSV`: each gain is
            ``1 + U(-1, 1) * range``, drawn per image.
        generator: a ``torch.Generator`` on the device the batches will be on
            (``None``: one per device, seeded with ``seed``).
        seed: seed of the lazily created generators.

    Only the images change (uint8 in, uint8 out; padding is jittered like the
    rest, it is never looked at); the input batch is never written into.
    """

    def __init__(
        self,
        hsv_h: float = 0.015,
        hsv_s: float = 0.7,
        hsv_v: float = 0.4,
        generator: torch.Generator | None = None,
        seed: int = DEFAULT_SEED,
    ) -> None:
        super().__init__(generator, seed)
        for name, value in (("hsv_h", hsv_h), ("hsv_s", hsv_s), ("hsv_v", hsv_v)):
            if not (isinstance(value, (int, float)) and value >= 0 and value < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.hsv_h, self.hsv_s, self.hsv_v = float(hsv_h), float(hsv_s), float(hsv_v)

    def __repr__(self) -> str:
        return f"BatchHSV(hsv_h={self.hsv_h}, hsv_s={self.hsv_s}, hsv_v={self.hsv_v})"

    def sample_params(self, batch: Batch) -> BatchHSVParams:
        """``gains = U(-1, 1) * (hsv_h, hsv_s, hsv_v) + 1``, one (B, 3) float32 draw on the batch's device."""
        dev = batch.device
        u = torch.rand((batch.batch_size, 3), generator=self.generator_for(dev), device=dev)
        ranges = torch.tensor([self.hsv_h, self.hsv_s, self.hsv_v], dtype=torch.float32, device=dev)
        return BatchHSVParams(gains=(u * 2.0 - 1.0) * ranges + 1.0)

    def apply(self, batch: Batch, params: BatchHSVParams) -> Batch:
        """Jitter every image of ``batch`` by its row of ``params.gains`` (a new Batch).

        Image ``i`` equals ``apply_hsv(image_i_hwc, gains[i])`` (see the module
        docstring for the exactness); rows with gains exactly ``(1, 1, 1)``
        are copied unchanged. On the CPU the pixels go in steps of
        :data:`CPU_STEP_PIXELS` per image (a loop over memory blocks, never
        over images).
        """
        images = batch.images
        if images.dtype != torch.uint8:
            raise ValueError(f"batch.images: BatchHSV jitters uint8 images, got {images.dtype}")
        n = batch.batch_size
        if params.gains.shape[0] != n:
            raise ValueError(f"params: made for a batch of {params.gains.shape[0]} images, this one has {n}")
        if params.gains.device != images.device:
            raise ValueError(f"params: on {params.gains.device}, the batch is on {images.device}")
        _, c, hgt, wid = images.shape
        npx = hgt * wid
        src = images.contiguous().view(n, c, npx)
        out = torch.empty_like(src)
        luts = batch_hsv_luts(params.gains)
        keep = (params.gains == 1.0).all(dim=1).view(n, 1, 1)
        step = CPU_STEP_PIXELS if images.device.type == "cpu" else max(npx, 1)
        for p0 in range(0, npx, step):  # blocks of memory, not images
            chunk = src[:, :, p0 : p0 + step]
            out[:, :, p0 : p0 + step] = torch.where(keep, chunk, jitter_pixels(chunk, luts))
        return batch.replace(images=out.view(images.shape))
