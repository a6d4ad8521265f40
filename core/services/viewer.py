"""The Compare page's image viewer: one dataset image through the models of several stored benchmark runs.

Outputs are not stored (a dataset run would keep thousands of images); they are recomputed from the run's
dataset spec and model, which the store keeps, and each recomputed per-image value is shown beside the stored
one so a viewer never silently shows something other than what was scored."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.datasets import Sample, load_dataset
from core.engine import Engine
from core.errors import InvalidInput, LabError
from core.metrics.image_quality import RGB, psnr_ssim
from core.services.results import run_detail
from core.services.store import ensure_store, load_for_run
from core.tasks import detection, restoration, segmentation
from db import analytics

VIEWABLE = ("restoration", "detection", "segmentation")


@dataclass(frozen=True)
class ViewedOutput:
    run_id: int
    label: str
    image: np.ndarray  # what the model made of the input (restored image, boxes or mask overlay)
    value: float | None  # recomputed per-image metric (PSNR for restoration, F1 for detection, None otherwise)
    stored: float | None  # the value stored with the run
    note: str = ""


@dataclass(frozen=True)
class ImageView:
    key: str
    task: str
    input: np.ndarray
    target: np.ndarray | None  # the clean image for restoration
    outputs: list[ViewedOutput]
    errors: dict[int, str]  # run id -> why its output could not be recomputed


def image_keys(run_id: int) -> list[str]:
    values = analytics.image_values(ensure_store(), [int(run_id)], _key_metric(run_detail(run_id)))
    return values["image"].tolist()


def _key_metric(detail: dict) -> str:
    return {"restoration": "psnr", "detection": "f1", "segmentation": "miou"}.get(detail["task"], "correct")


def _sample(detail: dict, key: str) -> tuple[Sample, dict]:
    """The image and its dataset's meta (which holds the degradation, e.g. the noise sigma)."""
    spec = {k: v for k, v in (detail["params"].get("dataset") or {}).items() if k != "first"}
    if not spec:
        raise InvalidInput(f"Run #{detail['run_id']} was not run on a dataset; there is no image to show.")
    ds = load_dataset(spec)
    for s in ds.samples:
        if s.key == key:
            return s, ds.meta
    raise InvalidInput(f"The image {key[:80]!r} is not in the dataset of run #{detail['run_id']}.")


def _output(engine: Engine, detail: dict, sample: Sample, meta: dict | None = None) -> ViewedOutput:
    loaded = load_for_run(engine, detail["model"], detail["weights_status"] == "random", detail["task"])
    label = detail["model"] + (" (untrained)" if detail["weights_status"] == "random" else "")
    note = "weights changed since this run" if (loaded.weights.sha256 or "") not in ("", detail["weights_hash"]) else ""
    images = detail["image_metrics"]
    mine = images[images["image"] == sample.key].set_index("metric")["value"]
    if detail["task"] == "restoration":
        # the same noise level as the benchmark gave (FFDNet): the dataset's known sigma, else the same estimate
        sigma = restoration.known_noise_sigma((meta or {}).get("degradation"))
        inputs, levels = restoration.model_inputs(loaded.spec, [sample.image], sigma)
        out, _ = engine.run(loaded, inputs, batch_size=1)
        restored = restoration.to_uint8(out[0])
        value = psnr_ssim(restored, sample.target, RGB)[0] if restored.shape == sample.target.shape else None
        if levels is not None:
            note = "; ".join(n for n in (note, levels[0].text) if n)
        return ViewedOutput(detail["run_id"], label, restored, value, mine.get("psnr"), note)
    if detail["task"] == "detection":
        threshold = float(detail["params"].get("score_threshold", 0.5))
        out, _ = engine.run(loaded, [detection.to_tensor(sample.image)], batch_size=1)
        dets = detection.postprocess(out[0], loaded.spec.categories, threshold)
        return ViewedOutput(detail["run_id"], label, detection.draw(sample.image, dets), float(len(dets)),
                            mine.get("detections"), note or f"{len(dets)} boxes at score ≥ {threshold:g}")
    if detail["task"] == "segmentation" and loaded.spec.operation == "semantic":
        prep = segmentation.normalize if loaded.spec.input_norm == "imagenet" else detection.to_tensor
        out, _ = engine.run(loaded, [prep(sample.image)], batch_size=1)
        labels = segmentation.label_map(out[0], sample.image.shape[:2])
        return ViewedOutput(detail["run_id"], label, segmentation.overlay(sample.image, labels), None, mine.get("miou"), note)
    raise InvalidInput(f"The viewer shows restoration, detection and semantic segmentation runs, not "
                       f"{detail['task']} ({loaded.spec.operation or 'no operation'}).")


def view_image(engine: Engine, run_ids: list[int], key: str) -> ImageView:
    """Recompute the outputs of each run's model on one image of their (shared) dataset."""
    if not run_ids:
        raise InvalidInput("Choose at least one run.")
    details = [run_detail(r) for r in run_ids[:6]]
    first = details[0]
    if first["task"] not in VIEWABLE:
        raise InvalidInput(f"The viewer shows {', '.join(VIEWABLE)} runs, not {first['task']}.")
    if any(d["dataset_hash"] != first["dataset_hash"] for d in details):
        raise InvalidInput("The chosen runs were scored on different datasets; pick runs of one dataset.")
    sample, meta = _sample(first, key)
    outputs, errors = [], {}
    for d in details:
        try:
            outputs.append(_output(engine, d, sample, meta))
        except LabError as exc:
            errors[d["run_id"]] = str(exc)
    target = sample.target if first["task"] == "restoration" else None
    return ImageView(key, first["task"], sample.image, target, outputs, errors)
