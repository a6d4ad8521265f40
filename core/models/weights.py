"""Finding and loading weight files safely: local file > Hugging Face cache > download (when online).

Checkpoints are read with safetensors or `torch.load(weights_only=True)` only. Downloads are tried only
after a quick reachability probe, because huggingface_hub retries for ~45 s when the host is unreachable.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import torch
import torch.nn as nn

from core.config import get_settings
from core.errors import InvalidCheckpoint, WeightsUnavailable
from core.models.reference import find_reference
from core.models.spec import Availability, WeightsInfo
from core.models.weight_paths import WEIGHT_SUFFIXES, configured_file
from core.models.hashing import file_sha256  # noqa: F401 -- re-exported: weights.file_sha256 is used widely

_PROBE: dict[str, tuple[float, bool]] = {}


def load_state_dict_file(path: Path, display_name: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file; raises InvalidCheckpoint for anything unsafe or malformed."""
    path = Path(path)
    shown = display_name or path.name
    obj: object  # a state dict, or whatever else the file holds (checked below)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidCheckpoint(
            f"Invalid checkpoint {shown}: it is not a readable safetensors file or a plain tensor "
            f"state dict (only weights_only loading is allowed) — {type(exc).__name__}."
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InvalidCheckpoint(f"Invalid checkpoint {shown}: it does not hold a state dict of tensors.")
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
    """The file set for this model on the Models page, else `<weights_dir>/<name>.<suffix>`, if present."""
    configured = configured_file(name)
    if configured is not None:
        return configured
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


def bundled_availability(location: Path | str | None, package: str, install: str):
    """Availability of weights shipped inside a pip package (`location` is None when it is not installed)."""

    if location is None:
        return Availability("missing", f"pip package {package} is not installed ({install}).")
    return Availability("available", f"weights bundled with pip package {package} (installed on this server).")


def seeded_init(factory, seed: int = 0):
    """Build a randomly initialised module reproducibly without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def torch_hub_checkpoint(url: str) -> Path:
    """Where torch.hub (and torchvision's weight enums) keep a downloaded file: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def torch_hub_download(url: str) -> Path | None:
    """Download a torchvision weight file into the torch hub cache, or None when offline."""
    from urllib.parse import urlparse

    host = urlparse(url).hostname
    if get_settings().offline or not host or not host_reachable(host):
        return None
    target = torch_hub_checkpoint(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception:
        target.unlink(missing_ok=True)
        return None
    return target


@dataclass(frozen=True)
class WeightFileSource:
    """How one model's pretrained weight file is found, in order: the user's local file, a library cache,
    a download. `cached`/`download` are None for architectures without published weights."""

    name: str
    arch: str  # what the file must fit, for messages
    cached: Callable[[], Path | None] | None = None
    download: Callable[[], Path | None] | None = None
    cache_label: str = ""  # e.g. "Hugging Face cache (timm/resnet18.a1_in1k)"
    published: str = ""  # e.g. "hf.co/timm/resnet18.a1_in1k" or a URL

    def local_hint(self) -> str:
        """Where an administrator puts the file, named without the server's paths (messages reach browsers)."""
        return f"{self.name}.safetensors in the server's weights folder (IMGLAB_WEIGHTS_DIR)"

    def how_to(self) -> str:
        """The fixes in the order a user can apply them: from the browser first, then on the server."""
        server = f"put {self.local_hint()}"
        if self.published:
            server += f", or run it once on a machine with network access to fill the {self.cache_label or 'cache'}"
        return (f"From the browser: upload a checkpoint of {self.arch} on the Models page (Add a checkpoint); it is "
                f"added as a new model. On the server: {server}. Or run it with random weights, labelled untrained.")

    def availability(self):

        local = local_weight_file(self.name)
        if local is not None:
            return Availability("available", f"file {local.name} in the server's weights folder")
        ref = find_reference(self.name)
        if ref is not None:
            problem = ref.problem()
            return Availability("missing", problem) if problem else Availability("available", ref.summary())
        hit = self.cached() if self.cached else None
        if hit is not None:
            return Availability("available", self.cache_label or hit.name)
        if self.published:
            return Availability("missing", f"not on this server (a download from {self.published} is tried when "
                                           f"you run it, if the server can reach it). {self.how_to()}")
        return Availability("missing", f"no published weights for this architecture. {self.how_to()}")

    def locate(self):
        """(path, reference) of the weights to load: the user's local file, else this project's reference
        weights (returned so the caller loads them through their hash check), else a cache or a download."""
        path = local_weight_file(self.name)
        if path is None:
            ref = find_reference(self.name)
            if ref is not None:  # ref.load() checks the hash of the bytes it loads
                return ref.path, ref
        if path is None and self.cached:
            path = self.cached()
        if path is None and self.download:
            path = self.download()
        if path is None:
            where = f"; {self.published} is neither cached nor reachable" if self.published else ""
            raise WeightsUnavailable(self.name, f"not on this server{where}", self.how_to())
        return path, None


def file_weights_builder(source: WeightFileSource, make: Callable[[], nn.Module],
                         adapt: Callable[[dict, nn.Module], dict] | None = None,
                         make_for: Callable[[dict], nn.Module] | None = None):
    """A registry builder: random init (seed 0) on request, else the file `source` finds, loaded strictly.
    `make_for(state)` builds a module shaped for a given state dict (e.g. with an aux head);
    `adapt(state, module)` renames keys of a foreign layout onto the module's."""

    def build(pretrained: bool):
        if not pretrained:
            return seeded_init(make), WeightsInfo("random", None, "random init (seed 0)")
        path, ref = source.locate()
        if ref is not None:
            state, digest = ref.load()  # the hash is taken of the very bytes that are loaded
            origin = ref.origin
        else:
            state, digest, origin = load_state_dict_file(path), file_sha256(path), str(path)
        module = make_for(state) if make_for else make()
        if adapt is not None:
            state = adapt(state, module)
        apply_state_dict(module, state, source.arch)
        return module, WeightsInfo("pretrained", digest, origin)

    return build
