#!/usr/bin/env python
"""Generate the 'shapes' example dataset (YOLO segment labels + COCO json).

Deterministic: generators spawned from ``np.random.SeedSequence(SEED)`` are
passed through every function, so running this script again reproduces the labels
exactly (and the JPEGs byte for byte with the same OpenCV/libjpeg build).

Geometry: every object is a polygon (circles are 32-gons) in detaug's
continuous pixel frame (image edges at 0 and W, pixel centres at +0.5). The
polygon is clipped to the image with :func:`detaug.polygons.clip_polygons`, its
vertices are snapped to the 1/16 px grid that ``cv2.fillPoly(..., shift=4)``
draws with, and that SAME polygon is both drawn and written as the label.
The box is the tight box of the clipped polygon. Labels are amodal (the full
shape, clipped to the image); placement keeps every object at least
``MIN_VISIBLE`` visible after the objects drawn on top of it.

Usage::

    python datasets/shapes/generate.py            # rewrites datasets/shapes/
    python datasets/shapes/generate.py --out /tmp/shapes --seed 7
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing detaug
    sys.path.insert(0, str(ROOT))

from detaug.polygons import clip_polygons, polygons_to_boxes  # noqa: E402

SEED = 20240611
#: COCO category id -> name. Ids are deliberately NOT contiguous; YOLO class
#: ids are the positions of these ids in sorted order (1->0, 3->1, ...).
CATEGORIES: dict[int, str] = {1: "circle", 3: "triangle", 5: "rectangle", 8: "star", 13: "hexagon"}
NAMES: list[str] = [CATEGORIES[k] for k in sorted(CATEGORIES)]
SPLITS: dict[str, int] = {"train": 24, "val": 8}
#: Index (in generation order) of the one image with no objects.
BACKGROUND_INDEX = 3
JPEG_QUALITY = 90
MIN_VISIBLE = 0.6
CIRCLE_VERTICES = 32
#: Object colours have chroma (max - min channel) of at least this...
OBJECT_MIN_CHROMA = 150
#: ...and background colours at most this, so the two never get confused.
BACKGROUND_MAX_CHROMA = 70


@dataclass(frozen=True)
class Shape:
    """One object: YOLO class id, its polygon (K, 2) float64 (absolute, clipped,
    snapped to 1/16 px), its tight xyxy box and its RGB fill colour."""

    cls: int
    polygon: NDArray[np.float64]
    box: NDArray[np.float64]
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """One image: index, split, size, the seed of its background and its
    shapes in drawing order (later shapes are drawn on top)."""

    index: int
    split: str
    width: int
    height: int
    background_seed: np.random.SeedSequence
    shapes: tuple[Shape, ...]

    def background(self) -> NDArray[np.uint8]:
        """(H, W, 3) uint8 RGB background (computed on demand: labels do not need it)."""
        return background(np.random.default_rng(self.background_seed), self.height, self.width)

    @property
    def file_name(self) -> str:
        return f"shape_{self.index:03d}.jpg"


# --------------------------------------------------------------------------- geometry


def _regular(n: int, r: float, phase: float) -> NDArray[np.float64]:
    t = phase + 2.0 * np.pi * np.arange(n) / n
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def shape_outline(cls: int, rng: np.random.Generator, r: float) -> NDArray[np.float64]:
    """Unplaced polygon (K, 2) of class ``cls`` centred at 0 with size ~r."""
    name = NAMES[cls]
    rot = rng.uniform(0.0, 2.0 * np.pi)
    if name == "circle":
        return _regular(CIRCLE_VERTICES, r, 0.0)
    if name == "hexagon":
        return _regular(6, r, rot)
    if name == "triangle":
        # Random triangle with every angle >= ~30 degrees: jitter the vertex angles.
        ang = rot + np.array([0.0, 2.0, 4.0]) * np.pi / 3 + rng.uniform(-0.35, 0.35, 3)
        rad = r * rng.uniform(0.85, 1.1, 3)
        return np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    if name == "rectangle":
        aspect = rng.uniform(1.0, 2.4)
        hw, hh = r * math.sqrt(aspect) * 0.8, r / math.sqrt(aspect) * 0.8
        rect = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
        if rng.uniform() < 0.4:  # some axis aligned, the rest rotated
            c, s = math.cos(rot), math.sin(rot)
            rect = rect @ np.array([[c, s], [-s, c]])
        return rect
    if name == "star":
        outer = _regular(5, r, rot)
        inner = _regular(5, r * 0.45, rot + np.pi / 5)
        return np.stack([outer, inner], axis=1).reshape(-1, 2)
    raise ValueError(f"cls: unknown class {cls}")


def snap(polygon: NDArray[np.float64]) -> NDArray[np.float64]:
    """Snap continuous-frame points to the grid cv2 draws with at shift=4.

    cv2 puts integer coordinates at pixel centres, i.e. continuous ``p - 0.5``;
    with shift=4 it takes fixed-point values ``round((p - 0.5) * 16)``.
    Consecutive duplicate vertices are removed, and the ring is put in a
    canonical form (positive shoelace orientation in the y-down frame, first
    vertex the smallest (x, y)), so the labels do not depend on where a
    clipping routine happens to start its output ring.
    """
    q = np.round((polygon - 0.5) * 16.0) / 16.0 + 0.5
    if len(q) > 1:
        keep = np.any(q != np.roll(q, 1, axis=0), axis=1)
        q = q[keep]
    if len(q) >= 3:
        x, y = q[:, 0], q[:, 1]
        if np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) < 0:
            q = q[::-1]
        q = np.roll(q, -int(np.lexsort((q[:, 1], q[:, 0]))[0]), axis=0)
    return np.ascontiguousarray(q)


def to_cv2_fixed(polygon: NDArray[np.float64]) -> NDArray[np.int32]:
    """Continuous-frame (K, 2) -> cv2 fixed-point int32 (K, 1, 2) for shift=4."""
    return np.round((polygon - 0.5) * 16.0).astype(np.int32).reshape(-1, 1, 2)


def fill_polygon(image: NDArray[np.uint8], polygon: NDArray[np.float64], color) -> NDArray[np.uint8]:
    """A copy of ``image`` with ``polygon`` (continuous frame) filled in ``color``."""
    out = image.copy()
    cv2.fillPoly(out, [to_cv2_fixed(polygon)], tuple(int(c) for c in color), cv2.LINE_8, 4)
    return out


def polygon_mask(polygon: NDArray[np.float64], height: int, width: int) -> NDArray[np.bool_]:
    """(H, W) bool: the pixels :func:`fill_polygon` paints for ``polygon``."""
    m = np.zeros((height, width), np.uint8)
    cv2.fillPoly(m, [to_cv2_fixed(polygon)], 1, cv2.LINE_8, 4)
    return m.astype(bool)


def polygon_area(polygon: NDArray[np.float64]) -> float:
    """Shoelace area of one (K, 2) ring."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


# --------------------------------------------------------------------------- colours


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def object_color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated RGB colour with chroma >= OBJECT_MIN_CHROMA."""
    while True:
        c = _hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0))
        if max(c) - min(c) >= OBJECT_MIN_CHROMA:
            return c


def background(rng: np.random.Generator, height: int, width: int) -> NDArray[np.uint8]:
    """Textured, muted RGB background: gradient + stripes + blotches + grain."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 190, 3).astype(np.float32)
    # Linear gradient between two muted colours.
    ang = rng.uniform(0, 2 * np.pi)
    t = (np.cos(ang) * xx + np.sin(ang) * yy) / max(height, width)
    t = t - t.min()
    t /= max(float(t.max()), 1e-6)
    other = base + rng.uniform(-50, 50, 3).astype(np.float32)
    img = base * (1 - t[..., None]) + other * t[..., None]
    # Stripes (soft) at a random angle and period.
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(14, 48)
    phase = (np.cos(ang) * xx + np.sin(ang) * yy) * (2 * np.pi / period)
    stripe_col = rng.uniform(-30, 30, 3).astype(np.float32)
    img += np.tanh(3 * np.sin(phase))[..., None] * stripe_col
    # Low-frequency blotches.
    lo = rng.normal(0.0, 1.0, (max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    img += cv2.resize(lo, (width, height), interpolation=cv2.INTER_CUBIC) * 12.0
    # Fine grain.
    img += rng.normal(0.0, 4.0, (height, width, 3)).astype(np.float32)
    # Keep it muted: pull every pixel towards its grey so chroma <= BACKGROUND_MAX_CHROMA.
    grey = img.mean(axis=2, keepdims=True)
    chroma = img.max(axis=2, keepdims=True) - img.min(axis=2, keepdims=True)
    scale = np.minimum(1.0, (BACKGROUND_MAX_CHROMA - 10) / np.maximum(chroma, 1e-6))
    img = grey + (img - grey) * scale
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- scenes


def _visible_fractions(masks: list[NDArray[np.bool_]]) -> NDArray[np.float64]:
    """Fraction of each mask not covered by the masks after it."""
    out = np.ones(len(masks))
    covered = np.zeros_like(masks[0]) if masks else None
    for i in range(len(masks) - 1, -1, -1):
        area = masks[i].sum()
        out[i] = (masks[i] & ~covered).sum() / max(area, 1)
        covered |= masks[i]
    return out


def make_shapes(rng: np.random.Generator, height: int, width: int, n: int) -> tuple[Shape, ...]:
    """Place ``n`` shapes: some cut by the borders, some touching or overlapping,
    each at least ``MIN_VISIBLE`` visible and with a box of at least 8 px."""
    side = min(height, width)
    shapes: list[Shape] = []
    masks: list[NDArray[np.bool_]] = []
    centres: list[tuple[float, float, float]] = []
    tries = 0
    while len(shapes) < n and tries < 400:
        tries += 1
        cls = int(rng.integers(len(NAMES)))
        r = float(rng.uniform(0.07, 0.2) * side)
        if centres and rng.uniform() < 0.35:  # touch / overlap an earlier shape
            cx0, cy0, r0 = centres[int(rng.integers(len(centres)))]
            a = rng.uniform(0, 2 * np.pi)
            d = (r0 + r) * rng.uniform(0.75, 1.0)
            cx, cy = cx0 + d * math.cos(a), cy0 + d * math.sin(a)
        else:  # anywhere, including partly outside the image
            cx = float(rng.uniform(-0.08, 1.08) * width)
            cy = float(rng.uniform(-0.08, 1.08) * height)
        full = shape_outline(cls, rng, r) + np.array([cx, cy])
        clipped = clip_polygons([full], 0.0, 0.0, float(width), float(height))[0].astype(np.float64)
        if len(clipped) < 3 or np.isnan(clipped).any():  # gone, or cut into several parts
            continue
        poly = snap(clipped)
        if len(poly) < 3 or polygon_area(poly) < 0.3 * polygon_area(full):
            continue
        box = polygons_to_boxes([poly])[0].astype(np.float64)
        if min(box[2] - box[0], box[3] - box[1]) < 8:
            continue
        mask = polygon_mask(poly, height, width)
        if _visible_fractions([*masks, mask]).min() < MIN_VISIBLE:
            continue
        shapes.append(Shape(cls, poly, box, object_color(rng)))
        masks.append(mask)
        centres.append((cx, cy, r))
    return tuple(shapes)


def _sizes(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """(height, width) per image: landscape, square and a few portrait."""
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:  # square
            s = int(rng.integers(240, 401))
            out.append((s, s))
        elif kind == 3:  # portrait
            out.append((int(rng.integers(320, 401)), int(rng.integers(240, 300))))
        else:  # landscape
            out.append((int(rng.integers(240, 320)), int(rng.integers(320, 401))))
    return out


def make_scenes(seed: int = SEED) -> list[Scene]:
    """All scenes of the dataset, train first, in index order.

    One SeedSequence is spawned into independent streams: one for the image
    sizes and, per image, one for its objects and one for its background.
    """
    total = sum(SPLITS.values())
    size_seed, *scene_seeds = np.random.SeedSequence(seed).spawn(total + 1)
    sizes = _sizes(np.random.default_rng(size_seed), total)
    split_of = [s for s, k in SPLITS.items() for _ in range(k)]
    scenes = []
    for i, (h, w) in enumerate(sizes):
        bg_seed, obj_seed = scene_seeds[i].spawn(2)
        rng = np.random.default_rng(obj_seed)
        n = 0 if i == BACKGROUND_INDEX else int(rng.integers(2, 9))
        scenes.append(Scene(i, split_of[i], w, h, bg_seed, make_shapes(rng, h, w, n)))
    return scenes


def render(scene: Scene) -> NDArray[np.uint8]:
    """(H, W, 3) uint8 RGB: the background with every shape filled, in order."""
    img = scene.background()
    for s in scene.shapes:
        cv2.fillPoly(img, [to_cv2_fixed(s.polygon)], s.color, cv2.LINE_8, 4)
    return img


# --------------------------------------------------------------------------- writing


def yolo_lines(scene: Scene) -> list[str]:
    """YOLO segment rows ``cls x1 y1 x2 y2 ...`` normalised, 6 decimals."""
    rows = []
    for s in scene.shapes:
        xy = s.polygon / np.array([scene.width, scene.height])
        rows.append(" ".join([str(s.cls), *(f"{v:.6f}" for v in xy.reshape(-1))]))
    return rows


def coco_json(scenes: list[Scene]) -> dict:
    """A COCO instances dict for ``scenes``; category ids are the CATEGORIES keys."""
    cat_ids = sorted(CATEGORIES)
    images, anns = [], []
    for sc in scenes:
        images.append({"id": sc.index + 1, "file_name": sc.file_name, "width": sc.width, "height": sc.height})
        for s in sc.shapes:
            x1, y1, x2, y2 = (float(v) for v in s.box)
            anns.append(
                {
                    "id": len(anns) + 1 + 1000 * (sc.index + 1),
                    "image_id": sc.index + 1,
                    "category_id": cat_ids[s.cls],
                    "bbox": [round(x1, 4), round(y1, 4), round(x2 - x1, 4), round(y2 - y1, 4)],
                    "area": round(polygon_area(s.polygon), 4),
                    "iscrowd": 0,
                    "segmentation": [[round(float(v), 4) for v in s.polygon.reshape(-1)]],
                }
            )
    cats = [{"id": k, "name": CATEGORIES[k], "supercategory": "shape"} for k in cat_ids]
    return {
        "info": {"description": "detaug shapes example (generated by datasets/shapes/generate.py)"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": cats,
    }


def data_yaml() -> str:
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(NAMES))
    return (
        "# detaug 'shapes' example set, generated by datasets/shapes/generate.py\n"
        "path: .  # relative to this file\n"
        "train: images/train\n"
        "val: images/val\n"
        f"names:\n{names}\n"
    )


def write_dataset(out: Path, scenes: list[Scene]) -> None:
    """Write images, YOLO labels, COCO json and the data yaml under ``out``."""
    for sub in ("images", "labels", "annotations"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
    (out / "annotations").mkdir(parents=True)
    for sc in scenes:
        bgr = cv2.cvtColor(render(sc), cv2.COLOR_RGB2BGR)
        ok = cv2.imwrite(str(out / "images" / sc.split / sc.file_name), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"could not write {out / 'images' / sc.split / sc.file_name}")
        lines = yolo_lines(sc)
        text = "\n".join(lines) + ("\n" if lines else "")
        (out / "labels" / sc.split / sc.file_name).with_suffix(".txt").write_text(text)
    for split in SPLITS:
        d = coco_json([s for s in scenes if s.split == split])
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(d, indent=1) + "\n")
    (out / "shapes.yaml").write_text(data_yaml())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    p.add_argument("--seed", type=int, default=SEED, help=f"generator seed (default {SEED})")
    args = p.parse_args(argv)
    scenes = make_scenes(args.seed)
    write_dataset(args.out, scenes)
    n_obj = sum(len(s.shapes) for s in scenes)
    print(f"wrote {len(scenes)} images, {n_obj} objects to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
