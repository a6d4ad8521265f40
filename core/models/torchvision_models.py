"""torchvision detectors and segmenters with their weight enums' real files (torch hub cache or local file).

The enums' metadata (categories, transforms) is available offline; only the weight files need network.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from torchvision.models import get_model, get_model_weights

from core.models.spec import register_model
from core.models.weights import WeightFileSource, file_weights_builder, torch_hub_checkpoint, torch_hub_download

DETECTORS = {
    # name: (title, description)
    "fasterrcnn_mobilenet_v3_large_fpn": ("Faster R-CNN MobileNetV3-L FPN", "Two-stage detector, 19M parameters, COCO."),
    "fasterrcnn_resnet50_fpn": ("Faster R-CNN ResNet-50 FPN", "Two-stage detector, 42M parameters, COCO box AP 37.0."),
    "retinanet_resnet50_fpn": ("RetinaNet ResNet-50 FPN", "One-stage detector with focal loss, 34M parameters, COCO."),
    "ssd300_vgg16": ("SSD300 VGG16", "Single-shot detector at 300x300, 36M parameters, COCO."),
    "ssdlite320_mobilenet_v3_large": ("SSDlite320 MobileNetV3-L", "Mobile single-shot detector, 3.4M parameters, COCO."),
    "fcos_resnet50_fpn": ("FCOS ResNet-50 FPN", "Anchor-free one-stage detector, 32M parameters, COCO."),
}
# Fine-tunable here: heads.set_num_classes can give their box predictor the training set's classes.
FINE_TUNABLE = {"fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn"}
SEMANTIC = {
    "deeplabv3_mobilenet_v3_large": ("DeepLabV3 MobileNetV3-L", "Atrous spatial pyramid pooling, 11M parameters, VOC classes."),
    "deeplabv3_resnet50": ("DeepLabV3 ResNet-50", "Atrous spatial pyramid pooling, 42M parameters, VOC classes."),
    "fcn_resnet50": ("FCN ResNet-50", "Fully convolutional network, 35M parameters, VOC classes."),
    "lraspp_mobilenet_v3_large": ("LR-ASPP MobileNetV3-L", "Lite R-ASPP, 3.2M parameters, VOC classes."),
}
INSTANCE = {
    "maskrcnn_resnet50_fpn": ("Mask R-CNN ResNet-50 FPN", "Instance segmentation, 44M parameters, COCO."),
}


class SemanticOut(nn.Module):
    """torchvision segmenters return {"out", "aux"}; the engine wants the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _source(name: str, weights) -> WeightFileSource:
    url = weights.url
    return WeightFileSource(
        name, name, cached=lambda: (p if (p := torch_hub_checkpoint(url)).is_file() else None),
        download=lambda: torch_hub_download(url),
        cache_label=f"torch hub cache ({torch_hub_checkpoint(url).name})", published=url,
    )


def _register(name: str, title: str, description: str, task: str, operation: str | None) -> None:
    weights = get_model_weights(name).DEFAULT
    categories = tuple(weights.meta["categories"])
    n = len(categories)

    make_for: Callable[[dict], nn.Module] | None
    adapt: Callable[[dict, nn.Module], dict] | None
    if operation == "semantic":  # torchvision's semantic segmenters: dict output, aux head in some checkpoints
        def make() -> nn.Module:
            return SemanticOut(get_model(name, weights=None, weights_backbone=None, num_classes=n))

        def make_for(state: dict) -> nn.Module:
            aux = any(k.startswith("aux_classifier.") for k in state)
            kwargs = {"aux_loss": True} if aux else {}
            return SemanticOut(get_model(name, weights=None, weights_backbone=None, num_classes=n, **kwargs))

        def adapt(state: dict, module: nn.Module) -> dict:
            return {f"model.{k}": v for k, v in state.items()} if not any(k.startswith("model.") for k in state) else state
    else:
        def make() -> nn.Module:
            return get_model(name, weights=None, weights_backbone=None, num_classes=n)

        make_for, adapt = None, None

    source = _source(name, weights)
    register_model(
        name, task=task, source="torchvision", title=title, description=description,
        categories=categories, weights=f"torchvision {weights} ({weights.url.rsplit('/', 1)[-1]})",
        operation=operation, availability=source.availability, license="bsd-3-clause",
        preprocessing="imagenet" if operation == "semantic" else "unit", trainable=True if name in FINE_TUNABLE else None,
    )(file_weights_builder(source, make, adapt=adapt, make_for=make_for))


for _name, (_title, _desc) in DETECTORS.items():
    _register(_name, _title, _desc, "detection", None)
for _name, (_title, _desc) in SEMANTIC.items():
    _register(_name, _title, _desc, "segmentation", "semantic")
for _name, (_title, _desc) in INSTANCE.items():
    _register(_name, _title, _desc, "segmentation", "instance")
