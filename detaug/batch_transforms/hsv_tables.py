"""OpenCV's 8-bit RGB <-> HSV conversions tabulated once per device, and the colour jitter through them.

:class:`~detaug.batch_transforms.painter.DevicePainter` jitters a batch with
:func:`jitter`: bit for bit :func:`~detaug.batch_transforms.hsv.jitter_pixels`
(the rule lives only in :mod:`~detaug.batch_transforms.hsv`, whose kernels
fill the tables), at two table reads and one read of the per-image tables per
pixel. The forward table holds packed words whose bytes the per-image tables
map in place, so a jittered word is the row of the backward table as it is.

>>> px = torch.tensor([[[255, 10], [0, 200], [0, 30]]], dtype=torch.uint8)  # (1, 3, 2): red, a blue-green
>>> same = torch.arange(256, dtype=torch.uint8).expand(1, 3, 256)
>>> jitter(px, same).tolist()  # identity tables: OpenCV's 8-bit round trip (cvtColor there and back)
[[[255, 0, 0], [10, 200, 29]]]
"""

from __future__ import annotations

import sys

import torch

from detaug.batch_transforms import hsv

__all__ = ["tables", "jitter"]

_HSV_TABLES: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

#: The channel (0 h, 1 s, 2 v, 3 none) in each byte of a packed HSV word, in memory order: the word read as an
#: int32 is ``h << 16 | s << 8 | v``, the row of the HSV -> RGB table (:func:`tables`).
_WORD_CHANNELS = (2, 1, 0, 3) if sys.byteorder == "little" else (3, 0, 1, 2)


def tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's 8-bit conversions tabulated by the kernels of :mod:`~detaug.batch_transforms.hsv`, on ``device``.

    ``(2^24,)`` int32 packed (h, s, v) words (:data:`_WORD_CHANNELS`) of every
    RGB colour (row ``r << 16 | g << 8 | b``) and ``(180 * 2^16, 3)`` uint8 RGB
    of every HSV triple (row ``h << 16 | s << 8 | v``):
    :func:`~detaug.batch_transforms.hsv.rgb_to_hsv8` and
    :func:`~detaug.batch_transforms.hsv.hsv8_to_rgb` evaluated once per device and
    process (100 MB; the rule stays in hsv.py), so a jitter is two table reads
    and one read of the per-image tables instead of ~50 int64/float32 passes.
    """
    got = _HSV_TABLES.get(device)
    if got is None:
        fwd = torch.zeros((1 << 24, 4), dtype=torch.uint8, device=device)
        bwd = torch.empty((180 << 16, 3), dtype=torch.uint8, device=device)
        step = 1 << 20
        for c0 in range(0, 1 << 24, step):  # memory blocks of a one-off table
            c = torch.arange(c0, c0 + step, dtype=torch.int64, device=device)
            hsv8 = hsv.rgb_to_hsv8(c >> 16, (c >> 8) & 255, c & 255)
            for lane, ch in enumerate(_WORD_CHANNELS):
                if ch < 3:
                    fwd[c0 : c0 + step, lane] = hsv8[ch]
            if c0 < (180 << 16):
                c = c[: (180 << 16) - c0]
                bwd[c0 : c0 + step] = hsv.hsv8_to_rgb(c >> 16, (c >> 8) & 255, c & 255).T
        got = _HSV_TABLES[device] = (fwd.view(torch.int32).view(-1), bwd)
    return got


def jitter(pixels: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """:func:`~detaug.batch_transforms.hsv.jitter_pixels` through :func:`tables`, bit for bit.

    ``pixels`` (n, 3, N) uint8 RGB, ``luts`` (n, 3, 256) uint8 per-image (h, s, v)
    tables; returns (n, N, 3) uint8 RGB (channels last). The per-image tables
    act on the bytes of the packed words in place, so the result's words are
    the HSV -> RGB table's rows as they are.
    """
    fwd, bwd = tables(pixels.device)
    n, dev = pixels.shape[0], pixels.device
    # dimensioned int32 factors (so the sums are int32), made from host scalars: no copy to the device, no sync
    w8, w16 = (torch.full((1,), f, dtype=torch.int32, device=dev) for f in (1 << 8, 1 << 16))
    code = torch.addcmul(pixels[:, 2], pixels[:, 1], w8).addcmul_(pixels[:, 0], w16)  # (n, N) r << 16 | g << 8 | b
    words = fwd.index_select(0, code.view(-1)).view(torch.uint8).view(n, -1, 4)
    ext = torch.cat([luts, torch.zeros_like(luts[:, :1])], 1)
    lanes = torch.stack([ext[:, c] for c in _WORD_CHANNELS], 1)  # (n, 4, 256); a list index would be copied over
    offs = torch.arange(n * 4, dtype=torch.int32, device=dev).view(n, 1, 4) * 256
    jittered = lanes.reshape(-1).index_select(0, torch.add(words, offs).view(-1))  # bytes of (h', s', v') words
    return bwd.index_select(0, jittered.view(torch.int32)).view(n, -1, 3)
