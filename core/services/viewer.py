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
from core.runs import load_for_run
from core.services.results import run_detail
from core.store import ensure_store
from core.tasks import all_tasks, get_task
from db import analytics
from db.repository import RunDetail


@dataclass(frozen=True)
class ViewedOutput:
    run_id: int
    label: str
    image: np.ndarray  # what the model made of the input (restored image, boxes or mask overlay)
    value: float | None  # recomputed per-image metric (PSNR for restoration, F1 for detection, None otherwise)
    stored: float | None  # the value stored with the run
    note: str = ""
    value_label: str = "value"  # what `value` is, in a caption (e.g. "PSNR")


@dataclass(frozen=True)
class ImageView:
    key: str
    task: str
    input: np.ndarray
    target: np.ndarray | None  # the clean image for restoration
    outputs: list[ViewedOutput]
    errors: dict[int, str]  # run id -> why its output could not be recomputed


def viewable() -> tuple[str, ...]:
    return tuple(t.name for t in all_tasks() if t.viewable)


def image_keys(run_id: int) -> list[str]:
    detail = run_detail(run_id)
    values = analytics.image_values(ensure_store(), [int(run_id)], get_task(detail.task).per_image_metric or "correct")
    return values["image"].tolist()


def _sample(detail: RunDetail, key: str) -> tuple[Sample, dict]:
    """The image and its dataset's meta (which holds the degradation, e.g. the noise sigma)."""
    spec = {k: v for k, v in (detail.params.get("dataset") or {}).items() if k != "first"}
    if not spec:
        raise InvalidInput(f"Run #{detail.run_id} was not run on a dataset; there is no image to show.")
    ds = load_dataset(spec)
    for s in ds.samples:
        if s.key == key:
            return s, ds.meta
    raise InvalidInput(f"The image {key[:80]!r} is not in the dataset of run #{detail.run_id}.")


def _output(engine: Engine, detail: RunDetail, sample: Sample, meta: dict | None = None) -> ViewedOutput:
    random = detail.weights_status == "random"
    loaded = load_for_run(engine, detail.model, random, detail.task)
    label = detail.model + (" (untrained)" if random else "")
    changed = "weights changed since this run" if (loaded.weights.sha256 or "") not in ("", detail.weights_hash) else ""
    images = detail.image_metrics
    mine = images[images["image"] == sample.key].set_index("metric")["value"]
    view = get_task(detail.task).view(engine, loaded, sample, meta or {}, detail.params)
    note = "; ".join(n for n in (changed, view.note) if n)
    return ViewedOutput(detail.run_id, label, view.image, view.value, mine.get(view.stored_metric), note,
                        view.value_label)


def view_image(engine: Engine, run_ids: list[int], key: str) -> ImageView:
    """Recompute the outputs of each run's model on one image of their (shared) dataset."""
    if not run_ids:
        raise InvalidInput("Choose at least one run.")
    details = [run_detail(r) for r in run_ids[:6]]
    first = details[0]
    if first.task not in viewable():
        raise InvalidInput(f"The viewer shows {', '.join(viewable())} runs, not {first.task}.")
    if any(d.dataset_hash != first.dataset_hash for d in details):
        raise InvalidInput("The chosen runs were scored on different datasets; pick runs of one dataset.")
    sample, meta = _sample(first, key)
    outputs, errors = [], {}
    for d in details:
        try:
            outputs.append(_output(engine, d, sample, meta))
        except LabError as exc:
            errors[d.run_id] = str(exc)
    target = sample.target if get_task(first.task).target_is_image else None
    return ImageView(key, first.task, sample.image, target, outputs, errors)
