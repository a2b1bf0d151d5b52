"""Sample: validation, alignment of per-object fields, immutability."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from detaug import Sample


def _sample(n: int = 3, polygons: bool = True) -> Sample:
    boxes = np.array([[i, i, i + 2, i + 3] for i in range(n)], np.float32)
    polys = [np.array([[i, i], [i + 2, i], [i + 2, i + 3]], np.float32) for i in range(n)] if polygons else None
    return Sample.create(np.zeros((10, 12, 3), np.uint8), boxes, np.arange(n), np.linspace(0.5, 1, n), polys, {"path": "x.jpg"})


def test_select_keeps_fields_aligned():
    s = _sample(4)
    t = s.select(np.array([True, False, True, True]))
    assert t.classes.tolist() == [0, 2, 3]
    assert t.boxes[:, 0].tolist() == [0, 2, 3]
    np.testing.assert_allclose(t.weights, s.weights[[0, 2, 3]])
    assert [p[0, 0] for p in t.polygons] == [0, 2, 3]
    u = s.select([3, 1])
    assert u.classes.tolist() == [3, 1] and u.boxes[0, 0] == 3
    assert s.num_objects == 4  # unchanged


def test_create_converts_dtypes_and_defaults():
    s = Sample.create(np.zeros((2, 2, 3), np.uint8), [[0, 0, 1, 1]], [1])
    assert s.boxes.dtype == np.float32 and s.classes.dtype == np.int64 and s.weights.dtype == np.float32
    assert s.weights.tolist() == [1.0]
    e = Sample.create(np.zeros((2, 2, 3), np.uint8))
    assert e.num_objects == 0 and e.boxes.shape == (0, 4)


@pytest.mark.parametrize(
    "field, value, word",
    [
        ("image", np.zeros((4, 4), np.uint8), "image"),
        ("image", np.zeros((4, 4, 3), np.float32), "image"),
        ("boxes", np.zeros((3, 5), np.float32), "boxes"),
        ("classes", np.zeros((2,), np.int64), "classes"),
        ("weights", np.zeros((3,), np.float64), "weights"),
        ("polygons", (np.zeros((3, 2), np.float32),), "polygons"),
    ],
)
def test_invalid_fields_raise_naming_the_field(field, value, word):
    with pytest.raises(ValueError, match=word):
        dataclasses.replace(_sample(3), **{field: value})


def test_frozen_and_meta_read_only():
    s = _sample()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.boxes = s.boxes  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.meta["path"] = "y"  # type: ignore[index]
    assert s.with_meta(epoch=3).meta["epoch"] == 3 and "epoch" not in s.meta


def test_pickles_round_trip():
    import pickle

    s = _sample()
    t = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(t.image, s.image)
    np.testing.assert_array_equal(t.boxes, s.boxes)
    assert t.meta["path"] == "x.jpg" and len(t.polygons) == 3
    with pytest.raises(TypeError):
        t.meta["path"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("boxes", "weights", "field"),
    [
        ([[0, 0, float("nan"), 2]], None, "boxes: row 0 is not finite"),
        ([[0, 0, 2, 2], [3, 0, 1, 2]], None, "boxes: row 1 is inverted"),
        ([[0, 0, 2, 2]], [0.0], "weights: row 0"),
        ([[0, 0, 2, 2]], [float("inf")], "weights: row 0"),
    ],
)
def test_create_rejects_bad_objects_naming_field_and_row(boxes, weights, field):
    with pytest.raises(ValueError, match=field):
        Sample.create(np.zeros((4, 4, 3), np.uint8), boxes, [0] * len(boxes), weights)
