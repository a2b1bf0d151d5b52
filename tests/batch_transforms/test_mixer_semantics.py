"""BatchMixer semantics shared with the per-sample path: one label rule, independent
MixUp-then-CutMix, mixed image sizes (issue 8 item 10), and the fill value."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detaug.batch import Batch, collate
from detaug.batch_transforms.mixer import BatchMixer, BatchMixParams
from detaug.batch_transforms.reference import batch_samples, reference_mix
from detaug.sample import Sample
from detaug.transforms.cutmix import cutmix_labels
from detaug.transforms.mixup import mixup_labels, mixup_pixels


def make_batch(seed: int, b: int, ragged: bool, fill=114, max_objects: int = 6) -> Batch:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(b):
        h, w = (int(rng.integers(8, 40)), int(rng.integers(8, 40))) if ragged else (24, 32)
        n = int(rng.integers(0, max_objects + 1))
        x1, y1 = rng.uniform(0, w - 2, n), rng.uniform(0, h - 2, n)
        x2 = np.minimum(x1 + rng.uniform(1, w / 1.5, n), w)
        y2 = np.minimum(y1 + rng.uniform(1, h / 1.5, n), h)
        samples.append(Sample.create(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), np.stack([x1, y1, x2, y2], 1),
                                     rng.integers(0, 80, n), rng.uniform(0.05, 1.0, n)))
    return collate(samples, fill=fill)


def expected_labels(batch: Batch, p: BatchMixParams, min_visible: float, weight_by_visibility: bool):
    """Row by row, the per-sample label rules called directly."""
    rows = batch_samples(batch)
    out = []
    for i, s in enumerate(rows):
        lab = s.labels
        if p.mixup[i]:
            lab = mixup_labels(lab, rows[int(p.mixup_partner[i])], float(p.mixup_lam[i]))
        if p.cutmix[i]:
            lab = cutmix_labels(lab, rows[int(p.cutmix_partner[i])], tuple(p.rect[i].tolist()), min_visible,
                                weight_by_visibility)
        out.append(lab)
    return out


# ----------------------------------------------------------------------------- one label rule
@given(st.integers(0, 2**31 - 1), st.integers(1, 7), st.booleans(), st.floats(0, 1), st.floats(0, 1),
       st.floats(0, 1), st.booleans())
@settings(max_examples=40, deadline=None)
def test_labels_are_the_per_sample_label_rules(seed, b, ragged, p_mix, p_cut, min_visible, wbv):
    batch = make_batch(seed, b, ragged)
    mixer = BatchMixer(mixup=p_mix, cutmix=p_cut, min_visible=min_visible, weight_by_visibility=wbv, seed=seed)
    params = mixer.sample_params(batch)
    out = mixer.apply(batch, params)
    for i, lab in enumerate(expected_labels(batch, params, min_visible, wbv)):
        sel = out.batch_idx == i
        np.testing.assert_array_equal(out.boxes[sel].numpy(), lab.boxes)  # identical, not close
        np.testing.assert_array_equal(out.classes[sel].numpy(), lab.classes)
        np.testing.assert_array_equal(out.weights[sel].numpy(), lab.weights)
        assert tuple(out.sizes[i].tolist()) == lab.size


# ----------------------------------------------------------------------------- mixup and cutmix
def test_mixup_then_cutmix_on_the_same_image():
    """Both on every row (independent, as in MixDataset): labels and pixels of CutMix over the MixUp."""
    batch = make_batch(1, 5, ragged=False)
    mixer = BatchMixer(mixup=1.0, cutmix=1.0, cutmix_alpha=2.0, seed=3)
    p = mixer.sample_params(batch)
    assert p.mixup.all() and p.cutmix.sum() >= 4
    out = mixer.apply(batch, p)
    rows = batch_samples(batch)
    for i in np.flatnonzero(p.cutmix.numpy()):
        a, b, c = rows[i], rows[int(p.mixup_partner[i])], rows[int(p.cutmix_partner[i])]
        x1, y1, x2, y2 = p.rect[i].tolist()
        lab = cutmix_labels(mixup_labels(a, b, float(p.mixup_lam[i])), c, (x1, y1, x2, y2), 0.3, True)
        sel = out.batch_idx == i
        np.testing.assert_array_equal(out.classes[sel].numpy(), lab.classes)
        img = out.images[i].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(img[y1:y2, x1:x2], c.image[y1:y2, x1:x2])  # the paste is on top
        blend = mixup_pixels(a.image, b.image, float(p.mixup_lam[i])).astype(int)
        outside = np.ones(img.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        assert np.abs(img[outside].astype(int) - blend[outside]).max() <= 1


def test_probabilities_are_not_exclusive():
    BatchMixer(mixup=0.7, cutmix=0.5)  # used to be refused (mixup + cutmix <= 1)
    BatchMixer(mixup=1.0, cutmix=1.0)


# ----------------------------------------------------------------------------- mixed sizes
def test_cutmix_never_pastes_the_partners_padding():
    """Issue 8 item 10: a small partner's grey padding was pasted inside a big image."""
    big = Sample.create(np.full((40, 40, 3), 10, np.uint8), [[2, 2, 38, 38]], [0])
    small = Sample.create(np.full((16, 16, 3), 20, np.uint8), [[0, 0, 8, 8]], [1])
    batch = collate([big, small])
    mixer = BatchMixer(cutmix=1.0, seed=0)
    pasted = 0
    for _ in range(50):
        p = mixer.sample_params(batch)
        out = mixer.apply(batch, p)
        valid = out.images[0, :, :40, :40]
        assert not (valid == 114).any()  # only the partner's own pixels (20) or the base's (10)
        assert set(valid.unique().tolist()) <= {10, 20}
        if p.cutmix[0]:
            x1, y1, x2, y2 = p.rect[0].tolist()
            assert x2 <= 16 and y2 <= 16  # clipped to the partner
            pasted += 1
            ref = reference_mix(batch, p)
            assert torch.equal(out.images, ref.images) and torch.equal(out.boxes, ref.boxes)
    assert pasted > 10


def test_hand_made_rect_outside_the_partner_is_refused():
    big = Sample.create(np.full((40, 40, 3), 10, np.uint8))
    small = Sample.create(np.full((16, 16, 3), 20, np.uint8))
    p = BatchMixParams.create(2, cutmix={0: (1, 0.5, (0, 0, 30, 30))})
    with pytest.raises(ValueError, match=r"params\.rect.*partner"):
        BatchMixer().apply(collate([big, small]), p)
    with pytest.raises(ValueError, match=r"params\.rect"):
        BatchMixer().apply(collate([small, big]), BatchMixParams.create(2, cutmix={0: (1, 0.5, (0, 0, 30, 30))}))
    with pytest.raises(ValueError, match=r"params\.mixup_partner"):
        BatchMixer().apply(collate([small, big]), BatchMixParams.create(2, mixup={0: (2, 0.5)}))


# ----------------------------------------------------------------------------- fill
@pytest.mark.parametrize("fill", [0, (10, 200, 30)])
def test_custom_fill_reaches_collate_and_the_mixer(fill):
    batch = make_batch(5, 6, ragged=True, fill=fill)
    rgb = (fill,) * 3 if isinstance(fill, int) else fill
    assert batch.fill == rgb and batch.to("cpu").fill == rgb and pickle.loads(pickle.dumps(batch)).fill == rgb
    with pytest.raises(ValueError, match="fill"):
        BatchMixer(mixup=0.5)(batch)  # the default fill (114) does not match this batch's padding
    mixer = BatchMixer(mixup=0.8, cutmix=0.5, fill=fill, seed=1)
    for _ in range(4):
        p = mixer.sample_params(batch)
        out = mixer.apply(batch, p)
        ref = reference_mix(batch, p)  # MixUp canvases of the batch's fill
        assert (out.images.int() - ref.images.int()).abs().max() <= 1
        assert torch.equal(out.boxes, ref.boxes) and torch.equal(out.sizes, ref.sizes)
        assert out.fill == rgb
        for i, (h, w) in enumerate(out.sizes.tolist()):  # padding outside the valid size stays the fill
            pad = torch.ones(out.images.shape[2:], dtype=torch.bool)
            pad[:h, :w] = False
            assert (out.images[i][:, pad] == torch.tensor(rgb, dtype=torch.uint8)[:, None]).all()
