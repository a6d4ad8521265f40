"""Run the two experiments of the Experiments page in this process and print their curves as tables.

    python -m bench.experiments label_efficiency [--set seeds=3] [--set transfer=false] [--device cuda]
    python -m bench.experiments synthetic_data [--set seeds=3]

The same code the page's jobs run (core.experiments), without the job queue, so nothing is stored: it prints, per
arm and x, the mean test accuracy, its standard deviation and 95% interval over the seeds, then the paired gains
(same seed, same labelled images) with their 95% intervals, and the run's notes (budgets, times).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from core.engine import pick_device
from core.experiments import label_efficiency, synthetic_data
from core.experiments.curves import gain, summary
from core.jobs.context import LocalContext
from core.services.experiments import GAINS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("label_efficiency", "synthetic_data"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an experiment parameter (JSON value), e.g. seeds=3 or fractions=[0.01,0.1,1]")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quiet", action="store_true", help="do not echo each run's result")
    args = ap.parse_args()
    raw = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    module = label_efficiency if args.kind == "label_efficiency" else synthetic_data
    params_cls = (label_efficiency.LabelEfficiencyParams if args.kind == "label_efficiency"
                  else synthetic_data.SyntheticDataParams)
    params = params_cls.from_dict(raw)
    device = pick_device(args.device)
    start = time.perf_counter()
    curve = module.run(params, LocalContext(echo=None if args.quiet else print), device)
    print(f"\n{curve.title}: {curve.metric} vs {curve.x_label}; {time.perf_counter() - start:.0f} s on {device} "
          f"({torch.get_num_threads()} threads), parameters {json.dumps(params.as_dict())}")
    print(summary(curve).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    for better, base in GAINS[args.kind]:
        table = gain(curve, better, base)
        if not table.empty:
            print(f"\n{better} - {base} (paired by seed):")
            print(table.to_string(index=False, float_format=lambda v: f"{v:+.2f}"))
    for note in curve.notes:
        print("-", note)


if __name__ == "__main__":
    main()
