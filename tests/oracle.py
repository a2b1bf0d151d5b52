"""Pixel oracle shared by the tests: paint objects in unique colours, find them again.

The idea: paint every object as a solid region of its own colour, run an op
on the image and the labels, then look for each colour in the output. The
extent of the pixels that still carry an object's colour is where the object
really went; the op's box must agree with it.

Coordinates use detaug's continuous frame (pixel (i, j) covers
[j, j + 1] x [i, i + 1]). A pixel belongs to an object when its *centre* lies
inside the object's region (boxes: [x1, x2) x [y1, y2); polygons: even-odd
rule over all parts), so integer boxes and rectilinear polygons with integer
vertices are painted exactly.

Interpolation blends the edges of a region with its surroundings, so colour
matching is tolerant. :func:`label_pixels` (used by :func:`assert_matches_paint`)
explains every pixel as the closest blend of one palette colour with one known
background and labels it with that colour when it is at least half that
colour: the labelled region then follows the object's true edge to within
about half a pixel. :func:`find_extent` / :func:`color_mask` offer a simpler
per-channel tolerance. :func:`distinct_colors` picks colours far from every
blend of another colour with a background. Objects must not touch each other.

>>> img, colors = paint_objects(6, 8, np.array([[1, 2, 4, 5]]), background=(0, 0, 0), colors=[(255, 0, 0)])
>>> find_extent(img, colors[0])
(1.0, 2.0, 4.0, 5.0)
>>> find_extent(img, (0, 0, 255)) is None
True
>>> label_pixels(img, colors, backgrounds=[(0, 0, 0)])[2].tolist()
[-1, 0, 0, 0, -1, -1, -1, -1]
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "distinct_colors",
    "paint_objects",
    "paint_mask",
    "color_mask",
    "find_extent",
    "count_pixels",
    "label_pixels",
    "coverage",
    "extent_of",
    "DEFAULT_TOL",
    "DEFAULT_SEP",
    "reference_affine_matrix",
    "reference_warp_points",
    "reference_box_envelope",
    "reference_box_filter",
    "assert_matches_paint",
]

#: Default per-channel tolerance of :func:`find_extent` (max abs difference): a pixel
#: matches an object's colour when it is roughly 60 % or more of that colour.
DEFAULT_TOL = 56
#: Default separation of :func:`distinct_colors` (per-channel max abs difference).
DEFAULT_SEP = 60

_LEVELS = (0, 64, 128, 192, 255)


def _seg_cheb(p: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Chebyshev distance of points p (P, 3) to segments a-b (S, 3), densely sampled -> (P, S)."""
    t = np.linspace(0.0, 1.0, 129)
    pts = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]
    return np.abs(p[:, None, None, :] - pts[None]).max(-1).min(-1)


def distinct_colors(
    n: int, avoid: Sequence[Sequence[int]] = ((114, 114, 114),), min_sep: float = DEFAULT_SEP
) -> NDArray[np.uint8]:
    """``n`` RGB colours (n, 3) uint8, well apart from each other, from ``avoid`` and from blends.

    Greedy over a 5-level RGB grid, most saturated (farthest from ``avoid[0]``)
    first. A colour is taken when, in per-channel max-abs distance, it is at
    least ``min_sep`` from every taken or avoided colour, from every blend of a
    taken colour with an avoided one, and from every blend of two avoided
    colours, and no taken colour is that close to a blend of the new one with
    an avoided colour. So with a tolerance below ``min_sep``, a pixel where an
    object's edge blends with a background never matches another object.
    Blends *between two objects* are not covered: keep painted objects apart.
    Deterministic. Raises ValueError when the grid runs out.

    >>> distinct_colors(3).shape
    (3, 3)
    """
    fixed = np.asarray(avoid, dtype=np.float64).reshape(-1, 3)
    cands = [np.asarray(c, dtype=np.float64) for c in product(_LEVELS, repeat=3)]
    cands.sort(key=lambda c: -float(np.abs(c - fixed[0]).max()))
    fi, fj = np.triu_indices(len(fixed), k=1)
    chosen: list[NDArray[np.float64]] = []
    for c in cands:
        if len(chosen) == n:
            break
        pool = np.concatenate([fixed, np.asarray(chosen).reshape(-1, 3)], axis=0)
        if np.abs(pool - c).max(axis=1).min() < min_sep:
            continue
        taken = np.asarray(chosen).reshape(-1, 3)
        seg_a = np.concatenate([fixed[fi], np.repeat(taken, len(fixed), axis=0)], axis=0)
        seg_b = np.concatenate([fixed[fj], np.tile(fixed, (len(taken), 1))], axis=0)
        if len(seg_a) and _seg_cheb(c[None], seg_a, seg_b).min() < min_sep:
            continue
        if len(taken) and _seg_cheb(taken, np.repeat(c[None], len(fixed), axis=0), fixed).min() < min_sep:
            continue
        chosen.append(c)
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} distinct colours available with min_sep={min_sep}, asked for {n}")
    return np.asarray(chosen, dtype=np.uint8)


def _points_in_polygon(px: NDArray[np.float64], py: NDArray[np.float64], polygon: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Even-odd rule over every part (parts separated by NaN rows) for points (px, py)."""
    inside = np.zeros(px.shape, dtype=bool)
    sep = np.isnan(polygon[:, 0])
    parts = np.split(polygon, np.flatnonzero(sep))
    for k, part in enumerate(parts):
        ring = part[1:] if k else part
        if len(ring) < 3:
            continue
        x0, y0 = ring[:, 0], ring[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
            crosses = (ay > py) != (by > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                xi = ax + (py - ay) * (bx - ax) / (by - ay)
            inside ^= crosses & (px < xi)
    return inside


def paint_mask(h: int, w: int, obj: ArrayLike) -> NDArray[np.bool_]:
    """(h, w) bool: pixels whose centre lies inside the object.

    ``obj`` is a box (4,) xyxy or a polygon (K, 2) (NaN rows separate parts).
    """
    a = np.asarray(obj, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64) + 0.5
    xs = np.arange(w, dtype=np.float64) + 0.5
    if a.ndim == 1:
        x1, y1, x2, y2 = a
        return ((ys >= y1) & (ys < y2))[:, None] & ((xs >= x1) & (xs < x2))[None, :]
    px, py = np.meshgrid(xs, ys)
    return _points_in_polygon(px, py, a.reshape(-1, 2))


def coverage(h: int, w: int, obj: ArrayLike, ss: int = 4) -> NDArray[np.float64]:
    """(h, w) float: fraction of each pixel inside the object, from ss x ss samples per pixel."""
    a = np.asarray(obj, dtype=np.float64)
    pts = a.reshape(-1, 2) if a.ndim == 2 else a.reshape(2, 2)
    pts = pts[~np.isnan(pts[:, 0])]
    out = np.zeros((h, w), dtype=np.float64)
    if len(pts) == 0:
        return out
    c0, r0 = (max(int(np.floor(v)), 0) for v in pts.min(axis=0))
    c1, r1 = min(int(np.ceil(pts[:, 0].max())), w), min(int(np.ceil(pts[:, 1].max())), h)
    if c1 <= c0 or r1 <= r0:
        return out
    shifted = (a - np.array([c0, r0] * (2 if a.ndim == 1 else 1))) * ss
    fine = paint_mask((r1 - r0) * ss, (c1 - c0) * ss, shifted)
    out[r0:r1, c0:c1] = fine.reshape(r1 - r0, ss, c1 - c0, ss).mean(axis=(1, 3))
    return out


def paint_objects(
    h: int,
    w: int,
    objects: ArrayLike | Sequence[ArrayLike],
    background: Sequence[int] = (114, 114, 114),
    colors: ArrayLike | None = None,
    avoid: Sequence[Sequence[int]] = (),
    image: NDArray[np.uint8] | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Paint each object as a solid region of its own colour.

    Args:
        h, w: image size.
        objects: an (N, 4) xyxy box array, or a sequence of N polygons (K, 2)
            (or a mix of (4,) boxes and (K, 2) polygons).
        background: colour of the rest of the image.
        colors: (N, 3) colours to use; default :func:`distinct_colors` avoiding
            ``background`` and ``avoid``.
        image: paint onto a copy of this (h, w, 3) image instead of a flat background.

    Returns:
        (image (h, w, 3) uint8 RGB, colors (N, 3) uint8). Later objects paint over earlier ones.
    """
    objs = list(objects) if not isinstance(objects, np.ndarray) else list(objects.reshape(-1, 4))
    if colors is None:
        colors = distinct_colors(len(objs), avoid=[tuple(background), *[tuple(a) for a in avoid]])
    cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(cols) < len(objs):
        raise ValueError(f"colors: need {len(objs)}, got {len(cols)}")
    if image is None:
        img = np.empty((h, w, 3), np.uint8)
        img[...] = np.asarray(background, dtype=np.uint8)
    else:
        img = np.array(image, dtype=np.uint8, copy=True)
    for obj, col in zip(objs, cols, strict=False):
        img[paint_mask(h, w, obj)] = col
    return img, cols[: len(objs)]


def color_mask(
    image: NDArray[np.uint8],
    color: ArrayLike,
    tol: int = DEFAULT_TOL,
    backgrounds: Sequence[Sequence[int]] | None = None,
    min_fraction: float = 0.5,
) -> NDArray[np.bool_]:
    """(H, W) bool: pixels that show ``color``.

    Without ``backgrounds``: every channel within ``tol`` of ``color``. With
    ``backgrounds`` (the colours an object's edge can blend with): pixels that
    are a blend ``f * color + (1 - f) * bg`` for some listed ``bg`` with
    ``f >= min_fraction`` (within a small per-channel residual), i.e. pixels at
    least half covered by the object under bilinear interpolation.
    """
    img = image.astype(np.float64)
    c = np.asarray(color, dtype=np.float64).reshape(3)
    if backgrounds is None:
        return np.all(np.abs(img - c) <= tol, axis=-1)
    out = np.zeros(image.shape[:2], dtype=bool)
    for bg in backgrounds:
        b = np.asarray(bg, dtype=np.float64).reshape(3)
        d = c - b
        f = ((img - b) @ d) / float(d @ d)
        resid = np.abs(img - b - f[..., None] * d).max(axis=-1)
        out |= (f >= min_fraction - 1e-3) & (f <= 1.1) & (resid <= _RESIDUAL_TOL)
    return out


def label_pixels(
    image: NDArray[np.uint8],
    palette: ArrayLike,
    backgrounds: Sequence[Sequence[int]],
    min_fraction: float = 0.5,
) -> NDArray[np.int64]:
    """(H, W) int64: which palette colour each pixel shows (-1: none).

    Every pixel is explained by the closest blend ``f * colour + (1 - f) * bg``
    over all palette colours and backgrounds (smallest per-channel residual); it
    is labelled with that colour when ``f >= min_fraction`` and the residual is
    small. Unlike :func:`color_mask`, an edge pixel of one object can never be
    taken for a blend of another colour with another background.
    """
    img = image.astype(np.float64)
    pal = np.asarray(palette, dtype=np.float64).reshape(-1, 3)
    best = np.full(image.shape[:2], np.inf)
    label = np.full(image.shape[:2], -1, dtype=np.int64)
    for bg in backgrounds:
        b = np.asarray(bg, dtype=np.float64).reshape(3)
        for k, c in enumerate(pal):
            d = c - b
            f = np.clip(((img - b) @ d) / float(d @ d), 0.0, 1.0)
            resid = np.abs(img - b - f[..., None] * d).max(axis=-1)
            better = resid < best
            best = np.where(better, resid, best)
            label = np.where(better, np.where(f >= min_fraction - 1e-3, k, -1), label)
    label[best > _RESIDUAL_TOL] = -1
    return label


def extent_of(mask: NDArray[np.bool_]) -> tuple[float, float, float, float] | None:
    """Continuous xyxy extent of the True pixels of an (H, W) mask, or None."""
    if not mask.any():
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


#: Largest per-channel distance from the blend line still counted as a blend
#: (uint8 rounding of interpolated values is a few levels).
_RESIDUAL_TOL = 20


def count_pixels(
    image: NDArray[np.uint8],
    color: ArrayLike,
    tol: int = DEFAULT_TOL,
    backgrounds: Sequence[Sequence[int]] | None = None,
) -> int:
    """Number of pixels that show ``color`` (see :func:`color_mask`)."""
    return int(color_mask(image, color, tol, backgrounds).sum())


def find_extent(
    image: NDArray[np.uint8],
    color: ArrayLike,
    tol: int = DEFAULT_TOL,
    min_count: int = 1,
    backgrounds: Sequence[Sequence[int]] | None = None,
) -> tuple[float, float, float, float] | None:
    """Continuous xyxy extent of the pixels showing ``color``, or None when fewer than ``min_count``.

    A matching pixel (i, j) contributes [j, j + 1] x [i, i + 1]. Pass the
    ``backgrounds`` the object can blend with to count every pixel at least half
    covered by it (see :func:`color_mask`); the extent is then within about half a
    pixel of the object's true extent along straight edges.
    """
    m = color_mask(image, color, tol, backgrounds)
    if m.sum() < min_count:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    rows = np.flatnonzero(m.any(axis=1))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def reference_affine_matrix(
    in_hw: tuple[float, float],
    out_hw: tuple[float, float],
    degrees: float = 0.0,
    scale: float = 1.0,
    shear_x: float = 0.0,
    shear_y: float = 0.0,
    persp_x: float = 0.0,
    persp_y: float = 0.0,
    translate_x: float = 0.0,
    translate_y: float = 0.0,
) -> NDArray[np.float64]:
    """Float64 reference of Ultralytics' RandomPerspective matrix, built by hand.

    The five matrices written out from the published formulas (C: centre to
    origin, P: perspective, R: ``cv2.getRotationMatrix2D`` about the origin,
    S: shear, T: to (0.5 + translate) x output size), composed T @ S @ R @ P @ C.
    ``translate_*`` are offsets from 0.5 (Ultralytics draws 0.5 + translate_*).
    """
    import math

    import cv2

    in_h, in_w = in_hw
    out_h, out_w = out_hw
    c = np.eye(3)
    c[0, 2] = -in_w / 2
    c[1, 2] = -in_h / 2
    p = np.eye(3)
    p[2, 0] = persp_x
    p[2, 1] = persp_y
    r = np.eye(3)
    r[:2] = cv2.getRotationMatrix2D(angle=degrees, center=(0, 0), scale=scale)
    s = np.eye(3)
    s[0, 1] = math.tan(shear_x * math.pi / 180)
    s[1, 0] = math.tan(shear_y * math.pi / 180)
    t = np.eye(3)
    t[0, 2] = (0.5 + translate_x) * out_w
    t[1, 2] = (0.5 + translate_y) * out_h
    return t @ s @ r @ p @ c


def reference_warp_points(points: ArrayLike, m: ArrayLike) -> NDArray[np.float64]:
    """(N, 2) points through a (3, 3) homography, straightforward float64."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ np.asarray(m, dtype=np.float64).T
    return h[:, :2] / h[:, 2:3]


def reference_box_envelope(boxes: ArrayLike, m: ArrayLike) -> NDArray[np.float64]:
    """(N, 4) xyxy boxes -> envelope of their four corners through ``m`` (float64, unclipped)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = []
    for x1, y1, x2, y2 in b:
        q = reference_warp_points([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], m)
        out.append([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()])
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def reference_box_filter(
    before: ArrayLike, after: ArrayLike, min_size: float = 2.0, min_area_ratio: float = 0.1,
    max_aspect_ratio: float = 100.0,
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """The box filter written out in float64: (keep (N,), margin (N,)).

    ``margin`` is how far each decision is from a threshold (pixels, and area
    ratio x 100); tests assert it is comfortably positive so float32 rounding
    in the code under test cannot flip a decision.
    """
    b1 = np.asarray(before, dtype=np.float64).reshape(-1, 4)
    b2 = np.asarray(after, dtype=np.float64).reshape(-1, 4)
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((w2 > 0) & (h2 > 0), w2 * h2, 0.0) / (w1 * h1)
        ar = np.maximum(w2 / np.maximum(h2, 1e-9), h2 / np.maximum(w2, 1e-9))
    keep = (w2 >= min_size) & (h2 >= min_size) & (ratio >= min_area_ratio) & (ar <= max_aspect_ratio)
    margin = np.minimum.reduce([np.abs(w2 - min_size), np.abs(h2 - min_size), np.abs(ratio - min_area_ratio) * 100])
    return keep, margin


def assert_matches_paint(
    out,
    colors: NDArray[np.uint8],
    full_boxes: ArrayLike,
    polygons: bool,
    axis_aligned: bool,
    box_filter,
    backgrounds: Sequence[Sequence[int]],
) -> None:
    """The pixel oracle after an op on painted objects.

    Args:
        out: the op's output Sample; ``out.classes`` must be the object ids
            (indices into ``colors``), as the tests paint them.
        colors: (K, 3) the colour of every input object id.
        full_boxes: (K, 4) every input object moved by the op, *not* clipped
            (a float64 reference; used to judge dropped objects).
        polygons: the objects are polygons (boxes are their tight boxes);
            otherwise rectangles (boxes are corner envelopes).
        axis_aligned: the op has no rotation, shear or perspective.
        box_filter: the BoxFilter the op used.
        backgrounds: the colours objects can blend with (see :func:`label_pixels`).

    Checks, with every pixel labelled by the colour it (at least half) shows:

    - every kept object is visible, and its paint never pokes more than half a
      pixel out of its box;
    - rectangles under an axis-aligned op: every side of the box is within 1 px
      of the paint;
    - polygons: the box is the tight box of the returned polygon, and the paint
      lies within 1 px of the pixels that polygon covers by >= 25 % and reaches
      within 1 px of those it covers by >= 75 % (1.25 px when the op rotates:
      the last pixel centre inside a rotated corner can sit up to ~1.2 px from
      its tip). Comparing with the polygon's coverage rather than with the box
      keeps slivers thinner than a pixel (left by clipping) out of it: the box
      rightly includes them, paint cannot show them;
    - every dropped object is gone or visibly fails the filter (tiny, or a small
      fraction of its whole moved box).
    """
    full = np.asarray(full_boxes, dtype=np.float64).reshape(-1, 4)
    labels = label_pixels(out.image, colors, backgrounds)
    kept = set(out.classes.tolist())
    limit = 1.0 if axis_aligned else 1.25
    for j, k in enumerate(out.classes.tolist()):
        ext = extent_of(labels == k)
        assert ext is not None, f"object {k} kept but not visible"
        box = out.boxes[j].astype(np.float64)
        beyond = max(box[0] - ext[0], box[1] - ext[1], ext[2] - box[2], ext[3] - box[3])
        assert beyond <= 0.5 + 1e-4, f"object {k}: painted extent {ext} pokes out of box {box.tolist()}"
        if polygons:
            poly = np.asarray(out.polygons[j], dtype=np.float64)
            q = poly[~np.isnan(poly[:, 0])]
            np.testing.assert_allclose([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()], box, atol=1e-3)
            # the paint lies within the pixels the returned polygon touches by >= 25 % and
            # covers those it fills by >= 75 % (area coverage, 4 x 4 supersampled)
            cov = coverage(*out.image.shape[:2], poly)
            outer, inner = extent_of(cov >= 0.25), extent_of(cov >= 0.75)
            assert outer is not None
            e = np.asarray(ext)
            worst = max(outer[0] - e[0], outer[1] - e[1], e[2] - outer[2], e[3] - outer[3])
            if inner is not None:
                worst = max(worst, e[0] - inner[0], e[1] - inner[1], inner[2] - e[2], inner[3] - e[3])
            assert worst <= limit, (
                f"object {k}: painted extent {ext} vs polygon coverage {outer} / {inner} (off by {worst:.2f})"
            )
        elif axis_aligned:
            short = max(ext[0] - box[0], ext[1] - box[1], box[2] - ext[2], box[3] - ext[3])
            assert short <= limit, f"object {k}: box {box.tolist()} vs painted extent {ext} (off by {short:.2f})"
    for k in range(len(colors)):
        if k in kept:
            continue
        ext = extent_of(labels == k)
        if ext is None:
            continue
        ew, eh = ext[2] - ext[0], ext[3] - ext[1]
        fb = full[k]
        full_area = (fb[2] - fb[0]) * (fb[3] - fb[1])
        tiny = min(ew, eh) <= box_filter.min_size + 2
        small = max(ew - 2, 0) * max(eh - 2, 0) <= box_filter.min_area_ratio * full_area
        assert tiny or small, f"object {k} dropped but visible with extent {ext} (full area {full_area:.1f})"
