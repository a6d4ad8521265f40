"""A model declares how images become its inputs (ModelSpec.preprocessing); core.tasks.inputs.prepare is the one
place that turns the declaration into tensors."""
import numpy as np
import pytest
import torch.nn as nn

from core.errors import InvalidInput
from core.models.registry import get_spec, list_models
from core.models.spec import register_model
from core.tasks.inputs import IMAGENET_MEAN, IMAGENET_STD, prepare


def test_every_model_declares_its_inputs_and_classifiers_and_generators_say_so():
    by_task: dict[str, set[str]] = {}
    for spec in list_models():
        by_task.setdefault(spec.task, set()).add(spec.preprocessing)
    assert by_task["classification"] == {"timm"} and by_task["generation"] == {"latent"}
    assert by_task["detection"] == {"unit"} and by_task["restoration"] == {"unit"}
    assert get_spec("deeplabv3_mobilenet_v3_large").preprocessing == "imagenet" and get_spec("unet_shapes").preprocessing == "unit"
    assert get_spec("efficientnet_lite0_int8").preprocessing == "timm"  # a variant keeps its base's inputs


def test_prepare_turns_each_declaration_into_tensors():
    img = np.full((4, 6, 3), 255, np.uint8)
    img[0, 0] = 0
    unit, record = prepare(get_spec("dncnn"), nn.Identity(), [img])
    assert unit[0].shape == (3, 4, 6) and float(unit[0].max()) == 1.0 and float(unit[0][:, 0, 0].sum()) == 0.0
    assert record == {"range": [0, 1]}
    normed, record = prepare(get_spec("deeplabv3_mobilenet_v3_large"), nn.Identity(), [img])
    assert float(normed[0][0, 1, 1]) == pytest.approx((1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], rel=1e-6)
    assert record["mean"] == list(IMAGENET_MEAN)
    timm_in, cfg = prepare(get_spec("small_cnn_digits"), nn.Identity(), [img])
    assert timm_in[0].shape == (3, 32, 32) and cfg["input_size"] == [3, 32, 32] and cfg["mean"] == list(IMAGENET_MEAN)
    with pytest.raises(InvalidInput, match="takes latent vectors, not images"):
        prepare(get_spec("dcgan_shapes"), nn.Identity(), [img])


def test_an_unknown_preprocessing_is_refused_at_registration():
    with pytest.raises(ValueError, match="preprocessing must be one of unit, imagenet, timm, latent"):
        register_model("odd_inputs", task="classification", source="small-net", preprocessing="bgr")
