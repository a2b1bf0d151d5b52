"""Pure polygon maths (numpy): rings, flattening, tight boxes and exact clipping.

An object's polygon is a (K, 2) float32 array of absolute pixel xy. An object
made of several parts (COCO multi-polygon segmentations) keeps its parts in
one array, separated by a single row of NaN. The functions below work on all
rings of all objects at once ("flattened"), without a Python loop per point.

No function here writes into its arguments; each returns new arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["split_rings", "flatten_polygons", "unflatten_polygons", "polygons_to_boxes", "clip_polygons"]

F32 = NDArray[np.float32]


def split_rings(polygon: ArrayLike) -> list[NDArray[np.float32]]:
    """Split one object's (K, 2) array into its parts at NaN rows.

    >>> [r.shape for r in split_rings([[0, 0], [1, 0], [1, 1], [np.nan, np.nan], [5, 5], [6, 5], [6, 6]])]
    [(3, 2), (3, 2)]
    """
    p = np.asarray(polygon, dtype=np.float32).reshape(-1, 2)
    sep = np.isnan(p[:, 0])
    if not sep.any():
        return [p.copy()]
    parts = np.split(p, np.flatnonzero(sep))
    return [q[1:].copy() if i else q.copy() for i, q in enumerate(parts) if len(q) > (1 if i else 0)]


def flatten_polygons(
    polygons: Sequence[ArrayLike],
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """All rings of all objects as flat arrays.

    Returns:
        points: (T, 2) float64, every ring's vertices, rings in object order.
        ring_of_point: (T,) int64, ring index of each point (non-decreasing).
        object_of_ring: (R,) int64, object index of each ring (non-decreasing).
    """
    if len(polygons) == 0:
        return np.zeros((0, 2)), np.zeros((0,), np.int64), np.zeros((0,), np.int64)
    # (K, 2) arrays go to one concatenate as they are (one float64 conversion
    # for all, instead of one per object); anything else is converted first.
    arrays = [
        p if isinstance(p, np.ndarray) and p.ndim == 2 and p.shape[1] == 2 else np.asarray(p, np.float64).reshape(-1, 2)
        for p in polygons
    ]
    lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
    pts = np.concatenate(arrays, axis=0, dtype=np.float64) if lengths.sum() else np.zeros((0, 2))
    obj = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
    sep = np.isnan(pts[:, 0]) | np.isnan(pts[:, 1])
    obj_start = np.zeros(len(pts), dtype=bool)
    starts = np.cumsum(lengths) - lengths
    obj_start[starts[lengths > 0]] = True
    ring_start = obj_start | np.r_[False, sep[:-1]]
    ring_start &= ~sep
    ring_id = np.cumsum(ring_start) - 1
    keep = ~sep
    pts, ring_id, obj = pts[keep], ring_id[keep], obj[keep]
    n_rings = int(ring_start.sum())
    object_of_ring = np.zeros(n_rings, dtype=np.int64)
    object_of_ring[ring_id] = obj
    return pts, ring_id.astype(np.int64), object_of_ring


def unflatten_polygons(
    points: NDArray[np.floating],
    ring_of_point: NDArray[np.int64],
    object_of_ring: NDArray[np.int64],
    num_objects: int,
) -> tuple[NDArray[np.float32], ...]:
    """Inverse of :func:`flatten_polygons`; empty rings are dropped.

    Objects with no remaining ring get a (0, 2) array.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    n_rings = len(object_of_ring)
    ring_len = np.bincount(ring_of_point, minlength=n_rings)
    nonempty = ring_len > 0
    # Append one NaN row after each non-empty ring, then cut per object and
    # drop each object's trailing NaN.
    ring_rank = np.cumsum(nonempty) - 1
    pos = np.arange(len(pts)) + ring_rank[ring_of_point]
    total = len(pts) + int(nonempty.sum())
    big = np.full((total, 2), np.nan, dtype=np.float32)
    big[pos] = pts
    obj_len = np.bincount(object_of_ring, weights=(ring_len + 1) * nonempty, minlength=num_objects)
    obj_len = obj_len.astype(np.int64)
    ends = np.cumsum(obj_len)
    starts = ends - obj_len
    return tuple(
        np.ascontiguousarray(big[s : e - 1]) if e > s else np.zeros((0, 2), np.float32)
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    )


def polygons_to_boxes(polygons: Sequence[ArrayLike]) -> F32:
    """Tight xyxy box of each object's polygon (all parts); (N,) polygons -> (N, 4).

    An object with no points gets the zero box ``[0, 0, 0, 0]``.

    >>> polygons_to_boxes([[[1, 2], [4, 2], [3, 7]], np.zeros((0, 2))]).tolist()
    [[1.0, 2.0, 4.0, 7.0], [0.0, 0.0, 0.0, 0.0]]
    """
    n = len(polygons)
    pts, ring, obj_of_ring = flatten_polygons(polygons)
    out = np.zeros((n, 4), dtype=np.float64)
    if len(pts) == 0:
        return out.astype(np.float32)
    obj = obj_of_ring[ring]
    counts = np.bincount(obj, minlength=n)
    has = counts > 0
    starts = (np.cumsum(counts) - counts)[has]
    out[has, 0] = np.minimum.reduceat(pts[:, 0], starts)
    out[has, 1] = np.minimum.reduceat(pts[:, 1], starts)
    out[has, 2] = np.maximum.reduceat(pts[:, 0], starts)
    out[has, 3] = np.maximum.reduceat(pts[:, 1], starts)
    return out.astype(np.float32)


def _ring_index(ring: NDArray[np.int64], n_rings: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(ring_len (R,), index of each point's predecessor in its ring (T,))."""
    ring_len = np.bincount(ring, minlength=n_rings)
    ring_end = np.cumsum(ring_len)
    prev = np.arange(len(ring)) - 1
    nonempty = ring_len > 0
    prev[(ring_end - ring_len)[nonempty]] = ring_end[nonempty] - 1
    return ring_len, prev


def _clip_half_plane(
    pts: NDArray[np.float64],
    ring: NDArray[np.int64],
    object_of_ring: NDArray[np.int64],
    axis: int,
    bound: float,
    keep_ge: bool,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Intersect every ring with one half-plane; a ring may split into several rings.

    A point is inside when its signed distance ``d`` into the kept side is
    > 0; points on the line count as outside (the line is moved by an
    infinitesimal into the kept side), so edges along the line, vertices
    touching it and zero-length edges create no crossings and no slivers.

    The ring is cut into *chains*, maximal runs of inside vertices, each
    with the crossing where it enters (entry) and leaves (exit). Along the
    line, the interior of a simple polygon is a union of disjoint intervals,
    each bounded by one exit and one entry; so sorting a ring's exits and,
    separately, its entries along the line (exact ties, possible only where
    the ring touches itself on the line, broken by where the edges cross the
    moved line) and pairing the k-th exit with the k-th entry gives those
    intervals, for either orientation of the ring. Following exit -> partner
    entry -> its chain closes each piece; the pieces are the cycles of this
    permutation of chains, found by pointer jumping, so there is no Python
    loop over rings or crossings. Pairing k-th with k-th is a bijection for
    *any* ring, so self-intersecting rings give closed (if not exact)
    pieces, never an error.

    Rings must be ordered by object and points by ring; the output keeps
    that order (the pieces of a ring replace it, in place).

    Returns:
        points (T', 2) float64, ring_of_point (T',), object_of_ring (R',).
    """
    n_rings = len(object_of_ring)
    if len(pts) == 0:
        return pts, ring, object_of_ring
    ring_len, prev = _ring_index(ring, n_rings)
    ring_start = np.cumsum(ring_len) - ring_len
    d = pts[:, axis] - bound if keep_ge else bound - pts[:, axis]
    inside = d > 0
    prev_in = inside[prev]
    entry = inside & ~prev_in
    n_chains_of_ring = np.bincount(ring[entry], minlength=n_rings)
    if not n_chains_of_ring.any():  # no ring crosses the line: keep or drop whole rings
        return pts[inside], ring[inside], object_of_ring
    exit_ = prev_in & ~inside

    # --- rotate every crossing ring so that it starts at its first entry
    crossing_ring = n_chains_of_ring > 0
    in_crossing = crossing_ring[ring]
    e_idx = np.flatnonzero(entry)
    e_ring = ring[e_idx]
    first_of_ring = np.r_[True, e_ring[1:] != e_ring[:-1]]
    first_entry = np.zeros(n_rings, dtype=np.int64)
    first_entry[e_ring[first_of_ring]] = e_idx[first_of_ring]
    sel = np.flatnonzero(in_crossing)
    r_sel = ring[sel]
    src = ring_start[r_sel] + (sel - 2 * ring_start[r_sel] + first_entry[r_sel]) % ring_len[r_sel]
    en_rot, ex_rot, in_rot = entry[src], exit_[src], inside[src]
    chain_rot = np.cumsum(en_rot) - 1  # every crossing ring now begins with an entry
    n_chains = int(en_rot.sum())
    chain_ring = r_sel[en_rot]

    # --- crossing points (entries and exits are each in chain order)
    def crossings(at: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        p0, p1 = pts[prev[at]], pts[at]
        d0, d1 = d[prev[at]], d[at]
        t = d0 / (d0 - d1)
        x = p0 + t[:, None] * (p1 - p0)
        x = np.where((d1 == 0)[:, None], p1, np.where((d0 == 0)[:, None], p0, x))
        x[:, axis] = bound
        # Where the edge meets the line moved by eps: u + eps * slope.
        slope = (p1[:, 1 - axis] - p0[:, 1 - axis]) / (d1 - d0)
        return x, x[:, 1 - axis], slope

    x_en, u_en, s_en = crossings(src[en_rot])
    x_ex, u_ex, s_ex = crossings(src[ex_rot])

    # --- pair the k-th exit with the k-th entry of each ring along the line
    # (the k-th interval holds both, whichever of them starts it, so the
    # ring's orientation does not matter)
    ex_order = np.lexsort((s_ex, u_ex, chain_ring))
    en_order = np.lexsort((s_en, u_en, chain_ring))
    nxt = np.empty(n_chains, dtype=np.int64)
    nxt[ex_order] = en_order
    pred = np.empty(n_chains, dtype=np.int64)
    pred[nxt] = np.arange(n_chains)

    # --- cycles of nxt: representative (smallest chain) and position from it
    rep = np.arange(n_chains)
    pos = np.ones(n_chains, dtype=np.int64)
    jump = nxt.copy()
    steps_back = pred.copy()
    longest = int(n_chains_of_ring.max())
    window = 1
    while window < longest:
        rep = np.minimum(rep, rep[jump])
        jump = jump[jump]
        window *= 2
    is_rep = rep == np.arange(n_chains)
    pos[is_rep] = 0
    steps_back[is_rep] = np.flatnonzero(is_rep)
    window = 1
    while window < longest:
        pos = pos + pos[steps_back]
        steps_back = steps_back[steps_back]
        window *= 2

    # --- output units: whole inside rings, and chains in cycle order
    skip_entry = (x_en == x_ex[pred]).all(axis=1)  # entry repeats the previous exit
    n_in_chain = np.bincount(chain_rot[in_rot], minlength=n_chains)
    chain_size = n_in_chain + 2 - skip_entry
    whole = np.flatnonzero(~crossing_ring & (ring_len > 0))
    whole = whole[inside[ring_start[whole]]]
    n_whole = len(whole)
    key_ring = np.concatenate([whole, chain_ring])
    key_piece = np.concatenate([np.full(n_whole, -1), rep])
    key_pos = np.concatenate([np.zeros(n_whole, np.int64), pos])
    size = np.concatenate([ring_len[whole], chain_size])
    order = np.lexsort((key_pos, key_piece, key_ring))
    size_sorted = size[order]
    start = np.empty(len(order), dtype=np.int64)
    start[order] = np.cumsum(size_sorted) - size_sorted
    ring_sorted, piece_sorted = key_ring[order], key_piece[order]
    new_ring = np.ones(len(order), dtype=bool)
    new_ring[1:] = (ring_sorted[1:] != ring_sorted[:-1]) | (piece_sorted[1:] != piece_sorted[:-1])
    out_object = object_of_ring[ring_sorted[new_ring]]
    out_ring = np.repeat(np.cumsum(new_ring) - 1, size_sorted)
    # Gather every output row from [points; entry crossings; exit crossings]
    # (one np.take of rows is much faster than scattering rows).
    n_pts = len(pts)
    source = np.empty(int(size.sum()), dtype=np.int64)
    shift = np.zeros(n_rings, dtype=np.int64)
    shift[whole] = start[:n_whole] - ring_start[whole]
    is_whole = np.zeros(n_rings, dtype=bool)
    is_whole[whole] = True
    wp = np.flatnonzero(is_whole[ring])
    source[wp + shift[ring[wp]]] = wp
    c_start = start[n_whole:]
    in_src = src[in_rot]
    in_chain = chain_rot[in_rot]
    first_in = np.cumsum(n_in_chain) - n_in_chain
    in_pos = np.arange(len(in_src)) - first_in[in_chain]
    source[(c_start + 1 - skip_entry)[in_chain] + in_pos] = in_src
    chains = np.arange(n_chains)
    keep_en = ~skip_entry
    source[c_start[keep_en]] = n_pts + chains[keep_en]
    source[c_start + chain_size - 1] = n_pts + n_chains + chains
    out = np.take(np.concatenate([pts, x_en, x_ex]), source, axis=0)
    return out, out_ring, out_object


def _ring_areas(
    pts: NDArray[np.float64], ring: NDArray[np.int64], n_rings: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(|area| (R,), sum of |shoelace terms| / 2 (R,)) of each ring, taken about its first vertex."""
    ring_len, prev = _ring_index(ring, n_rings)
    if len(pts) == 0:
        return np.zeros(n_rings), np.zeros(n_rings)
    first = np.minimum(np.cumsum(ring_len) - ring_len, len(pts) - 1)
    x, y = pts[:, 0], pts[:, 1]
    qx = x - np.take(np.take(x, first), ring)
    qy = y - np.take(np.take(y, first), ring)
    a, b = np.take(qx, prev) * qy, qx * np.take(qy, prev)
    area2 = np.bincount(ring, weights=a - b, minlength=n_rings)
    scale2 = np.bincount(ring, weights=np.abs(a) + np.abs(b), minlength=n_rings)
    return np.abs(area2) / 2, scale2 / 2


def clip_polygons(
    polygons: Sequence[ArrayLike], x1: float, y1: float, x2: float, y2: float
) -> tuple[NDArray[np.float32], ...]:
    """Clip every object's polygon (all parts) to the rectangle [x1, x2] x [y1, y2].

    Exact for simple polygons, concave ones included: each side of the
    rectangle splits a ring into its separate pieces (see
    :func:`_clip_half_plane`), so the result is the true intersection and
    its tight box (:func:`polygons_to_boxes`) is the true one -- unlike
    plain Sutherland-Hodgman, whose zero-area bridges along a side can keep
    corners of the rectangle that are not covered. A ring that splits gives
    several parts of the same object (NaN-separated rows). Parts with no
    area (fewer than 3 vertices, or collinear) are removed; an object that
    vanishes gets a (0, 2) array, whose box is the zero box.

    Vectorised over all rings of all objects (no Python loop per ring or
    per crossing). Self-intersecting input rings do not raise, but their
    result is only approximate (the "interior" of such a ring is ambiguous).

    >>> sq = [[-2, -2], [4, -2], [4, 4], [-2, 4]]
    >>> polygons_to_boxes(clip_polygons([sq], 0, 0, 10, 10)).tolist()
    [[0.0, 0.0, 4.0, 4.0]]
    >>> u = [[0, 0], [6, 0], [6, 4], [4, 4], [4, 1], [2, 1], [2, 4], [0, 4]]  # a U, top cut off
    >>> clip_polygons([u], -1, -1, 10, 3)[0].tolist()
    [[0.0, 3.0], [0.0, 0.0], [6.0, 0.0], [6.0, 3.0], [4.0, 3.0], [4.0, 1.0], [2.0, 1.0], [2.0, 3.0]]
    >>> two = clip_polygons([u], -1, 2, 10, 10)[0]  # only the two arms are left
    >>> polygons_to_boxes(split_rings(two)).tolist()
    [[4.0, 2.0, 6.0, 4.0], [0.0, 2.0, 2.0, 4.0]]
    """
    n = len(polygons)
    pts, ring, obj_of_ring = flatten_polygons(polygons)
    for axis, bound, keep_ge in ((0, x1, True), (0, x2, False), (1, y1, True), (1, y2, False)):
        pts, ring, obj_of_ring = _clip_half_plane(pts, ring, obj_of_ring, axis, float(bound), keep_ge)
    # Parts with no area (fewer than 3 vertices, or collinear up to rounding
    # once in float32, the output precision): drop them.
    pts = pts.astype(np.float32).astype(np.float64)
    n_rings = len(obj_of_ring)
    ring_len = np.bincount(ring, minlength=n_rings)
    area, scale = _ring_areas(pts, ring, n_rings)
    ok_ring = (ring_len >= 3) & (area > 1e-10 * scale)
    ok = ok_ring[ring]
    return unflatten_polygons(pts[ok], ring[ok], obj_of_ring, n)
