"""The real-time claim of a single-stage detector, measured: images/s of the YOLO-style grid detector, the compact
Faster R-CNN trained on the same scenes, and the classical shape_regions baseline, at batch 1 and 32.

    python -m bench.detector_speed [--images 128] [--repeats 3] [--device cpu|cuda]

Each model runs through the engine over the same 64 px shapes scenes (given as CPU tensors, as the app gives them),
one warm-up batch first; the best of `--repeats` rounds (interleaved) is kept. Prints images/s per model and batch
size, and the ratios grid detector / Faster R-CNN at each batch size and batch 32 / batch 1 per model. A GPU is
used when there is one (or name the device).
"""
from __future__ import annotations

import argparse

import torch

from core.data.synthetic import scene
from core.engine import Engine
from core.tasks.detection import to_tensor

MODELS = ("yolo_tiny_shapes", "fasterrcnn_tiny_shapes", "shape_regions")
BATCHES = (1, 32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    engine = Engine(device=args.device)
    inputs = [to_tensor(scene(10_000 + i).image) for i in range(args.images)]
    loaded = {name: engine.load(name) for name in MODELS}
    best = {(name, b): 0.0 for name in MODELS for b in BATCHES}
    for name in MODELS:
        for b in BATCHES:
            engine.run(loaded[name], inputs[:b], batch_size=b, warmup=1)
    for _ in range(args.repeats):
        for name in MODELS:
            for b in BATCHES:
                _, stats = engine.run(loaded[name], inputs, batch_size=b)
                best[(name, b)] = max(best[(name, b)], stats.throughput)
    where = torch.cuda.get_device_name() if engine.device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.images} shapes scenes of 64 px on {where}, torch {torch.__version__}, best of {args.repeats}")
    print(f"{'model':24s}" + "".join(f" {'batch ' + str(b):>12s}" for b in BATCHES) + f" {'32 / 1':>8s}")
    for name in MODELS:
        print(f"{name:24s}" + "".join(f" {best[(name, b)]:8.1f} i/s" for b in BATCHES)
              + f" {best[(name, 32)] / best[(name, 1)]:8.2f}")
    for b in BATCHES:
        print(f"grid detector / Faster R-CNN at batch {b}: "
              f"{best[('yolo_tiny_shapes', b)] / best[('fasterrcnn_tiny_shapes', b)]:.2f}x")


if __name__ == "__main__":
    main()
