"""Issue 8, hostile inputs: one test (or more) per item. Each asserts the problem kind or error
type, that the message names the file (and line / annotation), that the good samples are still
served, and that nothing in the input was modified."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from detaug import DatasetError
from detaug.data import CocoDataset, YoloDataset
from detaug.io import files as F
from detaug.io.images import ImageError, decode_image, inspect_image, probe_header
from detaug.io.probe import apply_orientation
from detaug.io.validate import DatasetWarning
from detaug.io.yolo_txt import read_label_file

ROOT = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, object]:
    """Every path under root with its content hash (regular files) or mode (anything else)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.isfile(p) and not os.path.islink(p) and st.st_size < 2**20:
                out[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            else:
                out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


# --------------------------------------------------------------------------- 1. orientation


def _tiff_blob(o: int, typ: int) -> bytes:
    val = struct.pack(">HH", o, 0) if typ == 3 else struct.pack(">I", o)
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHI", 0x0112, typ, 1) + val + b"\0" * 4


def _with_orientation(stored_bgr: np.ndarray, container: str, o: int) -> bytes:
    if container.startswith("jpeg"):
        d = cv2.imencode(".jpg", stored_bgr, [cv2.IMWRITE_JPEG_QUALITY, 98])[1].tobytes()
        p = b"Exif\x00\x00" + _tiff_blob(o, 4 if container == "jpeg-long" else 3)
        return d[:2] + b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p + d[2:]
    if container == "png":
        d = cv2.imencode(".png", stored_bgr)[1].tobytes()
        body = _tiff_blob(o, 3)
        chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
        return d[:33] + chunk + d[33:]
    d = cv2.imencode(".webp", stored_bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()  # lossless
    h, w = stored_bgr.shape[:2]
    body = _tiff_blob(o, 3)
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (
        h - 1).to_bytes(3, "little")
    payload = b"WEBP" + vp8x + d[12:] + b"EXIF" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


@pytest.mark.parametrize("container", ["jpeg", "jpeg-long", "png", "webp"])
def test_orientation_in_every_container_gives_the_displayed_frame(tmp_path, container):
    stored = np.full((24, 40, 3), 40, np.uint8)
    stored[0:8, 0:16] = (250, 250, 250)  # a marked corner block (BGR)
    for o in range(1, 9):
        data = _with_orientation(stored, container, o)
        head = probe_header(data)
        want = apply_orientation(stored, o)[:, :, ::-1]
        assert head is not None and head.orientation == o and (head.height, head.width) == want.shape[:2]
        got = decode_image(data, source=f"o{o}")
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 3, (container, o)
        if container in ("jpeg", "png"):  # OpenCV's own orientation agrees with detaug's where it applies one
            ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert np.abs(ref.astype(int) - want[:, :, ::-1].astype(int)).mean() < 3
    # A dataset labelled in the displayed frame serves the box on the block, orig_sizes oriented.
    root = tmp_path / container
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    suffix = {"jpeg": ".jpg", "jpeg-long": ".jpg", "png": ".png", "webp": ".webp"}[container]
    (root / "images" / f"x{suffix}").write_bytes(_with_orientation(stored, container, 6))
    # orientation 6: the stored top-left 16x8 block is displayed at the top-right, 8 wide and 16 high
    (root / "labels" / "x.txt").write_text(f"0 {(24 - 4) / 24:.6f} {8 / 40:.6f} {8 / 24:.6f} {16 / 40:.6f}\n")
    before = snapshot(root)
    ds = YoloDataset(root / "images", img_size=None, cache="lazy", progress=False)
    assert ds.orig_sizes.tolist() == [[40, 24]] and ds.report.ok
    s = ds[0]
    x1, y1, x2, y2 = s.boxes[0].round().astype(int)
    assert (x1, y1, x2, y2) == (16, 0, 24, 16) and s.image[y1:y2, x1:x2].mean() > 200
    ds[0]
    assert ds.cache.valid.all()  # the lazy slot filled: shapes agree
    assert snapshot(root) == before


# --------------------------------------------------------------------------- 2. bombs


def _jpeg_bomb() -> bytes:
    d = bytearray(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    sof = d.find(b"\xff\xc0")
    d[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
    return bytes(d[:sof]) + b"\x00" + bytes(d[sof:])  # one junk byte before SOF


BOMB_SCRIPT = r"""
import resource, sys, time
from detaug.io.images import ImageError, decode_image, inspect_image, read_image
vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2**20, vm + 512 * 2**20))
kinds = []
t = time.perf_counter()
for fn in (inspect_image, read_image):
    for p in sys.argv[1:]:
        try:
            fn(p)
            kinds.append("ok")
        except ImageError as e:
            kinds.append(e.kind + ":" + e.path)
print(" ".join(kinds), round(time.perf_counter() - t, 2))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
def test_bomb_with_unparsable_looking_header_is_refused_under_a_small_address_space(tmp_path):
    jpg = tmp_path / "bomb.jpg"
    jpg.write_bytes(_jpeg_bomb())
    pgm = tmp_path / "bomb.pgm"
    pgm.write_bytes(b"P5\n# c\n40000 40000\n255\n" + bytes(64))
    png = tmp_path / "bomb.png"  # a header nobody can read: never decoded
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    before = snapshot(tmp_path)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(jpg), str(pgm), str(png)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    kinds = r.stdout.split()[:-1]
    assert kinds == [f"too_large:{jpg}", f"too_large:{pgm}", f"not_image:{png}"] * 2
    assert float(r.stdout.split()[-1]) < 2.0 and time.perf_counter() - t < 60
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 3. titles


def test_visualize_survives_a_non_utf8_file_name(tmp_path):
    img = tmp_path / "images"
    img.mkdir()
    good = cv2.imencode(".png", np.full((40, 50, 3), 100, np.uint8))[1].tobytes()
    fd = os.open(os.fsencode(img) + b"/\xff\xfe.png", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, good)
    os.close(fd)
    before = snapshot(tmp_path)
    out = tmp_path / "o" / "grid.png"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "visualize.py"), "--data", str(img), "--out", str(out),
                        "--img-size", "64"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.is_file()
    out.unlink()
    out.parent.rmdir()
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 4, 5. folders


def _folder(root: Path, helpers) -> None:
    helpers.write(root / "images" / "a.png", helpers.encode(helpers.painted(32, 32, [(2, 2, 20, 20)])))
    helpers.write(root / "images" / "sub" / "b.png", helpers.encode(helpers.painted(32, 32, [])))
    helpers.write(root / "labels" / "a.txt", helpers.yolo_row(0, (2, 2, 20, 20), 32, 32) + "\n")


def test_symlink_loop_lists_each_real_file_once_and_is_reported(tmp_path, helpers):
    _folder(tmp_path, helpers)
    os.symlink(tmp_path / "images", tmp_path / "images" / "sub" / "again")
    before = snapshot(tmp_path)
    with pytest.warns(DatasetWarning, match="symlink_loop"):
        ds = YoloDataset(tmp_path / "images", img_size=None, progress=False)
    assert sorted(Path(f).name for f in ds.files) == ["a.png", "b.png"]
    (p,) = ds.report.of_kind("symlink_loop")
    assert p.file.endswith("sub/again")
    assert len(ds[0].boxes) == 1
    assert snapshot(tmp_path) == before


def test_unlistable_folders_are_reported_and_strict_raises(tmp_path, helpers, monkeypatch):
    _folder(tmp_path, helpers)
    before = snapshot(tmp_path)
    real = os.scandir
    blocked = {str(tmp_path / "images" / "sub")}

    def scandir(path="."):
        if str(path) in blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(F.os, "scandir", scandir)
    with pytest.warns(DatasetWarning, match="unlistable"):
        ds = YoloDataset(tmp_path / "images", img_size=None, progress=False)
    (p,) = ds.report.of_kind("unlistable")
    assert p.file == str(tmp_path / "images" / "sub") and "Permission denied" in p.message
    assert [Path(f).name for f in ds.files] == ["a.png"] and len(ds[0].boxes) == 1
    with pytest.raises(DatasetError, match=r"sub: unlistable"):
        YoloDataset(tmp_path / "images", img_size=None, progress=False, strict=True)
    blocked.add(str(tmp_path / "images"))
    with pytest.raises(DatasetError, match=r"no images found\n.*images: unlistable: cannot list folder"):
        YoloDataset(tmp_path / "images", img_size=None, progress=False)
    monkeypatch.undo()  # os.scandir is the real one again
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 6. COCO fields


def test_coco_ids_of_wrong_type_and_string_iscrowd_are_problems(tmp_path, helpers):
    helpers.write(tmp_path / "img" / "a.png", helpers.encode(helpers.painted(32, 32, [(2, 2, 20, 20)])))
    good = {"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 2, 18, 18]}
    anns = [good, {**good, "id": 2, "image_id": [1]}, {**good, "id": 3, "category_id": {}},
            {**good, "id": [2]}, {**good, "id": 5, "iscrowd": "0", "bbox": [1, 1, 5, 5]}]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}], "annotations": anns,
           "categories": [{"id": 3, "name": "x"}]}
    js = tmp_path / "ann.json"
    js.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())  # with a BOM, accepted
    before = snapshot(tmp_path)
    with pytest.warns(DatasetWarning, match="malformed"):
        ds = CocoDataset(js, tmp_path / "img", img_size=None, progress=False)
    bad = ds.report.of_kind("malformed")
    assert [p.file for p in bad] == [str(js)] * 4
    msgs = " | ".join(p.message for p in bad)
    for where, what in [("annotations[1]", "'image_id'"), ("annotations[2]", "'category_id'"),
                        ("annotations[3]", "'id'"), ("annotations[4]", "'iscrowd' must be 0 or 1")]:
        assert where in msgs and what in msgs
    assert len(ds) == 1 and ds[0].boxes.tolist() == [[2, 2, 20, 20]] and ds.report.crowd == 0
    with pytest.raises(DatasetError, match=r"ann\.json: malformed: annotation id 2 \(annotations\[1\]\): .image_id. must be"):
        CocoDataset(js, tmp_path / "img", img_size=None, progress=False, strict=True)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 7. special files, sizes


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_devices_and_huge_files_are_not_read(tmp_path, helpers):
    _folder(tmp_path, helpers)
    os.mkfifo(tmp_path / "images" / "fifo.jpg")
    helpers.write(tmp_path / "images" / "c.png", helpers.encode(helpers.painted(32, 32, [])))
    os.mkfifo(tmp_path / "labels" / "c.txt")
    os.symlink("/dev/zero", tmp_path / "images" / "zero.jpg")
    with open(tmp_path / "images" / "sparse.jpg", "wb") as f:
        f.truncate(4 * 2**30)
    helpers.write(tmp_path / "images" / "big.png", helpers.encode(helpers.painted(32, 32, [])))
    helpers.write(tmp_path / "labels" / "big.txt", "0 0.5 0.5 0.1 0.1\n" * 2000)
    before = snapshot(tmp_path)
    got: list = []
    t = threading.Thread(target=lambda: got.append(YoloDataset(
        tmp_path / "images", img_size=None, progress=False, cache=None, max_label_bytes=10_000)), daemon=True)
    t0 = time.perf_counter()
    with pytest.warns(DatasetWarning):
        t.start()
        t.join(timeout=30)
    assert not t.is_alive() and time.perf_counter() - t0 < 10, "the scan hung"
    (ds,) = got
    probs = {Path(p.file).name: (p.kind, p.message) for p in ds.report.problems}
    assert probs["fifo.jpg"][0] == "unreadable" and "FIFO" in probs["fifo.jpg"][1]
    assert probs["c.txt"][0] == "unreadable" and "FIFO" in probs["c.txt"][1]
    assert probs["zero.jpg"][0] == "unreadable" and "character device" in probs["zero.jpg"][1]
    assert probs["sparse.jpg"][0] == "too_large" and "max_image_bytes" in probs["sparse.jpg"][1]
    assert probs["big.txt"][0] == "too_large" and "max_label_bytes=10000" in probs["big.txt"][1]
    assert sorted(Path(f).name for f in ds.files) == ["a.png", "b.png"]
    assert [len(ds[i].boxes) for i in range(2)] == [1, 0]
    with pytest.raises(ValueError, match="max_label_bytes"):
        YoloDataset(tmp_path / "images", max_label_bytes=0, progress=False)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- 8. cache pickling


def test_lazy_cache_pickles_as_a_handle_and_spawn_workers_share_it(tmp_path, helpers):
    from torch.utils.data import DataLoader

    for i in range(3):
        helpers.write(tmp_path / "images" / f"{i}.png", helpers.encode(np.full((600, 800, 3), 50 * i, np.uint8)))
    ds = YoloDataset(tmp_path / "images", img_size=None, cache="auto", progress=False)
    assert ds.cache.lazy and ds.cache.shared and ds.cache.nbytes == 3 * 600 * 800 * 3
    assert len(pickle.dumps(ds)) < 100_000  # 4.3 MB of pixels are not in the pickle
    loader = DataLoader(ds, batch_size=1, num_workers=1, collate_fn=list, multiprocessing_context="spawn")
    served = [s for batch in loader for s in batch]
    assert [int(s.image[0, 0, 0]) for s in served] == [0, 50, 100]
    assert ds.cache.valid.all()  # filled by the spawn worker, visible in the parent
    assert np.array_equal(ds[2].image, served[2].image) and np.shares_memory(ds[2].image, ds.cache.buffer)


# --------------------------------------------------------------------------- 9. the lower items


def test_corrupt_jpeg_data_ending_in_eoi_is_detected_by_full_decode(tmp_path, helpers):
    rng = np.random.default_rng(0)
    d = cv2.imencode(".jpg", rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))[1].tobytes()
    sos = d.rfind(b"\xff\xda")
    p = helpers.write(tmp_path / "grey_bottom.jpg", d[: sos + (len(d) - sos) // 2] + b"\xff\xd9")
    assert inspect_image(p).height == 128  # headers only: looks complete
    with pytest.raises(ImageError, match=r"grey_bottom\.jpg: corrupt: libjpeg: .*[Cc]orrupt JPEG data"):
        inspect_image(p, full_decode=True)
    ok = helpers.write(tmp_path / "ok.jpg", d)
    assert inspect_image(ok, full_decode=True).height == 128


def test_label_numbers_must_be_plain_ascii_decimals(tmp_path, helpers):
    helpers.write(tmp_path / "images" / "a.png", helpers.encode(helpers.painted(32, 32, [])))
    rows = ["0 0.5 0.5 0.2 0.2", "0 0.2_5 0.5 0.1 0.1", "0 \u0660.\u0665 0.5 0.1 0.1", "0 \uff10.5 0.5 0.1 0.1",
            "0 0.5 5e-1 1E-1 .1"]
    lab = helpers.write(tmp_path / "labels" / "a.txt", "\n".join(rows) + "\n")
    before = snapshot(tmp_path)
    labels, problems = read_label_file(lab, nc=1)
    assert [(p.kind, p.line, p.file) for p in problems] == [("non_numeric", k, str(lab)) for k in (2, 3, 4)]
    assert len(labels) == 2
    assert snapshot(tmp_path) == before


def test_label_parsing_memory_is_bounded(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.uniform(0.2, 0.8, (15_000, 4))
    text = "".join(f"{i % 80} {a:.6f} {b:.6f} {c / 5:.6f} {d / 5:.6f}\n" for i, (a, b, c, d) in enumerate(v))
    p = tmp_path / "big.txt"
    p.write_text(text)
    size = p.stat().st_size
    small = tmp_path / "small.txt"
    small.write_text(text[:2000])
    read_label_file(small, nc=80)  # lazy imports and caches first, outside the measurement
    tracemalloc.start()
    labels, problems = read_label_file(p, nc=80)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(labels) == 15_000 and not problems
    assert peak < 10 * size, f"peak {peak / size:.1f}x the file size"


def test_visualize_out_is_checked_before_any_work(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import visualize as tool
    finally:
        sys.path.pop(0)
    folder = tmp_path / "outdir"
    folder.mkdir()
    for out, msg in [(folder, "is a folder"), (tmp_path / "x.txt", "must end in .png")]:
        with pytest.raises(SystemExit) as e:
            tool.main(["--data", str(tmp_path / "does-not-exist"), "--out", str(out)])
        assert e.value.code == 2 and msg in capsys.readouterr().err


def test_nc_as_a_string_says_so(tmp_path, helpers):
    data = helpers.make_yolo(tmp_path)
    data.yaml.write_text("path: .\ntrain: images/train\nnames: [a, b, c]\nnc: '3'\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: 'nc' must be an integer, got '3' \(str\)"):
        YoloDataset(data.yaml, progress=False)


def test_strict_failure_after_the_scan_does_not_promise_a_replacement(tmp_path, helpers):
    data = helpers.make_yolo(tmp_path)
    ds = YoloDataset(data.yaml, img_size=None, strict=True, cache=None, progress=False)
    (data.images / "a.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError) as e:
        ds[0]
    assert "a.png: decode_failed" in str(e.value) and "strict mode stops here" in str(e.value)
    assert "replaced" not in str(e.value)


def test_auto_cache_memory_warning_names_auto(tmp_path, helpers, monkeypatch):
    from detaug.io.cache import ImageCache

    data = helpers.make_yolo(tmp_path)
    monkeypatch.setattr(ImageCache, "fits_in_memory", staticmethod(lambda nbytes, fraction=0.8: False))
    with pytest.warns(DatasetWarning, match=r"cache='auto': the resized images need"):
        ds = YoloDataset(data.yaml, progress=False)
    assert ds.cache is None


def test_hidden_images_orphan_and_uppercase_labels_are_counted(tmp_path, helpers):
    data = helpers.make_yolo(tmp_path)
    helpers.write(data.images / ".hidden.png", helpers.encode(helpers.painted(32, 32, [])))
    helpers.write(data.labels / "gone.txt", "0 0.5 0.5 0.1 0.1\n")
    helpers.write(data.images / "d.png", helpers.encode(helpers.painted(32, 32, [])))
    helpers.write(data.labels / "d.TXT", "0 0.5 0.5 0.1 0.1\n")
    before = snapshot(tmp_path)
    with pytest.warns(DatasetWarning, match="orphan_label"):
        ds = YoloDataset(data.yaml, progress=False)
    assert ds.report.counts() == {"hidden_file": 1, "orphan_label": 2}
    (hidden,) = ds.report.of_kind("hidden_file")
    assert hidden.file.endswith(".hidden.png")
    msgs = {Path(p.file).name: p.message for p in ds.report.of_kind("orphan_label")}
    assert set(msgs) == {"gone.txt", "d.TXT"} and "must be named d.txt" in msgs["d.TXT"]
    assert len(ds) == 4 and ds.report.objects == 3
    assert snapshot(tmp_path) == before
