"""A picture of what the example detector learned: labels next to predictions on a few images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detaug import Sample, YoloDataset, collate
from detaug.viz import draw_sample, make_grid, side_by_side
from examples.detector import TinyDetector
from examples.predict import predict

__all__ = ["render_predictions"]


def render_predictions(
    model: TinyDetector,
    data: str | Path,
    img_size: int = 256,
    num: int = 6,
    conf: float = 0.3,
    split: str = "val",
) -> np.ndarray:
    """Labels (left) and predictions (right, tagged with their scores) of the first ``num`` images of ``split``.

    Images are read by ``YoloDataset(data, split, img_size)`` (long side
    ``img_size``); predictions use class-agnostic NMS: one box per object,
    tagged with its best class. Puts ``model`` in eval mode.

    Returns an (H, W, 3) uint8 RGB grid, two pairs per row.
    """
    if num < 1:
        raise ValueError(f"num: expected >= 1 images, got {num}")
    ds = YoloDataset(data, split=split, img_size=img_size, progress=False)
    samples = [ds[i] for i in range(min(num, len(ds)))]
    dev = next(model.parameters()).device
    batch = collate(samples).to(dev)
    dets = predict(model, batch.images.float() / 255.0, conf=conf, agnostic=True)
    names = ds.names
    tiles = []
    for s, d in zip(samples, dets, strict=True):
        h, w = s.image.shape[:2]
        keep = (d.boxes[:, 2] <= w) & (d.boxes[:, 3] <= h)  # drop boxes lying in the padding only
        b = d.boxes[keep].cpu().numpy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
        pred = Sample.create(s.image, boxes=b, classes=d.classes[keep].cpu().numpy(),
                             weights=d.scores[keep].clamp(1e-3, 1.0).cpu().numpy())
        name = Path(s.meta["path"]).name
        tiles.append(side_by_side(draw_sample(s.replace(polygons=None), names),
                                  draw_sample(pred, names),
                                  titles=(f"{name}: labels", f"predictions (score >= {conf})")))
    return make_grid(tiles, cols=2, pad=6)
