"""A compact Faster R-CNN for the 64 px synthetic shapes scenes, small enough to ship its weights.

torchvision's smallest Faster R-CNN (MobileNetV3-L FPN) has 19M parameters and resizes every image to 320-800
px; the shapes are 9-27 px objects in 64 px scenes (core/data/synthetic.py). This one keeps torchvision's
FasterRCNN (RPN, RoIAlign, box head, losses, post-processing: the training path, heads.set_num_classes and
the evaluator treat it like the other Faster R-CNNs) around a 6-layer conv-BN-ReLU backbone of stride 4
(a 16x16 feature map for a 64 px image, receptive field ~43 px), square anchors of 12/18/26 px, RoIAlign
5x5 and a 128-d two-layer box head: 0.40M parameters. Sizes were chosen for CPU training: the 32 RoIs
sampled per image and RoIAlign's sampling ratio bound its CPU backward pass, which dominated the step time.
Every image is resized so its longer side is 64 px (the scale of the scenes it learns from); boxes come back
in the input image's coordinates.
"""
from __future__ import annotations

import torch.nn as nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from core.models.spec import register_model
from core.annotations import SHAPES_CATEGORIES
from core.models.weights import WeightFileSource, file_weights_builder

NAME = "fasterrcnn_tiny_shapes"
ANCHOR_SIZES = (12, 18, 26)  # box sides of the shapes: 2r with r in [5.1, 12.8] px
IMAGE_SIZE = 64


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class TinyBackbone(nn.Sequential):
    """conv-BN-ReLU x6, stride 4, `out_channels` as torchvision's detectors expect."""

    def __init__(self, width: int = 64):
        super().__init__(*_conv(3, 24, 2), *_conv(24, 32), *_conv(32, width, 2),
                         *_conv(width, width), *_conv(width, width), *_conv(width, width, dilation=2))
        self.out_channels = width


def tiny_shapes_detector(num_classes: int = len(SHAPES_CATEGORIES), width: int = 64, roi: int = 5,
                         representation: int = 128, sampling: int = 2, box_batch: int = 32) -> FasterRCNN:
    """Faster R-CNN with `num_classes` outputs (background included) for [0, 1] RGB images of ~64 px."""
    backbone = TinyBackbone(width)
    anchors = AnchorGenerator(sizes=(ANCHOR_SIZES,), aspect_ratios=((1.0,),))
    pooler = MultiScaleRoIAlign(featmap_names=["0"], output_size=roi, sampling_ratio=sampling)
    return FasterRCNN(
        backbone, min_size=IMAGE_SIZE, max_size=IMAGE_SIZE,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors, rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, rpn_batch_size_per_image=128,
        box_roi_pool=pooler, box_head=TwoMLPHead(width * roi * roi, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes),
        box_batch_size_per_image=box_batch, box_detections_per_img=100,
    )


_source = WeightFileSource(NAME, "FasterRCNN")
register_model(NAME, task="detection", source="small-net", title="Faster R-CNN tiny (shapes)",
               description="Faster R-CNN on a 6-layer stride-4 CNN (RoIAlign 5x5, 128-d box head) for the 64 px "
                           "shapes scenes: 0.40M parameters, vs 19M for torchvision's smallest.",
               categories=SHAPES_CATEGORIES, trainable=True, input_size=(3, IMAGE_SIZE, IMAGE_SIZE),
               weights="local file only (train it in the app or provide a checkpoint)",
               availability=_source.availability)(file_weights_builder(_source, tiny_shapes_detector))
