"""tools/visualize.py: options, grid rendering (against a stand-in dataset) and
the real CLI run as a subprocess on the bundled shapes set."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detaug.config import AugmentConfig
from detaug.sample import Sample
from detaug.viz import class_colors, draw_sample, make_grid, side_by_side

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "visualize.py"
SHAPES = ROOT / "datasets" / "shapes"
TITLE_H = 22  # detaug.viz.add_title's default strip height


def _load_tool():
    spec = importlib.util.spec_from_file_location("visualize_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tool():
    return _load_tool()


class StandIn:
    """A map-style dataset of Samples with ``names``, like YoloDataset."""

    names = ["a", "b", "c"]

    def __init__(self, n: int = 5) -> None:
        self.items = []
        for i in range(n):
            h, w = 40 + 10 * i, 60 - 5 * i
            img = np.full((h, w, 3), 30, np.uint8)
            self.items.append(
                Sample.create(img, boxes=[[2, 3, 20, 30]], classes=[i % 3], meta={"path": f"/x/img{i}.jpg"})
            )
        self.calls: list[int] = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        self.calls.append(i)
        return self.items[i]


def _grid_shape(sizes: list[tuple[int, int]], cols: int | None = None, pad: int = 4) -> tuple[int, int, int]:
    """Reference for detaug.viz.make_grid's output size."""
    cols = min(cols or math.ceil(math.sqrt(len(sizes))), len(sizes))
    rows = math.ceil(len(sizes) / cols)
    ch, cw = max(h for h, _ in sizes), max(w for _, w in sizes)
    return rows * ch + (rows + 1) * pad, cols * cw + (cols + 1) * pad, 3


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, path
    return img[:, :, ::-1]


def _cell(grid: np.ndarray, k: int, sizes: list[tuple[int, int]], cols: int, title: bool, pad: int = 4) -> np.ndarray:
    """The image of cell k of a make_grid output (below its title strip when ``title``)."""
    ch, cw = max(h for h, _ in sizes), max(w for _, w in sizes)
    h, w = sizes[k]
    r, c = divmod(k, cols)
    y = pad + r * (ch + pad) + (ch - h) // 2 + (TITLE_H if title else 0)
    x = pad + c * (cw + pad) + (cw - w) // 2
    return grid[y : y + h - (TITLE_H if title else 0), x : x + w]


def test_parser_defaults_and_help(tool):
    args = tool.build_parser().parse_args([])
    assert (args.num, args.start, args.index, args.img_size, args.split) == (None, None, None, None, "train")
    assert (args.augment, args.seed, args.epoch, args.before_after) == ("none", 0, 0, False)
    assert args.out == Path("out/visualize.png") and args.data is None and args.coco is None
    assert tool.DEFAULT_DATA == SHAPES / "shapes.yaml" and tool.DEFAULT_DATA.exists()
    text = tool.build_parser().format_help()
    assert "examples:" in text and "--coco" in text and "--image-root" in text
    # An example for every mode.
    for example in ("--augment mosaic", "--augment mixup", "--augment cutmix", "--augment full",
                    "--augment path/to/hyp.yaml", "--before-after", "--index 3", "--seed 7 --epoch 2"):
        assert example in text, example


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--coco", "a.json"], "--coco and --image-root go together"),
        (["--data", "x.yaml", "--coco", "a.json", "--image-root", "d"], "exclusive"),
        (["-n", "0"], "-n/--num must be >= 1"),
        (["--start", "-1"], "--start must be >= 0"),
        (["--index", "-1"], "--index must be >= 0"),
        (["--index", "2", "-n", "4"], "--index draws one sample"),
        (["--index", "2", "--start", "1"], "--index draws one sample"),
        (["--augment", "mixupp"], "'mixupp' is not one of none, mosaic, mixup, cutmix, full"),
        (["--before-after"], "--before-after needs --augment"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--epoch", "-3"], "--epoch must be >= 0"),
        (["--img-size", "16"], "--img-size must be >= 32"),
    ],
)
def test_bad_options_exit_2_with_a_message(tool, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        tool.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_sample_indices(tool):
    assert tool.sample_indices(10, 0, 4) == [0, 1, 2, 3]
    assert tool.sample_indices(10, 8, 16) == [8, 9]
    with pytest.raises(IndexError, match="--start 10"):
        tool.sample_indices(10, 10, 1)


def test_render_grid_draws_each_sample_in_its_cell(tool):
    ds = StandIn(5)
    grid = tool.render_grid(ds, [1, 2, 3], names=ds.names, titles=False, thickness=1)
    assert ds.calls == [1, 2, 3]
    sizes = [ds.items[i].image.shape[:2] for i in (1, 2, 3)]
    assert grid.shape == _grid_shape(sizes)
    # First cell (sample 1, class 1): its box outline in the class-1 colour at the
    # right place inside the cell (cell origin (4, 4) + centring offset).
    ch, cw = max(h for h, _ in sizes), max(w for _, w in sizes)
    h, w = sizes[0]
    y0, x0 = 4 + (ch - h) // 2, 4 + (cw - w) // 2
    col = class_colors(3)[1]
    assert (grid[y0 + 29, x0 + 2 : x0 + 20] == col).all()  # bottom edge of [2, 3, 20, 30]
    assert (grid[y0 + 4 : y0 + 30, x0 + 19] == col).all()  # right edge
    titled = tool.render_grid(ds, [0, 4], titles=True)
    sizes = [(h + TITLE_H, w) for h, w in (ds.items[0].image.shape[:2], ds.items[4].image.shape[:2])]
    assert titled.shape == _grid_shape(sizes)


def test_main_with_a_stand_in_dataset_writes_the_png(tool, tmp_path, capsys, monkeypatch):
    ds = StandIn(5)
    monkeypatch.setattr(tool, "load_dataset", lambda args: ds)
    out = tmp_path / "sub" / "grid.png"
    assert tool.main(["-n", "3", "--start", "2", "--cols", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    png = cv2.imread(str(out))
    sizes = [(h + TITLE_H, w) for h, w in (ds.items[i].image.shape[:2] for i in (2, 3, 4))]
    assert png.shape == _grid_shape(sizes, cols=3)
    # A start past the end is reported, not a traceback.
    assert tool.main(["--start", "9", "--out", str(out)]) == 1
    assert "past the end" in capsys.readouterr().err


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_raw_mode_on_the_shapes_set_from_another_cwd(tool, tmp_path, capsys, monkeypatch):
    """Default data resolved from the repo whatever the cwd; each cell is draw_sample(dataset[i])."""
    from detaug import YoloDataset

    monkeypatch.chdir(tmp_path)
    assert tool.main(["-n", "4", "--out", "tmp/x.png", "--img-size", "160", "--cols", "4"]) == 0
    out = tmp_path / "tmp" / "x.png"
    assert capsys.readouterr().out.strip() == str(out.resolve())
    png = _read_rgb(out)
    ds = YoloDataset(SHAPES / "shapes.yaml", split="train", img_size=160, progress=False)
    samples = [ds[i] for i in range(4)]
    sizes = [(s.image.shape[0] + TITLE_H, s.image.shape[1]) for s in samples]
    assert png.shape == _grid_shape(sizes, cols=4)
    assert max(max(s) for s in sizes) == 160 + TITLE_H
    for k, s in enumerate(samples):
        assert np.array_equal(_cell(png, k, sizes, cols=4, title=True), draw_sample(s, names=ds.names))


def test_coco_mode_draws_the_coco_samples(tool, tmp_path, capsys):
    from detaug import CocoDataset

    ann = SHAPES / "annotations" / "instances_val.json"
    root = SHAPES / "images" / "val"
    out = tmp_path / "v.png"
    argv = ["--coco", str(ann), "--image-root", str(root), "-n", "3", "--start", "2", "--out", str(out)]
    assert tool.main([*argv, "--img-size", "256", "--no-titles", "--thickness", "1"]) == 0
    png = cv2.imread(str(out))[:, :, ::-1]
    ds = CocoDataset(ann, root, img_size=256, progress=False)
    samples = [ds[i] for i in (2, 3, 4)]
    sizes = [s.image.shape[:2] for s in samples]
    assert png.shape == _grid_shape(sizes)
    # The first tile's boxes are drawn in their class colours (names from the json).
    s = samples[0]
    ch, cw = max(h for h, _ in sizes), max(w for _, w in sizes)
    y0, x0 = 4 + (ch - sizes[0][0]) // 2, 4 + (cw - sizes[0][1]) // 2
    colors = class_colors(len(ds.names))
    hits = 0
    for b, c in zip(s.boxes, s.classes, strict=True):
        r1 = min(int(round(float(b[3]))), sizes[0][0]) - 1  # bottom outline row
        cx = int(round(float(b[0] + b[2]) / 2))
        hits += bool((png[y0 + r1, x0 + cx] == colors[c]).all())
    assert hits >= len(s.boxes) - 1  # one may be covered by another object's tag


def test_missing_yaml_is_reported_not_raised(tool, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert tool.main(["--data", str(tmp_path / "nope.yaml"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err
    assert not out.exists()


# ----------------------------------------------------------------------------- augmented modes

# The presets, written out independently of the tool's table.
EXPECTED = {
    "mosaic": AugmentConfig(mosaic=1.0),
    "mixup": AugmentConfig(mosaic=1.0, mixup=1.0),
    "cutmix": AugmentConfig(mosaic=1.0, cutmix=1.0),
    "full": AugmentConfig(
        mosaic=1.0, mosaic9=0.2, mixup=0.3, cutmix=0.3, degrees=10, shear=2, perspective=0.0005, flipud=0.1
    ),
}


@pytest.fixture(scope="module")
def shapes():
    """The bundled shapes set at the sizes these tests use."""
    from detaug import YoloDataset

    return {s: YoloDataset(SHAPES / "shapes.yaml", split="train", img_size=s, progress=False) for s in (128, 160)}


def _mixed(shapes, size: int, config: AugmentConfig, seed: int = 0, epoch: int = 0):
    from detaug import MixDataset

    ds = MixDataset(shapes[size], config.replace(img_size=size), seed=seed)
    ds.set_epoch(epoch)
    return ds


def _of(ds, index: int):
    """The sample that shows image ``index`` in ds's epoch (what the tool draws for that image)."""
    return ds[ds.key_of(index)]


def test_mix_label_and_titles(tool):
    meta = {"tiles": (3, 1, 4, 1), "mixed_with": (("mixup", (5, 9, 2, 6)), ("cutmix", (5,)))}
    assert tool.mix_label(meta) == "mosaic+mixup+cutmix"
    assert tool.mix_label({"tiles": tuple(range(9)), "mixed_with": ()}) == "mosaic9"
    assert tool.mix_label({"tiles": (7,), "mixed_with": (("cutmix", (2,)),)}) == "affine+cutmix"
    s = Sample.create(np.zeros((8, 8, 3), np.uint8), [[0, 0, 4, 4], [1, 1, 5, 5]], [0, 1], meta={"path": "/a/b.jpg"})
    assert tool.tile_title(12, s.with_meta(**meta), True) == "#12 mosaic+mixup+cutmix (2 obj)"
    assert tool.tile_title(12, s, False) == "#12 b.jpg (2 obj)"


def test_augment_config_presets_and_img_size(tool, tmp_path):
    assert tool.augment_config("none", 256) is None
    for name, expected in EXPECTED.items():
        assert tool.augment_config(name, None) == expected  # img_size 640
        assert tool.augment_config(name, 256) == expected.replace(img_size=256)
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text("imgsz: 320\nmixup: 0.5\nlr0: 0.01\n")
    assert tool.augment_config(str(hyp), None) == AugmentConfig(mixup=0.5, img_size=320)
    assert tool.augment_config(str(hyp), 128) == AugmentConfig(mixup=0.5, img_size=128)


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_each_mode_draws_the_mix_dataset_samples(tool, shapes, tmp_path, capsys, mode):
    """Each cell is the MixDataset(shapes, preset, seed) sample of image i, for i = start .. start + n - 1."""
    out = tmp_path / f"{mode}.png"
    argv = ["--augment", mode, "-n", "3", "--start", "5", "--img-size", "128", "--seed", "11", "--cols", "3"]
    argv += ["--out", str(out)]
    assert tool.main([*argv, "--no-titles"]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    png = _read_rgb(out)
    sizes = [(128, 128)] * 3
    assert png.shape == _grid_shape(sizes, cols=3)
    ds = _mixed(shapes, 128, EXPECTED[mode], seed=11)
    samples = [_of(ds, i) for i in (5, 6, 7)]
    for k, s in enumerate(samples):
        assert np.array_equal(_cell(png, k, sizes, cols=3, title=False), draw_sample(s, names=shapes[128].names))
    kinds = [[kind for kind, _ in s.meta["mixed_with"]] for s in samples]
    if mode in ("mixup", "cutmix"):  # probability 1: every sample is mixed, and some weights fell below 1
        assert kinds == [[mode]] * 3
        assert any((s.weights < 1).any() for s in samples)
    if mode == "mosaic":
        assert kinds == [[]] * 3 and all((s.weights == 1).all() for s in samples)
    # Titled: the same cells below a title strip (with text: dark pixels in it).
    assert tool.main(argv) == 0
    titled = _read_rgb(out)
    sizes = [(128 + TITLE_H, 128)] * 3
    assert titled.shape == _grid_shape(sizes, cols=3)
    for k, s in enumerate(samples):
        assert np.array_equal(_cell(titled, k, sizes, cols=3, title=True), draw_sample(s, names=shapes[128].names))
        strip = _cell(titled, k, sizes, cols=3, title=False)[:TITLE_H]
        assert (strip < 100).any() and (strip == 255).mean() > 0.5


def test_replay_of_one_training_sample(tool, shapes, tmp_path, capsys):
    """--index 3 --seed 7 --epoch 2 is exactly the sample of image 3 in epoch 2 of a MixDataset with seed 7."""
    out = tmp_path / "replay.png"
    argv = ["--augment", "mixup", "--img-size", "160", "--index", "3", "--seed", "7", "--epoch", "2"]
    assert tool.main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == str(out.resolve())
    ref = _of(_mixed(shapes, 160, EXPECTED["mixup"], seed=7, epoch=2), 3)
    assert ref.num_objects > 0 and (ref.weights < 1).all()
    png = _read_rgb(out)
    sizes = [(160 + TITLE_H, 160)]
    assert png.shape == _grid_shape(sizes)
    assert np.array_equal(_cell(png, 0, sizes, cols=1, title=True), draw_sample(ref, names=shapes[160].names))
    # Another epoch (or seed) is another sample: the replay really depends on them.
    other = _of(_mixed(shapes, 160, EXPECTED["mixup"], seed=7, epoch=3), 3)
    assert not np.array_equal(other.image, ref.image)
    # The printed meta: tiles, partners, objects and weights of this very sample.
    text = "\n".join(printed[:-1])
    files = [Path(f).name for f in shapes[160].files]
    tiles = ref.meta["tiles"]
    assert ref.meta["index"] == 3
    assert f"index 3  epoch 2  position {ref.meta['position']}  seed 7  size 160x160  {tool.mix_label(ref.meta)}" in text
    assert "tiles: " + ", ".join(f"{t} ({files[t]})" for t in tiles) in text
    ((kind, ptiles),) = ref.meta["mixed_with"]
    assert f"mixed_with mixup: {', '.join(f'{t} ({files[t]})' for t in ptiles)}" in text
    assert f"objects: {ref.num_objects} (" in text
    w = ref.weights
    assert f"weights: min {w.min():.3f}  mean {w.mean():.3f}  max {w.max():.3f}  {len(w)} below 1" in text


def test_index_in_raw_mode_and_past_the_end(tool, shapes, tmp_path, capsys):
    out = tmp_path / "one.png"
    assert tool.main(["--index", "4", "--img-size", "128", "--no-titles", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    s = shapes[128][4]
    assert f"path {s.meta['path']}" in printed and f"objects: {s.num_objects}" in printed
    png = _read_rgb(out)
    assert np.array_equal(png[4:-4, 4:-4], draw_sample(s, names=shapes[128].names))
    assert tool.main(["--augment", "mosaic", "--index", str(len(shapes[128])), "--out", str(out)]) == 1
    assert "--index 24 is past the end" in capsys.readouterr().err


def test_before_after_pairs_raw_and_augmented(tool, shapes, tmp_path, capsys):
    out = tmp_path / "ba.png"
    argv = ["--augment", "cutmix", "--before-after", "-n", "2", "--start", "1", "--img-size", "128", "--seed", "3"]
    assert tool.main([*argv, "--no-titles", "--out", str(out)]) == 0
    ds = _mixed(shapes, 128, EXPECTED["cutmix"], seed=3)
    names = shapes[128].names
    pairs = [side_by_side(draw_sample(shapes[128][i], names=names), draw_sample(_of(ds, i), names=names)) for i in (1, 2)]
    assert np.array_equal(_read_rgb(out), make_grid(pairs))
    # Titled: each half carries its own title strip.
    assert tool.main([*argv, "--cols", "1", "--out", str(out)]) == 0
    png = _read_rgb(out)
    raw_sizes = [shapes[128][i].image.shape[:2] for i in (1, 2)]
    pair_sizes = [_grid_shape([(h + TITLE_H, w), (128 + TITLE_H, 128)], cols=2)[:2] for h, w in raw_sizes]
    assert png.shape == _grid_shape(pair_sizes, cols=1)


def test_yaml_config_like_an_ultralytics_hyp_file(tool, shapes, tmp_path, capsys):
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text(  # keys of an Ultralytics default.yaml, most of them not ours
        "task: detect\nmode: train\nepochs: 100\nbatch: 16\nimgsz: 160\nclose_mosaic: 10\naugment: False\n"
        "lr0: 0.01\nmosaic: 1.0\nmixup: 0.0\ncutmix: 1.0\ndegrees: 5.0\ncopy_paste_mode: flip\n"
    )
    out = tmp_path / "hyp.png"
    assert tool.main(["--augment", str(hyp), "-n", "2", "--no-titles", "--cols", "2", "--out", str(out)]) == 0
    png = _read_rgb(out)
    sizes = [(160, 160)] * 2  # imgsz from the file
    assert png.shape == _grid_shape(sizes, cols=2)
    ds = _mixed(shapes, 160, AugmentConfig.from_yaml(hyp, strict=False))
    assert ds.config.cutmix == 1.0 and ds.config.degrees == 5.0
    for k in range(2):
        assert np.array_equal(_cell(png, k, sizes, cols=2, title=False), draw_sample(_of(ds, k), names=shapes[160].names))
    # --img-size wins over the file's imgsz.
    assert tool.main(["--augment", str(hyp), "-n", "1", "--img-size", "128", "--no-titles", "--out", str(out)]) == 0
    assert _read_rgb(out).shape == (128 + 8, 128 + 8, 3)
    # Its schedule is honoured: epochs 100 with close_mosaic 10 means no Mosaic/CutMix from epoch 90.
    capsys.readouterr()
    assert tool.main(["--augment", str(hyp), "--index", "0", "--epoch", "89", "--out", str(out)]) == 0
    assert "mosaic+cutmix" in capsys.readouterr().out
    assert tool.main(["--augment", str(hyp), "--index", "0", "--epoch", "90", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "index 0  epoch 90  position " in text and "  seed 0  size 160x160  affine\n" in text
    assert "mixed_with: none" in text


@pytest.mark.parametrize(
    "content, message",
    [
        ("mixup: 2.0\n", "mixup must be a probability"),
        ("mixup: [1.0,\n", "cannot read augmentation config"),
        ("- 1\n- 2\n", "expected a mapping"),
        (None, "cannot read augmentation config"),  # no such file
    ],
)
def test_bad_yaml_config_is_reported_with_its_file_name(tool, tmp_path, capsys, content, message):
    hyp = tmp_path / "bad_hyp.yaml"
    if content is not None:
        hyp.write_text(content)
    out = tmp_path / "x.png"
    assert tool.main(["--augment", str(hyp), "-n", "1", "--img-size", "128", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(hyp) in err and message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_mixup_end_to_end_from_another_cwd(shapes, tmp_path):
    """The real thing, as a user runs it: a script run, default data resolved from the repo, any cwd."""
    r = _run(["--augment", "mixup", "-n", "4", "--img-size", "128", "--out", "tmp/x.png"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "tmp" / "x.png"
    assert r.stdout.strip() == str(out.resolve())
    png = _read_rgb(out)
    sizes = [(128 + TITLE_H, 128)] * 4
    assert png.shape == _grid_shape(sizes)
    ds = _mixed(shapes, 128, EXPECTED["mixup"])  # seed 0, epoch 0: the defaults
    for k in range(4):
        s = _of(ds, k)
        assert s.meta["mixed_with"][0][0] == "mixup" and (s.weights < 1).all()
        assert np.array_equal(_cell(png, k, sizes, cols=2, title=True), draw_sample(s, names=shapes[128].names))


def test_plan_is_printed_and_the_device_painter_agrees_with_opencv(tool, tmp_path, capsys):
    out = tmp_path / "grid.png"
    rc = tool.main(["--augment", "full", "--seed", "2", "-n", "3", "--img-size", "128", "--plan", "--paint",
                    "device", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.exists()
    assert text.count("plan: 128x128") == 3 and "canvas 0 (" in text and "hsv gains" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("device painter vs OpenCV over 3 samples"))
    share = float(line.split("within 2 grey levels ")[1].split("%")[0])
    mean = float(line.split("mean |diff| ")[1])
    assert share >= 99.9 and mean < 0.5


def test_plan_and_device_paint_need_augment(tool, tmp_path):
    with pytest.raises(SystemExit):
        tool.main(["--plan", "--out", str(tmp_path / "x.png")])
