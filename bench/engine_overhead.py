"""What the engine costs on top of a bare PyTorch loop over the same module and batches (bundled EfficientNet-Lite0,
224x224 inputs given as CPU tensors, as the app gives them).

    python -m bench.engine_overhead [--images 256] [--repeats 5] [--batches 1 64 256]

Prints, per device and batch size, images/s of the engine and of the bare loop and their ratio (engine time / bare
time: 1.00 means no overhead). The bare loop stacks, copies, runs the model with the same speed options as the
engine (core/tuning.py: the engine measures them at its first GPU run) and brings the outputs back to the CPU, one
batch after another.

On a GPU it also prints the limit the issue measured: the bare model with channels_last, bf16 autocast and
torch.compile, fed inputs already on the GPU, and the engine's share of that throughput (target: at least 50%).
`--no-compile` skips that (compiling takes about 20 s).
"""
from __future__ import annotations

import argparse
import time

import torch

from core.engine import Engine
from core.tuning import Speedup, autocast, prepared, shaped


def bare_seconds(engine: Engine, loaded, inputs: list[torch.Tensor], batch: int) -> float:
    device = engine.device
    start = time.perf_counter()
    outputs = []
    with torch.inference_mode(), engine._autocast(loaded)[0]:
        for i in range(0, len(inputs), batch):
            out = loaded(torch.stack(inputs[i:i + batch]).to(device))
            outputs.extend(out.float().cpu().unbind(0))
    return time.perf_counter() - start


def compiled_limit(module: torch.nn.Module, batch: int, device: torch.device, repeats: int) -> float:
    """Images/s of the compiled channels-last bf16 model on inputs already on the GPU (outputs left there)."""
    fast = Speedup(channels_last=True, dtype="bfloat16", compiled=True)
    runner = prepared(module, fast)
    x = shaped(torch.rand(batch, 3, 224, 224, device=device), fast)
    best = float("inf")
    with torch.inference_mode(), autocast(device, fast):
        for rep in range(repeats + 2):  # two warm-up rounds compile and pick kernels
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(10):
                runner(x)
            torch.cuda.synchronize(device)
            if rep >= 2:
                best = min(best, (time.perf_counter() - start) / 10)
    prepared(module, Speedup())
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled limit on a GPU")
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
                  f"img/s; engine/bare time {t_engine / t_bare:.3f}; speed options {loaded.speedup.tag}")
            if device == "cuda" and not args.no_compile and batch > 1:
                limit = compiled_limit(loaded.module, batch, engine.device, args.repeats)
                engine._apply(loaded, loaded.speedup)  # back to the engine's own options for the next batch size
                print(f"cuda, batch {batch}: compiled bare model on GPU inputs {limit:.0f} img/s; engine from CPU "
                      f"tensors reaches {n / t_engine / limit:.1%} of it")


if __name__ == "__main__":
    main()
