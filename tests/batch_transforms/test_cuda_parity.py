"""CPU / CUDA parity of the batch transforms (run on a GPU machine; skipped without CUDA).

Same params on both devices: the mixer's labels are computed by the same
numpy rules (identical), its pixels by the same integer kernels (identical);
HSV within 1 grey level (CUDA's float32 HSV -> RGB may round differently at a
boundary, rarely). Replay: the same seed gives the same draws on a device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detaug.batch import collate
from detaug.batch_transforms.hsv import BatchHSV
from detaug.batch_transforms.mixer import BatchMixer
from detaug.batch_transforms.reference import reference_mix
from detaug.sample import Sample

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)"),
]
FIELDS = ("images", "batch_idx", "classes", "boxes", "weights", "sizes")


def make_batch(seed: int, b: int = 8, ragged: bool = True, fill=114):
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(b):
        h, w = (int(rng.integers(16, 64)), int(rng.integers(16, 64))) if ragged else (48, 64)
        n = int(rng.integers(0, 8))
        x1, y1 = rng.uniform(0, w - 2, n), rng.uniform(0, h - 2, n)
        x2, y2 = np.minimum(x1 + rng.uniform(1, w / 2, n), w), np.minimum(y1 + rng.uniform(1, h / 2, n), h)
        samples.append(Sample.create(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), np.stack([x1, y1, x2, y2], 1),
                                     rng.integers(0, 80, n), rng.uniform(0.05, 1.0, n)))
    return collate(samples, fill=fill)


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("output_dtype", [None, torch.float32])
def test_mixer_cpu_cuda_parity(ragged, output_dtype):
    for seed in range(6):
        batch = make_batch(seed, ragged=ragged)
        mixer = BatchMixer(mixup=0.6, cutmix=0.6, output_dtype=output_dtype)
        params = mixer.sample_params(batch.to("cuda"))
        out_gpu = mixer.apply(batch.to("cuda"), params).to("cpu")
        out_cpu = mixer.apply(batch, params.to("cpu"))
        for f in FIELDS[1:]:
            assert torch.equal(getattr(out_gpu, f), getattr(out_cpu, f)), f
        if output_dtype is None:
            assert torch.equal(out_gpu.images, out_cpu.images)
            ref = reference_mix(batch, params.to("cpu"))
            assert (out_gpu.images.int() - ref.images.int()).abs().max() <= 1
        else:
            torch.testing.assert_close(out_gpu.images, out_cpu.images, atol=1e-6, rtol=0)


def test_mixer_custom_fill_on_cuda():
    batch = make_batch(3, fill=(10, 20, 30))
    mixer = BatchMixer(mixup=1.0, cutmix=0.5, fill=(10, 20, 30), seed=2)
    params = mixer.sample_params(batch.to("cuda"))
    out = mixer.apply(batch.to("cuda"), params).to("cpu")
    ref = reference_mix(batch, params.to("cpu"))
    assert (out.images.int() - ref.images.int()).abs().max() <= 1 and torch.equal(out.boxes, ref.boxes)


def test_mixer_replay_on_cuda():
    batch = make_batch(4).to("cuda")
    a = BatchMixer(mixup=0.5, cutmix=0.5, generator=torch.Generator("cuda").manual_seed(5))(batch)
    b = BatchMixer(mixup=0.5, cutmix=0.5, generator=torch.Generator("cuda").manual_seed(5))(batch)
    for f in FIELDS:
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    with pytest.raises(ValueError, match="generator"):
        BatchMixer(mixup=0.5, generator=torch.Generator())(batch)


def test_hsv_cpu_cuda_parity():
    batch = make_batch(5, ragged=False)
    aug = BatchHSV(0.5, 0.9, 0.6)
    params = aug.sample_params(batch.to("cuda"))
    gpu = aug.apply(batch.to("cuda"), params).images.cpu()
    cpu = aug.apply(batch, params.to("cpu")).images
    diff = (gpu.int() - cpu.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3
    with pytest.raises(ValueError, match="generator"):
        BatchHSV(generator=torch.Generator())(batch.to("cuda"))
