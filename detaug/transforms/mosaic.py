"""Mosaic of 4 or 9 samples, fused with the random affine into one warp per tile.

Semantics follow Ultralytics' mosaic: ``s = img_size``; every tile is scaled
so that its long side is ``s``; the tiles are laid out on a ``2s x 2s``
*frame* around a random centre; then the affine (``RandomAffine`` parameters,
matrix from the ``2s x 2s`` frame to the ``s x s`` output; with no affine,
the centre ``s x s`` crop of the frame) produces the output.

The frame is never allocated. For every tile we compose

    tile --(placement: resize + offset)--> frame --(affine)--> output

and warp only the *visible* crop of the tile (the part inside its cell and
inside the frame) straight into the output with
:func:`detaug.geometry.warp_into`, which touches only the output pixels the
crop can reach. A mosaic thus costs about one warp per output pixel.
Objects follow the same composite matrix through
:func:`detaug.geometry.warp_objects` with the tile's visible rect, then the
:class:`~detaug.transforms.base.BoxFilter`.

Layouts (coordinates in the continuous frame, x right, y down; (xc, yc) is
``MosaicParams.center``, integers drawn in ``center * s``):

- ``n = 4``: cells 0 top-left ``[0, xc] x [0, yc]``, 1 top-right
  ``[xc, 2s] x [0, yc]``, 2 bottom-left ``[0, xc] x [yc, 2s]``, 3 bottom-right
  ``[xc, 2s] x [yc, 2s]``. Each tile touches the centre with the matching
  corner (cell 0's tile has its bottom-right corner at (xc, yc), ...), and
  shows the part of it inside its cell.
- ``n = 9``: a pinwheel on a ``3s x 3s`` layout, as in Ultralytics' mosaic9.
  Cell 0 (centre) has its top-left corner at (s, s); the ring cells go
  clockwise from the top, each abutting the centre tile or the ring tile
  before it (w_k, h_k: placed tile sizes)::

      1 top          left at s,             bottom at s
      2 top-right    left at s + w1,        bottom at s
      3 right        left at s + w0,        top at s
      4 bottom-right left at s + w0,        top at s + h3
      5 bottom       right at s + w0,       top at s + h0
      6 bottom-left  right at s + w0 - w5,  top at s + h0
      7 left         right at s,            bottom at s + h0
      8 top-left     right at s,            bottom at s + h0 - h7

  These rectangles never overlap. The ``2s x 2s`` frame is the window of the
  layout whose top-left corner is at ``(xc - s // 2, yc - s // 2)``
  (so the default ``center`` (0.5, 1.5) gives offsets in [0, s), as
  Ultralytics does). A tile shows its part inside the window.

The primary sample goes to cell ``MosaicParams.primary_cell`` (drawn
uniformly); the partners fill the remaining cells in increasing cell order.

Interpolation: bilinear, one interpolation per output pixel (a tile's resize
is folded into its matrix). Known differences from warping a real canvas, all
within about a pixel:

- an axis-aligned tile map (no rotation, shear, perspective) is snapped so
  that its crop's corner lands on a whole output pixel (moved by at most half
  a pixel; labels follow the snapped map) and painted with one ``cv2.resize``;
  tiles snapped apart meet at a seam pixel painted by one of them
  (:func:`detaug.canvas.seam_rects`), never the border value;
- other maps: where two tiles meet at a fractional output position, the seam
  pixel blends both tiles and, by at most a quarter, the border value;
- a tile cut by the frame's edge is drawn from a crop rounded outwards to
  whole tile pixels; output pixels whose centre lies outside the frame are
  then reset to the border value, so nothing shows beyond the frame.

>>> import numpy as np
>>> from detaug.sample import Sample
>>> tiles = [Sample.create(np.full((32, 32, 3), 10 * i, np.uint8), boxes=[[4, 4, 28, 28]], classes=[i])
...          for i in range(4)]
>>> mosaic = Mosaic(n=4, img_size=32)
>>> p = MosaicParams(n=4, primary_cell=0, center=(32, 32), affine=AffineParams.identity())
>>> out = mosaic.apply(tiles[0], tiles[1:], p)
>>> out.image.shape, out.classes.tolist()
((32, 32, 3), [0, 1, 2, 3])
>>> out.boxes.tolist()
[[0.0, 0.0, 12.0, 12.0], [20.0, 0.0, 32.0, 12.0], [0.0, 20.0, 12.0, 32.0], [20.0, 20.0, 32.0, 32.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from detaug import geometry
from detaug.canvas import DEFAULT_FILL, CanvasPlan, FillLike, TileWarp, as_fill, paint_canvas
from detaug.sample import Labels, Sample
from detaug.transforms.affine import (
    AffineParams,
    RandomAffine,
    crop_bounds,
    warp_labels,
)
from detaug.transforms.base import BoxFilter, MixTransform
from detaug.transforms.limits import check_img_size

__all__ = ["Mosaic", "MosaicParams", "TilePlacement"]

Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class MosaicParams:
    """One draw of a Mosaic.

    Attributes:
        n: number of tiles, 4 or 9.
        primary_cell: the cell (0..n-1, see the module docs) of the primary
            sample; partners fill the other cells in increasing order.
        center: (xc, yc) integer pixels in the 2s x 2s frame (n = 4: where the
            cells meet; n = 9: the frame window starts at (xc - s//2, yc - s//2)
            of the 3s x 3s layout).
        affine: the warp from the 2s x 2s frame to the s x s output.
    """

    n: int
    primary_cell: int
    center: tuple[int, int]
    affine: AffineParams = AffineParams()

    def __post_init__(self) -> None:
        if self.n not in (4, 9):
            raise ValueError(f"n must be 4 or 9, got {self.n!r}")
        if not (0 <= self.primary_cell < self.n):
            raise ValueError(f"primary_cell must be in [0, {self.n}), got {self.primary_cell!r}")
        if len(self.center) != 2:
            raise ValueError(f"center must be an (x, y) pair, got {self.center!r}")
        object.__setattr__(self, "center", (int(self.center[0]), int(self.center[1])))
        if not isinstance(self.affine, AffineParams):
            raise ValueError(f"affine must be an AffineParams, got {self.affine!r}")

    def cell_sources(self) -> tuple[int, ...]:
        """For each cell, which input fills it: 0 = the primary, k = partner k (1-based).

        >>> MosaicParams(n=4, primary_cell=2, center=(0, 0)).cell_sources()
        (1, 2, 0, 3)
        """
        order = []
        k = 1
        for cell in range(self.n):
            if cell == self.primary_cell:
                order.append(0)
            else:
                order.append(k)
                k += 1
        return tuple(order)


@dataclass(frozen=True)
class TilePlacement:
    """Where one tile goes in the 2s x 2s frame.

    Attributes:
        matrix: (3, 3) float64 map tile frame -> mosaic frame (resize + offset).
        visible_rect: (x1, y1, x2, y2) in the *tile's* frame: the part of the
            tile inside its cell and inside the frame (may be empty: x2 <= x1).
        cell_rect: the same without the frame: the part inside its cell.
    """

    matrix: NDArray[np.float64]
    visible_rect: Rect
    cell_rect: Rect | None = None

    @property
    def empty(self) -> bool:
        """True when no part of the tile is visible in the frame."""
        x1, y1, x2, y2 = self.visible_rect
        return not (x2 > x1 and y2 > y1)


def _placed_size(h: int, w: int, s: int) -> tuple[int, int]:
    """(h, w) of a tile scaled so that its long side is s (rounded, >= 1)."""
    r = s / max(h, w)
    return max(1, round(h * r)), max(1, round(w * r))


def _intersect(a: Rect, b: Rect) -> Rect:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def _layout4(sizes: Sequence[tuple[int, int]], s: int, xc: int, yc: int) -> list[tuple[Rect, Rect]]:
    """(placed rect, cell) per cell for n = 4, in frame coordinates (cells open where the frame bounds them)."""
    out = []
    two = math.inf
    for cell, (h, w) in enumerate(sizes):
        left = cell in (0, 2)
        top = cell in (0, 1)
        x0 = xc - w if left else xc
        y0 = yc - h if top else yc
        cx = (-two, xc) if left else (xc, two)
        cy = (-two, yc) if top else (yc, two)
        out.append(((x0, y0, x0 + w, y0 + h), (cx[0], cy[0], cx[1], cy[1])))
    return out


def _layout9(sizes: Sequence[tuple[int, int]], s: int, xc: int, yc: int) -> list[tuple[Rect, Rect]]:
    """(placed rect, cell) per cell for n = 9, in frame coordinates (the pinwheel, see module docs)."""
    h = [hw[0] for hw in sizes]
    w = [hw[1] for hw in sizes]
    # (left, top) of every tile in the 3s x 3s layout.
    corners = [
        (s, s),
        (s, s - h[1]),
        (s + w[1], s - h[2]),
        (s + w[0], s),
        (s + w[0], s + h[3]),
        (s + w[0] - w[5], s + h[0]),
        (s + w[0] - w[5] - w[6], s + h[0]),
        (s - w[7], s + h[0] - h[7]),
        (s - w[8], s + h[0] - h[7] - h[8]),
    ]
    ox, oy = xc - s // 2, yc - s // 2
    frame = (-math.inf, -math.inf, math.inf, math.inf)  # the tiles never overlap: only the frame bounds them
    out = []
    for (x, y), (th, tw) in zip(corners, sizes, strict=True):
        rect = (x - ox, y - oy, x - ox + tw, y - oy + th)
        out.append((rect, frame))
    return out


def _reaches_output(rect: Rect, m: geometry.M3, s: int) -> bool:
    """Whether the rect (tile frame), mapped by ``m``, overlaps the s x s output with positive area.

    The mapped rect is a convex quad (affine, or projective short of the
    horizon), so a separating-axis test over the square's and the quad's edge
    normals decides it exactly.
    """
    x1, y1, x2, y2 = rect
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
    if not geometry.is_affine(m) and np.any(corners @ m[2, :2] + m[2, 2] <= 1e-9):
        return True  # crosses a perspective horizon: let the warp decide pixel by pixel
    q = geometry.warp_points(corners, m)
    if q[:, 0].max() <= 0 or q[:, 0].min() >= s or q[:, 1].max() <= 0 or q[:, 1].min() >= s:
        return False
    if m[0, 1] == 0 and m[1, 0] == 0 and geometry.is_affine(m):
        return bool(x2 > x1 and y2 > y1)  # the quad is its own bounding box, which overlaps the output
    edges = np.roll(q, -1, axis=0) - q
    normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
    square = np.array([[0.0, 0.0], [s, 0.0], [s, s], [0.0, s]])
    pq, ps = q @ normals.T, square @ normals.T
    separated = (pq.max(axis=0) <= ps.min(axis=0)) | (ps.max(axis=0) <= pq.min(axis=0))
    return not bool(separated.any())


def _aligned_tile(size: tuple[int, int], place: TilePlacement, a: geometry.M3, s: int
                  ) -> tuple[tuple[int, int, int, int], geometry.M3, Rect]:
    """The crop, snapped map and visible rect of a tile whose map ``a @ place.matrix`` (tile -> output) is axis-aligned.

    The crop is the visible rect grown past the frame (whose clip then cuts
    the pixels where it always did) and cut to what reaches the s x s output
    (with a pixel of margin, and two tile pixels for the interpolation), so a
    resize computes no pixel far outside the output; the map is
    :func:`detaug.geometry.snap_translation` at the crop's corner (moved by at
    most half a pixel), so the painters resize it onto whole pixels. Where two
    tiles meet (their own edges), the painters cover the pixel a snap may leave
    between them (:func:`detaug.canvas.seam_rects`).
    The visible rect (for the labels) is the tile's part in its cell, moved
    with it, cut by the frame where the frame clip cuts the pixels: at the
    frame's unsnapped edges.
    """
    m = a @ place.matrix
    kx, ky = m[0, 0], m[1, 1]
    reach = ((-1.0 - m[0, 2]) / kx - 2.0, (-1.0 - m[1, 2]) / ky - 2.0,
             (s + 1.0 - m[0, 2]) / kx + 2.0, (s + 1.0 - m[1, 2]) / ky + 2.0)
    gx, gy = 1.0 + 0.5 / kx, 1.0 + 0.5 / ky  # past the frame by more than the snap moves it
    v = place.visible_rect
    crop = crop_bounds(size, _intersect((v[0] - gx, v[1] - gy, v[2] + gx, v[3] + gy), reach))
    m = geometry.snap_translation(m, crop[:2])
    f = geometry.warp_points([[0.0, 0.0], [2.0 * s, 2.0 * s]], a).ravel()  # the frame in the output
    frame = ((f[0] - m[0, 2]) / kx, (f[1] - m[1, 2]) / ky, (f[2] - m[0, 2]) / kx, (f[3] - m[1, 2]) / ky)
    return crop, m, _intersect(place.cell_rect or place.visible_rect, frame)


class Mosaic(MixTransform[MosaicParams]):
    """Ultralytics-style Mosaic of ``n`` samples (4 or 9), optionally fused with a random affine.

    Args:
        n: 4 (2 x 2) or 9 (3 x 3 pinwheel); ``num_partners = n - 1``.
        img_size: s, the tile side and the output side (output is s x s).
        center: (lo, hi) with 0 <= lo <= hi <= 2: the centre (xc, yc) is
            drawn uniformly in [lo * s, hi * s) per axis (floored to ints).
        affine: a :class:`RandomAffine` whose *parameter distribution* is used
            for the warp from the 2s x 2s frame to the output (its
            ``img_size``, ``fill`` and ``box_filter`` are not used:
            the output is img_size and this Mosaic's own settings apply).
            ``None``: no warp, the centre s x s crop of the frame.
        fill: grey level or (r, g, b) where no tile lands.
        box_filter: which objects survive (measured in output pixels, against
            the whole object moved by the same warp but not clipped).

    Output: a Sample with an (s, s, 3) uint8 image, the surviving objects of
    all tiles in cell order (see :meth:`MosaicParams.cell_sources`), their
    classes and weights; polygons when every tile that has objects has
    polygons, else None. ``meta`` is the primary's.
    """

    def __init__(
        self,
        n: int = 4,
        img_size: int = 640,
        center: tuple[float, float] = (0.5, 1.5),
        affine: RandomAffine | None = None,
        fill: FillLike = DEFAULT_FILL,
        box_filter: BoxFilter = BoxFilter(),  # noqa: B008 (frozen, immutable default)
    ) -> None:
        if isinstance(n, bool) or n not in (4, 9):
            raise ValueError(f"n must be 4 or 9, got {n!r}")
        check_img_size(img_size)
        try:
            lo, hi = (float(v) for v in center)
        except (TypeError, ValueError):
            raise ValueError(f"center must be a (lo, hi) pair, got {center!r}") from None
        if not (0.0 <= lo <= hi <= 2.0):
            raise ValueError(f"center must satisfy 0 <= lo <= hi <= 2, got {center!r}")
        if affine is not None and not isinstance(affine, RandomAffine):
            raise ValueError(f"affine must be a RandomAffine or None, got {affine!r}")
        if not isinstance(box_filter, BoxFilter):
            raise ValueError(f"box_filter must be a BoxFilter, got {box_filter!r}")
        self.n = int(n)
        self.num_partners = self.n - 1
        self.img_size = int(img_size)
        self.center = (lo, hi)
        self.affine = affine
        self.fill = as_fill(fill)
        self.box_filter = box_filter

    def __repr__(self) -> str:
        return (
            f"Mosaic(n={self.n}, img_size={self.img_size}, center={self.center}, "
            f"affine={self.affine!r})"
        )

    # ------------------------------------------------------------------ params

    def sample_params(
        self, rng: np.random.Generator, sample: Sample, partners: Sequence[Sample]
    ) -> MosaicParams:
        """Draw the primary's cell, the centre and (when configured) the affine, all from ``rng``."""
        self._check_partners(partners)
        s = self.img_size
        lo, hi = self.center
        primary_cell = int(rng.integers(self.n))
        xc = int(math.floor(rng.uniform(lo * s, hi * s)))
        yc = int(math.floor(rng.uniform(lo * s, hi * s)))
        affine = AffineParams.identity() if self.affine is None else self.affine.draw(rng)
        return MosaicParams(n=self.n, primary_cell=primary_cell, center=(xc, yc), affine=affine)

    def _check_partners(self, partners: Sequence[Sample]) -> None:
        if len(partners) != self.num_partners:
            raise ValueError(f"partners: Mosaic(n={self.n}) needs {self.num_partners} partners, got {len(partners)}")

    # ------------------------------------------------------------------ geometry

    def placements(self, tiles: Sequence[Sample], params: MosaicParams) -> list[TilePlacement]:
        """Placement (tile -> 2s x 2s frame) and visible rect of each tile, in cell order.

        Args:
            tiles: the n samples in *cell* order (see :meth:`MosaicParams.cell_sources`).
            params: the draw.
        """
        if len(tiles) != params.n:
            raise ValueError(f"tiles: expected {params.n}, got {len(tiles)}")
        s = self.img_size
        sizes = [_placed_size(t.height, t.width, s) for t in tiles]
        xc, yc = params.center
        layout = (_layout4 if params.n == 4 else _layout9)(sizes, s, xc, yc)
        frame = (0.0, 0.0, 2.0 * s, 2.0 * s)
        out = []
        for tile, (ph, pw), (rect, cell) in zip(tiles, sizes, layout, strict=True):
            sx, sy = pw / tile.width, ph / tile.height
            m = geometry.translation(rect[0], rect[1]) @ geometry.scaling(sx, sy)
            vis, inner = [((x1 - rect[0]) / sx, (y1 - rect[1]) / sy, (x2 - rect[0]) / sx, (y2 - rect[1]) / sy)
                          for x1, y1, x2, y2 in (_intersect(_intersect(rect, cell), frame), _intersect(rect, cell))]
            out.append(TilePlacement(matrix=m, visible_rect=vis, cell_rect=inner))
        return out

    def output_matrix(self, params: MosaicParams) -> geometry.M3:
        """(3, 3) map from the 2s x 2s frame to the s x s output."""
        s = self.img_size
        return params.affine.matrix((2 * s, 2 * s), (s, s))

    # ------------------------------------------------------------------ apply

    def plan(self, inputs: Sequence[Labels | Sample], params: MosaicParams) -> tuple[Labels, CanvasPlan]:
        """The mosaic's labels and canvas, without pixels.

        Args:
            inputs: the primary then the partners (Labels or Samples: sizes and
                objects are read, no pixels).
            params: the draw.

        Returns:
            The surviving objects of all tiles in cell order in the s x s
            output (polygons when every tile with objects has them; the
            primary's meta), and the :class:`~detaug.canvas.CanvasPlan` whose
            warps' ``source`` is the position in ``inputs``.
        """
        if len(inputs) != self.n:
            raise ValueError(f"inputs: Mosaic(n={self.n}) needs {self.n} (primary and partners), got {len(inputs)}")
        if params.n != self.n:
            raise ValueError(f"params: drawn for n={params.n}, this Mosaic has n={self.n}")
        order = params.cell_sources()
        tiles = [inputs[k] for k in order]
        s = self.img_size
        a = self.output_matrix(params)
        warps: list[TileWarp] = []
        boxes, classes, weights, polys = [], [], [], []
        polygons_ok = any(t.polygons is not None for t in tiles)
        for k, tile, place in zip(order, tiles, self.placements(tiles, params), strict=True):
            if tile.polygons is None and tile.num_objects > 0:
                polygons_ok = False
            if place.empty:
                continue
            m = a @ place.matrix
            crop = crop_bounds(tile.size, place.visible_rect)
            if crop[2] <= crop[0] or crop[3] <= crop[1] or not _reaches_output(place.visible_rect, m, s):
                continue
            vis = place.visible_rect
            if geometry.axis_scales(m) is not None:
                crop, m, vis = _aligned_tile(tile.size, place, a, s)
            warps.append(TileWarp(source=k, crop=crop, matrix=m))
            lab = warp_labels(tile, m, (s, s), self.box_filter, vis)
            boxes.append(lab.boxes)
            classes.append(lab.classes)
            weights.append(lab.weights)
            polys.append(lab.polygons if lab.polygons is not None else ())
        if boxes:
            b = np.concatenate(boxes, axis=0)
            c = np.concatenate(classes, axis=0)
            w = np.concatenate(weights, axis=0)
        else:
            b, c, w = np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), np.zeros((0,), np.float32)
        polygons = tuple(p for group in polys for p in group) if polygons_ok else None
        labels = Labels((s, s), np.ascontiguousarray(b, dtype=np.float32), np.ascontiguousarray(c, dtype=np.int64),
                        np.ascontiguousarray(w, dtype=np.float32), polygons, inputs[0].meta)
        return labels, CanvasPlan(tuple(warps), frame=a, frame_side=2.0 * s)

    def apply(self, sample: Sample, partners: Sequence[Sample], params: MosaicParams) -> Sample:
        """Build the mosaic with fixed ``params`` (:meth:`plan`, then paint); no input is modified."""
        self._check_partners(partners)
        inputs = (sample, *partners)
        labels, canvas = self.plan(inputs, params)
        image = paint_canvas(canvas, [t.image for t in inputs], self.img_size, self.fill)
        return labels.with_image(image)
