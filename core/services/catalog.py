"""What the model pickers show: every registered model with its weights availability."""
from __future__ import annotations

from dataclasses import dataclass

from core.models.registry import list_models


@dataclass(frozen=True)
class ModelInfo:
    name: str
    title: str
    task: str
    source: str
    description: str
    operation: str | None
    scale: int | None
    weights_status: str  # available | missing | parameter-free
    weights_detail: str
    num_classes: int | None = None  # conditional generators: how many labels
    license: str | None = None  # of the weights (or the code, for classical methods) when known

    @property
    def label(self) -> str:
        suffix = {"available": "", "parameter-free": "", "missing": " — weights missing"}[self.weights_status]
        return f"{self.title or self.name}{suffix}"


def list_model_infos(task: str | None = None, operation: str | None = None) -> list[ModelInfo]:
    infos = []
    for spec in list_models(task, operation):
        avail = spec.check_weights()
        infos.append(ModelInfo(spec.name, spec.title, spec.task, spec.source, spec.description, spec.operation,
                               spec.scale, avail.status, avail.detail, spec.num_classes, spec.license))
    # Models usable right away first; the bundled real-weights classifier leads its list.
    order = {"available": 0, "parameter-free": 0, "missing": 1}
    return sorted(infos, key=lambda i: (order[i.weights_status], i.source != "bundled", i.name))


def add_checkpoint(data: bytes, filename: str, base: str, name: str, title: str = "") -> ModelInfo:
    """Register an uploaded checkpoint as a new model; refused with a clear message otherwise."""
    from core.models.checkpoints import import_checkpoint

    new = import_checkpoint(data, filename, base, name, title)
    return next(i for i in list_model_infos() if i.name == new)


def checkpoint_bases() -> list[ModelInfo]:
    """Architectures an uploaded checkpoint may target (learned models that are not variants)."""
    from core.models.registry import get_spec

    return [i for i in list_model_infos() if i.source not in ("classical", "checkpoint") and get_spec(i.name).base is None]


def set_weights_path(name: str, path: str) -> str:
    """Use the weight file at `path` for model `name` from now on (validated by loading it)."""
    from core.models.weight_paths import set_path

    return str(set_path(name, path))


def clear_weights_path(name: str) -> None:
    from core.models.weight_paths import clear_path

    clear_path(name)


def weights_paths() -> dict[str, str]:
    from core.models.weight_paths import mapping

    return mapping()


def checkpoint_upload_mb() -> int:
    """The largest checkpoint the app reads, in MB (the uploader states it)."""
    from core.models.checkpoints import MAX_BYTES

    return MAX_BYTES // 2**20
