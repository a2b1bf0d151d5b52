#!/usr/bin/env python
"""DataLoader scaling and worker memory: samples/s with 1, 2, ... workers, and each worker's RSS per epoch.

Runs MixDataset (default AugmentConfig, EpochSampler keys, batch 16, persistent
workers) over a YOLO data yaml for a few epochs per worker count, with OpenCV
set to one thread in the main process before the workers start. Prints, per
worker count, samples/s of every epoch and the median of epochs 2..E, and the
largest RSS each worker reported in each epoch: all of it, and its private
part (``RssAnon``: the pages of the shared image cache a worker reads are
not its own, and count in its RSS as it touches more of them). Every figure
is measured in this run.

    python tools/loader_scaling.py --data /path/to/coco128/coco128.yaml --workers 1,2 --epochs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, get_worker_info  # noqa: E402

from detaug import AugmentConfig, MixDataset, YoloDataset, collate  # noqa: E402
from detaug.sampler import EpochSampler  # noqa: E402


def rss_mib() -> tuple[int, int]:
    """This process's resident set size and its private anonymous part, in MiB (Linux /proc)."""
    got = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon"):
                got[key] = int(line.split()[1]) // 1024
    return got.get("VmRSS", -1), got.get("RssAnon", -1)


class WithRSS(Dataset):
    """Items of a MixDataset, each with (worker id, RSS of the process that served it)."""

    def __init__(self, ds: MixDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        info = get_worker_info()
        return self.ds[key], (info.id if info else -1, rss_mib())


def collate_with_rss(items):
    return collate([s for s, _ in items]), [r for _, r in items]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="YOLO data yaml")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--img-size", type=int, default=640)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    cv2.setNumThreads(1)  # before any worker starts: never change it inside a forked worker
    torch.set_num_threads(1)
    base = YoloDataset(a.data, img_size=a.img_size, progress=False)
    ds = MixDataset(base, AugmentConfig(img_size=a.img_size), seed=0)
    medians = {}
    for w in (int(v) for v in a.workers.split(",")):
        loader = DataLoader(WithRSS(ds), batch_size=a.batch_size, sampler=EpochSampler(ds), num_workers=w,
                            persistent_workers=w > 0, collate_fn=collate_with_rss)
        rates, rss = [], {}
        for e in range(a.epochs):
            t, n = time.perf_counter(), 0
            for batch, info in loader:
                n += batch.batch_size
                for wid, mib in info:
                    rss.setdefault(wid, {}).setdefault(e, []).append(mib)
            rates.append(n / (time.perf_counter() - t))
        medians[w] = statistics.median(rates[1:] or rates)
        print(f"workers={w}: samples/s per epoch {[round(r, 1) for r in rates]}, median of epochs 2-{a.epochs} "
              f"{medians[w]:.1f}")
        for wid in sorted(rss):
            total = [max(m[0] for m in rss[wid][e]) for e in sorted(rss[wid])]
            private = [max(m[1] for m in rss[wid][e]) for e in sorted(rss[wid])]
            print(f"  worker {wid}: max RSS per epoch (MiB) {total}, private (RssAnon) {private}")
    if len(medians) > 1:
        lo = min(medians)
        print("scaling vs", lo, "worker(s): " + ", ".join(f"{w}: {m / medians[lo]:.2f}x" for w, m in medians.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
