"""Plan, then paint: MixDataset[i] is its plan painted; plans are small, picklable, replayable."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug import AugmentConfig, MixDataset, Sample
from detaug.canvas import CanvasPlan, TileWarp
from detaug.paint import paint
from detaug.plan import Blend, SamplePlan
from detaug.sample import Labels
from tests.test_mix_dataset import FULL, make_data


def same_labels(a: Labels | Sample, b: Labels | Sample) -> None:
    assert a.size == b.size
    assert a.boxes.tobytes() == b.boxes.tobytes()
    assert a.classes.tolist() == b.classes.tolist()
    assert a.weights.tobytes() == b.weights.tobytes()
    assert (a.polygons is None) == (b.polygons is None)
    if a.polygons is not None:
        assert all(np.array_equal(p, q, equal_nan=True) for p, q in zip(a.polygons, b.polygons, strict=True))
    assert dict(a.meta) == dict(b.meta)


@settings(max_examples=25, deadline=None)
@given(
    mosaic=st.floats(0, 1), mosaic9=st.floats(0, 1), mixup=st.floats(0, 1), cutmix=st.floats(0, 1),
    degrees=st.floats(0, 45), shear=st.floats(0, 10), perspective=st.sampled_from([0.0, 0.001]),
    flipud=st.floats(0, 1), hsv=st.booleans(), fill=st.integers(0, 255), on_bg=st.booleans(),
    polygons=st.booleans(), seed=st.integers(0, 2**16), epoch=st.integers(0, 5), index=st.integers(0, 7),
)
def test_item_is_its_plan_painted(mosaic, mosaic9, mixup, cutmix, degrees, shear, perspective, flipud, hsv, fill,
                                  on_bg, polygons, seed, epoch, index):
    cfg = AugmentConfig(img_size=64, mosaic=mosaic, mosaic9=mosaic9, mixup=mixup, cutmix=cutmix, degrees=degrees,
                        shear=shear, perspective=perspective, flipud=flipud, fill=fill,
                        cutmix_on_background=on_bg, hsv_h=0.015 * hsv, hsv_s=0.7 * hsv, hsv_v=0.4 * hsv)
    data = make_data(polygons=polygons)
    ds = MixDataset(data, cfg, seed=seed)
    sample = ds[(epoch, index)]
    plan = ds.plan((epoch, index))
    images = [data[j].image for j in plan.sources]
    assert paint(plan, images).tobytes() == sample.image.tobytes()
    same_labels(plan.labels, sample)
    assert len(set(plan.sources)) == len(plan.sources)
    assert plan.source_sizes == tuple(data[j].size for j in plan.sources)
    # a plan pickles, and the copy paints the same pixels
    again = pickle.loads(pickle.dumps(plan))
    assert paint(again, images).tobytes() == sample.image.tobytes()
    same_labels(again.labels, plan.labels)


def test_plan_records_what_the_item_does():
    data = make_data()
    cfg = FULL.replace(mosaic=1.0, mosaic9=0.0, mixup=1.0, cutmix=0.0)
    plan = MixDataset(data, cfg, seed=1).plan((2, 3))
    assert len(plan.canvases) == 2 and plan.blend is not None and plan.paste is None
    assert plan.canvases[0].frame is not None and 1 <= len(plan.canvases[0].warps) <= 4
    assert 0.0 < plan.blend.lam < 1.0
    assert plan.labels.meta["index"] == 3 and plan.labels.meta["epoch"] == 2
    assert plan.sources[plan.canvases[0].warps[0].source] in plan.labels.meta["tiles"]
    text = plan.describe()
    assert "mixup" in text and "canvas 0 (mosaic" in text
    # labels carry the MixUp weights of the blend
    w = plan.labels.weights
    assert np.all((w <= plan.blend.lam + 1e-6) | (w <= 1 - plan.blend.lam + 1e-6))


def test_plan_reads_no_image_twice_and_keys_carry_the_epoch():
    calls: list[int] = []
    data = make_data()

    class Counting:
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            calls.append(int(i))
            return data[i]

    ds = MixDataset(Counting(), FULL.replace(mosaic=1.0, mixup=1.0), seed=0)
    plan = ds.plan((4, 1))
    assert sorted(calls) == sorted(set(calls))
    assert set(plan.sources) <= set(calls)
    ds.set_epoch(4)
    a = ds.plan(1)
    assert a.labels.boxes.tobytes() == plan.labels.boxes.tobytes()


def test_paint_checks_its_images():
    data = make_data()
    plan = MixDataset(data, FULL, seed=0).plan(0)
    with pytest.raises(ValueError, match="images"):
        paint(plan, [])
    with pytest.raises(ValueError, match="source 0"):
        paint(plan, [np.zeros((3, 3, 3), np.uint8)] * plan.num_sources)


def test_plan_validation_names_the_field():
    lab = Labels((8, 8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
    warp = TileWarp(0, (0, 0, 8, 8), np.eye(3))
    with pytest.raises(ValueError, match="crop"):
        TileWarp(0, (4, 0, 4, 8), np.eye(3))
    with pytest.raises(ValueError, match="matrix"):
        TileWarp(0, (0, 0, 8, 8), np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="blend"):
        SamplePlan(8, (0, 0, 0), (0,), ((8, 8),), (CanvasPlan((warp,)),), lab, blend=Blend(0, 0.5))
    with pytest.raises(ValueError, match="canvases"):
        SamplePlan(8, (0, 0, 0), (), (), (CanvasPlan((warp,)),), lab)
    with pytest.raises(ValueError, match="labels"):
        SamplePlan(16, (0, 0, 0), (0,), ((8, 8),), (CanvasPlan((warp,)),), lab)


def test_extra_transforms_run_after_painting_and_replay():
    from detaug.transforms.photometric import RandomFlip

    data = make_data()
    ds = MixDataset(data, FULL, seed=5, extra=[RandomFlip("vertical", 0.5)])
    a, b = ds[(1, 2)], ds[(1, 2)]
    assert a.image.tobytes() == b.image.tobytes() and a.boxes.tobytes() == b.boxes.tobytes()
