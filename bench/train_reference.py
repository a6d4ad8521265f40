"""Retrain the reference weights this project ships (reference_weights/) from their recipes.

    python -m bench.train_reference [--only dncnn,unet_denoise] [--device cuda] [--out reference_weights]
    python -m bench.train_reference --list
    python -m bench.train_reference --rescore [--only unet_shapes]   # score the shipped files again

Each model trains from scratch as a Fine-tune job (core.services.training.submit_training: the same worker,
data, loop and checkpoint code the Fine-tune page uses). Its best weights are written to
`<out>/<name>.safetensors`, then scored on the held-out benchmark set beside the classical baselines, and
`<out>/<name>.json` records the recipe, the job's curves and summary, the held-out scores and whether the
target was met. Run it on a scratch store (IMGLAB_DATA_DIR=/tmp/ref-data) so the jobs and runs do not mix
with a class's results; `--device cuda` trains on a GPU when there is one.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, UTC
from pathlib import Path

RESTORE = {"dataset": "patches", "pretrained": False, "optimizer": "adam", "schedule": "cosine"}
# name -> (training job parameters, held-out dataset, baselines, target: (metric, rule, value or baseline names))
RECIPES: dict[str, dict] = {
    "small_cnn_digits": {
        "config": {"dataset": "digits", "pretrained": False, "epochs": 30, "batch_size": 32, "lr": 2e-3,
                   "optimizer": "adam", "schedule": "cosine", "weight_decay": 1e-4, "augment": ["crop", "noise"]},
        "held_out": {"name": "digits"}, "baselines": [], "target": ("top1", ">=", 0.97)},
    "unet_shapes": {
        "config": {"dataset": "shapes", "pretrained": False, "epochs": 12, "train_size": 1024, "batch_size": 16,
                   "lr": 2e-3, "optimizer": "adam", "schedule": "cosine", "augment": ["flip"]},
        "held_out": {"name": "shapes-semantic", "count": 64, "seed": 0}, "baselines": [],
        "target": ("miou", ">=", 0.9)},
    "unet_denoise": {
        "config": {**RESTORE, "epochs": 20, "train_size": 7680, "patch": 48, "batch_size": 64, "lr": 1e-3,
                   "noise_sigma": 25.0, "augment": ["flip"]},
        "held_out": {"name": "photos-denoise", "sigma": 25.0},
        "baselines": ["nlm_denoise", "gaussian_denoise", "median_denoise", "bilateral_denoise"],
        "target": ("psnr", ">=", ["nlm_denoise"])},
    "dncnn": {
        "config": {**RESTORE, "epochs": 4, "train_size": 3200, "patch": 40, "batch_size": 16, "lr": 1e-3,
                   "noise_sigma": 25.0, "augment": ["flip"]},
        "held_out": {"name": "photos-denoise", "sigma": 25.0}, "baselines": ["nlm_denoise"],
        "target": ("psnr", ">=", ["nlm_denoise"])},
    "unet_deblur": {
        "config": {**RESTORE, "epochs": 10, "train_size": 3072, "patch": 48, "batch_size": 32, "lr": 1e-3,
                   "blur_sigma": 2.0, "noise_sigma": 1.0, "augment": ["flip"]},
        "held_out": {"name": "photos-deblur", "blur_sigma": 2.0, "noise_sigma": 1.0},
        "baselines": ["wiener_deblur", "richardson_lucy_deblur"],
        "target": ("psnr", ">", ["wiener_deblur", "richardson_lucy_deblur"])},
    "edsr_lite_x2": {
        "config": {**RESTORE, "epochs": 10, "train_size": 3840, "patch": 48, "batch_size": 32, "lr": 1e-3,
                   "augment": ["flip"]},
        "held_out": {"name": "photos-sr", "scale": 2}, "baselines": ["bicubic_x2"],
        "target": ("psnr", ">=+0.8", ["bicubic_x2"])},
    "srcnn_x2": {
        "config": {**RESTORE, "epochs": 6, "train_size": 4800, "patch": 48, "batch_size": 32, "lr": 1e-3,
                   "augment": ["flip"]},
        "held_out": {"name": "photos-sr", "scale": 2}, "baselines": ["bicubic_x2"], "target": ("psnr", ">", ["bicubic_x2"])},
    "edsr_lite_x4": {
        "config": {**RESTORE, "epochs": 6, "train_size": 4800, "patch": 48, "batch_size": 32, "lr": 1e-3,
                   "augment": ["flip"]},
        "held_out": {"name": "photos-sr", "scale": 4}, "baselines": ["bicubic_x4"], "target": ("psnr", ">", ["bicubic_x4"])},
    "srcnn_x4": {
        "config": {**RESTORE, "epochs": 6, "train_size": 4800, "patch": 48, "batch_size": 32, "lr": 1e-3,
                   "augment": ["flip"]},
        "held_out": {"name": "photos-sr", "scale": 4}, "baselines": ["bicubic_x4"], "target": ("psnr", ">", ["bicubic_x4"])},
    "dcgan_shapes": {
        "config": {"dataset": "shapes", "pretrained": False, "epochs": 8, "train_size": 4096, "batch_size": 64,
                   "lr": 2e-4, "optimizer": "adam"},
        "held_out": {"name": "shapes-real", "count": 256, "seed": 0}, "samples": 256, "baselines": [],
        "target": ("fid", "<untrained", None)},
    "cdcgan_digits": {
        "config": {"dataset": "digits", "pretrained": False, "epochs": 15, "batch_size": 32, "lr": 2e-4,
                   "optimizer": "adam"},
        "held_out": {"name": "digits-real"}, "samples": 250, "baselines": [], "target": ("fid", "<untrained", None)},
    "fasterrcnn_tiny_shapes": {
        "config": {"dataset": "shapes", "pretrained": False, "epochs": 16, "train_size": 1024, "batch_size": 16,
                   "lr": 2e-3, "optimizer": "adam", "schedule": "cosine"},
        "held_out": {"name": "shapes-detect", "count": 200, "seed": 1}, "baselines": ["shape_regions"],
        "params": {"score_threshold": 0.5}, "target": ("map", ">", ["shape_regions"])},
    "yolo_tiny_shapes": {
        "config": {"dataset": "shapes", "pretrained": False, "epochs": 60, "train_size": 2048, "batch_size": 16,
                   "lr": 2e-3, "optimizer": "adam", "schedule": "cosine"},
        "held_out": {"name": "shapes-detect", "count": 200, "seed": 1}, "baselines": ["shape_regions"],
        "params": {"score_threshold": 0.5}, "target": ("map", ">", ["shape_regions"])},
}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _wait(job_id: int, poll_s: float = 3.0):
    from core.services.jobs import job_status

    while True:
        job = job_status(job_id)
        if job.status in ("done", "failed", "cancelled"):
            return job
        time.sleep(poll_s)


def target_met(recipe: dict, ours: dict, baselines: dict, untrained: dict | None) -> tuple[bool | None, str]:
    metric, rule, ref = recipe["target"]
    value = ours.get(metric)
    if value is None:
        return None, f"{metric} not measured"
    if rule.startswith(">=+"):
        margin = float(rule[3:])
        best = max(baselines[b][metric] for b in ref)
        return value >= best + margin, f"{metric} {value:.4g} vs {best:.4g} + {margin:g} ({', '.join(ref)})"
    if rule == "<untrained":
        base = (untrained or {}).get(metric)
        return (None if base is None else value < base), f"{metric} {value:.4g} vs {base} with random weights"
    if isinstance(ref, list):
        best = max(baselines[b][metric] for b in ref)
        ok = value >= best if rule == ">=" else value > best
        return ok, f"{metric} {value:.4g} {rule} {best:.4g} ({', '.join(ref)})"
    ok = value >= ref if rule == ">=" else value > ref
    return ok, f"{metric} {value:.4g} {rule} {ref:g}"


def _quality(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items()
            if v is not None and not k.startswith(("latency", "throughput", "peak", "params", "images_per"))}


def held_out(engine, name: str, recipe: dict) -> dict:
    """Scores of the shipped file (registry name `name`) and the baselines on the held-out set."""
    from core.services.benchmark import run_benchmark
    from core.services.results import run_detail

    params = dict(recipe.get("params", {}))
    if "samples" in recipe:
        params["samples"] = recipe["samples"]
    outcomes = {o.model: o for o in run_benchmark(engine, [name, *recipe["baselines"]], recipe["held_out"], params)}
    for o in outcomes.values():
        if o.error:
            raise RuntimeError(f"benchmark of {o.model} failed: {o.error}")
    untrained = _untrained_generation(engine, name, recipe) if recipe["target"][1] == "<untrained" else None
    detail = run_detail(outcomes[name].run_id)
    ours = _quality(outcomes[name].metrics)
    baselines = {b: _quality(outcomes[b].metrics) for b in recipe["baselines"]}
    ok, why = target_met(recipe, ours, baselines, untrained)
    out = {"dataset": recipe["held_out"], "dataset_title": detail.dataset, "metrics": ours,
           "conventions": {r["metric"]: r["convention"] for _, r in detail.metrics.iterrows()},
           "baselines": baselines, "target": why, "target_met": ok}
    if untrained is not None:
        out["untrained"] = untrained
    if recipe["held_out"]["name"] == "shapes-detect":
        out["per_class"] = detail.outputs.get("per_class")
        out["baseline_per_class"] = {b: run_detail(outcomes[b].run_id).outputs.get("per_class")
                                     for b in recipe["baselines"]}
    return out


def _untrained_generation(engine, name: str, recipe: dict) -> dict:
    """The same generator with random weights, scored the same way: what training bought."""
    from core.tasks.generation import evaluate_generation
    from core.data.datasets import load_dataset

    ev = evaluate_generation(engine, engine.load(name, "random"), load_dataset(recipe["held_out"]), 64, None,
                             samples=recipe["samples"])
    return {m.name: m.value for m in ev.metrics}


def train_one(name: str, out_dir: Path, device: str, engine) -> dict:
    from core.services.training import submit_training

    recipe = RECIPES[name]
    run_name = f"{name.replace('_', '-')}-ref-{int(time.time())}"[:60]
    config = {**recipe["config"], "base": name, "name": run_name}
    if "samples" in recipe:
        config["test_limit"] = recipe["samples"]
    job = _wait(submit_training(config, device))
    if job.status != "done":
        raise RuntimeError(f"the training job of {name} {job.status}: {job.message}")
    return publish(name, job, out_dir, engine)


def _summary_from_curves(rows: list[dict], metric: str, higher: bool) -> dict:
    """A job's summary rebuilt from its stored curve points (job_id, epoch, step, name, value), for a job that
    failed after saving its weights."""
    by_epoch: dict[int, dict] = {}
    for r in rows:
        by_epoch.setdefault(int(r["epoch"]), {"step": int(r["step"])})[r["name"]] = r["value"]
    scored = {e: v for e, v in by_epoch.items() if v.get(metric) is not None}
    best = (max if higher else min)(scored, key=lambda e: scored[e][metric])
    return {"metric": metric, "best_value": scored[best][metric], "best_epoch": best, "epochs_run": len(by_epoch),
            "steps": max(v["step"] for v in by_epoch.values()),
            "epoch_time_s": sum(v.get("epoch_time_s") or 0 for v in by_epoch.values()) / len(by_epoch),
            "peak_mem_mb": max(v.get("peak_mem_mb") or 0 for v in by_epoch.values())}


def publish(name: str, job, out_dir: Path, engine, note: str | None = None) -> dict:
    """Copy a finished job's checkpoint to `out_dir/<name>.safetensors`, write its manifest, score it."""
    import torch

    from core.models.checkpoints import checkpoints_dir
    from core.models.registry import get_spec
    from core.models.weights import file_sha256
    from core.services.training import curves

    recipe, config = RECIPES[name], job.params["config"]
    if config.get("base") != name:
        raise RuntimeError(f"job #{job.id} trained {config.get('base')}, not {name}")
    src = checkpoints_dir() / f"{config['name']}.safetensors"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.safetensors"
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(target)
    history = curves([job.id])
    hist_rows = [{k: (None if v != v else v) for k, v in row.items()} for row in history.to_dict("records")]
    result = job.result or {}
    keys = ("metric", "best_value", "best_epoch", "epochs_run", "steps", "time_to_best_s", "epoch_time_s",
            "peak_mem_mb", "final_batch_size")
    if result.get("metric"):
        summary = {k: result.get(k) for k in keys}
    else:
        names = {r["name"] for r in hist_rows}
        metric = next(k for k in ("val_psnr", "fid", "fd_efficientnet_lite0", "val_accuracy", "val_miou", "val_map")
                      if k in names)
        summary = _summary_from_curves(hist_rows, metric, higher=metric.startswith("val_"))
    train_time = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
    spec = get_spec(name)
    manifest = {
        "name": name, "title": spec.title, "architecture": spec.description, "sha256": file_sha256(target),
        "size_bytes": target.stat().st_size, "recipe": config,
        "trained_with": "Fine-tune job (core.services.training.submit_training -> core.training.run)",
        "device": job.device, "torch": torch.__version__, "code_version": _git_commit(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "job": summary | {"id": job.id, "train_time_s": train_time,
                          "test": {k: v for k, v in result.items() if k.startswith("test_")}, "history": hist_rows},
    }
    if note:
        manifest["note"] = note
    (out_dir / f"{name}.json").write_text(json.dumps(manifest, indent=1))
    manifest["held_out"] = held_out(engine, name, recipe)
    (out_dir / f"{name}.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _headline(metrics: dict, name: str) -> str:
    for key, fmt in (("psnr", "{:.2f} dB"), ("top1", "{:.1%}"), ("miou", "{:.3f}"), ("map", "{:.3f}"), ("fid", "{:.1f}")):
        if key in metrics:
            label = {"psnr": "PSNR", "top1": "top-1", "miou": "mIoU", "map": "mAP@[.5:.95]", "fid": "FID"}[key]
            return f"{label} {fmt.format(metrics[key])}"
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def print_table(folder: Path) -> None:
    """Markdown: model, held-out set, its score vs the baselines', target, budget, file size."""
    print("| model | held-out set | score | baselines (same set) | target | training budget (CPU unless noted) | size |")
    print("|---|---|---|---|---|---|---|")
    for name in RECIPES:
        path = folder / f"{name}.json"
        if not path.is_file():
            print(f"| `{name}` | not trained yet | | | | | |")
            continue
        m = json.loads(path.read_text())
        h, r, j = m.get("held_out", {}), m["recipe"], m["job"]
        base = "; ".join(f"{b} {_headline(v, b)}" for b, v in h.get("baselines", {}).items())
        if h.get("untrained"):
            base = f"same net untrained: {_headline(h['untrained'], name)}"
        budget = (f"{j['steps']} steps, batch {r['batch_size']}, {r['optimizer']} {r['lr']:g} {r['schedule']}, "
                  f"{j['train_time_s'] / 60:.0f} min on {m['device']}")
        ok = {True: "met", False: "**not met**", None: "-"}[h.get("target_met")]
        print(f"| `{name}` | {h.get('dataset_title', '')} | {_headline(h.get('metrics', {}), name)} | {base} | "
              f"{ok}: {h.get('target', '')} | {budget} | {m['size_bytes'] / 2**20:.1f} MB |")


def rescore(name: str, out_dir: Path, engine) -> dict:
    path = out_dir / f"{name}.json"
    manifest = json.loads(path.read_text())
    manifest["held_out"] = held_out(engine, name, RECIPES[name])
    path.write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated model names (default: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="folder to write (default: the shipped reference_weights/)")
    ap.add_argument("--list", action="store_true", help="print the recipes and exit")
    ap.add_argument("--table", action="store_true", help="print the README table from the manifests and exit")
    ap.add_argument("--adopt", type=int, default=None, metavar="JOB_ID",
                    help="publish the checkpoint a training job of this store saved (e.g. one that failed after "
                         "saving it) instead of training again; needs exactly one --only name")
    ap.add_argument("--rescore", action="store_true",
                    help="do not train: score the files already in the folder again and rewrite their manifests")
    args = ap.parse_args(argv)
    if args.table:
        from core.models.reference import reference_dir

        print_table(Path(args.out) if args.out else reference_dir())
        return 0
    if args.list:
        for name, r in RECIPES.items():
            print(name, json.dumps(r["config"]), "held out:", json.dumps(r["held_out"]))
        return 0
    import os

    from core.engine import Engine
    from core.models.reference import DIR_ENV, reference_dir

    out_dir = Path(args.out) if args.out else reference_dir()
    os.environ[DIR_ENV] = str(out_dir.resolve())  # the held-out scores are taken from the written files
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    engine = Engine(args.device)
    failures = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            if args.adopt is not None:
                from core.services.jobs import job_status

                m = publish(name, job_status(args.adopt), out_dir, engine,
                            note=f"published from job #{args.adopt} with --adopt (the job's own end step did not run)")
            elif args.rescore:
                m = rescore(name, out_dir, engine)
            else:
                m = train_one(name, out_dir, args.device, engine)
        except Exception as exc:  # report and go on with the next model
            failures += 1
            print(f"{name}: FAILED - {exc}", flush=True)
            continue
        h = m["held_out"]
        print(f"{name}: {m['job']['steps']} steps in {m['job']['train_time_s']:.0f} s; held-out "
              + ", ".join(f"{k}={v:.4g}" for k, v in h["metrics"].items())
              + f"; target: {h['target']} -> {'met' if h['target_met'] else 'NOT met'} "
              f"({time.perf_counter() - t0:.0f} s in all)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
