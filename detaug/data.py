"""Datasets: map-style sources of :class:`~detaug.sample.Sample`.

:class:`YoloDataset` and :class:`CocoDataset` scan and validate their inputs
once, in the constructor (parsing lives in :mod:`detaug.io`), and then serve
``dataset[i] -> Sample``: the image resized so that its long side is
``img_size`` (``None``: original size), boxes (and polygons) in absolute
pixels of that resized image.

Lenient by default: bad files are skipped, bad rows dropped, and ONE
:class:`~detaug.io.validate.DatasetWarning` summarises what was found
(``dataset.report`` has every problem). ``strict=True`` raises
:class:`~detaug.io.validate.DatasetError` naming the file and line instead.
An image that stops decoding after the scan (the file changed) is replaced by
the next index that decodes, deterministically, and reported once per process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch.utils.data
from numpy.typing import NDArray

from detaug.io import validate as V
from detaug.io.cache import memory_message
from detaug.io.coco import DEFAULT_MAX_JSON_BYTES, scan_coco
from detaug.io.coco import DEFAULT_TOLERANCE as _COCO_TOL
from detaug.io.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    ImageCache,
    ImageError,
    read_image,
    resize_long_side,
    resized_shape,
)
from detaug.io.labels import ScanResult
from detaug.io.validate import DatasetError, DatasetWarning, Problem, Report
from detaug.io.yolo import DEFAULT_MAX_LABEL_BYTES, scan_yolo
from detaug.io.yolo import DEFAULT_TOLERANCE as _YOLO_TOL
from detaug.sample import Labels, Sample

#: ``cache="auto"`` keeps a lazily filled shared cache when the resized
#: images take less than this fraction of the available memory.
AUTO_CACHE_FRACTION = 0.5

__all__ = ["DetectionDataset", "YoloDataset", "CocoDataset", "MixDataset"]


def _check_common(img_size: Any, cache: Any, max_pixels: Any, min_image_side: Any,
                  coord_tolerance: Any, workers: Any) -> str | None:
    if img_size is not None and (isinstance(img_size, bool) or not isinstance(img_size, (int, np.integer))
                                 or img_size <= 0):
        raise ValueError(f"img_size: expected a positive int or None, got {img_size!r}")
    if cache is True:
        cache = "ram"
    if cache is False:
        cache = None
    if cache not in (None, "ram", "lazy", "auto"):
        raise ValueError(f"cache: expected None, 'ram', 'lazy' or 'auto', got {cache!r}")
    if max_pixels is not None and (not isinstance(max_pixels, (int, np.integer)) or max_pixels <= 0):
        raise ValueError(f"max_pixels: expected a positive int or None, got {max_pixels!r}")
    if not isinstance(min_image_side, (int, np.integer)) or min_image_side < 1:
        raise ValueError(f"min_image_side: expected an int >= 1, got {min_image_side!r}")
    if not isinstance(coord_tolerance, (int, float)) or not 0 <= coord_tolerance < 0.5:
        raise ValueError(f"coord_tolerance: expected a number in [0, 0.5), got {coord_tolerance!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    return cache


def _check_bytes(**limits: Any) -> None:
    for name, v in limits.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0):
            raise ValueError(f"{name}: expected a positive int (bytes) or None, got {v!r}")


class DetectionDataset(torch.utils.data.Dataset):
    """Shared base of the file-backed datasets: serving Samples from a :class:`ScanResult`.

    Paths and labels are stored in numpy arrays (no per-image Python objects),
    so forked DataLoader workers share them, like the RAM cache.

    Attributes:
        names: class names, index = class id.
        nc: number of classes.
        report: the :class:`~detaug.io.validate.Report` of the scan (and of
            images that failed later in this process).
        img_size: long side of the served images, or ``None``.
        strict: whether problems raise.
    """

    def __init__(self, scan: ScanResult, *, img_size: int | None, strict: bool, cache: str | None,
                 max_pixels: int | None, progress: bool, workers: int,
                 max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES) -> None:
        self.names: list[str] = list(scan.names)
        self.nc = len(self.names)
        self.report: Report = scan.report
        self.img_size = None if img_size is None else int(img_size)
        self.strict = bool(strict)
        self.max_pixels = max_pixels
        self.max_image_bytes = max_image_bytes
        self._files = np.array(scan.files, dtype=str)
        self._label_files = np.array([s or "" for s in scan.label_files], dtype=str)
        self._ids = np.array(scan.ids)
        self._sizes = scan.sizes
        self._labels = scan.labels
        self._bad: set[int] = set()
        self._cache: ImageCache | None = None
        if len(self._files) == 0:
            raise DatasetError(f"no usable images.\n{self.report.summary()}", self.report.errors)
        if cache == "ram":
            self._build_cache(progress, workers)
        elif cache in ("lazy", "auto"):
            shapes = self._resized_shapes()
            nbytes = int((shapes[:, 0] * shapes[:, 1]).sum() * 3)
            if cache == "lazy" or ImageCache.fits_in_memory(nbytes, fraction=AUTO_CACHE_FRACTION):
                self._cache = ImageCache.allocate(shapes)
            else:
                warnings.warn(memory_message("auto", nbytes, AUTO_CACHE_FRACTION), V.DatasetWarning,
                              stacklevel=3)
        if self.report.problems:
            warnings.warn(self.report.summary(), DatasetWarning, stacklevel=3)

    # ------------------------------------------------------------------ info

    @property
    def files(self) -> list[str]:
        """Image path of every item, in index order."""
        return self._files.tolist()

    @property
    def label_files(self) -> list[str]:
        """Label file of every item (YOLO: the txt, which may not exist; COCO: the json)."""
        return self._label_files.tolist()

    @property
    def ids(self) -> list[Any]:
        """Id of every item (YOLO: the file stem; COCO: the image id)."""
        return self._ids.tolist()

    @property
    def orig_sizes(self) -> NDArray[np.int64]:
        """(M, 2) int64 (h, w) of every image as scanned (EXIF-oriented)."""
        return self._sizes.copy()

    @property
    def cache(self) -> ImageCache | None:
        """The RAM cache, or ``None``."""
        return self._cache

    def num_objects(self, index: int) -> int:
        """Number of objects of item ``index`` without loading its image."""
        return self._labels.count(index)

    def __len__(self) -> int:
        return len(self._files)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.report.source!r}, images={len(self)}, nc={self.nc}, "
                f"img_size={self.img_size}, cache={self._cache_kind()})")

    def _cache_kind(self) -> str | None:
        if self._cache is None:
            return None
        return "lazy" if self._cache.lazy else "ram"

    # ------------------------------------------------------------------ loading

    def _read(self, index: int) -> tuple[NDArray[np.uint8], tuple[int, int]]:
        # Large JPEGs decode at 1/2, 1/4 or 1/8 scale when that still covers img_size.
        img = read_image(str(self._files[index]), max_pixels=self.max_pixels, min_long_side=self.img_size,
                         max_bytes=getattr(self, "max_image_bytes", DEFAULT_MAX_IMAGE_BYTES))
        h, w = img.shape[:2]
        sh, sw = (int(v) for v in self._sizes[index])
        orig = (sh, sw) if any(sh == h * f and sw == w * f for f in (1, 2, 4, 8)) else (h, w)
        return resize_long_side(img, self.img_size)[0], orig

    def _resized_shapes(self) -> NDArray[np.int64]:
        return np.array([resized_shape(int(h), int(w), self.img_size) for h, w in self._sizes],
                        dtype=np.int64).reshape(-1, 2)

    def _build_cache(self, progress: bool, workers: int) -> None:
        shapes = self._resized_shapes()
        nbytes = int((shapes[:, 0] * shapes[:, 1]).sum() * 3)
        if not ImageCache.fits_in_memory(nbytes):
            warnings.warn(memory_message("ram", nbytes, 0.8), V.DatasetWarning, stacklevel=4)
            return
        failed: list[tuple[int, Exception]] = []
        self._cache = ImageCache.build(
            shapes, lambda i: self._read(i)[0], workers=workers, progress=progress,
            desc="Caching images", on_error=lambda i, e: failed.append((i, e)),
        )
        for i, e in sorted(failed, key=lambda t: t[0]):
            self._bad.add(i)
            if isinstance(e, ImageError):
                then = "strict mode stops here" if self.strict else f"item {i} is replaced by the next good index"
                p = Problem(e.kind, e.path, None, f"{e.detail} (found while caching; {then})")
            else:
                p = Problem(V.DECODE_FAILED, str(self._files[i]), None, f"{type(e).__name__}: {e}")
            self.report.add(p)
            if self.strict:
                raise DatasetError(str(p), [p]) from e

    def load(self, index: int) -> Sample:
        """Item ``index`` without replacement: raises :class:`ImageError` if it cannot be decoded."""
        img = self._cache.get(index) if self._cache is not None else None
        if img is None:
            img, orig = self._read(index)
            if self._cache is not None and self._cache.lazy:
                self._cache.put(index, img)
        else:
            orig = (int(self._sizes[index, 0]), int(self._sizes[index, 1]))
        h, w = img.shape[:2]
        boxes, classes, polygons = self._labels.get(index, w, h)
        meta = self._meta(index, orig, (h, w))
        return Sample(image=img, boxes=boxes, classes=classes, weights=np.ones(len(classes), np.float32),
                      polygons=polygons, meta=meta)

    def labels_of(self, index: int) -> Labels:
        """Item ``index`` without its pixels: size, objects and meta as :meth:`load` gives them, no decode.

        The size is the served (resized) one, from the scanned header; what a
        planner needs (``MixDataset(output="plan", ship_sources=False)``). No
        replacement: an image that stops decoding is found by whoever reads its pixels.
        """
        i = int(index)
        if not 0 <= i < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        h0, w0 = (int(v) for v in self._sizes[i])
        h, w = resized_shape(h0, w0, self.img_size)
        boxes, classes, polygons = self._labels.get(i, w, h)
        return Labels((h, w), boxes, classes, np.ones(len(classes), np.float32), polygons,
                      self._meta(i, (h0, w0), (h, w)))

    def _meta(self, index: int, orig: tuple[int, int], size: tuple[int, int]) -> dict[str, Any]:
        """The meta of item ``index`` (see :meth:`__getitem__`), served at ``size`` (h, w)."""
        return {
            "path": str(self._files[index]),
            "label_path": str(self._label_files[index]) or None,
            "orig_size": orig,
            "size": size,
            "id": self._ids[index].item(),
            "index": index,
        }

    def __getitem__(self, index: int) -> Sample:
        """Item ``index`` as a Sample; an undecodable image is replaced by the next good index.

        ``meta``: ``path``, ``label_path``, ``orig_size`` (h, w), ``size`` (h, w),
        ``id``, ``index`` (the item actually served) and, only for a
        replacement, ``replaces`` (the index asked for).
        """
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                s = self.load(j)
            except ImageError as e:
                self._bad.add(j)
                then = "strict mode stops here" if self.strict else f"item {j} is replaced by the next good index"
                p = Problem(V.DECODE_FAILED, e.path, None, f"{e.kind}: {e.detail} ({then})")
                self.report.add(p)
                if self.strict:
                    raise DatasetError(str(p), [p]) from e
                warnings.warn(str(p), DatasetWarning, stacklevel=2)
                continue
            return s if j == i else s.with_meta(replaces=i)
        raise DatasetError(f"{self.report.source}: none of the {n} images can be decoded any more")


class YoloDataset(DetectionDataset):
    """A YOLO-format dataset split.

    Args:
        source: an Ultralytics-style data yaml (``path``, ``train``/``val``/``test``,
            ``names`` as list or dict, optional ``nc``), an images folder, or a
            .txt list of image paths.
        split: the yaml entry to load (ignored for folders and lists).
        img_size: long side of served images (aspect kept), or ``None`` for no resize.
        strict: raise :class:`DatasetError` (naming file and line) at the first problem.
        cache: ``"ram"``: decode and resize every image once, here, into one
            uint8 buffer that forked workers share. ``"lazy"``: the same buffer
            in shared memory, filled as images are first read (by any worker).
            ``"auto"`` (default): ``"lazy"`` when the resized images fit in half
            the available memory, else ``None`` (always read from disk).
        max_pixels: decompression-bomb limit (``None``: no limit).
        progress: tqdm bars for the scan and the cache.
        names: class names when ``source`` is not a yaml.
        min_image_side: images with a smaller side are skipped.
        coord_tolerance: normalised overshoot that is clipped; beyond it a row is dropped.
        full_decode: decode every image during the scan (default: headers only).
        skip_image_on_bad_row: skip a whole image when one of its rows is bad.
        polygons: ``None`` (keep if any row has one; box rows then get rectangles),
            ``True`` or ``False``.
        workers: threads for scanning and caching.
        max_image_bytes: image files larger than this are not read (``too_large``;
            default 512 MiB; ``None``: no limit).
        max_label_bytes: label txt files larger than this are not read
            (``too_large``, the image is skipped; default 64 MiB; ``None``: no limit).

    Attributes:
        names, nc, report, files: see :class:`DetectionDataset`.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        split: str = "train",
        img_size: int | None = 640,
        strict: bool = False,
        cache: str | None = "auto",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        progress: bool = True,
        *,
        names: Sequence[str] | None = None,
        min_image_side: int = DEFAULT_MIN_SIDE,
        coord_tolerance: float = _YOLO_TOL,
        full_decode: bool = False,
        skip_image_on_bad_row: bool = False,
        polygons: bool | None = None,
        workers: int = 8,
        max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
        max_label_bytes: int | None = DEFAULT_MAX_LABEL_BYTES,
    ) -> None:
        cache = _check_common(img_size, cache, max_pixels, min_image_side, coord_tolerance, workers)
        _check_bytes(max_image_bytes=max_image_bytes, max_label_bytes=max_label_bytes)
        scan = scan_yolo(
            source, split, names=names, strict=strict, max_pixels=max_pixels,
            min_image_side=min_image_side, coord_tolerance=coord_tolerance, full_decode=full_decode,
            skip_image_on_bad_row=skip_image_on_bad_row, polygons=polygons, progress=progress,
            workers=workers, max_image_bytes=max_image_bytes, max_label_bytes=max_label_bytes,
        )
        super().__init__(scan, img_size=img_size, strict=strict, cache=cache, max_pixels=max_pixels,
                         progress=progress, workers=workers, max_image_bytes=max_image_bytes)


class CocoDataset(DetectionDataset):
    """A COCO instances json with its image folder.

    Args:
        annotation_json: the instances json.
        image_root: folder that the images' ``file_name`` resolve against.
        max_label_bytes: the json's size limit (default 2 GiB; ``None``: no limit).
        Others: as :class:`YoloDataset` (``coord_tolerance`` is relative to the image side).

    Attributes:
        names: class names in sorted category-id order.
        category_ids: class index -> COCO category id.
        category_to_class: COCO category id -> class index.
        report: also counts ``crowd`` annotations (not used as boxes).
    """

    def __init__(
        self,
        annotation_json: str | os.PathLike[str],
        image_root: str | os.PathLike[str],
        img_size: int | None = 640,
        strict: bool = False,
        cache: str | None = "auto",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        progress: bool = True,
        *,
        min_image_side: int = DEFAULT_MIN_SIDE,
        coord_tolerance: float = _COCO_TOL,
        full_decode: bool = False,
        skip_image_on_bad_row: bool = False,
        polygons: bool | None = None,
        workers: int = 8,
        max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
        max_label_bytes: int | None = DEFAULT_MAX_JSON_BYTES,
    ) -> None:
        cache = _check_common(img_size, cache, max_pixels, min_image_side, coord_tolerance, workers)
        _check_bytes(max_image_bytes=max_image_bytes, max_label_bytes=max_label_bytes)
        scan = scan_coco(
            annotation_json, image_root, strict=strict, max_pixels=max_pixels,
            min_image_side=min_image_side, coord_tolerance=coord_tolerance, full_decode=full_decode,
            skip_image_on_bad_row=skip_image_on_bad_row, polygons=polygons, progress=progress,
            workers=workers, max_image_bytes=max_image_bytes, max_label_bytes=max_label_bytes,
        )
        cats = scan.extra["categories"]
        self.category_ids: list[int] = list(cats.category_ids)  # type: ignore[attr-defined]
        self.category_to_class: dict[int, int] = dict(cats.category_to_class)  # type: ignore[attr-defined]
        super().__init__(scan, img_size=img_size, strict=strict, cache=cache, max_pixels=max_pixels,
                         progress=progress, workers=workers, max_image_bytes=max_image_bytes)


from detaug.mix_dataset import MixDataset  # noqa: E402  (re-export: MixDataset lives in its own module)
