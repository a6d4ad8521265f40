"""CPU latency of EfficientNet-Lite0 against its int8 and pruned variants, with their top-1 agreement.

    python -m bench.variants_latency [--images 32] [--repeats 3]
Prints ms/image for each model and the ratios to the original, measured in this one run.
"""
from __future__ import annotations

import argparse

from core.data.builtin import BUILTIN_IMAGES, load_builtin
from core.engine import Engine
from core.tasks.inputs import prepare

MODELS = ("efficientnet_lite0", "efficientnet_lite0_int8", "efficientnet_lite0_pruned30")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    engine = Engine(device="cpu")
    photos = [load_builtin(BUILTIN_IMAGES[i % len(BUILTIN_IMAGES)]) for i in range(args.images)]
    ms, top1 = {}, {}
    for name in MODELS:
        loaded = engine.load(name)
        inputs, _ = prepare(loaded.spec, loaded.module, photos)
        engine.run(loaded, inputs[:8], batch_size=8, warmup=2)
        best = None
        for _ in range(args.repeats):
            logits, stats = engine.run(loaded, inputs, batch_size=8)
            best = stats.ms_per_item if best is None else min(best, stats.ms_per_item)
        ms[name] = best
        top1[name] = [int(x.argmax()) for x in logits]
        print(f"{name:30s} {best:7.2f} ms/image  params {loaded.num_params / 1e6:.2f}M")
    base = MODELS[0]
    for name in MODELS[1:]:
        agree = sum(a == b for a, b in zip(top1[base], top1[name])) / len(top1[base])
        print(f"{name} / {base}: latency x{ms[name] / ms[base]:.2f}, top-1 agreement {agree:.0%}")


if __name__ == "__main__":
    main()
