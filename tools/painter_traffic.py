"""Memory traffic of the DevicePainter's device code path, counted on any machine: bytes, kernel launches, host syncs.

On a GPU the painter is bound by memory traffic and by the number of kernels
it launches; a host sync stalls the queue. This runs the painter on the CPU
with its device code path (one step per slot, as off the CPU) under a torch
dispatch mode that counts, per aten op, the bytes it reads and writes (a
gather as what it gathers plus its indices; broadcast operands once), the
launches, and every host sync: ``.item()``, ``bool(tensor)``, ``nonzero``,
and every tensor made from host data (``torch.tensor(...)``, indexing with a
list), which on a GPU is a copy from pageable memory that waits for the
stream.
The counts are exact for the op sequence; time on a GPU is not measured here
(``tools/device_bench.py`` does that).

    python tools/painter_traffic.py                       # B=64, S=640, Mosaic-4 + affine + HSV + flip + MixUp 0.1
    python tools/painter_traffic.py --size 160 --batch 16 --degrees 10
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detaug import AugmentConfig, MixDataset  # noqa: E402
from detaug.batch_transforms import painter as painter_mod  # noqa: E402
from detaug.batch_transforms.plan_batch import PlanBatch, collate_plans  # noqa: E402
from detaug.sampler import EpochSampler  # noqa: E402

#: ops that move no data (views, allocations)
_FREE = {"view", "_unsafe_view", "permute", "slice", "expand", "as_strided", "t", "transpose", "unsqueeze", "squeeze",
         "select", "diagonal", "alias", "detach", "reshape", "unbind", "split", "chunk", "empty",
         "empty_strided", "unfold", "_reshape_alias", "split_with_sizes", "view_as_real"}
#: ops that read about what they write (plus their indices), not their whole input
_GATHERS = {"index", "index_select", "gather", "grid_sampler_2d", "grid_sampler_3d", "embedding", "take"}
#: host syncs on a GPU: reading a value back, or a tensor made from host data (a blocking copy to the device)
_SYNCS = {"_local_scalar_dense", "nonzero", "is_nonzero", "item", "lift_fresh", "lift_fresh_copy"}


def _nbytes(t: torch.Tensor) -> int:
    """Bytes of the elements a tensor really holds (a broadcast dimension counts once)."""
    n = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride != 0:
            n *= size
    return n * t.element_size()


class TrafficCounter(TorchDispatchMode):
    """Counts bytes moved, launches and host syncs of the aten ops run inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: collections.Counter[str] = collections.Counter()
        self.launches: collections.Counter[str] = collections.Counter()
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        base = name.rstrip("_")
        if base in _SYNCS:
            self.syncs += 1
            return out
        if base in _FREE:
            return out
        kwargs = {k: v for k, v in (kwargs or {}).items() if k != "out"}  # an out= tensor is written, not read
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if base in ("index_put", "index_copy"):  # writes the values only
            moved = sum(_nbytes(t) for t in ins[1:]) + _nbytes(ins[-1])
        elif base in _GATHERS:
            moved = 2 * sum(_nbytes(t) for t in outs) + sum(_nbytes(t) for t in ins[1:])
        elif name.endswith("_") and ins:  # in place: reads its operands, writes the first
            moved = sum(_nbytes(t) for t in ins) + (_nbytes(ins[0]) if base not in ("fill", "zero") else 0)
        else:
            moved = sum(_nbytes(t) for t in ins) + sum(_nbytes(t) for t in outs)
        self.bytes[base] += moved
        self.launches[base] += 1
        return out


def batches(size: int, batch: int, count: int, seed: int = 0, **augment: float) -> list[PlanBatch]:
    """``count`` PlanBatches of B generated 640-style items (tools/device_bench.py's data): Mosaic-4 + ``augment``."""
    import device_bench

    cfg = AugmentConfig(img_size=size, **{"mosaic": 1.0, "mosaic9": 0.0, "mixup": 0.1, "fliplr": 0.5, **augment})
    ds = MixDataset(device_bench.make_data(128, size) * 8, cfg, seed=seed, output="plan")
    keys = [k for _, k in zip(range(batch * count), EpochSampler(ds), strict=False)]
    return [collate_plans([ds[k] for k in keys[i : i + batch]]) for i in range(0, len(keys), batch)]


def traffic(plan_batch: PlanBatch) -> TrafficCounter:
    """Paint ``plan_batch`` (on the CPU) with the device code path under a :class:`TrafficCounter`."""
    steps = painter_mod.CPU_STEP_PIXELS, painter_mod._HSV_STEP
    painter_mod.CPU_STEP_PIXELS = painter_mod._HSV_STEP = 1 << 62  # one step per slot and for HSV, as on a GPU
    try:
        p = painter_mod.DevicePainter()
        p(plan_batch)  # the HSV tables are built once per device, outside the count
        with TrafficCounter() as c:
            p(plan_batch)
    finally:
        painter_mod.CPU_STEP_PIXELS, painter_mod._HSV_STEP = steps
    return c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--degrees", type=float, default=0.0, help="rotation range: sampled (non-resize) warps")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)
    total: collections.Counter[str] = collections.Counter()
    launches: collections.Counter[str] = collections.Counter()
    syncs = 0
    for pb in batches(args.size, args.batch, args.batches, degrees=args.degrees):
        c = traffic(pb)
        total.update(c.bytes)
        launches.update(c.launches)
        syncs += c.syncs
    n = args.batches
    moved = sum(total.values()) / n
    print(f"B={args.batch}, S={args.size}, degrees={args.degrees}: {moved / 1e9:.2f} GB per batch, "
          f"{moved / (args.batch * args.size**2):.0f} bytes per output pixel, "
          f"{sum(launches.values()) / n:.0f} launches, {syncs / n:.0f} host syncs")
    for op, b in total.most_common(args.top):
        print(f"  {op:24s} {b / n / 1e9:7.2f} GB  {launches[op] / n:5.0f} launches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
