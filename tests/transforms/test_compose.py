"""Compose and RandomApply: params record every draw and replay exactly."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import numpy as np
import pytest

from detaug.sample import Sample
from detaug.transforms.albumentations import AlbumentationsTransform
from detaug.transforms.base import Transform
from detaug.transforms.compose import Compose, ComposeParams, RandomApply, RandomApplyParams
from detaug.transforms.mixup import MixUp
from detaug.transforms.photometric import FlipParams, HSVParams, RandomFlip, RandomHSV


@dataclass(frozen=True)
class SeenParams:
    size: tuple[int, int]
    draw: float


class SeeSize(Transform[SeenParams]):
    """Records the size of the sample its params were drawn for."""

    def sample_params(self, rng: np.random.Generator, sample: Sample) -> SeenParams:
        return SeenParams(sample.size, float(rng.random()))

    def apply(self, sample: Sample, params: SeenParams) -> Sample:
        if params.size != sample.size:
            raise AssertionError(f"params drawn for {params.size}, applied to {sample.size}")
        return sample.with_meta(seen=params.draw)


def sample(seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed)
    boxes = np.array([[3, 4, 20, 18], [30, 10, 55, 40]], np.float64)
    polys = [np.array([[a, b], [c, b], [c, d], [a, d]]) for a, b, c, d in boxes]
    return Sample.create(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), boxes, [1, 2], polygons=polys)


def snapshot(s: Sample) -> tuple:
    polys = None if s.polygons is None else tuple(p.tobytes() for p in s.polygons)
    return (s.image.tobytes(), s.image.shape, s.boxes.tobytes(), s.classes.tobytes(), s.weights.tobytes(), polys)


def test_compose_replays_from_params():
    s = sample()
    before = snapshot(s)
    t = Compose([RandomFlip(p=0.5), RandomHSV(), RandomApply(RandomFlip("vertical", p=1.0), p=0.5)])
    for seed in range(10):
        out, params = t.sample_and_apply(np.random.default_rng(seed), s)
        assert isinstance(params, ComposeParams) and len(params.params) == 3
        assert params == t.sample_params(np.random.default_rng(seed), s)
        assert snapshot(t.apply(s, params)) == snapshot(out)
        assert snapshot(t(s, np.random.default_rng(seed))) == snapshot(out)
    assert snapshot(s) == before


def test_compose_order_and_manual_chain():
    s = sample()
    t = Compose([RandomFlip(p=1.0), RandomHSV(0.0, 0.0, 0.5)])
    params = ComposeParams((FlipParams(True), HSVParams((1.0, 1.0, 0.5))))
    manual = RandomHSV().apply(RandomFlip().apply(s, FlipParams(True)), HSVParams((1.0, 1.0, 0.5)))
    assert snapshot(t.apply(s, params)) == snapshot(manual)
    # Two horizontal flips cancel.
    twice = Compose([RandomFlip(p=1.0), RandomFlip(p=1.0)])(s, np.random.default_rng(0))
    assert snapshot(twice) == snapshot(s)


def test_params_are_drawn_on_the_intermediate_sample():
    s = sample()
    t = Compose([AlbumentationsTransform(A.RandomCrop(20, 30, p=1.0)), SeeSize()])
    out, params = t.sample_and_apply(np.random.default_rng(1), s)
    assert params.params[1].size == (20, 30)
    assert out.meta["seen"] == params.params[1].draw
    assert snapshot(t.apply(s, t.sample_params(np.random.default_rng(1), s))) == snapshot(out)


def test_random_apply():
    s = sample()
    rng = np.random.default_rng(2)
    inner = RandomFlip(p=1.0)
    never, always = RandomApply(inner, p=0.0), RandomApply(inner, p=1.0)
    assert never.sample_params(rng, s) == RandomApplyParams(False, None)
    assert never(s, rng) is s
    assert always.sample_params(rng, s) == RandomApplyParams(True, FlipParams(True))
    np.testing.assert_array_equal(always(s, rng).image, s.image[:, ::-1])
    half = RandomApply(inner, p=0.25)
    rate = np.mean([half.sample_params(rng, s).applied for _ in range(4000)])
    assert abs(rate - 0.25) < 0.03
    # When not applied, the inner transform draws nothing: the stream moves by one draw.
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    never.sample_params(g1, s)
    g2.random()
    assert g1.random() == g2.random()


def test_validation():
    with pytest.raises(ValueError, match=r"transforms\[1\]"):
        Compose([RandomFlip(), MixUp()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"transforms\[0\]"):
        Compose([A.HorizontalFlip()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="transform"):
        RandomApply(MixUp())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="p"):
        RandomApply(RandomFlip(), p=-0.1)
    with pytest.raises(ValueError, match="params"):
        Compose([RandomFlip()]).apply(sample(), ComposeParams(()))
