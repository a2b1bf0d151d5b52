"""BatchMixer: parity with the per-sample MixUp/CutMix, pixel oracles, properties, sampling.

Params written by mode (NONE / MIXUP / CUTMIX per row, one partner) go through
:func:`mode_params`; MixUp-then-CutMix rows, fill and mixed sizes are tested in
test_mixer_semantics.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug.batch import Batch, collate
from detaug.batch_transforms import kernels as kernels_module
from detaug.batch_transforms.kernels import blend_rows, mixup_weight, paste_rows
from detaug.batch_transforms.mixer import BatchMixer, BatchMixParams
from detaug.batch_transforms.reference import reference_mix
from detaug.batch_transforms.sampling import sample_beta
from detaug.sample import Sample
from detaug.transforms.cutmix import CutMix, CutMixParams
from detaug.transforms.mixup import MixUp, MixUpParams, mixup_pixels

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FIELDS = ("images", "batch_idx", "classes", "boxes", "weights", "sizes")
NONE, MIXUP, CUTMIX = 0, 1, 2  # one mode per row, for params written by hand


def mode_params(perm, mode, lam, rect) -> BatchMixParams:
    """BatchMixParams with one mode per row: MIXUP rows blend with perm[i] (lam[i]),
    CUTMIX rows paste perm[i]'s rect[i] (lam[i] informational)."""
    perm, mode = torch.as_tensor(perm), torch.as_tensor(mode)
    lam, rect = torch.as_tensor(lam, dtype=torch.float32), torch.as_tensor(rect)
    mix, cut = mode == MIXUP, mode == CUTMIX
    return BatchMixParams(mixup=mix, mixup_partner=perm, mixup_lam=torch.where(mix, lam, 1.0), cutmix=cut,
                          cutmix_partner=perm, cutmix_lam=torch.where(cut, lam, 1.0),
                          rect=torch.where(cut[:, None], rect, 0))


def modes(p: BatchMixParams) -> set[tuple[bool, bool]]:
    return set(zip(p.mixup.tolist(), p.cutmix.tolist(), strict=True))


def make_sample(rng: np.random.Generator, h: int, w: int, n: int) -> Sample:
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    x1 = rng.uniform(0, w - 2, n)
    y1 = rng.uniform(0, h - 2, n)
    x2 = np.minimum(x1 + rng.uniform(1, w / 1.5, n), w)
    y2 = np.minimum(y1 + rng.uniform(1, h / 1.5, n), h)
    return Sample.create(
        img, np.stack([x1, y1, x2, y2], 1), rng.integers(0, 80, n), rng.uniform(0.05, 1.0, n), meta={"i": n}
    )


def make_batch(seed: int, b: int = 6, ragged: bool = False, max_objects: int = 6) -> Batch:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(b):
        h, w = (int(rng.integers(12, 40)), int(rng.integers(12, 40))) if ragged else (32, 40)
        samples.append(make_sample(rng, h, w, int(rng.integers(0, max_objects + 1))))
    return collate(samples)


def snapshot(b: Batch) -> dict[str, torch.Tensor]:
    return {f: getattr(b, f).clone() for f in FIELDS}


def assert_same_mix(out: Batch, ref: Batch) -> None:
    """The parity tolerances: pixels within 1 grey level, boxes 1e-4, weights 1e-6, the rest exact."""
    assert out.images.shape == ref.images.shape
    assert (out.images.int() - ref.images.int()).abs().max().item() <= 1
    assert torch.equal(out.batch_idx, ref.batch_idx)
    assert torch.equal(out.classes, ref.classes)
    assert torch.equal(out.sizes, ref.sizes)
    torch.testing.assert_close(out.boxes, ref.boxes, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.weights, ref.weights, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- parity
@pytest.fixture(params=["one step", "many steps"])
def step_bytes(request, monkeypatch):
    """The default image loop step, and a tiny one (8 lines a step, a partial last step)."""
    if request.param == "many steps":
        monkeypatch.setattr(kernels_module, "CPU_STEP_BYTES", 1)
    return request.param


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ragged", [False, True])
def test_parity_with_per_sample_transforms(device, ragged, step_bytes):
    mixer = BatchMixer(mixup=0.4, cutmix=0.5, min_visible=0.25)
    seen = set()
    for seed in range(12):
        batch = make_batch(seed, b=6, ragged=ragged).to(device)
        params = mixer.sample_params(batch)
        seen |= modes(params)
        ref = reference_mix(batch, params, min_visible=mixer.min_visible,
                            weight_by_visibility=mixer.weight_by_visibility)
        assert_same_mix(mixer.apply(batch, params).to("cpu"), ref.to("cpu"))
    assert seen == {(False, False), (True, False), (False, True), (True, True)}  # independent choices


def test_parity_against_direct_transform_calls_on_edge_cases():
    """Rects on the border, covering a whole box, touching box edges; no visibility weighting."""
    rng = np.random.default_rng(7)
    a = Sample.create(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
                      [[0, 0, 10, 20], [12, 2, 18, 8], [20, 0, 30, 10], [5, 5, 25, 15]], [0, 1, 2, 3])
    b = Sample.create(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
                      [[0, 0, 30, 20], [10, 10, 12, 12], [2, 2, 4, 4]], [4, 5, 6], [0.5, 1.0, 0.7])
    c = Sample.create(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    batch = collate([a, b, c, a])
    params = mode_params(
        perm=torch.tensor([1, 0, 3, 2]),
        mode=torch.tensor([CUTMIX, CUTMIX, MIXUP, CUTMIX]),
        lam=torch.tensor([0.3, 0.6, 0.001, 0.5]),
        rect=torch.tensor([[0, 0, 10, 20], [10, 0, 30, 20], [0, 0, 0, 0], [12, 2, 18, 8]]),
    )
    mixer = BatchMixer(min_visible=0.0, weight_by_visibility=False)
    out = mixer.apply(batch, params)
    cut = CutMix(min_visible=0.0, weight_by_visibility=False)
    expected = [
        cut.apply(a, [b], CutMixParams(0.3, (0, 0, 10, 20))),
        cut.apply(b, [a], CutMixParams(0.6, (10, 0, 30, 20))),
        MixUp().apply(c, [a], MixUpParams(0.001)),
        cut.apply(a, [c], CutMixParams(0.5, (12, 2, 18, 8))),
    ]
    assert_same_mix(out, collate(expected))
    # Hand check of row 0: box [0,0,10,20] fully covered -> dropped; the rest of a untouched,
    # then b's objects clipped to the rect (the tiny [10,10,12,12] lies outside it).
    row0 = (out.batch_idx == 0).nonzero().squeeze(1)
    assert out.classes[row0].tolist() == [1, 2, 3, 4, 6]
    assert out.boxes[row0][2].tolist() == [10.0, 5.0, 25.0, 15.0]  # left end cut at rect.x2
    assert out.boxes[row0][3].tolist() == [0.0, 0.0, 10.0, 20.0]


def test_visibility_threshold_is_inclusive():
    a = Sample.create(np.zeros((10, 20, 3), np.uint8), [[0, 0, 10, 10], [10, 0, 20, 10]], [0, 1])
    b = Sample.create(np.zeros((10, 20, 3), np.uint8), [[4, 0, 8, 10], [0, 0, 2, 10]], [2, 3])
    params = mode_params(perm=torch.tensor([1, 0]), mode=torch.tensor([CUTMIX, NONE]),
                            lam=torch.tensor([0.5, 1.0]), rect=torch.tensor([[5, 0, 15, 10], [0, 0, 0, 0]]))
    out = BatchMixer(min_visible=0.5).apply(collate([a, b]), params)
    row0 = out.batch_idx == 0
    # a's boxes keep exactly half (kept, cut at the rect edge); b's [4,0,8,10] shows 3/4, [0,0,2,10] nothing.
    assert out.classes[row0].tolist() == [0, 1, 2]
    assert out.boxes[row0].tolist() == [[0, 0, 5, 10], [15, 0, 20, 10], [5, 0, 8, 10]]
    assert out.weights[row0].tolist() == [0.5, 0.5, 0.75]


def test_mixup_weights_and_order_by_hand():
    a = Sample.create(np.full((8, 8, 3), 200, np.uint8), [[0, 0, 4, 4], [1, 1, 3, 3]], [1, 2], [1.0, 0.5])
    b = Sample.create(np.full((8, 8, 3), 100, np.uint8), [[2, 2, 8, 8]], [3])
    batch = collate([a, b])
    params = mode_params(
        perm=torch.tensor([1, 0]), mode=torch.tensor([MIXUP, MIXUP]), lam=torch.tensor([0.75, 0.5]),
        rect=torch.zeros(2, 4, dtype=torch.int64),
    )
    out = BatchMixer().apply(batch, params)
    assert out.batch_idx.tolist() == [0, 0, 0, 1, 1, 1]
    assert out.classes.tolist() == [1, 2, 3, 3, 1, 2]  # base objects first, then the partner's
    assert out.weights.tolist() == pytest.approx([0.75, 0.375, 0.25, 0.5, 0.5, 0.25])
    assert out.images[0].unique().tolist() == [175] and out.images[1].unique().tolist() == [150]


# ----------------------------------------------------------------------------- pixel oracle
@pytest.mark.parametrize("device", DEVICES)
def test_cutmix_pastes_exactly_the_rectangle(device):
    imgs = [np.full((24, 30, 3), v, np.uint8) for v in (10, 20, 30)]
    batch = collate([Sample.create(i) for i in imgs]).to(device)
    rects = torch.tensor([[3, 4, 17, 9], [0, 0, 30, 24], [29, 23, 30, 24]], device=device)
    params = mode_params(
        perm=torch.tensor([2, 0, 1], device=device), mode=torch.full((3,), CUTMIX, device=device),
        lam=torch.full((3,), 0.5, device=device), rect=rects,
    )
    out = BatchMixer().apply(batch, params).images.cpu()
    for i, (x1, y1, x2, y2) in enumerate(rects.tolist()):
        partner = imgs[[2, 0, 1][i]][0, 0, 0]
        expect = torch.full((3, 24, 30), int(imgs[i][0, 0, 0]), dtype=torch.uint8)
        expect[:, y1:y2, x1:x2] = int(partner)
        assert torch.equal(out[i], expect), i


# ----------------------------------------------------------------------------- kernels
def _edge_lams() -> np.ndarray:
    """lams at the clip limits, on and next to every 1/512 rounding boundary of L, and random."""
    k = np.arange(0, 513, 7)
    near = np.concatenate([k / 512, k / 512 - 1e-6, k / 512 + 1e-6])
    lams = np.concatenate([[1e-3, 1 - 1e-3, 0.5, 0.25, 1 / 3], near, np.random.default_rng(0).uniform(0, 1, 40)])
    return np.clip(lams, 1e-3, 1 - 1e-3).astype(np.float32)


def test_blend_rows_is_within_one_grey_level_for_every_pixel_pair():
    """All 65536 (a, b) pairs x ~270 lams against the per-sample float32 MixUp and the exact value."""
    a, b = (v.ravel() for v in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    src = torch.from_numpy(np.stack([a, b]).astype(np.uint8))
    lams = _edge_lams()
    dst = torch.empty((len(lams), src.shape[1]), dtype=torch.uint8)
    zeros = torch.zeros(len(lams), dtype=torch.int64)
    blend_rows(dst, src, zeros, zeros + 1, mixup_weight(torch.from_numpy(lams)))
    got = dst.numpy().astype(np.int64)
    ref = np.stack([mixup_pixels(src[0].numpy()[None, :, None], src[1].numpy()[None, :, None], float(lam)).ravel()
                    for lam in lams]).astype(np.int64)
    assert np.abs(got - ref).max() <= 1
    exact = lams.astype(np.float64)[:, None] * a + (1 - lams.astype(np.float64))[:, None] * b
    assert np.abs(got - exact).max() <= 0.5 + 255 / 512 + 1e-9  # rounding + lam quantised to 1/256
    assert (got == ref).mean() > 0.8  # usually the very same grey level
    # lam exactly k/256: the integer blend is exact, ties included.
    lam_k = torch.tensor([0.5, 0.25, 0.75, 1 / 256], dtype=torch.float32)
    dk = torch.empty((4, src.shape[1]), dtype=torch.uint8)
    blend_rows(dk, src, zeros[:4], zeros[:4] + 1, mixup_weight(lam_k))
    ref_k = np.stack([mixup_pixels(src[0].numpy()[None, :, None], src[1].numpy()[None, :, None], float(v)).ravel()
                      for v in lam_k])
    assert np.array_equal(dk.numpy(), ref_k)


def test_mixup_weight_range():
    w = mixup_weight(torch.tensor([0.0, 1e-3, 0.5, 0.999, 1.0]))
    assert w.dtype == torch.int16 and w.shape == (5, 1)
    assert w.ravel().tolist() == [0, 0, 128, 256, 256]


@pytest.mark.parametrize("width", [40, 37])  # int64 words / plain bytes
def test_paste_rows_matches_where(width):
    rng = np.random.default_rng(width)
    src = torch.from_numpy(rng.integers(0, 256, (5, 3 * width), dtype=np.uint8))
    mask = torch.from_numpy((rng.random((3, 3 * width)) < 0.5).astype(np.uint8) * 255)
    rows, partners = torch.tensor([4, 0, 2]), torch.tensor([1, 3, 2])
    dst = torch.empty((3, 3 * width), dtype=torch.uint8)
    before = src.clone()
    paste_rows(dst, src, rows, partners, mask)
    assert torch.equal(dst, torch.where(mask.bool(), src[partners], src[rows]))
    assert torch.equal(src, before)


@pytest.mark.parametrize("width", [40, 37])
def test_cutmix_rects_on_edges_and_empty(width, step_bytes):
    """Rectangles covering everything, one corner pixel, full-width lines, touching each edge,
    and an empty one on a CUTMIX row; pixel oracle per image, with the mixed rows interleaved."""
    h = 21
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (h, width, 3), dtype=np.uint8) for _ in range(8)]
    batch = collate([Sample.create(i) for i in imgs])
    rects = [[0, 0, width, h], [width - 1, h - 1, width, h], [0, 5, width, 6], [0, 0, 1, h],
             [3, 0, 9, 4], [width - 5, 2, width, h], [0, 0, 0, 0], [0, 0, 0, 0]]
    perm = [3, 0, 1, 2, 7, 4, 5, 6]
    mode = [CUTMIX] * 7 + [MIXUP]
    params = mode_params(perm=torch.tensor(perm), mode=torch.tensor(mode),
                            lam=torch.tensor([0.5] * 7 + [0.3]), rect=torch.tensor(rects))
    out = BatchMixer().apply(batch, params).images
    for i, (x1, y1, x2, y2) in enumerate(rects[:7]):
        expect = imgs[i].copy()
        expect[y1:y2, x1:x2] = imgs[perm[i]][y1:y2, x1:x2]
        assert torch.equal(out[i], torch.from_numpy(expect).permute(2, 0, 1)), i
    mixed = mixup_pixels(imgs[7], imgs[perm[7]], 0.3)
    assert np.abs(out[7].permute(1, 2, 0).numpy().astype(int) - mixed).max() <= 1


# ----------------------------------------------------------------------------- properties
@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.booleans(), st.sampled_from([(0.5, 0.5), (1.0, 0.0), (0.0, 1.0)]))
@settings(max_examples=25, deadline=None)
def test_output_properties(seed, b, ragged, probs):
    batch = make_batch(seed, b=b, ragged=ragged, max_objects=4)
    before = snapshot(batch)
    mixer = BatchMixer(mixup=probs[0], cutmix=probs[1], seed=seed)
    params = mixer.sample_params(batch)
    out = mixer.apply(batch, params)
    for f, t in before.items():  # nothing of the input modified
        assert torch.equal(getattr(batch, f), t), f
    assert out.images.data_ptr() != batch.images.data_ptr()
    if out.num_objects:
        bi = out.batch_idx
        assert (bi >= 0).all() and (bi < b).all() and (bi[1:] >= bi[:-1]).all()
        hw = out.sizes[bi].float()
        x1, y1, x2, y2 = out.boxes.unbind(1)
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= hw[:, 1]).all() and (y2 <= hw[:, 0]).all()
        assert (x2 > x1).all() and (y2 > y1).all()
        assert (out.weights > 0).all() and (out.weights <= 1).all()
    assert (out.sizes <= torch.tensor(batch.shape)).all()
    # Objects never appear from nowhere: per image at most own + partner's.
    cnt_in, cnt_out = batch.counts(), out.counts()
    bound = cnt_in + cnt_in[params.mixup_partner] * params.mixup + cnt_in[params.cutmix_partner] * params.cutmix
    assert (cnt_out <= bound).all()


def test_no_mixing_is_the_identity():
    batch = make_batch(3)
    out = BatchMixer(mixup=0.0, cutmix=0.0)(batch)
    for f in FIELDS:
        assert torch.equal(getattr(out, f), getattr(batch, f)), f
    assert out.images.data_ptr() != batch.images.data_ptr()


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_float_output(dtype):
    batch = make_batch(4)
    params = BatchMixer(mixup=0.5, cutmix=0.5).sample_params(batch)
    u8 = BatchMixer().apply(batch, params)
    fl = BatchMixer(output_dtype=dtype).apply(batch, params)
    assert fl.images.dtype == dtype
    assert fl.images.min() >= 0 and fl.images.max() <= 1
    # The float MixUp rows are exact (unrounded); the uint8 ones within 1 grey level of them
    # (blend_rows: |L / 256 - lam| * 255 + 0.5 < 1). Every other row is equal up to the dtype.
    tol = 1.0 / 255 + (1e-3 if dtype == torch.float16 else 1e-6)
    assert (fl.images.float() - u8.images.float() / 255).abs().max().item() <= tol
    assert torch.equal(fl.boxes, u8.boxes) and torch.equal(fl.weights, u8.weights)


# ----------------------------------------------------------------------------- sampling
def test_sample_params_modes_pairing_and_reproducibility():
    batch = make_batch(5, b=16)
    mixer = BatchMixer(mixup=0.3, cutmix=0.5, seed=11)
    counts = np.zeros(4)  # none, mixup only, cutmix only, both
    for _ in range(60):
        p = mixer.sample_params(batch)
        for perm in (p.mixup_partner, p.cutmix_partner):
            assert sorted(perm.tolist()) == list(range(16))
            assert (perm != torch.arange(16)).all()  # nobody is their own partner
        mix, cut = p.mixup, p.cutmix
        counts += np.bincount((mix.long() + 2 * cut.long()).numpy(), minlength=4)
        assert ((p.mixup_lam[mix] >= 1e-3) & (p.mixup_lam[mix] <= 1 - 1e-3)).all()
        assert (p.mixup_lam[~mix] == 1).all() and (p.cutmix_lam[~cut] == 1).all() and (p.rect[~cut] == 0).all()
        r = p.rect[cut]
        assert ((r[:, 2] > r[:, 0]) & (r[:, 3] > r[:, 1]) & (r[:, 0] >= 0) & (r[:, 2] <= 40) & (r[:, 3] <= 32)).all()
    freq = counts / counts.sum()
    # Independent, as in MixDataset: P(mixup) = 0.3, P(cutmix) = 0.5, P(both) = 0.15.
    assert abs(freq[1] + freq[3] - 0.3) < 0.05 and abs(freq[2] + freq[3] - 0.5) < 0.06
    assert abs(freq[3] - 0.15) < 0.04
    fields = ("mixup", "mixup_partner", "mixup_lam", "cutmix", "cutmix_partner", "cutmix_lam", "rect")
    a = BatchMixer(mixup=0.3, cutmix=0.5, seed=11).sample_params(batch)
    b = BatchMixer(mixup=0.3, cutmix=0.5, seed=11).sample_params(batch)
    c = BatchMixer(mixup=0.3, cutmix=0.5, generator=torch.Generator().manual_seed(12)).sample_params(batch)
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in fields)
    assert not all(torch.equal(getattr(a, f), getattr(c, f)) for f in fields)


def test_cutmix_rect_area_follows_lam():
    batch = make_batch(6, b=64)
    p = BatchMixer(cutmix=1.0, cutmix_alpha=2.0).sample_params(batch)
    r, lam = p.rect.float(), p.cutmix_lam
    area = (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1]) / (32 * 40)
    assert p.cutmix.float().mean() > 0.9  # only rectangles rounded to nothing are dropped
    assert (area <= (1 - lam) + 0.1).all()  # clipped to the image, rounding of one pixel per edge


def test_single_image_batch_is_left_alone():
    batch = make_batch(8, b=1)
    p = BatchMixer(mixup=1.0, cutmix=1.0).sample_params(batch)
    assert p.mixup.tolist() == [False] and p.cutmix.tolist() == [False]


@pytest.mark.parametrize(("alpha", "beta"), [(1.5, 1.5), (0.4, 2.0), (32.0, 32.0)])
def test_sample_beta_moments(alpha, beta):
    x = sample_beta(alpha, beta, 40000, torch.Generator().manual_seed(1), "cpu").double()
    mean = alpha / (alpha + beta)
    var = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
    assert abs(x.mean().item() - mean) < 0.01
    assert abs(x.var().item() - var) < 0.1 * var + 1e-4
    assert ((x >= 0) & (x <= 1)).all()


def test_generator_on_another_device_is_rejected():
    batch = make_batch(9).to("meta")
    with pytest.raises(ValueError, match="generator"):
        BatchMixer(mixup=0.5, generator=torch.Generator()).sample_params(batch)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mixup": -0.1}, "mixup"),
        ({"cutmix": 1.5}, "cutmix"),
        ({"mixup_alpha": 0.0}, "mixup_alpha"),
        ({"mixup_beta": -1.0}, "mixup_beta"),
        ({"cutmix_alpha": float("nan")}, "cutmix_alpha"),
        ({"min_visible": 1.5}, "min_visible"),
        ({"output_dtype": torch.int32}, "output_dtype"),
        ({"generator": 3}, "generator"),
        ({"fill": 256}, "fill"),
        ({"fill": (1, 2)}, "fill"),
    ],
)
def test_constructor_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BatchMixer(**kwargs)


def test_apply_checks_params():
    batch = make_batch(10, b=3)
    p = BatchMixer(mixup=1.0).sample_params(make_batch(10, b=4))
    with pytest.raises(ValueError, match="params"):
        BatchMixer().apply(batch, p)
    with pytest.raises(ValueError, match="cutmix"):
        BatchMixParams(mixup=torch.zeros(3, dtype=torch.bool), mixup_partner=torch.arange(3),
                       mixup_lam=torch.ones(3), cutmix=torch.zeros(2, dtype=torch.bool),
                       cutmix_partner=torch.arange(3), cutmix_lam=torch.ones(3),
                       rect=torch.zeros(3, 4, dtype=torch.int64))


def test_reference_mix_is_the_per_sample_loop():
    """reference_mix's own contract, checked against explicit per-sample calls."""
    batch = make_batch(12, b=3)
    p = mode_params(perm=torch.tensor([2, 0, 1]), mode=torch.tensor([MIXUP, NONE, CUTMIX]),
                       lam=torch.tensor([0.4, 1.0, 0.5]), rect=torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [5, 5, 20, 30]]))
    ref = reference_mix(batch, p, min_visible=0.3)
    rows = [
        Sample.create(batch.images[i].permute(1, 2, 0).numpy(), batch.boxes[batch.batch_idx == i].numpy(),
                      batch.classes[batch.batch_idx == i].numpy(), batch.weights[batch.batch_idx == i].numpy())
        for i in range(3)
    ]
    expected = collate([
        MixUp().apply(rows[0], [rows[2]], MixUpParams(0.4)),
        rows[1],
        CutMix(min_visible=0.3).apply(rows[2], [rows[1]], CutMixParams(0.5, (5, 5, 20, 30))),
    ])
    for f in FIELDS:
        assert torch.equal(getattr(ref, f), getattr(expected, f)), f
