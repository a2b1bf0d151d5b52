"""Canvases: source images warped into one square image, as data and as OpenCV pixels.

A :class:`TileWarp` says how one source image (or an integer crop of it) is
warped into a canvas by a 3x3 map; a :class:`CanvasPlan` is the ordered list of
warps that make one ``size x size`` canvas (one warp for the affine alone, one
per visible tile for a Mosaic) and the Mosaic's frame clip. The transforms
decide canvases (:mod:`detaug.transforms.mosaic`, :mod:`detaug.transforms.affine`)
and :func:`paint_canvas` draws them with OpenCV; a
:class:`~detaug.plan.SamplePlan` combines canvases into an item.

Coordinates: continuous pixel frames, x right, y down, pixel grid edges at
integers (pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``).

>>> w = TileWarp(source=0, crop=(0, 0, 2, 2), matrix=np.eye(3))
>>> paint_canvas(CanvasPlan((w,)), [np.full((2, 2, 3), 9, np.uint8)], 3, (0, 0, 0))[:, :, 0].tolist()
[[9, 9, 0], [9, 9, 0], [0, 0, 0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from detaug import geometry

__all__ = ["TileWarp", "CanvasPlan", "paint_canvas", "resize_rects", "seam_rects", "clear_outside_frame", "filled_image", "Fill",
           "FillLike", "DEFAULT_FILL", "as_fill"]

#: (r, g, b) uint8 levels of the pixels no source reaches: one fill for every op and collate.
Fill = tuple[int, int, int]
#: What users may pass as a fill: a grey level or an (r, g, b) triple.
FillLike = int | tuple[int, int, int]
#: The grey of Ultralytics and detaug.
DEFAULT_FILL = 114


def as_fill(value: int | Sequence[int], name: str = "fill") -> Fill:
    """A fill value as an (r, g, b) tuple of ints in 0..255 (an int is a grey level).

    >>> as_fill(114), as_fill((0, 128, 255))
    ((114, 114, 114), (0, 128, 255))
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        rgb = (int(value),) * 3
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        rgb = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{name}: expected an int or an (r, g, b) triple of ints in 0..255, got {value!r}")
    if not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"{name}: levels must be in 0..255, got {value!r}")
    return rgb[0], rgb[1], rgb[2]


def filled_image(h: int, w: int, color: tuple[int, int, int]) -> NDArray[np.uint8]:
    """A new C-contiguous (h, w, 3) uint8 image of one colour (fast: no per-pixel broadcast of a triple).

    >>> filled_image(2, 3, (1, 2, 3))[1, 2].tolist()
    [1, 2, 3]
    """
    if color[0] == color[1] == color[2]:
        return np.full((h, w, 3), color[0], dtype=np.uint8)
    out = np.empty((h, w, 3), dtype=np.uint8)
    out.reshape(h, w * 3)[:] = np.tile(np.asarray(color, dtype=np.uint8), w)
    return out


def _matrix(m: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.array(m, dtype=np.float64)
    if a.shape != (3, 3) or not np.isfinite(a).all():
        raise ValueError(f"{name}: expected a finite (3, 3) matrix, got shape {a.shape}")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class TileWarp:
    """One source image, or a crop of it, warped into a canvas.

    Attributes:
        source: position in :attr:`SamplePlan.sources` of the image read.
        crop: (x0, y0, x1, y1) int pixel bounds in that image (as served by
            the dataset, e.g. resized to its long side); only these pixels are
            drawn. Non-empty.
        matrix: (3, 3) float64, read-only: continuous coordinates of the
            *whole source image* -> the canvas (pixel grid edges at integers).
        whole: the warp covers the canvas on its own (the affine without
            Mosaic): every canvas pixel is written, the fill where the
            pre-image leaves the source. Otherwise only pixels whose pre-image
            lies inside ``crop`` are written (Mosaic tiles).
    """

    source: int
    crop: tuple[int, int, int, int]
    matrix: NDArray[np.float64]
    whole: bool = False

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = (int(v) for v in self.crop)
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise ValueError(f"crop: expected a non-empty (x0, y0, x1, y1) with 0 <= x0 < x1, 0 <= y0 < y1, got {self.crop}")
        object.__setattr__(self, "crop", (x0, y0, x1, y1))
        object.__setattr__(self, "matrix", _matrix(self.matrix, "matrix"))
        object.__setattr__(self, "source", int(self.source))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.crop, np.array(self.matrix), self.whole))

    def crop_map(self) -> NDArray[np.float64]:
        """(3, 3) float64, a new array: the continuous frame of the *crop* (its corner at 0) -> the canvas.

        >>> TileWarp(0, (2, 1, 4, 4), np.eye(3)).crop_map()[:2, 2].tolist()
        [2.0, 1.0]
        """
        return self.matrix @ geometry.translation(self.crop[0], self.crop[1])

    def with_source(self, source: int) -> TileWarp:
        """The same warp reading ``source`` (an int; the other fields, already checked, are shared).

        >>> TileWarp(0, (0, 0, 2, 2), np.eye(3)).with_source(3).source
        3
        """
        w = object.__new__(TileWarp)
        object.__setattr__(w, "source", int(source))
        object.__setattr__(w, "crop", self.crop)
        object.__setattr__(w, "matrix", self.matrix)
        object.__setattr__(w, "whole", self.whole)
        return w


@dataclass(frozen=True, eq=False)
class CanvasPlan:
    """One ``size x size`` canvas: its warps in drawing order and the optional frame clip.

    Attributes:
        warps: the :class:`TileWarp` drawn, in order (later ones over earlier ones).
        frame: None, or (3, 3) float64: the Mosaic's map from its square frame
            ``[0, frame_side]^2`` to the canvas; pixels whose centre lies
            outside that quad are reset to the fill after drawing.
        frame_side: side of that square frame (2 * size for a Mosaic).
    """

    warps: tuple[TileWarp, ...]
    frame: NDArray[np.float64] | None = None
    frame_side: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "warps", tuple(self.warps))
        if self.frame is not None:
            object.__setattr__(self, "frame", _matrix(self.frame, "frame"))
            if not self.frame_side > 0:
                raise ValueError(f"frame_side: expected > 0 with a frame, got {self.frame_side!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        frame = None if self.frame is None else np.array(self.frame)
        return (type(self), (self.warps, frame, self.frame_side))

    def with_sources(self, sources: Any) -> CanvasPlan:
        """The same canvas with each warp's ``source`` replaced by ``sources[warp.source]`` (a sequence or dict).

        >>> c = CanvasPlan((TileWarp(0, (0, 0, 2, 2), np.eye(3)), TileWarp(1, (0, 0, 2, 2), np.eye(3))))
        >>> [w.source for w in c.with_sources([7, 5]).warps]
        [7, 5]
        """
        c = object.__new__(CanvasPlan)
        object.__setattr__(c, "warps", tuple(w.with_source(sources[w.source]) for w in self.warps))
        object.__setattr__(c, "frame", self.frame)
        object.__setattr__(c, "frame_side", self.frame_side)
        return c


def clear_outside_frame(out: NDArray[np.uint8], frame: ArrayLike, frame_side: float, size: int,
                        fill: tuple[int, int, int]) -> None:
    """Reset to ``fill``, in place, the pixels of the (size, size, 3) ``out`` whose centre lies outside the frame.

    The frame is the square ``[0, frame_side]^2`` mapped by ``frame`` (3, 3) into ``out``.

    A tile cut by the frame's edge at a fractional tile pixel is drawn from a
    crop rounded outwards, so it could bleed up to a tile pixel past the frame;
    this puts the edge back where the frame (and the boxes, which are clipped
    to it exactly) says. Nothing is done when the frame covers the whole output.
    """
    a = np.asarray(frame, dtype=np.float64)
    s = int(size)
    two = float(frame_side)
    corners = np.array([[0.0, 0.0], [two, 0.0], [two, two], [0.0, two]])
    if not geometry.is_affine(a) and np.any(corners @ a[2, :2] + a[2, 2] <= 1e-9):
        return  # the frame crosses a perspective horizon: leave it to the warps
    q = geometry.warp_points(corners, a)
    p1 = q[[1, 2, 3, 0]]
    edges = p1 - q
    box = np.array([[0.0, 0.0], [s, 0.0], [s, s], [0.0, s]])
    # z of edge x (point - start) for every output corner and frame edge; the quad
    # keeps its orientation, so "inside" is one sign for all four edges
    cross = edges[None, :, 0] * (box[:, None, 1] - q[None, :, 1]) - edges[None, :, 1] * (box[:, None, 0] - q[None, :, 0])
    if np.all(cross >= 0) or np.all(cross <= 0):
        return
    # per output row, the span of pixel centres inside the convex quad
    yc = np.arange(s, dtype=np.float64) + 0.5
    p0 = q
    lo, hi = np.minimum(p0[:, 1], p1[:, 1]), np.maximum(p0[:, 1], p1[:, 1])
    cover = (yc[:, None] >= lo) & (yc[:, None] <= hi) & (hi > lo)
    dy = np.where(hi > lo, p1[:, 1] - p0[:, 1], 1.0)
    x = p0[:, 0] + (yc[:, None] - p0[:, 1]) / dy * (p1[:, 0] - p0[:, 0])
    first = np.ceil(np.where(cover, x, np.inf).min(axis=1) - 0.5)  # first column whose centre is inside
    last = np.floor(np.where(cover, x, -np.inf).max(axis=1) - 0.5)  # last one
    first = np.clip(np.nan_to_num(first, posinf=s, neginf=0), 0, s).astype(np.int64)
    last = np.clip(np.nan_to_num(last, posinf=s - 1, neginf=-1), -1, s - 1).astype(np.int64)
    row = filled_image(1, s, fill)[0]
    empty = last < first
    out[empty] = row
    rows = np.flatnonzero(~empty & ((first > 0) | (last < s - 1)))
    if rows.size == 0:
        return
    # runs of consecutive rows with the same span (one run per side for an axis-aligned frame)
    f, g = first[rows], last[rows]
    cut = np.flatnonzero((np.diff(rows) != 1) | (np.diff(f) != 0) | (np.diff(g) != 0)) + 1
    starts = np.concatenate([[0], cut]).tolist()
    ends = np.concatenate([cut, [rows.size]]).tolist()
    for a0, a1 in zip(starts, ends, strict=True):
        r0, r1, c0, c1 = int(rows[a0]), int(rows[a1 - 1]) + 1, int(f[a0]), int(g[a0]) + 1
        if c0 > 0:
            out[r0:r1, :c0] = row[:c0]
        if c1 < s:
            out[r0:r1, c1:] = row[c1:]


def _fill_uncovered(out: NDArray[np.uint8], rects: Sequence[tuple[int, int, int, int]],
                    region: tuple[int, int, int, int], fill: tuple[int, int, int]) -> None:
    """Set to ``fill``, in place, the pixels of ``region`` (x0, y0, x1, y1) of ``out`` outside every rect.

    A sweep over the vertical strips between the rects' x edges; within a
    strip, the gaps between the merged y spans of the rects that cross it.
    """
    rx0, ry0, rx1, ry1 = region
    value: Any = fill[0] if fill[0] == fill[1] == fill[2] else np.asarray(fill, dtype=np.uint8)
    xs = sorted({rx0, rx1} | {min(max(v, rx0), rx1) for r in rects for v in (r[0], r[2])})
    for xa, xb in zip(xs[:-1], xs[1:], strict=True):
        y = ry0
        for y0, y1 in sorted((r[1], r[3]) for r in rects if r[0] <= xa and r[2] >= xb):
            if y0 > y:
                out[y:min(y0, ry1), xa:xb] = value
            y = max(y, y1)
        if y < ry1:
            out[y:ry1, xa:xb] = value


def seam_rects(rects: Sequence[tuple[int, int, int, int] | None]) -> list[tuple[int, int, int, int] | None]:
    """The tiles' painted rects (x0, y0, x1, y1) grown by the column (row) of a seam none of them covers.

    Tiles are snapped independently (by up to half a pixel each), so where one
    ends and the next begins a pixel column may lie more than half outside
    both. A rect is grown by one column when another starts one column after
    it (their rows overlapping), and likewise by one row, so that no
    fill-coloured seam shows; None (a tile not painted by a resize) stays.

    >>> seam_rects([(0, 0, 5, 9), (6, 0, 9, 9), (0, 9, 5, 12), None])
    [(0, 0, 6, 9), (6, 0, 9, 9), (0, 9, 5, 12), None]
    """
    out = []
    for a in rects:
        if a is not None:
            x1 = a[2] + any(b is not None and b[0] == a[2] + 1 and b[1] < a[3] and a[1] < b[3] for b in rects)
            y1 = a[3] + any(b is not None and b[1] == a[3] + 1 and b[0] < a[2] and a[0] < b[2] for b in rects)
            a = (a[0], a[1], int(x1), int(y1))
        out.append(a)
    return out


def resize_rects(canvas: CanvasPlan) -> list[tuple[int, int, int, int] | None]:
    """Per warp of ``canvas``, the int (x0, y0, x1, y1) canvas pixels that :func:`paint_canvas` writes with one
    ``cv2.resize``, or None for a warp it draws with ``warpAffine``/``warpPerspective``.

    :func:`detaug.geometry.aligned_rect` of the warp's crop and map, and, for
    Mosaic tiles, grown at the seams between them (:func:`seam_rects`). The one
    rule both painters follow (the device painter receives these rects).

    >>> half = np.diag([0.5, 0.5, 1.0])
    >>> resize_rects(CanvasPlan((TileWarp(0, (0, 0, 8, 4), half, whole=True),)))
    [(0, 0, 4, 2)]
    """
    rects = [geometry.aligned_rect((w.crop[3] - w.crop[1], w.crop[2] - w.crop[0]), w.crop_map())
             for w in canvas.warps]
    if len(canvas.warps) == 1 and canvas.warps[0].whole:
        return rects
    return seam_rects(rects)


def paint_canvas(canvas: CanvasPlan, images: Sequence[NDArray[np.uint8]], size: int,
                 fill: tuple[int, int, int], within: tuple[int, int, int, int] | None = None) -> NDArray[np.uint8]:
    """Draw one canvas with OpenCV: (size, size, 3) uint8, a new array.

    Args:
        canvas: what to draw.
        images: the source images the warps' ``source`` fields index; not modified.
        size: the canvas side.
        fill: (r, g, b) where nothing is drawn.
        within: optional int (x0, y0, x1, y1): only these pixels are wanted
            (a CutMix paste); pixels outside it are unspecified. Pixels inside
            are those of the full canvas.

    A ``whole`` warp is one :func:`detaug.geometry.warp_image` with the fill
    as border; tiles are drawn with :func:`detaug.geometry.warp_into`, each
    over the output pixels it can reach only (about one warp per output pixel
    for a whole Mosaic). Either is one ``cv2.resize`` pasted at whole pixels
    when :func:`detaug.geometry.aligned_rect` places the warp on the pixel
    grid (the plans snap axis-aligned warps so that it does; tiles then also
    cover their :func:`seam_rects`); when every tile is, only the pixels no
    tile covers are filled.
    """
    warps = canvas.warps
    if len(warps) == 1 and warps[0].whole:
        w = warps[0]
        x0, y0, x1, y1 = w.crop
        src = images[w.source][y0:y1, x0:x1]
        out = geometry.warp_image(src, w.crop_map(), (size, size), fill=fill)
    else:
        crops = [images[w.source][w.crop[1]:w.crop[3], w.crop[0]:w.crop[2]] for w in warps]
        maps = [w.crop_map() for w in warps]
        rects = resize_rects(canvas)
        if all(r is not None for r in rects):
            out = np.empty((size, size, 3), dtype=np.uint8)
            r0 = (0, 0, size, size) if within is None else (
                max(within[0], 0), max(within[1], 0), min(within[2], size), min(within[3], size))
            if r0[0] < r0[2] and r0[1] < r0[3]:
                _fill_uncovered(out, [r for r in rects if r is not None], r0, fill)
        else:
            out = filled_image(size, size, fill)
        for crop, m, r in zip(crops, maps, rects, strict=True):
            geometry.warp_into(out, crop, m, within=within, rect=r)
    if canvas.frame is not None:
        clear_outside_frame(out, canvas.frame, canvas.frame_side, size, fill)
    return out
