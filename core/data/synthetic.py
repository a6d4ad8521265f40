"""Deterministic synthetic scenes with exact ground truth: circles, squares and triangles on a textured
background, with class labels, boxes, instance masks and a semantic mask. Same seed, same pixels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from core.annotations import SHAPES_CATEGORIES

SHAPE_NAMES = SHAPES_CATEGORIES[1:]  # circle, square, triangle; index in SHAPES_CATEGORIES is the class id


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # HxWx3 uint8
    labels: np.ndarray  # (n,) class ids into SHAPES_CATEGORIES (1..3)
    boxes: np.ndarray  # (n, 4) xyxy, pixel-exact (x2, y2 exclusive)
    masks: np.ndarray  # (n, H, W) bool
    semantic: np.ndarray  # HxW uint8, 0 background


def _shape_mask(kind: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=255)
    return np.asarray(canvas) > 127


def scene(seed: int, size: int = 64, min_shapes: int = 1, max_shapes: int = 3) -> Scene:
    """Non-overlapping shapes (rejection sampled), so every mask and box is exact."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = rng.uniform(40, 110, 3)
    gradient = (xx / size)[..., None] * rng.uniform(-30, 30, 3) + (yy / size)[..., None] * rng.uniform(-30, 30, 3)
    image = base + gradient + rng.normal(0, 6, (size, size, 3))
    occupied = np.zeros((size, size), bool)
    labels: list[int] = []
    boxes, masks = [], []
    target = int(rng.integers(min_shapes, max_shapes + 1))
    for _ in range(40 * target):
        if len(labels) == target:
            break
        cls = int(rng.integers(1, len(SHAPES_CATEGORIES)))
        r = rng.uniform(size * 0.08, size * 0.2)
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        mask = _shape_mask(SHAPES_CATEGORIES[cls], cx, cy, r, size)
        if mask.sum() < 12 or (mask & _dilate(occupied)).any():
            continue
        occupied |= mask
        color = rng.uniform(150, 255, 3) * rng.permutation([1.0, 0.6, 0.3])
        image[mask] = color + rng.normal(0, 4, (int(mask.sum()), 3))
        ys, xs = np.nonzero(mask)
        labels.append(cls)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        masks.append(mask)
    semantic = np.zeros((size, size), np.uint8)
    for cls, mask in zip(labels, masks):
        semantic[mask] = cls
    return Scene(
        np.clip(np.rint(image), 0, 255).astype(np.uint8), np.array(labels, np.int64),
        np.array(boxes, np.float64).reshape(-1, 4), np.array(masks, bool).reshape(-1, size, size), semantic,
    )


def _dilate(mask: np.ndarray) -> np.ndarray:
    """One-pixel gap between shapes so instances never touch."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out
