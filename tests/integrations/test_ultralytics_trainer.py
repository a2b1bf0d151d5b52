"""DetaugTrainer inside the real Ultralytics trainer (8.4.190): ``YOLO(cfg).train(..., trainer=DetaugTrainer)``.

Runs where ultralytics is installed (the peer venv that ``.ci/run`` builds);
skipped elsewhere. A few epochs at imgsz 64 on a copy of datasets/shapes
(Ultralytics writes a labels .cache beside the labels it reads: never the
user's files), MixUp on every sample, close_mosaic = 1.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ultralytics", reason="needs ultralytics (the peer venv, see .ci/run)")

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from ultralytics import YOLO  # noqa: E402
from ultralytics.utils import DEFAULT_CFG_KEYS  # noqa: E402
from ultralytics.utils.torch_utils import unwrap_model  # noqa: E402

from detaug.config import AugmentConfig  # noqa: E402
from detaug.data import YoloDataset  # noqa: E402
from detaug.integrations.ultralytics import (  # noqa: E402
    DETAUG_OPTIONS,
    DetaugTrainer,
    UltralyticsDataset,
    WeightedE2ELoss,
)
from detaug.mix_dataset import MixDataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "datasets" / "shapes"
EPOCHS = 3


def digest(img) -> str:
    return hashlib.sha1(img.contiguous().numpy().tobytes()).hexdigest()


class Recording(DetaugTrainer):
    """DetaugTrainer that records what each batch held and what weights reached the loss."""

    workers = None  # a value here restores args.workers (Ultralytics sets 0 on a CPU device)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.workers is not None:
            self.args.workers = self.workers
        self.seen = []  # (trainer epoch, key epoch, index, tiles, mixed_with, image digest, position)
        self.batch_min_weight = []  # (trainer epoch, min of batch["weights"])
        self.anchor_min_weight = []  # per batch: min anchor weight in each loss branch
        self.add_callback("on_train_batch_end", Recording.after_batch)

    def preprocess_batch(self, batch):
        for img, meta in zip(batch["img"], batch["detaug"], strict=True):
            self.seen.append((self.epoch, meta["epoch"], meta["index"], meta["tiles"], meta["mixed_with"],
                              digest(img), meta["position"]))
        if len(batch["weights"]):
            self.batch_min_weight.append((self.epoch, float(batch["weights"].min())))
        return super().preprocess_batch(batch)

    @staticmethod
    def after_batch(trainer):
        crit = unwrap_model(trainer.model).criterion
        branches = [crit.one2many, crit.one2one] if isinstance(crit, WeightedE2ELoss) else [crit]
        trainer.anchor_min_weight.append(tuple(float(b.assigner.last_anchor_weights.min()) for b in branches))


class RecordingTwoWorkers(Recording):
    workers = 2


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    shutil.copytree(SHAPES / "images", root / "images")
    shutil.copytree(SHAPES / "labels", root / "labels")
    names = yaml.safe_load((SHAPES / "shapes.yaml").read_text())["names"]
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val", "names": names}))
    return path


RUNS = [  # model, trainer, extra arguments
    pytest.param("yolo11n.yaml", Recording, {"plots": True, "cls_pw": 0.5}, id="yolo11n-workers0-plots"),
    pytest.param("yolo26n.yaml", RecordingTwoWorkers, {"plots": False, "mosaic9": 0.5, "batch": -1},
                 id="yolo26n-workers2-autobatch"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("cfg", "trainer_cls", "extra"), RUNS)
def test_yolo_trains_through_detaug_trainer(cfg, trainer_cls, extra, data_yaml, tmp_path, caplog):
    model = YOLO(cfg)
    with caplog.at_level(logging.INFO, logger="ultralytics"):
        model.train(data=str(data_yaml), epochs=EPOCHS, imgsz=64, device="cpu", seed=3, mixup=1.0,
                    close_mosaic=1, val=False, project=str(tmp_path), name="run", exist_ok=True,
                    trainer=trainer_cls, **{"batch": 8, **extra})
    trainer = model.trainer
    assert isinstance(trainer, DetaugTrainer) and isinstance(trainer.train_loader.dataset, UltralyticsDataset)
    assert trainer.train_loader.num_workers == (trainer_cls.workers or 0)
    n = len(trainer.train_loader.dataset)
    assert n == 24
    if extra.get("batch") == -1:  # auto-batch built the training set and read its labels
        assert trainer.batch_size >= 1 and trainer.train_loader.batch_size == min(trainer.batch_size, n)

    # Every sample's key carried the epoch the trainer was in; each epoch visits every image once.
    assert all(t_epoch == k_epoch for t_epoch, k_epoch, *_ in trainer.seen)
    by_epoch = {e: [s for s in trainer.seen if s[0] == e] for e in range(EPOCHS)}
    for e, items in by_epoch.items():
        assert sorted(s[2] for s in items) == list(range(n)), e
    # Two epochs served different images (not one frozen augmented set).
    assert not {s[5] for s in by_epoch[0]} & {s[5] for s in by_epoch[1]}
    # Mosaic and MixUp in the first epochs, none in the last (close_mosaic=1), and the trainer said so.
    for e in (0, 1):
        assert all(any(kind == "mixup" for kind, _ in s[4]) for s in by_epoch[e])
        assert any(len(s[3]) > 1 for s in by_epoch[e])
    assert all(len(s[3]) == 1 and s[4] == () for s in by_epoch[EPOCHS - 1])
    assert "Mosaic, MixUp and CutMix off from epoch 3" in caplog.text

    # Weights below 1 reached the loss, in every branch (YOLO26's E2ELoss has two).
    assert min(w for e, w in trainer.batch_min_weight if e < EPOCHS - 1) < 1
    assert all(w == 1 for e, w in trainer.batch_min_weight if e == EPOCHS - 1)
    per_branch = list(zip(*trainer.anchor_min_weight, strict=True))
    assert len(per_branch) == (2 if "26" in cfg else 1)
    assert all(min(branch) < 1 for branch in per_branch)

    # What the trainer saw replays from its dataset: the key (epoch, position) is the whole story.
    ds = trainer.train_loader.dataset
    for s in (by_epoch[0][5], by_epoch[1][0], by_epoch[EPOCHS - 1][3]):
        assert digest(ds[(s[1], s[6])]["img"]) == s[5]
    replay = yaml.safe_load((trainer.save_dir / "detaug.yaml").read_text())
    assert replay["seed"] == 3 and replay["epochs"] == EPOCHS and replay["mixup"] == 1.0
    assert replay["mosaic9"] == extra.get("mosaic9", 0.0)
    # ... and from the run's detaug.yaml and the data yaml alone (what tools/visualize.py --augment does).
    cfg_again = AugmentConfig.from_yaml(trainer.save_dir / "detaug.yaml", strict=False)
    again = MixDataset(YoloDataset(data_yaml, "train", img_size=cfg_again.img_size, progress=False), cfg_again,
                       seed=replay["seed"])
    for s in (by_epoch[1][2], by_epoch[EPOCHS - 1][0]):
        image = again[(s[1], s[6])].image
        assert again.key_of(s[2], epoch=s[1]) == (s[1], s[6])  # found by its image too
        assert hashlib.sha1(np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()).hexdigest() == s[5]
    if extra["plots"]:
        assert (trainer.save_dir / "labels.jpg").exists()  # plot_training_labels read dataset.labels
        assert unwrap_model(trainer.model).class_weights is not None  # cls_pw read dataset.labels

    # best.pt loads and predicts where detaug cannot be imported.
    best = trainer.best
    assert best.exists()
    image = next((SHAPES / "images" / "val").iterdir())
    code = (
        "import sys\n"
        "sys.modules['detaug'] = None\n"  # import detaug now raises ImportError
        "from ultralytics import YOLO\n"
        f"r = YOLO({str(best)!r}).predict({str(image)!r}, imgsz=64, device='cpu', verbose=False)\n"
        "try:\n    import detaug\nexcept ImportError:\n    print('predicted', len(r), 'without detaug')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "predicted 1 without detaug" in out.stdout


def test_detaug_options_do_not_collide_with_ultralytics_arguments():
    assert not set(DETAUG_OPTIONS) & set(DEFAULT_CFG_KEYS)


@pytest.mark.parametrize(("option", "value"), [("mixup_alpha", -1.0), ("object_weighting", "scores"),
                                               ("mosaic9", 2.0)])
def test_bad_detaug_option_raises_naming_it_before_anything_is_built(option, value, data_yaml, tmp_path):
    with pytest.raises(ValueError, match=option):
        DetaugTrainer(overrides={"data": str(data_yaml), "model": "yolo11n.yaml", "project": str(tmp_path),
                                 option: value})


class Interrupted(RuntimeError):
    pass


def interrupt_after_first_epoch(trainer):
    if trainer.epoch == 0:  # last.pt of epoch 0 is saved: a run to resume
        raise Interrupted


@pytest.mark.slow
def test_resumed_yolo26_run_continues_its_epochs_and_loss_schedule(data_yaml, tmp_path):
    model = YOLO("yolo26n.yaml")
    model.add_callback("on_fit_epoch_end", interrupt_after_first_epoch)
    with pytest.raises(Interrupted):
        model.train(data=str(data_yaml), epochs=EPOCHS, imgsz=64, batch=8, device="cpu", seed=5, mixup=1.0,
                    close_mosaic=1, val=False, plots=False, project=str(tmp_path), name="run", exist_ok=True,
                    trainer=Recording)
    last = tmp_path / "run" / "weights" / "last.pt"
    assert {s[1] for s in model.trainer.seen} == {0}
    resumed = YOLO(str(last))
    resumed.train(resume=True, trainer=Recording)
    trainer = resumed.trainer
    assert trainer.start_epoch == 1
    assert {s[1] for s in trainer.seen} == {1, 2} and all(s[0] == s[1] for s in trainer.seen)
    assert all(len(s[3]) == 1 and s[4] == () for s in trainer.seen if s[1] == EPOCHS - 1)
    crit = unwrap_model(trainer.model).criterion
    assert isinstance(crit, WeightedE2ELoss) and crit.updates == EPOCHS  # the decay went on from epoch 1


class RecordingPainted(DetaugTrainer):
    """DetaugTrainer (paint='device') that keeps each painted batch as Ultralytics' dict."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.painted = []

    def preprocess_batch(self, batch):
        out = super().preprocess_batch(batch)
        self.painted.append({k: (v.detach().clone() if hasattr(v, "detach") else v) for k, v in out.items()})
        return out


@pytest.mark.slow
def test_device_paint_trains_on_the_plans_pixels_and_labels(data_yaml, tmp_path):
    model = YOLO("yolo11n.yaml")
    model.train(data=str(data_yaml), epochs=1, imgsz=64, device="cpu", seed=5, mixup=0.5, batch=8, val=False,
                plots=False, close_mosaic=0, project=str(tmp_path), name="run", exist_ok=True,
                trainer=RecordingPainted, paint="device")
    trainer = model.trainer
    assert trainer.painted and trainer.paint == "device"
    # the 24 small training images fit: they live in the painter's SourceBank, the loader ships plans only
    assert trainer.painter.bank is not None and not trainer.train_loader.dataset.mix.ship_sources
    # The same item painted by OpenCV per sample (what paint='opencv' serves): labels equal, pixels close.
    mix = trainer.train_loader.dataset.mix
    sample_path = MixDataset(mix.dataset, mix.config, seed=mix.seed)
    for batch in trainer.painted[:2]:
        imgs = batch["img"]
        assert imgs.dtype.is_floating_point and float(imgs.max()) <= 1.0
        for i, meta in enumerate(batch["detaug"]):
            want = sample_path[(meta["epoch"], meta["position"])]
            got = (imgs[i].permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
            diff = np.abs(got - want.image.astype(np.int16))
            assert (diff <= 2).mean() >= 0.999 and diff.mean() < 0.5
            rows = batch["batch_idx"] == i
            assert int(rows.sum()) == want.num_objects
            assert np.allclose(batch["weights"][rows].numpy(), want.weights)
            assert np.array_equal(batch["cls"][rows, 0].numpy(), want.classes.astype(np.float32))
