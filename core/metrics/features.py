"""Feature extractors for Fréchet distances, and the reference-set cache.

"fid" is only ever the 2048-d pool3 features of the 2015-12-05 Inception-v3 weights (pytorch-fid's network,
bilinear resize to 299), used when that weight file is in the torch hub cache. Offline, the same distance is
taken in the penultimate features of the bundled real-weights EfficientNet-Lite0 and stored as
"fd_efficientnet_lite0" (a different column: the numbers are not comparable with FID).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from core.config import get_settings
from core.errors import WeightsUnavailable
from core.metrics.frechet import GaussianStats, fit_gaussian

FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class Extractor:
    key: str  # cache key and convention
    metric: str  # the store's column: "fid" or "fd_<space>"
    convention: str
    embed: Callable[[torch.Tensor], torch.Tensor]  # N x 3 x H x W in [0, 1] -> N x D
    device: torch.device


def fid_weights_file() -> Path:
    from core.models.weights import torch_hub_checkpoint

    return torch_hub_checkpoint(FID_WEIGHTS_URL)


def inception_available() -> bool:
    return fid_weights_file().is_file()


def _inception(device: torch.device) -> Extractor:
    from pytorch_fid.inception import InceptionV3

    from core.models.weights import torch_hub_download

    if not inception_available() and torch_hub_download(FID_WEIGHTS_URL) is None:
        raise WeightsUnavailable(
            "FID Inception-v3", f"the file {fid_weights_file().name} is not in {fid_weights_file().parent}",
            f"Download {FID_WEIGHTS_URL} into that folder (or point TORCH_HOME at a folder holding "
            "hub/checkpoints/ with it), or choose the offline feature space.")
    net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True).to(device).eval()

    def embed(x: torch.Tensor) -> torch.Tensor:
        return net(x.to(device))[0].flatten(1)

    return Extractor("inception-v3-2015-12-05-pool3", "fid", "inception-v3 2015-12-05 pool3 2048-d, bilinear 299",
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
    """prefer: "auto" (Inception when its file is there), "inception" (required) or "lite0"."""
    if prefer == "inception" or (prefer == "auto" and inception_available()):
        return _inception(engine.device)
    return _lite0(engine.device, engine)


@torch.inference_mode()
def features(ext: Extractor, images: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        chunk = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1) for im in images[i:i + batch_size]]
        size = chunk[0].shape[1:]
        batch = torch.stack([c if c.shape[1:] == size else F.interpolate(c[None].float(), size=tuple(size))[0]
                             for c in chunk]).float() / 255.0
        out.append(ext.embed(batch).double().cpu().numpy())
    return np.concatenate(out)


def reference_stats(ext: Extractor, dataset_hash: str, images: list[np.ndarray]) -> GaussianStats:
    """Gaussian of a reference set's features, cached on disk by (extractor, dataset hash)."""
    key = hashlib.sha256(f"{ext.key}|{dataset_hash}".encode()).hexdigest()[:24]
    path = get_settings().data_dir / "feature_cache" / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return GaussianStats(z["mu"], z["sigma"], int(z["count"]))
    stats = fit_gaussian(features(ext, images))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mu=stats.mu, sigma=stats.sigma, count=stats.count)
    tmp.replace(path)
    return stats
