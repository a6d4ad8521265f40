"""The YOLO-style grid detector: its boxes decode exactly from hand-built predictions, its targets encode the way
the decoder reads them back, its loss falls as it trains through the app's detection path, and it is registered,
trainable and benchmarked like the other detectors."""
import math

import numpy as np
import pytest
import torch

from core.annotations import SHAPES_CATEGORIES
from core.data.synthetic import scene
from core.models.grid_detector import ANCHORS, NAME, STRIDE, GridDetector
from core.models.registry import create, get_spec
from core.tasks.detection import to_tensor
from core.tasks.train_config import TrainConfig

EMPTY = -30.0  # an objectness logit no score threshold lets through


def _raw_for(model: GridDetector, boxes: list[list[float]], labels: list[int], scale: float = 1.0) -> torch.Tensor:
    """Hand-built head output whose decoding is `boxes` (in the input image's pixels): for each box the anchor
    of the cell holding its centre, tx = logit of the centre's place in the cell, tw = log(side / anchor)."""
    grid = model.image_size // STRIDE
    raw = torch.zeros(1, len(ANCHORS), grid, grid, 5 + len(SHAPES_CATEGORIES) - 1)
    raw[..., 4] = EMPTY
    for (x1, y1, x2, y2), label in zip(boxes, labels):
        x1, y1, x2, y2 = (v * scale for v in (x1, y1, x2, y2))
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        gx, gy = int(cx // STRIDE), int(cy // STRIDE)
        a = int(np.argmin([abs(math.log(max(w, h) / s)) for s in ANCHORS]))
        raw[0, a, gy, gx, :4] = torch.tensor([math.log((cx / STRIDE - gx) / (1 - (cx / STRIDE - gx))),
                                              math.log((cy / STRIDE - gy) / (1 - (cy / STRIDE - gy))),
                                              math.log(w / ANCHORS[a]), math.log(h / ANCHORS[a])])
        raw[0, a, gy, gx, 4] = 30.0
        raw[0, a, gy, gx, 5 + label - 1] = 30.0
    return raw


def test_decoded_boxes_match_hand_built_targets_in_the_input_images_pixels():
    model = GridDetector().eval()
    boxes = [[10.0, 12.0, 30.0, 28.0], [40.5, 33.0, 62.0, 60.5]]
    labels = [2, 3]
    [out] = model.decode(_raw_for(model, boxes, labels), [1.0], [(64, 64)])
    assert torch.allclose(out["boxes"], torch.tensor(boxes), atol=1e-4)
    assert out["labels"].tolist() == labels and torch.allclose(out["scores"], torch.ones(2), atol=1e-6)
    # a 128x96 image is letterboxed at scale 0.5: boxes come back in its own pixels, clipped to it
    big = [[20.0, 24.0, 60.0, 56.0], [100.0, 10.0, 128.0, 60.0]]
    [out] = model.decode(_raw_for(model, big, [1, 2], scale=0.5), [0.5], [(96, 128)])
    assert torch.allclose(out["boxes"], torch.tensor(big), atol=1e-3) and out["labels"].tolist() == [1, 2]


def test_overlapping_duplicates_are_suppressed_within_a_class_only():
    model = GridDetector().eval()
    raw = _raw_for(model, [[10.0, 10.0, 30.0, 30.0]], [1])  # the 18 px anchor (index 1) of cell (2, 2)
    raw[0, 0, 2, 2] = raw[0, 1, 2, 2]  # the 12 px anchor of that cell predicts the same 20 px box, same class
    raw[0, 0, 2, 2, 2:4] = math.log(20 / ANCHORS[0])
    [out] = model.decode(raw, [1.0], [(64, 64)])
    assert out["labels"].tolist() == [1]
    raw[0, 0, 2, 2, 5:] = torch.tensor([EMPTY, 30.0, EMPTY])  # ... now as another class: both are kept
    [out] = model.decode(raw, [1.0], [(64, 64)])
    assert sorted(out["labels"].tolist()) == [1, 2]


def test_targets_encode_to_the_cell_and_anchor_the_decoder_reads():
    model = GridDetector()
    boxes = torch.tensor([[10.0, 12.0, 30.0, 28.0], [40.0, 40.0, 52.0, 52.0], [100.0, 0.0, 128.0, 30.0]])
    targets = [{"boxes": boxes[:2], "labels": torch.tensor([2, 3])}, {"boxes": boxes[2:], "labels": torch.tensor([1])}]
    positive, box_target, cls_target = model.encode(targets, [1.0, 0.5], 8, torch.device("cpu"))
    assert positive.sum() == 3
    # the first box: centre (20, 20) is cell (2, 2); 20x16 fits the 18 px anchor best
    assert positive[0, 1, 2, 2] and cls_target[0, 1, 2, 2] == 1
    assert torch.equal(box_target[0, 1, 2, 2], boxes[0])
    # the second: 12x12 at centre (46, 46), cell (5, 5), the 12 px anchor
    assert positive[0, 0, 5, 5] and cls_target[0, 0, 5, 5] == 2
    # the third, in a 128 px wide image: scaled by 0.5 to centre (57, 7.5) -> cell (7, 0), 14x15 -> 12 px anchor
    assert positive[1, 0, 0, 7] and torch.allclose(box_target[1, 0, 0, 7], boxes[2] * 0.5)


def test_eval_letterboxes_any_size_and_batches_of_one_shape():
    torch.manual_seed(0)
    model = GridDetector(score_threshold=0.0).eval()
    with torch.inference_mode():
        x, scales, sizes = model.letterbox([torch.rand(3, 48, 80), torch.rand(3, 160, 128)])
        outs = model([torch.rand(3, 48, 80), torch.rand(3, 160, 128)])
        batch = model(torch.rand(4, 3, 64, 64))
    assert x.shape == (2, 3, 64, 64) and scales == [0.8, 0.4] and sizes == [(48, 80), (160, 128)]
    assert float(x[0, :, 39:].abs().max()) == 0.0  # padding is grey: zero after normalisation
    for out, (h, w) in zip(outs, sizes):
        b = out["boxes"]
        assert len(b) > 0 and out["labels"].dtype == torch.int64 and set(out["labels"].tolist()) <= {1, 2, 3}
        assert float(b.min()) >= 0 and float(b[:, [0, 2]].max()) <= w and float(b[:, [1, 3]].max()) <= h
        assert (out["scores"][:-1] >= out["scores"][1:]).all()
    assert len(batch) == 4


def test_registered_trainable_compact_and_its_head_swaps_classes():
    from core.models import heads
    from core.services import trainable_models

    assert NAME in trainable_models("detection")  # offered on the Fine-tune page
    TrainConfig(base=NAME, dataset="shapes", pretrained=False).validate()

    spec = get_spec(NAME)
    assert spec.task == "detection" and spec.trainable is True and spec.categories == SHAPES_CATEGORIES
    module, info = create(NAME, weights="random")
    n = sum(p.numel() for p in module.parameters())
    assert 100_000 < n < 200_000 and f"{n / 1e6:.2f}M" in spec.description and info.status == "random"
    heads.set_num_classes(module, 6)
    assert module.head.out_channels == len(ANCHORS) * (5 + 5)
    assert heads.classifier_parameters(module) == list(module.head.parameters())


def test_train_mode_loss_and_gradients_are_finite_even_for_an_image_without_boxes():
    torch.manual_seed(0)
    model = GridDetector().train()
    s = scene(11)
    targets = [{"boxes": torch.from_numpy(s.boxes.astype(np.float32)), "labels": torch.from_numpy(s.labels)},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = model([to_tensor(s.image), torch.rand(3, 64, 64)], targets)
    assert set(losses) == {"loss_box", "loss_objectness", "loss_classifier"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_tiny_training_through_the_detection_path_reduces_the_loss():
    from core.jobs.context import LocalContext
    from core.tasks import training_sets as train_data
    from core.training.run import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig.from_dict({"base": NAME, "dataset": "shapes", "pretrained": False, "epochs": 8,
                                     "batch_size": 8, "train_size": 32, "lr": 3e-3, "optimizer": "adam", "seed": 0})
        assert cfg.task == "detection"
        model, result, extra = train(cfg, LocalContext(), train_data.detection(cfg), torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    losses = [h["train_loss"] for h in result.history]
    assert result.steps == 32 and len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0] and losses == sorted(losses, reverse=True), losses  # measured 14.2 -> 8.3
    assert extra["val_map50"] > 0.05 and not model.training, extra


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_the_gpu_it_trains_and_decodes_like_on_the_cpu():
    """The CUDA twin of the decode and training tests above (anchors, grids and targets follow the device)."""
    device = torch.device("cuda")
    model = GridDetector().to(device).eval()
    boxes = [[10.0, 12.0, 30.0, 28.0]]
    [out] = model.decode(_raw_for(model, boxes, [2]).to(device), [1.0], [(64, 64)])
    assert torch.allclose(out["boxes"].cpu(), torch.tensor(boxes), atol=1e-3) and out["labels"].tolist() == [2]
    model.train()
    s = scene(11)
    target = [{"boxes": torch.from_numpy(s.boxes.astype(np.float32)).to(device), "labels": torch.from_numpy(s.labels).to(device)}]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = model([to_tensor(s.image).to(device)], target)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
