"""Detection: [0, 1] image tensors in (the detectors normalise and resize themselves), boxes out."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_keypoints

KEYPOINT_COLOR = (0, 255, 0)
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255)]


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    label: int
    name: str
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()  # e.g. MTCNN's eyes, nose, mouth corners


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


def postprocess(output: dict, categories: tuple[str, ...] | None, score_threshold: float = 0.0) -> list[Detection]:
    """Detections above the threshold, best first."""
    boxes, scores, labels = output["boxes"], output["scores"], output["labels"]
    keep = scores >= score_threshold
    order = torch.argsort(scores[keep], descending=True)
    points = output.get("keypoints")
    points = points[keep][order].tolist() if points is not None else [()] * int(keep.sum())
    dets = []
    for box, score, label, pts in zip(boxes[keep][order].tolist(), scores[keep][order].tolist(),
                                      labels[keep][order].tolist(), points):
        name = categories[label] if categories and 0 <= label < len(categories) else f"class {label}"
        kps = tuple((round(x, 1), round(y, 1)) for x, y in pts)
        dets.append(Detection(tuple(round(v, 2) for v in box), int(label), name, float(score), kps))
    return dets


def color_for(label: int) -> tuple[int, int, int]:
    return PALETTE[label % len(PALETTE)]


def draw(image: np.ndarray, dets: list[Detection], width: int = 3) -> np.ndarray:
    """Boxes with "name score" captions drawn on a copy of the image."""
    if not dets:
        return image.copy()
    canvas = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    boxes = torch.tensor([d.box for d in dets], dtype=torch.float32)
    out = draw_bounding_boxes(canvas, boxes, labels=[f"{d.name} {d.score:.2f}" for d in dets],
                              colors=[color_for(d.label) for d in dets], width=width)
    if any(d.keypoints for d in dets):
        kps = torch.tensor([list(d.keypoints) for d in dets if d.keypoints], dtype=torch.float32)
        out = draw_keypoints(out, kps, colors=KEYPOINT_COLOR, radius=max(2, width))
    return out.permute(1, 2, 0).numpy()


def as_records(dets: list[Detection]) -> list[dict]:
    return [{"name": d.name, "label": d.label, "score": round(d.score, 4), "box": list(d.box)}
            | ({"keypoints": [list(p) for p in d.keypoints]} if d.keypoints else {}) for d in dets]
