"""Finding and loading weight files safely: local file > Hugging Face cache > download (when online).

Checkpoints are read with safetensors or `torch.load(weights_only=True)` only. Downloads are tried only
after a quick reachability probe, because huggingface_hub retries for ~45 s when the host is unreachable.
"""
from __future__ import annotations

import hashlib
import socket
import time
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

from core.config import get_settings
from core.errors import InvalidCheckpoint

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_PROBE: dict[str, tuple[float, bool]] = {}


@lru_cache(maxsize=64)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_mtime_ns, st.st_size)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file; raises InvalidCheckpoint for anything unsafe or malformed."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidCheckpoint(
            f"Invalid checkpoint {path.name}: it is not a readable safetensors file or a plain tensor "
            f"state dict (only weights_only loading is allowed) — {type(exc).__name__}."
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InvalidCheckpoint(f"Invalid checkpoint {path.name}: it does not hold a state dict of tensors.")
    return obj


def apply_state_dict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Strict load with a readable report of missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)}!={tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} with wrong shape (e.g. {shapes[0]})")
        raise InvalidCheckpoint(f"The checkpoint does not fit {what}: keys {'; '.join(parts)}.")
    module.load_state_dict(state, strict=True)


def local_weight_file(name: str) -> Path | None:
    """A user-provided file `<weights_dir>/<name>.<suffix>`, if present."""
    base = get_settings().weights_dir
    for suffix in WEIGHT_SUFFIXES:
        candidate = base / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def hub_cached_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        hit = try_to_load_from_cache(repo_id, filename)
        if isinstance(hit, str):
            return Path(hit)
    return None


def host_reachable(host: str, port: int = 443, timeout: float = 2.0, ttl: float = 300.0) -> bool:
    """DNS + TCP connect probe, remembered for `ttl` seconds."""
    now = time.monotonic()
    cached = _PROBE.get(host)
    if cached and now - cached[0] < ttl:
        return cached[1]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            ok = True
    except OSError:
        ok = False
    _PROBE[host] = (now, ok)
    return ok


def hub_download(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """Download the first available file of `repo_id`, or None when offline or not found."""
    from urllib.parse import urlparse

    from huggingface_hub import constants, hf_hub_download

    endpoint = urlparse(constants.ENDPOINT)  # honours HF_ENDPOINT mirrors
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    if get_settings().offline or not endpoint.hostname or not host_reachable(endpoint.hostname, port):
        return None

    for filename in filenames:
        try:
            return Path(hf_hub_download(repo_id, filename))
        except Exception:
            continue
    return None


def seeded_init(factory, seed: int = 0):
    """Build a randomly initialised module reproducibly without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()
