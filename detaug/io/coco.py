"""COCO instances json (through pycocotools) to normalised labels.

- Category ids map to contiguous classes 0..nc-1 in sorted id order.
- ``iscrowd=1`` annotations are not training boxes; they are counted
  (``report.crowd``), not reported as problems.
- ``bbox`` (x, y, w, h, absolute pixels) becomes xyxy clipped to the image
  (overshoot beyond ``coord_tolerance`` x the image side drops the annotation).
- Polygon segmentations are kept (several parts -> one array, parts separated
  by a NaN row), their points clamped into the image. RLE segmentations of
  non-crowd annotations give the box only.
- Images without annotations are background images.

The json is validated entry by entry before pycocotools indexes it, so a
missing key is reported with the annotation's id instead of a ``KeyError``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from detaug.io import validate as V
from detaug.io.files import FileProblem, read_regular_file
from detaug.io.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    ImageError,
    ImageHeader,
    inspect_image,
    map_progress,
)
from detaug.io.labels import ImageLabels, LabelTable, ScanResult
from detaug.io.validate import DatasetError, Problem, ProblemSink, Report

__all__ = ["CocoCategories", "DEFAULT_MAX_JSON_BYTES", "load_categories", "scan_coco"]

DEFAULT_TOLERANCE = 1e-3
#: Normalised overshoot treated as float noise: clipped without a ``clipped`` warning.
ROUNDING_EPS = 1e-6
#: Default limit on an annotation json in bytes: 2 GiB (COCO train2017 instances is 448 MB).
DEFAULT_MAX_JSON_BYTES = 2 * 2**30


def _id_ok(v: Any) -> bool:
    """An id pycocotools can index by: an int (not bool) or a string."""
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, str)


def _bad_fields(a: dict[str, Any]) -> str | None:
    """What is wrong with an annotation's id fields and ``iscrowd``, or ``None``."""
    for key in ("id", "image_id", "category_id"):
        if key in a and not _id_ok(a[key]):
            return f"{key!r} must be an integer or a string, got {a[key]!r} ({type(a[key]).__name__})"
    crowd = a.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, (float, str)):
        return f"'iscrowd' must be 0 or 1, got {crowd!r} ({type(crowd).__name__})"
    return None


@dataclass(frozen=True)
class CocoCategories:
    """The class mapping of a COCO json.

    Attributes:
        names: class names, index = class id 0..nc-1.
        category_ids: class index -> COCO category id (sorted ascending).
        category_to_class: COCO category id -> class index.
    """

    names: list[str]
    category_ids: list[int]
    category_to_class: dict[int, int]


def load_categories(categories: Any, file: str) -> CocoCategories:
    """Sorted-id class mapping of a json's ``categories`` list.

    >>> c = load_categories([{"id": 7, "name": "b"}, {"id": 2, "name": "a"}], "x.json")
    >>> c.names, c.category_ids, c.category_to_class
    (['a', 'b'], [2, 7], {2: 0, 7: 1})

    Raises:
        DatasetError: naming the json, for a missing/bad id or name or duplicate ids.
    """
    if not isinstance(categories, list) or not categories:
        raise DatasetError(f"{file}: 'categories' must be a non-empty list")
    by_id: dict[int, str] = {}
    for i, c in enumerate(categories):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise DatasetError(f"{file}: categories[{i}] needs keys 'id' and 'name', got {c!r}")
        cid = c["id"]
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise DatasetError(f"{file}: categories[{i}] id {cid!r} is not an integer")
        if cid in by_id:
            raise DatasetError(f"{file}: categories[{i}] repeats category id {cid}")
        by_id[cid] = str(c["name"])
    ids = sorted(by_id)
    return CocoCategories([by_id[i] for i in ids], ids, {cid: k for k, cid in enumerate(ids)})


def _number_list(v: Any) -> list[float] | None:
    if not isinstance(v, (list, tuple)):
        return None
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return None
        out.append(float(x))
    return out


@dataclass
class _Ann:
    cls: int
    box: np.ndarray  # normalised xyxy
    polygon: np.ndarray | None  # normalised, NaN-separated parts
    key: tuple[float, ...]
    ident: str


def _parse_annotation(
    a: dict[str, Any], ident: str, w: float, h: float, cls: int, tol: float, bad: Any
) -> _Ann | None:
    bbox = _number_list(a["bbox"])
    if bbox is None or len(bbox) != 4:
        bad(V.MALFORMED, f"{ident}: 'bbox' must be 4 numbers [x, y, w, h], got {a['bbox']!r}")
        return None
    if not all(math.isfinite(v) for v in bbox):
        bad(V.NON_FINITE, f"{ident}: bbox {bbox} has NaN or inf")
        return None
    x, y, bw, bh = bbox
    if bw <= 0 or bh <= 0:
        bad(V.ZERO_SIZE, f"{ident}: bbox {bbox} has zero or negative width/height")
        return None
    box = np.array([x / w, y / h, (x + bw) / w, (y + bh) / h], np.float64)
    lo, hi = float(box.min()), float(box.max())
    if lo < -tol or hi > 1 + tol:
        bad(V.OUT_OF_RANGE, f"{ident}: bbox {bbox} leaves the {w:g}x{h:g} image beyond the tolerance {tol:g}")
        return None
    if lo < -ROUNDING_EPS or hi > 1 + ROUNDING_EPS:
        bad(V.CLIPPED, f"{ident}: bbox {bbox} leaves the {w:g}x{h:g} image within the tolerance: clipped")
    box = np.clip(box, 0.0, 1.0)
    if box[2] <= box[0] or box[3] <= box[1]:
        bad(V.ZERO_SIZE, f"{ident}: bbox {bbox} has zero area after clipping")
        return None
    polygon = None
    seg = a.get("segmentation")
    if isinstance(seg, list) and seg:
        parts = []
        for k, part in enumerate(seg):
            coords = _number_list(part)
            if coords is None:
                bad(V.MALFORMED, f"{ident}: segmentation part {k} is not a list of numbers; part dropped")
            elif len(coords) % 2:
                bad(V.ODD_COORDINATES, f"{ident}: segmentation part {k} has an odd number of "
                    f"coordinates ({len(coords)}); part dropped")
            elif len(coords) < 6:
                bad(V.TOO_FEW_POINTS, f"{ident}: segmentation part {k} has {len(coords) // 2} points "
                    "(< 3); part dropped")
            elif not all(math.isfinite(v) for v in coords):
                bad(V.NON_FINITE, f"{ident}: segmentation part {k} has NaN or inf; part dropped")
            else:
                pts = np.array(coords, np.float64).reshape(-1, 2) / (w, h)
                parts.append(np.clip(pts, 0.0, 1.0))
        if parts:
            sep = np.full((1, 2), np.nan)
            polygon = np.concatenate([q for p in parts for q in (sep, p)][1:])
    return _Ann(cls, box, polygon, (cls, *bbox), ident)


def scan_coco(
    annotation_json: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    *,
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_image_side: int = DEFAULT_MIN_SIDE,
    coord_tolerance: float = DEFAULT_TOLERANCE,
    full_decode: bool = False,
    skip_image_on_bad_row: bool = False,
    polygons: bool | None = None,
    progress: bool = True,
    workers: int = 8,
    max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
    max_label_bytes: int | None = DEFAULT_MAX_JSON_BYTES,
) -> ScanResult:
    """Load, check and index a COCO instances json.

    Arguments are as in :func:`detaug.io.yolo.scan_yolo`; ``coord_tolerance``
    is relative to the image side. ``ScanResult.extra`` holds
    ``"categories"`` (:class:`CocoCategories`). ``max_label_bytes`` limits the
    json's size (default 2 GiB), ``max_image_bytes`` each image's. The json may
    start with a UTF-8 BOM. Ids must be integers or strings and ``iscrowd`` 0
    or 1 (a bool counts); anything else is ``malformed``, naming the annotation.

    Raises:
        DatasetError: unreadable json, missing top-level keys, bad categories;
            in strict mode, the first error-level problem.
    """
    jpath = Path(annotation_json)
    root = Path(image_root)
    jname = str(jpath)
    report = Report(source=jname)
    sink = ProblemSink(report, strict)
    try:
        data = json.loads(read_regular_file(jpath, max_bytes=max_label_bytes).decode("utf-8-sig"))
    except FileProblem as e:
        if e.kind == V.MISSING_FILE:
            raise DatasetError(f"{jpath}: annotation json not found") from None
        raise DatasetError(f"{jpath}: {e.kind}: annotation json: "
                           f"{e.detail.replace('max_bytes=', 'max_label_bytes=')}") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{jpath}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{jpath}: cannot read annotation json: {e}") from None
    if not root.is_dir():
        raise DatasetError(f"{root}: image_root is not a folder")
    if not isinstance(data, dict):
        raise DatasetError(f"{jpath}: top level must be an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{jpath}: top-level key {key!r} missing or not a list")
    cats = load_categories(data["categories"], jname)

    def bad(kind: str, msg: str) -> None:
        sink.add(kind, jname, None, msg)

    # ---- images
    images: dict[int, dict[str, Any]] = {}
    for i, im in enumerate(data["images"]):
        ident = f"images[{i}]" + (f" (id {im.get('id')})" if isinstance(im, dict) and "id" in im else "")
        if not isinstance(im, dict):
            bad(V.MALFORMED, f"{ident}: not an object")
            continue
        missing = [k for k in ("id", "file_name") if k not in im]
        if missing:
            bad(V.MISSING_KEY, f"{ident}: missing key {missing[0]!r}")
            continue
        if not isinstance(im["file_name"], str) or not _id_ok(im["id"]):
            bad(V.MALFORMED, f"{ident}: 'id' must be an integer or a string and 'file_name' a string, "
                f"got id {im['id']!r}, file_name {im['file_name']!r}")
            continue
        if im["id"] in images:
            bad(V.DUPLICATE_ID, f"{ident}: image id {im['id']} already used by an earlier image")
            continue
        size_ok = all(isinstance(im.get(k), (int, float)) and not isinstance(im.get(k), bool)
                      and im.get(k, 0) > 0 for k in ("width", "height"))
        if ("width" in im or "height" in im) and not size_ok:
            bad(V.MALFORMED, f"{ident}: 'width'/'height' must be positive numbers")
            continue
        images[im["id"]] = im

    # ---- annotations: check keys, index with pycocotools
    clean_anns: list[dict[str, Any]] = []
    ann_ids: set[Any] = set()
    for i, a in enumerate(data["annotations"]):
        ident = f"annotation id {a.get('id')} (annotations[{i}])" if isinstance(a, dict) else f"annotations[{i}]"
        if not isinstance(a, dict):
            bad(V.MALFORMED, f"{ident}: not an object")
            continue
        missing = [k for k in ("image_id", "category_id", "bbox") if k not in a]
        if missing:
            bad(V.MISSING_KEY, f"{ident}: missing key {missing[0]!r}")
            continue
        why = _bad_fields(a)
        if why is not None:
            bad(V.MALFORMED, f"{ident}: {why}")
            continue
        if "id" in a:
            if a["id"] in ann_ids:
                bad(V.DUPLICATE_ID, f"{ident}: annotation id already used by an earlier annotation")
                continue
            ann_ids.add(a["id"])
        if a["image_id"] not in images:
            bad(V.UNKNOWN_IMAGE, f"{ident}: image_id {a['image_id']!r} is not in 'images'")
            continue
        if a["category_id"] not in cats.category_to_class:
            bad(V.UNKNOWN_CATEGORY, f"{ident}: category_id {a['category_id']!r} is not in 'categories'")
            continue
        clean_anns.append({**a, "id": i, "_ident": ident})
    coco = COCO()
    coco.dataset = {"images": list(images.values()), "annotations": clean_anns,
                    "categories": data["categories"]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()

    # ---- image files
    img_ids = list(images)

    def scan_one(img_id: Any) -> tuple[Path, ImageHeader | None, Problem | None]:
        p = root / images[img_id]["file_name"]
        try:
            return p, inspect_image(p, max_pixels=max_pixels, min_side=min_image_side,
                                    full_decode=full_decode, max_bytes=max_image_bytes), None
        except ImageError as e:
            return p, None, e.to_problem()

    kept_paths: list[str] = []
    kept_ids: list[Any] = []
    kept_sizes: list[tuple[int, int]] = []
    kept_labels: list[ImageLabels] = []
    results = map_progress(scan_one, img_ids, workers=workers, progress=progress, desc=f"Scanning {jpath.name}")
    with closing(results):  # strict mode raising in the loop cancels the pending scan work at once
        for img_id, (p, head, prob) in zip(img_ids, results, strict=True):
            report.images_found += 1
            anns = coco.imgToAnns.get(img_id, [])
            report.crowd += sum(1 for a in anns if a.get("iscrowd", 0))
            if prob is not None:
                sink.extend([prob])
                continue
            if head is None:  # pragma: no cover - inspect_image returns a header or raises
                continue
            im = images[img_id]
            w, h = float(im.get("width", head.width)), float(im.get("height", head.height))
            if (head.width, head.height) != (w, h):
                hint = (" (the EXIF orientation tag swaps the sides; the json was made from the stored pixels)"
                        if head.orientation >= 5 and (head.height, head.width) == (w, h) else "")
                sink.add(V.SIZE_MISMATCH, p, None, f"image is {head.width}x{head.height} but "
                         f"{jname} says {w:g}x{h:g}{hint}")
                continue
            n_err = len(report.errors)
            parsed: list[_Ann] = []
            seen: dict[tuple[float, ...], str] = {}
            for a in anns:
                if a.get("iscrowd", 0):
                    continue
                ident = a["_ident"]
                r = _parse_annotation(a, ident, w, h, cats.category_to_class[a["category_id"]], coord_tolerance,
                                      bad)
                if r is None:
                    continue
                if r.key in seen:
                    bad(V.DUPLICATE, f"{ident}: same class and bbox as {seen[r.key]}; dropped")
                    continue
                seen[r.key] = ident
                parsed.append(r)
            if skip_image_on_bad_row and len(report.errors) > n_err:
                continue
            any_poly = any(r.polygon is not None for r in parsed)
            kept_labels.append(ImageLabels(
                np.array([r.cls for r in parsed], np.int64).reshape(-1),
                np.array([r.box for r in parsed], np.float64).reshape(-1, 4),
                [r.polygon for r in parsed] if any_poly else None,
            ))
            kept_paths.append(str(p))
            kept_ids.append(img_id)
            kept_sizes.append((head.height, head.width))
    table = LabelTable.build(kept_labels, polygons)
    report.images_used = len(kept_paths)
    report.objects = table.num_objects
    report.background = sum(1 for lab in kept_labels if len(lab) == 0)
    return ScanResult(
        files=kept_paths,
        label_files=[jname] * len(kept_paths),
        ids=kept_ids,
        sizes=np.array(kept_sizes, np.int64).reshape(-1, 2),
        labels=table,
        names=cats.names,
        report=report,
        extra={"categories": cats},
    )
