"""Classify images with a registered model, keep the run in the store."""
from __future__ import annotations

from dataclasses import dataclass

from core.data.decode import DecodedImage
from core.engine import Engine, RunStats
from core.errors import InvalidInput
from core.models.registry import WeightsInfo
from core.runs import check_batch, images_dataset, load_for_run, save_run
from core.tasks import classification, gradcam
from core.tasks.inputs import prepare
from db.repository import ImageMetric


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
             top_k: int = 5, batch_size: int = 8, dataset_kind: str = "upload", owner: str | None = None) -> ClassificationResult:
    """Top-k predictions per image. Raises WeightsUnavailable unless weights exist or allow_random."""
    check_batch(images)
    loaded = load_for_run(engine, model, allow_random, "classification")
    tensors, cfg = prepare(loaded.spec, loaded.module, [img.pixels for img in images])
    logits, stats = engine.run(loaded, tensors, batch_size=batch_size, warmup=1)
    labels = loaded.spec.categories or classification.label_names(loaded.spec.labels, int(logits[0].numel()))
    tops = classification.postprocess(logits, labels, k=top_k)
    predictions = [ImagePrediction(img.name, top) for img, top in zip(images, tops)]
    run_id = save_run(owner=owner,
        loaded=loaded, stats=stats, task="classification", kind="playground",
        dataset=images_dataset(images, dataset_kind),
        params={"top_k": top_k, "requested_batch_size": batch_size, "preprocess": cfg,
                "allow_random": allow_random},
        outputs={"predictions": [{"image": p.name, "top": [[t.index, t.label, round(t.prob, 6)] for t in p.top]}
                                 for p in predictions]},
        metrics=[],
        image_metrics=[ImageMetric(p.name, "top1_prob", p.top[0].prob, f"class={p.top[0].label}") for p in predictions],
        seed=None,
    )
    return ClassificationResult(model, loaded.weights, predictions, stats, cfg, run_id)


def explain(engine: Engine, model: str, pixels, class_index: int, *, allow_random: bool = False,
            expected_weights: str | None = None):
    """Grad-CAM of `class_index` over the image as the model saw it (after resize and crop), as uint8.
    `expected_weights`: the SHA-256 of the weights the prediction was made with; a model whose weights changed
    since is refused rather than explained with other weights (None skips the check)."""
    loaded = load_for_run(engine, model, allow_random, "classification")
    if expected_weights is not None and loaded.weights.sha256 != expected_weights:
        raise InvalidInput(f"The weights of {model} changed since this prediction: classify again to explain it.")
    tensors, cfg = prepare(loaded.spec, loaded.module, [pixels])
    heat = gradcam.grad_cam(loaded.module, tensors[0][None], class_index)
    view = gradcam.unnormalize(tensors[0], cfg["mean"], cfg["std"])
    return gradcam.overlay(view, heat)
