"""The painter's device code path stays lean: no host sync, and bounded memory traffic (tools/painter_traffic.py).

Counts, not timings: the bytes each aten op reads and writes, kernel
launches and host syncs are exact for the op sequence, so these bounds fail
when a change makes the GPU path move much more memory (as painting every
resize over the whole canvas per warp slot once did: 3,246 bytes per output
pixel at B=64, S=640 against 548 now) or stall its queue.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_TOOL = Path(__file__).resolve().parents[2] / "tools" / "painter_traffic.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("painter_traffic", _TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("degrees", [0.0, 10.0])
def test_painting_never_syncs_with_the_host(tool, degrees):
    for pb in tool.batches(96, 8, 1, degrees=degrees, mixup=0.5, cutmix=0.5):
        assert tool.traffic(pb).syncs == 0


def test_memory_traffic_per_output_pixel_is_bounded(tool):
    """Ultralytics' default warps (resizes) + HSV + flips + MixUp: at most ~800 bytes per output pixel at S=160."""
    pb = tool.batches(160, 16, 1)[0]
    c = tool.traffic(pb)
    per_pixel = sum(c.bytes.values()) / (16 * 160 * 160)
    assert sum(pb.slot_resize_patches) > 0 and pb.hsv_rows.numel() == 16
    assert per_pixel < 800, f"{per_pixel:.0f} bytes per output pixel"
    assert sum(c.launches.values()) < 260


def test_the_counter_sees_host_copies_and_reads_and_counts_out_tensors_once(tool):
    import torch

    x = torch.zeros(1000)
    with tool.TrafficCounter() as c:
        torch.add(x, 1.0, out=x)  # reads 4,000 bytes, writes 4,000
        y = x[:, None][:, [0]]  # a list index: made from host data, copied to the device on a GPU
        _ = torch.tensor([1.0, 2.0])
        float(y.sum())
    assert c.syncs == 3
    assert c.bytes["add"] == 8000
