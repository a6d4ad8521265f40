"""Semantic or instance segmentation of images with a registered model; keep the run in the store."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.data.decode import DecodedImage, check_request
from core.data.degrade import limit_side
from core.engine import Engine, RunStats
from core.models.registry import WeightsInfo
from core.runs import check_batch, images_dataset, load_for_run, save_run
from core.tasks import detection, segmentation
from core.tasks import get_task
from db.repository import ImageMetric


@dataclass(frozen=True)
class SegmentedImage:
    name: str
    image: np.ndarray  # the working-size input
    overlay: np.ndarray
    areas: list[segmentation.ClassArea] = field(default_factory=list)  # semantic
    instances: list[detection.Detection] = field(default_factory=list)  # instance


@dataclass(frozen=True)
class SegmentationResult:
    model: str
    operation: str  # semantic | instance
    weights: WeightsInfo
    images: list[SegmentedImage]
    stats: RunStats
    run_id: int


def segment(engine: Engine, model: str, images: list[DecodedImage], *, allow_random: bool = False,
            score_threshold: float = 0.5, max_side: int = 520, dataset_kind: str = "upload",
            owner: str | None = None, warmup: int = 0) -> SegmentationResult:
    check_batch(images, limit=16)
    check_request(images)  # sizes and total pixels, before any tensor is built
    loaded = load_for_run(engine, model, allow_random, "segmentation")
    spec = loaded.spec
    assert spec.operation is not None  # every segmentation model is semantic or instance
    working = [limit_side(img.pixels, max_side) for img in images]
    inputs = get_task("segmentation").preprocess(loaded, working)
    outputs, stats = engine.run(loaded, inputs, batch_size=1, warmup=warmup)
    results, per_image = [], []
    for img, work, out in zip(images, working, outputs):
        if spec.operation == "instance":
            dets = detection.postprocess(out, spec.categories, score_threshold)
            keep = out["scores"] >= score_threshold
            masks = out["masks"][keep][np.argsort(-out["scores"][keep].numpy(), kind="stable")]
            results.append(SegmentedImage(img.name, work, segmentation.instance_overlay(work, masks, dets), instances=dets))
            per_image.append(ImageMetric(img.name, "instances", float(len(dets)), f"score>={score_threshold}"))
        else:
            labels = segmentation.label_map(out, work.shape[:2])
            area = segmentation.areas(labels, spec.categories)
            results.append(SegmentedImage(img.name, work, segmentation.overlay(work, labels), areas=area))
            fg = float((labels > 0).mean())
            per_image.append(ImageMetric(img.name, "foreground_fraction", fg, "labels>0"))
    run_id = save_run(owner=owner,
        loaded=loaded, stats=stats, task="segmentation", kind="playground", dataset=images_dataset(images, dataset_kind),
        params={"operation": spec.operation, "max_side": max_side, "score_threshold": score_threshold,
                "preprocessing": spec.preprocessing, "allow_random": allow_random},
        outputs={"images": [{"image": r.name, "classes": [[a.name, round(a.fraction, 4)] for a in r.areas],
                             "instances": detection.as_records(r.instances[:100])} for r in results]},
        metrics=[], image_metrics=per_image, seed=None,
    )
    return SegmentationResult(model, spec.operation, loaded.weights, results, stats, run_id)
