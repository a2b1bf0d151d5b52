"""BatchHSV: parity with the per-sample apply_hsv (OpenCV), identity rows, purity, seeds, validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from detaug.batch import Batch, collate
from detaug.batch_transforms import hsv as hsv_module
from detaug.batch_transforms.hsv import (
    BatchHSV,
    BatchHSVParams,
    batch_hsv_luts,
    hsv8_to_rgb,
    jitter_pixels,
    rgb_to_hsv8,
)
from detaug.sample import Sample
from detaug.transforms.photometric import apply_hsv, hsv_luts

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(rng: np.random.Generator, b: int, h: int, w: int, device: str = "cpu") -> tuple[Batch, list[np.ndarray]]:
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(b)]
    samples = [Sample.create(im, [[1, 1, 5, 5]], [i]) for i, im in enumerate(imgs)]
    return collate(samples).to(device), imgs


def _hwc(batch: Batch) -> np.ndarray:
    return batch.images.cpu().permute(0, 2, 3, 1).numpy()


def _cube(n: int) -> np.ndarray:
    """(n, 3) uint8 colours: an evenly strided subset of the 2^24 RGB cube (all of it for n = 2^24)."""
    idx = np.linspace(0, (1 << 24) - 1, n).astype(np.uint32)
    return np.stack([idx >> 16, (idx >> 8) & 255, idx & 255], axis=1).astype(np.uint8)


# ----------------------------------------------------------------------------- colour conversions
def test_rgb_to_hsv8_equals_opencv() -> None:
    rgb = _cube(1 << 20)  # every 16th colour of the cube (the full cube: see the report, 0 mismatches)
    ref = cv2.cvtColor(rgb.reshape(1024, 1024, 3), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    t = torch.from_numpy(rgb).long()
    h, s, v = rgb_to_hsv8(t[:, 0], t[:, 1], t[:, 2])
    np.testing.assert_array_equal(torch.stack([h, s, v], 1).numpy(), ref)


def test_hsv8_to_rgb_equals_opencv_vector_path() -> None:
    # Rows 640 wide: OpenCV's SIMD path does every pixel (no scalar tail), which truncates.
    rng = np.random.default_rng(1)
    hsv = np.stack(
        [rng.integers(0, 180, 640 * 400), rng.integers(0, 256, 640 * 400), rng.integers(0, 256, 640 * 400)], 1
    ).astype(np.uint8)
    ref = cv2.cvtColor(hsv.reshape(400, 640, 3), cv2.COLOR_HSV2RGB).reshape(-1, 3)
    t = torch.from_numpy(hsv).long()
    np.testing.assert_array_equal(hsv8_to_rgb(t[:, 0], t[:, 1], t[:, 2]).T.numpy(), ref)


def test_luts_equal_hsv_luts_row_by_row() -> None:
    rng = np.random.default_rng(2)
    gains = np.concatenate(
        [rng.uniform(0.0, 3.0, (500, 3)), [[1.5, 1, 1], [0.5, 1, 1], [1 + 1 / 180, 1, 1], [0, 0, 0], [2, 2, 2]]]
    )
    got = batch_hsv_luts(torch.from_numpy(gains)).numpy()
    np.testing.assert_array_equal(got, np.stack([hsv_luts(g) for g in gains]))


def test_colour_cube_round_trip_matches_opencv() -> None:
    # Gains that leave every table the identity but are not exactly (1, 1, 1): the
    # round trip runs and must equal OpenCV's RGB -> HSV -> RGB.
    rgb = _cube(1 << 18).reshape(1, 512, 512, 3)
    gains = torch.tensor([[1.0, 1.0, 1.0000001]])
    luts = batch_hsv_luts(gains)[0]
    assert (luts[0, :180] == torch.arange(180)).all() and (luts[1:] == torch.arange(256)).all()
    pix = torch.from_numpy(rgb).permute(0, 3, 1, 2).reshape(1, 3, -1)
    got = jitter_pixels(pix, batch_hsv_luts(gains)).reshape(3, 512, 512).permute(1, 2, 0).numpy()
    ref = cv2.cvtColor(cv2.cvtColor(rgb[0], cv2.COLOR_RGB2HSV), cv2.COLOR_HSV2RGB)
    assert (ref != rgb[0]).any()  # the round trip is lossy, so this is not vacuous
    np.testing.assert_array_equal(got, ref)


# ----------------------------------------------------------------------------- BatchHSV
@pytest.mark.parametrize("device", DEVICES)
def test_parity_with_apply_hsv(device: str) -> None:
    rng = np.random.default_rng(3)
    batch, imgs = _batch(rng, 6, 48, 64, device)
    aug = BatchHSV(0.5, 0.9, 0.6)
    params = aug.sample_params(batch)
    out = _hwc(aug.apply(batch, params))
    gains = params.gains.cpu().double().numpy()
    for i, im in enumerate(imgs):  # the reference is per image by nature
        ref = apply_hsv(im, gains[i])
        diff = np.abs(out[i].astype(np.int16) - ref)
        if device == "cpu":
            np.testing.assert_array_equal(out[i], ref)
        else:  # CUDA's float32 may round differently at a boundary
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_odd_width_within_one_grey_level() -> None:
    # OpenCV's HSV -> RGB rounds (instead of truncating) in the last W mod (SIMD width)
    # pixels of each row (13 of 45 with AVX2), so apply_hsv changes there; within 1.
    rng = np.random.default_rng(4)
    batch, imgs = _batch(rng, 3, 40, 45)
    params = BatchHSVParams(gains=torch.tensor([[1.02, 1.5, 0.7], [0.98, 0.4, 1.3], [1.3, 1.1, 1.1]]))
    out = _hwc(BatchHSV().apply(batch, params))
    for i, im in enumerate(imgs):
        diff = np.abs(out[i].astype(np.int16) - apply_hsv(im, params.gains[i].double().numpy()))
        assert diff.max() <= 1
        assert (diff > 0).any(axis=2).mean() < 0.35


def test_mixed_sizes_padded_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 256, (32, 64, 3), np.uint8), rng.integers(0, 256, (20, 32, 3), np.uint8)
    batch = collate([Sample.create(a), Sample.create(b)])
    params = BatchHSVParams(gains=torch.tensor([[1.1, 0.5, 1.2], [0.9, 1.6, 0.8]]))
    monkeypatch.setattr(hsv_module, "CPU_STEP_PIXELS", 100)  # steps that split rows
    out = _hwc(BatchHSV().apply(batch, params))
    np.testing.assert_array_equal(out[0], apply_hsv(a, params.gains[0].double().numpy()))
    np.testing.assert_array_equal(out[1, :20, :32], apply_hsv(b, params.gains[1].double().numpy()))


def test_identity_rows_exact_and_input_untouched() -> None:
    rng = np.random.default_rng(6)
    batch, imgs = _batch(rng, 3, 16, 32)
    before = batch.images.clone()
    params = BatchHSVParams(gains=torch.tensor([[1.0, 1.0, 1.0], [1.2, 1.3, 0.7], [1.0, 1.0, 1.0]]))
    out = BatchHSV().apply(batch, params)
    assert torch.equal(batch.images, before)
    assert out.images.data_ptr() != batch.images.data_ptr()
    assert out.images.dtype == torch.uint8 and out.images.shape == batch.images.shape
    np.testing.assert_array_equal(_hwc(out)[0], imgs[0])
    np.testing.assert_array_equal(_hwc(out)[2], imgs[2])
    assert not np.array_equal(_hwc(out)[1], imgs[1])
    for name in ("batch_idx", "classes", "boxes", "weights", "sizes"):
        assert torch.equal(getattr(out, name), getattr(batch, name))


def test_sampled_gains_in_range_and_seeded() -> None:
    rng = np.random.default_rng(7)
    batch, _ = _batch(rng, 64, 8, 8)
    gains = BatchHSV(0.1, 0.7, 0.4).sample_params(batch).gains
    assert gains.shape == (64, 3) and gains.dtype == torch.float32
    dev = (gains - 1).abs()
    assert (dev <= torch.tensor([0.1, 0.7, 0.4])).all() and (dev.max(0).values > torch.tensor([0.05, 0.3, 0.2])).all()
    o1 = BatchHSV(generator=torch.Generator().manual_seed(3))(batch).images
    o2 = BatchHSV(generator=torch.Generator().manual_seed(3))(batch).images
    o3 = BatchHSV(generator=torch.Generator().manual_seed(4))(batch).images
    assert torch.equal(o1, o2) and not torch.equal(o1, o3)
    aug = BatchHSV(seed=9)
    assert not torch.equal(aug(batch).images, aug(batch).images)  # the stream advances
    assert torch.equal(BatchHSV(seed=9)(batch).images, BatchHSV(seed=9)(batch).images)


def test_zero_ranges_are_identity() -> None:
    batch, _ = _batch(np.random.default_rng(8), 2, 8, 8)
    assert torch.equal(BatchHSV(0, 0, 0)(batch).images, batch.images)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"hsv_h": -0.1}, "hsv_h"), ({"hsv_s": float("nan")}, "hsv_s"), ({"hsv_v": float("inf")}, "hsv_v"),
     ({"generator": 3}, "generator")],
)
def test_constructor_validation(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        BatchHSV(**kwargs)


def test_apply_validation() -> None:
    batch, _ = _batch(np.random.default_rng(9), 2, 8, 8)
    with pytest.raises(ValueError, match="gains"):
        BatchHSVParams(gains=torch.ones(2, 4))
    with pytest.raises(ValueError, match="gains"):
        BatchHSVParams(gains=torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="params"):
        BatchHSV().apply(batch, BatchHSVParams(gains=torch.ones(3, 3)))
    with pytest.raises(ValueError, match="batch.images"):
        BatchHSV().apply(batch.replace(images=batch.images.float()), BatchHSVParams(gains=torch.ones(2, 3)))
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="generator"):
            BatchHSV(generator=torch.Generator(device="cuda"))(batch)
