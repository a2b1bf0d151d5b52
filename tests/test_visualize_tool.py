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

from detaug.sample import Sample
from detaug.viz import class_colors

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


def test_parser_defaults_and_help(tool):
    args = tool.build_parser().parse_args([])
    assert (args.num, args.start, args.img_size, args.split) == (16, 0, 640, "train")
    assert args.out == Path("out/visualize.png") and args.data is None and args.coco is None
    assert tool.DEFAULT_DATA == SHAPES / "shapes.yaml" and tool.DEFAULT_DATA.exists()
    text = tool.build_parser().format_help()
    assert "examples:" in text and "--coco" in text and "--image-root" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--coco", "a.json"], "--coco and --image-root go together"),
        (["--data", "x.yaml", "--coco", "a.json", "--image-root", "d"], "exclusive"),
        (["-n", "0"], "-n/--num must be >= 1"),
        (["--start", "-1"], "--start must be >= 0"),
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


def test_cli_on_the_shapes_set_from_another_cwd(tmp_path):
    """The real thing, as a user runs it: default data resolved from the repo, any cwd."""
    from detaug import YoloDataset

    r = _run(["-n", "4", "--out", "tmp/x.png", "--img-size", "320"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "tmp" / "x.png"
    assert r.stdout.strip() == str(out.resolve())
    png = cv2.imread(str(out))
    ds = YoloDataset(SHAPES / "shapes.yaml", split="train", img_size=320, progress=False)
    sizes = [(ds[i].image.shape[0] + TITLE_H, ds[i].image.shape[1]) for i in range(4)]
    assert png.shape == _grid_shape(sizes)
    assert max(max(s) for s in sizes) == 320 + TITLE_H


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
