"""Detection: [0, 1] image tensors in (the detectors normalise and resize themselves), boxes out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_keypoints

from core.data.datasets import Dataset, Sample
from core.engine import Engine, LoadedModel
from core.errors import InvalidInput
from core.metrics import detection as det_metrics
from core.metrics import operating_points
from core.models.registry import ModelSpec
from core.tasks import training_sets
from core.tasks.base import (measured, BenchmarkParams, Evaluation, Phase, Progress, Task, TrainData, TrainPlan, ViewedImage)
from core.tasks.evaluation import category_map, run_chunked, scored
from core.tasks.fitting import trainable_model
from core.tasks.inputs import images_in_unit_range
from core.tasks.outputs import DetectionTables, EvaluationOutputs
from core.tasks.registry import register_task
from db.repository import ImageMetric

KEYPOINT_COLOR = (0, 255, 0)
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255)]


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    label: int
    name: str
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()  # e.g. MTCNN's eyes, nose, mouth corners


to_tensor = images_in_unit_range  # detectors take [0, 1] RGB and normalise and resize themselves


def postprocess(output: dict, categories: tuple[str, ...] | None, score_threshold: float = 0.0) -> list[Detection]:
    """Detections above the threshold, best first."""
    boxes, scores, labels = output["boxes"], output["scores"], output["labels"]
    keep = scores >= score_threshold
    order = torch.argsort(scores[keep], descending=True)
    points = output.get("keypoints")
    points = points[keep][order].tolist() if points is not None else [()] * int(keep.sum())
    dets = []
    for box, score, label, pts in zip(boxes[keep][order].tolist(), scores[keep][order].tolist(),
                                      labels[keep][order].tolist(), points):
        name = categories[label] if categories and 0 <= label < len(categories) else f"class {label}"
        kps = tuple((round(x, 1), round(y, 1)) for x, y in pts)
        dets.append(Detection(tuple(round(v, 2) for v in box), int(label), name, float(score), kps))
    return dets


def color_for(label: int) -> tuple[int, int, int]:
    return PALETTE[label % len(PALETTE)]


def draw(image: np.ndarray, dets: list[Detection], width: int = 3) -> np.ndarray:
    """Boxes with "name score" captions drawn on a copy of the image."""
    if not dets:
        return image.copy()
    canvas = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    boxes = torch.tensor([d.box for d in dets], dtype=torch.float32)
    out = draw_bounding_boxes(canvas, boxes, labels=[f"{d.name} {d.score:.2f}" for d in dets],
                              colors=[color_for(d.label) for d in dets], width=width)
    if any(d.keypoints for d in dets):
        kps = torch.tensor([list(d.keypoints) for d in dets if d.keypoints], dtype=torch.float32)
        out = draw_keypoints(out, kps, colors=KEYPOINT_COLOR, radius=max(2, width))
    return out.permute(1, 2, 0).numpy()


def as_records(dets: list[Detection]) -> list[dict]:
    return [{"name": d.name, "label": d.label, "score": round(d.score, 4), "box": list(d.box)}
            | ({"keypoints": [list(p) for p in d.keypoints]} if d.keypoints else {}) for d in dets]


# -- scoring ------------------------------------------------------------------------------------------
def _detection_values(rep: det_metrics.DetectionReport, names: tuple[str, ...], prefix: str) -> tuple[list, DetectionTables]:
    thr = rep.score_threshold
    conv_ap = "COCO: IoU .50:.05:.95, 101 recall points, maxDets 100, area all"
    conv_prf = f"IoU>=0.5, score>={thr:g}, zero_division=0"
    micro, macro = rep.micro(), rep.macro()
    f1max = rep.max_f1()
    metrics = [
        measured(f"{prefix}map", rep.map, conv_ap),
        measured(f"{prefix}map50", rep.map50, conv_ap.replace(".50:.05:.95", ".50")),
        measured(f"{prefix}map75", rep.map75, conv_ap.replace(".50:.05:.95", ".75")),
    ]
    if not prefix:
        metrics += [
            measured("precision", micro[0], conv_prf + ", micro"),
            measured("recall", micro[1], conv_prf + ", micro"),
            measured("f1", micro[2], conv_prf + ", micro"),
            measured("f1_macro", macro[2], conv_prf + ", macro"),
            measured("f1_max", f1max[0], f"IoU>=0.5, best score threshold {f1max[3]:.3f}, micro"),
        ]
        for area, words in det_metrics.AREA_WORDS.items():  # None: no objects of that size
            value = rep.map_in(area)
            metrics.append(measured(f"map_{area}", None if np.isnan(value) else value,
                                    conv_ap.replace("area all", f"area {area} ({words})")))
    return metrics, DetectionTables.of(rep, names)


def _to_dataset_labels(labels: np.ndarray, cmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model class ids -> dataset class ids; detections of classes the dataset does not annotate are dropped."""
    inverse = {int(m): d for d, m in enumerate(cmap) if m >= 0}
    mapped = np.array([inverse.get(int(label), -1) for label in labels], np.int64)
    keep = mapped > 0  # 0 is background
    return mapped, keep


def evaluate_detections(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int, progress: Progress | None,
                        score_threshold: float = 0.5, masks: bool = False) -> Evaluation:
    """Boxes (and with `masks`, instance masks: Mask R-CNN) scored the COCO way, P/R/F1 at the threshold."""
    if masks and any(s.masks is None for s in ds.samples):
        raise InvalidInput("This dataset has no instance masks; choose one with masks for instance segmentation.")
    inputs = [to_tensor(s.image) for s in ds.samples]
    outs, stats = run_chunked(engine, loaded, inputs, batch_size, progress)
    assert ds.categories is not None  # classification, detection and segmentation datasets always name their classes
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
    metrics, boxes = _detection_values(report, ds.categories, "")
    mask_tables = None
    if masks:
        mask_truths = cast("list[det_metrics.ImageTruth]", [s.masks for s in ds.samples])  # no None: checked at the top
        mrep = det_metrics.evaluate(mask_preds, mask_truths, len(ds.categories), iou_type="segm",
                                    score_threshold=score_threshold)
        mask_metrics, mask_tables = _detection_values(mrep, ds.categories, "mask_")
        metrics = mask_metrics + metrics
    matches = operating_points.build(box_preds, [s.target for s in ds.samples], ds.categories)
    artifacts = {operating_points.ARTIFACT: matches.to_bytes()} if matches.nbytes <= operating_points.MAX_BYTES else {}
    return Evaluation(metrics, per_image, EvaluationOutputs.of_detection(boxes, mask_tables), stats,
                      {"score_threshold": score_threshold}, artifacts)


class DetectionTask(Task):
    name = "detection"
    tables = frozenset({"per_class", "class_table"})
    order = 2
    title = "Detection"
    headline = ("map", "f1")
    per_image_metric = "f1"
    benchmark_options = ("score_threshold",)
    train_datasets = ("shapes",)
    train_options = frozenset({"freeze_backbone"})
    untrainable_note = "Detection fine-tuning supports the Faster R-CNN and YOLO-style detectors."
    viewable = True

    def evaluate(self, engine: Engine, loaded: LoadedModel, ds: Dataset, params: BenchmarkParams,
                 progress: Progress | None) -> Evaluation:
        return evaluate_detections(engine, loaded, ds, params.batch_size, progress, params.score_threshold)

    def view(self, engine: Engine, loaded: LoadedModel, sample: Sample, meta: dict, run_params: dict) -> ViewedImage:
        threshold = float(run_params.get("score_threshold", 0.5))
        out, _ = engine.run(loaded, [to_tensor(sample.image)], batch_size=1)
        dets = postprocess(out[0], loaded.spec.categories, threshold)
        return ViewedImage(draw(sample.image, dets), float(len(dets)), "detections",
                           f"{len(dets)} boxes at score ≥ {threshold:g}")

    def training_data(self, cfg, spec: ModelSpec) -> TrainData:
        return training_sets.detection(cfg)

    def train_plan(self, cfg, td: TrainData, device: torch.device, engine: Engine, note) -> TrainPlan:
        _, model, train_mode = trainable_model(cfg, td.categories, device)

        def batch(idx, rng):
            images = [to_tensor(td.train.images[i]).to(device) for i in idx]
            targets = [{"boxes": torch.from_numpy(td.train.targets[i]["boxes"]).to(device),
                        "labels": torch.from_numpy(td.train.targets[i]["labels"]).to(device)} for i in idx]
            return images, targets

        def validate():
            preds, truths = [], []
            for img, t in zip(td.val.images, td.val.targets):
                out = model([to_tensor(img).to(device)])[0]
                preds.append(det_metrics.ImagePred(out["labels"].cpu().numpy(), out["scores"].cpu().numpy(),
                                                   out["boxes"].cpu().numpy()))
                truths.append(det_metrics.ImageTruth(t["labels"], t["boxes"]))
            rep = det_metrics.evaluate(preds, truths, len(td.categories), area_ranges=False)
            return {"val_map": 0.0 if np.isnan(rep.map) else rep.map,
                    "val_map50": 0.0 if np.isnan(rep.map50) else rep.map50}

        # The best epoch is chosen by COCO mAP@[.5:.95]: mAP@0.5 saturates at 1.0 on the shapes scenes within a few
        # epochs, and keeping the first epoch that reaches it dropped the later, tighter boxes (held-out mAP .92 vs .96).
        return TrainPlan(model, len(td.train.images), batch,
                         [Phase("train_loss", [model], lambda b: sum(model(b[0], b[1]).values()))],
                         validate, "val_map", train_mode,
                         finish=lambda best: {"val_map": best["val_map"], "val_map50": best["val_map50"]},
                         conventions={"val_map": f"COCO mAP@[.5:.95] on the validation split ({len(td.val.images)} "
                                                 "images; 0 when nothing is detected)",
                                      "val_map50": f"COCO mAP@0.5 on the validation split ({len(td.val.images)} images)"})


TASK = register_task(DetectionTask())
