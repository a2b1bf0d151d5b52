"""Generators of image and label files for the io tests (everything lands in tmp_path)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

# Distinct RGB colours for painted objects (far apart, JPEG-safe).
COLOURS = [(230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30), (230, 30, 230), (30, 230, 230)]


def encode(rgb: np.ndarray, ext: str = ".png") -> bytes:
    """Encode an RGB (or grey / BGRA-as-given when not 3-channel) array with OpenCV."""
    img = rgb[:, :, ::-1] if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img))
    assert ok
    return buf.tobytes()


def exif_app1(orientation: int, endian: str = "MM") -> bytes:
    """A JPEG APP1 segment holding a minimal EXIF IFD0 with only the Orientation tag."""
    e = ">" if endian == "MM" else "<"
    tiff = endian.encode() + struct.pack(e + "HI", 42, 8)
    ifd = (struct.pack(e + "H", 1) + struct.pack(e + "HHI", 0x0112, 3, 1)
           + struct.pack(e + "HH", orientation, 0) + struct.pack(e + "I", 0))
    payload = b"Exif\x00\x00" + tiff + ifd
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_orientation(rgb: np.ndarray, orientation: int, endian: str = "MM") -> bytes:
    """JPEG bytes of ``rgb`` (stored pixels) carrying an EXIF orientation tag."""
    data = encode(rgb, ".jpg")
    return data[:2] + exif_app1(orientation, endian) + data[2:]


def png_claiming_size(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR (with a correct CRC) claims width x height."""
    data = bytearray(encode(np.zeros((4, 4, 3), np.uint8), ".png"))
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


def painted(h: int, w: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(h, w, 3) RGB grey background with box i (integer xyxy) filled in COLOURS[i]."""
    img = np.full((h, w, 3), 90, np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        img[y1:y2, x1:x2] = COLOURS[i]
    return img


def yolo_row(cls: int, box: tuple[float, float, float, float], w: int, h: int) -> str:
    x1, y1, x2, y2 = box
    return f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


GOOD = [  # (name, (h, w), boxes xyxy, classes)
    ("a", (48, 64), [(4, 4, 20, 20), (30, 10, 60, 40)], [0, 1]),
    ("b", (64, 40), [(8, 16, 32, 48)], [2]),
    ("c", (32, 32), [], []),  # background (no label file)
]


def make_yolo(root: Path, names: list[str] | dict[int, str] | None = None) -> SimpleNamespace:
    """A small valid YOLO dataset: root/images/train/*.png, root/labels/train/*.txt, root/data.yaml."""
    for name, (h, w), boxes, classes in GOOD:
        write(root / "images" / "train" / f"{name}.png", encode(painted(h, w, boxes)))
        if boxes:
            rows = [yolo_row(c, b, w, h) for c, b in zip(classes, boxes, strict=True)]
            write(root / "labels" / "train" / f"{name}.txt", "\n".join(rows) + "\n")
    names = names if names is not None else ["zero", "one", "two"]
    import yaml

    write(root / "data.yaml", yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/train",
                                              "names": names}))
    return SimpleNamespace(root=root, yaml=root / "data.yaml", images=root / "images" / "train",
                           labels=root / "labels" / "train")


@pytest.fixture
def helpers() -> SimpleNamespace:
    return SimpleNamespace(
        encode=encode, exif_app1=exif_app1, jpeg_with_orientation=jpeg_with_orientation,
        png_claiming_size=png_claiming_size, painted=painted, yolo_row=yolo_row, write=write,
        make_yolo=make_yolo, GOOD=GOOD, COLOURS=COLOURS,
    )
