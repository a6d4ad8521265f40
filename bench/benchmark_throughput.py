"""A benchmark's throughput next to the engine's, at the same batch size, on the same model inputs.

    python -m bench.benchmark_throughput [--repeats 3] [--device cpu|cuda]

For each case it scores the model over a dataset the way the Benchmark page does (the task's `evaluate`: inputs
prepared, predictions through the engine in slices so progress and cancel work, then scoring) and records the
inputs the engine was given. Then it runs the engine once over those same inputs, in one call, at the same batch
size. It prints images/s of:
  engine      one engine.run over all inputs;
  predicting  the benchmark's engine calls (the slices), summed;
  benchmark   the whole evaluate call (preparing, predicting, scoring);
and the ratios engine-time/... The issue's target: predicting within 1.2x of the engine (ratio <= 1.20).
Rounds are interleaved and the best of `--repeats` is kept for each.
"""
from __future__ import annotations

import argparse
import time

import torch

from core.data.datasets import load_dataset
from core.engine import Engine
from core.models.registry import get_spec
from core.runs import load_for_run
from core.tasks import get_task
from core.tasks.base import BenchmarkParams

CASES = (  # model, dataset, batch size
    ("small_cnn_digits", {"name": "digits"}, 64),
    ("dncnn", {"name": "photos-denoise", "max_side": 256}, 8),
    ("fasterrcnn_tiny_shapes", {"name": "shapes-detect", "count": 64}, 16),
)


class Recorder:
    """Wraps engine.run: keeps the inputs it was given and the seconds spent in it."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.inner = engine, engine.run
        self.inputs: list[torch.Tensor] = []
        self.seconds = 0.0

    def __call__(self, loaded, inputs, batch_size=8, warmup=0):
        self.inputs.extend(inputs)
        start = time.perf_counter()
        try:
            return self.inner(loaded, inputs, batch_size=batch_size, warmup=warmup)
        finally:
            self.seconds += time.perf_counter() - start


def one_case(engine: Engine, model: str, dataset: dict, batch: int, repeats: int) -> dict[str, float]:
    spec = get_spec(model)
    task = get_task(spec.task)
    loaded = load_for_run(engine, model, False, spec.task)
    ds = load_dataset(dataset)
    params = BenchmarkParams(batch_size=batch)
    best = {"engine": float("inf"), "predicting": float("inf"), "benchmark": float("inf")}
    task.evaluate(engine, loaded, ds, params, None)  # warm: caches, tuning, first-run costs
    for _ in range(repeats):
        recorder = Recorder(engine)
        engine.run = recorder  # type: ignore[method-assign]
        try:
            start = time.perf_counter()
            task.evaluate(engine, loaded, ds, params, None)
            total = time.perf_counter() - start
        finally:
            del engine.run  # back to the class's method
        best["benchmark"] = min(best["benchmark"], total)
        best["predicting"] = min(best["predicting"], recorder.seconds)
        start = time.perf_counter()
        engine.run(loaded, recorder.inputs, batch_size=batch, warmup=1)
        best["engine"] = min(best["engine"], time.perf_counter() - start)
        images = len(recorder.inputs)
    return {"images": images, **best}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    engine = Engine(device=args.device)
    print(f"device {engine.device} ({torch.cuda.get_device_name() if engine.device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'model':24s} {'batch':>5s} {'images':>6s} {'engine':>10s} {'predicting':>11s} {'benchmark':>10s}"
          f" {'predicting/engine':>18s} {'benchmark/engine':>17s}")
    for model, dataset, batch in CASES:
        r = one_case(engine, model, dataset, batch, args.repeats)
        n = r["images"]
        print(f"{model:24s} {batch:5d} {n:6d} {n / r['engine']:8.1f}/s {n / r['predicting']:9.1f}/s"
              f" {n / r['benchmark']:8.1f}/s {r['predicting'] / r['engine']:18.3f} {r['benchmark'] / r['engine']:17.3f}")


if __name__ == "__main__":
    main()
