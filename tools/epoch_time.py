#!/usr/bin/env python
"""Time per training epoch: Ultralytics' own DetectionTrainer vs DetaugTrainer, same settings, one run.

Run with a python that has Ultralytics (e.g. /tmp/peerenv/bin/python, see
../shared/bench/peer-venv.sh) and detaug installed. Give it a data yaml whose
labels folder may get Ultralytics' .cache file (a copy, never your original).
Epoch time is on_train_epoch_start -> on_train_epoch_end (loading, forward,
backward; validation off). ``--detaug-first`` swaps the order.

    /tmp/peerenv/bin/python tools/epoch_time.py /tmp/coco128/coco128.yaml --epochs 3 --imgsz 320 --workers 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--model", default="yolo11n.yaml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--detaug-first", action="store_true")
    a = p.parse_args(argv)
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionTrainer

    from detaug.integrations.ultralytics import DetaugTrainer

    runs = [("ultralytics", DetectionTrainer), ("detaug", DetaugTrainer)]
    for name, cls in runs[::-1] if a.detaug_first else runs:
        times: list[float] = []
        t0: dict[str, float] = {}
        model = YOLO(a.model)
        model.add_callback("on_train_epoch_start", lambda tr, t0=t0: t0.__setitem__("t", time.perf_counter()))
        model.add_callback("on_train_epoch_end",
                           lambda tr, t0=t0, times=times: times.append(time.perf_counter() - t0["t"]))
        model.train(data=a.data, epochs=a.epochs, imgsz=a.imgsz, batch=a.batch, workers=a.workers, seed=a.seed,
                    device=a.device, close_mosaic=0, val=False, plots=False, project=tempfile.mkdtemp(), name=name,
                    trainer=cls, verbose=False)
        print(f"RESULT {name}: epochs {[round(t, 2) for t in times]} s, median {statistics.median(times):.2f} s, "
              f"loader workers {model.trainer.train_loader.num_workers}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
