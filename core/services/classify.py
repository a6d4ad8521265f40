"""Classify images with a registered model, keep the run in the store."""
from __future__ import annotations

from dataclasses import dataclass

from core.data.decode import DecodedImage
from core.engine import Engine, RunStats
from core.errors import InvalidInput
from core.models.registry import WeightsInfo
from core.services.store import content_hash, save_run
from core.tasks import classification
from db.repository import DatasetRef, ImageMetric

MAX_IMAGES = 64


@dataclass(frozen=True)
class ImagePrediction:
    name: str
    top: list[classification.Prediction]


@dataclass(frozen=True)
class ClassificationResult:
    model: str
    weights: WeightsInfo
    predictions: list[ImagePrediction]
    stats: RunStats
    data_config: dict
    run_id: int


def classify(engine: Engine, model: str, images: list[DecodedImage], *, allow_random: bool = False,
             top_k: int = 5, batch_size: int = 8, dataset_kind: str = "upload") -> ClassificationResult:
    """Top-k predictions per image. Raises WeightsUnavailable unless weights exist or allow_random."""
    if not images:
        raise InvalidInput("Add at least one image to classify.")
    if len(images) > MAX_IMAGES:
        raise InvalidInput(f"At most {MAX_IMAGES} images per run; got {len(images)}.")
    loaded = engine.load(model, "random" if allow_random else "pretrained")
    if loaded.spec.task != "classification":
        raise InvalidInput(f"{model} is a {loaded.spec.task} model, not a classifier.")
    tensors, cfg = classification.preprocess([img.pixels for img in images], loaded.module)
    logits, stats = engine.run(loaded, tensors, batch_size=batch_size, warmup=1)
    labels = classification.label_names(loaded.spec.labels, int(logits[0].numel()))
    tops = classification.postprocess(logits, labels, k=top_k)
    predictions = [ImagePrediction(img.name, top) for img, top in zip(images, tops)]

    names = [img.name for img in images]
    dataset = DatasetRef(
        name=f"{dataset_kind}:{names[0]}" + (f"+{len(names) - 1}" if len(names) > 1 else ""),
        kind=dataset_kind, content_hash=content_hash(img.sha256 for img in images), num_items=len(images),
        meta={"images": names},
    )
    run_id = save_run(
        loaded=loaded, stats=stats, task="classification", kind="playground", dataset=dataset,
        params={"top_k": top_k, "requested_batch_size": batch_size, "preprocess": cfg,
                "weights_requested": "random" if allow_random else "pretrained"},
        outputs={"predictions": [{"image": p.name, "top": [[t.index, t.label, round(t.prob, 6)] for t in p.top]}
                                 for p in predictions]},
        metrics=[],
        image_metrics=[ImageMetric(p.name, "top1_prob", p.top[0].prob, f"class={p.top[0].label}") for p in predictions],
        seed=None,
    )
    return ClassificationResult(model, loaded.weights, predictions, stats, cfg, run_id)
