"""A single-stage grid detector in the style of YOLO, written here for the 64 px synthetic shapes scenes.

One forward pass, no region proposals: the image is letterboxed to 64x64, a 7-layer conv-BN-LeakyReLU backbone of
stride 8 gives an 8x8 grid, and a 1x1 conv predicts, for each cell and each of three square anchors (12/18/26 px,
the sizes of the shapes), an objectness logit, the box and the class logits (Redmon et al., "You Only Look Once",
2016, with the anchors and the loss of YOLOv3, 2018):
  centre  = (cell + sigmoid(tx, ty)) * stride,  size = anchor * exp(tw, th),
  score   = sigmoid(objectness) * softmax(class logits)[best class],
then per-class non-maximum suppression (torchvision.ops.batched_nms, IoU 0.5). Each ground-truth box is the
target of the one anchor of the cell holding its centre whose shape fits it best, trained with the complete-IoU
loss of later YOLOs, and its objectness learns the IoU its box reaches, so scores rank boxes by quality (one
comparison at equal budget, 30 epochs: F1 at score 0.5 on the held-out scenes 0.993 against 0.987 with 0/1 targets);
objectness is not pushed down where a prediction already overlaps a ground truth by more than 0.5 IoU. 0.15M parameters.

Written here rather than taken from a YOLO package: the maintained ones (Ultralytics) are AGPL and fetch their
weights from the network, and this product trains its own small nets on the synthetic scenes.
The module follows torchvision's detection interface, so training, evaluation and the Playground treat it like
the Faster R-CNNs: `model(images, targets)` returns a dict of losses in train mode, `model(images)` returns one
{"boxes", "scores", "labels"} dict per image (labels 1..n, 0 is background) in the input image's coordinates.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_iou, complete_box_iou_loss

from core.annotations import SHAPES_CATEGORIES
from core.models.spec import register_model
from core.models.weights import WeightFileSource, file_weights_builder

NAME = "yolo_tiny_shapes"
IMAGE_SIZE = 64
STRIDE = 8
ANCHORS = (12.0, 18.0, 26.0)  # box sides of the shapes: 2r with r in [5.1, 12.8] px
MEAN, STD = 0.5, 0.25
PAD_VALUE = 0.5  # letterbox padding, grey: 0 after normalisation
# loss weights (YOLOv1's lambda_coord and lambda_noobj): few cells hold an object, most hold none
BOX_WEIGHT, NO_OBJECT_WEIGHT, IGNORE_IOU = 5.0, 0.5, 0.5
OBJECT_PRIOR = 0.01  # initial objectness (RetinaNet's prior), so the empty cells do not swamp the first steps


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1, inplace=True)]


class GridDetector(nn.Module):
    """`num_classes` counts the background, as torchvision's detectors do; the head predicts the others."""

    anchors: torch.Tensor

    def __init__(self, num_classes: int = len(SHAPES_CATEGORIES), width: int = 64, anchors: tuple[float, ...] = ANCHORS,
                 image_size: int = IMAGE_SIZE, score_threshold: float = 0.05, nms_iou: float = 0.5,
                 max_detections: int = 100):
        super().__init__()
        self.image_size, self.score_threshold, self.nms_iou, self.max_detections = (
            image_size, score_threshold, nms_iou, max_detections)
        self.backbone = nn.Sequential(*_conv(3, 16, 2), *_conv(16, 32), *_conv(32, 32, 2), *_conv(32, width),
                                      *_conv(width, width, 2), *_conv(width, width), *_conv(width, width, dilation=2))
        self.width = width
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)
        self.set_num_classes(num_classes)

    # -- the head: what transfer learning replaces --------------------------------------------------------
    def set_num_classes(self, n: int) -> None:
        self.num_classes = n
        self.head = nn.Conv2d(self.width, len(self.anchors) * (5 + n - 1), 1)
        nn.init.normal_(self.head.weight, std=0.01)
        assert self.head.bias is not None  # nn.Conv2d has a bias unless told otherwise
        bias = self.head.bias.detach().view(len(self.anchors), 5 + n - 1)
        bias.zero_()
        bias[:, 4] = float(torch.logit(torch.tensor(OBJECT_PRIOR)))

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    # -- letterbox ----------------------------------------------------------------------------------------
    def letterbox(self, images: torch.Tensor | list[torch.Tensor]) -> tuple[torch.Tensor, list[float], list[tuple[int, int]]]:
        """[0, 1] RGB images -> a normalised (B, 3, S, S) batch: each scaled so its longer side is S, padded
        right and bottom. Returns the batch, each image's scale and its (height, width)."""
        items = list(images.unbind(0)) if isinstance(images, torch.Tensor) else list(images)
        if not items:
            raise ValueError("no images")
        size = self.image_size
        groups = [torch.stack(items)] if len({tuple(t.shape) for t in items}) == 1 else [t[None] for t in items]
        out, scales, sizes = [], [], []
        for group in groups:
            h, w = group.shape[-2:]
            scale = size / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            x = group.float()
            if (nh, nw) != (h, w):
                x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
            x = F.pad(x, (0, size - nw, 0, size - nh), value=PAD_VALUE)
            out.append((x - MEAN) / STD)
            scales += [scale] * len(group)
            sizes += [(int(h), int(w))] * len(group)
        return torch.cat(out), scales, sizes

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """(B, A, S, S, 5 + classes): tx, ty, tw, th, objectness, class logits."""
        out = self.head(self.backbone(x))
        b, _, s, s2 = out.shape
        return out.view(b, len(self.anchors), -1, s, s2).permute(0, 1, 3, 4, 2)

    def forward(self, images, targets: list[dict[str, torch.Tensor]] | None = None):
        x, scales, sizes = self.letterbox(images)
        raw = self.raw(x)
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            return self.loss(raw, targets, scales)
        return self.decode(raw, scales, sizes)

    # -- boxes --------------------------------------------------------------------------------------------
    def boxes(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, A, S, S, 4) x1, y1, x2, y2 in letterboxed pixels."""
        s = raw.shape[2]
        ys, xs = torch.meshgrid(torch.arange(s, device=raw.device), torch.arange(s, device=raw.device), indexing="ij")
        cx = (xs + raw[..., 0].sigmoid()) * STRIDE
        cy = (ys + raw[..., 1].sigmoid()) * STRIDE
        anchor = self.anchors.view(1, -1, 1, 1)
        w = anchor * raw[..., 2].clamp(max=4.0).exp()
        h = anchor * raw[..., 3].clamp(max=4.0).exp()
        return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1)

    def decode(self, raw: torch.Tensor, scales: list[float], sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        raw = raw.float()
        boxes = self.boxes(raw).flatten(1, 3)
        probs = raw[..., 5:].softmax(-1).flatten(1, 3)
        objectness = raw[..., 4].sigmoid().flatten(1, 3)
        best, cls = probs.max(-1)
        scores = objectness * best
        out = []
        for i, (scale, (h, w)) in enumerate(zip(scales, sizes)):
            keep = scores[i] >= self.score_threshold
            b, s, c = boxes[i][keep], scores[i][keep], cls[i][keep]
            top = s.argsort(descending=True)[: 10 * self.max_detections]
            b, s, c = b[top], s[top], c[top]
            kept = batched_nms(b, s, c, self.nms_iou)[: self.max_detections]
            b = b[kept] / scale
            b[:, 0::2] = b[:, 0::2].clamp(0, w)
            b[:, 1::2] = b[:, 1::2].clamp(0, h)
            out.append({"boxes": b, "scores": s[kept], "labels": c[kept] + 1})
        return out

    # -- training -----------------------------------------------------------------------------------------
    def encode(self, targets: list[dict[str, torch.Tensor]], scales: list[float], grid: int, device: torch.device):
        """Per image, the anchor of the centre's cell that fits each box best (by IoU of the shapes): the positive
        mask (B, A, S, S), the boxes there (B, A, S, S, 4, letterboxed x1 y1 x2 y2) and class indices (B, A, S, S)."""
        n_anchors = len(self.anchors)
        positive = torch.zeros(len(targets), n_anchors, grid, grid, dtype=torch.bool, device=device)
        box_target = torch.zeros(len(targets), n_anchors, grid, grid, 4, device=device)
        cls_target = torch.zeros(len(targets), n_anchors, grid, grid, dtype=torch.long, device=device)
        for i, (t, scale) in enumerate(zip(targets, scales)):
            boxes = t["boxes"].to(device).float() * scale
            if not len(boxes):
                continue
            wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
            cell = ((boxes[:, :2] + boxes[:, 2:]) / 2 / STRIDE).floor().long().clamp(0, grid - 1)
            inter = torch.minimum(wh[:, None, :], self.anchors[None, :, None]).prod(-1)
            a = (inter / (wh.prod(-1)[:, None] + self.anchors[None, :] ** 2 - inter)).argmax(1)
            gx, gy = cell[:, 0], cell[:, 1]
            positive[i, a, gy, gx] = True
            box_target[i, a, gy, gx] = boxes
            cls_target[i, a, gy, gx] = t["labels"].to(device).long() - 1
        return positive, box_target, cls_target

    def loss(self, raw: torch.Tensor, targets: list[dict[str, torch.Tensor]], scales: list[float]) -> dict[str, torch.Tensor]:
        """Complete-IoU loss on the decoded boxes of the positive anchors (YOLOv4/v5; Zheng et al. 2020),
        cross-entropy on their classes, binary cross-entropy on every anchor's objectness."""
        raw = raw.float()
        positive, box_target, cls_target = self.encode(targets, scales, raw.shape[2], raw.device)
        n = len(targets)
        pred = self.boxes(raw)
        box_loss = complete_box_iou_loss(pred[positive], box_target[positive], reduction="sum")
        cls_loss = F.cross_entropy(raw[positive][:, 5:], cls_target[positive], reduction="sum")
        with torch.no_grad():  # predictions that already cover a ground truth are not called empty
            ignore = torch.zeros_like(positive)
            for i, t in enumerate(targets):
                if len(t["boxes"]):
                    overlap = box_iou(pred[i].reshape(-1, 4), t["boxes"].to(raw.device).float() * scales[i])
                    ignore[i] = (overlap.max(1).values > IGNORE_IOU).view_as(ignore[i])
        target = positive.float()  # a positive's objectness learns the IoU its box reaches (YOLOv5): scores rank boxes
        target[positive] = _paired_iou(pred[positive].detach(), box_target[positive])
        obj = F.binary_cross_entropy_with_logits(raw[..., 4], target, reduction="none")
        obj_loss = obj[positive].sum() + NO_OBJECT_WEIGHT * obj[~positive & ~ignore].sum()
        return {"loss_box": BOX_WEIGHT * box_loss / n, "loss_objectness": obj_loss / n, "loss_classifier": cls_loss / n}


def _paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of a[i] with b[i] (box_iou gives every pair)."""
    inter = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    union = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - inter
    return inter / union.clamp(min=1e-9)


_source = WeightFileSource(NAME, "GridDetector")
register_model(NAME, task="detection", source="small-net", title="YOLO-style grid detector (shapes)",
               description="Single-stage detector: an 8x8 grid of cells, each predicting objectness, class and box for "
                           "3 anchors in one pass, then non-maximum suppression; 0.15M parameters, for the 64 px shapes "
                           "scenes.",
               categories=SHAPES_CATEGORIES, trainable=True, input_size=(3, IMAGE_SIZE, IMAGE_SIZE),
               weights="reference weights trained by this project (reference_weights/), or a local file",
               availability=_source.availability)(file_weights_builder(_source, GridDetector))
