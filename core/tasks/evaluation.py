"""Shared steps of scoring a model over a dataset: predictions through the engine in slices (so progress and
cancel work), progress for the scoring stage, and matching a dataset's class names to a model's."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from core.engine import Engine, LoadedModel, RunStats
from core.errors import InvalidInput
from core.tasks.base import Progress


def merge_stats(parts: list[RunStats]) -> RunStats:
    first = parts[0]
    return RunStats(
        device=first.device, dtype=first.dtype, batch_size=min(p.batch_size for p in parts),
        items=sum(p.items for p in parts), batches=sum(p.batches for p in parts),
        total_ms=sum(p.total_ms for p in parts), batch_ms=[ms for p in parts for ms in p.batch_ms],
        peak_mem_mb=max(p.peak_mem_mb for p in parts), mem_kind=first.mem_kind, warmup=first.warmup,
        oom_retries=sum(p.oom_retries for p in parts), batch_items=[n for p in parts for n in p.batch_items],
    )


def slices(inputs: list, batch_size: int, chunk: int, min_batches: int = 1) -> list[tuple[int, int]]:
    """(start, end) of slices made of the engine's own batches (same-shape neighbours, at most `batch_size`),
    each closed once it holds at least `chunk` images and `min_batches` batches. A batch is never cut, so the batch
    size asked for is the one that runs, and photos of different sizes still report a few at a time."""
    out, start, end, batches = [], 0, 0, 0
    while end < len(inputs):
        end += len(Engine._chunk(inputs, end, batch_size))
        batches += 1
        if end - start >= chunk and batches >= min_batches:
            out.append((start, end))
            start, batches = end, 0
    if start < end:
        out.append((start, end))
    return out


def run_chunked(engine: Engine, loaded: LoadedModel, inputs: list[torch.Tensor], batch_size: int,
                progress: Progress | None, chunk: int = 16, stage: str = "predicting") -> tuple[list[Any], RunStats]:
    """engine.run over slices of `inputs`, reporting progress (and so letting a job cancel) between slices; one
    warm-up batch first. On a GPU a slice holds at least two batches, so copies overlap compute within it."""
    outputs, parts = [], []
    for start, end in slices(inputs, batch_size, chunk, 2 if engine.device.type == "cuda" else 1):
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
        return label_names(spec.labels, num_outputs)
    return None


@lru_cache(maxsize=4)
def label_names(label_set: str | None, num_classes: int) -> tuple[str, ...]:
    """Class names of a label set by index: ImageNet-1k's descriptions from timm, else "class i"."""
    if label_set == "imagenet-1k" and num_classes == 1000:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return tuple(info.index_to_description(i) for i in range(1000))
    return tuple(f"class {i}" for i in range(num_classes))
