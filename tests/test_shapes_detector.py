"""The compact Faster R-CNN for the shapes scenes: registered as trainable, torchvision detection I/O, and it learns
through the app's own detection training path."""
import math

import numpy as np
import pytest
import torch

from core.data.synthetic import scene
from core.errors import InvalidInput
from core.jobs.context import LocalContext
from core.models.registry import create, get_spec, register_model, unregister_model
from core.annotations import SHAPES_CATEGORIES
from core.tasks.detection import to_tensor
from core.tasks.train_config import TrainConfig

NAME = "fasterrcnn_tiny_shapes"


def _targets(scenes):
    return [{"boxes": torch.from_numpy(s.boxes.astype(np.float32)), "labels": torch.from_numpy(s.labels)}
            for s in scenes]


def test_registered_compact_with_the_shapes_classes():
    spec = get_spec(NAME)
    assert spec.task == "detection" and spec.source == "small-net" and spec.trainable is True
    assert spec.categories == SHAPES_CATEGORIES  # the training path then keeps the head (no class swap)
    module, info = create(NAME, weights="random")
    n = sum(p.numel() for p in module.parameters())
    assert 300_000 < n < 500_000  # 399,131; torchvision's smallest Faster R-CNN has 19M
    assert f"{n / 1e6:.2f}M" in spec.description
    assert info.status == "random" and not module.training


def test_train_mode_gives_a_finite_loss_dict_on_two_scenes():
    torch.manual_seed(0)
    module, _ = create(NAME, weights="random")
    scenes = [scene(11), scene(12)]
    module.train()
    losses = module([to_tensor(s.image) for s in scenes], _targets(scenes))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    total = sum(losses.values())
    total.backward()
    grads = [p.grad for p in module.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("hw", [(64, 64), (48, 80), (160, 128)])
def test_eval_returns_torchvision_detections_in_image_coordinates(hw):
    torch.manual_seed(0)
    module, _ = create(NAME, weights="random")
    h, w = hw
    with torch.inference_mode():
        [out] = module([torch.rand(3, h, w)])
        internal = module.transform([torch.rand(3, h, w)])[0].image_sizes[0]
    assert max(internal) == 64  # the longer side is brought to the 64 px the model learns at
    boxes, scores, labels = out["boxes"], out["scores"], out["labels"]
    assert boxes.shape[1:] == (4,) and len(boxes) == len(scores) == len(labels) > 0
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= {1, 2, 3}
    assert ((scores >= 0) & (scores <= 1)).all() and (scores[:-1] >= scores[1:]).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert float(boxes.min()) >= 0 and float(boxes[:, [0, 2]].max()) <= w and float(boxes[:, [1, 3]].max()) <= h
    if max(hw) > 64:  # mapped back from the resized 64 px frame to the input's pixels
        assert float(boxes[:, [0, 2]].max()) > 64 or float(boxes[:, [1, 3]].max()) > 64


def test_a_tiny_training_through_the_detection_path_reduces_the_loss():
    from core.tasks import training_sets as train_data
    from core.tasks.fitting import build_model
    from core.training.run import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig.from_dict({"base": NAME, "dataset": "shapes", "pretrained": False, "epochs": 6,
                                     "batch_size": 4, "train_size": 16, "lr": 2e-3, "optimizer": "adam", "seed": 0})
        assert cfg.task == "detection"
        td = train_data.detection(cfg)
        assert build_model(cfg, td.categories)[1] is False  # same classes: the head is kept, not replaced
        model, result, extra = train(cfg, LocalContext(), td, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    losses = [h["train_loss"] for h in result.history]
    assert result.steps == 24 and len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.75 * losses[0], losses  # measured: 2.33 -> 1.19
    assert extra["val_map50"] > 0.1 and not model.training  # measured 0.55 after 24 steps; 0.006 untrained


def test_training_config_accepts_it_and_still_refuses_untrainable_detectors():
    from core.services import trainable_models

    cfg = TrainConfig(base=NAME, dataset="shapes", pretrained=False)
    cfg.validate()
    assert cfg.task == "detection"
    names = trainable_models("detection")
    assert NAME in names and "fasterrcnn_mobilenet_v3_large_fpn" in names
    refused = {"retinanet_resnet50_fpn", "fcos_resnet50_fpn", "ssd300_vgg16", "shape_regions", "mtcnn_face"}
    assert not refused & set(names)
    with pytest.raises(InvalidInput, match="Faster R-CNN"):
        TrainConfig(base="retinanet_resnet50_fpn", dataset="shapes", pretrained=False).validate()
    with pytest.raises(InvalidInput, match="cannot be trained"):
        TrainConfig(base="shape_regions", dataset="shapes", pretrained=False).validate()
    with pytest.raises(InvalidInput, match="trains on shapes"):
        TrainConfig(base=NAME, dataset="digits", pretrained=False).validate()


def test_the_trainable_flag_overrides_the_task_rule_both_ways():
    from core.models.shapes_detector import tiny_shapes_detector
    from core.models.registry import WeightsInfo

    build = lambda pretrained: (tiny_shapes_detector(), WeightsInfo("random", None, "random init"))  # noqa: E731
    register_model("test_detector_opt_in", task="detection", source="small-net", trainable=True)(build)
    register_model("fasterrcnn_test_opt_out", task="detection", source="small-net", trainable=False)(build)
    try:
        TrainConfig(base="test_detector_opt_in", dataset="shapes", pretrained=False).validate()
        with pytest.raises(InvalidInput, match="cannot be trained"):
            TrainConfig(base="fasterrcnn_test_opt_out", dataset="shapes", pretrained=False).validate()
    finally:
        unregister_model("test_detector_opt_in")
        unregister_model("fasterrcnn_test_opt_out")
