"""COCO json pieces shared by uploaded datasets and `python -m core eval-detections`."""
from __future__ import annotations

import numpy as np

from core.data.decode import safe_name
from core.errors import InvalidInput


def categories(coco: dict) -> tuple[dict[int, int], tuple[str, ...]]:
    """COCO category id -> our class index (1..K; 0 is background, as torchvision counts) and the names."""
    try:
        cats = coco["categories"]
        ids = [int(c["id"]) for c in cats]
        names = ("background",) + tuple(safe_name(str(c["name"])) for c in cats)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"The COCO json has no valid 'categories' list ({type(exc).__name__}).") from None
    return {cid: i + 1 for i, cid in enumerate(ids)}, names


def xyxy(bbox) -> list[float]:
    x, y, w, h = map(float, bbox)
    return [x, y, x + w, y + h]


def decode_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Polygons, uncompressed or compressed RLE -> HxW bool (pycocotools)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode()
    else:
        raise InvalidInput("An annotation's segmentation is neither polygons nor RLE.")
    return mask_utils.decode(rle).astype(bool)
