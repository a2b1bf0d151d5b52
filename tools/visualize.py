#!/usr/bin/env python
"""Draw dataset samples with their boxes in a grid and write a PNG.

Loads a YOLO data yaml (or images folder) or a COCO json through detaug's
datasets, draws N consecutive samples with :func:`detaug.viz.draw_sample`,
tiles them with :func:`detaug.viz.make_grid` and prints the PNG's path.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "datasets" / "shapes" / "shapes.yaml"
DEFAULT_OUT = Path("out") / "visualize.png"

if str(ROOT) not in sys.path:  # run from a checkout without installing detaug
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from detaug.viz import add_title, draw_sample, make_grid, save_png  # noqa: E402

EPILOG = f"""\
examples:
  python tools/visualize.py
      first 16 training images of the bundled shapes set
      ({DEFAULT_DATA.relative_to(ROOT)}) -> {DEFAULT_OUT}
  python tools/visualize.py --data path/to/coco128.yaml --split train -n 9 --start 40
  python tools/visualize.py --data path/to/images/train2017 --out /tmp/grid.png
  python tools/visualize.py --coco annotations/instances_train.json --image-root images/train

Each tile is one sample as the dataset returns it (resized so its long side is
--img-size), titled with its file name; boxes are drawn in one colour per class
with a tag naming the class (and the per-object weight when it is below 1).
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line parser (kept separate so other modes can extend it)."""
    p = argparse.ArgumentParser(
        prog="visualize.py",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("input (default: the bundled shapes set)")
    src.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"YOLO data yaml or images folder (default: {DEFAULT_DATA.relative_to(ROOT)} in the repo)",
    )
    src.add_argument("--split", default="train", help="split of a data yaml (default: train)")
    src.add_argument("--coco", type=Path, default=None, metavar="JSON", help="COCO instances json")
    src.add_argument("--image-root", type=Path, default=None, metavar="DIR", help="image folder for --coco")
    sel = p.add_argument_group("what to draw")
    sel.add_argument("-n", "--num", type=int, default=16, help="number of samples (default: 16)")
    sel.add_argument("--start", type=int, default=0, help="index of the first sample (default: 0)")
    sel.add_argument("--img-size", type=int, default=640, help="long side of loaded images (default: 640)")
    sel.add_argument("--cols", type=int, default=None, help="grid columns (default: ~sqrt(n))")
    sel.add_argument("--thickness", type=int, default=2, help="box line width in px (default: 2)")
    sel.add_argument("--no-titles", action="store_true", help="do not title tiles with file names")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output PNG (default: {DEFAULT_OUT})")
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject inconsistent options through ``parser.error`` (exit code 2)."""
    if args.coco is not None and args.data is not None:
        parser.error("--data and --coco are exclusive")
    if (args.coco is None) != (args.image_root is None):
        parser.error("--coco and --image-root go together")
    if args.num < 1:
        parser.error(f"-n/--num must be >= 1, got {args.num}")
    if args.start < 0:
        parser.error(f"--start must be >= 0, got {args.start}")
    if args.img_size < 32:
        parser.error(f"--img-size must be >= 32, got {args.img_size}")
    if args.thickness < 1:
        parser.error(f"--thickness must be >= 1, got {args.thickness}")


def load_dataset(args: argparse.Namespace) -> Any:
    """The dataset the options name: a ``detaug.CocoDataset`` or ``detaug.YoloDataset``.

    Any map-style source of :class:`detaug.Sample` with ``len()`` works for
    the rest of the tool; ``.names`` (class names) is used when present.
    """
    import detaug

    if args.coco is not None:
        return detaug.CocoDataset(args.coco, args.image_root, img_size=args.img_size)
    source = args.data if args.data is not None else DEFAULT_DATA
    return detaug.YoloDataset(source, split=args.split, img_size=args.img_size)


def sample_indices(length: int, start: int, num: int) -> list[int]:
    """``num`` consecutive indices from ``start``, stopping at ``length``."""
    if start >= length:
        raise IndexError(f"--start {start} is past the end of the dataset ({length} samples)")
    return list(range(start, min(length, start + num)))


def render_grid(
    dataset: Any,
    indices: Sequence[int],
    names: Sequence[str] | None = None,
    cols: int | None = None,
    thickness: int = 2,
    titles: bool = True,
) -> np.ndarray:
    """Draw ``dataset[i]`` for each index and tile them: (H, W, 3) uint8 RGB."""
    tiles = []
    for i in indices:
        sample = dataset[i]
        tile = draw_sample(sample, names=names, thickness=thickness)
        if titles:
            path = sample.meta.get("path")
            label = f"{i}: {Path(path).name if path else '?'}  ({sample.num_objects} obj)"
            tile = add_title(tile, label)
        tiles.append(tile)
    return make_grid(tiles, cols=cols)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        dataset = load_dataset(args)
        indices = sample_indices(len(dataset), args.start, args.num)
        names = getattr(dataset, "names", None)
        grid = render_grid(dataset, indices, names, args.cols, args.thickness, not args.no_titles)
    except (OSError, ValueError, IndexError) as e:  # detaug.DatasetError is a ValueError
        print(f"visualize.py: error: {e}", file=sys.stderr)
        return 1
    out = save_png(args.out, grid)
    print(out.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
