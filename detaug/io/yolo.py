"""YOLO txt labels and Ultralytics-style data yaml files.

A data yaml looks like::

    path: ../datasets/coco128   # dataset root; relative paths resolve against the yaml's folder
    train: images/train2017     # a folder, a list of folders, a .txt list of image paths, or an image
    val: images/train2017
    names: [person, bicycle]    # or a dict {0: person, 1: bicycle}
    nc: 2                       # optional; must equal len(names)

Labels are found by replacing the LAST ``images`` path component of an image
path with ``labels`` and the suffix with ``.txt`` (Ultralytics' rule);
``a/images/b/x.jpg`` -> ``a/labels/b/x.txt``. An image with no ``images``
component has its label next to it. A missing or empty label file means a
background image.

Rows are ``cls cx cy w h`` (normalised) or polygons ``cls x1 y1 ... xk yk``
(normalised, k >= 3; the box is the polygon's extent).

>>> image_to_label_path("data/images/train/images/x.jpg").as_posix()
'data/images/train/labels/x.txt'
>>> labels, problems = parse_label_text("0 0.5 0.5 0.2 0.4\\n1 0.5 0.5 2 0.1\\n", nc=2, file="a.txt")
>>> labels.boxes.round(3).tolist(), [str(p) for p in problems]
([[0.4, 0.3, 0.6, 0.7]], ['a.txt:2: out_of_range: box x1=-0.5 x2=1.5 y1=0.45 y2=0.55 is outside [0, 1] beyond the tolerance 0.001'])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from detaug.io import validate as V
from detaug.io.files import FileProblem, read_regular_file, walk_files
from detaug.io.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    IMAGE_SUFFIXES,
    KNOWN_UNSUPPORTED_SUFFIXES,
    ImageError,
    ImageHeader,
    inspect_image,
    map_progress,
)
from detaug.io.labels import ImageLabels, LabelTable, ScanResult
from detaug.io.validate import DatasetError, Problem, ProblemSink, Report
from detaug.io.yolo_txt import (
    DEFAULT_MAX_LABEL_BYTES,
    DEFAULT_TOLERANCE,
    ROUNDING_EPS,
    parse_label_text,
    read_label_file,
)

__all__ = [
    "DEFAULT_MAX_LABEL_BYTES",
    "DEFAULT_TOLERANCE",
    "ROUNDING_EPS",
    "DataConfig",
    "load_data_yaml",
    "image_to_label_path",
    "list_images",
    "parse_label_text",
    "read_label_file",
    "report_orphan_labels",
    "scan_yolo",
]



@dataclass(frozen=True)
class DataConfig:
    """A parsed data yaml.

    Attributes:
        yaml_path: the yaml file.
        root: the dataset root (``path`` resolved against the yaml's folder).
        splits: split name -> list of entries (folders, .txt lists, image files),
            resolved against ``root``.
        names: class names, index = class id.
        raw: the yaml's mapping as loaded.
    """

    yaml_path: Path
    root: Path
    splits: dict[str, list[Path]]
    names: list[str]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)


def _parse_names(names: Any, nc: Any, file: Path) -> list[str]:
    if names is None:
        if nc is None:
            raise DatasetError(f"{file}: the data yaml has neither 'names' nor 'nc'")
        if isinstance(nc, bool) or not isinstance(nc, int) or nc <= 0:
            raise DatasetError(f"{file}: 'nc' must be a positive integer, got {nc!r}")
        return [f"class{i}" for i in range(nc)]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DatasetError(f"{file}: 'names' keys must be integer class ids, got {list(names)!r}") from None
        if keys != list(range(len(keys))):
            raise DatasetError(f"{file}: 'names' keys must be 0..{len(keys) - 1} without gaps, got {keys}")
        by_id = {int(k): v for k, v in names.items()}
        out = [str(by_id[i]) for i in range(len(keys))]
    elif isinstance(names, (list, tuple)):
        out = [str(n) for n in names]
    else:
        raise DatasetError(f"{file}: 'names' must be a list or a mapping id -> name, got {type(names).__name__}")
    if not out:
        raise DatasetError(f"{file}: 'names' is empty")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int)):
        raise DatasetError(f"{file}: 'nc' must be an integer, got {nc!r} ({type(nc).__name__})")
    if nc is not None and nc != len(out):
        raise DatasetError(f"{file}: 'nc' is {nc} but 'names' has {len(out)} entries")
    return out


def load_data_yaml(path: str | os.PathLike[str]) -> DataConfig:
    """Parse an Ultralytics-style data yaml.

    ``path`` (optional, default: the yaml's folder) resolves against the
    yaml's folder when relative; split entries resolve against it.

    Raises:
        DatasetError: naming the yaml, for unreadable yaml or bad keys.
    """
    file = Path(path)
    try:
        raw = yaml.safe_load(read_regular_file(file, max_bytes=DEFAULT_MAX_LABEL_BYTES).decode("utf-8-sig"))
    except FileProblem as e:
        if e.kind == V.MISSING_FILE:
            raise DatasetError(f"{file}: data yaml not found") from None
        raise DatasetError(f"{file}: cannot read data yaml: {e.detail}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{file}: cannot read data yaml: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DatasetError(f"{file}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{file}: a data yaml must be a mapping, got {type(raw).__name__}")
    base = file.resolve().parent
    root = Path(os.path.expanduser(str(raw["path"]))) if raw.get("path") else base
    if not root.is_absolute():
        root = (base / root).resolve()
    names = _parse_names(raw.get("names"), raw.get("nc"), file)
    splits: dict[str, list[Path]] = {}
    for key in ("train", "val", "test"):
        value = raw.get(key)
        if value is None:
            continue
        entries = value if isinstance(value, (list, tuple)) else [value]
        resolved = []
        for e in entries:
            if not isinstance(e, str):
                raise DatasetError(f"{file}: '{key}' entries must be paths, got {e!r}")
            p = Path(os.path.expanduser(e))
            resolved.append(p if p.is_absolute() else root / p)
        splits[key] = resolved
    return DataConfig(file, root, splits, names, raw)


def image_to_label_path(image_path: str | os.PathLike[str]) -> Path:
    """Label txt of an image: the last ``images`` component becomes ``labels``, suffix ``.txt``.

    Without an ``images`` component the label sits next to the image.

    >>> image_to_label_path("/d/images/x.y.png").as_posix()
    '/d/labels/x.y.txt'
    >>> image_to_label_path("/d/photos/x.jpg").as_posix()
    '/d/photos/x.txt'
    """
    p = Path(image_path)
    parts = list(p.parts)
    for i in range(len(parts) - 2, -1, -1):  # never the file name itself
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _scan_folder(folder: Path, sink: ProblemSink) -> list[Path]:
    out: list[Path] = []
    for p in walk_files(folder, lambda kind, path, msg: sink.add(kind, path, None, msg)):
        suffix = p.suffix.lower()
        if p.name.startswith("."):
            if suffix in IMAGE_SUFFIXES:
                sink.add(V.HIDDEN_FILE, p, None, "hidden image (name starts with '.'); not used")
        elif suffix in IMAGE_SUFFIXES:
            out.append(p)
        elif suffix in KNOWN_UNSUPPORTED_SUFFIXES:
            sink.add(V.UNSUPPORTED_FORMAT, p, None,
                     f"suffix {p.suffix!r} is not a supported image format (supported: "
                     f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    return out


def report_orphan_labels(images: Sequence[Path], sink: ProblemSink) -> int:
    """Report label files (``*.txt`` in any case) in the images' label folders that no image uses.

    Only label folders that differ from the image folders are looked at (a
    ``.txt`` next to the images may be an image list). A ``x.TXT`` whose image
    ``x.jpg`` exists gets a message saying the label must be named ``x.txt``.

    Returns:
        The number of orphan label files (each reported as ``orphan_label``).
    """
    used = {os.path.normcase(os.path.normpath(str(image_to_label_path(p)))) for p in images}
    folders = sorted({image_to_label_path(p).parent for p in images} - {p.parent for p in images})
    n = 0
    for folder in folders:
        try:
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it if e.name.lower().endswith(".txt") and e.is_file())
        except OSError:
            continue  # no label folder: background images
        for name in names:
            p = folder / name
            if os.path.normcase(os.path.normpath(str(p))) in used:
                continue
            n += 1
            exact = os.path.normcase(os.path.normpath(str(p.with_suffix(".txt"))))
            hint = (f" (the label of that image must be named {p.stem}.txt, with a lower-case suffix)"
                    if not name.endswith(".txt") and exact in used else "")
            sink.add(V.ORPHAN_LABEL, p, None, f"label file has no image; not used{hint}")
    return n


def list_images(entries: Sequence[str | os.PathLike[str]], sink: ProblemSink | None = None) -> list[Path]:
    """Image paths of split entries: folders (recursive, sorted), .txt lists, single images.

    Relative paths in a .txt list resolve against the list's folder. Listed
    files with an unsupported suffix are reported (``unsupported_format``)
    and left out; listed files that do not exist are kept (the scan reports
    them as ``missing_file``). Duplicates are removed, first occurrence kept.

    Raises:
        DatasetError: an entry that does not exist.
    """
    sink = sink or ProblemSink(Report())
    out: list[Path] = []
    for entry in entries:
        e = Path(entry)
        if e.is_dir():
            out += _scan_folder(e, sink)
        elif e.suffix.lower() == ".txt" and e.is_file():
            try:
                lines = read_regular_file(e, max_bytes=DEFAULT_MAX_LABEL_BYTES).decode("utf-8-sig").splitlines()
            except (FileProblem, UnicodeDecodeError) as err:
                raise DatasetError(f"{e}: cannot read image list: {err}") from None
            for lineno, line in enumerate(lines, 1):
                s = line.strip()
                if not s or s.startswith("#"):
                    continue
                p = Path(os.path.expanduser(s))
                p = p if p.is_absolute() else e.parent / p
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    sink.add(V.UNSUPPORTED_FORMAT, p, None,
                             f"listed in {e}:{lineno}: suffix {p.suffix!r} is not a supported image format")
                    continue
                out.append(p)
        elif e.is_file():
            if e.suffix.lower() not in IMAGE_SUFFIXES:
                sink.add(V.UNSUPPORTED_FORMAT, e, None, f"suffix {e.suffix!r} is not a supported image format")
            else:
                out.append(e)
        elif e.exists():
            raise DatasetError(f"{e}: not a folder, an image list or an image file")
        else:
            raise DatasetError(f"{e}: image folder / list does not exist")
    seen: set[str] = set()
    unique = []
    for p in out:
        key = os.path.normpath(str(p))
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


@dataclass(frozen=True)
class _Scanned:
    path: Path
    label_path: Path
    header: ImageHeader | None
    labels: ImageLabels | None
    problems: list[Problem]


def scan_yolo(
    source: str | os.PathLike[str],
    split: str = "train",
    *,
    names: Sequence[str] | None = None,
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_image_side: int = DEFAULT_MIN_SIDE,
    coord_tolerance: float = DEFAULT_TOLERANCE,
    full_decode: bool = False,
    skip_image_on_bad_row: bool = False,
    polygons: bool | None = None,
    progress: bool = True,
    workers: int = 8,
    max_image_bytes: int | None = DEFAULT_MAX_IMAGE_BYTES,
    max_label_bytes: int | None = DEFAULT_MAX_LABEL_BYTES,
) -> ScanResult:
    """Find, check and parse a YOLO dataset split.

    Args:
        source: a data yaml (``split`` selects the entry), an images folder, a
            .txt list of image paths, or one image.
        names: class names when ``source`` is not a yaml (default: inferred
            as ``"0".."K"`` from the largest class id found).
        strict: raise :class:`DatasetError` at the first error-level problem.
        max_pixels, min_image_side, full_decode: see :func:`inspect_image`.
        coord_tolerance: see :func:`parse_label_text`.
        skip_image_on_bad_row: skip an image if any of its rows is bad (instead of
            dropping only the row), so no object goes unlabelled.
        polygons: see :meth:`LabelTable.build`.
        progress: show a tqdm bar during the scan.
        workers: scan threads.
        max_image_bytes, max_label_bytes: files larger than this are not read
            (``too_large``; ``None``: no limit).

    Folders are walked following symlinks, each real folder once
    (``symlink_loop``); unlistable folders are ``unlistable``; hidden images
    (``hidden_file``) and label files no image uses (``orphan_label``) are counted.
    """
    src = Path(source)
    report = Report(source=str(src))
    sink = ProblemSink(report, strict)
    if src.suffix.lower() in (".yaml", ".yml"):
        cfg = load_data_yaml(src)
        if split not in cfg.splits:
            raise DatasetError(f"{src}: split {split!r} not found (has: {', '.join(cfg.splits) or 'none'})")
        entries: list[Path] = cfg.splits[split]
        class_names: list[str] | None = cfg.names
        report.source = f"{src} [{split}]"
    else:
        if not src.exists():
            raise DatasetError(f"{src}: source does not exist")
        entries = [src]
        class_names = list(names) if names is not None else None
    nc = len(class_names) if class_names is not None else None
    files = list_images(entries, sink)
    if not files:
        why = [str(p) for p in report.problems if p.kind in (V.UNLISTABLE, V.HIDDEN_FILE, V.UNSUPPORTED_FORMAT)]
        raise DatasetError(f"{report.source}: no images found" + "".join(f"\n  {w}" for w in why[:5]),
                           report.problems)
    report_orphan_labels(files, sink)

    def scan_one(p: Path) -> _Scanned:
        lp = image_to_label_path(p)
        try:
            head = inspect_image(p, max_pixels=max_pixels, min_side=min_image_side, full_decode=full_decode,
                                 max_bytes=max_image_bytes)
        except ImageError as e:
            return _Scanned(p, lp, None, None, [e.to_problem()])
        labels, probs = read_label_file(lp, nc=nc, tolerance=coord_tolerance, max_bytes=max_label_bytes)
        return _Scanned(p, lp, head, labels, probs)

    kept: list[_Scanned] = []
    results = map_progress(scan_one, files, workers=workers, progress=progress,
                           desc=f"Scanning {Path(report.source).name}")
    with closing(results):  # strict mode raising here cancels the pending scan work at once
        for r in results:
            report.images_found += 1
            sink.extend(r.problems)
            if r.header is None or r.labels is None:
                continue
            if skip_image_on_bad_row and any(p.severity == "error" for p in r.problems):
                continue
            kept.append(r)
    if class_names is None:
        top = max((int(r.labels.classes.max()) for r in kept if r.labels is not None and len(r.labels)),
                  default=-1)
        class_names = [str(i) for i in range(top + 1)]
    return _result(kept, class_names, report, polygons)


def _result(kept: list[_Scanned], names: list[str], report: Report, polygons: bool | None = None) -> ScanResult:
    labels = [r.labels for r in kept if r.labels is not None]
    table = LabelTable.build(labels, polygons)
    report.images_used = len(kept)
    report.objects = table.num_objects
    report.background = sum(1 for lab in labels if len(lab) == 0)
    sizes = np.array([[r.header.height, r.header.width] for r in kept if r.header is not None],
                     dtype=np.int64).reshape(-1, 2)
    return ScanResult(
        files=[str(r.path) for r in kept],
        label_files=[str(r.label_path) for r in kept],
        ids=[r.path.stem for r in kept],
        sizes=sizes,
        labels=table,
        names=names,
        report=report,
    )
