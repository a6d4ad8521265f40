"""COCO json pieces shared by uploaded datasets and `python -m core eval-detections`.

Boxes and masks are checked before use: a box must be four finite, non-negative numbers inside the image,
and a mask must declare the image's own size (pycocotools allocates whatever an RLE's `size` says: a
689-byte file declaring 60000x60000 cost 7.6 GB) with run lengths or polygon points that fit in it.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from core.data.decode import safe_name
from core.errors import InvalidInput

EDGE = 1.0  # px a box or polygon may overshoot the image edge (rounding in exporters)


def categories(coco: dict) -> tuple[dict[int, int], tuple[str, ...]]:
    """COCO category id -> our class index (1..K; 0 is background, as torchvision counts) and the names."""
    try:
        cats = coco["categories"]
        ids = [int(c["id"]) for c in cats]
        names = ("background",) + tuple(safe_name(str(c["name"])) for c in cats)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"The COCO json has no valid 'categories' list ({type(exc).__name__}).") from None
    return {cid: i + 1 for i, cid in enumerate(ids)}, names


def _numbers(values, what: str) -> list[float]:
    """Finite real numbers (not strings, not booleans), or InvalidInput naming `what`."""
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
        raise InvalidInput(f"{what} must be a list of numbers, got {str(values)[:60]!r}.")
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise InvalidInput(f"{what} holds NaN or infinity: {str(values)[:60]}.")
    return out


def xyxy(bbox, width: float | None = None, height: float | None = None, what: str = "A box") -> list[float]:
    """COCO [x, y, w, h] -> [x1, y1, x2, y2], refused when not 4 finite numbers, negative, or (given the image
    size) outside the image: such a box would be scored silently and skew every metric."""
    values = _numbers(bbox, what)
    if len(values) != 4:
        raise InvalidInput(f"{what} must have 4 numbers [x, y, width, height], got {len(values)}.")
    x, y, w, h = values
    if min(values) < 0:
        raise InvalidInput(f"{what} has a negative value: {values}.")
    if width is not None and height is not None and (x + w > width + EDGE or y + h > height + EDGE):
        raise InvalidInput(f"{what} {values} reaches outside its {width:g}x{height:g} image.")
    return [x, y, x + w, y + h]


def _string_counts(counts: str, limit: int) -> int:
    """Sum of the run lengths of a compressed RLE string (pycocotools' LEB128-like code), read without
    decoding the mask; stops early once over `limit`."""
    total, i, m, data = 0, 0, 0, counts.encode()
    prev1: int  # the previous two run lengths, set once read
    prev2: int
    while i < len(data):
        x, k, more = 0, 0, True
        while more:
            if i >= len(data) or k > 6:
                raise InvalidInput("An RLE mask's compressed counts are corrupt.")
            c = data[i] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            i, k = i + 1, k + 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if m > 2:
            x += prev2
        if x < 0:
            raise InvalidInput("An RLE mask has a negative run length.")
        prev2, prev1 = (prev1 if m > 0 else 0), x
        total += x
        m += 1
        if total > limit:
            break
    return total


def check_mask(segmentation, height: int, width: int, what: str = "A mask") -> None:
    """Refuse a mask whose declared size differs from its image, or whose runs or points do not fit in it,
    before pycocotools allocates anything."""
    if isinstance(segmentation, list):
        if not segmentation or len(segmentation) > 1000:
            raise InvalidInput(f"{what} needs between 1 and 1000 polygons.")
        for poly in segmentation:
            points = _numbers(poly, f"{what}'s polygon")
            if len(points) < 6 or len(points) % 2 or len(points) > 200_000:
                raise InvalidInput(f"{what} has a polygon that is not 3 to 100000 x,y points.")
            if min(points) < -EDGE or max(points[0::2]) > width + EDGE or max(points[1::2]) > height + EDGE:
                raise InvalidInput(f"{what} has a polygon reaching outside its {width}x{height} image.")
        return
    if not isinstance(segmentation, dict) or "counts" not in segmentation:
        raise InvalidInput(f"{what} is neither polygons nor RLE.")
    size = segmentation.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise InvalidInput(f"{what} is an RLE without a [height, width] size.")
    if list(size) != [height, width]:
        raise InvalidInput(f"{what} declares a {size[0]}x{size[1]} mask for a {height}x{width} image; "
                           "a mask must have its image's size.")
    counts, n = segmentation["counts"], height * width
    if isinstance(counts, list):
        runs = counts if len(counts) <= n + 1 else None
        if runs is None or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in runs):
            raise InvalidInput(f"{what} has RLE counts that are not non-negative whole numbers.")
        total = sum(runs)
    elif isinstance(counts, str):
        total = _string_counts(counts, n)
    else:
        raise InvalidInput(f"{what} has RLE counts that are neither a list nor a string.")
    if total != n:
        raise InvalidInput(f"{what}'s runs cover {total} pixels, not the {n} of its {height}x{width} image.")


def decode_mask(segmentation, height: int, width: int, what: str = "A mask") -> np.ndarray:
    """Polygons, uncompressed or compressed RLE -> HxW bool (pycocotools), checked first."""
    from pycocotools import mask as mask_utils

    check_mask(segmentation, height, width, what)
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        rle["counts"] = rle["counts"].encode()
    return mask_utils.decode(rle).astype(bool)
