"""What the model pickers show: every registered model with its weights availability."""
from __future__ import annotations

from dataclasses import dataclass

from pathlib import Path

from core.errors import InvalidInput
from core.models.registry import get_spec, list_models, set_weights_file
from core.users import User, acting, require
from core.models.checkpoints import MAX_BYTES, delete_checkpoint, import_checkpoint, manifest_of, retitle, stored
from core.models.weight_paths import clear_path, entries, mapping
from core.services.jobs import public_text
from core.services.quotas import checkpoint_room, storing


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
    configured = entries()
    infos = []
    for spec in list_models(task, operation):
        avail = spec.check_weights()
        status, detail = avail.status, avail.detail
        if spec.name in configured:  # the file set on this page is what loads, whatever the default source
            status, detail = "available", _configured_words(configured[spec.name])
        infos.append(ModelInfo(spec.name, spec.title, spec.task, spec.source, spec.description, spec.operation,
                               spec.scale, status, detail, spec.num_classes, spec.license))
    # Models usable right away first; the bundled real-weights classifier leads its list.
    order = {"available": 0, "parameter-free": 0, "missing": 1}
    return sorted(infos, key=lambda i: (order[i.weights_status], i.source != "bundled", i.name))


def _configured_words(entry: dict[str, str]) -> str:
    who = f" by {entry['owner']}" if entry.get("owner") else ""
    when = f" on {entry['set_at'][:10]}" if entry.get("set_at") else ""
    return f"file {Path(entry['path']).name}, set on the Models page{who}{when} (replaces the default weights)"


def add_checkpoint(data: bytes, filename: str, base: str, name: str, title: str = "",
                   user: User | None = None) -> ModelInfo:
    """Register an uploaded checkpoint as a new model owned by `user`, within their checkpoint storage; refused
    with a clear message otherwise."""

    user = acting(user)
    with storing(user):
        new = import_checkpoint(data, filename, base, name, title, owner=user.name, room_bytes=checkpoint_room(user))
    return next(i for i in list_model_infos() if i.name == new)


@dataclass(frozen=True)
class StoredModel:
    """A checkpoint registered as a model (uploaded or trained), as the Models page lists it."""

    name: str
    title: str
    base: str
    owner: str | None
    size_mb: float
    added: str
    origin: str


def stored_models() -> list[StoredModel]:
    return [StoredModel(m["name"], m.get("title") or m["name"], m.get("base", ""), m.get("owner"),
                        round(m["bytes"] / 2**20, 1), str(m.get("created_at", ""))[:16].replace("T", " "),
                        f"trained by job #{m['job_id']}" if m.get("job_id") else "uploaded")
            for m in stored()]


def delete_model(name: str, user: User | None = None) -> None:
    """A stored checkpoint's files and registration; its runs stay in the results."""
    require(acting(user), manifest_of(name).get("owner"), f"delete the model {name}")
    delete_checkpoint(name)


def retitle_model(name: str, title: str, user: User | None = None) -> None:
    require(acting(user), manifest_of(name).get("owner"), f"rename the model {name}")
    if not (title or "").strip():
        raise InvalidInput("Give the model a title.")
    retitle(name, title)


def checkpoint_bases() -> list[ModelInfo]:
    """Architectures an uploaded checkpoint may target (learned models that are not variants)."""
    return [i for i in list_model_infos() if i.source not in ("classical", "checkpoint") and get_spec(i.name).base is None]


def set_weights_path(name: str, path: str, user: User | None = None) -> str:
    """Use the weight file at `path` for model `name` from now on (validated by loading it). The registry's
    models are shared by everyone: only admins."""

    user = acting(user)
    require(user, None, f"change the weights of {name}")
    try:
        return str(set_weights_file(name, path, owner=user.name))
    except InvalidInput as exc:  # the message names folders of the server: by their role, as everywhere
        raise InvalidInput(public_text(str(exc))) from None


def clear_weights_path(name: str, user: User | None = None) -> None:
    require(acting(user), None, f"change the weights of {name}")
    clear_path(name)


def weights_paths() -> dict[str, str]:
    return mapping()


def weights_sources() -> list[dict[str, str]]:
    """Models whose weights file was set on the Models page: the file, who set it and when."""
    return [{"model": name, "path": e["path"], "owner": e.get("owner", ""), "set_at": e.get("set_at", "")}
            for name, e in sorted(entries().items())]


def checkpoint_upload_mb() -> int:
    """The largest checkpoint the app reads, in MB (the uploader states it)."""
    return MAX_BYTES // 2**20
