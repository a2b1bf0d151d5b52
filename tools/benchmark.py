#!/usr/bin/env python
"""Throughput of detaug's per-sample pipeline and of the batch mixer.

Pipeline mode (default) times ``MixDataset.__getitem__`` plus the conversion
of each sample to the (3, H, W) tensor a trainer gets, on one core, for a few
configurations, and prints the median samples/s over repeats. The figures to
compare with are Ultralytics 8.4.190's YOLODataset on COCO128 at 640 on one
core (measured on a machine like ours): 77 samples/s default mosaic, 93 with a
RAM cache, 34.5 with mixup=1.0, 59 with cutmix=1.0.

Configs: ``default`` is the library default (``cache="auto"``: a shared
cache filled lazily as images are first read, so the first repeat decodes
from disk -- it is the ``min`` -- and later ones are served from RAM, like
Ultralytics' own image buffer); ``ram`` caches every image up front;
``nocache`` always decodes from disk; ``mixup``/``cutmix`` set that
probability to 1.0 on the default; ``full`` adds rotation, shear,
perspective and both mixes at 0.5; ``gpu-hsv`` is the default with the HSV
jitter left to :class:`detaug.batch_hsv.BatchHSV` on the GPU (the loader's
share of the work only).

Mixer mode (``--mixer``) times BatchMixer on batches of 640 x 640 images
(16 and 64) against a per-sample loop of MixUp/CutMix doing the same work,
on the CPU and on CUDA when there is one.

Examples:
  python tools/benchmark.py                                  # COCO128 when DETAUG_REAL_DATA is set, else shapes
  python tools/benchmark.py --data ../shared/data/coco128/coco128.yaml --repeats 5
  python tools/benchmark.py --configs default,mixup --samples 128
  python tools/benchmark.py --mixer --batch-sizes 16,64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from detaug import AugmentConfig, MixDataset, YoloDataset  # noqa: E402

CONFIGS = {
    "default": ({}, "auto"),
    "ram": ({}, "ram"),
    "nocache": ({}, None),
    "mixup": ({"mixup": 1.0}, "auto"),
    "cutmix": ({"cutmix": 1.0}, "auto"),
    # HSV moved to the batch stage (detaug.batch_hsv.BatchHSV on the GPU): the loader's side.
    "gpu-hsv": ({"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}, "auto"),
    "full": ({"mixup": 0.5, "cutmix": 0.5, "degrees": 10.0, "shear": 2.0, "perspective": 0.0005}, "auto"),
}
ULTRALYTICS = {"default": 77.0, "ram": 93.0, "mixup": 34.5, "cutmix": 59.0}


def default_data() -> Path:
    """COCO128 when DETAUG_REAL_DATA (or ../shared/data) has it, else the shipped shapes set."""
    for base in (os.environ.get("DETAUG_REAL_DATA"), str(ROOT.parent / "shared" / "data")):
        if base and (Path(base) / "coco128" / "coco128.yaml").is_file():
            return Path(base) / "coco128" / "coco128.yaml"
    return ROOT / "datasets" / "shapes" / "shapes.yaml"


def to_tensor(sample) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor, as a trainer receives it."""
    return torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))


def bench_pipeline(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    datasets: dict[str | None, YoloDataset] = {}
    for name in args.configs:
        overrides, cache = CONFIGS[name]
        if cache not in datasets:
            datasets[cache] = YoloDataset(args.data, img_size=args.img_size, cache=cache, progress=False)
        base = datasets[cache]
        ds = MixDataset(base, AugmentConfig(img_size=args.img_size, **overrides), seed=0)
        n = min(args.samples, len(ds)) if args.samples else len(ds)
        for i in range(min(8, n)):  # warm-up: page cache, lazy imports
            to_tensor(ds[i])
        rates = []
        for rep in range(args.repeats):
            ds.set_epoch(rep)
            t0 = time.perf_counter()
            for i in range(n):
                to_tensor(ds[i])
            rates.append(n / (time.perf_counter() - t0))
        med = statistics.median(rates)
        results[name] = {"median": med, "min": min(rates), "max": max(rates), "samples": n}
        ref = ULTRALYTICS.get(name)
        vs = f"  (Ultralytics 8.4.190: {ref:g}/s, x{med / ref:.1f})" if ref else ""
        print(f"{name:8s} {med:8.1f} samples/s  [min {min(rates):.1f}, max {max(rates):.1f}, n={n}]{vs}", flush=True)
    return results


def bench_mixer(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from detaug.batch import collate
    from detaug.batch_transforms.mixer import BatchMixer
    from detaug.batch_transforms.reference import reference_mix

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}
    from detaug import Sample

    for bs in args.batch_sizes:
        samples = []
        for _ in range(bs):
            n = int(rng.integers(0, 12))
            xy = rng.uniform(0, 560, (n, 2))
            wh = rng.uniform(8, 200, (n, 2))
            boxes = np.clip(np.concatenate([xy, xy + wh], 1), 0, 640)
            img = rng.integers(0, 256, (640, 640, 3), dtype=np.uint8)
            samples.append(Sample.create(img, boxes, rng.integers(0, 80, n)))
        cpu_batch = collate(samples)
        for dev in devices:
            batch = cpu_batch.to(dev)
            gen = torch.Generator(device=dev).manual_seed(0)
            mixer = BatchMixer(mixup=0.5, cutmix=0.5, generator=gen)
            params = mixer.sample_params(batch)

            def sync(dev: str = dev) -> None:
                if dev == "cuda":
                    torch.cuda.synchronize()

            for _ in range(3):
                mixer.apply(batch, params)
            sync()
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                mixer.apply(batch, params)
                sync()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            results[f"mixer_{dev}_b{bs}"] = {"images_per_s": bs / med, "ms_per_batch": med * 1e3}
            print(f"BatchMixer {dev:4s} batch {bs:3d}: {bs / med:9.1f} images/s ({med * 1e3:.1f} ms/batch)", flush=True)
        ref_times = []
        params = BatchMixer(mixup=0.5, cutmix=0.5, generator=torch.Generator().manual_seed(0)).sample_params(cpu_batch)
        for _ in range(max(1, args.repeats // 2)):
            t0 = time.perf_counter()
            reference_mix(cpu_batch, params)
            ref_times.append(time.perf_counter() - t0)
        med = statistics.median(ref_times)
        results[f"loop_cpu_b{bs}"] = {"images_per_s": bs / med, "ms_per_batch": med * 1e3}
        speedup = (bs / med) and results[f"mixer_cpu_b{bs}"]["images_per_s"] / (bs / med)
        print(f"per-sample loop cpu batch {bs:3d}: {bs / med:9.1f} images/s ({med * 1e3:.1f} ms/batch); "
              f"BatchMixer cpu is x{speedup:.1f}", flush=True)
    return results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="YOLO data yaml or images folder (default: COCO128 if found, else shapes)")
    p.add_argument("--img-size", type=int, default=640, help="output side s (default 640)")
    p.add_argument("--configs", default="default,ram,nocache,mixup,cutmix",
                   help=f"comma-separated pipeline configs among {','.join(CONFIGS)}")
    p.add_argument("--samples", type=int, default=0, help="samples per repeat (default: the whole dataset)")
    p.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported (default 5)")
    p.add_argument("--threads", type=int, default=1, help="OpenCV/torch threads (default 1: one core)")
    p.add_argument("--mixer", action="store_true", help="benchmark BatchMixer instead of the pipeline")
    p.add_argument("--batch-sizes", default="16,64", help="batch sizes for --mixer (default 16,64)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    args.batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    args.configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        print(f"unknown configs: {unknown}; choose among {list(CONFIGS)}", file=sys.stderr)
        return 2
    if args.mixer:
        results = bench_mixer(args)
    else:
        args.data = args.data or default_data()
        print(f"data: {args.data}  img_size: {args.img_size}  threads: {args.threads}", flush=True)
        results = bench_pipeline(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
