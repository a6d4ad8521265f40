"""The Task protocol every task module implements, and the typed values that cross layers with it.

A task knows how to turn images into a model's inputs, score a model over a dataset, which datasets fit a model,
its headline metric, the picture the Compare page's viewer draws, and its training step and validation. Benchmark,
training, services and pages dispatch through `core.tasks.get_task(name)`; adding a task is one module here (and
its import in core/tasks/__init__.py).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from core.data.datasets import Dataset, Sample
from core.engine import Engine, LoadedModel, RunStats
from core.errors import InvalidInput
from core.metrics import registry as metric_registry
from core.metrics.features import FEATURE_SPACES
from core.models.registry import ModelSpec
from core.tasks.inputs import prepare
from core.tasks.outputs import EvaluationOutputs
from db.repository import ImageMetric, MetricValue

if TYPE_CHECKING:  # for annotations only: train_config checks options against the task registry, which needs this module
    from core.tasks.train_config import TrainConfig

# progress(items done, items total, stage): stage is "predicting" (images through the model), "generating"
# (samples) or "scoring" (metrics per image); it may raise to stop the run (a cancelled job)
Progress = Callable[..., None]


def measured(name: str, value: float | None, convention: str) -> MetricValue:
    """A value to store, its direction (higher or lower is better) from the metric registry."""
    if metric_registry.get(name) is None:
        raise ValueError(f"metric {name!r} is not in core.metrics.registry")
    return MetricValue(name, value, convention, metric_registry.higher_is_better(name))


@dataclass(frozen=True)
class BenchmarkParams:
    """What a benchmark is asked for besides models and dataset, validated like TrainConfig. Stored with every
    run as a plain dict (`as_dict`), so the keys are part of the store's format."""

    batch_size: int = 8
    score_threshold: float = 0.5  # detection / instance segmentation: P/R/F1 operating point
    y_channel: bool | None = None  # restoration: also score on Y (None: for super-resolution only)
    crop_border: int | None = None  # restoration: pixels cropped before scoring (None: the SR scale)
    samples: int = 256  # generation: samples drawn for the Frechet distance
    seed: int = 0  # generation: latent seed
    feature_space: str = "auto"  # generation: Inception (FID) or another named feature space
    limit: int | None = None  # score only the first N images

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> BenchmarkParams:
        raw = dict(raw or {})
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidInput(f"Unknown benchmark parameter(s): {', '.join(sorted(unknown))}.")
        p = {**asdict(cls()), **raw}
        try:
            p["batch_size"] = int(p["batch_size"])
            p["score_threshold"] = float(p["score_threshold"])
            p["samples"] = int(p["samples"])
            p["seed"] = int(p["seed"])
            p["limit"] = None if p["limit"] in (None, "", 0) else int(p["limit"])
            p["crop_border"] = None if p["crop_border"] is None else int(p["crop_border"])
        except (TypeError, ValueError):
            raise InvalidInput("Benchmark parameters must be numbers.") from None
        params = cls(**p)
        params.validate()
        return params

    def validate(self) -> None:
        checks = [
            (1 <= self.batch_size <= 256, "Batch size must be between 1 and 256."),
            (0.0 <= self.score_threshold <= 1.0, "The score threshold must be between 0 and 1."),
            (2 <= self.samples <= 10_000, "Generate between 2 and 10000 samples (a Fréchet distance needs at least 2)."),
            (self.limit is None or self.limit >= 1, "The image limit must be at least 1."),
            (self.feature_space in FEATURE_SPACES, f"Feature space must be one of {', '.join(FEATURE_SPACES)}."),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    """One model scored over one dataset: aggregate values with their conventions, per-image values, the tables the
    Compare page draws (per-class scores, confusion matrix, PR curves) and the settings the numbers depend on."""

    metrics: list[MetricValue]
    image_metrics: list[ImageMetric]
    outputs: EvaluationOutputs
    stats: RunStats
    params: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)  # bulky results stored beside the run (match tables)


@dataclass(frozen=True)
class ViewedImage:
    """What the viewer shows for one model on one dataset image."""

    image: np.ndarray  # the model's output drawn as a picture (restored image, boxes, mask overlay)
    value: float | None  # the recomputed per-image value
    stored_metric: str  # the per-image metric stored with the run that `value` is compared with
    note: str = ""
    value_label: str = "value"  # what `value` is, in a caption


# -- training ------------------------------------------------------------------------------------------------
@dataclass
class Split:
    images: list[np.ndarray]  # uint8 HxWx3 (inputs)
    targets: list  # int class | HxW mask | uint8 image | dict(boxes, labels) | None


@dataclass
class TrainData:
    train: Split
    val: Split
    categories: tuple[str, ...] | None
    test_dataset: dict | None  # the benchmark the trained model is scored on
    labels: list[int] | None = None  # conditional generation


@dataclass
class Phase:
    """One optimiser step per batch: `loss(batch)` on the parameters of `modules` (trainable ones only)."""

    name: str  # the curve its loss is drawn as: "train_loss", "d_loss", "g_loss"
    modules: list[nn.Module]
    loss: Callable[[Any], torch.Tensor]
    adam_betas: tuple[float, float] | None = None  # DCGAN's (0.5, 0.999) when the optimiser is Adam

    def parameters(self) -> Iterable[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]


@dataclass
class TrainPlan:
    """A task's training step and validation, run by core.training's one loop.

    batch(indices, rng) builds what every phase of one step shares (augmented images, a generated batch); each
    phase then takes one optimiser step; validate() returns {name: value} including `metric`, scored on held-out
    data after every epoch; finish(best_history_row) gives the values reported with the trained model."""

    model: nn.Module  # the module whose best weights are kept and registered (a GAN's generator)
    n_train: int
    batch: Callable[[list[int], np.random.Generator], Any]
    phases: list[Phase]
    validate: Callable[[], dict[str, float]]
    metric: str
    train_mode: Callable[[], object]  # puts the trained modules in training mode (a frozen backbone stays in eval)
    eval_modules: list[nn.Module] = field(default_factory=list)
    validating: str = "validating"  # what the progress bar says while validate() runs
    finish: Callable[[dict[str, Any]], dict[str, Any]] = lambda best_row: {}
    conventions: dict[str, str] = field(default_factory=dict)  # how each validate() value is measured (curves)


# The training options every task honours; a task lists the others it supports in Task.train_options.
COMMON_TRAIN_OPTIONS = frozenset({"base", "dataset", "task", "upload_id", "pretrained", "epochs", "max_steps",
                                  "batch_size", "lr", "schedule", "optimizer", "momentum", "weight_decay", "seed",
                                  "patience", "train_size", "test_limit", "name", "sweep"})


class Task(ABC):
    """Base of the five task objects. Subclasses set the class attributes and implement what they support; the
    defaults say plainly that a task does not do something."""

    name: ClassVar[str]
    title: ClassVar[str]
    order: ClassVar[int]  # position in the pages' task lists
    headline: ClassVar[tuple[str, ...]]  # metrics a board of this task ranks by, first present wins
    per_image_metric: ClassVar[str | None] = None  # the stored per-image value the viewer and spreads use
    benchmark_options: ClassVar[tuple[str, ...]] = ()  # BenchmarkParams fields besides batch_size/limit it uses
    train_datasets: ClassVar[tuple[str, ...]] = ()  # training sets of the Fine-tune page
    train_options: ClassVar[frozenset[str]] = frozenset()  # TrainConfig fields beyond COMMON_TRAIN_OPTIONS
    augmentations: ClassVar[tuple[str, ...]] = ()  # the augment presets its training step applies
    trains_by_default: ClassVar[bool] = False  # whether a model that does not declare `trainable` can be trained
    untrainable_note: ClassVar[str] = ""  # why a model of this task without `trainable=True` cannot be
    viewable: ClassVar[bool] = False  # the Compare page's image viewer redraws its outputs
    target_is_image: ClassVar[bool] = False  # samples' targets are clean images the viewer shows beside outputs
    # tables its benchmark runs feed on the Compare page: "per_class" (per-class scores, PR curves, confusion),
    # "class_table" (precision/recall/F1 per class, as the source texts print it), "methods" (methods x metrics)
    tables: ClassVar[frozenset[str]] = frozenset()

    def options_for(self, operation: str | None) -> tuple[str, ...]:
        """The benchmark options that matter for models of `operation`."""
        return self.benchmark_options

    def lists_upload(self, upload_task: str, has_masks: bool) -> bool:
        """Whether an uploaded dataset of `upload_task` is offered for this task's models."""
        return upload_task == self.name

    def operation_for(self, dataset_task: str, dataset_operation: str | None) -> str | None:
        """The model operation that scores a dataset of this task (or another task's, where `fits` allows)."""
        return dataset_operation

    def preprocess(self, loaded: LoadedModel, images: list[np.ndarray]) -> list[torch.Tensor]:
        """uint8 HxWx3 images as the tensors `loaded` takes, as its spec declares (core.tasks.inputs)."""
        return prepare(loaded.spec, loaded.module, images)[0]

    # -- benchmarking ------------------------------------------------------------------------------------
    def fits(self, spec: ModelSpec, ds: Dataset) -> bool:
        """Whether `spec` can be scored on `ds`."""
        return ds.task == self.name

    @abstractmethod
    def evaluate(self, engine: Engine, loaded: LoadedModel, ds: Dataset, params: BenchmarkParams,
                 progress: Progress | None) -> Evaluation:
        """Score `loaded` over `ds`: the one thing every task must do."""

    def run_seed(self, params: BenchmarkParams, ds: Dataset) -> int | None:
        """The seed stored with a benchmark run: the dataset's (synthetic sets), or the task's own."""
        return ds.spec.get("seed")

    # -- the Compare page's viewer -----------------------------------------------------------------------
    def view(self, engine: Engine, loaded: LoadedModel, sample: Sample, meta: dict, run_params: dict) -> ViewedImage:
        raise InvalidInput(f"The viewer does not redraw {self.name} runs of {loaded.spec.operation or 'this kind'}.")

    # -- training ----------------------------------------------------------------------------------------
    def training_data(self, cfg: TrainConfig, spec: ModelSpec) -> TrainData:
        raise InvalidInput(f"{self.title} models cannot be trained here.")

    def train_plan(self, cfg: TrainConfig, td: TrainData, device: torch.device, engine: Engine,
                   note: Callable[[str], None]) -> TrainPlan:
        """Build the model and its training step; `note(message)` tells the job's progress bar what is happening."""
        raise InvalidInput(f"{self.title} models cannot be trained here.")

    def supported_train_options(self) -> frozenset[str]:
        return COMMON_TRAIN_OPTIONS | self.train_options
