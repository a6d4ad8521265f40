"""Segmentation: semantic label maps and instance masks, overlaid on the image with a legend."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.tasks.detection import PALETTE, Detection

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClassArea:
    label: int
    name: str
    fraction: float  # of the image's pixels
    color: tuple[int, int, int]


def class_color(label: int) -> tuple[int, int, int]:
    return (0, 0, 0) if label == 0 else PALETTE[(label - 1) % len(PALETTE)]


def resize_short_side(img: np.ndarray, short: int) -> np.ndarray:
    """Resize so the short side is `short` (torchvision's SemanticSegmentation preset does this)."""
    from PIL import Image

    h, w = img.shape[:2]
    scale = short / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


def normalize(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (t - mean) / std


def label_map(logits: torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """Argmax over classes (CxHxW logits), optionally resized to (H, W) first."""
    if size is not None and tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return logits.argmax(0).to(torch.int64).numpy()


def areas(labels: np.ndarray, categories: tuple[str, ...] | None) -> list[ClassArea]:
    values, counts = np.unique(labels, return_counts=True)
    total = labels.size
    out = []
    for v, c in sorted(zip(values.tolist(), counts.tolist()), key=lambda vc: -vc[1]):
        name = categories[v] if categories and v < len(categories) else f"class {v}"
        out.append(ClassArea(int(v), name, c / total, class_color(int(v))))
    return out


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Colour every non-background class over the image; background (0) left untouched."""
    colors = np.array([class_color(i) for i in range(int(labels.max()) + 1)], dtype=np.float64)
    painted = colors[labels]
    mask = (labels > 0)[..., None]
    out = np.where(mask, (1 - alpha) * image + alpha * painted, image)
    return np.clip(out, 0, 255).astype(np.uint8)


def instance_overlay(image: np.ndarray, masks: torch.Tensor, dets: list[Detection], alpha: float = 0.5) -> np.ndarray:
    """Instance masks (Nx1xHxW probabilities, thresholded at 0.5) and their boxes over the image."""
    from core.tasks.detection import color_for, draw

    out = image.astype(np.float64)
    for m, d in zip(masks, dets):
        sel = (m[0] > 0.5).numpy()[..., None]
        out = np.where(sel, (1 - alpha) * out + alpha * np.array(color_for(d.label)), out)
    return draw(np.clip(out, 0, 255).astype(np.uint8), dets, width=2)


def legend_rows(area_list: list[ClassArea]) -> list[dict]:
    return [{"class": a.name, "pixels %": round(100 * a.fraction, 2), "color": "#%02x%02x%02x" % a.color}
            for a in area_list]
