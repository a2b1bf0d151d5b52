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
    for pb in tool.batches(96, 8, 1, degrees=degrees, mixup=0.5, cutmix=0.5, perspective=degrees / 1e4):
        assert tool.traffic(pb).syncs == 0


def test_no_sync_with_opencv4_rules_float16_output_or_a_source_bank(tool):
    import device_bench  # tools/, on the path once the tool is loaded
    import torch

    from detaug import AugmentConfig, MixDataset
    from detaug.batch_transforms.painter import DevicePainter
    from detaug.batch_transforms.plan_batch import collate_plans
    from detaug.batch_transforms.source_bank import SourceBank

    data = device_bench.make_data(12, 64)
    cfg = AugmentConfig(img_size=64, mosaic=1.0, degrees=10, mixup=0.5)
    shipped = collate_plans([MixDataset(data, cfg, seed=1, output="plan")[i] for i in range(6)])
    ids = collate_plans([MixDataset(data, cfg, seed=1, output="plan", ship_sources=False)[i] for i in range(6)])
    bank = SourceBank.from_dataset(data)
    for painter, pb in ((DevicePainter(opencv=4), shipped), (DevicePainter(torch.float16), shipped),
                        (DevicePainter(bank=bank), ids)):
        painter(pb)  # tables built outside the count
        with tool.TrafficCounter() as c:
            painter(pb)
        assert c.syncs == 0, painter


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
