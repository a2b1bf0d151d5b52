"""Image headers: pixel size and orientation read from the bytes, before any decoding.

The probe is the gate of every decode (:func:`detaug.io.images.decode_image`):
a file whose size cannot be read here is never handed to OpenCV, so a
decompression bomb cannot slip past the pixel limit with a header the probe
does not understand. The parsers follow the decoders' own rules where those
are lenient (libjpeg skips junk bytes before a marker; so does
:func:`probe_header`).

Orientation (one rule for every container): labels are in the *displayed*
frame, the stored pixels turned by the EXIF orientation. It is read from a
JPEG APP1 ``Exif`` segment, a PNG ``eXIf`` chunk, a WebP ``EXIF`` chunk (the
tag typed SHORT or LONG) and a TIFF's own Orientation tag. For JPEG, PNG and
WebP detaug decodes with ``cv2.IMREAD_IGNORE_ORIENTATION`` and turns the
pixels itself by :attr:`ImageHeader.orientation` (so the probe and the
pixels cannot disagree, whichever tags the installed OpenCV honours); libtiff
applies a TIFF's orientation while decoding.

>>> import numpy as np, cv2
>>> ok, buf = cv2.imencode(".png", np.zeros((30, 50), np.uint16))
>>> probe_header(buf.tobytes())
ImageHeader(format='png', height=30, width=50, orientation=1)
>>> probe_header(b"P5 640 480 255 ")
ImageHeader(format='pnm', height=480, width=640, orientation=1)
>>> probe_header(b"junk") is None
True
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ImageHeader", "probe_header", "apply_orientation", "is_complete", "exif_orientation"]


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says.

    Attributes:
        format: ``"jpeg"``, ``"png"``, ``"bmp"``, ``"webp"``, ``"tiff"``, ``"pnm"``
            or ``"pfm"``.
        height, width: pixel size in the *displayed* frame (EXIF orientations
            5-8 swap the stored width and height).
        orientation: EXIF orientation 1..8 (1 when absent).
    """

    format: str
    height: int
    width: int
    orientation: int = 1

    @property
    def stored_shape(self) -> tuple[int, int]:
        """(h, w) of the pixels as stored in the file (before orientation)."""
        return (self.width, self.height) if self.orientation >= 5 else (self.height, self.width)


def _tiff_ifd0(tiff: bytes, wanted: tuple[int, ...]) -> dict[int, int]:
    """Values of the ``wanted`` tags of IFD0 in a TIFF structure (SHORT or LONG, count 1).

    Classic TIFF (42) and BigTIFF (43); unreadable structures give ``{}``.
    """
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return {}
    e = "<" if tiff[:2] == b"II" else ">"
    (version,) = struct.unpack_from(e + "H", tiff, 2)
    if version == 42:
        (ifd,) = struct.unpack_from(e + "I", tiff, 4)
        count_fmt, entry, head = "H", 12, 2
    elif version == 43 and len(tiff) >= 16:
        (ifd,) = struct.unpack_from(e + "Q", tiff, 8)
        count_fmt, entry, head = "Q", 20, 8
    else:
        return {}
    if ifd + head > len(tiff):
        return {}
    (n,) = struct.unpack_from(e + count_fmt, tiff, ifd)
    out: dict[int, int] = {}
    for k in range(min(n, 1024)):
        off = ifd + head + entry * k
        if off + entry > len(tiff):
            break
        tag, typ = struct.unpack_from(e + "HH", tiff, off)
        if tag not in wanted or tag in out:
            continue
        value_at = off + (8 if entry == 12 else 12)
        if typ == 3:  # SHORT
            (value,) = struct.unpack_from(e + "H", tiff, value_at)
        elif typ in (4, 9):  # LONG, SLONG
            (value,) = struct.unpack_from(e + ("I" if typ == 4 else "i"), tiff, value_at)
        elif typ == 16 and entry == 20:  # LONG8 (BigTIFF)
            (value,) = struct.unpack_from(e + "Q", tiff, value_at)
        else:
            continue
        out[tag] = int(value)
    return out


def exif_orientation(tiff: bytes) -> int:
    """EXIF orientation (tag 0x0112 of IFD0, typed SHORT or LONG) of a TIFF-structured blob.

    ``tiff`` may start with the ``b"Exif\\0\\0"`` prefix of a JPEG APP1 segment.
    Absent or invalid values give 1.

    >>> exif_orientation(b"MM\\x00*\\x00\\x00\\x00\\x08\\x00\\x01\\x01\\x12\\x00\\x04\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x06")
    6
    """
    if tiff[:6] == b"Exif\x00\x00":
        tiff = tiff[6:]
    try:
        value = _tiff_ifd0(tiff, (0x0112,)).get(0x0112, 1)
    except struct.error:
        return 1
    return value if 1 <= value <= 8 else 1


def _header(fmt: str, stored_h: int, stored_w: int, orientation: int) -> ImageHeader | None:
    if stored_h <= 0 or stored_w <= 0:
        return None
    if orientation >= 5:
        return ImageHeader(fmt, stored_w, stored_h, orientation)
    return ImageHeader(fmt, stored_h, stored_w, orientation)


#: JPEG start-of-frame markers (SOF0..SOF15 without DHT, JPG and DAC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _probe_jpeg(data: bytes) -> ImageHeader | None:
    """Walk the markers up to the first scan as libjpeg does (junk before a marker is skipped)."""
    pos, n = 2, len(data)
    size: tuple[int, int] | None = None
    orientation: int | None = None
    while pos + 2 <= n:
        if data[pos] != 0xFF:  # libjpeg: "N extraneous bytes before marker"; it resynchronises
            nxt = data.find(b"\xff", pos)
            if nxt < 0:
                break
            pos = nxt
            continue
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        if pos + 1 >= n:
            break
        marker = data[pos + 1]
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI / start of scan: the header is over
            break
        if pos + 4 > n:
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            return None
        if marker in _SOF:
            if pos + 9 > n:
                return None
            h, w = struct.unpack_from(">HH", data, pos + 5)
            # More than one SOF: keep the largest, so the pixel limit is never under-estimated.
            if size is None or h * w > size[0] * size[1]:
                size = (h, w)
        elif marker == 0xE1 and orientation is None and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            orientation = exif_orientation(data[pos + 4 : pos + 2 + length])
        pos += 2 + length
    if size is None:
        return None
    return _header("jpeg", size[0], size[1], orientation or 1)


def _probe_png(data: bytes) -> ImageHeader | None:
    w, h = struct.unpack_from(">II", data, 16)
    orientation = 1
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if ctype == b"eXIf":
            orientation = exif_orientation(data[pos + 8 : pos + 8 + length])
            break
        if ctype == b"IEND":
            break
        pos += 12 + length
    return _header("png", h, w, orientation)


def _probe_webp(data: bytes) -> ImageHeader | None:
    size: tuple[int, int] | None = None
    orientation = 1
    pos = 12
    while pos + 8 <= len(data):
        chunk, length = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if chunk == b"VP8 " and size is None:
            w, h = struct.unpack_from("<HH", data, body + 6)
            size = (h & 0x3FFF, w & 0x3FFF)
        elif chunk == b"VP8L" and size is None:
            (b,) = struct.unpack_from("<I", data, body + 1)
            size = (((b >> 14) & 0x3FFF) + 1, (b & 0x3FFF) + 1)
        elif chunk == b"VP8X":
            w = int.from_bytes(data[body + 4 : body + 7], "little") + 1
            h = int.from_bytes(data[body + 7 : body + 10], "little") + 1
            size = (h, w)  # the canvas: what the decoder allocates
        elif chunk == b"EXIF":
            orientation = exif_orientation(data[body : body + length])
        pos = body + length + (length & 1)
    if size is None:
        return None
    return _header("webp", size[0], size[1], orientation)


def _probe_tiff(data: bytes) -> ImageHeader | None:
    tags = _tiff_ifd0(data, (256, 257, 0x0112))
    if 256 not in tags or 257 not in tags:
        return None
    o = tags.get(0x0112, 1)
    return _header("tiff", tags[257], tags[256], o if 1 <= o <= 8 else 1)


_PNM_HEAD = re.compile(rb"(?:\s|#[^\n\r]*[\n\r])+")


def _pnm_tokens(data: bytes, count: int) -> list[int] | None:
    """The first ``count`` integers after a 2-byte PNM magic (comments allowed)."""
    head = data[2:4096]
    out: list[int] = []
    pos = 0
    while len(out) < count:
        m = _PNM_HEAD.match(head, pos)
        if m is None:
            return None
        pos = m.end()
        m2 = re.compile(rb"\d+").match(head, pos)
        if m2 is None:
            return None
        out.append(int(m2.group()))
        pos = m2.end()
    return out


def _probe_netpbm(data: bytes) -> ImageHeader | None:
    magic = data[:2]
    if magic in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"):
        t = _pnm_tokens(data, 2)
        return None if t is None else _header("pnm", t[1], t[0], 1)
    if magic == b"P7":  # PAM: "WIDTH w" and "HEIGHT h" lines
        head = data[:4096]
        mw = re.search(rb"^WIDTH\s+(\d+)", head, re.M)
        mh = re.search(rb"^HEIGHT\s+(\d+)", head, re.M)
        if mw is None or mh is None:
            return None
        return _header("pnm", int(mh.group(1)), int(mw.group(1)), 1)
    if magic in (b"PF", b"Pf"):
        t = _pnm_tokens(data, 2)
        return None if t is None else _header("pfm", t[1], t[0], 1)
    return None


def probe_header(data: bytes) -> ImageHeader | None:
    """Read the pixel size and orientation from an image header without decoding.

    Formats: JPEG, PNG, BMP, WebP, TIFF (classic and BigTIFF), PNM/PAM and PFM.

    Args:
        data: the file's bytes (for JPEG the bytes up to the first scan, for
            PNG and WebP the chunks up to the orientation, must be present).

    Returns:
        The header (size in the displayed frame), or ``None`` for other formats
        or a header that cannot be parsed: detaug then never decodes the file.
    """
    try:
        if data[:2] == b"\xff\xd8":
            return _probe_jpeg(data)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return _probe_png(data)
        if data[:2] == b"BM":
            (dib,) = struct.unpack_from("<I", data, 14)
            if dib == 12:
                w, h = struct.unpack_from("<HH", data, 18)
            else:
                w, h = struct.unpack_from("<ii", data, 18)
            return _header("bmp", abs(h), abs(w), 1)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _probe_webp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _probe_tiff(data)
        if data[:1] == b"P":
            return _probe_netpbm(data)
    except struct.error:
        return None
    return None


def is_complete(data: bytes, fmt: str) -> bool:
    """False when a JPEG lacks its end-of-image marker after the last scan, or a PNG its IEND.

    >>> is_complete(b"\\xff\\xd8\\xff\\xda..\\xff\\xd9", "jpeg"), is_complete(b"\\xff\\xd8\\xff\\xda..", "jpeg")
    (True, False)
    """
    if fmt == "jpeg":
        # 0xFF is byte-stuffed inside entropy-coded data, so FFD9/FFDA only occur as markers.
        sos = data.rfind(b"\xff\xda")
        return sos >= 0 and data.rfind(b"\xff\xd9") > sos
    if fmt == "png":
        return data.rfind(b"IEND") > 8
    return True


def apply_orientation(image: NDArray, orientation: int) -> NDArray:
    """Turn stored pixels into the displayed frame of EXIF ``orientation`` (1..8).

    The same mapping as OpenCV's ``imread``: 2 mirror, 3 rotate 180, 4 flip,
    5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
    Works on (H, W) or (H, W, C) arrays of any dtype; returns a C-contiguous
    array ((W, H, ...) for 5-8).

    >>> a = np.arange(6).reshape(2, 3)
    >>> apply_orientation(a, 6).tolist()
    [[3, 0], [4, 1], [5, 2]]
    >>> apply_orientation(a, 1) is a
    True
    """
    if orientation == 1:
        return image
    if not 2 <= orientation <= 8:
        raise ValueError(f"orientation: expected 1..8, got {orientation!r}")
    a = image
    if orientation >= 5:
        a = np.swapaxes(a, 0, 1)
    flips = {2: (1,), 3: (0, 1), 4: (0,), 5: (), 6: (1,), 7: (0, 1), 8: (0,)}[orientation]
    for axis in flips:
        a = np.flip(a, axis)
    return np.ascontiguousarray(a)
