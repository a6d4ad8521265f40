"""User checkpoints registered as models: validated against a registered architecture, stored as
safetensors under <data>/checkpoints with a JSON manifest, re-registered at start-up from the manifests."""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from datetime import datetime, UTC
from pathlib import Path

from core.config import get_settings
from core.errors import InvalidCheckpoint, InvalidInput
from core.models import spec as specs  # the table; core.models.registry (the front door) imports this module
from core.models.heads import set_num_classes
from core.models.weights import WeightFileSource, apply_state_dict, file_sha256, file_weights_builder, load_state_dict_file

NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{2,59}$")
SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
MAX_BYTES = 512 * 1024 * 1024
_LOCK = threading.RLock()


def checkpoints_dir() -> Path:
    return get_settings().data_dir / "checkpoints"


def _register(manifest: dict, path: Path) -> None:
    base = specs._REGISTRY.get(manifest["base"])
    if base is None:
        raise InvalidCheckpoint(f"Checkpoint {manifest['name']} needs architecture {manifest['base']}, which is not registered.")
    source = WeightFileSource(manifest["name"], base.name, cached=lambda: path if path.is_file() else None,
                              cache_label=f"checkpoint {path.name}")
    fields = {k: getattr(base, k) for k in ("task", "input_size", "labels", "categories", "operation", "scale",
                                            "amp", "preprocessing", "latent_dim", "num_classes", "license",
                                            "noise_level_input", "trainable")}
    classes = manifest.get("categories")
    if classes:  # trained with its own classes (transfer learning): a new head of that size
        fields.update(categories=tuple(classes), labels=None)

    def make():
        module = base.builder(False)[0]
        return set_num_classes(module, len(classes)) if classes else module

    origin = (f"trained by job #{manifest['job_id']}" if manifest.get("job_id") else
              f"checkpoint {manifest.get('original_filename', path.name)}")
    specs.register_model(
        manifest["name"], source="checkpoint", base=base.name, title=manifest.get("title") or manifest["name"],
        description=f"{origin[0].upper()}{origin[1:]} on the {base.name} architecture "
                    f"(added {manifest.get('created_at', '?')[:19]}).",
        weights=f"checkpoint {path.name}", availability=source.availability, **fields,
    )(file_weights_builder(source, make))


_SYNCED: Path | None = None  # the folder the registry last matched


def sync(only_if_moved: bool = False) -> None:
    """Match the registry to the stored checkpoints (cheap: one directory listing; only manifests of checkpoints
    not yet registered are read): new ones are registered, deleted ones (here or by another process) leave.
    only_if_moved: do nothing when the registry already matched this data folder (lookups call it so; a
    listing or a lookup that misses syncs for real)."""
    global _SYNCED
    folder = checkpoints_dir()
    if only_if_moved and folder == _SYNCED:
        return
    with _LOCK:
        stored = {p.stem for p in folder.glob("*.safetensors")} if folder.is_dir() else set()
        for spec in [s for s in specs._REGISTRY.values() if s.source == "checkpoint" and s.name not in stored]:
            specs.unregister_model(spec.name)
        for manifest_path in sorted(folder.glob("*.json")) if stored else []:
            if manifest_path.stem in specs._REGISTRY or manifest_path.stem not in stored:
                continue  # manifests are written as <name>.json
            try:
                manifest = json.loads(manifest_path.read_text())
                name = manifest["name"]
            except (OSError, ValueError, KeyError):
                continue
            if name in specs._REGISTRY or name not in stored:
                continue
            try:
                _register(manifest, folder / f"{name}.safetensors")
            except Exception:  # a manifest whose base vanished is skipped, not fatal
                continue
        _SYNCED = folder


def import_checkpoint(data: bytes, filename: str, base: str, name: str, title: str = "",
                      categories: tuple[str, ...] | None = None, meta: dict | None = None, owner: str | None = None,
                      room_bytes: int | None = None) -> str:
    """Validate `data` as weights of the registered architecture `base` and register it as `name`, owned by
    `owner`. Nothing is written or registered unless the whole checkpoint loads strictly and fits the owner's
    `room_bytes` of checkpoint storage."""
    from safetensors.torch import save_file

    if not NAME.match(name or ""):
        raise InvalidInput("The name must be 3-60 characters of lower-case letters, digits, '_' or '-'.")
    suffix = Path(filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidCheckpoint(f"Checkpoint files must end in {', '.join(SUFFIXES)}; got {filename!r}.")
    if not data:
        raise InvalidCheckpoint("The checkpoint file is empty.")
    if len(data) > MAX_BYTES:
        raise InvalidCheckpoint(f"The checkpoint is {len(data) / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB.")
    if room_bytes is not None and len(data) > room_bytes:
        raise InvalidInput(_over_quota(room_bytes, len(data)))
    spec = specs.registered(base)
    if spec.source in ("classical", "checkpoint") or spec.base is not None:
        raise InvalidInput(f"{base} cannot take a checkpoint: choose a learned architecture.")
    sync()
    if name in specs.registered_names():
        raise InvalidInput(f"A model named {name!r} already exists.")

    folder = checkpoints_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        state = load_state_dict_file(Path(tmp), display_name=Path(filename).name[:120])
        module = spec.builder(False)[0]
        if categories:
            set_num_classes(module, len(categories))
        apply_state_dict(module, state, base)  # raises InvalidCheckpoint on any mismatch
        target = folder / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(target))
    finally:
        Path(tmp).unlink(missing_ok=True)
    if room_bytes is not None and target.stat().st_size > room_bytes:  # stored as float32: can exceed the upload
        size = target.stat().st_size
        target.unlink()
        raise InvalidInput(_over_quota(room_bytes, size))
    manifest = {**(meta or {}), "name": name, "base": base, "title": title, "original_filename": Path(filename).name[:120],
                "sha256": file_sha256(target), "created_at": datetime.now(UTC).isoformat(), "owner": owner,
                **({"categories": list(categories)} if categories else {})}
    (folder / f"{name}.json").write_text(json.dumps(manifest, indent=2))
    with _LOCK:
        _register(manifest, target)
    return name


def _over_quota(room: int, size: int) -> str:
    return (f"You have {max(room, 0) / 2**20:.0f} MB of checkpoint storage left and this checkpoint takes "
            f"{size / 2**20:.0f} MB. Delete one of your models first (Models page, Your models).")


def manifest_of(name: str) -> dict:
    """The stored manifest of checkpoint `name` (its owner, base, title...)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput("Unknown model name.")
    path = checkpoints_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise InvalidInput(f"{name} is not a stored checkpoint (any more).") from None


def stored() -> list[dict]:
    """Every stored checkpoint's manifest, with its file size as `bytes`."""
    folder = checkpoints_dir()
    out = []
    for manifest_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        weights = manifest_path.with_suffix(".safetensors")
        try:
            manifest = json.loads(manifest_path.read_text())
            out.append({**manifest, "bytes": weights.stat().st_size})
        except (OSError, ValueError):
            continue
    return out


def owner_bytes(owner: str) -> int:
    return sum(m["bytes"] for m in stored() if m.get("owner") == owner)


def delete_checkpoint(name: str) -> None:
    """Its weights and manifest go, and it leaves the registry (other processes drop it at their next sync)."""
    manifest_of(name)
    folder = checkpoints_dir()
    with _LOCK:
        (folder / f"{name}.safetensors").unlink(missing_ok=True)
        (folder / f"{name}.json").unlink(missing_ok=True)
        specs.unregister_model(name)


def retitle(name: str, title: str) -> None:
    """A new title for a stored checkpoint (its name, which runs refer to, stays)."""
    manifest = manifest_of(name)
    manifest["title"] = " ".join(str(title).split())[:120] or manifest["name"]
    path = checkpoints_dir() / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(path)
    with _LOCK:
        specs.unregister_model(name)
        _register(manifest, checkpoints_dir() / f"{name}.safetensors")
