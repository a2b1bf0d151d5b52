#!/usr/bin/env python
"""Train a tiny anchor-free detector on detaug batches, end to end, and draw its predictions.

A thin command line over the ``examples`` package (read it for the how):
``YoloDataset`` in ``MixDataset`` (Mosaic + affine + flips + HSV) served by a
DataLoader over ``EpochSampler`` keys, ``BatchMixer`` (MixUp / CutMix) on the
model's device, a small YOLO-style detector (:mod:`examples.detector`)
trained with a loss scaled by detaug's per-object weights
(:mod:`examples.loss`), then predictions on val images drawn next to their
labels (:mod:`examples.render`). Prints the loss figures and the PNG's path
(last line of stdout). Reproducible for a given ``--seed`` on a given device.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "datasets" / "shapes" / "shapes.yaml"
DEFAULT_OUT = Path("out") / "train_example.png"

if str(ROOT) not in sys.path:  # run from a checkout without installing detaug (examples/ is not installed)
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from detaug.viz import save_png  # noqa: E402
from examples.detector import STRIDES  # noqa: E402
from examples.render import render_predictions  # noqa: E402
from examples.train import PAINTERS, train  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="train_example.py",
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  python tools/train_example.py --steps 300 --img-size 256 --mixup 0.3 --cutmix 0.3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"YOLO data yaml (default: {DEFAULT_DATA.relative_to(ROOT)})")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps (default: 300)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    p.add_argument("--img-size", type=int, default=256, help="training side, a multiple of 16 (default: 256)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default: 2)")
    p.add_argument("--mosaic", type=float, default=1.0, help="Mosaic probability (default: 1.0)")
    p.add_argument("--mixup", type=float, default=0.3, help="BatchMixer MixUp probability (default: 0.3)")
    p.add_argument("--cutmix", type=float, default=0.3, help="BatchMixer CutMix probability, independent of MixUp (default: 0.3)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default: 2e-3)")
    p.add_argument("--width", type=int, default=16, help="model base width (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of every generator (default: 0)")
    p.add_argument("--device", default="auto", help="'auto' (cuda if available, else cpu), 'cpu', 'cuda:0', ...")
    p.add_argument("--paint", choices=PAINTERS, default="opencv",
                   help="'opencv': workers paint each sample; 'device': workers plan, a DevicePainter paints each "
                        "batch on --device (default: opencv)")
    p.add_argument("--conf", type=float, default=0.3, help="score threshold of the drawn predictions (default: 0.3)")
    p.add_argument("--num-images", type=int, default=6, help="val images in the picture (default: 6)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"predictions PNG (default: {DEFAULT_OUT})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` (exit code 2, "--name must be ...") on the first bad option."""
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.img_size < 32 or args.img_size % STRIDES[-1]:
        parser.error(f"--img-size must be a multiple of {STRIDES[-1]} >= 32, got {args.img_size}")
    if args.batch_size < 2:
        parser.error(f"--batch-size must be >= 2, got {args.batch_size}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    if args.width < 4:
        parser.error(f"--width must be >= 4, got {args.width}")
    if args.num_images < 1:
        parser.error(f"--num-images must be >= 1, got {args.num_images}")
    for name in ("mosaic", "mixup", "cutmix", "conf"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name} must be in [0, 1], got {getattr(args, name)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Train, draw predictions on val images, print the loss figures and the PNG path; returns 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    res = train(data=args.data, steps=args.steps, batch_size=args.batch_size, img_size=args.img_size,
                workers=args.workers, mixup=args.mixup, cutmix=args.cutmix, lr=args.lr, seed=args.seed,
                device=args.device, width=args.width, mosaic=args.mosaic, progress=not args.quiet, paint=args.paint)
    grid = render_predictions(res.model, args.data, args.img_size, args.num_images, args.conf)
    path = save_png(args.out, grid)
    k = min(10, len(res.history))
    first, last = float(np.mean(res.history[:k])), float(np.mean(res.history[-k:]))
    print(f"trained {len(res.history)} steps ({res.extra['epochs']} epochs) on {res.extra['device']} "
          f"(painted by {res.extra['paint']}) in {res.seconds:.1f} s")
    print(f"loss: mean of first {k} steps {first:.4f}, last {k} steps {last:.4f} "
          f"(cls {np.mean(res.cls_history[-k:]):.4f}, box {np.mean(res.box_history[-k:]):.4f})")
    print(f"predictions: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
