"""What the engine costs on top of a bare PyTorch loop over the same module and batches (bundled EfficientNet-Lite0,
224x224 inputs given as CPU tensors, as the app gives them).

    python -m bench.engine_overhead [--images 256] [--repeats 5] [--batches 1 64 256]

Prints, per device and batch size, images/s of the engine and of the bare loop and their ratio (engine time / bare
time: 1.00 means no overhead). The bare loop stacks, copies, runs the model (autocast on CUDA, as the engine) and
brings the outputs back to the CPU, one batch after another.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch

from core.engine import Engine


def bare_seconds(engine: Engine, loaded, inputs: list[torch.Tensor], batch: int) -> float:
    device = engine.device
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and engine.amp
                else contextlib.nullcontext())
    start = time.perf_counter()
    outputs = []
    with torch.inference_mode(), autocast:
        for i in range(0, len(inputs), batch):
            out = loaded.module(torch.stack(inputs[i:i + batch]).to(device))
            outputs.extend(out.float().cpu().unbind(0))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    inputs = [torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(i)) for i in range(args.images)]
    for device in devices:
        engine = Engine(device=device)
        loaded = engine.load("efficientnet_lite0")
        for batch in args.batches:
            n = max(batch, min(args.images, 64 if batch == 1 else args.images))  # batch 1: 64 images are enough
            run = inputs[:n]
            engine.run(loaded, run[:batch], batch_size=batch, warmup=1)  # warm both paths
            bare_seconds(engine, loaded, run[:batch], batch)
            t_engine, t_bare = float("inf"), float("inf")
            for _ in range(args.repeats):  # interleaved, best of each: a shared machine's noise hits both alike
                t_engine = min(t_engine, engine.run(loaded, run, batch_size=batch)[1].total_ms / 1000)
                t_bare = min(t_bare, bare_seconds(engine, loaded, run, batch))
            print(f"{device}, batch {batch}, {n} images: engine {n / t_engine:.1f} img/s, bare loop {n / t_bare:.1f} "
                  f"img/s; engine/bare time {t_engine / t_bare:.3f}")


if __name__ == "__main__":
    main()
