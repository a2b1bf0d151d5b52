"""Canvas patches: each warp's list covers exactly the pixels of its rect, in the canvas's stored (flipped) order."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug.batch_transforms.patches import (
    PATCH,
    patch_pixels,
    read_patches,
    rect_patches,
    write_patches,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 140), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_patches_cover_each_rect_exactly_once(size, n_c, n_k, seed):
    rng = np.random.default_rng(seed)
    chosen = rng.random((n_c, n_k)) < 0.7
    counts = tuple(sorted(rng.integers(0, n_c + 1, n_k).tolist(), reverse=True))
    xy = rng.integers(-size, 2 * size, (n_c, n_k, 2, 2))
    rect = np.concatenate([xy.min(2), xy.max(2)], -1).astype(np.int64)  # (x0, y0) <= (x1, y1), maybe empty
    flip_lr, flip_ud = rng.random(n_c) < 0.5, rng.random(n_c) < 0.5
    before = rect.copy()
    warps, origins, per_slot = rect_patches(chosen, rect, counts, flip_lr, flip_ud, size)
    assert np.array_equal(rect, before)  # never writes into its argument
    assert warps.shape == (len(origins),) and origins.shape[1] == 2 and sum(per_slot) == len(warps)
    assert np.all(np.diff(warps % n_k) >= 0)  # sorted by slot
    assert np.all(origins % PATCH == 0) and np.all(origins >= 0) and np.all(origins < size)
    for r in range(n_c):
        for k in range(n_k):
            mine = origins[warps == r * n_k + k]
            covered = np.zeros((size, size), np.int64)
            for ox, oy in mine:
                covered[oy : oy + PATCH, ox : ox + PATCH] += 1
            want = np.zeros((size, size), bool)
            if chosen[r, k] and r < counts[k]:
                x0, y0, x1, y1 = np.clip(rect[r, k], 0, size)
                want[y0:y1, x0:x1] = True
                want = want[:, ::-1] if flip_lr[r] else want
                want = want[::-1] if flip_ud[r] else want
            assert np.all(covered[want] == 1)  # every pixel of the rect exactly once ...
            assert len(mine) == len({(ox // PATCH, oy // PATCH) for ox, oy in mine})
            for ox, oy in mine:  # ... and no patch that misses it
                assert want[oy : oy + PATCH, ox : ox + PATCH].any()


def test_patch_pixels_are_the_unflipped_positions_and_writes_land_there():
    size = 40  # not a multiple of the patch: the canvas is stored at 64
    canvas = torch.zeros((2, 3, 64, 64), dtype=torch.uint8)
    origin = torch.tensor([[32, 0], [0, 32]])
    x, y = patch_pixels(size, origin, torch.tensor([True, False]), torch.tensor([False, True]))
    assert x[0].tolist() == [size - 1 - j for j in range(32, 64)] and y[0].tolist() == list(range(32))
    assert x[1].tolist() == list(range(32)) and y[1].tolist() == [size - 1 - j for j in range(32, 64)]
    val = torch.arange(2 * 3 * PATCH * PATCH, dtype=torch.int64).remainder(251).to(torch.uint8).view(2, 3, PATCH, PATCH)
    write_patches(canvas, torch.tensor([1, 0]), origin, val)
    assert torch.equal(canvas[1, :, 0:32, 32:64], val[0]) and torch.equal(canvas[0, :, 32:64, 0:32], val[1])
    assert torch.equal(read_patches(canvas, torch.tensor([1, 0]), origin), val)
    assert int(canvas.sum()) == int(val.to(torch.int64).sum())  # nothing else written
