#!/usr/bin/env python
"""Throughput of detaug's per-sample pipeline (optionally side by side with Ultralytics) and of the batch mixer.

Every figure printed is measured in this run; nothing is compared with a
number remembered from elsewhere.

Pipeline mode (default) times ``MixDataset[key]`` plus the conversion of each
sample to the (3, H, W) tensor a trainer gets, on one thread, for a few
configurations, and prints the median samples/s over repeats. Keys follow
:class:`~detaug.sampler.EpochSampler`'s order (one epoch per repeat). Every
config starts from Ultralytics 8.4's default hyperparameters (Mosaic 1,
translate 0.1, scale 0.5, fliplr 0.5, HSV 0.015/0.7/0.4, no rotation/shear).

With ``--peer PYTHON`` (a venv with Ultralytics, e.g. /tmp/peerenv/bin/python;
see ../shared/bench/README.md) each config is run in fresh processes pinned to
one core (``taskset -c CORE``), detaug and Ultralytics' pipeline
(``--peer-script``, by default ../shared/bench/ultra_pipeline.py) alternating,
``--repeats`` rounds, and the table gives both medians and their ratio. The
data folder (laid out like COCO128: coco128.yaml, images/, labels/) is copied
to a temporary folder first, because Ultralytics writes a labels cache beside
the labels.

Configs (detaug cache / Ultralytics cache): ``default`` is each library's
default (``cache="auto"`` / none); ``ram`` caches every image in both;
``nocache`` never caches (Ultralytics keeps its own buffer of recent images);
``mixup``/``cutmix`` set that probability to 1.0 on the default; ``full``
adds rotation, shear, perspective and both mixes at 0.5; ``gpu-hsv`` leaves
the HSV jitter to the batch stage (the loader's share only); ``plan`` is the
loader side of the device path: ``MixDataset(output="plan")`` items collated
by :func:`detaug.batch_transforms.plan_batch.collate_plans` in batches of 16
(``plan-ids``: the same with ``ship_sources=False``, for a painter that reads
sources from a :class:`~detaug.batch_transforms.source_bank.SourceBank`),
no pixel painted. The last four have no Ultralytics counterpart.
``--partners uniform`` draws mixing partners from the whole dataset instead
of the item's block of the epoch's order (MixDataset's default, which reads
each source about once).

Mixer mode (``--mixer``) times BatchMixer on batches of 640 x 640 images
(16 and 64) against a per-sample loop of MixUp/CutMix doing the same work,
on the CPU and on CUDA when there is one.

Examples:
  python tools/benchmark.py                                  # COCO128 when DETAUG_REAL_DATA is set, else shapes
  python tools/benchmark.py --data ../shared/data/coco128/coco128.yaml --repeats 5
  python tools/benchmark.py --data /tmp/coco2k/coco128.yaml --configs default,nocache --peer /tmp/peerenv/bin/python
  python tools/benchmark.py --configs plan --samples 256
  python tools/benchmark.py --mixer --batch-sizes 16,64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from detaug import AugmentConfig, MixDataset, YoloDataset  # noqa: E402
from detaug.sampler import EpochSampler  # noqa: E402

# Ultralytics 8.4 default hyperparameters, which every config starts from.
BASE = {"mosaic": 1.0, "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0, "perspective": 0.0,
        "fliplr": 0.5, "flipud": 0.0, "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4}
# name: (config overrides, detaug cache, Ultralytics arguments or None when it has no counterpart)
CONFIGS: dict[str, tuple[dict, str | None, list[str] | None]] = {
    "default": ({}, "auto", ["--cache", "none"]),
    "ram": ({}, "ram", ["--cache", "ram"]),
    "nocache": ({}, None, ["--cache", "none"]),
    "mixup": ({"mixup": 1.0}, "auto", ["--cache", "none", "--mixup", "1.0"]),
    "cutmix": ({"cutmix": 1.0}, "auto", ["--cache", "none", "--cutmix", "1.0"]),
    "gpu-hsv": ({"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}, "auto", None),
    "full": ({"mixup": 0.5, "cutmix": 0.5, "degrees": 10.0, "shear": 2.0, "perspective": 0.0005}, "auto", None),
    "plan": ({}, "auto", None),
    "plan-ids": ({}, "auto", None),
}
PEER_SCRIPT = ROOT.parent / "shared" / "bench" / "ultra_pipeline.py"


def default_data() -> Path:
    """COCO128 when DETAUG_REAL_DATA (or ../shared/data) has it, else the shipped shapes set."""
    for base in (os.environ.get("DETAUG_REAL_DATA"), str(ROOT.parent / "shared" / "data")):
        if base and (Path(base) / "coco128" / "coco128.yaml").is_file():
            return Path(base) / "coco128" / "coco128.yaml"
    return ROOT / "datasets" / "shapes" / "shapes.yaml"


def to_tensor(sample) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor, as a trainer receives it."""
    return torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))


def make_dataset(args: argparse.Namespace, name: str, bases: dict) -> MixDataset:
    overrides, cache, _ = CONFIGS[name]
    if cache not in bases:
        bases[cache] = YoloDataset(args.data, img_size=args.img_size, cache=cache, progress=False)
    cfg = AugmentConfig(img_size=args.img_size, **{**BASE, **overrides})
    return MixDataset(bases[cache], cfg, seed=0, partners=args.partners,
                      output="plan" if name.startswith("plan") else "sample", ship_sources=name != "plan-ids")


def time_epoch(ds: MixDataset, name: str, epoch: int, n: int) -> float:
    """Samples/s of the first ``n`` keys of ``epoch`` in EpochSampler's order."""
    keys = [(epoch, int(p)) for p in EpochSampler(ds, start_epoch=epoch).shard()[:n]]
    if name.startswith("plan"):
        from detaug.batch_transforms.plan_batch import collate_plans

        t0 = time.perf_counter()
        for k in range(0, len(keys), 16):
            collate_plans([ds[key] for key in keys[k:k + 16]])
        return len(keys) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for key in keys:
        to_tensor(ds[key])
    return len(keys) / (time.perf_counter() - t0)


def bench_pipeline(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    bases: dict = {}
    for name in args.configs:
        ds = make_dataset(args, name, bases)
        n = min(args.samples, len(ds)) if args.samples else len(ds)
        for i in range(min(8, n)):  # warm-up: page cache, lazy imports
            ds[(10_000, i)]
        ds.reset_stats()
        rates = [time_epoch(ds, name, rep, n) for rep in range(args.repeats)]
        med = statistics.median(rates)
        reads = ds.stats["reads_per_item"]
        results[name] = {"median": med, "min": min(rates), "max": max(rates), "samples": n, "reads_per_item": reads}
        print(f"{name:8s} {med:8.1f} samples/s  [min {min(rates):.1f}, max {max(rates):.1f}, n={n}, "
              f"{reads:.2f} reads/item]", flush=True)
    return results


def one(args: argparse.Namespace) -> int:
    """Child process of --peer: one config, one epoch after a warm-up; prints 'X samples/s'."""
    name = args.configs[0]
    ds = make_dataset(args, name, {})
    n = min(args.samples, len(ds)) if args.samples else len(ds)
    for i in range(16):
        ds[(10_000, i % len(ds))]
    print(f"{time_epoch(ds, name, 0, n):.2f} samples/s", flush=True)
    return 0


def _rate(cmd: list[str]) -> float:
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, YOLO_OFFLINE="1"), cwd="/tmp")
    m = re.search(r"([0-9.]+) samples/s", p.stdout)
    if p.returncode != 0 or not m:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return float(m.group(1))


def bench_peer(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Alternate detaug and Ultralytics, each in a fresh process pinned to one core; medians and ratios."""
    src = args.data.parent if args.data.suffix in (".yaml", ".yml") else args.data
    tmp = Path(tempfile.mkdtemp(prefix="detaug-bench-"))
    root = tmp / src.name
    shutil.copytree(src, root, symlinks=True)
    data = root / (args.data.name if args.data.suffix in (".yaml", ".yml") else "coco128.yaml")
    n = args.samples or 256
    pin = ["taskset", "-c", str(args.core)]
    results: dict[str, dict[str, float]] = {}
    print(f"one core (taskset -c {args.core}); {args.repeats} alternating rounds of {n} samples; medians")
    print(f"{'config':8s} {'detaug':>8s} {'ultralytics':>12s} {'ratio':>6s}")
    try:
        for name in args.configs:
            peer_args = CONFIGS[name][2]
            ours_cmd = [*pin, sys.executable, str(Path(__file__).resolve()), "--one", "--configs", name, "--data",
                        str(data), "--img-size", str(args.img_size), "--samples", str(n), "--partners", args.partners]
            d, u = [], []
            for _ in range(args.repeats):
                if peer_args is not None:
                    u.append(_rate([*pin, args.peer, str(args.peer_script), str(root), "-n", str(n),
                                    "--imgsz", str(args.img_size), *peer_args]))
                d.append(_rate(ours_cmd))
            md = statistics.median(d)
            results[name] = {"detaug": md, "detaug_runs": d}
            if u:
                mu = statistics.median(u)
                results[name].update(ultralytics=mu, ultralytics_runs=u, ratio=md / mu)
                print(f"{name:8s} {md:8.1f} {mu:12.1f} {md / mu:5.2f}x   detaug {d}  ultralytics {u}", flush=True)
            else:
                print(f"{name:8s} {md:8.1f} {'-':>12s} {'-':>6s}   detaug {d}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
    p.add_argument("--samples", type=int, default=0, help="samples per repeat (default: the whole dataset; 256 with --peer)")
    p.add_argument("--repeats", type=int, default=5, help="repeats (rounds with --peer); the median is reported (default 5)")
    p.add_argument("--threads", type=int, default=1, help="OpenCV/torch threads (default 1: one core)")
    p.add_argument("--partners", choices=("uniform", "block"), default="block", help="MixDataset partners mode")
    p.add_argument("--peer", default=None, help="python of a venv with Ultralytics: run its pipeline alternately")
    p.add_argument("--peer-script", type=Path, default=PEER_SCRIPT, help="the peer's pipeline script")
    p.add_argument("--core", type=int, default=0, help="the core both sides are pinned to with --peer (default 0)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
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
        args.data = Path(args.data or default_data()).resolve()
        if args.one:
            return one(args)
        print(f"data: {args.data}  img_size: {args.img_size}  threads: {args.threads}  partners: {args.partners}",
              flush=True)
        results = bench_peer(args) if args.peer else bench_pipeline(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
