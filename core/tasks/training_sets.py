"""Training and validation data per task, deterministic from the job's seed and disjoint from the benchmark
sets the trained model is then tested on (synthetic sets use other seeds; restoration trains on patches of
sklearn's two sample photos and seven other scikit-image pictures, and is tested on the ten benchmark photos)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.data.datasets import training_photos, digits_image, digits_split, load_dataset
from core.data.degrade import downscale_bicubic, gaussian_blur
from core.data.synthetic import SHAPE_NAMES, scene
from core.errors import InvalidInput
from core.annotations import DIGITS_CATEGORIES, SHAPES_CATEGORIES
from core.tasks.base import Split, TrainData

if TYPE_CHECKING:
    from core.tasks.train_config import TrainConfig

TRAIN_SEED, VAL_SEED = 1_000_003, 2_000_003  # synthetic scenes: far from the benchmark seeds (0, 1, ...)


@dataclass(frozen=True)
class TrainingSet:
    """A set a Fine-tune job trains on (Task.train_datasets names them). Each draws from the same source as the
    benchmark sets of that source (digits, shapes, photos), never from their test images."""

    name: str
    title: str  # in a student's words, saying what the trained model is then tested on
    sized: bool  # the job chooses how many images it generates or cuts (synthetic scenes, photo patches)


TRAINING_SETS = {s.name: s for s in (
    TrainingSet("digits", "sklearn digits: the training split (tested on the held-out test split)", False),
    TrainingSet("shapes", "synthetic shapes: fresh scenes (tested on the benchmark's shapes set)", True),
    TrainingSet("patches", "photo patches from nine other scikit-image pictures (tested on the benchmark photos)",
                True),
    TrainingSet("upload", "your uploaded ImageFolder zip (80% train, 20% validation)", False),
)}


def _shapes(seed: int, count: int, **kw):
    return [scene(seed + i, **kw) for i in range(count)]


def classification(cfg: TrainConfig) -> TrainData:
    if cfg.dataset == "digits":
        images, target = digits_split("train")
        cut = int(len(images) * 0.9)
        pick = lambda sl: Split([digits_image(x) for x in images[sl]], [int(t) for t in target[sl]])  # noqa: E731
        return TrainData(pick(slice(0, cut)), pick(slice(cut, None)), DIGITS_CATEGORIES, {"name": "digits"})
    if cfg.dataset == "shapes":
        tr = _shapes(TRAIN_SEED + cfg.seed * 100_000, cfg.train_size, max_shapes=1)
        va = _shapes(VAL_SEED + cfg.seed * 100_000, max(32, cfg.train_size // 5), max_shapes=1)
        return TrainData(Split([s.image for s in tr], [int(s.labels[0]) - 1 for s in tr]),
                         Split([s.image for s in va], [int(s.labels[0]) - 1 for s in va]), SHAPE_NAMES,
                         {"name": "shapes-classify", "count": 120, "seed": 0})
    ds = load_dataset({"name": "upload", "id": cfg.upload_id or ""})
    if ds.task != "classification":
        raise InvalidInput("That upload is not an ImageFolder classification set.")
    order = np.random.default_rng(cfg.seed).permutation(len(ds.samples))
    cut = max(1, int(len(order) * 0.8))
    if cut >= len(order):
        raise InvalidInput("An uploaded training set needs at least 2 images (80% train, 20% validation).")
    pick = lambda idx: Split([ds.samples[i].image for i in idx], [ds.samples[i].target for i in idx])  # noqa: E731
    return TrainData(pick(order[:cut]), pick(order[cut:]), ds.categories, None)


def _patches(count: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    photos = [img for _, img in training_photos()]
    out = []
    for i in range(count):
        img = photos[i % len(photos)]
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        out.append(np.ascontiguousarray(img[y:y + size, x:x + size]))
    return out


def restoration(cfg: TrainConfig, operation: str, scale: int | None) -> TrainData:
    size = cfg.patch - cfg.patch % (scale or 1)
    splits = []
    for seed, count in ((cfg.seed, cfg.train_size), (cfg.seed + 7919, max(16, cfg.train_size // 8))):
        clean = _patches(count, size, seed)
        if operation == "super-resolution":
            assert scale is not None  # super-resolution models always have a scale factor
            splits.append(Split([downscale_bicubic(c, scale) for c in clean], clean))
        elif operation == "deblur":
            splits.append(Split([gaussian_blur(c, cfg.blur_sigma, cfg.noise_sigma, seed + i) for i, c in enumerate(clean)],
                                clean))
        else:  # denoise: noise is drawn afresh for every training batch; validation gets fixed noise
            splits.append(Split(clean, clean))
    tests: dict[str, dict[str, Any]] = {
        "denoise": {"name": "photos-denoise", "sigma": cfg.noise_sigma},
        "deblur": {"name": "photos-deblur", "blur_sigma": cfg.blur_sigma, "noise_sigma": cfg.noise_sigma},
        "super-resolution": {"name": "photos-sr", "scale": scale}}
    return TrainData(splits[0], splits[1], None, tests[operation])


def segmentation(cfg: TrainConfig) -> TrainData:
    tr = _shapes(TRAIN_SEED + cfg.seed * 100_000, cfg.train_size)
    va = _shapes(VAL_SEED + cfg.seed * 100_000, max(8, cfg.train_size // 5))
    return TrainData(Split([s.image for s in tr], [s.semantic for s in tr]),
                     Split([s.image for s in va], [s.semantic for s in va]), SHAPES_CATEGORIES,
                     {"name": "shapes-semantic", "count": 64, "seed": 0})


def detection(cfg: TrainConfig) -> TrainData:
    tr = _shapes(TRAIN_SEED + cfg.seed * 100_000, cfg.train_size)
    va = _shapes(VAL_SEED + cfg.seed * 100_000, max(8, cfg.train_size // 5))
    as_target = lambda s: {"boxes": s.boxes.astype(np.float32), "labels": s.labels}  # noqa: E731
    return TrainData(Split([s.image for s in tr], [as_target(s) for s in tr]),
                     Split([s.image for s in va], [as_target(s) for s in va]), SHAPES_CATEGORIES,
                     {"name": "shapes-detect", "count": 64, "seed": 0})


def generation(cfg: TrainConfig, conditional: bool) -> TrainData:
    if cfg.dataset == "digits":
        images, target = digits_split("train")
        imgs = [digits_image(x) for x in images]
        return TrainData(Split(imgs, [None] * len(imgs)), Split([], []), None, {"name": "digits-real"},
                         labels=[int(t) for t in target])
    if conditional:
        raise InvalidInput("The conditional generator trains on digits (it needs labels).")
    tr = _shapes(TRAIN_SEED + cfg.seed * 100_000, cfg.train_size, size=32)
    return TrainData(Split([s.image for s in tr], [None] * len(tr)), Split([], []), None,
                     {"name": "shapes-real", "count": 256, "seed": 0})
