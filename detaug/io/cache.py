"""The shared image cache: all resized images of a dataset in ONE uint8 buffer.

The buffer lives in a named shared-memory segment
(:class:`multiprocessing.shared_memory.SharedMemory`) whenever the system's
shared memory has room for it. Pickling a cache then sends only the segment's
name and the offset tables, never the pixels: DataLoader workers started with
``spawn`` (the default on macOS and Windows) or ``forkserver`` attach to the
same pages that ``fork`` workers inherit, and an image one worker decodes
into a lazy cache is served from RAM to all of them. The process that created
the segment unlinks its name when the cache is garbage collected or the
process exits (Python's resource tracker unlinks it if that process is
killed). Without room in shared memory the buffer is process-private
anonymous memory (still shared by ``fork`` workers); a lazy one then pickles
as a new, empty private lazy cache, a whole one as its pixels.

>>> c = ImageCache.allocate([(2, 3), (1, 1)])
>>> c.get(0) is None, c.put(0, np.ones((2, 3, 3), np.uint8)), int(c.get(0).sum())
(True, True, 18)
>>> import pickle
>>> len(pickle.dumps(c)) < 2000 or not c.shared
True
>>> d = pickle.loads(pickle.dumps(c))
>>> int(d.get(0).sum()) if c.shared else 18
18
"""

from __future__ import annotations

import mmap
import os
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import shared_memory
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

__all__ = ["ImageCache", "map_progress", "available_memory"]

T = TypeVar("T")
R = TypeVar("R")

#: Bytes reserved at the head of a segment for the valid flags (rounded up to this).
_ALIGN = 64
#: Linux >= 5.14 madvise: map a range's pages writable in one call (Python 3.11's mmap lacks the name).
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def map_progress(
    fn: Callable[[T], R], items: Sequence[T], *, workers: int = 8, progress: bool = True,
    desc: str = "", unit: str = "img",
) -> Iterator[R]:
    """``fn`` over ``items`` in a thread pool, results in input order, with a tqdm bar.

    If the consumer stops early (e.g. strict mode raises), pending work is cancelled.

    >>> list(map_progress(lambda x: x * x, [1, 2, 3], progress=False))
    [1, 4, 9]
    """
    ex = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        bar = tqdm(ex.map(fn, items), total=len(items), desc=desc, disable=not progress, unit=unit)
        yield from bar
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _shm_room(nbytes: int) -> bool:
    """Whether a shared-memory segment of ``nbytes`` fits (Linux: free space of /dev/shm)."""
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return True  # no /dev/shm (macOS, Windows): segments come from the VM system
    return nbytes <= 0.9 * st.f_bavail * st.f_frsize


def _unlink(name: str, owner_pid: int) -> None:
    if os.getpid() != owner_pid:  # a forked child inherited the finalizer: the owner unlinks
        return
    try:
        seg = shared_memory.SharedMemory(name=name)
    except (FileNotFoundError, OSError):
        return
    try:
        seg.unlink()
    finally:
        seg.close()


def _map_segment(seg: shared_memory.SharedMemory) -> mmap.mmap | memoryview:
    """The segment's mapping, detached from ``seg`` so that closing ``seg`` never unmaps live arrays."""
    mm = getattr(seg, "_mmap", None)
    buf = getattr(seg, "_buf", None)
    if isinstance(mm, mmap.mmap) and isinstance(buf, memoryview):
        buf.release()
        seg._buf = None  # type: ignore[attr-defined]
        seg._mmap = None  # type: ignore[attr-defined]
        seg.close()  # only the file descriptor now; the mapping lives as long as the arrays on it
        return mm
    return seg.buf  # pragma: no cover - other Python implementations: keep seg alive via the view


def _layout(shapes: Sequence[tuple[int, int]] | NDArray[np.int64]
            ) -> tuple[NDArray[np.int64], NDArray[np.int64], int, int]:
    shp = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
    if (shp < 0).any():
        raise ValueError("shapes: sides must be >= 0")
    sizes = shp[:, 0] * shp[:, 1] * 3
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    head = -(-max(len(shp), 1) // _ALIGN) * _ALIGN
    return shp, offsets, int(sizes.sum()), head


class ImageCache:
    """All resized images of a dataset in ONE contiguous uint8 buffer.

    ``buffer`` is a flat uint8 array; image ``i`` is
    ``buffer[offsets[i] : offsets[i] + h*w*3].reshape(h, w, 3)`` with
    ``(h, w) = shapes[i]``, valid when ``valid[i]``. Being one allocation
    (no per-image Python objects) in shared memory, DataLoader workers share
    it whatever their start method (see the module doc).

    Build it once, in the dataset constructor, with :meth:`build` (whole) or
    :meth:`allocate` (lazy, filled with :meth:`put` on first use).

    Attributes:
        shared: whether the buffer is in a named shared-memory segment
            (pickled as its name) rather than private memory.
        name: the segment's name, or ``None``.
    """

    def __init__(self, buffer: NDArray[np.uint8], offsets: NDArray[np.int64],
                 shapes: NDArray[np.int64], valid: NDArray[np.bool_], lazy: bool = False,
                 name: str | None = None, mapping: tuple[mmap.mmap, int] | None = None) -> None:
        self.buffer = buffer
        # (the mmap holding buffer, buffer's offset in it): put() maps a slot's pages in one call
        self._mapping = mapping if lazy and sys.platform.startswith("linux") else None
        self.offsets = offsets
        self.shapes = shapes
        self.valid = valid
        self.lazy = lazy
        self.name = name
        if not lazy:
            self.buffer.setflags(write=False)

    @property
    def shared(self) -> bool:
        """Whether the buffer is a named shared-memory segment."""
        return self.name is not None

    @classmethod
    def _new(cls, shapes: Sequence[tuple[int, int]] | NDArray[np.int64], lazy: bool,
             share: bool = True) -> ImageCache:
        shp, offsets, total, head = _layout(shapes)
        n = len(shp)
        name = None
        mem: Any = None
        if share and _shm_room(head + total):
            try:
                seg = shared_memory.SharedMemory(create=True, size=max(head + total, 1))
            except OSError:
                seg = None
            if seg is not None:
                name = seg.name
                mem = _map_segment(seg)
        if mem is None:
            mem = mmap.mmap(-1, max(head + total, 1))  # anonymous MAP_SHARED: fork children share it
        whole = np.frombuffer(mem, dtype=np.uint8)
        valid = whole[:n].view(np.bool_)
        buf = whole[head : head + total]
        cache = cls(buf, offsets, shp, valid, lazy=True, name=name,
                    mapping=(mem, head) if isinstance(mem, mmap.mmap) else None)
        if name is not None:
            weakref.finalize(cache, _unlink, name, os.getpid())  # also at interpreter exit
        cache.lazy = lazy
        return cache

    @classmethod
    def allocate(cls, shapes: Sequence[tuple[int, int]] | NDArray[np.int64]) -> ImageCache:
        """An empty cache filled on first use (:meth:`put`), shared by all worker processes.

        Pages are committed only as images arrive. Two workers decoding the
        same image at once write identical bytes; the flag is set after the pixels.
        """
        return cls._new(shapes, lazy=True)

    def __getstate__(self) -> dict[str, Any]:
        state = {"offsets": self.offsets, "shapes": self.shapes, "lazy": self.lazy, "name": self.name}
        if self.name is None and not self.lazy:
            state["pixels"] = (self.buffer, self.valid)  # private whole cache: its pixels
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        shapes, offsets, lazy, name = state["shapes"], state["offsets"], state["lazy"], state["name"]
        if "pixels" in state:
            buf, valid = state["pixels"]
            self.__init__(buf, offsets, shapes, valid, lazy=False)  # type: ignore[misc]
            return
        if name is not None:
            try:
                seg = shared_memory.SharedMemory(name=name)
            except (FileNotFoundError, OSError):
                seg = None  # the owner is gone: start an empty private lazy cache
            if seg is not None:
                _, _, total, head = _layout(shapes)
                mem = _map_segment(seg)
                whole = np.frombuffer(mem, dtype=np.uint8)
                self.__init__(whole[head : head + total], offsets, shapes,  # type: ignore[misc]
                              whole[: len(shapes)].view(np.bool_), lazy=True, name=name,
                              mapping=(mem, head) if isinstance(mem, mmap.mmap) else None)
                self.lazy = lazy
                if not lazy:
                    self.buffer.setflags(write=False)
                return
        fresh = ImageCache._new(shapes, lazy=True, share=False)
        self.__init__(fresh.buffer, offsets, shapes, fresh.valid, lazy=True,  # type: ignore[misc]
                      mapping=fresh._mapping)

    def put(self, index: int, image: NDArray[np.uint8]) -> bool:
        """Store image ``index`` in a lazy cache; False (nothing stored) if its shape is not the expected one."""
        if not self.lazy:
            raise ValueError("put: this cache was built whole and is read-only")
        h, w = (int(v) for v in self.shapes[index])
        if image.shape != (h, w, 3):
            return False
        start = int(self.offsets[index])
        self._populate(start, h * w * 3)
        self.buffer[start : start + h * w * 3] = image.reshape(-1)
        self.valid[index] = True
        return True

    def _populate(self, start: int, length: int) -> None:
        """Map ``buffer[start : start + length]``'s pages in one call rather than one fault per page
        (shared-memory faults are costly); a no-op where the kernel cannot (and from then on)."""
        if self._mapping is None or length <= 0:
            return
        mem, head = self._mapping
        a = (head + start) // mmap.PAGESIZE * mmap.PAGESIZE
        try:
            mem.madvise(_MADV_POPULATE_WRITE, a, head + start + length - a)
        except (OSError, ValueError):
            self._mapping = None

    @property
    def nbytes(self) -> int:
        """Size of the pixel buffer in bytes."""
        return int(self.buffer.nbytes)

    def __len__(self) -> int:
        return len(self.offsets)

    def get(self, index: int) -> NDArray[np.uint8] | None:
        """Image ``index`` as a read-only (h, w, 3) uint8 view of the buffer, or ``None`` if not cached.

        No copy is made: detaug's ops never write into their inputs, and the
        view is marked read-only so no one else can either.
        """
        if not self.valid[index]:
            return None
        h, w = (int(v) for v in self.shapes[index])
        start = int(self.offsets[index])
        view = self.buffer[start : start + h * w * 3].reshape(h, w, 3)
        view.flags.writeable = False  # a view only: writers of a lazy cache use put()
        return view

    @classmethod
    def build(
        cls,
        shapes: Sequence[tuple[int, int]] | NDArray[np.int64],
        load: Callable[[int], NDArray[np.uint8]],
        *,
        workers: int = 8,
        progress: bool = True,
        desc: str = "Caching images",
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> ImageCache:
        """Allocate the buffer from the expected shapes and fill it in a thread pool.

        Args:
            shapes: (M, 2) expected (h, w) of every image after resizing.
            load: ``load(i)`` returns image ``i`` already resized, (h, w, 3) uint8.
            workers: threads decoding in parallel (OpenCV releases the GIL).
            progress: show a tqdm bar.
            on_error: called with ``(i, exception)`` when ``load`` raises; that
                entry is left out of the cache (``get`` returns ``None``).

        An image whose decoded shape differs from the expected one (the file
        changed since the scan) is left out too; the dataset reads it from disk.
        """
        cache = cls._new(shapes, lazy=True)

        def fill(i: int) -> None:
            try:
                img = load(i)
            except Exception as e:  # reported by the caller, entry stays invalid
                if on_error is not None:
                    on_error(i, e)
                return
            cache.put(i, img)

        for _ in map_progress(fill, range(len(cache)), workers=workers, progress=progress, desc=desc):
            pass
        cache.lazy = False
        cache.buffer.setflags(write=False)
        return cache

    @staticmethod
    def fits_in_memory(nbytes: int, fraction: float = 0.8) -> bool:
        """Whether ``nbytes`` is below ``fraction`` of the available memory (True if unknown).

        Pure: the caller says what does not fit (see :func:`memory_message`).
        """
        avail = available_memory()
        return avail is None or nbytes <= fraction * avail


def memory_message(cache: str, nbytes: int, fraction: float) -> str:
    """The warning given when ``cache`` ('ram', 'auto') does not fit: what, how much, what happens.

    >>> memory_message("auto", 3 * 2**30, 0.5).startswith("cache='auto': the resized images need 3.0 GiB")
    True
    """
    avail = available_memory()
    have = "an unknown amount" if avail is None else f"{avail / 2**30:.1f} GiB"
    return (f"cache={cache!r}: the resized images need {nbytes / 2**30:.1f} GiB, more than "
            f"{fraction:.0%} of the memory available ({have}); images will be read from disk instead")
