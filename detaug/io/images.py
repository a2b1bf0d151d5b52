"""Image files: header probing, decoding, colour conversion, resizing, RAM cache.

Everything that leaves this module is an (H, W, 3) uint8 **RGB** C-contiguous
array in the image's *displayed* frame: OpenCV applies the EXIF orientation
tag while decoding (``cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH`` does; only
``IMREAD_UNCHANGED`` would ignore it), and labels of EXIF-rotated photos are
drawn in that oriented frame by every labelling tool. Grey images are
replicated to three channels, alpha is dropped (not composited), 16-bit is
mapped to 8-bit by ``round(v / 257)`` and float images are taken as [0, 1].

Files are read with a plain ``open()`` and decoded from memory with
``cv2.imdecode``, so non-ASCII paths work on every platform.

Decompression bombs: the pixel count is read from the JPEG/PNG/BMP/WebP header
*before* the pixels are decoded, and checked again after decoding (formats
without a header parser here, e.g. TIFF, are only checked after).

>>> import numpy as np, cv2
>>> ok, buf = cv2.imencode(".png", np.zeros((30, 50), np.uint16))
>>> probe_header(buf.tobytes())
ImageHeader(format='png', height=30, width=50, orientation=1)
>>> decode_image(buf.tobytes()).shape
(30, 50, 3)
>>> resized_shape(480, 640, 320), resized_shape(480, 640, None)
((240, 320), (480, 640))
"""

from __future__ import annotations

import mmap
import os
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from detaug.io import validate as V

__all__ = [
    "IMAGE_SUFFIXES",
    "KNOWN_UNSUPPORTED_SUFFIXES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "ImageError",
    "ImageHeader",
    "probe_header",
    "inspect_image",
    "decode_image",
    "read_image",
    "to_rgb8",
    "resized_shape",
    "resize_long_side",
    "ImageCache",
    "map_progress",
]

#: Suffixes (lower case) that detaug loads; decoding itself goes by content.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".bmp", ".dib", ".jpg", ".jpeg", ".jpe", ".mpo", ".png", ".tif", ".tiff", ".webp",
     ".pbm", ".pgm", ".ppm", ".pnm", ".pfm"}
)
#: Image suffixes found in datasets that OpenCV wheels cannot (reliably) decode;
#: reported as ``unsupported_format`` when met in an images folder.
KNOWN_UNSUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".gif", ".heic", ".heif", ".avif", ".dng", ".jxl", ".svg", ".ico", ".raw", ".cr2", ".nef", ".psd"}
)
#: Default decompression-bomb limit: 100 megapixels (300 MB as RGB uint8).
DEFAULT_MAX_PIXELS = 100_000_000
#: Default minimum image side in pixels; smaller images are skipped.
DEFAULT_MIN_SIDE = 10

T = TypeVar("T")
R = TypeVar("R")

_DECODE_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH  # keeps 16-bit, drops alpha, applies EXIF


class ImageError(ValueError):
    """An image could not be used. ``kind`` is a problem kind of :mod:`detaug.io.validate`."""

    def __init__(self, kind: str, path: str | os.PathLike[str], message: str) -> None:
        self.kind = kind
        self.path = str(path)
        self.detail = message
        super().__init__(f"{self.path}: {kind}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return type(self), (self.kind, self.path, self.detail)

    def to_problem(self) -> V.Problem:
        """This error as a :class:`~detaug.io.validate.Problem`."""
        return V.Problem(self.kind, self.path, None, self.detail)


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says.

    Attributes:
        format: ``"jpeg"``, ``"png"``, ``"bmp"``, ``"webp"`` or ``"decoded"``
            (no header parser; the size came from a full decode).
        height, width: pixel size in the *displayed* frame (EXIF orientations
            5-8 swap the stored width and height).
        orientation: EXIF orientation 1..8 (1 when absent).
    """

    format: str
    height: int
    width: int
    orientation: int = 1


# --------------------------------------------------------------------------- header probing


def _exif_orientation(seg: bytes) -> int:
    """Orientation tag (0x0112) of IFD0 in an APP1 payload that starts with b'Exif\\0\\0'."""
    tiff = seg[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    e = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(e + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (n,) = struct.unpack_from(e + "H", tiff, ifd)
    for k in range(min(n, 512)):
        off = ifd + 2 + 12 * k
        if off + 12 > len(tiff):
            break
        tag, typ = struct.unpack_from(e + "HH", tiff, off)
        if tag == 0x0112 and typ == 3:
            (value,) = struct.unpack_from(e + "H", tiff, off + 8)
            return int(value) if 1 <= value <= 8 else 1
    return 1


def _probe_jpeg(data: bytes) -> ImageHeader | None:
    pos, size, orientation, n = 2, None, 1, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos + 1]
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI / start of scan: header is over
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > n:
                return None
            h, w = struct.unpack_from(">HH", data, pos + 5)
            size = (h, w)
        elif marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            try:
                orientation = _exif_orientation(data[pos + 4 : pos + 2 + length])
            except struct.error:
                orientation = 1
        pos += 2 + length
    if size is None:
        return None
    h, w = size
    if orientation >= 5:
        h, w = w, h
    return ImageHeader("jpeg", h, w, orientation)


def probe_header(data: bytes) -> ImageHeader | None:
    """Read the pixel size from a JPEG, PNG, BMP or WebP header without decoding.

    Args:
        data: the file's bytes (the first few kB are enough unless a JPEG has
            large APP segments).

    Returns:
        The header, or ``None`` for other formats or a header that cannot be parsed.
    """
    try:
        if data[:2] == b"\xff\xd8":
            return _probe_jpeg(data)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", data, 16)
            return ImageHeader("png", h, w)
        if data[:2] == b"BM":
            (dib,) = struct.unpack_from("<I", data, 14)
            if dib == 12:
                w, h = struct.unpack_from("<HH", data, 18)
            else:
                w, h = struct.unpack_from("<ii", data, 18)
            return ImageHeader("bmp", abs(h), abs(w))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack_from("<HH", data, 26)
                return ImageHeader("webp", h & 0x3FFF, w & 0x3FFF)
            if chunk == b"VP8L":
                (b,) = struct.unpack_from("<I", data, 21)
                return ImageHeader("webp", ((b >> 14) & 0x3FFF) + 1, (b & 0x3FFF) + 1)
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return ImageHeader("webp", h, w)
    except struct.error:
        return None
    return None


def _is_complete(data: bytes, fmt: str) -> bool:
    """False when a JPEG lacks its end-of-image marker after the last scan, or a PNG its IEND."""
    if fmt == "jpeg":
        # 0xFF is byte-stuffed inside entropy-coded data, so FFD9/FFDA only occur as markers.
        sos = data.rfind(b"\xff\xda")
        return sos >= 0 and data.rfind(b"\xff\xd9") > sos
    if fmt == "png":
        return data.rfind(b"IEND") > 8
    return True


# --------------------------------------------------------------------------- decoding


def to_rgb8(image: NDArray) -> NDArray[np.uint8]:
    """OpenCV-decoded pixels -> (H, W, 3) uint8 RGB, C-contiguous (a new array).

    Accepts (H, W) or (H, W, 1) grey, (H, W, 3) BGR, (H, W, 4) BGRA (alpha
    dropped); uint8, uint16 (``round(v / 257)``), other integers (clipped to
    0..255) or floats (taken as [0, 1]).

    >>> to_rgb8(np.array([[[0, 0, 65535]]], np.uint16)).tolist()
    [[[255, 0, 0]]]
    """
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = np.clip(np.nan_to_num(img, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        out = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.ndim == 3 and img.shape[2] == 3:
        out = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        out = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        raise ValueError(f"image: cannot convert shape {img.shape} to RGB")
    return np.ascontiguousarray(out)


def _check_pixels(h: int, w: int, max_pixels: int | None, source: str) -> None:
    if max_pixels is not None and h * w > max_pixels:
        raise ImageError(
            V.TOO_LARGE, source, f"{w}x{h} = {h * w} pixels exceeds max_pixels={max_pixels}"
        )


#: cv2.IMREAD_REDUCED_COLOR_{2,4,8}: libjpeg scales in the DCT domain while decoding.
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def jpeg_reduction(head: ImageHeader | None, min_long_side: int | None) -> int:
    """The largest JPEG decode reduction (1, 2, 4 or 8) that keeps the long side >= ``min_long_side``.

    Only for JPEGs whose both sides are divisible by the factor, so the
    reduced image is exactly the original scaled by 1/factor (labels stay
    exact). 1 means a full decode.

    >>> jpeg_reduction(ImageHeader("jpeg", 1080, 1920, 1), 640)
    2
    >>> jpeg_reduction(ImageHeader("jpeg", 1080, 1920, 1), 200)
    8
    >>> jpeg_reduction(ImageHeader("png", 1080, 1920, 1), 200)
    1
    """
    if head is None or head.format != "jpeg" or min_long_side is None:
        return 1
    long_side = max(head.height, head.width)
    for f in (8, 4, 2):
        if long_side // f >= min_long_side and head.height % f == 0 and head.width % f == 0:
            return f
    return 1


def decode_image(
    data: bytes,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    source: str = "<bytes>",
    min_long_side: int | None = None,
) -> NDArray[np.uint8]:
    """Decode image bytes to (H, W, 3) uint8 RGB in the EXIF-oriented frame.

    Args:
        min_long_side: when given, a JPEG at least twice this size is decoded
            at 1/2, 1/4 or 1/8 scale (see :func:`jpeg_reduction`): several times
            faster, for callers that resize down to this size anyway.

    Raises:
        ImageError: kind ``empty_file``, ``too_large`` (checked from the header
            before decoding where the format allows, and after) or ``not_image``.
    """
    if len(data) == 0:
        raise ImageError(V.EMPTY_FILE, source, "file is empty (0 bytes)")
    head = probe_header(data)
    if head is not None:
        _check_pixels(head.height, head.width, max_pixels, source)
    factor = jpeg_reduction(head, min_long_side)
    flags = _DECODE_FLAGS if factor == 1 else _REDUCED_FLAGS[factor]
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        raise ImageError(V.NOT_IMAGE, source, f"OpenCV cannot decode this file: {e.err}") from None
    if img is None or img.size == 0:
        raise ImageError(V.NOT_IMAGE, source, "OpenCV cannot decode this file as an image")
    _check_pixels(img.shape[0], img.shape[1], max_pixels, source)
    try:
        return to_rgb8(img)
    except ValueError as e:
        raise ImageError(V.NOT_IMAGE, source, str(e)) from None


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageError(V.MISSING_FILE, path, "file not found") from None
    except (IsADirectoryError, PermissionError, OSError) as e:
        raise ImageError(V.UNREADABLE, path, f"cannot read: {e.strerror or e}") from None


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_long_side: int | None = None,
) -> NDArray[np.uint8]:
    """Read and decode one image file to (H, W, 3) uint8 RGB (EXIF-oriented).

    ``min_long_side``: see :func:`decode_image` (reduced JPEG decoding).

    Raises:
        ImageError: naming the file; kinds ``missing_file``, ``unreadable``,
            ``empty_file``, ``too_large``, ``not_image``.
    """
    p = Path(path)
    return decode_image(_read_bytes(p), max_pixels=max_pixels, source=str(p), min_long_side=min_long_side)


def inspect_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    full_decode: bool = False,
) -> ImageHeader:
    """Scan-time check of one image file, cheap unless ``full_decode``.

    Checks the suffix, that the file exists and is non-empty, reads the size
    from the header (a full decode for formats without a header parser),
    checks JPEG/PNG files for truncation (end marker), the pixel limit and the
    minimum side. ``full_decode=True`` also decodes every image.

    Returns:
        The header; ``height``/``width`` are in the displayed (EXIF-oriented) frame.

    Raises:
        ImageError: naming the file, with the problem kind.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(V.UNSUPPORTED_FORMAT, p, f"suffix {p.suffix!r} is not a supported image format")
    data = _read_bytes(p)
    if len(data) == 0:
        raise ImageError(V.EMPTY_FILE, p, "file is empty (0 bytes)")
    head = probe_header(data)
    if head is not None:
        if not _is_complete(data, head.format):
            what = "end-of-image marker (FFD9)" if head.format == "jpeg" else "IEND chunk"
            raise ImageError(V.TRUNCATED, p, f"{head.format.upper()} has no {what}: file is truncated")
        _check_pixels(head.height, head.width, max_pixels, str(p))
    if head is None or full_decode:
        img = decode_image(data, max_pixels=max_pixels, source=str(p))
        head = ImageHeader(head.format if head else "decoded", img.shape[0], img.shape[1],
                           head.orientation if head else 1)
    if min(head.height, head.width) < min_side:
        raise ImageError(V.TOO_SMALL, p, f"{head.width}x{head.height} has a side < min_image_side={min_side}")
    return head


# --------------------------------------------------------------------------- resizing


def resized_shape(height: int, width: int, img_size: int | None) -> tuple[int, int]:
    """(h, w) after scaling so that the long side is ``img_size`` (``None``: unchanged).

    Sides are rounded to the nearest integer and are at least 1.
    """
    if img_size is None:
        return int(height), int(width)
    r = img_size / max(height, width)
    return max(1, round(height * r)), max(1, round(width * r))


def resize_long_side(
    image: NDArray[np.uint8], img_size: int | None
) -> tuple[NDArray[np.uint8], tuple[float, float]]:
    """Resize (keeping the aspect ratio) so that the long side is ``img_size``.

    ``cv2.INTER_AREA`` when shrinking, ``cv2.INTER_LINEAR`` when growing.

    Args:
        image: (H, W, 3) uint8.
        img_size: target long side in pixels, or ``None`` for no resize.

    Returns:
        ``(resized, (sx, sy))``: the (h, w, 3) uint8 image (``image`` itself when
        the size does not change) and the per-axis scale ``w / W``, ``h / H``
        that maps absolute pixel coordinates of ``image`` into ``resized``
        (equal to ``img_size / max(H, W)`` up to the rounding of the sides).

    >>> img = np.zeros((100, 200, 3), np.uint8)
    >>> out, (sx, sy) = resize_long_side(img, 50)
    >>> out.shape, sx, sy
    ((25, 50, 3), 0.25, 0.25)
    """
    h0, w0 = image.shape[:2]
    h, w = resized_shape(h0, w0, img_size)
    if (h, w) == (h0, w0):
        return image, (1.0, 1.0)
    interp = cv2.INTER_AREA if h * w < h0 * w0 else cv2.INTER_LINEAR
    out = cv2.resize(image, (w, h), interpolation=interp)
    return np.ascontiguousarray(out), (w / w0, h / h0)


# --------------------------------------------------------------------------- RAM cache


def map_progress(
    fn: Callable[[T], R], items: Sequence[T], *, workers: int = 8, progress: bool = True,
    desc: str = "", unit: str = "img",
) -> Iterator[R]:
    """``fn`` over ``items`` in a thread pool, results in input order, with a tqdm bar.

    If the consumer stops early (e.g. strict mode raises), pending work is cancelled.

    >>> list(map_progress(lambda x: x * x, [1, 2, 3], progress=False))
    [1, 4, 9]
    """
    ex = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        bar = tqdm(ex.map(fn, items), total=len(items), desc=desc, disable=not progress, unit=unit)
        yield from bar
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class ImageCache:
    """All resized images of a dataset in ONE contiguous uint8 buffer.

    ``buffer`` is a flat read-only uint8 array; image ``i`` is
    ``buffer[offsets[i] : offsets[i] + h*w*3].reshape(h, w, 3)`` with
    ``(h, w) = shapes[i]``. Being one numpy allocation (no per-image Python
    objects), forked DataLoader workers share its pages copy-on-write without
    ever touching them, so no worker builds or copies its own cache.

    Build it once, in the dataset constructor, with :meth:`build`.
    """

    def __init__(self, buffer: NDArray[np.uint8], offsets: NDArray[np.int64],
                 shapes: NDArray[np.int64], valid: NDArray[np.bool_], lazy: bool = False) -> None:
        self.buffer = buffer
        self.offsets = offsets
        self.shapes = shapes
        self.valid = valid
        self.lazy = lazy
        if not lazy:
            self.buffer.setflags(write=False)

    @classmethod
    def allocate(cls, shapes: Sequence[tuple[int, int]] | NDArray[np.int64]) -> ImageCache:
        """An empty cache filled on first use (:meth:`put`), shared by forked processes.

        The buffer and the valid flags live in anonymous *shared* memory
        (``mmap(-1, n)`` is MAP_SHARED), allocated before DataLoader workers
        fork: an image one worker decodes is then served from RAM to every
        worker, with one copy in memory, never one per worker. Pages are
        committed only as images arrive. Two workers decoding the same image
        at once write identical bytes; the flag is set after the pixels.
        """
        shp = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        sizes = shp[:, 0] * shp[:, 1] * 3
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        buf = np.frombuffer(mmap.mmap(-1, max(int(sizes.sum()), 1)), dtype=np.uint8)[: int(sizes.sum())]
        valid = np.frombuffer(mmap.mmap(-1, max(len(shp), 1)), dtype=np.bool_)[: len(shp)]
        return cls(buf, offsets, shp, valid, lazy=True)

    def put(self, index: int, image: NDArray[np.uint8]) -> bool:
        """Store image ``index`` in a lazy cache; False (nothing stored) if its shape is not the expected one."""
        if not self.lazy:
            raise ValueError("put: this cache was built whole and is read-only")
        h, w = (int(v) for v in self.shapes[index])
        if image.shape != (h, w, 3):
            return False
        start = int(self.offsets[index])
        self.buffer[start : start + h * w * 3] = image.reshape(-1)
        self.valid[index] = True
        return True

    @property
    def nbytes(self) -> int:
        """Size of the pixel buffer in bytes."""
        return int(self.buffer.nbytes)

    def __len__(self) -> int:
        return len(self.offsets)

    def get(self, index: int) -> NDArray[np.uint8] | None:
        """Image ``index`` as a read-only (h, w, 3) uint8 view of the buffer, or ``None`` if not cached.

        No copy is made: detaug's ops never write into their inputs, and the
        view is marked read-only so no one else can either.
        """
        if not self.valid[index]:
            return None
        h, w = (int(v) for v in self.shapes[index])
        start = int(self.offsets[index])
        view = self.buffer[start : start + h * w * 3].reshape(h, w, 3)
        view.flags.writeable = False  # a view only: writers of a lazy cache use put()
        return view

    @classmethod
    def build(
        cls,
        shapes: Sequence[tuple[int, int]] | NDArray[np.int64],
        load: Callable[[int], NDArray[np.uint8]],
        *,
        workers: int = 8,
        progress: bool = True,
        desc: str = "Caching images",
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> ImageCache:
        """Allocate the buffer from the expected shapes and fill it in a thread pool.

        Args:
            shapes: (M, 2) expected (h, w) of every image after resizing.
            load: ``load(i)`` returns image ``i`` already resized, (h, w, 3) uint8.
            workers: threads decoding in parallel (OpenCV releases the GIL).
            progress: show a tqdm bar.
            on_error: called with ``(i, exception)`` when ``load`` raises; that
                entry is left out of the cache (``get`` returns ``None``).

        An image whose decoded shape differs from the expected one (the file
        changed since the scan) is left out too; the dataset reads it from disk.
        """
        shp = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        sizes = shp[:, 0] * shp[:, 1] * 3
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total = int(sizes.sum())
        buffer = np.empty(total, dtype=np.uint8)
        valid = np.zeros(len(shp), dtype=bool)

        def fill(i: int) -> None:
            try:
                img = load(i)
            except Exception as e:  # reported by the caller, entry stays invalid
                if on_error is not None:
                    on_error(i, e)
                return
            if img.shape != (int(shp[i, 0]), int(shp[i, 1]), 3):
                return
            buffer[offsets[i] : offsets[i] + sizes[i]] = img.reshape(-1)
            valid[i] = True

        for _ in map_progress(fill, range(len(shp)), workers=workers, progress=progress, desc=desc):
            pass
        return cls(buffer, offsets, shp, valid)

    @staticmethod
    def fits_in_memory(nbytes: int, fraction: float = 0.8) -> bool:
        """Whether ``nbytes`` is below ``fraction`` of the available memory (True if unknown)."""
        avail = _available_memory()
        if avail is None:
            return True
        if nbytes > fraction * avail:
            warnings.warn(
                f"cache='ram' needs {nbytes / 2**30:.1f} GiB but only {avail / 2**30:.1f} GiB are "
                "available; images will be read from disk instead",
                V.DatasetWarning,
                stacklevel=3,
            )
            return False
        return True
