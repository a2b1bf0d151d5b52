#!/usr/bin/env python
"""Draw dataset samples with their boxes in a grid and write a PNG.

Loads a YOLO data yaml (or images folder) or a COCO json through detaug's
datasets and draws N consecutive samples with :func:`detaug.viz.draw_sample`,
raw or through :class:`detaug.MixDataset` (``--augment``), tiled with
:func:`detaug.viz.make_grid`; prints the PNG's path (last line of stdout).

``--index I`` replays exactly the sample a trainer saw for image I in epoch
``--epoch`` E of a run with ``--seed``: MixDataset shows image I at one
position of epoch E (``MixDataset.key_of``) and draws everything for it from
``SeedSequence([seed, E, I])``, so the same config, dataset, seed, epoch and
index give the same pixels and boxes. Its meta (position, tiles, partners,
objects, weights) is printed before the path. Augmented grids show images
``--start``.. as they were drawn in that epoch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "datasets" / "shapes" / "shapes.yaml"
DEFAULT_OUT = Path("out") / "visualize.png"
DEFAULT_IMG_SIZE = 640
DEFAULT_NUM = 16

if str(ROOT) not in sys.path:  # run from a checkout without installing detaug
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from detaug.config import AugmentConfig  # noqa: E402
from detaug.sample import Sample  # noqa: E402
from detaug.viz import MIN_ALPHA, add_title, draw_sample, make_grid, save_png, side_by_side  # noqa: E402

#: ``--augment`` presets: AugmentConfig fields on top of the defaults (mosaic=1).
PRESETS: dict[str, dict[str, Any]] = {
    "mosaic": {},
    "mixup": {"mixup": 1.0},
    "cutmix": {"cutmix": 1.0},
    "full": {
        "mosaic": 1.0,
        "mosaic9": 0.2,
        "mixup": 0.3,
        "cutmix": 0.3,
        "degrees": 10.0,
        "shear": 2.0,
        "perspective": 0.0005,
        "flipud": 0.1,
    },
}
AUGMENT_CHOICES = ("none", *PRESETS)

EPILOG = f"""\
examples:
  raw samples (as the dataset returns them, long side --img-size):
    python tools/visualize.py
        first {DEFAULT_NUM} training images of the bundled shapes set
        ({DEFAULT_DATA.relative_to(ROOT)}) -> {DEFAULT_OUT}
    python tools/visualize.py --data path/to/coco128.yaml --split train -n 9 --start 40
    python tools/visualize.py --data path/to/images/train2017 --out /tmp/grid.png
    python tools/visualize.py --coco annotations/instances_train.json --image-root images/train

  augmented (MixDataset; every tile is --img-size x --img-size):
    python tools/visualize.py --augment mosaic -n 9        Mosaic + random affine (defaults)
    python tools/visualize.py --augment mixup -n 4         ... + MixUp on every sample
    python tools/visualize.py --augment cutmix -n 4        ... + CutMix on every sample
    python tools/visualize.py --augment full -n 16 --seed 3 --epoch 5
        mosaic9 0.2, mixup 0.3, cutmix 0.3, degrees 10, shear 2, perspective 5e-4, flipud 0.1
    python tools/visualize.py --augment path/to/hyp.yaml --img-size 640
        your config (AugmentConfig.from_yaml, unknown keys ignored: an Ultralytics
        hyp.yaml or default.yaml works; its imgsz is used unless --img-size is given;
        with its epochs and close_mosaic, --epoch in the last close_mosaic epochs shows
        samples without Mosaic/MixUp/CutMix, as the trainer saw them)
    python tools/visualize.py --augment full --before-after -n 4
        each raw sample next to its augmented version

  plans and painters (every augmented sample is a plan, then painted):
    python tools/visualize.py --augment full -n 4 --plan
        prints each sample's plan: source images, canvases, MixUp/CutMix, HSV gains, flips
    python tools/visualize.py --augment full -n 4 --paint device
        paints the same plans with the device painter (torch, here on the CPU) and prints
        how far its pixels are from OpenCV's

  replay one training sample (what a trainer with this config saw):
    python tools/visualize.py --augment full --seed 7 --epoch 2 --index 3
        draws item 3 of epoch 2 for seed 7 and prints its meta: tiles (dataset
        indices of the mosaic tiles), mixed_with (mixup/cutmix partners' tiles),
        objects and their weights

Tiles are titled with the index and what was mixed ("#12 mosaic+mixup"), raw
tiles with the file name. Boxes are drawn in one colour per class with a tag
naming the class; an object whose weight is below 1 (after MixUp/CutMix) shows
its weight in the tag and is drawn fainter (opacity = weight, at least
{MIN_ALPHA}).
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line parser."""
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
    aug = p.add_argument_group("augmentation (detaug.MixDataset)")
    aug.add_argument(
        "--augment",
        default="none",
        metavar="{none,mosaic,mixup,cutmix,full,PATH.yaml}",
        help="none: raw samples (default); a preset; or an augmentation yaml (AugmentConfig.from_yaml, "
        "unknown keys ignored)",
    )
    aug.add_argument("--seed", type=int, default=0, help="MixDataset seed (default: 0)")
    aug.add_argument("--epoch", type=int, default=0, help="epoch passed to MixDataset.set_epoch (default: 0)")
    aug.add_argument(
        "--paint",
        choices=("opencv", "device"),
        default="opencv",
        help="who paints the augmented samples' plans: opencv (MixDataset[i], default) or device "
        "(detaug.batch_transforms.DevicePainter with torch on the CPU; prints how far it is from OpenCV)",
    )
    aug.add_argument(
        "--plan",
        action="store_true",
        help="print each drawn sample's plan (sources, canvases, mixing, colour, flips; needs --augment)",
    )
    aug.add_argument(
        "--before-after",
        action="store_true",
        help="show each raw sample next to its augmented version (needs --augment)",
    )
    sel = p.add_argument_group("what to draw")
    sel.add_argument("-n", "--num", type=int, default=None, help=f"number of samples (default: {DEFAULT_NUM})")
    sel.add_argument("--start", type=int, default=None, help="index of the first sample (default: 0)")
    sel.add_argument(
        "--index",
        type=int,
        default=None,
        help="draw only this sample and print its meta (with --augment: a replay of (seed, epoch, index))",
    )
    sel.add_argument(
        "--img-size",
        type=int,
        default=None,
        help=f"long side of loaded images and side of augmented ones (default: {DEFAULT_IMG_SIZE}, "
        "or the imgsz of an --augment yaml)",
    )
    sel.add_argument("--cols", type=int, default=None, help="grid columns (default: ~sqrt(n))")
    sel.add_argument("--thickness", type=int, default=2, help="box line width in px (default: 2)")
    sel.add_argument("--no-titles", action="store_true", help="do not title the tiles")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output PNG (default: {DEFAULT_OUT})")
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject inconsistent options through ``parser.error`` (exit code 2)."""
    if args.coco is not None and args.data is not None:
        parser.error("--data and --coco are exclusive")
    if (args.coco is None) != (args.image_root is None):
        parser.error("--coco and --image-root go together")
    if args.index is not None and (args.num is not None or args.start is not None):
        parser.error("--index draws one sample: it does not go with -n/--num or --start")
    if args.num is not None and args.num < 1:
        parser.error(f"-n/--num must be >= 1, got {args.num}")
    if args.start is not None and args.start < 0:
        parser.error(f"--start must be >= 0, got {args.start}")
    if args.index is not None and args.index < 0:
        parser.error(f"--index must be >= 0, got {args.index}")
    if args.img_size is not None and args.img_size < 32:
        parser.error(f"--img-size must be >= 32, got {args.img_size}")
    if args.thickness < 1:
        parser.error(f"--thickness must be >= 1, got {args.thickness}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.epoch < 0:
        parser.error(f"--epoch must be >= 0, got {args.epoch}")
    if args.augment not in AUGMENT_CHOICES and Path(args.augment).suffix.lower() not in (".yaml", ".yml"):
        parser.error(
            f"--augment: {args.augment!r} is not one of {', '.join(AUGMENT_CHOICES)} nor a .yaml file"
        )
    if (args.plan or args.paint != "opencv") and args.augment == "none":
        parser.error("--plan and --paint device need --augment (a raw sample has no plan)")
    if args.before_after and args.augment == "none":
        parser.error("--before-after needs --augment (mosaic, mixup, cutmix, full or a yaml)")
    problem = out_problem(args.out)
    if problem is not None:
        parser.error(f"--out: {problem}")


def out_problem(out: Path) -> str | None:
    """Why the PNG cannot be written to ``out`` (checked before any work), or ``None``."""
    if out.is_dir():
        return f"{out} is a folder; give a file name, e.g. {out / DEFAULT_OUT.name}"
    if out.suffix.lower() != ".png":
        return f"{out} must end in .png"
    if out.exists() and not os.access(out, os.W_OK):
        return f"{out} exists and is not writable"
    parent = out.parent
    while not parent.exists():  # the nearest existing folder must let us create the rest
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder, so {out} cannot be created"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {out}: {parent} is not writable"
    return None


def augment_config(spec: str, img_size: int | None) -> AugmentConfig | None:
    """The AugmentConfig that ``--augment spec`` names (``None`` for ``none``).

    ``img_size`` (``--img-size``) overrides the config's; when it is ``None``
    a yaml's own ``img_size``/``imgsz`` is kept and presets use 640. Raises
    ValueError naming the file for an unreadable or invalid yaml.
    """
    if spec == "none":
        return None
    if spec in PRESETS:
        return AugmentConfig(**PRESETS[spec], img_size=img_size or DEFAULT_IMG_SIZE)
    cfg = AugmentConfig.from_yaml(spec, strict=False)
    if img_size is not None:
        try:
            cfg = cfg.replace(img_size=img_size)
        except ValueError as e:
            raise ValueError(f"{spec}: {e}") from e
    return cfg


def load_dataset(args: argparse.Namespace) -> Any:
    """The dataset the options name: a ``detaug.CocoDataset`` or ``detaug.YoloDataset``.

    ``args.img_size`` must be resolved (an int). Any map-style source of
    :class:`detaug.Sample` with ``len()`` works for the rest of the tool;
    ``.names`` (class names) and ``.files`` (paths) are used when present.
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


def mix_label(meta: Mapping[str, Any]) -> str:
    """What produced an augmented sample, from its MixDataset meta.

    ``mosaic`` (4 tiles), ``mosaic9`` (9 tiles) or ``affine`` (no Mosaic),
    then ``+mixup`` / ``+cutmix`` for each partner, in the order applied.

    >>> mix_label({"tiles": (3, 1, 4, 1), "mixed_with": (("mixup", (5,)),)})
    'mosaic+mixup'
    >>> mix_label({"tiles": (3,), "mixed_with": ()})
    'affine'
    """
    tiles = tuple(meta.get("tiles", ()))
    base = {1: "affine", 4: "mosaic", 9: "mosaic9"}.get(len(tiles), f"{len(tiles)} tiles")
    return "+".join([base, *(str(kind) for kind, _ in meta.get("mixed_with", ()))])


def _file_name(sample: Sample) -> str:
    path = sample.meta.get("path")
    return Path(str(path)).name if path else "?"


def tile_title(index: int, sample: Sample, augmented: bool) -> str:
    """Title of one tile: ``#12 mosaic+mixup (23 obj)`` or ``#12 shape_012.jpg (3 obj)``."""
    what = mix_label(sample.meta) if augmented else _file_name(sample)
    return f"#{index} {what} ({sample.num_objects} obj)"


def render_grid(
    dataset: Any,
    indices: Sequence[int],
    names: Sequence[str] | None = None,
    cols: int | None = None,
    thickness: int = 2,
    titles: bool = True,
    raw: Any = None,
    augmented: bool = False,
) -> np.ndarray:
    """Draw ``dataset[i]`` for each index and tile them: (H, W, 3) uint8 RGB.

    Args:
        dataset: map-style source of Samples (a MixDataset when ``augmented``).
        raw: when given, each tile is ``raw[i]`` next to ``dataset[i]``
            (before / after, :func:`detaug.viz.side_by_side`).
        augmented: title tiles with the mix (``#3 mosaic+cutmix``) rather than the file name.
    """
    tiles = []
    for i in indices:
        sample = dataset[i]
        tile = draw_sample(sample, names=names, thickness=thickness)
        if raw is not None:
            before = raw[i]
            drawn = draw_sample(before, names=names, thickness=thickness)
            pair_titles = (tile_title(i, before, False), tile_title(i, sample, augmented)) if titles else None
            tile = side_by_side(drawn, tile, titles=pair_titles)
        elif titles:
            tile = add_title(tile, tile_title(i, sample, augmented))
        tiles.append(tile)
    return make_grid(tiles, cols=cols)


class Painted:
    """A MixDataset's items painted from their plans, by OpenCV or the device painter; plans are kept.

    ``stats`` collects, per painted item, (max |device - OpenCV|, share of
    pixels within 2 grey levels, mean |difference|) when the device paints.
    """

    def __init__(self, mix: Any, painter: str) -> None:
        self.mix = mix
        self.painter = painter
        self.plans: dict[int, Any] = {}
        self.stats: list[tuple[int, float, float]] = []

    def __len__(self) -> int:
        return len(self.mix)

    def __getitem__(self, index: int) -> Sample:
        from detaug.paint import paint

        plan, images = self.mix.plan_with_images(self.mix.key_of(index))
        self.plans[index] = plan
        image = paint(plan, images)
        if self.painter == "device":
            from detaug.batch_transforms.painter import DevicePainter
            from detaug.batch_transforms.plan_batch import collate_plans

            batch = DevicePainter()(collate_plans([(plan, images)]))
            device = batch.images[0].permute(1, 2, 0).contiguous().numpy()
            diff = np.abs(device.astype(np.int16) - image.astype(np.int16))
            self.stats.append((int(diff.max()), float((diff <= 2).mean()), float(diff.mean())))
            image = device
        return plan.labels.with_image(image)

    def summary(self) -> str:
        """One line on how the device painter compares to OpenCV over the painted items."""
        if not self.stats:
            return ""
        worst = max(s[0] for s in self.stats)
        within = min(s[1] for s in self.stats)
        mean = max(s[2] for s in self.stats)
        return (f"device painter vs OpenCV over {len(self.stats)} samples: max |diff| {worst}, "
                f"worst share within 2 grey levels {within:.4%}, worst mean |diff| {mean:.3f}")


def describe(sample: Sample, names: Sequence[str] | None = None, files: Sequence[str] | None = None) -> str:
    """A few lines on one sample: its meta, tiles and partners (by file when
    ``files`` is given), object count per class and a weights summary."""
    meta = sample.meta

    def where(idx: Sequence[int]) -> str:
        if files is None:
            return str(tuple(int(i) for i in idx))
        return ", ".join(f"{int(i)} ({Path(files[int(i)]).name})" for i in idx)

    lines = []
    if "tiles" in meta:
        lines.append(
            f"index {meta.get('index')}  epoch {meta.get('epoch')}  position {meta.get('position')}  "
            f"seed {meta.get('seed')}  "
            f"size {sample.width}x{sample.height}  {mix_label(meta)}"
        )
        lines.append(f"tiles: {where(meta['tiles'])}")
        for kind, ptiles in meta.get("mixed_with", ()):
            lines.append(f"mixed_with {kind}: {where(ptiles)}")
        if not meta.get("mixed_with"):
            lines.append("mixed_with: none")
    else:
        lines.append(f"path {meta.get('path')}  size {sample.width}x{sample.height}")
    n = sample.num_objects
    counts = np.bincount(sample.classes, minlength=0) if n else np.zeros(0, np.int64)
    per_class = ", ".join(
        f"{names[c] if names is not None and c < len(names) else c} {k}" for c, k in enumerate(counts) if k
    )
    lines.append(f"objects: {n}" + (f" ({per_class})" if n else ""))
    if n:
        w = sample.weights.astype(np.float64)
        low = w < 1.0
        summary = f"weights: min {w.min():.3f}  mean {w.mean():.3f}  max {w.max():.3f}  {int(low.sum())} below 1"
        lines.append(summary)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        config = augment_config(args.augment, args.img_size)
        args.img_size = config.img_size if config is not None else (args.img_size or DEFAULT_IMG_SIZE)
        dataset = load_dataset(args)
        names = getattr(dataset, "names", None)
        files = getattr(dataset, "files", None)
        shown: Any = dataset
        if config is not None:
            from detaug import MixDataset

            mix = MixDataset(dataset, config, seed=args.seed)
            mix.set_epoch(args.epoch)
            shown = painted = Painted(mix, args.paint)
        if args.index is not None:
            if args.index >= len(dataset):
                raise IndexError(f"--index {args.index} is past the end of the dataset ({len(dataset)} samples)")
            indices = [args.index]
        else:
            indices = sample_indices(len(dataset), args.start or 0, args.num or DEFAULT_NUM)
        raw = dataset if args.before_after else None
        if args.index is not None:  # fetch the replayed sample once, describe and draw it
            sample = shown[args.index]
            print(describe(sample, names, files))
            shown = {args.index: sample}
        grid = render_grid(
            shown, indices, names, args.cols, args.thickness, not args.no_titles, raw, config is not None
        )
        if config is not None:
            if args.plan:
                for i, plan in painted.plans.items():
                    print(f"#{i} {plan.describe()}")
            if args.paint == "device":
                print(painted.summary())
    except (OSError, ValueError, IndexError) as e:  # detaug.DatasetError is a ValueError
        print(f"visualize.py: error: {e}", file=sys.stderr)
        return 1
    try:
        out = save_png(args.out, grid)
    except OSError as e:
        print(f"visualize.py: error: --out: {e}", file=sys.stderr)
        return 1
    print(out.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
