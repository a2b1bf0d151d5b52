"""Device benchmark of plan-then-paint: the DevicePainter's samples/s and the loader + painter end to end.

Stages (each one reports its own failure and the next still runs):

1. ``loader-1core``: MixDataset(output="plan") items (plan + fetch) and
   ``collate_plans`` on one core, samples/s.
2. ``paint``: ``DevicePainter`` on plans prepared on the CPU beforehand and
   already on the device (B x 3 x S x S uint8), samples/s; ``paint-fp16``
   the same with float16 output; ``paint-rot10`` with rotations up to 10
   degrees (warps sampled rather than resized); ``h2d+paint`` with the pinned host-to-device
   copy of each PlanBatch included.
3. ``parity``: one batch painted on the device against ``detaug.paint.paint``
   (OpenCV), max / share within 2 levels / mean absolute difference.
4. ``loader-1core-ids`` / ``paint-bank`` / ``e2e-plan-bank``: the same with
   ``ship_sources=False``: the loader plans and ships dataset indices only,
   the painter reads the pixels from a ``SourceBank`` built once on the device.
5. ``e2e-plan``: DataLoader(MixDataset(output="plan"), ``--workers`` workers,
   ``collate_plans``, pinned) + the painter on the device, samples/s;
   ``e2e-opencv``: the same loader painting with OpenCV in the workers
   (``MixDataset`` samples + ``detaug.batch.collate``), for comparison.

Data: ``--images`` generated textured images (long side ``--size``, landscape
and portrait), no files. Config: Mosaic-4 + the default affine + HSV + flip +
MixUp ``--mixup``. Each result is printed as one ``BENCH|stage|value|note`` line
(tools/device_check.sh collects them into its table) and at the end as a table.

    python tools/device_bench.py                      # cuda when available, 640, B=64
    python tools/device_bench.py --device cpu --size 160 --batch 8 --iters 2 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from detaug import AugmentConfig, MixDataset, Sample  # noqa: E402
from detaug.batch import collate  # noqa: E402
from detaug.batch_transforms.painter import DevicePainter  # noqa: E402
from detaug.batch_transforms.plan_batch import collate_plans  # noqa: E402
from detaug.batch_transforms.source_bank import SourceBank  # noqa: E402
from detaug.paint import paint  # noqa: E402
from detaug.sampler import EpochSampler  # noqa: E402

ROWS: list[tuple[str, str, str]] = []


def report(stage: str, value: str, note: str = "") -> None:
    ROWS.append((stage, value, note))
    print(f"BENCH|{stage}|{value}|{note}", flush=True)


def stage(name: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as e:  # a stage's failure is a row, not the end of the run
        traceback.print_exc()
        report(name, "FAILED", f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")


def make_data(n: int, size: int, seed: int = 0) -> list[Sample]:
    """n textured images, long side ``size`` (3:4 landscape, 4:3 portrait, 2:3 landscape), 1-8 boxes each."""
    rng = np.random.default_rng(seed)
    out = []
    shapes = [(size * 3 // 4, size), (size, size * 3 // 4), (size * 2 // 3, size)]
    for i in range(n):
        h, w = shapes[i % 3]
        img = cv2.resize(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 24, (h, w, 3), dtype=np.uint8))
        k = int(rng.integers(1, 9))
        xy = rng.uniform(0, [w * 0.8, h * 0.8], (k, 2))
        boxes = np.minimum(np.concatenate([xy, xy + rng.uniform(8, size / 4, (k, 2))], 1), [w, h, w, h])
        out.append(Sample.create(img, boxes, rng.integers(0, 80, k), meta={"path": f"gen{i}.png"}))
    return out


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20, help="timed painter calls")
    ap.add_argument("--images", type=int, default=128, help="generated dataset size")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--loader-batches", type=int, default=10, help="timed end-to-end batches")
    ap.add_argument("--mixup", type=float, default=0.1)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    b, s = args.batch, args.size
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}, OpenCV {cv2.__version__}, {os.cpu_count()} CPUs, S={s}, B={b}", flush=True)
    cfg = AugmentConfig(img_size=s, mosaic=1.0, mosaic9=0.0, mixup=args.mixup, fliplr=0.5)
    data = make_data(args.images, s) * 8  # a dataset 8x larger than its distinct images
    ds = MixDataset(data, cfg, seed=0, output="plan")
    n_batches = 2 + min(args.iters, 6)  # 2 warm-up batches; timed calls cycle over the others
    keys = [k for _, k in zip(range(b * n_batches), _keys(ds), strict=False)]
    batches: list = []
    painter = DevicePainter()

    def collate_one_core(source: MixDataset, out: list) -> float:
        """Collate every timed key of ``source`` into ``out`` on one thread; returns the seconds taken."""
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        for i in range(0, len(keys), b):
            out.append(collate_plans([source[k] for k in keys[i : i + b]], pin_memory=dev.type == "cuda"))
        dt = time.perf_counter() - t0
        torch.set_num_threads(os.cpu_count() or 1)
        return dt

    def loader_one_core() -> None:
        dt = collate_one_core(ds, batches)
        u = np.mean([x.sources.shape[0] for x in batches])
        report("loader-1core", f"{len(keys) / dt:.0f} samples/s", f"plan+fetch+collate_plans, {u:.0f} unique sources/batch")

    def painted_rate(p: DevicePainter, ready: list, copy: bool = False) -> float:
        """Samples/s of ``p`` over the PlanBatches ``ready``: 2 warm-up calls, then ``--iters`` timed.

        ``copy``: each batch is moved to the device inside the timing (the
        host-to-device copy counts); otherwise they are on it already.
        """
        for x in ready[:2]:
            p(x.to(dev))
        sync(dev)
        t0 = time.perf_counter()
        for i in range(args.iters):
            x = ready[2 + i % (len(ready) - 2)]
            p(x.to(dev) if copy else x)
        sync(dev)
        return b * args.iters / (time.perf_counter() - t0)

    def paint_on_device() -> None:
        on_dev = [x.to(dev) for x in batches]
        sync(dev)
        for dtype, name in ((torch.uint8, "paint"), (torch.float16, "paint-fp16")):
            rate = painted_rate(DevicePainter(dtype), on_dev)
            mem = f", peak {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB" if dev.type == "cuda" else ""
            report(name, f"{rate:.0f} samples/s", f"B={b}, S={s}, plans ready on {dev}{mem}")
        del on_dev
        # warps that are not resizes (rotation: sampled per patch), same data
        rot = MixDataset(data, AugmentConfig(img_size=s, mosaic=1.0, mosaic9=0.0, mixup=args.mixup, fliplr=0.5,
                                             degrees=10.0), seed=0, output="plan")
        rot_batches = [collate_plans([rot[k] for k in keys[i : i + b]]).to(dev) for i in range(0, len(keys), b)]
        rate = painted_rate(painter, rot_batches)
        report("paint-rot10", f"{rate:.0f} samples/s", "same, degrees=10 (warps sampled, not resized)")
        del rot_batches
        rate = painted_rate(painter, batches, copy=True)
        mb = np.mean([x.sources.numel() for x in batches]) / 2**20
        report("h2d+paint", f"{rate:.0f} samples/s", f"pinned PlanBatch ({mb:.0f} MB of sources) copied, then painted")

    def parity() -> None:
        items = [ds[k] for k in keys[:b]]
        got = painter(collate_plans(items).to(dev)).images.cpu().permute(0, 2, 3, 1).numpy().astype(np.int16)
        ref = np.stack([paint(p, im) for p, im in items]).astype(np.int16)
        d = np.abs(got - ref)
        ok = (d <= 2).mean() >= 0.999 and d.mean() < 0.5
        report("parity", "ok" if ok else "FAILED",
               f"vs OpenCV: max {d.max()}, within 2: {100 * (d <= 2).mean():.3f}%, mean {d.mean():.4f}")

    def end_to_end(output: str) -> None:
        """output: "plan" (shipped sources), "plan-bank" (indices only, the bank) or "sample" (OpenCV in workers)."""
        data_ds = MixDataset(data, cfg, seed=0, output="sample" if output == "sample" else "plan",
                             ship_sources=output != "plan-bank")
        loader = DataLoader(data_ds, batch_size=b, sampler=EpochSampler(data_ds), num_workers=args.workers,
                            collate_fn=collate if output == "sample" else collate_plans,
                            pin_memory=dev.type == "cuda", prefetch_factor=2 if args.workers else None,
                            persistent_workers=False)
        p = bank_painter[0] if output == "plan-bank" else painter
        n, t0, warm = 0, 0.0, 2
        it = iter(loader)
        for i in range(warm + args.loader_batches):
            try:
                x = next(it)
            except StopIteration:
                it = iter(loader)
                x = next(it)
            out = x.to(dev) if output == "sample" else p(x.to(dev))
            if i == warm - 1:
                sync(dev)
                t0 = time.perf_counter()
            elif i >= warm:
                n += out.batch_size
        sync(dev)
        dt = time.perf_counter() - t0
        name, how = {"plan": ("e2e-plan", "workers plan, device paints"),
                     "plan-bank": ("e2e-plan-bank", "workers plan (indices only), device paints from the bank"),
                     "sample": ("e2e-opencv", "workers paint with OpenCV (baseline)")}[output]
        report(name, f"{n / dt:.0f} samples/s", f"{args.workers} workers, B={b}, {how}")

    ids_batches: list = []
    bank_painter: list = []

    def bank_stages() -> None:
        dt = collate_one_core(MixDataset(data, cfg, seed=0, output="plan", ship_sources=False), ids_batches)
        report("loader-1core-ids", f"{len(keys) / dt:.0f} samples/s", "plan + collate_plans, no pixels shipped")
        t0 = time.perf_counter()
        bank = SourceBank.from_dataset(data, dev)
        sync(dev)
        report("bank-build", f"{time.perf_counter() - t0:.1f} s", f"{len(data)} images, {bank.nbytes / 2**30:.2f} GiB on {dev}")
        p = DevicePainter(bank=bank)
        bank_painter.append(p)
        rate = painted_rate(p, ids_batches, copy=True)
        report("paint-bank", f"{rate:.0f} samples/s", "h2d of the plan tensors + paint from the bank")
        same = torch.equal(p(ids_batches[0].to(dev)).images, painter(batches[0].to(dev)).images) if batches else False
        report("bank-parity", "ok" if same else "FAILED", "bank-painted batch equals the shipped-sources one")

    stage("loader-1core", loader_one_core)
    stage("paint", paint_on_device)
    stage("parity", parity)
    stage("bank", bank_stages)
    stage("e2e-plan-bank", lambda: end_to_end("plan-bank"))
    stage("e2e-plan", lambda: end_to_end("plan"))
    stage("e2e-opencv", lambda: end_to_end("sample"))
    print("\n| stage | result | note |\n| --- | --- | --- |")
    for r in ROWS:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    return 1 if any(r[1] == "FAILED" for r in ROWS) else 0


def _keys(ds: MixDataset):
    sampler = EpochSampler(ds)
    while True:
        yield from sampler


if __name__ == "__main__":
    raise SystemExit(main())
