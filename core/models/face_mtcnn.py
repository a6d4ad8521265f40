"""MTCNN face detector (Zhang et al. 2016) with the real weights shipped in the pip package facenet-pytorch.

facenet-pytorch pins torch<2.3, so it is installed without its dependencies (requirements-nodeps.txt) and
never imported: only its three weight files (data/{pnet,rnet,onet}.pt, plain state dicts) are read, with
weights_only=True. The networks and the cascade below follow facenet-pytorch's MIT-licensed implementation.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import batched_nms

from core.errors import WeightsUnavailable
from core.models.spec import Availability, WeightsInfo, register_model
from core.models.weights import (apply_state_dict, bundled_availability, file_sha256, load_state_dict_file,
                                 seeded_init)

NETS = ("pnet", "rnet", "onet")


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.flatten(1)))
        return self.dense5_2(x), self.dense5_1(x).softmax(1)


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _square(boxes: torch.Tensor) -> torch.Tensor:
    boxes = boxes.clone()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    boxes = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] = boxes[:, :4] + reg * torch.stack([w, h, w, h], 1)
    return boxes


def _crops(img: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resized crops (area interpolation) of the boxes clipped to the image; returns crops and kept rows."""
    h, w = img.shape[-2:]
    b = boxes[:, :4].trunc().int()
    x1, y1 = b[:, 0].clamp(min=1), b[:, 1].clamp(min=1)
    x2, y2 = b[:, 2].clamp(max=w), b[:, 3].clamp(max=h)
    out, keep = [], []
    for k in range(len(b)):
        if y2[k] > y1[k] - 1 and x2[k] > x1[k] - 1:
            crop = img[None, :, y1[k] - 1:y2[k], x1[k] - 1:x2[k]]
            out.append(F.interpolate(crop, size=(size, size), mode="area"))
            keep.append(k)
    if not out:
        return img.new_zeros(0, 3, size, size), torch.zeros(0, dtype=torch.long)
    return torch.cat(out), torch.tensor(keep, dtype=torch.long)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS on intersection over the smaller box (MTCNN's final 'Min' mode)."""
    order = scores.argsort(descending=True)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx1 = torch.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = torch.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = torch.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = torch.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1 + 1).clamp(min=0) * (yy2 - yy1 + 1).clamp(min=0)
        order = rest[inter / torch.minimum(area[i], area[rest]) <= threshold]
    return torch.tensor(keep, dtype=torch.long)


class MTCNN(nn.Module):
    """Three-stage cascade on [0, 1] RGB images; returns torchvision-style detections (label 1 = face)
    with the five facial landmarks under "keypoints"."""

    def __init__(self, min_face: int = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor

    def _detect(self, img: torch.Tensor) -> dict:
        img = img.float() * 255.0
        h, w = img.shape[-2:]
        empty = {"boxes": img.new_zeros(0, 4), "scores": img.new_zeros(0),
                 "labels": torch.zeros(0, dtype=torch.long, device=img.device), "keypoints": img.new_zeros(0, 5, 2)}
        m = 12.0 / self.min_face
        side = min(h, w) * m
        scales: list[float] = []
        while side >= 12:
            scales.append(m * self.factor ** len(scales))
            side *= self.factor
        candidates = []
        for scale in scales:  # stage 1: proposals from the fully convolutional P-Net over a pyramid
            scaled = F.interpolate(img[None], size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, prob = self.pnet(_normalise(scaled))
            prob, reg = prob[0, 1], reg[0]
            ys, xs = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
            if ys.numel() == 0:
                continue
            cells = torch.stack([xs, ys], 1).float()
            q1 = ((2 * cells + 1) / scale).floor()
            q2 = ((2 * cells + 12) / scale).floor()
            found = torch.cat([q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], 1)
            keep = batched_nms(found[:, :4], found[:, 4], torch.zeros(len(found), device=img.device), 0.5)
            candidates.append(found[keep])
        if not candidates:
            return empty
        boxes = torch.cat(candidates)
        boxes = boxes[batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes), device=img.device), 0.7)]
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        boxes = torch.cat([boxes[:, :4] + boxes[:, 5:9] * torch.stack([bw, bh, bw, bh], 1), boxes[:, 4:5]], 1)
        boxes = _square(boxes)

        crops, kept = _crops(img, boxes, 24)  # stage 2: R-Net refines and rejects
        if not len(kept):
            return empty
        reg, prob = self.rnet(_normalise(crops))
        boxes, score = boxes[kept], prob[:, 1]
        ok = score > self.thresholds[1]
        boxes, reg = torch.cat([boxes[ok, :4], score[ok, None]], 1), reg[ok]
        keep = batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes), device=img.device), 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))

        crops, kept = _crops(img, boxes, 48)  # stage 3: O-Net scores, boxes and landmarks
        if not len(kept):
            return empty
        reg, points, prob = self.onet(_normalise(crops))
        boxes, score = boxes[kept], prob[:, 1]
        ok = score > self.thresholds[2]
        boxes, reg, points = torch.cat([boxes[ok, :4], score[ok, None]], 1), reg[ok], points[ok]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        px = bw * points[:, :5] + boxes[:, 0:1] - 1
        py = bh * points[:, 5:10] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, reg)
        keep = _nms_min(boxes[:, :4], boxes[:, 4], 0.7)
        boxes, px, py = boxes[keep], px[keep], py[keep]
        return {"boxes": boxes[:, :4], "scores": boxes[:, 4], "labels": torch.ones(len(boxes), dtype=torch.long,
                device=img.device), "keypoints": torch.stack([px, py], 2)}

    def forward(self, x: torch.Tensor) -> list[dict]:
        return [self._detect(img) for img in x]


def package_weights_dir() -> Path | None:
    """facenet-pytorch's data folder, located without importing the package (it pins an old torch)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return folder if all((folder / f"{n}.pt").is_file() for n in NETS) else None


def _availability() -> Availability:
    return bundled_availability(package_weights_dir(), "facenet-pytorch",
                                "`pip install --no-deps -r requirements-nodeps.txt`; `make` does it")


@register_model(
    "mtcnn_face", task="detection", source="bundled", title="MTCNN face detector (bundled weights)",
    description="Three-stage cascade (P-Net, R-Net, O-Net), 0.5M parameters, with the real weights shipped in "
                "the pip package facenet-pytorch; boxes, scores and five landmarks per face.",
    categories=("background", "face"), weights="pip package facenet-pytorch (data/pnet.pt, rnet.pt, onet.pt)",
    availability=_availability, amp=False, license="mit", trainable=False,  # a fixed cascade of three networks
)
def mtcnn_face(pretrained: bool):
    if not pretrained:
        return seeded_init(MTCNN), WeightsInfo("random", None, "random init (seed 0)")
    folder = package_weights_dir()
    if folder is None:
        raise WeightsUnavailable("mtcnn_face", "the pip package facenet-pytorch is not installed",
                                 "Run `pip install --no-deps -r requirements-nodeps.txt` (make run / make test do).")
    model = MTCNN()
    for net in NETS:
        apply_state_dict(getattr(model, net), load_state_dict_file(folder / f"{net}.pt"), f"MTCNN {net}")
    digest = hashlib.sha256("".join(file_sha256(folder / f"{n}.pt") for n in NETS).encode()).hexdigest()
    return model, WeightsInfo("pretrained", digest, f"facenet-pytorch:{folder.name}/{{pnet,rnet,onet}}.pt")
