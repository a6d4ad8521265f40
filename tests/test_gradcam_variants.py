"""Grad-CAM on a model whose answer is known, and the deployment variants of the real classifier."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from core import services
from core.data.builtin import builtin_image, load_builtin
from core.engine import Engine
from core.errors import InvalidInput
from core.models.variants import sparsity
from core.tasks import gradcam


class BrightnessNet(nn.Module):
    """Class 0 = mean brightness, class 1 = its negative: class 0's evidence is wherever the image is bright."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        nn.init.constant_(self.conv.weight, 1.0)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_grad_cam_points_at_the_evidence():
    x = torch.zeros(1, 3, 16, 16)
    x[..., :, :8] = 1.0  # left half bright
    heat = gradcam.grad_cam(BrightnessNet(), x, class_index=0)
    assert heat.shape == (16, 16)
    assert heat[:, :6].mean() == pytest.approx(1.0, abs=1e-6) and heat[:, 10:].max() == pytest.approx(0.0, abs=1e-6)
    assert gradcam.grad_cam(BrightnessNet(), x, class_index=1).max() == 0.0  # no positive evidence for class 1


def test_grad_cam_leaves_the_shared_model_untouched():
    engine = Engine(device="cpu")
    loaded = engine.load("efficientnet_lite0")
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    cam = services.explain(engine, "efficientnet_lite0", load_builtin("chelsea"), 282)
    assert cam.shape == (224, 224, 3) and cam.dtype == np.uint8
    assert all(torch.equal(before[k], v) for k, v in loaded.module.state_dict().items())
    assert not any(m._forward_hooks for m in loaded.module.modules())
    assert all(p.grad is None for p in loaded.module.parameters())


def test_int8_and_pruned_variants_keep_the_real_answers(db_url):
    engine = Engine(device="cpu")
    images = [builtin_image("chelsea"), builtin_image("coffee")]
    for name in ("efficientnet_lite0_int8", "efficientnet_lite0_pruned30"):
        result = services.classify(engine, name, images)
        assert [p.top[0].label for p in result.predictions] == ["tiger cat", "espresso"]
        assert result.weights.status == "pretrained" and "+" in result.weights.origin
    int8 = engine.load("efficientnet_lite0_int8").module
    assert type(int8.classifier).__module__.startswith("torch.ao.nn.quantized")
    assert sparsity(engine.load("efficientnet_lite0_pruned30").module) == pytest.approx(0.30, abs=0.001)
    assert sparsity(engine.load("efficientnet_lite0").module) < 0.01
    hashes = {engine.load(n).weights.sha256 for n in ("efficientnet_lite0", "efficientnet_lite0_int8",
                                                      "efficientnet_lite0_pruned30")}
    assert len(hashes) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to refuse")
def test_int8_variant_refuses_gpu():
    with pytest.raises(InvalidInput, match="CPU only"):
        Engine(device="cuda").load("efficientnet_lite0_int8")
