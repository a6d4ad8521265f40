"""Give a registered architecture a new number of output classes (transfer learning, trained checkpoints).

Supported: timm classifiers (reset_classifier), the small CNN's linear head, the U-Net's output conv,
torchvision Faster R-CNN's box predictor, and modules of this project that carry their own
`set_num_classes(n)` / `head_parameters()` (the grid detector). Other architectures keep their classes and say so.
"""
from __future__ import annotations

import torch.nn as nn

from core.errors import InvalidInput
from core.models.small_nets import SmallCNN, UNet


def set_num_classes(module: nn.Module, n: int) -> nn.Module:
    if n < 1:
        raise InvalidInput("A model needs at least one class.")
    if hasattr(module, "reset_classifier") and hasattr(module, "get_classifier"):  # timm
        module.reset_classifier(n)  # type: ignore[operator]  # timm method, untyped in torch's nn.Module
        return module
    if callable(getattr(module, "set_num_classes", None)):
        module.set_num_classes(n)  # type: ignore[operator]  # duck-typed: this project's own heads
        return module
    if isinstance(module, SmallCNN):
        old = module.head[-1]
        assert isinstance(old, nn.Linear)  # SmallCNN's head always ends in its Linear layer
        module.head[-1] = nn.Linear(old.in_features, n)
        return module
    if isinstance(module, UNet):
        module.out = nn.Conv2d(module.out.in_channels, n, 1)
        return module
    roi = getattr(module, "roi_heads", None)
    if roi is not None and hasattr(roi, "box_predictor"):  # torchvision Faster R-CNN family
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        roi.box_predictor = FastRCNNPredictor(roi.box_predictor.cls_score.in_features, n)
        return module
    raise InvalidInput(f"{type(module).__name__} cannot change its number of classes here.")


def classifier_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The head a "freeze backbone" run trains; everything else stays fixed."""
    if hasattr(module, "get_classifier"):
        return list(module.get_classifier().parameters())  # type: ignore[operator]  # timm method, untyped in torch's nn.Module
    if callable(getattr(module, "head_parameters", None)):
        return list(module.head_parameters())  # type: ignore[operator]  # duck-typed: this project's own heads
    if isinstance(module, SmallCNN):
        return list(module.head.parameters())
    if isinstance(module, UNet):
        return list(module.out.parameters()) + list(module.dec1.parameters())
    roi = getattr(module, "roi_heads", None)
    if roi is not None:
        return list(roi.parameters())
    raise InvalidInput(f"{type(module).__name__} has no head to train alone; choose a full fine-tune.")


def set_dropout(module: nn.Module, p: float) -> int:
    """Set every Dropout layer (and timm's drop_rate) to p; returns how many places changed."""
    if not 0.0 <= p < 1.0:
        raise InvalidInput("Dropout must be in [0, 1).")
    changed = 0
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
            changed += 1
    if hasattr(module, "drop_rate"):
        module.drop_rate = p  # type: ignore[assignment]  # timm float attribute; torch's Module.__setattr__ stub admits Tensor | Module
        changed += 1
    return changed
