"""Affine/perspective matrices and the warps of images, boxes and polygons.

Conventions:
- Matrices are (3, 3) float64 homogeneous maps from source to destination
  pixel coordinates, acting on column vectors ``(x, y, 1)``.
- Coordinates are *continuous*: the image's outer edges are at 0 and W, so
  the centre of pixel (i, j) is at (j + 0.5, i + 0.5). Boxes and polygons use
  this frame. :func:`warp_image` converts to OpenCV's pixel-centre convention
  itself, so a box and the pixels it covers move exactly together.
- Everything here is pure: inputs are never written into (except the
  explicit ``dst`` of :func:`warp_into`).

>>> import numpy as np
>>> M = translation(10, 0) @ rotation_scale(0.0, 2.0)
>>> warp_boxes(np.array([[0, 0, 1, 1]], np.float32), M).tolist()
[[10.0, 0.0, 12.0, 2.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from detaug.boxes import box_candidates, clip_boxes, clip_boxes_to_rect
from detaug.polygons import clip_polygons, flatten_polygons, polygons_to_boxes, unflatten_polygons

__all__ = [
    "identity",
    "translation",
    "scaling",
    "rotation_scale",
    "shearing",
    "perspective",
    "ultralytics_matrix",
    "is_affine",
    "axis_scales",
    "snap_translation",
    "aligned_rect",
    "warp_points",
    "warp_boxes",
    "warp_polygons",
    "warp_image",
    "warp_into",
    "warped_bounds",
    "warp_objects",
]

M3 = NDArray[np.float64]


def identity() -> M3:
    """The (3, 3) identity."""
    return np.eye(3)


def translation(tx: float, ty: float) -> M3:
    """Move by (tx, ty) pixels."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float | None = None) -> M3:
    """Scale about the origin by sx (and sy, default sx)."""
    m = np.eye(3)
    m[0, 0], m[1, 1] = sx, sx if sy is None else sy
    return m


def rotation_scale(degrees: float, scale: float) -> M3:
    """Rotate about the origin by ``degrees`` and scale uniformly.

    Positive angles turn the image counter-clockwise on screen (y down), as
    OpenCV's ``getRotationMatrix2D`` and Ultralytics' ``degrees`` do.
    """
    a = math.radians(degrees)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def shearing(shear_x_deg: float, shear_y_deg: float) -> M3:
    """x' = x + tan(shear_x) y,  y' = y + tan(shear_y) x (angles in degrees)."""
    m = np.eye(3)
    m[0, 1] = math.tan(math.radians(shear_x_deg))
    m[1, 0] = math.tan(math.radians(shear_y_deg))
    return m


def perspective(px: float, py: float) -> M3:
    """Projective terms: w = px x + py y + 1."""
    m = np.eye(3)
    m[2, 0], m[2, 1] = px, py
    return m


def ultralytics_matrix(
    in_size: tuple[int, int] | tuple[float, float],
    out_size: tuple[int, int],
    degrees: float = 0.0,
    scale: float = 1.0,
    shear_x: float = 0.0,
    shear_y: float = 0.0,
    persp_x: float = 0.0,
    persp_y: float = 0.0,
    translate_x: float = 0.0,
    translate_y: float = 0.0,
) -> M3:
    """Compose a warp the way Ultralytics' RandomPerspective does.

    ``M = T @ S @ R @ P @ C``: C moves the input's centre to the origin,
    P adds perspective, R rotates and scales, S shears, and T moves the origin
    to ``(0.5 + translate_x) * out_w, (0.5 + translate_y) * out_h``.

    Args:
        in_size: (h, w) of the input frame (for Mosaic, the 2s x 2s canvas frame).
        out_size: (h, w) of the output image.
        translate_x, translate_y: fractions of the output size (0 = centred).

    >>> M = ultralytics_matrix((100, 200), (100, 200))
    >>> np.allclose(M, np.eye(3))
    True
    """
    in_h, in_w = in_size
    out_h, out_w = out_size
    c = translation(-in_w / 2.0, -in_h / 2.0)
    p = perspective(persp_x, persp_y)
    r = rotation_scale(degrees, scale)
    s = shearing(shear_x, shear_y)
    t = translation((0.5 + translate_x) * out_w, (0.5 + translate_y) * out_h)
    return t @ s @ r @ p @ c


def is_affine(m: ArrayLike, tol: float = 0.0) -> bool:
    """True when the last row of ``m`` is (0, 0, 1)."""
    a, b, c = np.asarray(m, dtype=np.float64)[2].tolist()
    return abs(a) <= tol and abs(b) <= tol and abs(c - 1.0) <= tol


#: An offset within this many pixels of an integer is whole (painting with a resize); rotation, shear and
#: perspective terms within _SKEW_TOL are none; ties of a snap / painted edge are decided this far off (float noise).
ALIGN_TOL, _SKEW_TOL, _SNAP_EPS, _EDGE_TOL = 1e-6, 1e-12, 1e-6, 1e-8


def axis_scales(m: ArrayLike) -> tuple[float, float] | None:
    """(kx, ky) when the (3, 3) map ``m`` is affine with no rotation or shear and positive scales, else None.

    >>> axis_scales(translation(3, 4) @ scaling(2, 0.5)), axis_scales(rotation_scale(10, 1)), axis_scales(scaling(-1, 1))
    ((2.0, 0.5), None, None)
    """
    (a, b, _), (c, d, _), (p, q, r) = np.asarray(m, dtype=np.float64).reshape(3, 3).tolist()
    if max(abs(b), abs(c), abs(p), abs(q), abs(r - 1.0)) > _SKEW_TOL or not (a > 0 and d > 0):
        return None
    return a, d


def snap_translation(m: ArrayLike, origin: tuple[float, float] = (0.0, 0.0)) -> M3:
    """A new (3, 3) map: ``m`` moved so that ``origin`` lands on integer output coordinates, when axis-aligned.

    ``origin`` (x, y) is a point of the source (the corner of the crop painted).
    When ``m`` is axis-aligned (:func:`axis_scales`), its translation moves by
    at most half an output pixel per axis (ties go up), so that the painters
    draw the crop with one ``cv2.resize`` at whole pixels: compute the labels
    with the returned map. Any other map comes back unchanged (a copy).

    >>> snap_translation(translation(2.3, 5.7) @ scaling(1.5))[:2, 2].tolist()
    [2.0, 6.0]
    >>> snap_translation(translation(2.3, 5.7) @ scaling(1.5), origin=(1, 1))[:2, 2].tolist()  # 3.8, 7.2 -> 4, 7
    [2.5, 5.5]
    >>> r = translation(0.3, 0) @ rotation_scale(10, 1)
    >>> np.array_equal(snap_translation(r), r)
    True
    """
    out = np.array(m, dtype=np.float64)
    if out.shape != (3, 3) or not np.isfinite(out).all():
        raise ValueError(f"m: expected a finite (3, 3) matrix, got shape {out.shape}")
    k = axis_scales(out)
    if k is None:
        return out
    for i in (0, 1):
        at = k[i] * float(origin[i]) + out[i, 2]
        out[i, 2] += math.floor(at + 0.5 + _SNAP_EPS) - at
    return out


def aligned_rect(src_size: tuple[int, int], m: ArrayLike) -> tuple[int, int, int, int] | None:
    """The output pixels a resize paints for a source of ``src_size`` (h, w) under ``m``, or None.

    Defined when ``m`` (source continuous frame -> output) is axis-aligned
    (:func:`axis_scales`) and maps the source's corner to whole pixels
    ``(ox, oy)`` (within :data:`ALIGN_TOL`). Returns int ``(ox, oy, x1, y1)``,
    not clipped: the pixels the source covers by at least half (``x1 = ox +
    round(w * kx)``, ties up), each the source sampled bilinearly at its
    centre's pre-image clamped to the source's pixel centres.

    >>> m = translation(3, -2) @ scaling(0.52)  # the source spans 10.4 x 5.2 pixels
    >>> aligned_rect((10, 20), m), aligned_rect((10, 20), translation(3.5, 0))
    ((3, -2, 13, 3), None)
    """
    k = axis_scales(m)
    if k is None:
        return None
    a = np.asarray(m, dtype=np.float64)
    ox, oy = round(float(a[0, 2])), round(float(a[1, 2]))
    if abs(a[0, 2] - ox) > ALIGN_TOL or abs(a[1, 2] - oy) > ALIGN_TOL:
        return None
    h, w = src_size
    return ox, oy, ox + math.floor(w * k[0] + 0.5 + _EDGE_TOL), oy + math.floor(h * k[1] + 0.5 + _EDGE_TOL)


def warp_points(points: ArrayLike, m: ArrayLike) -> NDArray[np.float64]:
    """Map (N, 2) points by the (3, 3) matrix ``m``; returns (N, 2) float64.

    NaN rows (polygon part separators) stay NaN.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    m = np.asarray(m, dtype=np.float64)
    x = p @ m[:2, :2].T + m[:2, 2]
    a, b, c = m[2].tolist()
    if a == 0.0 and b == 0.0 and c == 1.0:  # is_affine(m), inlined
        return x
    w = p @ m[2, :2] + m[2, 2]
    return x / w[:, None]


def warp_boxes(boxes: ArrayLike, m: ArrayLike) -> NDArray[np.float32]:
    """Warp (N, 4) xyxy boxes: map the four corners and take their envelope.

    The result is *not* clipped to any image. Returns (N, 4) float32.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = b[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)
    w = warp_points(corners, m).reshape(-1, 4, 2)
    out = np.concatenate([w.min(axis=1), w.max(axis=1)], axis=1)
    return out.astype(np.float32)


def warp_polygons(polygons: Sequence[ArrayLike], m: ArrayLike) -> tuple[NDArray[np.float32], ...]:
    """Warp every object's polygon (all parts) by ``m``; not clipped."""
    pts, ring, obj_of_ring = flatten_polygons(polygons)
    return unflatten_polygons(warp_points(pts, m), ring, obj_of_ring, len(polygons))


def _to_pixel_centres(m: ArrayLike) -> M3:
    """The same map in OpenCV's convention (pixel centres at integers)."""
    return translation(-0.5, -0.5) @ np.asarray(m, dtype=np.float64) @ translation(0.5, 0.5)


def warp_image(
    image: NDArray[np.uint8],
    m: ArrayLike,
    out_size: tuple[int, int],
    fill: int | tuple[int, int, int] = 114,
    interpolation: int = cv2.INTER_LINEAR,
) -> NDArray[np.uint8]:
    """Warp an (H, W, C) image by ``m`` (continuous frame) into an (out_h, out_w, C) image.

    Uses ``cv2.warpAffine`` when ``m`` is affine, ``cv2.warpPerspective``
    otherwise; pixels that map outside the source get ``fill``. A bilinear
    warp that :func:`aligned_rect` places on whole pixels is one
    ``cv2.resize`` instead: the pixels the image covers by at least half are
    the image (its edge pixels replicated, not blended with the fill), the
    others the fill.
    """
    out_h, out_w = out_size
    bv = (fill,) * 3 if isinstance(fill, int) else tuple(fill)
    rect = aligned_rect(image.shape[:2], m) if interpolation == cv2.INTER_LINEAR else None
    if rect is not None:
        out = np.empty((out_h, out_w, *image.shape[2:]), dtype=image.dtype)
        x0, y0, x1, y1 = _paste_resized(out, image, m, rect, (0, 0, out_w, out_h)) or (0, 0, 0, 0)
        for ya, yb, xa, xb in ((0, y0, 0, out_w), (y1, out_h, 0, out_w), (y0, y1, 0, x0), (y0, y1, x1, out_w)):
            out[ya:yb, xa:xb] = bv[: out.shape[2]] if out.ndim == 3 else bv[0]  # the fill around it
        return out
    mc = _to_pixel_centres(m)
    if is_affine(mc):
        out = cv2.warpAffine(image, mc[:2], (out_w, out_h), flags=interpolation, borderValue=bv)
    else:
        out = cv2.warpPerspective(image, mc, (out_w, out_h), flags=interpolation, borderValue=bv)
    return np.ascontiguousarray(out)


def _paste_resized(dst: NDArray[np.uint8], src: NDArray[np.uint8], m: ArrayLike, rect: tuple[int, int, int, int],
                   region: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """Draw ``src`` resized by ``m``'s scales over ``rect`` (:func:`aligned_rect`, perhaps grown by a seam) into
    ``dst``, inside ``region`` only; returns the (x0, y0, x1, y1) pixels written, or None. Uses
    ``cv2.resize`` with the scales given (so it uses them exactly), straight
    into ``dst`` when it fits; where the rect is wider (taller) than resize's
    own size, or the size would stay the same (OpenCV then copies), ``src``
    with its last columns (rows) repeated, which is what resize clamps to.
    """
    ox, oy, x1, y1 = rect
    c = (max(ox, region[0]), max(oy, region[1]), min(x1, region[2]), min(y1, region[3]))
    if c[2] <= c[0] or c[3] <= c[1]:
        return None
    a = np.asarray(m, dtype=np.float64)
    kx, ky, w, h, tail = float(a[0, 0]), float(a[1, 1]), x1 - ox, y1 - oy, src.shape[2:]
    pad = [0, 0]  # columns, rows of src repeated: what resize clamps to
    for i, (k, n, want) in enumerate(((kx, src.shape[1], w), (ky, src.shape[0], h))):
        while round((n + pad[i]) * k) < want:  # cv2.resize's own size is cvRound(n * k)
            pad[i] += 1
    i = int(abs(ky - 1.0) > abs(kx - 1.0))  # OpenCV copies a same-size image: grow the axis resized most
    while all(round((n + q) * k) == n + q for k, n, q in ((kx, src.shape[1], pad[0]), (ky, src.shape[0], pad[1]))) \
            and (kx, ky) != (1.0, 1.0) and pad[i] < 4096:
        pad[i] += 1
    if pad[0] or pad[1]:
        src = cv2.copyMakeBorder(src, 0, pad[1], 0, pad[0], cv2.BORDER_REPLICATE).reshape(
            src.shape[0] + pad[1], src.shape[1] + pad[0], *tail)
    rw, rh = round(src.shape[1] * kx), round(src.shape[0] * ky)
    if (rh, rw) == src.shape[:2] and (kx, ky) != (1.0, 1.0):  # scales within ~1e-4 of one
        inv = np.array([[1.0 / kx, 0.0, 0.5 / kx - 0.5], [0.0, 1.0 / ky, 0.5 / ky - 0.5]])
        res = cv2.warpAffine(src, inv, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE).reshape(h, w, *tail)
    elif (w, h) == (rw, rh) and c == rect and tail in ((3,), (4,)):
        if np.shares_memory(cv2.resize(src, None, dst[oy:y1, ox:x1], kx, ky, cv2.INTER_LINEAR), dst):
            return c
        raise ValueError("dst: OpenCV could not resize into it in place; pass a C-contiguous (H, W, C) uint8 array")
    else:
        res = cv2.resize(src, None, fx=kx, fy=ky, interpolation=cv2.INTER_LINEAR).reshape(rh, rw, *tail)
    dst[c[1] : c[3], c[0] : c[2]] = res[c[1] - oy : c[3] - oy, c[0] - ox : c[2] - ox]
    return c


def warped_bounds(src_size: tuple[int, int], m: ArrayLike, dst_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Integer pixel rectangle (x0, y0, x1, y1) of ``dst`` that the warped source rectangle can touch.

    Args:
        src_size: (h, w) of the source.
        m: (3, 3) continuous-frame map from source to destination.
        dst_size: (h, w) of the destination.

    Returns:
        The rectangle, grown by one pixel for interpolation and clipped to the
        destination, or ``None`` when it is empty.
    """
    h, w = src_size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    dh, dw = dst_size
    if not is_affine(m):
        den = corners @ m[2, :2] + m[2, 2]
        if np.any(den <= 1e-9):
            return (0, 0, dw, dh)
    q = warp_points(corners, m)
    (qx0, qy0), (qx1, qy1) = q.min(axis=0).tolist(), q.max(axis=0).tolist()
    x0 = max(math.floor(qx0) - 1, 0)
    y0 = max(math.floor(qy0) - 1, 0)
    x1 = min(math.ceil(qx1) + 1, dw)
    y1 = min(math.ceil(qy1) + 1, dh)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def warp_into(
    dst: NDArray[np.uint8],
    src: NDArray[np.uint8],
    m: ArrayLike,
    interpolation: int = cv2.INTER_LINEAR,
    within: tuple[int, int, int, int] | None = None,
    rect: tuple[int, int, int, int] | None = None,
) -> None:
    """Warp ``src`` by ``m`` (continuous frame) *into* ``dst``, in place.

    With ``within`` (x0, y0, x1, y1), only those pixels are wanted: nothing is
    drawn when the pixels the warp can touch all lie outside it; pixels inside
    it are drawn exactly as without it.

    Only the destination pixels whose pre-image lies inside ``src`` are
    written (``BORDER_TRANSPARENT``), and OpenCV is run only over the
    bounding rectangle of the warped source, so warping several tiles into one
    output costs about one warp per output pixel. A bilinear warp on whole pixels
    (:func:`aligned_rect`, or ``rect``: it grown by a seam) is one ``cv2.resize``
    writing all of it (edges replicated). ``dst``: C-contiguous (H, W, C) uint8.
    """
    if src.shape[0] == 0 or src.shape[1] == 0:
        return
    if rect is None and interpolation == cv2.INTER_LINEAR:
        rect = aligned_rect(src.shape[:2], m)
    if rect is not None:
        h, w = dst.shape[:2]
        region = (0, 0, w, h) if within is None else (max(within[0], 0), max(within[1], 0), min(within[2], w),
                                                        min(within[3], h))
        _paste_resized(dst, src, m, rect, region)
        return
    bounds = warped_bounds(src.shape[:2], m, dst.shape[:2])
    if bounds is None:
        return
    x0, y0, x1, y1 = bounds
    if within is not None and (x1 <= within[0] or within[2] <= x0 or y1 <= within[1] or within[3] <= y0):
        return
    roi = dst[y0:y1, x0:x1]
    mc = _to_pixel_centres(translation(-x0, -y0) @ np.asarray(m, dtype=np.float64))
    size = (x1 - x0, y1 - y0)
    if is_affine(mc):
        res = cv2.warpAffine(src, mc[:2], size, dst=roi, flags=interpolation, borderMode=cv2.BORDER_TRANSPARENT)
    else:
        res = cv2.warpPerspective(src, mc, size, dst=roi, flags=interpolation, borderMode=cv2.BORDER_TRANSPARENT)
    if res is not roi and not np.shares_memory(res, dst):
        # With BORDER_TRANSPARENT a fresh array from OpenCV would hold
        # uninitialised pixels outside the tile, so copying it back would be
        # wrong: fail loudly instead (a C-contiguous uint8 dst never gets here).
        raise ValueError("dst: OpenCV could not warp into it in place; pass a C-contiguous (H, W, C) uint8 array")


def warp_objects(
    boxes: ArrayLike,
    polygons: Sequence[ArrayLike] | None,
    m: ArrayLike,
    out_size: tuple[int, int],
    visible_rect: tuple[float, float, float, float] | None = None,
    min_size: float = 2.0,
    min_area_ratio: float = 0.1,
    max_aspect_ratio: float = 100.0,
) -> tuple[NDArray[np.float32], tuple[NDArray[np.float32], ...] | None, NDArray[np.bool_]]:
    """Move objects through one geometric step, clip them and decide who survives.

    Args:
        boxes: (N, 4) xyxy in the source frame.
        polygons: ``None`` or N polygons in the source frame. When given, they
            decide the output boxes (the tight box of the clipped, warped
            polygon), which is tighter than a warped box under rotation.
        m: (3, 3) map from the source frame to the output frame.
        out_size: (h, w) of the output image; results are clipped to it.
        visible_rect: optional (x1, y1, x2, y2) in the *source* frame: only
            this part of the source reaches the output (a Mosaic tile's cell).
        min_size, min_area_ratio, max_aspect_ratio: the filter of
            :func:`detaug.boxes.box_candidates`; the area ratio is measured
            against the whole object warped by ``m`` but not clipped at all.

    Returns:
        (boxes (N, 4) float32 clipped to the output, polygons or None, keep (N,) bool).
        Nothing is removed here: apply ``keep`` with ``Sample.select``.
    """
    out_h, out_w = out_size
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if polygons is not None:
        whole = warp_polygons(polygons, m)
        before = polygons_to_boxes(whole)
        p = polygons if visible_rect is None else clip_polygons(polygons, *visible_rect)
        p = clip_polygons(warp_polygons(p, m), 0.0, 0.0, float(out_w), float(out_h))
        after = polygons_to_boxes(p)
        polys_out: tuple[NDArray[np.float32], ...] | None = p
    else:
        before = warp_boxes(b, m)
        vis = b if visible_rect is None else clip_boxes_to_rect(b, *visible_rect)
        after = clip_boxes(warp_boxes(vis, m), out_w, out_h)
        polys_out = None
    keep = box_candidates(before, after, min_size, min_area_ratio, max_aspect_ratio)
    return after, polys_out, keep
