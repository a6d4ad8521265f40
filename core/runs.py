"""Recording runs: the model and dataset references, engine timings and provenance that go with every stored
run, shared by the Playground services and benchmarks."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from core.data.decode import DecodedImage
from core.engine import Engine, LoadedModel, RunStats
from core.errors import InvalidInput, WeightsUnavailable
from core.metrics import registry as metric_registry
from core.provenance import code_version, library_versions
from core.store import StoreUnavailable, ensure_store
from db import repository
from db.repository import DatasetRef, ImageMetric, MetricValue, ModelRef, RunRecord
from db.session import StoreBusy


def model_ref(loaded: LoadedModel) -> ModelRef:
    w = loaded.weights
    weights_hash = w.sha256 or ("random-init:seed0" if w.status == "random" else "none")
    return ModelRef(
        name=loaded.spec.name, task=loaded.spec.task, source=loaded.spec.source, weights_status=w.status,
        weights_hash=weights_hash, weights_origin=w.origin, num_params=loaded.num_params,
        meta={"title": loaded.spec.title, "operation": loaded.spec.operation, "scale": loaded.spec.scale},
    )


def content_hash(hashes: Iterable[str]) -> str:
    h = hashlib.sha256()
    for item in hashes:
        h.update(item.encode())
    return h.hexdigest()


def load_for_run(engine: Engine, name: str, allow_random: bool, task: str) -> LoadedModel:
    """Pretrained weights when they can be found; random ones only when the user allowed them."""
    try:
        loaded = engine.load(name, "pretrained")
    except WeightsUnavailable:
        if not allow_random:
            raise
        loaded = engine.load(name, "random")
    if loaded.spec.task != task:
        raise InvalidInput(f"{name} is a {loaded.spec.task} model, not a {task} model.")
    return loaded


def images_dataset(images: list[DecodedImage], kind: str) -> DatasetRef:
    """The ad-hoc dataset of a Playground run: its images' names and a hash over their bytes."""
    names = [img.name for img in images]
    return DatasetRef(
        name=f"{kind}:{names[0]}" + (f"+{len(names) - 1}" if len(names) > 1 else ""),
        kind=kind, content_hash=content_hash(img.sha256 for img in images), num_items=len(images),
        meta={"images": names},
    )


def check_batch(images: list, limit: int = 64) -> None:
    if not images:
        raise InvalidInput("Add at least one image.")
    if len(images) > limit:
        raise InvalidInput(f"At most {limit} images per run; got {len(images)}.")


def engine_metrics(stats: RunStats) -> list[MetricValue]:
    largest = max(stats.batch_items, default=stats.batch_size)  # what ran, not what was asked for
    conv = (f"device={stats.device},batch={largest},ran={stats.ran},p50/p95 per batch,"
            f"warmup={stats.warmup} batch{'es' if stats.warmup != 1 else ''},mem={stats.mem_kind}"
            + (f",opt={stats.speedup}" if stats.speedup != "plain" else "")
            + (f",clock={stats.clock}" if stats.clock != "wall" else ""))
    return [MetricValue(k, v, conv, metric_registry.higher_is_better(k)) for k, v in stats.as_metrics().items()]


def save_run(*, loaded: LoadedModel, stats: RunStats, task: str, kind: str, dataset: DatasetRef | None,
             params: dict, outputs: dict, metrics: list[MetricValue], image_metrics: list[ImageMetric],
             seed: int | None, job_id: int | None = None, owner: str | None = None,
             artifacts: dict[str, bytes] | None = None) -> int:
    url = ensure_store()
    record = RunRecord(
        model=model_ref(loaded), dataset=dataset, task=task, kind=kind, device=stats.device, dtype=stats.dtype,
        batch_size=stats.batch_size, seed=seed, params=params, outputs=outputs, code_version=code_version(),
        versions=library_versions(), metrics=metrics + engine_metrics(stats), image_metrics=image_metrics,
        job_id=job_id, owner=owner, artifacts=artifacts or {},
    )
    try:
        return repository.record_run(url, record)
    except StoreBusy as exc:
        raise StoreUnavailable(str(exc)) from None
