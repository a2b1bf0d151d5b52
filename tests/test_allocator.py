"""retain_freed_memory: image-sized blocks freed by one batch are reused by the next, without page faults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHURN = r"""
import resource, sys
import numpy as np
from detaug.allocator import retain_freed_memory
tuned = retain_freed_memory()
def batch():  # a batch of 8 canvases of 640 x 640, made and then freed together (as a collated batch is)
    return [np.full((640, 640, 3), 114, np.uint8) for _ in range(8)]
for _ in range(3):
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    batch()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(tuning: str) -> tuple[str, int]:
    env = dict(os.environ, DETAUG_MALLOC_TUNING=tuning)
    out = subprocess.run([sys.executable, "-c", CHURN], env=env, capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_canvases_are_reused_without_page_faults() -> None:
    tuned, faults = _faults("1")
    untuned, faults_default = _faults("0")
    assert (tuned, untuned) == ("True", "False")
    pages = 5 * 8 * 640 * 640 * 3 // 4096  # of the 40 canvases made after the warm-up
    assert faults < pages // 20  # the freed blocks are reused
    assert faults_default > pages // 2  # glibc's defaults return them and fault them in again


@pytest.mark.parametrize("kw", [{"trim_bytes": 0}, {"mmap_bytes": -5}, {"trim_bytes": 1.5}, {"mmap_bytes": 2**40}])
def test_thresholds_are_checked(kw: dict) -> None:
    from detaug.allocator import retain_freed_memory

    with pytest.raises(ValueError, match=next(iter(kw))):
        retain_freed_memory(**kw)
