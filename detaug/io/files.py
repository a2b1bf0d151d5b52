"""Reading user files safely: regular files only, a size limit, folders walked once.

Nothing here writes to the user's files. Every read goes through
:func:`read_regular_file`: it opens without blocking (a FIFO named
``x.jpg`` cannot hang the scan), checks that what it opened is a regular
file (``/dev/zero`` behind a symlink is refused), and refuses a file larger
than the limit *before* reading it (a 4 GB sparse file costs nothing).
:func:`walk_files` lists a folder tree following symlinks, but every real
folder once (a loop ``sub/again -> .`` is reported, not followed), and
reports folders it cannot list.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.txt").write_bytes(b"hello")
>>> read_regular_file(d / "a.txt", max_bytes=10)
b'hello'
>>> read_regular_file(d / "a.txt", max_bytes=3)
Traceback (most recent call last):
...
detaug.io.files.FileProblem: ...a.txt: too_large: file is 5 bytes, larger than the limit max_bytes=3
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from detaug.io import validate as V

__all__ = ["FileProblem", "read_regular_file", "walk_files", "file_kind"]


class FileProblem(ValueError):
    """A file could not be read. ``kind`` is a problem kind of :mod:`detaug.io.validate`."""

    def __init__(self, kind: str, path: str | os.PathLike[str], message: str) -> None:
        self.kind = kind
        self.path = str(path)
        self.detail = message
        super().__init__(f"{self.path}: {kind}: {message}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return type(self), (self.kind, self.path, self.detail)


def file_kind(mode: int) -> str:
    """A readable name of what a stat mode is ('FIFO', 'directory', ...).

    >>> file_kind(stat.S_IFIFO)
    'FIFO (named pipe)'
    """
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _fmt_bytes(n: int) -> str:
    return f"{n} bytes" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int | None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes (``None``: no limit).

    Raises:
        FileProblem: kind ``missing_file`` (absent), ``unreadable`` (permissions,
            not a regular file: FIFO, device, folder, socket) or ``too_large``
            (over ``max_bytes``, found before reading anything).
    """
    p = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise FileProblem(V.MISSING_FILE, p, "file not found") from None
    except OSError as e:
        raise FileProblem(V.UNREADABLE, p, f"cannot open: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem(V.UNREADABLE, p, f"not a regular file (a {file_kind(st.st_mode)}); not read")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileProblem(V.TOO_LARGE, p, f"file is {_fmt_bytes(st.st_size)}, larger than the limit "
                              f"max_bytes={max_bytes}")
        limit = st.st_size + 1 if max_bytes is None else max_bytes + 1
        chunks = []
        got = 0
        while True:  # read at most limit bytes even if the file grows meanwhile
            try:
                b = os.read(fd, min(limit - got, max(st.st_size + 1 - got, 1 << 16), 1 << 24))
            except OSError as e:
                raise FileProblem(V.UNREADABLE, p, f"cannot read: {e.strerror or e}") from None
            if not b:
                break
            chunks.append(b)
            got += len(b)
            if got >= limit:
                break
        if max_bytes is not None and got > max_bytes:
            raise FileProblem(V.TOO_LARGE, p, f"file grew past the limit max_bytes={max_bytes} while read")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def walk_files(folder: str | os.PathLike[str], report: Callable[[str, Path, str], None]
               ) -> Iterator[Path]:
    """Files under ``folder``, recursively, sorted per folder; hidden folders skipped.

    Hidden files (name starting with ``.``) are yielded too: the caller decides
    (the YOLO scan reports hidden images as ``hidden_file`` and does not use them).

    Symlinked folders are followed, but each real folder is listed once: a
    folder reached again (a symlink loop, or a second link to the same folder)
    is reported through ``report(kind, path, message)`` with kind
    ``symlink_loop`` and not entered. A folder that cannot be listed is
    reported with kind ``unlistable``. Files are yielded in a stable order
    (names sorted, folders depth-first).
    """
    root = Path(folder)
    seen: dict[tuple[int, int], Path] = {}

    def visit(d: Path) -> Iterator[Path]:
        try:
            st = os.stat(d)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                report(V.SYMLINK_LOOP, d, f"folder is {seen[key]} again (reached through a symlink); "
                       "its files are listed once")
                return
            seen[key] = d
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            report(V.UNLISTABLE, d, f"cannot list folder: {e.strerror or e}; its images are not used")
            return
        subdirs: list[Path] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.name.startswith("."):
                    subdirs.append(Path(entry.path))
            else:
                yield Path(entry.path)
        for sub in subdirs:
            yield from visit(sub)

    yield from visit(root)
