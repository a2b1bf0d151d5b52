"""The example detector (``examples/``): its pieces against references, a short real training, the CLI.

- :func:`~examples.assigner.assign` against a float64 loop reference on random boxes;
- :func:`~examples.nms.nms` against a loop greedy NMS (the package's doctests
  run with the suite: ``examples`` is in setup.cfg's testpaths);
- the weighted loss: the classification target of every assigned cell, read
  back from the gradient, is exactly its object's weight; the box term scales
  by the weight; :func:`~examples.assigner.pad_targets` matches
  :func:`detaug.loss.padded_gt_weights`;
- seeded init (no global RNG);
- the batches: every pass over the loader is the next epoch (keys from
  ``EpochSampler``), and :func:`~examples.train.mixed_batches` refuses a
  batch of another epoch;
- end to end: a short training on the bundled shapes set (MixDataset in a
  DataLoader worker, MixUp and CutMix on the batch, the weighted loss) whose
  loss must fall and whose model must prefer each image's own labels to
  another image's; the CLI writing its predictions PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detaug import BatchMixer, YoloDataset, collate
from detaug.batch_transforms import DevicePainter
from detaug.loss import padded_gt_weights
from detaug.sample import Sample
from examples.assigner import assign, pad_targets
from examples.detector import TinyDetector, decode, init_weights, make_anchors, pad_to_stride
from examples.loss import detection_loss, giou
from examples.nms import nms
from examples.train import build_dataset, build_loader, mixed_batches, train
from tools.train_example import main

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "datasets" / "shapes" / "shapes.yaml"


@pytest.fixture(autouse=True)
def one_thread():
    """Torch on one thread: the tensors here are small, and the training runs beside one DataLoader
    worker, which keeps two cores busy and none oversubscribed (OpenMP threads that share a core
    with busy processes spin, and a loaded machine then runs them many times slower). No result
    depends on it."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _random_boxes(rng: np.random.Generator, n: int, side: float) -> np.ndarray:
    wh = rng.uniform(1.0, side * 0.8, (n, 2))
    xy = rng.uniform(0.0, 1.0, (n, 2)) * (side - wh)
    return np.concatenate([xy, xy + wh], 1)


# ----------------------------------------------------------------------------- assignment
def _assign_reference(points, strides, boxes, mask, radius):
    """Loop reference of the centre-sampling rule, float64."""
    points = points.double().numpy()
    strides = strides.double().numpy()
    boxes = boxes.double().numpy()
    mask = mask.numpy()
    b, g = mask.shape
    a = len(points)
    fg = np.zeros((b, a), bool)
    idx = np.zeros((b, a), np.int64)
    for i in range(b):
        cand = np.zeros((g, a), bool)
        for j in range(g):
            if not mask[i, j]:
                continue
            x1, y1, x2, y2 = boxes[i, j]
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            best, best_d = -1, math.inf
            for k in range(a):
                px, py = points[k]
                r = radius * strides[k]
                if x1 < px < x2 and y1 < py < y2 and abs(px - cx) < r and abs(py - cy) < r:
                    cand[j, k] = True
                d = (px - cx) ** 2 + (py - cy) ** 2
                if d < best_d:
                    best, best_d = k, d
            cand[j, best] = True
        area = (boxes[i, :, 2] - boxes[i, :, 0]) * (boxes[i, :, 3] - boxes[i, :, 1])
        for k in range(a):
            js = [j for j in range(g) if cand[j, k]]
            if js:
                fg[i, k] = True
                idx[i, k] = min(js, key=lambda j: (area[j], j))
    return fg, idx


@pytest.mark.parametrize("seed", range(4))
def test_assign_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    points, strides = make_anchors(64, 96, "cpu")
    b, g = 3, 6
    boxes = np.stack([_random_boxes(rng, g, 64.0) for _ in range(b)]).astype(np.float32)
    mask = rng.uniform(size=(b, g)) < 0.8
    mask[0] = False  # an image with no objects
    fg, idx = assign(points, strides, torch.from_numpy(boxes), torch.from_numpy(mask), radius=1.5)
    ref_fg, ref_idx = _assign_reference(points, strides, torch.from_numpy(boxes), torch.from_numpy(mask), 1.5)
    np.testing.assert_array_equal(fg.numpy(), ref_fg)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    assert not fg[0].any()
    # every real box owns at least one cell unless a smaller box took it
    for i in range(1, b):
        assert set(idx[i][fg[i]].tolist()) <= set(np.flatnonzero(mask[i]).tolist())


def test_assign_hand_example():
    points, strides = make_anchors(64, 64, "cpu")
    big = [0.0, 0.0, 64.0, 64.0]
    small = [8.0, 8.0, 24.0, 24.0]
    tiny = [45.0, 45.0, 47.0, 47.0]  # no cell centre inside it
    boxes = torch.tensor([[big, small, tiny]])
    fg, idx = assign(points, strides, boxes, torch.ones(1, 3, dtype=torch.bool), radius=2.5)
    at = {(float(p[0]), float(p[1]), float(s)): (bool(f), int(i))
          for p, s, f, i in zip(points, strides, fg[0], idx[0], strict=True)}
    assert at[(12.0, 12.0, 8.0)] == (True, 1)  # inside the small box: the smaller box wins
    assert at[(20.0, 20.0, 8.0)] == (True, 1)
    assert at[(44.0, 44.0, 8.0)] == (True, 2)  # nearest cell to the tiny box's centre
    assert at[(28.0, 28.0, 8.0)] == (True, 0)  # big box, within 2.5 strides of its centre (32, 32)
    assert at[(4.0, 4.0, 8.0)] == (False, 0)  # inside the big box but 28 px from its centre
    assert at[(24.0, 24.0, 16.0)] == (True, 0)  # stride-16 cell: radius 40 px
    assert int((fg[0] & (idx[0] == 2)).sum()) == 1  # the tiny box has exactly its nearest cell


# ----------------------------------------------------------------------------- NMS
def _greedy_nms(boxes, scores, classes, thr):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    kept = []
    for i in order:
        ok = True
        for j in kept:
            if classes[i] != classes[j]:
                continue
            a, b = boxes[i].double(), boxes[j].double()
            iw = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
            ih = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
            inter = iw * ih
            union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
            if inter / union > thr:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_nms_is_exact_greedy(seed):
    rng = np.random.default_rng(seed)
    n = 60
    centres = rng.uniform(20, 80, (4, 2))[rng.integers(0, 4, n)]  # clusters, so boxes overlap a lot
    wh = rng.uniform(10, 30, (n, 2))
    jitter = rng.normal(0, 3, (n, 2))
    boxes = torch.from_numpy(np.concatenate([centres + jitter - wh / 2, centres + jitter + wh / 2], 1)).float()
    scores = torch.from_numpy(rng.permutation(n) / n).float()  # distinct scores
    classes = torch.from_numpy(rng.integers(0, 2, n))
    for thr in (0.3, 0.5, 0.7):
        got = nms(boxes, scores, classes, thr).tolist()
        assert got == _greedy_nms(boxes, scores, classes, thr)
    assert nms(boxes[:0], scores[:0], classes[:0], 0.5).numel() == 0


# ----------------------------------------------------------------------------- weighted loss
def _one_object_batch(weight: float):
    img = np.zeros((64, 64, 3), np.uint8)
    s = Sample.create(img, boxes=[[10.0, 14.0, 40.0, 38.0]], classes=[3], weights=[weight])
    e = Sample.create(img, boxes=[[30.0, 30.0, 60.0, 62.0]], classes=[1], weights=[1.0])
    return collate([s, e])


@pytest.mark.parametrize("w", [1.0, 0.6, 0.25])
def test_object_weight_is_the_cls_target_and_scales_the_box_term(w):
    batch = _one_object_batch(w)
    points, strides = make_anchors(64, 64, "cpu")
    g = torch.Generator().manual_seed(0)
    a = points.shape[0]
    logits = torch.randn((2, a, 5), generator=g, requires_grad=True)
    dist = torch.rand((2, a, 4), generator=g) * 20 + 1
    targets = pad_targets(batch)
    out = detection_loss(logits, dist, points, strides, targets)
    # cls loss = sum of BCE / n_fg  ->  d/dlogit = (sigmoid - target) / n_fg: read the targets back.
    (grad,) = torch.autograd.grad(out.total, logits)
    fg, idx = assign(points, strides, targets.boxes, targets.mask)
    n = int(fg.sum())
    assert n == out.num_fg > 2
    target = torch.sigmoid(logits.detach()) - grad * n
    expected = torch.zeros_like(target)
    expected[0, fg[0], 3] = w
    expected[1, fg[1], 1] = 1.0
    torch.testing.assert_close(target, expected, atol=1e-5, rtol=0)

    # box term: image 0's cells contribute w * (1 - GIoU), image 1's 1 * (1 - GIoU)
    ref = detection_loss(logits.detach(), dist, points, strides, pad_targets(_one_object_batch(1.0)))
    boxes = decode(points, dist)
    gi0 = giou(boxes[0][fg[0]], targets.boxes[0, 0].expand(int(fg[0].sum()), 4))
    gi1 = giou(boxes[1][fg[1]], targets.boxes[1, 0].expand(int(fg[1].sum()), 4))
    expect_box = (w * (1 - gi0).sum() + (1 - gi1).sum()) / n
    torch.testing.assert_close(out.box, expect_box)
    if w < 1:
        assert out.box < ref.box


def test_pad_targets_matches_padded_gt_weights():
    rng = np.random.default_rng(3)
    samples = []
    for k in (3, 0, 5, 1):
        samples.append(Sample.create(np.zeros((32, 48, 3), np.uint8), boxes=_random_boxes(rng, k, 32.0),
                                     classes=rng.integers(0, 5, k), weights=rng.uniform(0.1, 1.0, k)))
    batch = collate(samples)
    t = pad_targets(batch)
    assert t.boxes.shape == (4, 5, 4)
    torch.testing.assert_close(t.weights, padded_gt_weights(batch.batch_idx, batch.weights, 4))
    np.testing.assert_array_equal(t.mask.numpy(), (t.weights > 0).numpy())
    for i, s in enumerate(samples):
        k = s.num_objects
        np.testing.assert_array_equal(t.boxes[i, :k].numpy(), s.boxes)
        np.testing.assert_array_equal(t.classes[i, :k].numpy(), s.classes)
        assert not t.mask[i, k:].any()


def test_init_is_seeded_without_global_rng():
    def params(seed):
        m = init_weights(TinyDetector(5, width=8), torch.Generator().manual_seed(seed))
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    a, b, c = params(1), params(1), params(2)
    assert torch.equal(a, b)  # the global RNG advanced between the two builds: init does not use it
    assert not torch.equal(a, c)
    m = TinyDetector(5, width=8)
    logits, dist = m(torch.zeros(2, 3, 64, 96))
    a_cells = 64 * 96 // 64 + 64 * 96 // 256
    assert logits.shape == (2, a_cells, 5) and dist.shape == (2, a_cells, 4)
    assert (dist > 0).all()
    with pytest.raises(ValueError, match="multiples of 16"):
        m(torch.zeros(1, 3, 40, 64))


# ----------------------------------------------------------------------------- end to end
class _StuckInEpoch0(torch.utils.data.Dataset):
    """Serves epoch 0's sample whatever key it is asked for (a worker that missed the epoch)."""

    def __init__(self, ds):
        self.ds, self.seed = ds, ds.seed

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key):
        return self.ds[(0, key[1])]


def test_every_pass_is_the_next_epoch_and_a_stale_batch_is_refused():
    ds = build_dataset(SHAPES, img_size=32, seed=0)
    loader = build_loader(ds, batch_size=12, workers=0)  # 24 images: 2 batches an epoch
    mixer = BatchMixer(mixup=0.5, cutmix=0.5, output_dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    it = mixed_batches(loader, mixer, torch.device("cpu"))
    batches = [next(it) for _ in range(3)]
    assert [sorted({m["epoch"] for m in b.metas}) for b in batches] == [[0], [0], [1]]
    assert batches[0].images.dtype == torch.float32 and batches[0].images.shape == (12, 3, 32, 32)
    assert loader.sampler.epoch == 2  # the third batch started epoch 1
    assert not torch.equal(batches[0].images, batches[2].images)  # a new augmentation stream, not a replay

    stale = mixed_batches(build_loader(_StuckInEpoch0(ds), batch_size=12, workers=0), mixer, torch.device("cpu"))
    next(stale), next(stale)
    with pytest.raises(RuntimeError, match="epochs \\[0\\] during epoch 1"):
        next(stale)


def test_device_painting_feeds_the_same_batches():
    """paint="device": workers plan, the DevicePainter paints on the device; the mixer sees the same images."""
    mixer = BatchMixer(mixup=0.0, cutmix=0.0, generator=torch.Generator().manual_seed(0))  # pass-through
    got = {}
    for paint in ("opencv", "device"):
        ds = build_dataset(SHAPES, img_size=64, seed=3, paint=paint)
        it = mixed_batches(build_loader(ds, batch_size=8, workers=0), mixer, torch.device("cpu"),
                           DevicePainter() if paint == "device" else None)
        got[paint] = [next(it) for _ in range(4)]  # into the second epoch
    for a, b in zip(got["opencv"], got["device"], strict=True):
        assert torch.equal(a.images, b.images)  # translate + scale + flips + HSV at 64: bit for bit
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.batch_idx, b.batch_idx)
        assert [m["position"] for m in a.metas] == [m["position"] for m in b.metas]
    ds = build_dataset(SHAPES, img_size=64, seed=3, paint="device")
    with pytest.raises(ValueError, match="painter: the loader yields PlanBatches"):
        next(mixed_batches(build_loader(ds, batch_size=8, workers=0), mixer, torch.device("cpu")))
    with pytest.raises(ValueError, match="paint: expected one of"):
        build_dataset(SHAPES, img_size=64, seed=3, paint="gpu")


def test_short_training_learns():
    # MixDataset (Mosaic every image) in a persistent worker, MixUp and CutMix on the batch, the
    # weighted loss: the loss must fall by 20 %, the box loss by 10 %.
    # Seed 0 lands at last / first ~0.70 against the 0.8 bar (seeds 1 and 2: ~0.77, ~0.78; width 16:
    # ~0.69, 0.76, 0.77 at twice the model's cost).
    steps, batch_size, img_size = 60, 6, 96
    res = train(data=SHAPES, steps=steps, batch_size=batch_size, img_size=img_size, workers=1, mixup=0.3,
                cutmix=0.3, lr=3e-3, seed=0, device="cpu", width=8, progress=False)
    h = np.asarray(res.history)
    assert h.shape == (steps,) and np.isfinite(h).all()
    first, last = h[:10].mean(), h[-10:].mean()
    assert last < 0.8 * first, (first, last)
    assert np.mean(res.box_history[-10:]) < 0.9 * np.mean(res.box_history[:10])
    assert res.extra["epochs"] == math.ceil(steps / (24 // batch_size))  # 24 images, full batches: every pass

    # The model must have learned *these* labels for *these* images: on val images its loss with
    # their own labels is well below its loss with the labels of another image.
    ds = YoloDataset(SHAPES, split="val", img_size=img_size, progress=False)
    batch = collate([ds[i] for i in range(len(ds))])
    images = pad_to_stride(batch.images.float() / 255.0)
    points, strides = make_anchors(images.shape[-2], images.shape[-1], "cpu")
    with torch.no_grad():
        logits, dist = res.model(images)
        own = detection_loss(logits, dist, points, strides, pad_targets(batch))
        b = batch.batch_size
        shuffled = batch.replace(batch_idx=(batch.batch_idx + 1) % b)  # image i gets image i-1's labels
        order = torch.argsort(shuffled.batch_idx, stable=True)
        shuffled = shuffled.replace(batch_idx=shuffled.batch_idx[order], boxes=shuffled.boxes[order],
                                    classes=shuffled.classes[order], weights=shuffled.weights[order])
        other = detection_loss(logits, dist, points, strides, pad_targets(shuffled))
    assert own.total < 0.8 * other.total, (float(own.total), float(other.total))


def test_cli_writes_predictions_png(tmp_path, capsys):
    out = tmp_path / "sub" / "pred.png"
    rc = main(["--steps", "4", "--batch-size", "4", "--img-size", "64", "--workers", "0",
               "--num-images", "3", "--out", str(out), "--quiet", "--device", "cpu"])
    assert rc == 0
    img = cv2.imread(str(out))
    assert img is not None and img.ndim == 3 and img.shape[0] > 64 and img.shape[1] > 2 * 64
    text = capsys.readouterr().out
    assert f"predictions: {out}" in text and "loss: mean of first 4 steps" in text


def test_cli_trains_with_device_painting(tmp_path, capsys):
    out = tmp_path / "pred.png"
    rc = main(["--steps", "3", "--batch-size", "4", "--img-size", "64", "--workers", "1", "--paint", "device",
               "--num-images", "2", "--out", str(out), "--quiet", "--device", "cpu"])
    assert rc == 0 and cv2.imread(str(out)) is not None
    assert "(painted by device)" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--img-size", "100"], ["--steps", "0"], ["--batch-size", "1"],
                                  ["--mixup", "1.5"], ["--cutmix", "-0.1"], ["--workers", "-1"],
                                  ["--width", "2"], ["--num-images", "0"]])
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "must be" in capsys.readouterr().err
