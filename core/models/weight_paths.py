"""Per-model weight file paths set by admins (the Models page), kept in <data>/weights.json with who set
them and when.

A path must lie under an allowed root (the data and weights folders, the Hugging Face and torch hub caches,
and the folders in IMGLAB_WEIGHT_ROOTS) and outside the folders users upload into (datasets, checkpoints,
job folders), so a shared server cannot be pointed at arbitrary or smuggled files; it is only saved after
the model loads from it.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from datetime import datetime, UTC

from core.config import USER_FOLDERS, get_settings
from core.errors import InvalidInput

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_LOCK = threading.RLock()
_CACHE: dict[str, tuple[float, dict[str, dict[str, str]]]] = {}


def settings_file() -> Path:
    return get_settings().data_dir / "weights.json"


def allowed_roots() -> list[Path]:
    import torch
    from huggingface_hub import constants

    s = get_settings()
    roots = [s.data_dir, s.weights_dir, Path(constants.HF_HUB_CACHE), Path(torch.hub.get_dir())]
    roots += list(s.weight_roots)  # IMGLAB_WEIGHT_ROOTS
    return [r.resolve() for r in roots]


def user_folders() -> list[Path]:
    data = get_settings().data_dir
    return [(data / name).resolve() for name in USER_FOLDERS]


def mapping() -> dict[str, str]:
    """model name -> weight file path."""
    return {name: entry["path"] for name, entry in entries().items()}


def entries() -> dict[str, dict[str, str]]:
    """model name -> {"path", "owner" (who set it), "set_at"}; files from before owners were kept have no owner."""
    path = settings_file()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    with _LOCK:
        cached = _CACHE.get(str(path))
        if cached and cached[0] == mtime:
            return dict(cached[1])
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data = {str(k): _entry(v) for k, v in data.items()} if isinstance(data, dict) else {}
        data = {k: v for k, v in data.items() if v.get("path")}
        _CACHE[str(path)] = (mtime, data)
        return {k: dict(v) for k, v in data.items()}


def _entry(value) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: str(value[k]) for k in ("path", "owner", "set_at") if value.get(k)}
    return {"path": str(value)}


def configured_file(name: str) -> Path | None:
    value = mapping().get(name)
    if not value:
        return None
    path = Path(value)
    if any(path.resolve().is_relative_to(folder) for folder in user_folders()):
        return None  # set before such paths were refused: never load a file users could have put there
    return path if path.is_file() else None


def _write(data: dict[str, dict[str, str]]) -> None:
    path = settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def set_path(name: str, raw: str, owner: str | None, verify: Callable[[], object]) -> Path:
    """Point model `name` at a weight file; it is kept only if `verify()` (loading the model) then succeeds.
    core.models.registry.set_weights_file is the caller: it checks the model takes a file and loads it."""
    text = (raw or "").strip()
    if not text or "\x00" in text:
        raise InvalidInput("Give the full path of a weights file.")
    path = Path(os.path.expanduser(text)).resolve()
    roots = allowed_roots()
    if not any(path.is_relative_to(root) for root in roots):
        raise InvalidInput(f"{path} is outside the folders weights may be read from: "
                           + ", ".join(str(r) for r in roots) + " (add more with IMGLAB_WEIGHT_ROOTS).")
    if any(path.is_relative_to(folder) for folder in user_folders()):
        raise InvalidInput("That file is in a folder users upload into (datasets, checkpoints or job folders); "
                           "weights must come from a file an administrator put in place. To use your own "
                           "weights, add them as a checkpoint.")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise InvalidInput(f"Weight files end in {', '.join(WEIGHT_SUFFIXES)}; got {path.name}.")
    if not path.is_file():
        raise InvalidInput(f"There is no file {path}.")
    with _LOCK:
        before = entries()
        entry = {"path": str(path), "set_at": datetime.now(UTC).isoformat(timespec="seconds")}
        _write({**before, name: {**entry, **({"owner": owner} if owner else {})}})
        try:
            verify()  # raises InvalidCheckpoint when the file does not fit
        except Exception:
            _write(before)
            raise
    return path


def clear_path(name: str) -> None:
    with _LOCK:
        data = entries()
        if data.pop(name, None) is not None:
            _write(data)
