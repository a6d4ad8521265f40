"""Engine throughput of the bundled EfficientNet-Lite0 per device, batch size and precision.

Prints images/s for each setting and the ratios measured in this one run (GPU/CPU, AMP/fp32, batch 32/1).
    python -m bench.engine_throughput [--images 64] [--repeats 3]
"""
from __future__ import annotations

import argparse

import torch

from core.engine import Engine


def measure(engine: Engine, batch: int, images: int, repeats: int) -> float:
    loaded = engine.load("efficientnet_lite0")
    inputs = [torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(i)) for i in range(images)]
    engine.run(loaded, inputs[:batch], batch_size=batch, warmup=2)
    best = 0.0
    for _ in range(repeats):
        _, stats = engine.run(loaded, inputs, batch_size=batch)
        best = max(best, stats.throughput)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = [("cpu", True)]
    if torch.cuda.is_available():
        settings += [("cuda", False), ("cuda", True)]
    results = {}
    for device, amp in settings:
        engine = Engine(device=device, amp=amp)
        for batch in (1, 8, 32):
            ips = measure(engine, batch, args.images, args.repeats)
            results[(device, amp, batch)] = ips
            label = "amp" if (amp and device == "cuda") else "fp32"
            print(f"{device:5s} {label:5s} batch {batch:3d}: {ips:9.1f} img/s")
    print(f"cpu batch32/batch1: {results[('cpu', True, 32)] / results[('cpu', True, 1)]:.2f}x")
    if torch.cuda.is_available():
        print(f"cuda fp32 batch32 / cpu batch32: {results[('cuda', False, 32)] / results[('cpu', True, 32)]:.1f}x")
        print(f"cuda amp / cuda fp32 at batch32: {results[('cuda', True, 32)] / results[('cuda', False, 32)]:.2f}x")
        print(f"GPU: {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
