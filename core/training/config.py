"""What a training job is asked to do, validated before it is queued."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from core.errors import InvalidInput

OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")
AUGMENTATIONS = ("flip", "crop", "color", "noise")
TRAIN_DATASETS = {
    "classification": ("digits", "shapes", "upload"),
    "restoration": ("patches",),
    "segmentation": ("shapes",),
    "generation": ("digits", "shapes"),
    "detection": ("shapes",),
}


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
    def from_dict(cls, raw: dict) -> "TrainConfig":
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
        from core.models.registry import get_spec

        spec = get_spec(self.base)
        if spec.trainable is False or spec.source == "classical" or spec.cpu_only or spec.name == "mtcnn_face":
            raise InvalidInput(f"{self.base} cannot be trained here (classical, quantized or a fixed cascade).")
        if spec.task == "detection" and not (spec.trainable or spec.name.startswith("fasterrcnn")):
            raise InvalidInput("Detection fine-tuning supports the Faster R-CNN detectors.")
        if spec.task == "segmentation" and (spec.operation != "semantic" or spec.source != "small-net"):
            raise InvalidInput("Segmentation fine-tuning supports the U-Net (a head of the synthetic set's classes).")
        if spec.base is not None:
            raise InvalidInput(f"{self.base} is a variant or checkpoint of {spec.base}; fine-tune {spec.base} instead.")
        if self.pretrained and spec.check_weights().status == "missing":
            raise InvalidInput(f"{self.base} has no pretrained weights here ({spec.check_weights().detail}); "
                               "train it from scratch or provide the weights on the Models page.")
        self.task = spec.task
        if self.task not in TRAIN_DATASETS:
            raise InvalidInput(f"{self.base} ({self.task}) cannot be trained here.")
        if self.dataset not in TRAIN_DATASETS[self.task]:
            raise InvalidInput(f"{self.task} trains on {', '.join(TRAIN_DATASETS[self.task])}, not {self.dataset!r}.")
        if self.dataset == "upload" and not self.upload_id:
            raise InvalidInput("Choose the uploaded dataset to train on.")
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
            from core.models.checkpoints import NAME

            if not NAME.match(self.name):
                raise InvalidInput("The model name must be 3-60 characters of lower-case letters, digits, '_' or '-'.")
