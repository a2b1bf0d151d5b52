"""The C allocator's thresholds: keep freed image-sized blocks for reuse instead of faulting in fresh pages.

A training sample allocates and frees several image-sized arrays (a canvas
of 640 x 640 x 3 is 1.2 MB; a MixUp or CutMix partner canvas, the colour
conversion). With glibc's defaults such blocks often go back to the kernel
when freed (the heap top is trimmed past about twice the largest block yet
freed, and blocks above the dynamic mmap threshold are unmapped), so the
next one is fresh pages that fault in one by one: a measurable share of a
MixUp sample's time. :func:`retain_freed_memory` raises both thresholds, so
at most ``trim_bytes`` of freed heap stays mapped for reuse (the process's
memory stays bounded) and blocks below ``mmap_bytes`` come from the heap.

It changes how fast memory is handed out, never what a program computes.
:class:`~detaug.mix_dataset.MixDataset` calls it in each process that uses
one (the DataLoader workers included); set ``DETAUG_MALLOC_TUNING=0`` to
leave the allocator alone. Elsewhere than on Linux with glibc it does nothing.

>>> isinstance(retain_freed_memory(), bool)
True
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["retain_freed_memory"]

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False  # set once per process (a forked child inherits the settings, and this flag)


def retain_freed_memory(trim_bytes: int = 64 << 20, mmap_bytes: int = 32 << 20) -> bool:
    """Raise glibc's trim and mmap thresholds for this process (once); True when they are set.

    Args:
        trim_bytes: free heap kept mapped before the top is returned to the kernel.
        mmap_bytes: blocks at least this large are mapped on their own (and
            unmapped when freed); smaller ones come from the heap.
    """
    global _tuned
    for name, v in (("trim_bytes", trim_bytes), ("mmap_bytes", mmap_bytes)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 2**31:
            raise ValueError(f"{name}: expected an int in 1..2**31 - 1, got {v!r}")
    if _tuned:
        return True
    if os.environ.get("DETAUG_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, int(mmap_bytes)) != 1:
        return False  # not glibc (e.g. musl's mallopt is a stub): nothing changed
    mallopt(_M_TRIM_THRESHOLD, int(trim_bytes))  # glibc accepts any value once it took the first
    _tuned = True
    return True
