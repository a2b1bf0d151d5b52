"""Problems found in a dataset's inputs, the validation report, strict mode.

Every loader in :mod:`detaug.io` records what is wrong with its inputs as
:class:`Problem` objects (kind, file, line, message) in a :class:`Report`.
Lenient mode (the default) skips bad files and drops bad rows, and the
dataset emits ONE :class:`DatasetWarning` summarising the counts per kind
with the first few examples. ``strict=True`` turns every problem of severity
``"error"`` into a :class:`DatasetError` (a :class:`ValueError`) whose message
names the file and, for label rows, the line.

Problem kinds (``KINDS`` maps each to its severity and meaning):

>>> sorted(k for k, (sev, _) in KINDS.items() if sev == "warning")
['clipped', 'hidden_file', 'orphan_label', 'symlink_loop']
>>> r = Report(source="data.yaml")
>>> r.add(Problem(BAD_CLASS, "labels/a.txt", 3, "class id 7 >= nc=5"))
>>> r.add(Problem(CLIPPED, "labels/a.txt", 4, "x2=1.0004 clipped to 1"))
>>> r.counts()
{'bad_class': 1, 'clipped': 1}
>>> str(r.problems[0])
'labels/a.txt:3: bad_class: class id 7 >= nc=5'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DatasetError",
    "DatasetWarning",
    "Problem",
    "Report",
    "ProblemSink",
    "KINDS",
    "Severity",
]

Severity = Literal["error", "warning"]

# --- kinds: files -------------------------------------------------------------------------
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
UNREADABLE = "unreadable"
NOT_IMAGE = "not_image"
TRUNCATED = "truncated"
UNSUPPORTED_FORMAT = "unsupported_format"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
SIZE_MISMATCH = "size_mismatch"
DECODE_FAILED = "decode_failed"
CORRUPT = "corrupt"
UNLISTABLE = "unlistable"
SYMLINK_LOOP = "symlink_loop"
HIDDEN_FILE = "hidden_file"
ORPHAN_LABEL = "orphan_label"
# --- kinds: label rows / annotations ------------------------------------------------------
COLUMNS = "columns"
NON_NUMERIC = "non_numeric"
NON_FINITE = "non_finite"
OUT_OF_RANGE = "out_of_range"
CLIPPED = "clipped"
ZERO_SIZE = "zero_size"
BAD_CLASS = "bad_class"
DUPLICATE = "duplicate"
ODD_COORDINATES = "odd_coordinates"
TOO_FEW_POINTS = "too_few_points"
# --- kinds: COCO json ---------------------------------------------------------------------
MISSING_KEY = "missing_key"
MALFORMED = "malformed"
UNKNOWN_IMAGE = "unknown_image"
UNKNOWN_CATEGORY = "unknown_category"
DUPLICATE_ID = "duplicate_id"

#: kind -> (severity, what it means). "error": the file was skipped or the row
#: dropped (strict mode raises). "warning": the input was repaired (kept).
KINDS: dict[str, tuple[Severity, str]] = {
    MISSING_FILE: ("error", "image file does not exist; image skipped"),
    EMPTY_FILE: ("error", "zero-byte image file; image skipped"),
    UNREADABLE: ("error", "file could not be read (permissions, encoding, not a regular file); skipped"),
    NOT_IMAGE: ("error", "file content is not a decodable image; image skipped"),
    TRUNCATED: ("error", "image file is truncated; image skipped"),
    UNSUPPORTED_FORMAT: ("error", "file suffix is not a supported image format; skipped"),
    TOO_SMALL: ("error", "image side below min_image_side; image skipped"),
    TOO_LARGE: ("error", "image over max_pixels (decompression bomb), or file over its byte limit "
                "(max_image_bytes / max_label_bytes); skipped"),
    SIZE_MISMATCH: ("error", "image size differs from the size the annotations declare; skipped"),
    DECODE_FAILED: ("error", "image failed to decode after the scan; replaced by another index "
                    "(strict mode raises)"),
    CORRUPT: ("error", "image data is corrupt (the decoder reported it; full_decode=True); skipped"),
    UNLISTABLE: ("error", "folder cannot be listed (permissions, I/O error); its images are not used"),
    SYMLINK_LOOP: ("warning", "folder reached again through a symlink; its files are listed once"),
    HIDDEN_FILE: ("warning", "image whose name starts with '.'; not used"),
    ORPHAN_LABEL: ("warning", "label file without an image (or not named '<image stem>.txt'); not used"),
    COLUMNS: ("error", "label row has a wrong number of columns; row dropped"),
    NON_NUMERIC: ("error", "label row has a non-numeric value; row dropped"),
    NON_FINITE: ("error", "label row has NaN or inf; row dropped"),
    OUT_OF_RANGE: ("error", "coordinates outside the image beyond the tolerance; row dropped"),
    CLIPPED: ("warning", "coordinates outside the image within the tolerance; clipped"),
    ZERO_SIZE: ("error", "box with zero or negative width/height/area; row dropped"),
    BAD_CLASS: ("error", "class id is negative, not an integer, or >= nc; row dropped"),
    DUPLICATE: ("error", "exact duplicate of an earlier row; duplicate dropped"),
    ODD_COORDINATES: ("error", "polygon with an odd number of coordinates; row/part dropped"),
    TOO_FEW_POINTS: ("error", "polygon with fewer than 3 points; row/part dropped"),
    MISSING_KEY: ("error", "required JSON key missing; entry dropped"),
    MALFORMED: ("error", "JSON value of the wrong type or length; entry dropped"),
    UNKNOWN_IMAGE: ("error", "annotation refers to an image id not in 'images'; dropped"),
    UNKNOWN_CATEGORY: ("error", "annotation refers to a category id not in 'categories'; dropped"),
    DUPLICATE_ID: ("error", "id used by an earlier entry; later entry dropped"),
}


class DatasetError(ValueError):
    """Bad dataset input. The message names the file (and line).

    Attributes:
        problems: the problems that caused it (may be empty for config errors).
    """

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = tuple(problems)

    def __reduce__(self) -> tuple[type, tuple[str, tuple[Problem, ...]]]:
        return type(self), (str(self), self.problems)


class DatasetWarning(UserWarning):
    """Category of the one summary warning a lenient dataset emits."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    Attributes:
        kind: one of :data:`KINDS` (e.g. ``"truncated"``, ``"bad_class"``).
        file: the file it is in (image, label txt or annotation json), as a string.
        line: 1-based line in a label file, or ``None``.
        message: what is wrong, human readable (COCO problems name the annotation id).
    """

    kind: str
    file: str
    line: int | None
    message: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: unknown problem kind {self.kind!r}")
        object.__setattr__(self, "file", str(self.file))

    @property
    def severity(self) -> Severity:
        """``"error"`` (input skipped or dropped) or ``"warning"`` (input repaired)."""
        return KINDS[self.kind][0]

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class Report:
    """Everything a dataset's scan found.

    Attributes:
        source: what was scanned (data yaml, folder or annotation json).
        problems: every problem, in scan order.
        images_found: image entries seen (files listed or found, JSON images).
        images_used: images in the dataset after skipping bad ones.
        background: used images without any object.
        objects: objects (boxes) in the dataset.
        crowd: COCO ``iscrowd=1`` annotations left out of training boxes.
    """

    source: str = ""
    problems: list[Problem] = field(default_factory=list)
    images_found: int = 0
    images_used: int = 0
    background: int = 0
    objects: int = 0
    crowd: int = 0

    def add(self, problem: Problem) -> None:
        """Append one problem."""
        self.problems.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        """Append several problems."""
        self.problems.extend(problems)

    def counts(self) -> dict[str, int]:
        """Number of problems per kind, kinds sorted by name."""
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    def of_kind(self, kind: str) -> list[Problem]:
        """The problems of one kind."""
        return [p for p in self.problems if p.kind == kind]

    @property
    def errors(self) -> list[Problem]:
        """Problems of severity ``"error"`` (something was skipped or dropped)."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems of severity ``"warning"`` (something was repaired)."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def summary(self, max_examples: int = 5) -> str:
        """Counts per kind and the first ``max_examples`` problems, one per line.

        >>> r = Report(source="x.yaml", images_found=3, images_used=2)
        >>> r.add(Problem(TRUNCATED, "a.jpg", None, "JPEG has no end-of-image marker"))
        >>> print(r.summary())
        x.yaml: 2 of 3 images used, 0 objects, 0 background; 1 problem (1 error, 0 warnings)
          truncated: 1  (image file is truncated; image skipped)
          e.g. a.jpg: truncated: JPEG has no end-of-image marker
        """
        n = len(self.problems)
        n_err = len(self.errors)
        head = (
            f"{self.source}: {self.images_used} of {self.images_found} images used, "
            f"{self.objects} objects, {self.background} background"
        )
        if self.crowd:
            head += f", {self.crowd} crowd annotations excluded"
        head += f"; {n} problem{'s' if n != 1 else ''} ({n_err} error{'s' if n_err != 1 else ''}, "
        head += f"{n - n_err} warning{'s' if n - n_err != 1 else ''})"
        lines = [head]
        lines += [f"  {k}: {c}  ({KINDS[k][1]})" for k, c in self.counts().items()]
        lines += [f"  e.g. {p}" for p in self.problems[:max_examples]]
        if n > max_examples:
            lines.append(f"  ... and {n - max_examples} more (see dataset.report.problems)")
        return "\n".join(lines)


class ProblemSink:
    """Where scanners put problems: a report, plus strict-mode raising.

    In strict mode the first problem of severity ``"error"`` raises
    :class:`DatasetError` at once (its message is ``str(problem)``, so it names
    the file and line); warnings are only recorded.

    >>> sink = ProblemSink(Report(), strict=True)
    >>> _ = sink.add(CLIPPED, "a.txt", 2, "x2=1.0002 clipped to 1")
    >>> sink.add(NON_FINITE, "a.txt", 3, "value 'nan'")
    Traceback (most recent call last):
    ...
    detaug.io.validate.DatasetError: a.txt:3: non_finite: value 'nan'
    """

    def __init__(self, report: Report, strict: bool = False) -> None:
        self.report = report
        self.strict = bool(strict)

    def add(self, kind: str, file: object, line: int | None, message: str) -> Problem:
        """Record one problem (raises in strict mode for errors) and return it."""
        p = Problem(kind, str(file), line, message)
        self.report.add(p)
        if self.strict and p.severity == "error":
            raise DatasetError(str(p), [p])
        return p

    def extend(self, problems: Iterable[Problem]) -> None:
        """Record problems found elsewhere (e.g. in a worker thread), raising like :meth:`add`."""
        for p in problems:
            self.report.add(p)
            if self.strict and p.severity == "error":
                raise DatasetError(str(p), [p])
