"""Reproduce the seeds' comparison tables with real numbers from this app, on builtin data.

    python -m bench.seed_tables [--photos 10] [--shapes 200] [--train]

Runs the benchmarks through core.services (so every number is also stored, with provenance, in the results
store) and prints: restoration "proposed CNN vs baseline vs traditional" (PSNR/SSIM, denoise sigma=25 and
super-resolution x2), per-class precision/recall/F1 of a detector on the synthetic shapes set, and with
--train the FD of a DCGAN and the optimizer comparison (SGD / Adam / Adagrad: train / val / test accuracy).
Without --train the networks use the weights they ship with: FFDNet's published ones and this project's
reference weights (reference_weights/, retrained by `python -m bench.train_reference`). --train first trains
the CNNs again as small fine-tuning jobs (background workers, as the Fine-tune page does; about 20 minutes on
2 CPU cores) and scores those instead; a network without weights is listed as missing, never scored with
random weights.
"""
from __future__ import annotations

import argparse

from core.engine import Engine
from core.services.benchmark import run_benchmark
from core.services.catalog import list_model_infos
from core.services.results import run_detail


TRAINING = {  # table role -> fine-tuning job (same budget for the two CNNs of a table)
    "denoise-proposed": {"base": "dncnn", "dataset": "patches", "patch": 40, "train_size": 384, "epochs": 4,
                         "batch_size": 16, "lr": 1e-3},
    "denoise-baseline": {"base": "unet_denoise", "dataset": "patches", "patch": 40, "train_size": 384, "epochs": 4,
                         "batch_size": 16, "lr": 1e-3},
    "sr-proposed": {"base": "edsr_lite_x2", "dataset": "patches", "patch": 48, "train_size": 384, "epochs": 4,
                    "batch_size": 16, "lr": 1e-3},
    "sr-baseline": {"base": "srcnn_x2", "dataset": "patches", "patch": 48, "train_size": 384, "epochs": 4,
                    "batch_size": 16, "lr": 1e-3},
    "gan": {"base": "dcgan_shapes", "dataset": "shapes", "train_size": 512, "epochs": 5, "batch_size": 64, "lr": 2e-4},
}
SWEEP = {"base": "small_cnn_digits", "dataset": "digits", "epochs": 8, "batch_size": 32, "lr": 0.01,
         "pretrained": False}


def _wait(job_ids: list[int]) -> list:
    import time

    from core.services.jobs import job_status

    while True:
        jobs = [job_status(j) for j in job_ids]
        if all(j.status in ("done", "failed", "cancelled") for j in jobs):
            return jobs
        time.sleep(2)


def train_models() -> tuple[dict[str, str], list]:
    """Runs the fine-tuning jobs; returns the registered model per role, and the sweep's jobs."""
    from core.services.training import submit_sweep, submit_training

    ids = {role: submit_training({**cfg, "pretrained": False}) for role, cfg in TRAINING.items()}
    sweep_ids = submit_sweep(SWEEP)
    jobs = dict(zip(ids, _wait(list(ids.values()))))
    for role, job in jobs.items():
        if job.status != "done":
            print(f"training {role} ({TRAINING[role]['base']}) {job.status}: {job.message}")
    return {role: job.result["model"] for role, job in jobs.items() if job.status == "done"}, _wait(sweep_ids)


def _usable(task: str, operation: str | None, names: list[str]) -> tuple[list[str], list[str]]:
    infos = {i.name: i for i in list_model_infos(task, operation)}
    ok = [n for n in names if n in infos and infos[n].weights_status != "missing"]
    return ok, [n for n in names if n not in ok]


def restoration_table(engine: Engine, title: str, dataset: dict, rows: list[tuple[str, str]], input_row: bool) -> None:
    """rows: (model name, kind); a trained checkpoint shows under its own name."""
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
        print(f"| degraded input | - | {d.outputs['input_psnr']:.2f} | {d.outputs['input_ssim']:.4f} | - |")
    for name in names:
        if name in outcomes and outcomes[name].run_id:
            m = outcomes[name].metrics
            print(f"| {name} | {kinds[name]} | {m['psnr']:.2f} | {m['ssim']:.4f} | #{outcomes[name].run_id} |")
    for name in missing:
        print(f"| {name} | {kinds[name]} | no trained weights | | |")


def detection_table(engine: Engine, count: int) -> None:
    dataset = {"name": "shapes-detect", "count": count, "seed": 1}
    ok, _ = _usable("detection", None, ["fasterrcnn_tiny_shapes"])
    for o in run_benchmark(engine, [*ok, "shape_regions"], dataset, {"score_threshold": 0.5}):
        _detection_rows(o, count)


def _detection_rows(o, count: int) -> None:
    d = run_detail(o.run_id)
    print(f"\n### Detection on {count} synthetic shapes scenes ({o.model}, IoU 0.5, score >= 0.5, run #{o.run_id})\n")
    print("| object category | precision (%) | recall (%) | F1 (%) | AP50 (%) | objects |")
    print("|---|---|---|---|---|---|")
    for row in d.outputs["per_class"]:
        print(f"| {row['class']} | {100 * row['precision']:.1f} | {100 * row['recall']:.1f} | {100 * row['f1']:.1f} "
              f"| {100 * row['ap50']:.1f} | {row['gt']} |")
    m = o.metrics
    print(f"| overall (micro) | {100 * m['precision']:.1f} | {100 * m['recall']:.1f} | {100 * m['f1']:.1f} "
          f"| {100 * m['map50']:.1f} (mAP) | |")
    print(f"\nmAP@[.5:.95] = {m['map']:.3f}; max-F1 point: F1 {100 * d.outputs['max_f1']['f1']:.1f}% at score "
          f">= {d.outputs['max_f1']['score_threshold']:.2f}")


def generation_table(engine: Engine, model: str | None) -> None:
    print("\n### Generation, DCGAN on synthetic shapes (32x32), 256 samples vs 256 reference scenes\n")
    if model is None:
        print("(no generator weights: run python -m bench.train_reference --only dcgan_shapes, or --train)")
        return
    [o] = run_benchmark(engine, [model], {"name": "shapes-real", "count": 256, "seed": 0}, {"samples": 256})
    d = run_detail(o.run_id)
    for _, row in d.metrics.iterrows():
        if row["metric"] in ("fid", "kid", "fd_efficientnet_lite0"):
            print(f"| {model} | {row['metric']} = {row['value']:.2f} | {row['convention']} | run #{o.run_id} |")


def sweep_table(jobs: list) -> None:
    print(f"\n### Optimizer comparison: small CNN on sklearn digits, {SWEEP['epochs']} epochs, lr {SWEEP['lr']}, "
          f"batch {SWEEP['batch_size']}\n")
    print("| optimizer | training accuracy | validation accuracy | test accuracy | best epoch | job |")
    print("|---|---|---|---|---|---|")
    for job in jobs:
        r = job.result
        if job.status != "done":
            print(f"| {job.params['config']['optimizer']} | {job.status}: {job.message} | | | | #{job.id} |")
            continue
        print(f"| {job.params['config']['optimizer']} | {100 * r['train_accuracy']:.1f}% | {100 * r['val_accuracy']:.1f}% | "
              f"{100 * r['test_top1']:.1f}% | {r['best_epoch']} | #{job.id} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--shapes", type=int, default=200)
    parser.add_argument("--device", default=None)
    parser.add_argument("--train", action="store_true", help="train the CNNs first (fine-tuning jobs)")
    args = parser.parse_args()
    engine = Engine(args.device)
    print(f"device: {engine.device}")
    trained, sweep_jobs = train_models() if args.train else ({}, [])
    restoration_table(
        engine, f"Denoising, {args.photos} skimage photos (long side 256), Gaussian noise sigma=25, seed 0",
        {"name": "photos-denoise", "sigma": 25.0, "limit": args.photos},
        [("ffdnet", "published CNN"), (trained.get("denoise-proposed", "dncnn"), "proposed CNN"),
         (trained.get("denoise-baseline", "unet_denoise"), "baseline CNN"), ("nlm_denoise", "traditional"),
         ("bilateral_denoise", "traditional"), ("median_denoise", "traditional"), ("gaussian_denoise", "traditional")],
        input_row=True)
    restoration_table(
        engine, f"Super-resolution x2, {args.photos} skimage photos (long side 256), PIL bicubic downscale",
        {"name": "photos-sr", "scale": 2, "limit": args.photos},
        [(trained.get("sr-proposed", "edsr_lite_x2"), "proposed CNN"),
         (trained.get("sr-baseline", "srcnn_x2"), "baseline CNN"), ("bicubic_x2", "traditional")],
        input_row=False)
    detection_table(engine, args.shapes)
    generation_table(engine, trained.get("gan") or (_usable("generation", None, ["dcgan_shapes"])[0] or [None])[0])
    if sweep_jobs:
        sweep_table(sweep_jobs)


if __name__ == "__main__":
    main()
