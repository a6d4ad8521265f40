"""LPIPS (Zhang et al. 2018, v0.1, AlexNet), used only when its backbone weights are at hand.

The lpips wheel ships the learned linear layers; the AlexNet backbone is torchvision's ImageNet file, read
from the torch hub cache (or downloaded when online). Offline without that file there is no LPIPS column.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np
import torch

from core.errors import WeightsUnavailable
from core.models.weights import torch_hub_checkpoint, torch_hub_download

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
CONVENTION = "LPIPS v0.1 alex (lpips 0.1.4), RGB scaled to [-1, 1], spatial mean"
_MODELS: dict[str, torch.nn.Module] = {}
_LOCK = threading.Lock()


def backbone_file():
    return torch_hub_checkpoint(ALEXNET_URL)


def lpips_model(device: torch.device) -> torch.nn.Module:
    with _LOCK:
        key = f"{device}|{backbone_file()}"
        if key not in _MODELS:
            if not backbone_file().is_file() and torch_hub_download(ALEXNET_URL) is None:
                raise WeightsUnavailable(
                    "LPIPS (AlexNet)", f"the file {backbone_file().name} is not in the server's torch hub cache",
                    f"On the server, download {ALEXNET_URL} into the torch hub cache (hub/checkpoints under TORCH_HOME).")
            import lpips

            with warnings.catch_warnings():  # lpips 0.1.4 asks torchvision with the old `pretrained=` argument
                warnings.simplefilter("ignore", UserWarning)
                _MODELS[key] = lpips.LPIPS(net="alex", version="0.1", verbose=False).to(device).eval()
        return _MODELS[key]


@torch.inference_mode()
def lpips_distance(model: torch.nn.Module, pred: np.ndarray, target: np.ndarray) -> float:
    """Lower is closer; 0 for identical images."""
    device = next(model.parameters()).device

    def prep(img):
        t = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)[None].float().to(device)
        return t / 127.5 - 1.0

    return float(model(prep(pred), prep(target)).mean())
