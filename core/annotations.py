"""Value types shared by the data layer (which reads annotations) and the metrics (which score against them),
and the label sets of the built-in data that datasets and the models trained on them share. Imports nothing
from the project, so both layers can use it without depending on each other."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES_CATEGORIES = ("background", "circle", "square", "triangle")
DIGITS_CATEGORIES = tuple(str(i) for i in range(10))


@dataclass
class ImageTruth:
    """Ground truth of one image: class ids, geometries (xyxy boxes N x 4 or boolean masks N x H x W), crowd flags,
    and the annotated areas (COCO's `area` field; None or NaN: the geometry's own area)."""

    labels: np.ndarray
    geoms: np.ndarray
    crowd: np.ndarray | None = None
    areas: np.ndarray | None = None


@dataclass
class ImagePred:
    labels: np.ndarray
    scores: np.ndarray
    geoms: np.ndarray
