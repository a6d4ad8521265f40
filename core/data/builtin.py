"""Real images that install offline with scikit-image, exposed by name."""
from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from core.errors import InvalidInput
from core.data.decode import DecodedImage

# name -> skimage.data loader; all ship inside the scikit-image wheel (no download).
BUILTIN_IMAGES = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "coins",
    "hubble_deep_field", "immunohistochemistry", "retina", "horse",
)


@lru_cache(maxsize=16)
def _load(name: str) -> np.ndarray:
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    out = np.ascontiguousarray(img.astype(np.uint8))
    out.setflags(write=False)
    return out


def load_builtin(name: str) -> np.ndarray:
    """HxWx3 uint8 RGB (read-only) for a builtin image name."""
    if name not in BUILTIN_IMAGES:
        raise InvalidInput(f"Unknown builtin image {name!r}; choose one of {', '.join(BUILTIN_IMAGES)}.")
    return _load(name)


def array_sha256(pixels: np.ndarray) -> str:
    h = hashlib.sha256(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def builtin_image(name: str):
    """A builtin image as a DecodedImage, so it flows through the same paths as uploads."""
    pixels = load_builtin(name)
    return DecodedImage(name=name, pixels=pixels, source_format="skimage", source_mode="RGB",
                        sha256=array_sha256(pixels))
