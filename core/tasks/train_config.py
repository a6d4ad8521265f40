"""What a training job is asked to do, validated before it is queued."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from core.errors import InvalidInput
from core.models.checkpoints import NAME
from core.models.registry import ModelSpec, get_spec
from core.tasks.registry import get_task

OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad", "rmsprop")  # the Fine-tune page lists them in this order
SCHEDULES = ("constant", "step", "cosine")
AUGMENTATIONS = ("flip", "crop", "color", "noise")


@dataclass
class TrainConfig:
    base: str
    dataset: str
    task: str = ""  # filled from the base model
    upload_id: str | None = None
    pretrained: bool = True
    epochs: int = 5
    max_steps: int | None = None  # stop after this many optimiser steps in total (tiny jobs, tests)
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "constant"
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    dropout: float | None = None
    augment: list[str] = field(default_factory=list)
    freeze_backbone: bool = False
    seed: int = 0
    patience: int | None = None  # early stopping on the validation metric
    train_size: int = 512  # synthetic sets / restoration patches
    patch: int = 48
    noise_sigma: float = 25.0  # restoration: denoise noise, deblur added noise
    blur_sigma: float = 2.0
    test_limit: int | None = None  # score the trained model on the first N test images (quick runs)
    name: str | None = None  # registered name of the trained model
    sweep: str | None = None  # groups the jobs of one sweep

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise InvalidInput(f"Unknown training parameter(s): {', '.join(sorted(unknown))}.")
        try:
            cfg = cls(**raw)
        except TypeError as exc:
            raise InvalidInput(f"Training parameters: {exc}.") from None
        cfg.validate()
        return cfg

    def as_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        spec = get_spec(self.base)
        refusal = untrainable_reason(spec)
        if refusal:
            raise InvalidInput(refusal)
        if self.pretrained and spec.check_weights().status == "missing":
            raise InvalidInput(f"{self.base} has no pretrained weights here ({spec.check_weights().detail}); "
                               "train it from scratch or provide the weights on the Models page.")
        self.task = spec.task
        task = get_task(self.task)
        if self.dataset not in task.train_datasets:
            raise InvalidInput(f"{self.task} trains on {', '.join(task.train_datasets)}, not {self.dataset!r}.")
        if self.dataset == "upload" and not self.upload_id:
            raise InvalidInput("Choose the uploaded dataset to train on.")
        self._refuse_unsupported(task)
        checks = [
            (1 <= self.epochs <= 500, "Epochs must be between 1 and 500."),
            (self.max_steps is None or 1 <= self.max_steps <= 1_000_000, "Max steps must be at least 1."),
            (1 <= self.batch_size <= 1024, "Batch size must be between 1 and 1024."),
            (0 < self.lr <= 10, "The learning rate must be in (0, 10]."),
            (self.schedule in SCHEDULES, f"Schedule must be one of {', '.join(SCHEDULES)}."),
            (self.optimizer in OPTIMIZERS, f"Optimizer must be one of {', '.join(OPTIMIZERS)}."),
            (0 <= self.momentum < 1, "Momentum must be in [0, 1)."),
            (0 <= self.weight_decay <= 1, "Weight decay must be in [0, 1]."),
            (self.dropout is None or 0 <= self.dropout < 1, "Dropout must be in [0, 1)."),
            (set(self.augment) <= set(AUGMENTATIONS), f"Augmentations are {', '.join(AUGMENTATIONS)}."),
            (self.patience is None or 1 <= self.patience <= 100, "Patience must be between 1 and 100 epochs."),
            (8 <= self.train_size <= 20_000, "The training set size must be between 8 and 20000."),
            (self.test_limit is None or 2 <= self.test_limit <= 100_000, "The test limit must be at least 2."),
            (16 <= self.patch <= 256, "The patch size must be between 16 and 256."),
            (0 <= self.noise_sigma <= 100, "Noise sigma must be between 0 and 100."),
            (0.3 <= self.blur_sigma <= 10, "Blur sigma must be between 0.3 and 10."),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)
        if self.name is not None:
            if not NAME.match(self.name):
                raise InvalidInput("The model name must be 3-60 characters of lower-case letters, digits, '_' or '-'.")

    def _refuse_unsupported(self, task) -> None:
        """An option the task's training step does not use is refused here, at submit, rather than ignored."""
        defaults = TrainConfig(base=self.base, dataset=self.dataset)
        offered = task.supported_train_options()
        for f in fields(self):
            if f.name != "augment" and f.name not in offered and getattr(self, f.name) != getattr(defaults, f.name):
                raise InvalidInput(f"{task.title} training does not use the option {f.name.replace('_', ' ')!r}; "
                                   "leave it at its default.")
        unused = set(self.augment) - set(task.augmentations)
        if unused:
            raise InvalidInput(f"{task.title} training applies {', '.join(task.augmentations) or 'no augmentation'}; "
                               f"it does not apply {', '.join(sorted(unused))}.")


def untrainable_reason(spec: ModelSpec) -> str | None:
    """Why `spec` cannot be fine-tuned here, or None. Decided by the model's declared capability (`trainable`)
    and its task's rule for models that declare nothing, never by its name."""
    if spec.trainable is False or spec.source == "classical" or spec.cpu_only:
        return f"{spec.name} cannot be trained here (classical, quantized or a fixed cascade)."
    task = get_task(spec.task)
    if spec.trainable is None and not task.trains_by_default:
        return task.untrainable_note or f"{spec.name} cannot be trained here."
    if spec.base is not None:
        return f"{spec.name} is a variant or checkpoint of {spec.base}; fine-tune {spec.base} instead."
    if not task.train_datasets:
        return f"{spec.name} ({spec.task}) cannot be trained here."
    return None
