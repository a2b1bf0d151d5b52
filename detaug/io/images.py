"""Image files: reading, decoding, colour conversion, resizing.

Everything that leaves this module is an (H, W, 3) uint8 **RGB** C-contiguous
array in the image's *displayed* frame: the stored pixels turned by the EXIF
orientation, read by :func:`detaug.io.probe.probe_header` from a JPEG
``Exif`` segment, a PNG ``eXIf`` chunk or a WebP ``EXIF`` chunk (SHORT or
LONG tag) and applied here, or a TIFF's Orientation tag (applied by libtiff).
Labels are in that frame, as every labelling tool draws them. Grey images are
replicated to three channels, alpha is dropped (not composited), 16-bit is
mapped to 8-bit by ``round(v / 257)`` and float images are taken as [0, 1].

Files are read with :func:`detaug.io.files.read_regular_file` (regular files
only, at most ``max_bytes``) and decoded from memory with ``cv2.imdecode``,
so non-ASCII paths work on every platform.

Decompression bombs: nothing is decoded unless its header gives the pixel
size (JPEG, PNG, BMP, WebP, TIFF, PNM, PFM; JPEG junk bytes are skipped as
libjpeg does), and that size is checked against ``max_pixels`` *before* the
decoder allocates anything, then the decoded shape is checked against the
header. A file the probe cannot read is ``not_image``, never an unbounded decode.

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

import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from detaug.io import validate as V
from detaug.io.cache import ImageCache, available_memory, map_progress
from detaug.io.files import FileProblem, read_regular_file
from detaug.io.probe import ImageHeader, apply_orientation, is_complete, probe_header

__all__ = [
    "IMAGE_SUFFIXES",
    "KNOWN_UNSUPPORTED_SUFFIXES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_IMAGE_BYTES",
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
#: Default limit on an image file's size in bytes (512 MiB); larger files are not read.
DEFAULT_MAX_IMAGE_BYTES = 512 * 2**20
#: Default minimum image side in pixels; smaller images are skipped.
DEFAULT_MIN_SIDE = 10

#: Keeps 16-bit, drops alpha; orientation is applied by detaug (see the module doc).
_DECODE_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION
#: A JPEG at full size: libjpeg writes RGB itself (grey replicated), no BGR -> RGB pass afterwards
#: (OpenCV >= 4.11; None before, then JPEGs decode as BGR and are swapped like any other image).
_JPEG_RGB_FLAGS = (None if not hasattr(cv2, "IMREAD_COLOR_RGB")
                   else cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION)
#: Formats whose orientation detaug applies (libtiff applies a TIFF's itself).
_ORIENTED_BY_DETAUG = frozenset({"jpeg", "png", "webp"})
_available_memory = available_memory  # old private name


class ImageError(FileProblem):
    """An image could not be used. ``kind`` is a problem kind of :mod:`detaug.io.validate`."""

    def to_problem(self) -> V.Problem:
        """This error as a :class:`~detaug.io.validate.Problem`."""
        return V.Problem(self.kind, self.path, None, self.detail)


# --------------------------------------------------------------------------- decoding


def to_rgb8(image: NDArray, bgr: bool = True) -> NDArray[np.uint8]:
    """OpenCV-decoded pixels -> (H, W, 3) uint8 RGB, C-contiguous (a new array, or ``image`` when it already is one).

    Accepts (H, W) or (H, W, 1) grey, (H, W, 3) BGR (RGB with ``bgr=False``),
    (H, W, 4) BGRA (alpha dropped); uint8, uint16 (``round(v / 257)``), other
    integers (clipped to 0..255) or floats (taken as [0, 1]).

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
        out = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else img
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
_REDUCED_FLAGS = {f: flag | cv2.IMREAD_IGNORE_ORIENTATION for f, flag in
                  {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                   8: cv2.IMREAD_REDUCED_COLOR_8}.items()}


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


#: libjpeg's messages about damaged data (it repairs them with grey and goes on).
_LIBJPEG_CORRUPT = re.compile(r"(Corrupt JPEG data[^\n]*|Premature end of JPEG file[^\n]*|"
                              r"Invalid JPEG file structure[^\n]*)")
#: Junk between header segments (before a marker other than EOI/RSTn): no pixel is affected.
_HARMLESS = re.compile(r"extraneous bytes before marker 0x(?!d[0-9])", re.I)
_STDERR_LOCK = threading.Lock()


def _imdecode_checked(buf: NDArray[np.uint8], flags: int) -> tuple[NDArray | None, str | None]:
    """``cv2.imdecode`` that also returns libjpeg's first corruption warning, or ``None``.

    libjpeg reports damaged entropy-coded data only as a warning on the
    process's stderr (OpenCV returns the grey-filled image), so file
    descriptor 2 is redirected to a temporary file for the duration of the
    decode (under a lock; other text written meanwhile is passed on to stderr).
    """
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return cv2.imdecode(buf, flags), None
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                img = cv2.imdecode(buf, flags)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
    found = [m.strip() for m in _LIBJPEG_CORRUPT.findall(text) if not _HARMLESS.search(m)]
    rest = _LIBJPEG_CORRUPT.sub("", text).strip()
    if rest:
        print(rest, file=sys.stderr)
    return img, found[0] if found else None


def decode_image(
    data: bytes,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    source: str = "<bytes>",
    min_long_side: int | None = None,
    check_data: bool = False,
) -> NDArray[np.uint8]:
    """Decode image bytes to (H, W, 3) uint8 RGB in the displayed (EXIF-oriented) frame.

    Args:
        max_pixels: decompression-bomb limit (``None``: none), checked on the
            header's size before decoding.
        min_long_side: when given, a JPEG at least twice this size is decoded
            at 1/2, 1/4 or 1/8 scale (see :func:`jpeg_reduction`): several times
            faster, for callers that resize down to this size anyway.
        check_data: also fail on a JPEG whose entropy-coded data libjpeg
            reports as corrupt (it would fill the rest with grey); slower
            (decodes are serialised), used by ``full_decode`` scans.

    Raises:
        ImageError: kind ``empty_file``, ``too_large``, ``not_image`` (including
            a header detaug cannot read: such a file is never decoded) or ``corrupt``.
    """
    if len(data) == 0:
        raise ImageError(V.EMPTY_FILE, source, "file is empty (0 bytes)")
    head = probe_header(data)
    if head is None:
        raise ImageError(V.NOT_IMAGE, source, "no readable JPEG/PNG/BMP/WebP/TIFF/PNM header: not decoded "
                         "(the pixel size must be known before decoding)")
    _check_pixels(head.height, head.width, max_pixels, source)
    factor = jpeg_reduction(head, min_long_side)
    rgb = head.format == "jpeg" and factor == 1 and _JPEG_RGB_FLAGS is not None
    flags = _JPEG_RGB_FLAGS if rgb else _DECODE_FLAGS if factor == 1 else _REDUCED_FLAGS[factor]
    buf = np.frombuffer(data, np.uint8)
    warning = None
    try:
        if check_data and head.format == "jpeg":
            img, warning = _imdecode_checked(buf, flags)
        else:
            img = cv2.imdecode(buf, flags)
    except cv2.error as e:
        raise ImageError(V.NOT_IMAGE, source, f"OpenCV cannot decode this file: {e.err}") from None
    if img is None or img.size == 0:
        raise ImageError(V.NOT_IMAGE, source, "OpenCV cannot decode this file as an image")
    if warning is not None:
        raise ImageError(V.CORRUPT, source, f"libjpeg: {warning} (the damaged part would be grey)")
    if head.format in _ORIENTED_BY_DETAUG:
        img = apply_orientation(img, head.orientation)
    expected = (-(-head.height // factor), -(-head.width // factor))
    if img.shape[:2] != expected:
        raise ImageError(V.NOT_IMAGE, source, f"decoded {img.shape[1]}x{img.shape[0]} pixels but the "
                         f"header says {expected[1]}x{expected[0]} (orientation {head.orientation})")
    try:
        return to_rgb8(img, bgr=not rgb)
    except ValueError as e:
        raise ImageError(V.NOT_IMAGE, source, str(e)) from None


def _read_bytes(path: Path, max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES) -> bytes:
    try:
        return read_regular_file(path, max_bytes=max_bytes)
    except FileProblem as e:
        raise ImageError(e.kind, e.path, e.detail.replace("max_bytes=", "max_image_bytes=")) from None


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_long_side: int | None = None,
    max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
) -> NDArray[np.uint8]:
    """Read and decode one image file to (H, W, 3) uint8 RGB (EXIF-oriented).

    ``min_long_side``: see :func:`decode_image` (reduced JPEG decoding);
    ``max_bytes``: files larger than this are not read (``None``: no limit).

    Raises:
        ImageError: naming the file; kinds ``missing_file``, ``unreadable``
            (including not a regular file), ``empty_file``, ``too_large``, ``not_image``.
    """
    p = Path(path)
    return decode_image(_read_bytes(p, max_bytes), max_pixels=max_pixels, source=str(p),
                        min_long_side=min_long_side)


def inspect_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    full_decode: bool = False,
    max_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
) -> ImageHeader:
    """Scan-time check of one image file, cheap unless ``full_decode``.

    Checks the suffix, that the file is a regular file of at most
    ``max_bytes`` and non-empty, reads the size and orientation from the
    header (a file without a readable header is ``not_image``), checks
    JPEG/PNG files for truncation (end marker), the pixel limit and the
    minimum side. ``full_decode=True`` also decodes every image and fails a
    JPEG whose data libjpeg reports as corrupt (kind ``corrupt``).

    Returns:
        The header; ``height``/``width`` are in the displayed (EXIF-oriented) frame.

    Raises:
        ImageError: naming the file, with the problem kind.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(V.UNSUPPORTED_FORMAT, p, f"suffix {p.suffix!r} is not a supported image format")
    data = _read_bytes(p, max_bytes)
    if len(data) == 0:
        raise ImageError(V.EMPTY_FILE, p, "file is empty (0 bytes)")
    head = probe_header(data)
    if head is None:
        raise ImageError(V.NOT_IMAGE, p, "no readable JPEG/PNG/BMP/WebP/TIFF/PNM header")
    if not is_complete(data, head.format):
        what = "end-of-image marker (FFD9)" if head.format == "jpeg" else "IEND chunk"
        raise ImageError(V.TRUNCATED, p, f"{head.format.upper()} has no {what}: file is truncated")
    _check_pixels(head.height, head.width, max_pixels, str(p))
    if full_decode:
        decode_image(data, max_pixels=max_pixels, source=str(p), check_data=True)
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


