"""Pixel kernels of the batch mixer: MixUp blends and CutMix pastes of whole image rows, in torch.

These only move pixels; every label decision is made elsewhere (in numpy, by
:mod:`detaug.transforms.mixup` and :mod:`detaug.transforms.cutmix`). Images
are viewed as (B, C) uint8 rows (C = 3 * H * W, or a block of lines of it);
every function works on any device, with no host sync.

Memory traffic is the cost on the CPU, so every output byte is written once
(:func:`mix_images`) and the work goes through cache-sized blocks of lines.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "CPU_STEP_BYTES",
    "mixup_weight",
    "blend_rows",
    "paste_into",
    "paste_rows",
    "mix_images",
]

#: Bytes of each image row that one step of the CPU image loop handles (rounded
#: to whole lines). The mixed rows' int16 temporaries of a step then stay in the
#: L2 cache. On a 2-core Xeon 16 and 32 KiB tie (49 vs 48 ms at B=64, 2 threads)
#: and larger steps lose; 32 KiB halves the number of ops, which matters when
#: other processes (DataLoader workers) share the cores. Other devices do the
#: whole image in one step. Read at every call (tests shrink it).
CPU_STEP_BYTES = 32768


def _new_images_like(images: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous uint8 tensor of ``images``' shape on its device.

    On the CPU the memory comes from numpy, which asks Linux for transparent
    huge pages for large arrays (``madvise``), as :func:`~detaug.batch.collate`
    does: a fresh 79 MB batch (64 x 640 x 640) then takes ~40 page faults
    instead of ~19,000, which was half of the cost of writing it.
    """
    if images.device.type == "cpu":
        return torch.from_numpy(np.empty(tuple(images.shape), dtype=np.uint8))
    return torch.empty(images.shape, dtype=torch.uint8, device=images.device)


def _words(*ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The uint8 tensors ``ts`` viewed as int64 words when all their layouts allow it, else as given.

    Copies and bitwise ops then handle 8 pixels per element; all or none are
    viewed, so they stay compatible with each other.
    """

    def fits(t: torch.Tensor) -> bool:
        return (
            t.stride(-1) == 1
            and t.shape[-1] % 8 == 0
            and t.storage_offset() % 8 == 0
            and all(st % 8 == 0 for st in t.stride()[:-1])
        )

    return tuple(t.view(torch.int64) for t in ts) if all(fits(t) for t in ts) else ts


def mixup_weight(lam: torch.Tensor) -> torch.Tensor:
    """(n,) float lam -> (n, 1) int16 ``round(lam * 256)`` in 0..256, the weight of :func:`blend_rows`.

    >>> mixup_weight(torch.tensor([0.0, 0.5, 1.0])).ravel().tolist()
    [0, 128, 256]
    """
    return torch.round(lam.to(torch.float32) * 256.0).to(torch.int16)[:, None]


def blend_rows(dst: torch.Tensor, src: torch.Tensor, rows: torch.Tensor, partners: torch.Tensor,
               weight: torch.Tensor) -> None:
    """MixUp pixels in integer arithmetic: ``dst[k] = blend(src[rows[k]], src[partners[k]])``.

    Args:
        dst: (n, C) uint8, contiguous, written.
        src: (B, C) uint8 (any row stride), read.
        rows, partners: (n,) int64 rows of ``src``, on its device.
        weight: (n, 1) int16 ``L = round(lam * 256)`` (:func:`mixup_weight`).

    Each pixel is ``floor((a * L + b * (256 - L) + 128) / 256)``: the exact
    ``floor(lam * a + (1 - lam) * b + 0.5)`` of the per-sample MixUp with lam
    quantised to 1/256. ``|L / 256 - lam| <= 1/512`` moves the blend by at most
    ``255 / 512 < 0.5`` grey levels, so the result is within 1 grey level of the
    float32 one (tested for every (a, b) pair). The sum lies in 128..65408 and
    is computed in int16 with wrap-around (two's complement, as on every torch
    backend); the arithmetic shift and the truncating uint8 cast then give its
    bits 8..15 exactly. Four int16 passes instead of the float32 seven.

    >>> src = torch.tensor([[255, 0, 3, 200], [0, 255, 4, 100]], dtype=torch.uint8)
    >>> dst = torch.empty(2, 4, dtype=torch.uint8)
    >>> blend_rows(dst, src, torch.tensor([0, 1]), torch.tensor([1, 0]), mixup_weight(torch.tensor([0.5, 0.25])))
    >>> dst.tolist()
    [[128, 128, 4, 150], [191, 64, 3, 175]]
    """
    torch.index_select(src, 0, rows, out=dst)
    acc = dst.to(torch.int16)
    acc.mul_(weight).add_(128)
    torch.index_select(src, 0, partners, out=dst)
    acc.addcmul_(dst.to(torch.int16), 256 - weight)
    dst.copy_(acc.bitwise_right_shift_(8))


def paste_into(dst: torch.Tensor, src: torch.Tensor, partners: torch.Tensor, mask: torch.Tensor) -> None:
    """CutMix pixels in place: ``dst[k] = where(mask[k], src[partners[k]], dst[k])``.

    Args:
        dst: (n, C) uint8, contiguous rows (the base pixels), written.
        src: (B, C) uint8 (any row stride), read.
        partners: (n,) int64 rows of ``src``.
        mask: (n, C) uint8, contiguous, 255 where the partner shows, else 0.

    Computed as ``base ^ ((partner ^ base) & mask)`` on int64 words where the
    layout allows: exact, and no per-pixel condition.

    >>> dst = torch.tensor([[1, 2, 3]], dtype=torch.uint8)
    >>> paste_into(dst, torch.tensor([[7, 8, 9]], dtype=torch.uint8), torch.tensor([0]),
    ...            torch.tensor([[0, 255, 255]], dtype=torch.uint8))
    >>> dst.tolist()
    [[1, 8, 9]]
    """
    part = src.index_select(0, partners)
    p, d, m = _words(part, dst, mask)
    p.bitwise_xor_(d).bitwise_and_(m)
    d.bitwise_xor_(p)


def paste_rows(dst: torch.Tensor, src: torch.Tensor, rows: torch.Tensor, partners: torch.Tensor,
               mask: torch.Tensor) -> None:
    """CutMix pixels: ``dst[k] = where(mask[k], src[partners[k]], src[rows[k]])`` (see :func:`paste_into`).

    >>> src = torch.tensor([[1, 2, 3], [7, 8, 9]], dtype=torch.uint8)
    >>> dst = torch.empty(1, 3, dtype=torch.uint8)
    >>> paste_rows(dst, src, torch.tensor([0]), torch.tensor([1]), torch.tensor([[0, 255, 255]], dtype=torch.uint8))
    >>> dst.tolist()
    [[1, 8, 9]]
    """
    torch.index_select(src, 0, rows, out=dst)
    paste_into(dst, src, partners, mask)


def _layout(b: int, mix_rows: np.ndarray, cut_rows: np.ndarray, blocked: bool) -> tuple[np.ndarray, ...]:
    """Order of the rows in a step's result: MixUp only, MixUp then CutMix, CutMix only, untouched.

    Returns (rows, mix_pos, cut_pos) where ``rows`` lists the image rows in
    that order (untouched rows only when ``blocked``), ``mix_pos[k]`` is the
    position in ``mix_rows`` of result row k < n_mix and ``cut_pos`` likewise
    for the CutMix rows, which are contiguous from the first MixUp+CutMix row.
    """
    both = np.isin(mix_rows, cut_rows)
    mix_order = np.concatenate([np.flatnonzero(~both), np.flatnonzero(both)])
    first = mix_rows[mix_order]
    in_mix = np.isin(cut_rows, mix_rows)
    where_in_mix = {int(r): k for k, r in enumerate(first)}
    cut_order = np.concatenate([
        np.array(sorted(np.flatnonzero(in_mix), key=lambda k: where_in_mix[int(cut_rows[k])]), np.int64),
        np.flatnonzero(~in_mix),
    ]).astype(np.int64)
    rest = np.setdiff1d(np.arange(b), np.concatenate([mix_rows, cut_rows])) if blocked else np.zeros(0, np.int64)
    rows = np.concatenate([first, cut_rows[cut_order][in_mix.sum():], rest]).astype(np.int64)
    return rows, mix_order.astype(np.int64), cut_order


def mix_images(
    images: torch.Tensor,
    mix_rows: np.ndarray,
    mix_partners: np.ndarray,
    mix_lam: np.ndarray,
    cut_rows: np.ndarray,
    cut_partners: np.ndarray,
    rects: np.ndarray,
    output_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The mixed image tensor: MixUp rows blended, then CutMix rows pasted on the result (a new tensor).

    Args:
        images: (B, 3, H, W) uint8 on any device; only read.
        mix_rows, mix_partners: (n_m,) int64 numpy, distinct rows blended
            with their partner row (of ``images``).
        mix_lam: (n_m,) float32 numpy, each row's share of the blend.
        cut_rows, cut_partners: (n_c,) int64 numpy, distinct rows into which
            their partner's ``rects`` are pasted (after any MixUp of the row).
        rects: (n_c, 4) int64 numpy (x1, y1, x2, y2) pixel edges.
        output_dtype: ``None`` for uint8; a float dtype returns images / 255
            with the MixUp blends recomputed in float32 (not rounded).

    Returns:
        (B, 3, H, W) ``output_dtype`` (uint8 by default) on ``images``' device.

    uint8: MixUp pixels are within 1 grey level of
    :func:`detaug.transforms.mixup.mixup_pixels` (see :func:`blend_rows`),
    CutMix pixels exact. On the CPU the whole batch goes through blocks of
    :data:`CPU_STEP_BYTES` per image (a loop over memory, never over images):
    each step blends the MixUp rows, copies the others, pastes the CutMix
    rectangles with byte masks (a per-row line mask broadcast against a
    per-row column mask) into the rows that have them, and writes every
    result row once. Other devices copy the input whole and rewrite the mixed
    rows in one step.

    >>> x = torch.stack([torch.full((3, 2, 2), v, dtype=torch.uint8) for v in (200, 100)])
    >>> out = mix_images(x, np.array([0]), np.array([1]), np.array([0.75], np.float32),
    ...                  np.array([0]), np.array([1]), np.array([[0, 0, 1, 1]]))
    >>> out[0, 0].tolist(), out[1, 0].tolist()
    ([[100, 175], [175, 175]], [[100, 100], [100, 100]])
    """
    dev = images.device
    b, c, h, w = images.shape
    n_lines, n = c * h, c * h * w
    images = images.contiguous()
    out = _new_images_like(images)
    n_mix, n_cut = len(mix_rows), len(cut_rows)
    blocked = dev.type == "cpu"
    if n_mix + n_cut == 0:
        out.copy_(images)
    else:
        if not blocked:
            out.copy_(images)
        rows_np, mix_order, cut_order = _layout(b, np.asarray(mix_rows, np.int64), np.asarray(cut_rows, np.int64),
                                                blocked)
        n_both = int(np.isin(mix_rows, cut_rows).sum())
        cut_start = n_mix - n_both
        to = lambda a, dt=torch.int64: torch.as_tensor(np.ascontiguousarray(a)).to(dt).to(dev)  # noqa: E731
        rows = to(rows_np)
        m_rows, m_partners = to(np.asarray(mix_rows)[mix_order]), to(np.asarray(mix_partners)[mix_order])
        weight = mixup_weight(to(np.asarray(mix_lam, np.float32)[mix_order], torch.float32))
        c_partners, r = to(np.asarray(cut_partners)[cut_order]), to(np.asarray(rects).reshape(-1, 4)[cut_order])
        other = rows[n_mix:]
        full = torch.full((), 255, dtype=torch.uint8, device=dev)
        zero = torch.zeros((), dtype=torch.uint8, device=dev)
        ys = (torch.arange(n_lines, device=dev) % h)[None]
        xs = torch.arange(w, device=dev)[None]
        line_in = torch.where((ys >= r[:, 1:2]) & (ys < r[:, 3:4]), full, zero)  # (n_cut, C*H)
        col_in = torch.where((xs >= r[:, 0:1]) & (xs < r[:, 2:3]), full, zero)  # (n_cut, W)
        step = max(8, CPU_STEP_BYTES // w // 8 * 8) if blocked else n_lines  # whole lines, 8-byte multiple
        x2, o2 = images.view(b, n), out.view(b, n)
        for l0 in range(0, n_lines, step):  # blocks of memory, not images
            l1 = min(l0 + step, n_lines)
            xc = x2[:, l0 * w : l1 * w]
            res = torch.empty((len(rows_np), xc.shape[1]), dtype=torch.uint8, device=dev)
            if n_mix:
                blend_rows(res[:n_mix], xc, m_rows, m_partners, weight)
            if len(rows_np) > n_mix:
                torch.index_select(xc, 0, other, out=res[n_mix:])
            if n_cut:
                mask = (line_in[:, l0:l1, None] & col_in[:, None, :]).view(n_cut, -1)
                paste_into(res[cut_start : cut_start + n_cut], xc, c_partners, mask)
            dst, res = _words(o2[:, l0 * w : l1 * w], res)
            dst.index_copy_(0, rows, res)
    if output_dtype is None:
        return out
    out = out.to(output_dtype).div_(255.0)
    if n_mix:
        mr, mp = torch.as_tensor(np.asarray(mix_rows, np.int64)).to(dev), torch.as_tensor(
            np.asarray(mix_partners, np.int64)).to(dev)
        lam = torch.as_tensor(np.asarray(mix_lam, np.float32)).to(dev).view(-1, 1, 1, 1)
        blend = images.index_select(0, mr).to(torch.float32).mul_(lam)
        blend.add_(images.index_select(0, mp).to(torch.float32).mul_(1.0 - lam))
        blend.div_(255.0)
        cut_of = {int(row): k for k, row in enumerate(cut_rows)}
        both = [(j, cut_of[int(row)]) for j, row in enumerate(mix_rows) if int(row) in cut_of]
        if both:  # the MixUp rows CutMix pasted into: paste again on the float blend
            j, k = (torch.as_tensor(v).to(dev) for v in zip(*both, strict=True))
            rk = torch.as_tensor(np.asarray(rects).reshape(-1, 4)).to(dev)[k]
            yy, xx = torch.arange(h, device=dev)[None, :, None], torch.arange(w, device=dev)[None, None, :]
            inside = ((yy >= rk[:, 1, None, None]) & (yy < rk[:, 3, None, None])
                      & (xx >= rk[:, 0, None, None]) & (xx < rk[:, 2, None, None]))[:, None]
            pk = torch.as_tensor(np.asarray(cut_partners, np.int64)).to(dev)[k]
            blend[j] = torch.where(inside, images.index_select(0, pk).to(torch.float32) / 255.0, blend[j])
        out.index_copy_(0, mr, blend.to(output_dtype))
    return out
