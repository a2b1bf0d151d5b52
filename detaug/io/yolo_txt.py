"""Rows of YOLO label txt files: ``cls cx cy w h`` or ``cls x1 y1 ... xk yk`` (normalised).

Parsing is strict about syntax (plain ASCII decimal numbers) and lenient
about content: each bad row is a :class:`~detaug.io.validate.Problem` naming
the file and line, the row is dropped and the others are kept. Reading goes
through :func:`detaug.io.files.read_regular_file` (regular files only, at most
``max_label_bytes``), and rows are parsed into flat arrays, so a label file
costs a few times its size in memory while it is parsed.

>>> labels, problems = parse_label_text("0 0.5 0.5 0.2 0.4\\n1 0.5 0.5 2 0.1\\n", nc=2, file="a.txt")
>>> labels.boxes.round(3).tolist(), [p.kind for p in problems]
([[0.4, 0.3, 0.6, 0.7]], ['out_of_range'])
"""

from __future__ import annotations

import math
import os
import re
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from detaug.io import validate as V
from detaug.io.files import FileProblem, read_regular_file
from detaug.io.labels import ImageLabels
from detaug.io.validate import Problem

__all__ = ["DEFAULT_TOLERANCE", "DEFAULT_MAX_LABEL_BYTES", "ROUNDING_EPS", "parse_label_text", "read_label_file"]

DEFAULT_TOLERANCE = 1e-3
#: Default limit on a label txt (and data yaml, image list) in bytes: 64 MiB (about a million rows).
DEFAULT_MAX_LABEL_BYTES = 64 * 2**20
#: Overshoot up to this is rounding noise of 6-decimal label text (cx + w/2 can
#: exceed 1 by ~7.5e-7): clipped without a ``clipped`` warning.
ROUNDING_EPS = 1e-6


def _fmt(v: float) -> str:
    return f"{v:.6g}"


#: A line of a label file, without its end (\n, \r\n or \r).
_LINE = re.compile(r"[^\r\n]*")


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based number, content) of each non-blank line, without building a list of all lines."""
    lineno = 0
    pos, n = 0, len(text)
    while pos < n:
        m = _LINE.match(text, pos)
        end = m.end() if m is not None else pos
        lineno += 1
        if end > pos and not text[pos:end].isspace():
            yield lineno, text[pos:end]
        pos = end + (2 if text.startswith("\r\n", end) else 1)


def _number(tok: str) -> float:
    """``float(tok)`` for plain ASCII decimal syntax only (no ``_``, no non-ASCII digits)."""
    if not tok.isascii() or "_" in tok:
        raise ValueError(tok)
    return float(tok)


def parse_label_text(
    text: str, *, nc: int | None, file: str | os.PathLike[str], tolerance: float = DEFAULT_TOLERANCE
) -> tuple[ImageLabels, list[Problem]]:
    """Parse and validate the rows of one YOLO label file.

    Numbers are plain ASCII decimals (``1``, ``0.25``, ``-2.5e-3``; ``nan`` and
    ``inf`` are read, then rejected as ``non_finite``); Python-only syntax
    such as ``0.2_5`` or non-ASCII digits is ``non_numeric``. Box rows are kept
    in flat arrays while parsing, so memory stays a small multiple of the text.

    Args:
        text: the file's content.
        nc: number of classes (``None``: only negative ids are rejected).
        file: the label file's path, used in problems.
        tolerance: coordinates in [-tolerance, 1 + tolerance] are clipped to
            [0, 1] (kind ``clipped``, kept); further out the row is dropped.

    Returns:
        The valid objects (normalised xyxy; polygons normalised, or ``None``
        when no row is a polygon) and the problems in line order, each naming
        the 1-based line.

    >>> labels, problems = parse_label_text("0 0.2_5 0.5 0.1 0.1\\n", nc=1, file="a.txt")
    >>> len(labels), [str(p) for p in problems]
    (0, ["a.txt:1: non_numeric: value '0.2_5' is not a plain decimal number"])
    """
    fname = str(file)
    problems: list[Problem] = []
    rows = array("d")  # per kept row: cls, 4 raw values (box rows) - for the duplicate check
    kept_box = array("d")  # normalised xyxy of kept rows
    lines = array("q")
    clipped_at: list[tuple[int, str]] = []
    polys: dict[int, np.ndarray] = {}  # kept-row index -> polygon
    poly_keys: dict[tuple[float, ...], int] = {}

    def bad(kind: str, line: int, msg: str) -> None:
        problems.append(Problem(kind, fname, line, msg))

    for lineno, line in _lines(text):
        toks = line.split()
        n = len(toks)
        if n < 5:
            bad(V.COLUMNS, lineno, f"{n} values; expected 'cls cx cy w h' or a polygon 'cls x1 y1 x2 y2 x3 y3 ...'")
            continue
        if n > 5 and n % 2 == 0:
            bad(V.ODD_COORDINATES, lineno, f"polygon row has an odd number of coordinates ({n - 1})")
            continue
        try:
            vals = [_number(t) for t in toks]
        except ValueError:
            tok = next(t for t in toks if not _is_float(t))
            bad(V.NON_NUMERIC, lineno, f"value {tok!r} is not a plain decimal number")
            continue
        if not all(math.isfinite(v) for v in vals):
            tok = next(t for t, v in zip(toks, vals, strict=True) if not math.isfinite(v))
            bad(V.NON_FINITE, lineno, f"value {tok!r} is not finite")
            continue
        c = vals[0]
        if c != int(c) or c < 0 or (nc is not None and c >= nc):
            bound = f"0..{nc - 1}" if nc is not None else ">= 0"
            bad(V.BAD_CLASS, lineno, f"class id {toks[0]} is not an integer in {bound}")
            continue
        if n == 5:
            _, cx, cy, w, h = vals
            if w <= 0 or h <= 0:
                bad(V.ZERO_SIZE, lineno, f"box width {_fmt(w)} / height {_fmt(h)} is not positive")
                continue
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            pts = None
            lo, hi = min(box), max(box)
            where = f"box x1={_fmt(box[0])} x2={_fmt(box[2])} y1={_fmt(box[1])} y2={_fmt(box[3])}"
        else:
            pts = np.array(vals[1:], dtype=np.float64).reshape(-1, 2)
            lo, hi = float(pts.min()), float(pts.max())
            where = f"polygon coordinates min={_fmt(lo)} max={_fmt(hi)}"
        if lo < -tolerance or hi > 1 + tolerance:
            bad(V.OUT_OF_RANGE, lineno, f"{where} is outside [0, 1] beyond the tolerance {tolerance:g}")
            continue
        clipped = lo < -ROUNDING_EPS or hi > 1 + ROUNDING_EPS
        if pts is not None:
            pts = np.clip(pts, 0.0, 1.0)
            box = [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]
        else:
            box = [min(max(v, 0.0), 1.0) for v in box]
        if box[2] <= box[0] or box[3] <= box[1]:
            what = "polygon has zero width or height" if pts is not None else "box has zero size after clipping"
            bad(V.ZERO_SIZE, lineno, what)
            continue
        k = len(lines)
        if pts is not None:
            key = tuple(vals)
            if key in poly_keys:
                bad(V.DUPLICATE, lineno, f"duplicate of line {poly_keys[key]}")
                continue
            poly_keys[key] = lineno
            polys[k] = pts
            rows.extend((c, math.nan, k, 0.0, 0.0))  # never equal to a box row or another polygon
        else:
            rows.extend(vals)
        if clipped:
            clipped_at.append((k, where))
        lines.append(lineno)
        kept_box.extend(box)
    m = len(lines)
    keep = np.ones(m, bool)
    line_arr = np.frombuffer(lines, np.int64) if m else np.zeros(0, np.int64)
    if m > 1:  # exact duplicates of earlier box rows, found at once
        table = np.frombuffer(rows, np.float64).reshape(m, 5)
        _, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        dup = first[inverse] != np.arange(m)
        for j in np.flatnonzero(dup):
            bad(V.DUPLICATE, int(line_arr[j]), f"duplicate of line {int(line_arr[first[inverse[j]]])}")
        keep = ~dup
    for k, where in clipped_at:
        if keep[k]:
            bad(V.CLIPPED, int(line_arr[k]), f"{where} outside [0, 1] within the tolerance: clipped")
    problems.sort(key=lambda p: p.line or 0)  # stable: one problem per line
    idx = np.flatnonzero(keep)
    boxes = np.frombuffer(kept_box, np.float64).reshape(-1, 4)[idx] if m else np.zeros((0, 4))
    classes = (np.frombuffer(rows, np.float64).reshape(-1, 5)[idx, 0].astype(np.int64) if m
               else np.zeros(0, np.int64))
    polygons = [polys.get(int(k)) for k in idx] if polys else None
    return ImageLabels(classes.reshape(-1), boxes.reshape(-1, 4).copy(), polygons), problems


def _is_float(t: str) -> bool:
    try:
        _number(t)
    except ValueError:
        return False
    return True


def read_label_file(
    path: str | os.PathLike[str], *, nc: int | None, tolerance: float = DEFAULT_TOLERANCE,
    max_bytes: int | None = DEFAULT_MAX_LABEL_BYTES,
) -> tuple[ImageLabels | None, list[Problem]]:
    """Read one label txt. A missing file is a background image.

    Returns:
        ``(labels, problems)``; ``labels`` is ``None`` when the file exists but
        cannot be used (kinds ``unreadable``: permissions, not a regular file,
        not UTF-8; ``too_large``: over ``max_bytes``): the image's objects are
        then unknown and the image must be skipped.
    """
    p = Path(path)
    try:
        data = read_regular_file(p, max_bytes=max_bytes)
    except FileProblem as e:
        if e.kind == V.MISSING_FILE:
            return ImageLabels.empty(), []
        detail = e.detail.replace("max_bytes=", "max_label_bytes=")
        return None, [Problem(e.kind, str(p), None, f"label file: {detail}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return None, [Problem(V.UNREADABLE, str(p), line, "label file is not UTF-8 text")]
    del data  # the text is parsed row by row; the bytes are not needed any more
    return parse_label_text(text, nc=nc, file=p, tolerance=tolerance)
