"""One model over one dataset: predictions through the engine (chunked, so progress and cancel work),
scored with core.metrics, returned as metric values with their conventions plus per-image values and
the tables the Compare page draws (per-class scores, confusion matrix, PR curves)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from core.data.datasets import Dataset
from core.engine import Engine, LoadedModel, RunStats
from core.errors import InvalidInput, WeightsUnavailable
from core.metrics import classification as cls_metrics
from core.metrics import perceptual
from core.metrics import detection as det_metrics
from core.metrics import segmentation as seg_metrics
from core.metrics.image_quality import RGB, Convention, psnr_ssim
from core.tasks import classification, detection, segmentation
from core.tasks.restoration import known_noise_sigma, model_inputs, noise_level_record, to_uint8
from db.repository import ImageMetric, MetricValue

# progress(items done, items total, stage): stage is "predicting" (images through the model), "generating"
# (samples) or "scoring" (metrics per image); it may raise to stop the run (a cancelled job)
Progress = Callable[..., None]


@dataclass
class Evaluation:
    metrics: list[MetricValue]
    image_metrics: list[ImageMetric]
    outputs: dict[str, Any]
    stats: RunStats
    params: dict[str, Any] = field(default_factory=dict)


def merge_stats(parts: list[RunStats]) -> RunStats:
    first = parts[0]
    return RunStats(
        device=first.device, dtype=first.dtype, batch_size=min(p.batch_size for p in parts),
        items=sum(p.items for p in parts), batches=sum(p.batches for p in parts),
        total_ms=sum(p.total_ms for p in parts), batch_ms=[ms for p in parts for ms in p.batch_ms],
        peak_mem_mb=max(p.peak_mem_mb for p in parts), mem_kind=first.mem_kind, warmup=first.warmup,
        oom_retries=sum(p.oom_retries for p in parts),
    )


def slices(inputs: list, chunk: int) -> list[tuple[int, int]]:
    """(start, end) of runs of at most `chunk` same-shape neighbours. The engine batches only same-shape
    neighbours, so a cut where the shape changes costs nothing and photos of different sizes report one by one."""
    out, start = [], 0
    while start < len(inputs):
        shape, end = getattr(inputs[start], "shape", None), start + 1
        while end < len(inputs) and end - start < chunk and getattr(inputs[end], "shape", None) == shape:
            end += 1
        out.append((start, end))
        start = end
    return out


def run_chunked(engine: Engine, loaded: LoadedModel, inputs: list[torch.Tensor], batch_size: int,
                progress: Progress | None, chunk: int = 16, stage: str = "predicting") -> tuple[list[Any], RunStats]:
    """engine.run over slices of `inputs`, reporting progress between slices; one warm-up forward first."""
    outputs, parts = [], []
    for start, end in slices(inputs, chunk):
        out, stats = engine.run(loaded, inputs[start:end], batch_size=batch_size, warmup=1 if start == 0 else 0)
        outputs.extend(out)
        parts.append(stats)
        if progress:
            progress(end, len(inputs), stage)
    return outputs, merge_stats(parts)


def scored(progress: Progress | None, done: int, total: int) -> None:
    if progress:
        progress(done, total, "scoring")


def category_map(dataset_names: tuple[str, ...], model_names: tuple[str, ...] | None, what: str) -> np.ndarray:
    """For each dataset class, the model's index of the class with the same name (case-insensitive)."""
    if not model_names:
        raise InvalidInput(f"The model has no class names to match against the dataset's {what}.")
    lookup = {n.strip().lower(): i for i, n in enumerate(model_names)}
    missing = [n for n in dataset_names if n.strip().lower() not in lookup and n != "background"]
    if missing:
        raise InvalidInput(f"The model does not know the dataset's {what} {', '.join(missing[:8])}"
                           f"{' ...' if len(missing) > 8 else ''}; pick a model trained on these classes.")
    return np.array([lookup.get(n.strip().lower(), 0 if n == "background" else -1) for n in dataset_names])


def model_categories(loaded: LoadedModel, num_outputs: int | None = None) -> tuple[str, ...] | None:
    spec = loaded.spec
    if spec.categories:
        return spec.categories
    if spec.labels and num_outputs:
        return classification.label_names(spec.labels, num_outputs)
    return None


# -- classification ----------------------------------------------------------------------------------
def evaluate_classification(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int,
                            progress: Progress | None) -> Evaluation:
    tensors, cfg = classification.preprocess([s.image for s in ds.samples], loaded.module, loaded.spec.input_size)
    logits, stats = run_chunked(engine, loaded, tensors, batch_size, progress)
    scores = torch.stack(logits).float().softmax(-1).numpy()
    cmap = category_map(ds.categories, model_categories(loaded, scores.shape[1]), "classes")
    targets_ds = np.array([s.target for s in ds.samples])
    targets_model = cmap[targets_ds]
    top1 = cls_metrics.topk_correct(scores, targets_model, 1)
    top5 = cls_metrics.topk_correct(scores, targets_model, 5)
    # predictions outside the dataset's classes count as a wrong extra class "other"
    inverse = {int(m): d for d, m in enumerate(cmap)}
    pred_model = scores.argmax(1)
    k = len(ds.categories)
    pred_ds = np.array([inverse.get(int(p), k) for p in pred_model])
    other = bool((pred_ds == k).any())
    cm = cls_metrics.confusion_matrix(targets_ds, pred_ds, k + 1)[: k + other, : k + other]
    prf = cls_metrics.precision_recall_f1(cm)
    macro = [float(x[:k].mean()) for x in (prf.precision, prf.recall, prf.f1)]  # over the dataset's classes
    conv = f"resize={cfg.get('input_size')},crop_pct={cfg.get('crop_pct')},interp={cfg.get('interpolation')}"
    metrics = [
        MetricValue("top1", float(top1.mean()), conv, True), MetricValue("top5", float(top5.mean()), conv, True),
        MetricValue("precision_macro", macro[0], "mean over dataset classes, zero_division=0", True),
        MetricValue("recall_macro", macro[1], "mean over dataset classes, zero_division=0", True),
        MetricValue("f1_macro", macro[2], "mean over dataset classes, zero_division=0", True),
        MetricValue("f1_micro", prf.micro[2], "micro (= accuracy for single-label)", True),
    ]
    image_metrics = [ImageMetric(s.key, "correct", float(c), "top1") for s, c in zip(ds.samples, top1)]
    image_metrics += [ImageMetric(s.key, "target_prob", float(scores[i, targets_model[i]]), "softmax")
                      for i, s in enumerate(ds.samples)]
    labels = list(ds.categories) + (["other"] if other else [])
    outputs = {
        "per_class": [{"class": labels[i], "precision": float(prf.precision[i]), "recall": float(prf.recall[i]),
                       "f1": float(prf.f1[i]), "support": int(prf.support[i])} for i in range(k)],
        "confusion": {"labels": labels, "matrix": cm.tolist()},
    }
    return Evaluation(metrics, image_metrics, outputs, stats, {"preprocess": cfg})


# -- detection / instance segmentation ---------------------------------------------------------------
def _pr_points(curve: det_metrics.ClassCurve, points: int = 50) -> dict:
    if not curve.scores.size:
        return {"recall": [], "precision": [], "score": []}
    idx = np.unique(np.linspace(0, curve.scores.size - 1, min(points, curve.scores.size)).round().astype(int))
    return {"recall": curve.recall[idx].round(4).tolist(), "precision": curve.precision[idx].round(4).tolist(),
            "score": curve.scores[idx].round(4).tolist()}


def _detection_values(rep: det_metrics.DetectionReport, names: tuple[str, ...], prefix: str) -> tuple[list, dict]:
    thr = rep.score_threshold
    conv_ap = "COCO: IoU .50:.05:.95, 101 recall points, maxDets 100, area all"
    conv_prf = f"IoU>=0.5, score>={thr:g}, zero_division=0"
    micro, macro = rep.micro(), rep.macro()
    f1max = rep.max_f1()
    metrics = [
        MetricValue(f"{prefix}map", rep.map, conv_ap, True),
        MetricValue(f"{prefix}map50", rep.map50, conv_ap.replace(".50:.05:.95", ".50"), True),
        MetricValue(f"{prefix}map75", rep.map75, conv_ap.replace(".50:.05:.95", ".75"), True),
    ]
    if not prefix:
        metrics += [
            MetricValue("precision", micro[0], conv_prf + ", micro", True),
            MetricValue("recall", micro[1], conv_prf + ", micro", True),
            MetricValue("f1", micro[2], conv_prf + ", micro", True),
            MetricValue("f1_macro", macro[2], conv_prf + ", macro", True),
            MetricValue("f1_max", f1max[0], f"IoU>=0.5, best score threshold {f1max[3]:.3f}, micro", True),
        ]
    p, r, f = rep.prf()
    per_class = [{"class": names[c], "ap50": float(rep.ap[0, c]), "ap": float(rep.ap[:, c].mean()),
                  "precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]), "gt": int(rep.curves50[c].num_gt),
                  "tp": int(rep.tp[c]), "fp": int(rep.fp[c]), "fn": int(rep.fn[c])}
                 for c in range(rep.num_classes) if rep.curves50[c].num_gt or rep.fp[c]]
    outputs = {f"{prefix}per_class": per_class,
               f"{prefix}pr_curves": {names[c]: _pr_points(rep.curves50[c]) for c in range(rep.num_classes) if rep.curves50[c].num_gt},
               f"{prefix}max_f1": {"f1": f1max[0], "precision": f1max[1], "recall": f1max[2], "score_threshold": f1max[3]}}
    return metrics, outputs


def _to_dataset_labels(labels: np.ndarray, cmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model class ids -> dataset class ids; detections of classes the dataset does not annotate are dropped."""
    inverse = {int(m): d for d, m in enumerate(cmap) if m >= 0}
    mapped = np.array([inverse.get(int(l), -1) for l in labels], np.int64)
    keep = mapped > 0  # 0 is background
    return mapped, keep


def evaluate_detection(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int, progress: Progress | None,
                       score_threshold: float = 0.5, masks: bool = False) -> Evaluation:
    if masks and any(s.masks is None for s in ds.samples):
        raise InvalidInput("This dataset has no instance masks; choose one with masks for instance segmentation.")
    inputs = [detection.to_tensor(s.image) for s in ds.samples]
    outs, stats = run_chunked(engine, loaded, inputs, batch_size, progress)
    cmap = category_map(ds.categories, loaded.spec.categories, "classes")
    box_preds, mask_preds, per_image = [], [], []
    for n, (s, o) in enumerate(zip(ds.samples, outs)):
        scored(progress, n, len(outs))
        mapped, keep = _to_dataset_labels(o["labels"].numpy(), cmap)
        scores = o["scores"].numpy()[keep]
        box_preds.append(det_metrics.ImagePred(mapped[keep], scores, o["boxes"].numpy()[keep]))
        if masks:
            mask_preds.append(det_metrics.ImagePred(mapped[keep], scores, o["masks"].numpy()[keep][:, 0] > 0.5))
        single = det_metrics.evaluate([box_preds[-1]], [s.target], len(ds.categories), score_threshold=score_threshold)
        per_image.append(ImageMetric(s.key, "f1", single.micro()[2], f"IoU>=0.5, score>={score_threshold:g}"))
        per_image.append(ImageMetric(s.key, "detections", float((scores >= score_threshold).sum()), f"score>={score_threshold:g}"))
    report = det_metrics.evaluate(box_preds, [s.target for s in ds.samples], len(ds.categories),
                                  score_threshold=score_threshold)
    metrics, outputs = _detection_values(report, ds.categories, "")
    if masks:
        mrep = det_metrics.evaluate(mask_preds, [s.masks for s in ds.samples], len(ds.categories), iou_type="segm",
                                    score_threshold=score_threshold)
        m2, o2 = _detection_values(mrep, ds.categories, "mask_")
        metrics, outputs = m2 + metrics, {**outputs, **o2}
    return Evaluation(metrics, per_image, outputs, stats, {"score_threshold": score_threshold})


# -- semantic segmentation ---------------------------------------------------------------------------
def evaluate_semantic(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int,
                      progress: Progress | None) -> Evaluation:
    spec = loaded.spec
    prep = segmentation.normalize if spec.input_norm == "imagenet" else detection.to_tensor
    outs, stats = run_chunked(engine, loaded, [prep(s.image) for s in ds.samples], batch_size, progress)
    cmap = category_map(ds.categories, spec.categories, "classes")
    lut = np.full(max(len(spec.categories), int(cmap.max()) + 1), len(ds.categories), np.int64)  # unknown -> extra
    for d, m in enumerate(cmap):
        if m >= 0:
            lut[m] = d
    k = len(ds.categories) + 1  # plus "other" for model classes the dataset does not have
    total = np.zeros((k, k), np.int64)
    per_image = []
    for n, (s, o) in enumerate(zip(ds.samples, outs)):
        scored(progress, n, len(outs))
        pred = lut[segmentation.label_map(o, s.target.shape)]
        cm = seg_metrics.pixel_confusion(pred, s.target, k)
        total += cm
        iou = seg_metrics.scores(cm).iou[: k - 1]
        per_image.append(ImageMetric(s.key, "miou", float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
                                     "mean over classes present in the image"))
    sc = seg_metrics.scores(total)
    present = slice(0, len(ds.categories))
    conv = f"ignore={seg_metrics.IGNORE_INDEX}, mean over classes present"
    metrics = [MetricValue("miou", float(np.nanmean(sc.iou[present])), conv, True),
               MetricValue("dice", float(np.nanmean(sc.dice[present])), conv, True),
               MetricValue("pixel_accuracy", sc.pixel_accuracy, f"ignore={seg_metrics.IGNORE_INDEX}", True)]
    outputs = {"per_class": [{"class": n, "iou": None if np.isnan(sc.iou[i]) else float(sc.iou[i]),
                              "dice": None if np.isnan(sc.dice[i]) else float(sc.dice[i])}
                             for i, n in enumerate(ds.categories)]}
    return Evaluation(metrics, per_image, outputs, stats)


# -- restoration ---------------------------------------------------------------------------------------
def evaluate_restoration(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int, progress: Progress | None,
                         y_channel: bool | None = None, crop_border: int | None = None) -> Evaluation:
    spec = loaded.spec
    if spec.operation != ds.operation:
        raise InvalidInput(f"{spec.name} does {spec.operation}, but the dataset is for {ds.operation}.")
    if ds.operation == "super-resolution" and spec.scale != ds.scale:
        raise InvalidInput(f"{spec.name} upscales x{spec.scale}, but the dataset is x{ds.scale}.")
    sr = ds.operation == "super-resolution"
    y_channel = sr if y_channel is None else y_channel
    crop = (ds.scale if sr else 0) if crop_border is None else crop_border
    extra = Convention(channel="y", crop_border=crop) if y_channel else None
    # a noise-level-input model (FFDNet) gets the degradation's sigma when the dataset knows it, else an estimate
    inputs, levels = model_inputs(spec, [s.image for s in ds.samples], known_noise_sigma(ds.meta.get("degradation")))
    outs, stats = run_chunked(engine, loaded, inputs, batch_size, progress, chunk=4)
    per_image, values = [], {"psnr": [], "ssim": [], "psnr_y": [], "ssim_y": [], "input_psnr": [], "input_ssim": [],
                             "lpips": []}
    lpips_net, lpips_note = None, None
    try:
        lpips_net = perceptual.lpips_model(engine.device)
    except WeightsUnavailable as exc:
        lpips_note = str(exc)
    for n, (s, o) in enumerate(zip(ds.samples, outs)):
        scored(progress, n, len(outs))
        restored = to_uint8(o)
        if restored.shape != s.target.shape:
            raise InvalidInput(f"{spec.name} returned {restored.shape} for {s.key}, expected {s.target.shape}.")
        p, q = psnr_ssim(restored, s.target, RGB)
        values["psnr"].append(p)
        values["ssim"].append(q)
        per_image += [ImageMetric(s.key, "psnr", p, str(RGB)), ImageMetric(s.key, "ssim", q, str(RGB))]
        if extra is not None:
            py, qy = psnr_ssim(restored, s.target, extra)
            values["psnr_y"].append(py)
            values["ssim_y"].append(qy)
            per_image += [ImageMetric(s.key, "psnr_y", py, str(extra)), ImageMetric(s.key, "ssim_y", qy, str(extra))]
        if lpips_net is not None:
            values["lpips"].append(perceptual.lpips_distance(lpips_net, restored, s.target))
            per_image.append(ImageMetric(s.key, "lpips", values["lpips"][-1], perceptual.CONVENTION))
        if not sr:
            ip, iq = psnr_ssim(s.image, s.target, RGB)
            values["input_psnr"].append(ip)
            values["input_ssim"].append(iq)
    mean = lambda xs: float(np.mean(xs))  # noqa: E731 -- mean of per-image values (inf stays inf)
    metrics = [MetricValue("psnr", mean(values["psnr"]), f"{RGB}, mean of per-image", True),
               MetricValue("ssim", mean(values["ssim"]), f"{RGB}, gaussian 11/1.5, mean of per-image", True)]
    if extra is not None:
        metrics += [MetricValue("psnr_y", mean(values["psnr_y"]), f"{extra}, mean of per-image", True),
                    MetricValue("ssim_y", mean(values["ssim_y"]), f"{extra}, gaussian 11/1.5, mean of per-image", True)]
    if values["lpips"]:
        metrics.append(MetricValue("lpips", mean(values["lpips"]), perceptual.CONVENTION + ", mean of per-image", False))
    outputs = {"input_psnr": mean(values["input_psnr"]) if values["input_psnr"] else None,
               "input_ssim": mean(values["input_ssim"]) if values["input_ssim"] else None,
               "lpips": lpips_note or "computed"}
    params = {"y_channel": y_channel, "crop_border": crop}
    if levels is not None:
        params["noise_level"] = noise_level_record(levels, [s.key for s in ds.samples])
        outputs["noise_level"] = params["noise_level"]["text"]
    return Evaluation(metrics, per_image, outputs, stats, params)


# -- generation ----------------------------------------------------------------------------------------
def evaluate_generation(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int, progress: Progress | None,
                        samples: int = 256, seed: int = 0, feature_space: str = "auto") -> Evaluation:
    from core.metrics.features import choose_extractor, features, reference_set
    from core.metrics.frechet import frechet_distance_features
    from core.metrics.kid import kernel_inception_distance
    from core.services.generate import latents

    if samples < 2:
        raise InvalidInput("A Fréchet distance needs at least 2 generated samples.")
    spec = loaded.spec
    if spec.num_classes:
        z = [v for i in range(samples) for v in latents(1, spec.latent_dim, seed + i, i % spec.num_classes)]
    else:
        z = latents(samples, spec.latent_dim, seed)
    outs, stats = run_chunked(engine, loaded, z, batch_size, progress, chunk=64, stage="generating")
    scored(progress, 0, 0)  # features of the samples and of the reference set: no count to show
    generated = [(o.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for o in outs]
    ext = choose_extractor(engine, feature_space)
    ref_feats, ref = reference_set(ext, ds.content_hash, [s.image for s in ds.samples])
    gen_feats = features(ext, generated)
    value = frechet_distance_features(gen_feats, ref_feats)
    counts = f"n_gen={len(gen_feats)}, n_ref={ref.count}"
    conv = f"{ext.convention}; {counts}"
    if min(len(gen_feats), ref.count) < 10_000:
        conv += " (biased below 10k samples: compare only at equal n)"
    metrics = [MetricValue(ext.metric, value, conv, False)]
    outputs: dict = {"feature_space": ext.key}
    if ext.metric == "fid":  # KID beside FID: unbiased at small n (Binkowski et al. 2018)
        kid = kernel_inception_distance(gen_feats, ref_feats, seed=seed)
        metrics.append(MetricValue("kid", kid.mean, f"{ext.convention}; KID: unbiased MMD^2, kernel (x.y/d+1)^3, "
                                   f"mean of {kid.subsets} random subsets of m={kid.subset_size} (seeded by the "
                                   f"run's seed); {counts}; raw (papers often print x1e3)", False))
        outputs.update(kid_std=kid.std, kid_subsets=kid.subsets, kid_subset_size=kid.subset_size)
    return Evaluation(metrics, [], outputs, stats, {"samples": samples, "seed": seed, "feature_space": ext.key})
