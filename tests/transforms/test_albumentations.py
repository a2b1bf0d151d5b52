"""AlbumentationsTransform: objects stay aligned, frames agree, seeds replay."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from detaug.boxes import clip_boxes
from detaug.polygons import clip_polygons, polygons_to_boxes
from detaug.sample import Sample
from detaug.transforms.albumentations import AlbumentationsParams, AlbumentationsTransform
from detaug.transforms.photometric import FlipParams, RandomFlip


def colour(k: int) -> np.ndarray:
    return np.array([255, 1 + 40 * k, 255 - 40 * k], np.uint8)


def coded_sample(h: int = 120, w: int = 160) -> Sample:
    """Image whose pixel (y, x) is (x, y, 7): a crop's offset can be read off its corner.

    Objects: boxes with rectangle polygons (one of them two-part), classes 10.., weights distinct.
    """
    ys, xs = np.mgrid[0:h, 0:w]
    img = np.stack([xs, ys, np.full_like(xs, 7)], -1).astype(np.uint8)
    boxes = np.array(
        [[5, 5, 30, 25], [40, 10, 100, 70], [110.5, 80.25, 150, 115], [2, 90, 20, 118], [60, 90, 75, 100]], np.float64
    )
    polys = [np.array([[a, b], [c, b], [c, d], [a, d]]) for a, b, c, d in boxes]
    a, b, c, d = boxes[1]
    polys[1] = np.array([[a, b], [70, b], [70, 40], [a, 40], [np.nan, np.nan], [80, 50], [c, 50], [c, d], [80, d]])
    return Sample.create(img, boxes, [10, 11, 12, 13, 14], [1.0, 0.9, 0.8, 0.7, 0.6], polygons=polys, meta={"path": "x.png"})


def painted_sample(h: int = 100, w: int = 120) -> Sample:
    img = np.zeros((h, w, 3), np.uint8)
    boxes = np.array([[20, 20, 44, 36], [60, 50, 90, 80], [5, 70, 19, 95]], np.float64)
    for i, (a, b, c, d) in enumerate(boxes.astype(int)):
        img[b:d, a:c] = colour(i)
    polys = [np.array([[a, b], [c, b], [c, d], [a, d]]) for a, b, c, d in boxes]
    return Sample.create(img, boxes, [0, 1, 2], polygons=polys)


def snapshot(s: Sample) -> tuple:
    polys = None if s.polygons is None else tuple(p.tobytes() for p in s.polygons)
    return (s.image.tobytes(), s.image.shape, s.boxes.tobytes(), s.classes.tobytes(), s.weights.tobytes(), polys)


def check_valid(out: Sample) -> None:
    h, w = out.size
    n = out.num_objects
    assert out.image.flags.c_contiguous and out.image.dtype == np.uint8
    assert out.classes.shape == out.weights.shape == (n,)
    bx = out.boxes
    assert np.all((bx[:, 0] >= 0) & (bx[:, 1] >= 0) & (bx[:, 2] <= w) & (bx[:, 3] <= h))
    assert np.all((bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1]))
    if out.polygons is not None:
        assert len(out.polygons) == n
        for p in out.polygons:
            q = p[~np.isnan(p[:, 0])]
            assert np.all((q >= -1e-4) & (q <= np.array([w, h]) + 1e-4))


def test_horizontal_flip_equals_our_flip():
    s = coded_sample()
    before = snapshot(s)
    ours = RandomFlip("horizontal").apply(s, FlipParams(True))
    theirs = AlbumentationsTransform(A.HorizontalFlip(p=1.0))(s, np.random.default_rng(0))
    np.testing.assert_array_equal(theirs.image, ours.image)
    np.testing.assert_allclose(theirs.boxes, ours.boxes, atol=1e-4)
    for p, q in zip(theirs.polygons, ours.polygons, strict=True):
        np.testing.assert_array_equal(np.isnan(p), np.isnan(q))
        np.testing.assert_allclose(p, q, atol=1e-4)
    assert theirs.classes.tolist() == ours.classes.tolist()
    np.testing.assert_array_equal(theirs.weights, s.weights)
    assert theirs.meta["path"] == "x.png"
    assert snapshot(s) == before


def test_vertical_flip_and_transpose_frames():
    s = coded_sample()
    out = AlbumentationsTransform(A.VerticalFlip(p=1.0))(s, np.random.default_rng(0))
    np.testing.assert_allclose(out.boxes, RandomFlip("vertical").apply(s, FlipParams(True)).boxes, atol=1e-4)
    out = AlbumentationsTransform(A.Transpose(p=1.0))(s, np.random.default_rng(0))
    np.testing.assert_allclose(out.boxes, s.boxes[:, [1, 0, 3, 2]], atol=1e-4)
    np.testing.assert_allclose(polygons_to_boxes(out.polygons), s.boxes[:, [1, 0, 3, 2]], atol=1e-4)


@pytest.mark.parametrize("seed", range(8))
def test_random_crop_keeps_objects_aligned(seed):
    s = coded_sample()
    t = AlbumentationsTransform(A.RandomCrop(height=60, width=70, p=1.0))
    out = t(s, np.random.default_rng(seed))
    assert out.size == (60, 70)
    ox, oy = int(out.image[0, 0, 0]), int(out.image[0, 0, 1])  # read the crop offset from the pixels
    np.testing.assert_array_equal(out.image, s.image[oy : oy + 60, ox : ox + 70])
    shifted = s.boxes - np.array([ox, oy, ox, oy], np.float32)
    clipped = clip_boxes(shifted, 70, 60)
    alive = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    expected_idx = np.flatnonzero(alive)
    assert out.classes.tolist() == s.classes[expected_idx].tolist()
    np.testing.assert_array_equal(out.weights, s.weights[expected_idx])
    np.testing.assert_allclose(out.boxes, clipped[expected_idx], atol=1e-3)
    polys = clip_polygons([s.polygons[i] - np.array([ox, oy], np.float32) for i in expected_idx], 0, 0, 70, 60)
    for p, q in zip(out.polygons, polys, strict=True):
        np.testing.assert_allclose(p, q, atol=1e-4)
    check_valid(out)


def test_blur_changes_pixels_only():
    s = coded_sample()
    out = AlbumentationsTransform(A.Blur(blur_limit=(5, 5), p=1.0))(s, np.random.default_rng(0))
    np.testing.assert_array_equal(out.image, cv2.blur(s.image, (5, 5)))
    np.testing.assert_array_equal(out.boxes, s.boxes)
    for p, q in zip(out.polygons, s.polygons, strict=True):
        np.testing.assert_allclose(p, q, atol=1e-5)


@pytest.mark.parametrize(
    "transform",
    [A.Affine(rotate=(25, 25), p=1.0), A.Affine(scale=1.4, translate_px=(7, 7), p=1.0), A.Rotate(limit=(90, 90), p=1.0)],
    ids=["rotate25", "scale-translate", "rotate90"],
)
def test_affine_polygons_follow_the_pixels(transform):
    """Each polygon's vertex centroid sits on its painted object's pixel centroid."""
    s = painted_sample()
    out = AlbumentationsTransform(transform)(s, np.random.default_rng(0))
    check_valid(out)
    assert out.num_objects == 3
    for j, k in enumerate(out.classes.tolist()):
        ys, xs = np.nonzero(np.all(np.abs(out.image.astype(int) - colour(k)) <= 30, axis=2))
        p = out.polygons[j]
        pc = p[~np.isnan(p[:, 0])].mean(0)
        assert abs(xs.mean() + 0.5 - pc[0]) < 0.6 and abs(ys.mean() + 0.5 - pc[1]) < 0.6
        # Albumentations' box contains the object's pixels.
        b = out.boxes[j]
        assert xs.min() >= b[0] - 1 and xs.max() + 1 <= b[2] + 1 and ys.min() >= b[1] - 1 and ys.max() + 1 <= b[3] + 1


def test_dropped_objects_are_dropped_everywhere():
    s = painted_sample()
    # Shift everything left by 30 px: object 0 ([20, 44]) keeps 14/24 of its width,
    # object 1 ([60, 90]) stays whole, object 2 ([5, 19]) leaves the image.
    shift = A.Affine(translate_px={"x": (-30, -30), "y": (0, 0)}, p=1.0)
    out = AlbumentationsTransform(shift)(s, np.random.default_rng(0))
    assert out.classes.tolist() == [0, 1]
    assert len(out.polygons) == 2
    np.testing.assert_allclose(out.boxes, [[0, 20, 14, 36], [30, 50, 60, 80]], atol=1e-3)
    np.testing.assert_allclose(polygons_to_boxes(out.polygons), out.boxes, atol=1e-3)
    check_valid(out)
    # min_visibility drops object 0 (14/24 < 0.6 visible) everywhere.
    out2 = AlbumentationsTransform(shift, min_visibility=0.6)(s, np.random.default_rng(0))
    assert out2.classes.tolist() == [1] and len(out2.polygons) == 1
    np.testing.assert_allclose(out2.polygons[0], s.polygons[1] - np.array([30, 0], np.float32), atol=1e-3)


def test_replay_is_deterministic_and_seed_dependent():
    s = coded_sample()
    pipe = A.Compose([A.RandomCrop(50, 60, p=1.0), A.ColorJitter(p=1.0), A.HorizontalFlip(p=0.5)])
    t = AlbumentationsTransform(pipe)
    p1 = t.sample_params(np.random.default_rng(1), s)
    assert p1 == t.sample_params(np.random.default_rng(1), s) and isinstance(p1.seed, int)
    first = snapshot(t.apply(s, p1))
    outs = {snapshot(t.apply(s, AlbumentationsParams(seed))) for seed in range(6)}
    assert len(outs) > 1
    assert snapshot(t.apply(s, p1)) == first  # other calls in between do not matter
    assert snapshot(AlbumentationsTransform(pipe).apply(s, p1)) == first  # nor the instance


def test_user_transform_is_not_mutated():
    user = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["lab"]))
    AlbumentationsTransform(user)
    assert user.main_compose is True
    res = user(image=np.zeros((10, 20, 3), np.uint8), bboxes=[[1, 2, 3, 4]], lab=[5])
    np.testing.assert_allclose(res["bboxes"], [[17, 2, 19, 4]])


def test_samples_without_objects_or_polygons():
    rng = np.random.default_rng(3)
    empty = Sample.create(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    t = AlbumentationsTransform(A.RandomCrop(20, 20, p=1.0))
    out = t(empty, rng)
    assert out.num_objects == 0 and out.size == (20, 20) and out.polygons is None
    s = coded_sample().replace(polygons=None)
    out = AlbumentationsTransform(A.HorizontalFlip(p=1.0))(s, rng)
    assert out.polygons is None and out.num_objects == 5


def test_validation():
    with pytest.raises(ValueError, match="transform"):
        AlbumentationsTransform(RandomFlip())
    with pytest.raises(ValueError, match="min_visibility"):
        AlbumentationsTransform(A.Blur(), min_visibility=2.0)
    with pytest.raises(ValueError, match="min_area"):
        AlbumentationsTransform(A.Blur(), min_area=-1)


def test_pickles_for_dataloader_workers():
    import pickle

    s = coded_sample()
    t = AlbumentationsTransform(A.Compose([A.RandomCrop(50, 60, p=1.0), A.HorizontalFlip(p=0.5)]))
    t2 = pickle.loads(pickle.dumps(t))
    p = AlbumentationsParams(1234)
    assert snapshot(t2.apply(s, p)) == snapshot(t.apply(s, p))
