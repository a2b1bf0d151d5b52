"""Drawing samples for inspection: boxes, label tags, polygons, grids.

Everything here returns new arrays; inputs (images, Samples) are never
written into. Images are (H, W, 3) uint8 **RGB** throughout;
:func:`save_png` converts to OpenCV's BGR only when writing.

Box pixels follow detaug's continuous frame (image edges at 0 and W, pixel
centres at +0.5): a box ``[x1, y1, x2, y2]`` covers pixel columns
``round(x1) .. round(x2) - 1`` and rows ``round(y1) .. round(y2) - 1``, and its
outline is the outermost ``thickness`` pixels of that range, so it sits
exactly on the box edges and stays visible for boxes touching the image
border.

This is a viewer, not the data path: it loops over boxes for the drawing
calls.

>>> import numpy as np
>>> from detaug.sample import Sample
>>> s = Sample.create(np.zeros((8, 8, 3), np.uint8), boxes=[[2, 2, 6, 6]], classes=[0])
>>> img = draw_sample(s, show_labels=False, thickness=1)
>>> bool((img[2, 2:6] == class_colors(1)[0]).all()), bool((img[3, 3] == 0).all())
(True, True)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from detaug.polygons import split_rings
from detaug.sample import Sample

__all__ = [
    "MIN_ALPHA",
    "class_colors",
    "label_text",
    "line_alpha",
    "draw_sample",
    "add_title",
    "safe_text",
    "make_grid",
    "side_by_side",
    "save_png",
]

U8 = NDArray[np.uint8]
Names = Sequence[str] | Mapping[int, str]

#: Opacity of the lines of an object of weight -> 0 (weight 1 is opaque).
MIN_ALPHA = 0.25
_GOLDEN = 0.6180339887498949
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colors(nc: int) -> U8:
    """Distinct, deterministic colours: (nc, 3) uint8 RGB.

    Hues step by the golden ratio; saturation and value alternate in small
    cycles so that neighbouring ids differ in more than hue. The colour of
    class k does not depend on ``nc`` (``class_colors(m)[:n] ==
    class_colors(n)`` for m >= n).

    >>> class_colors(3).shape, class_colors(3).dtype.name
    ((3, 3), 'uint8')
    >>> bool((class_colors(10)[:4] == class_colors(4)).all())
    True
    """
    if nc < 0:
        raise ValueError(f"nc: must be >= 0, got {nc}")
    k = np.arange(nc, dtype=np.float64)
    h = (0.02 + k * _GOLDEN) % 1.0
    s = np.where(np.arange(nc) % 3 == 2, 0.55, 0.9)
    v = np.where((np.arange(nc) // 3) % 2 == 1, 0.78, 0.98)
    # Vectorised HSV -> RGB.
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], 1),
            np.stack([q, v, p], 1),
            np.stack([p, v, t], 1),
            np.stack([p, q, v], 1),
            np.stack([t, p, v], 1),
            np.stack([v, p, q], 1),
        ],
        0,
    )  # (6, nc, 3)
    rgb = table[i, np.arange(nc)]
    return np.round(rgb * 255.0).astype(np.uint8).reshape(nc, 3)


def _class_name(cls: int, names: Names | None) -> str:
    if names is None:
        return str(cls)
    if isinstance(names, Mapping):
        return str(names.get(cls, cls))
    return str(names[cls]) if 0 <= cls < len(names) else str(cls)


def label_text(cls: int, weight: float, names: Names | None = None, show_weights: bool = True) -> str:
    """The text of an object's tag: its class name, plus the weight when < 1.

    >>> label_text(1, 0.617, ["cat", "dog"]), label_text(1, 1.0, ["cat", "dog"]), label_text(7, 1.0)
    ('dog 0.62', 'dog', '7')
    """
    name = _class_name(int(cls), names)
    if show_weights and weight < 1.0:
        return f"{name} {weight:.2f}"
    return name


def line_alpha(weights: NDArray[np.floating] | float) -> NDArray[np.float64]:
    """Line opacity for per-object weights: ``clip(weight, MIN_ALPHA, 1)``.

    >>> line_alpha(np.array([1.0, 0.5, 0.0])).tolist()
    [1.0, 0.5, 0.25]
    """
    return np.clip(np.asarray(weights, np.float64), MIN_ALPHA, 1.0)


def _blend(out: U8, y0: int, x0: int, mask: NDArray[np.bool_], color: NDArray[np.uint8], alpha: float) -> None:
    """In place on ``out`` (our own copy): alpha-blend ``color`` where ``mask``
    (a window at (y0, x0))."""
    h, w = mask.shape
    roi = out[y0 : y0 + h, x0 : x0 + w]
    if alpha >= 1.0:
        roi[mask] = color
        return
    px = roi[mask].astype(np.float32)
    roi[mask] = np.round(px * (1.0 - alpha) + color.astype(np.float32) * alpha).astype(np.uint8)


def _pixel_box(box: NDArray[np.float32], width: int, height: int) -> tuple[int, int, int, int]:
    """Continuous xyxy -> pixel range [c0, c1) x [r0, r1), at least one pixel, inside the image."""
    c0 = int(np.clip(round(float(box[0])), 0, width - 1))
    r0 = int(np.clip(round(float(box[1])), 0, height - 1))
    c1 = int(np.clip(round(float(box[2])), c0 + 1, width))
    r1 = int(np.clip(round(float(box[3])), r0 + 1, height))
    return c0, r0, c1, r1


def _draw_polygon(out: U8, polygon: NDArray[np.float32], color: NDArray[np.uint8], alpha: float) -> None:
    """Thin (1 px) outline of every ring of one object, blended into ``out``."""
    height, width = out.shape[:2]
    rings = [r for r in split_rings(polygon) if len(r) >= 2 and np.isfinite(r).all()]
    if not rings:
        return
    pts = np.concatenate(rings)
    x0 = int(np.clip(math.floor(pts[:, 0].min()) - 1, 0, width - 1))
    y0 = int(np.clip(math.floor(pts[:, 1].min()) - 1, 0, height - 1))
    x1 = int(np.clip(math.ceil(pts[:, 0].max()) + 1, x0 + 1, width))
    y1 = int(np.clip(math.ceil(pts[:, 1].max()) + 1, y0 + 1, height))
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    # Continuous frame -> cv2 pixel-centre frame, fixed point with 4 fractional bits.
    fixed = [
        np.round((r.astype(np.float64) - np.array([x0 + 0.5, y0 + 0.5])) * 16).astype(np.int32).reshape(-1, 1, 2)
        for r in rings
    ]
    cv2.polylines(mask, fixed, True, 1, 1, cv2.LINE_8, 4)
    _blend(out, y0, x0, mask.astype(bool), color, alpha)


def _font_scale(thickness: int) -> float:
    return max(0.35, 0.2 * thickness + 0.1)


def draw_sample(
    sample: Sample,
    names: Names | None = None,
    thickness: int = 2,
    show_weights: bool = True,
    show_labels: bool = True,
    show_polygons: bool = True,
    colors: NDArray[np.uint8] | None = None,
) -> U8:
    """Draw a sample's boxes (and polygons) onto a copy of its image.

    Args:
        sample: the Sample; never modified.
        names: class names (list indexed by class id, or {id: name}); ids are
            shown when missing.
        thickness: box line width in pixels, drawn *inside* the box edges.
        show_weights: add the weight to the tag (``dog 0.62``) when it is < 1.
        show_labels: draw the filled tag with the class name.
        show_polygons: draw polygons (when the sample has them) as 1 px outlines.
        colors: (nc, 3) uint8 RGB per class; default :func:`class_colors`.

    Returns:
        (H, W, 3) uint8 RGB, a new array. Each object's lines are its class
        colour alpha-blended with opacity :func:`line_alpha` of its weight.
    """
    if thickness < 1:
        raise ValueError(f"thickness: must be >= 1, got {thickness}")
    out = np.array(sample.image, dtype=np.uint8, copy=True, order="C")
    n = sample.num_objects
    if n == 0:
        return out
    height, width = out.shape[:2]
    classes = sample.classes.astype(np.int64)
    if colors is None:
        colors = class_colors(int(classes.max()) + 1 if n else 0)
    colors = np.asarray(colors, np.uint8).reshape(-1, 3)
    if classes.min() < 0 or classes.max() >= len(colors):
        raise ValueError(f"colors: need a colour for class {int(classes.max())}, got {len(colors)}")
    alphas = line_alpha(sample.weights)
    pix = [_pixel_box(b, width, height) for b in sample.boxes]

    if show_polygons and sample.polygons is not None:
        for i in range(n):
            if len(sample.polygons[i]):
                _draw_polygon(out, sample.polygons[i], colors[classes[i]], float(alphas[i]))

    for i, (c0, r0, c1, r1) in enumerate(pix):
        mask = np.ones((r1 - r0, c1 - c0), bool)
        mask[thickness : r1 - r0 - thickness, thickness : c1 - c0 - thickness] = False
        _blend(out, r0, c0, mask, colors[classes[i]], float(alphas[i]))

    if show_labels:
        scale = _font_scale(thickness)
        for i, (c0, r0, _c1, _r1) in enumerate(pix):
            text = safe_text(label_text(int(classes[i]), float(sample.weights[i]), names, show_weights))
            (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
            tag_w, tag_h = tw + 4, th + base + 3
            ty = r0 - tag_h if r0 - tag_h >= 0 else r0  # above the box, else inside its top
            tx = max(0, min(c0, width - tag_w))
            tag = np.ones((min(tag_h, height - ty), min(tag_w, width - tx)), bool)
            color = colors[classes[i]]
            _blend(out, ty, tx, tag, color, float(alphas[i]))
            shown = color.astype(np.float64) * alphas[i] + 127.5 * (1 - alphas[i])
            lum = 0.299 * shown[0] + 0.587 * shown[1] + 0.114 * shown[2]
            ink = (0, 0, 0) if lum > 140 else (255, 255, 255)
            cv2.putText(out, text, (tx + 2, ty + th + 1), _FONT, scale, ink, 1, cv2.LINE_AA)
    return out


def safe_text(text: object) -> str:
    """``text`` as printable ASCII, the only text OpenCV's Hershey fonts draw.

    Non-ASCII characters (lone surrogates from undecodable file names
    included, which would crash OpenCV) become ``\\x..``/``\\u..`` escapes and
    control characters ``?``.

    >>> safe_text("caf\\xe9 \\udcff.jpg\\n")
    'caf\\\\xe9 \\\\udcff.jpg?'
    """
    out = str(text).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in out)


def _as_rgb(image: NDArray, name: str) -> U8:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{name}: expected (H, W, 3) or (H, W), got {a.shape}")
    return a


def add_title(image: U8, text: str, height: int = 22, background: int = 255) -> U8:
    """A new image: ``image`` below a ``height`` px strip with ``text`` in black.

    ``text`` is drawn through :func:`safe_text` (any string is safe).

    >>> add_title(np.zeros((10, 20, 3), np.uint8), "hi").shape
    (32, 20, 3)
    """
    img = _as_rgb(image, "image")
    if height < 1:
        raise ValueError(f"height: must be >= 1, got {height}")
    strip = np.full((height, img.shape[1], 3), background, np.uint8)
    scale = max(0.3, min(0.6, (height - 6) / 22))
    text = safe_text(text)
    (_tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.putText(strip, text, (3, (height + th) // 2), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], axis=0)


def make_grid(
    images: Sequence[NDArray[np.uint8]], cols: int | None = None, pad: int = 4, pad_value: int = 255
) -> U8:
    """Tile images in a grid, row-major.

    Every cell has the size of the largest image (max height x max width);
    each image is centred in its cell. ``cols`` defaults to
    ``ceil(sqrt(len(images)))``. Output size: ``rows * cell_h + (rows + 1) *
    pad`` by ``cols * cell_w + (cols + 1) * pad``, filled with ``pad_value``.
    Grey (H, W) images are accepted and shown as RGB.

    >>> make_grid([np.zeros((10, 20, 3), np.uint8), np.zeros((30, 5, 3), np.uint8)], pad=1).shape
    (32, 43, 3)
    """
    imgs = [_as_rgb(im, f"images[{i}]") for i, im in enumerate(images)]
    if not imgs:
        raise ValueError("images: need at least one image")
    if cols is None:
        cols = math.ceil(math.sqrt(len(imgs)))
    if cols < 1:
        raise ValueError(f"cols: must be >= 1, got {cols}")
    if pad < 0:
        raise ValueError(f"pad: must be >= 0, got {pad}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value: must be in [0, 255], got {pad_value}")
    cols = min(cols, len(imgs))
    rows = math.ceil(len(imgs) / cols)
    ch = max(im.shape[0] for im in imgs)
    cw = max(im.shape[1] for im in imgs)
    out = np.full((rows * ch + (rows + 1) * pad, cols * cw + (cols + 1) * pad, 3), pad_value, np.uint8)
    for k, im in enumerate(imgs):
        r, c = divmod(k, cols)
        y = pad + r * (ch + pad) + (ch - im.shape[0]) // 2
        x = pad + c * (cw + pad) + (cw - im.shape[1]) // 2
        out[y : y + im.shape[0], x : x + im.shape[1]] = im
    return out


def side_by_side(
    a: NDArray[np.uint8], b: NDArray[np.uint8], titles: Sequence[str] | None = None, pad: int = 4
) -> U8:
    """Two images next to each other (e.g. before / after), optionally titled.

    >>> side_by_side(np.zeros((10, 10, 3), np.uint8), np.zeros((20, 10, 3), np.uint8), pad=0).shape
    (20, 20, 3)
    """
    a, b = _as_rgb(a, "a"), _as_rgb(b, "b")
    if titles is not None:
        if len(titles) != 2:
            raise ValueError(f"titles: expected 2 titles, got {len(titles)}")
        a, b = add_title(a, titles[0]), add_title(b, titles[1])
    return make_grid([a, b], cols=2, pad=pad)


def save_png(path: str | os.PathLike[str], image_rgb: NDArray[np.uint8]) -> Path:
    """Write an RGB image as PNG (parent folders are created); returns the path."""
    img = _as_rgb(image_rgb, "image_rgb")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), np.ascontiguousarray(img[:, :, ::-1])):
        raise OSError(f"could not write PNG {p}")
    return p
