"""Reproduce the seeds' comparison tables with real numbers from this app, on builtin data.

    python -m bench.seed_tables [--photos 10] [--shapes 200]

Runs the benchmarks through core.services (so every number is also stored, with provenance, in the results
store) and prints: restoration "proposed CNN vs baseline vs traditional" (PSNR/SSIM, denoise sigma=25 and
super-resolution x2), and per-class precision/recall/F1 of a detector on the synthetic shapes set.
Networks without trained weights are listed as missing rather than scored with random weights.
"""
from __future__ import annotations

import argparse

from core.engine import Engine
from core.services.benchmark import run_benchmark
from core.services.catalog import list_model_infos
from core.services.results import run_detail


def _usable(task: str, operation: str | None, names: list[str]) -> tuple[list[str], list[str]]:
    infos = {i.name: i for i in list_model_infos(task, operation)}
    ok = [n for n in names if n in infos and infos[n].weights_status != "missing"]
    return ok, [n for n in names if n not in ok]


def restoration_table(engine: Engine, title: str, dataset: dict, rows: list[tuple[str, str]], input_row: bool) -> None:
    print(f"\n### {title}\n")
    print("| method | kind | PSNR (dB) | SSIM | run |")
    print("|---|---|---|---|---|")
    names = [n for n, _ in rows]
    ok, missing = _usable("restoration", None, names)
    outcomes = {o.model: o for o in run_benchmark(engine, ok, dataset, {"batch_size": 1})}
    kinds = dict(rows)
    first = next(iter(outcomes.values()))
    if input_row:
        d = run_detail(first.run_id)
        print(f"| degraded input | - | {d['outputs']['input_psnr']:.2f} | {d['outputs']['input_ssim']:.4f} | - |")
    for name in names:
        if name in outcomes and outcomes[name].run_id:
            m = outcomes[name].metrics
            print(f"| {name} | {kinds[name]} | {m['psnr']:.2f} | {m['ssim']:.4f} | #{outcomes[name].run_id} |")
    for name in missing:
        print(f"| {name} | {kinds[name]} | no trained weights | | |")


def detection_table(engine: Engine, count: int) -> None:
    dataset = {"name": "shapes-detect", "count": count, "seed": 1}
    [o] = run_benchmark(engine, ["shape_regions"], dataset, {"score_threshold": 0.5})
    d = run_detail(o.run_id)
    print(f"\n### Detection on {count} synthetic shapes scenes (shape_regions, IoU 0.5, score >= 0.5, run #{o.run_id})\n")
    print("| object category | precision (%) | recall (%) | F1 (%) | AP50 (%) | objects |")
    print("|---|---|---|---|---|---|")
    for row in d["outputs"]["per_class"]:
        print(f"| {row['class']} | {100 * row['precision']:.1f} | {100 * row['recall']:.1f} | {100 * row['f1']:.1f} "
              f"| {100 * row['ap50']:.1f} | {row['gt']} |")
    m = o.metrics
    print(f"| overall (micro) | {100 * m['precision']:.1f} | {100 * m['recall']:.1f} | {100 * m['f1']:.1f} "
          f"| {100 * m['map50']:.1f} (mAP) | |")
    print(f"\nmAP@[.5:.95] = {m['map']:.3f}; max-F1 point: F1 {100 * d['outputs']['max_f1']['f1']:.1f}% at score "
          f">= {d['outputs']['max_f1']['score_threshold']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--shapes", type=int, default=200)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    engine = Engine(args.device)
    print(f"device: {engine.device}")
    restoration_table(
        engine, f"Denoising, {args.photos} skimage photos (long side 256), Gaussian noise sigma=25, seed 0",
        {"name": "photos-denoise", "sigma": 25.0, "limit": args.photos},
        [("dncnn", "proposed CNN"), ("unet_denoise", "baseline CNN"), ("nlm_denoise", "traditional"),
         ("bilateral_denoise", "traditional"), ("median_denoise", "traditional"), ("gaussian_denoise", "traditional")],
        input_row=True)
    restoration_table(
        engine, f"Super-resolution x2, {args.photos} skimage photos (long side 256), PIL bicubic downscale",
        {"name": "photos-sr", "scale": 2, "limit": args.photos},
        [("edsr_lite_x2", "proposed CNN"), ("srcnn_x2", "baseline CNN"), ("bicubic_x2", "traditional")],
        input_row=False)
    detection_table(engine, args.shapes)


if __name__ == "__main__":
    main()
