"""Detect objects in images with a registered detector; keep the run in the store."""
from __future__ import annotations

from dataclasses import dataclass

from core.data.decode import DecodedImage, check_request
from core.engine import Engine, RunStats
from core.errors import InvalidInput
from core.models.registry import WeightsInfo
from core.runs import check_batch, images_dataset, load_for_run, save_run
from core.tasks import detection, get_task
from db.repository import ImageMetric

STORED_THRESHOLD = 0.05  # raw detections kept down to this score so the page can re-threshold


@dataclass(frozen=True)
class DetectionResult:
    model: str
    weights: WeightsInfo
    names: list[str]
    detections: list[list[detection.Detection]]  # per image, all >= STORED_THRESHOLD, best first
    stats: RunStats
    score_threshold: float
    run_id: int

    def above(self, threshold: float) -> list[list[detection.Detection]]:
        return [[d for d in dets if d.score >= threshold] for dets in self.detections]


def detect(engine: Engine, model: str, images: list[DecodedImage], *, score_threshold: float = 0.5,
           allow_random: bool = False, batch_size: int = 2, dataset_kind: str = "upload", owner: str | None = None,
           warmup: int = 0) -> DetectionResult:
    check_batch(images, limit=32)
    check_request(images)  # sizes and total pixels: shape_regions on one strip once took 7.8 GB
    if not 0 <= score_threshold <= 1:
        raise InvalidInput(f"The score threshold must be between 0 and 1, got {score_threshold}.")
    loaded = load_for_run(engine, model, allow_random, "detection")
    inputs = get_task("detection").preprocess(loaded, [img.pixels for img in images])
    outputs, stats = engine.run(loaded, inputs, batch_size=batch_size, warmup=warmup)
    dets = [detection.postprocess(o, loaded.spec.categories, STORED_THRESHOLD) for o in outputs]
    kept = [[d for d in ds if d.score >= score_threshold] for ds in dets]
    run_id = save_run(owner=owner,
        loaded=loaded, stats=stats, task="detection", kind="playground", dataset=images_dataset(images, dataset_kind),
        params={"score_threshold": score_threshold, "requested_batch_size": batch_size, "allow_random": allow_random},
        outputs={"detections": [{"image": img.name, "boxes": detection.as_records(ds[:100])}
                                for img, ds in zip(images, kept)]},
        metrics=[],
        image_metrics=[ImageMetric(img.name, "detections", float(len(ds)), f"score>={score_threshold}")
                       for img, ds in zip(images, kept)],
        seed=None,
    )
    return DetectionResult(model, loaded.weights, [img.name for img in images], dets, stats, score_threshold, run_id)
