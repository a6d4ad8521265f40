"""Command line, sharing the app's results store (DATABASE_URL / IMGLAB_DATA_DIR):

    python -m core models [--task T] --json
    python -m core bench --model M [--model M2] --dataset D [--set sigma=25] [--limit N] [--allow-random] --json
    python -m core metrics --pred P --target T [--y-channel] [--crop-border N] --json   (files or folders)
    python -m core eval-detections --pred preds.json --gt coco.json [--iou-type bbox|segm] --json
    python -m core export --format csv|json [--task T] [--output FILE]
    python -m core paired --task T --dataset D [--metric M] [--reference MODEL] --json
    python -m core operating-point --run ID [--iou 0.5] [--score 0.5] --json
    python -m core robustness --model M [--model M2] --dataset D --corruption C [--levels 0,1,3,5] [--limit N] --json
    python -m core robustness --job ID [--metric M] --json         (a sweep the app ran)
    python -m core sweep [--id SWEEP] --json                        (an optimizer sweep: jobs and mean/spread)
    python -m core arena [--round ID] [--votes] --json               (rounds; a round's standings or its votes)
    python -m core arena --open TITLE --kind denoise --model M --model M2 --sample astronaut [--set sigma=25]

Exit status 0 on success, 2 with a one-line reason on stderr when the input is refused, 1 when `bench` ran
but every model failed (a script must not take "nothing was measured" for success).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from core.errors import InvalidInput, LabError


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else None)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def _emit(payload: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_jsonable(payload), indent=2, default=str))
    elif isinstance(payload, list):
        for row in payload:
            print("  ".join(f"{k}={v}" for k, v in row.items()) if isinstance(row, dict) else row)
    else:
        for k, v in payload.items():
            print(f"{k}: {v}")


def cmd_models(args) -> Any:
    from core.services.catalog import list_model_infos

    return [{"name": i.name, "task": i.task, "operation": i.operation, "source": i.source, "title": i.title,
             "weights_status": i.weights_status, "weights": i.weights_detail} for i in list_model_infos(args.task)]


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set takes key=value, got {pair!r}.")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def cmd_bench(args) -> Any:
    from core.engine import Engine
    from core.services.benchmark import run_benchmark

    dataset = {"name": args.dataset, **_parse_sets(args.set)}
    if args.dataset == "upload":
        dataset = {"name": "upload", "id": args.upload_id or ""}
    params = _parse_sets(args.param)
    if args.limit:
        params["limit"] = args.limit
    engine = Engine(args.device)
    log = (lambda line: print(line, file=sys.stderr)) if not args.quiet else None
    outcomes = run_benchmark(engine, args.model, dataset, params, allow_random=args.allow_random, log=log)
    failed = [o for o in outcomes if o.error]
    if failed and len(failed) == len(outcomes):
        print(f"error: every model failed ({len(failed)} of {len(outcomes)}); no run was stored", file=sys.stderr)
        args.exit_status = 1
    elif failed:
        print(f"warning: {len(failed)} of {len(outcomes)} models failed: {', '.join(o.model for o in failed)}",
              file=sys.stderr)
    return [{"model": o.model, "run_id": o.run_id, "error": o.error, "metrics": o.metrics} for o in outcomes]


def _image_files(path: Path) -> dict[str, Path]:
    from core.data.decode import UPLOAD_EXTENSIONS

    if path.is_dir():
        return {p.name: p for p in sorted(path.iterdir()) if p.suffix.lower().lstrip(".") in UPLOAD_EXTENSIONS}
    if path.is_file():
        return {path.name: path}
    raise InvalidInput(f"{path} does not exist.")


def cmd_metrics(args) -> Any:
    import numpy as np

    from core.data.decode import decode_image
    from core.metrics.image_quality import Convention, psnr_ssim

    pred, target = Path(args.pred), Path(args.target)
    conv = Convention(channel="y" if args.y_channel else "rgb", crop_border=args.crop_border)
    preds, targets = _image_files(pred), _image_files(target)
    if pred.is_dir() != target.is_dir():
        raise InvalidInput("Give two files or two folders.")
    pairs = list(zip(preds.values(), targets.values())) if pred.is_file() else [
        (preds[n], targets[n]) for n in preds if n in targets]
    if not pairs:
        raise InvalidInput("No images with the same file name in both folders.")
    rows = []
    for p, t in pairs:
        ps, ss = psnr_ssim(decode_image(p.read_bytes(), p.name).pixels, decode_image(t.read_bytes(), t.name).pixels, conv)
        rows.append({"image": p.name, "psnr": ps, "ssim": ss})
    return {"convention": str(conv), "images": rows, "psnr": float(np.mean([r["psnr"] for r in rows])),
            "ssim": float(np.mean([r["ssim"] for r in rows])),
            "unmatched": sorted(set(preds) ^ set(targets)) if pred.is_dir() else []}


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise InvalidInput(f"Cannot read the {what} file {path}: {exc.strerror}.") from None
    except ValueError as exc:
        raise InvalidInput(f"The {what} file {path} is not valid JSON ({exc}).") from None


def cmd_eval_detections(args) -> Any:
    import numpy as np

    from core.data import coco as coco_json
    from core.metrics import detection as det
    from core.tasks.outputs import DetectionTables

    gt = _read_json(args.gt, "ground-truth")
    preds = _read_json(args.pred, "prediction")
    if not isinstance(gt, dict) or not isinstance(preds, list):
        raise InvalidInput("--gt must be a COCO json object and --pred a COCO results list.")
    index, names = coco_json.categories(gt)
    images = {int(im["id"]): im for im in gt.get("images", [])}
    segm = args.iou_type == "segm"

    def geom(a, im):
        if segm:
            return coco_json.decode_mask(a["segmentation"], int(im["height"]), int(im["width"]))
        return coco_json.xyxy(a["bbox"])

    # per image: the ground truth's (labels, geometries, iscrowd, area) and the predictions' (labels, scores, geometries)
    truths: dict[int, tuple[list[int], list[Any], list[bool], list[float]]] = {i: ([], [], [], []) for i in images}
    outs: dict[int, tuple[list[int], list[float], list[Any]]] = {i: ([], [], []) for i in images}
    try:
        for a in gt.get("annotations", []):
            im = images[int(a["image_id"])]
            labels, geoms, crowd, areas = truths[int(a["image_id"])]
            labels.append(index[int(a["category_id"])])
            geoms.append(geom(a, im))
            crowd.append(bool(a.get("iscrowd", 0)))
            areas.append(float(a["area"]) if isinstance(a.get("area"), (int, float)) else math.nan)  # NaN: from geometry
        for p in preds:
            if int(p["image_id"]) not in images or int(p["category_id"]) not in index:
                continue  # as COCOeval: results for unknown images or categories are not scored
            labels, scores, geoms = outs[int(p["image_id"])]
            labels.append(index[int(p["category_id"])])
            scores.append(float(p["score"]))
            geoms.append(geom(p, images[int(p["image_id"])]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"An annotation or prediction lacks a field ({type(exc).__name__}: {exc}).") from None

    def stack(geoms, im):
        if segm:
            return np.array(geoms, bool).reshape(-1, int(im["height"]), int(im["width"]))
        return np.array(geoms, np.float64).reshape(-1, 4)

    ids = sorted(images)
    t_list = [det.ImageTruth(np.array(truths[i][0], np.int64), stack(truths[i][1], images[i]), np.array(truths[i][2], bool),
                             np.array(truths[i][3], np.float64)) for i in ids]
    p_list = [det.ImagePred(np.array(outs[i][0], np.int64), np.array(outs[i][1]), stack(outs[i][2], images[i])) for i in ids]
    rep = det.evaluate(p_list, t_list, len(names), iou_type=args.iou_type, score_threshold=args.score_threshold)
    tables = DetectionTables.of(rep, tuple(names)).as_json()
    defined = lambda v: None if math.isnan(v) else v  # noqa: E731 -- JSON has no NaN: null, and a note says why
    out = {
        "iou_type": args.iou_type, "images": len(ids), "map": defined(rep.map), "map50": defined(rep.map50),
        "map75": defined(rep.map75), **{f"map_{a}": defined(rep.map_in(a)) for a in ("small", "medium", "large")},
        "convention": f"COCO IoU .50:.05:.95, 101 recall points, maxDets 100, areas all/small/medium/large as "
                      f"COCOeval; P/R/F1 at IoU 0.5, score>={args.score_threshold:g}",
        "precision": rep.micro()[0], "recall": rep.micro()[1], "f1": rep.micro()[2], "f1_macro": rep.macro()[2],
        "max_f1": tables["max_f1"], "per_class": tables["per_class"],
    }
    notes = [] if rep.has_gt.any() else ["No class has ground truth in these images: mAP is undefined (null)."]
    notes += [f"No {a} objects in the ground truth: mAP_{a} is undefined (null)." for a in ("small", "medium", "large")
              if rep.has_gt.any() and out[f"map_{a}"] is None]
    if any(r["ap"] is None for r in tables["per_class"]):
        notes.append("Classes with detections but no ground truth have no AP (null); their detections count as "
                     "false positives in precision.")
    return {**out, "notes": notes} if notes else out


def cmd_export(args) -> Any:
    from core.services.results import runs_table

    table = runs_table(args.task, limit=args.limit)
    text = table.to_csv(index=False) if args.format == "csv" else table.to_json(orient="records", date_format="iso", indent=2)
    if args.output:
        Path(args.output).write_text(text)
        return {"rows": len(table), "written": args.output}
    sys.stdout.write(text)
    return None


def cmd_paired(args) -> Any:
    from core.services import compare, paired

    board = compare.leaderboard(args.task, args.dataset)
    metric = args.metric or paired.default_metric(board)
    if metric is None:
        raise InvalidInput("These runs stored no per-image values to pair.")
    table = paired.against_reference(board, metric, args.reference)
    return table.drop(columns=["in words"]).to_dict(orient="records") if args.json else list(table["in words"])


def cmd_operating_point(args) -> Any:
    from core.services import operating_point

    explored = operating_point.explore(args.run, args.iou, args.score)
    return {"points": explored.summary().to_dict(orient="records"),
            "per_class": explored.per_class.to_dict(orient="records"),
            "confusion": operating_point.confusion_frame(explored).to_dict(orient="records")}


def cmd_robustness(args) -> Any:
    from core.services import robustness

    if args.job is not None:
        curves = robustness.sweep_curves(args.job, args.metric)
    else:
        if not args.model or not args.dataset or not args.corruption:
            raise InvalidInput("Give --job, or --model, --dataset and --corruption.")
        try:
            levels = [float(v) for v in args.levels.split(",")] if args.levels else None
        except ValueError:
            raise InvalidInput("--levels takes numbers separated by commas, e.g. 0,1,3,5.") from None
        params = _parse_sets(args.param)
        if args.limit:
            params["limit"] = args.limit
        log = (lambda line: print(line, file=sys.stderr)) if not args.quiet else None
        curves = robustness.run_here(args.model, {"name": args.dataset, **_parse_sets(args.set)}, args.corruption,
                                     levels, params, allow_random=args.allow_random, device=args.device,
                                     metric=args.metric, log=log)
    return {"metric": curves.metric, "axis": curves.x_title, "points": curves.points.to_dict(orient="records"),
            "areas": curves.areas.to_dict(orient="records")}


def cmd_sweep(args) -> Any:
    from core import services

    known = services.sweeps()
    if not known:
        raise InvalidInput("No optimizer sweep is stored yet.")
    sweep = args.id or known[0]
    if sweep not in known:
        raise InvalidInput(f"No optimizer sweep {sweep!r}; stored: {', '.join(known[:10])}.")
    table = services.sweep_table(sweep)
    return {"sweep": sweep, "jobs": table.to_dict(orient="records"),
            "summary": services.sweep_summary(table).to_dict(orient="records")}


def cmd_arena(args) -> Any:
    """The operator of the server acts as its local admin here (whoever has this shell can read the store)."""
    from core.data.builtin import builtin_image
    from core.services import arena
    from core.users import LOCAL

    if args.open:
        from core.engine import Engine

        given = _parse_sets(args.set)
        unknown = sorted(set(given) - set(arena.Settings.__dataclass_fields__))
        if unknown:
            raise InvalidInput(f"Unknown round setting {', '.join(unknown)}; known: "
                               f"{', '.join(arena.Settings.__dataclass_fields__)}.")
        try:
            settings = arena.Settings(**{k: type(getattr(arena.Settings(), k))(v) for k, v in given.items()})
        except (TypeError, ValueError):
            raise InvalidInput("Round settings are numbers, e.g. --set sigma=25 --set max_side=128.") from None
        images = [builtin_image(n) for n in args.sample or []]
        new = arena.open_round(Engine(args.device or "auto"), title=args.open, kind=args.kind, images=images,
                               models=args.model or [], settings=settings, user=LOCAL)
        return {"round": new}
    if args.round is None:
        return [{"round": r.id, "title": r.title, "task": arena.kind_title(r), "status": r.status, "owner": r.owner,
                 "models": len(r.models), "settings": r.params.get("words", "")} for r in arena.rounds()]
    if args.votes:
        return arena.votes_table(args.round, LOCAL).to_dict(orient="records")
    board = arena.standings(args.round)
    return {"votes": board.votes, "voters": board.voters, "standings": board.table.to_dict(orient="records"),
            "agreement": [a.sentence() for a in board.agreements]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Image Model Lab, headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="the model registry")
    p.add_argument("--task")
    p.set_defaults(fn=cmd_models)
    p = sub.add_parser("bench", help="benchmark models over a dataset (stored like the app's runs)")
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--dataset", required=True, help="a dataset name (see the Benchmark page) or 'upload'")
    p.add_argument("--upload-id")
    p.add_argument("--set", action="append", help="dataset parameter key=value, e.g. sigma=25")
    p.add_argument("--param", action="append", help="benchmark parameter key=value, e.g. score_threshold=0.3")
    p.add_argument("--limit", type=int)
    p.add_argument("--device", default=None)
    p.add_argument("--allow-random", action="store_true", help="run models without weights (stored as untrained)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("metrics", help="PSNR/SSIM of an image pair or two folders")
    p.add_argument("--pred", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--y-channel", action="store_true")
    p.add_argument("--crop-border", type=int, default=0)
    p.set_defaults(fn=cmd_metrics)
    p = sub.add_parser("eval-detections", help="P/R/F1 and COCO mAP of detections against COCO ground truth")
    p.add_argument("--pred", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--iou-type", choices=["bbox", "segm"], default="bbox")
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.set_defaults(fn=cmd_eval_detections)
    p = sub.add_parser("export", help="the stored runs with their metrics")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--task")
    p.add_argument("--limit", type=int, default=10_000)
    p.add_argument("--output")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("paired", help="each model against a reference on the same images: bootstrap interval, Wilcoxon")
    p.add_argument("--task", required=True)
    p.add_argument("--dataset", required=True, help="the dataset name, as in `export`")
    p.add_argument("--metric", help="a per-image metric (default: the task's own, e.g. psnr, f1, correct)")
    p.add_argument("--reference", help="the model to compare against (default: the leader)")
    p.set_defaults(fn=cmd_paired)
    p = sub.add_parser("operating-point", help="a stored detection run's P/R/F1 and confusion at an IoU and score")
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--iou", type=float, default=0.5, help="one of 0.50, 0.55, ..., 0.95")
    p.add_argument("--score", type=float, default=0.5)
    p.set_defaults(fn=cmd_operating_point)
    p = sub.add_parser("robustness", help="models over increasing corruption: degradation curves and their areas")
    p.add_argument("--job", type=int, help="read a finished sweep of the app instead of running one")
    p.add_argument("--model", action="append")
    p.add_argument("--dataset")
    p.add_argument("--set", action="append", help="dataset parameter key=value")
    p.add_argument("--corruption", help="gaussian_noise, gaussian_blur, jpeg, downscale, brightness, contrast, "
                                        "or noise_sigma (photos-denoise)")
    p.add_argument("--levels", help="comma-separated severities 0-5 (or noise σ); default all")
    p.add_argument("--param", action="append", help="benchmark parameter key=value")
    p.add_argument("--limit", type=int)
    p.add_argument("--metric")
    p.add_argument("--device", default=None)
    p.add_argument("--allow-random", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=cmd_robustness)
    p = sub.add_parser("sweep", help="an optimizer sweep's jobs and each optimizer's mean and spread over repeats")
    p.add_argument("--id", help="the sweep id (default: the newest)")
    p.set_defaults(fn=cmd_sweep)
    p = sub.add_parser("arena", help="arena rounds: list, standings and votes (export), or open one")
    p.add_argument("--round", type=int)
    p.add_argument("--votes", action="store_true", help="the round's votes instead of its standings")
    p.add_argument("--open", metavar="TITLE", help="open a round with --kind, --model (2-6) and --sample photos")
    p.add_argument("--kind", default="denoise", help="denoise, deblur, super-resolution, semantic, instance, detection")
    p.add_argument("--model", action="append")
    p.add_argument("--sample", action="append", help="a scikit-image sample photo, e.g. astronaut")
    p.add_argument("--set", action="append", help="sigma, blur_sigma, scale, score_threshold, max_side=value (the "
                                                   "noise seed of a round is drawn at random)")
    p.add_argument("--device", default=None)
    p.set_defaults(fn=cmd_arena)
    for sp in sub.choices.values():
        sp.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.fn(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        _emit(result, args.json)
    return getattr(args, "exit_status", 0)


if __name__ == "__main__":
    sys.exit(main())
