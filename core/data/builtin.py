"""Real images that install offline with scikit-image, exposed by name."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.errors import InvalidInput
from core.data.decode import DecodedImage

# name -> skimage.data loader; all ship inside the scikit-image wheel (no download).
BUILTIN_IMAGES = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "coins",
    "hubble_deep_field", "immunohistochemistry", "retina", "horse",
)


@dataclass(frozen=True)
class Application:
    field: str  # medical | microscopy | astronomy
    note: str  # one line: what the image shows and why image processing cares (from skimage.data's docstrings)


# The application samples among BUILTIN_IMAGES: pictures from the fields image-processing courses keep coming back to.
APPLICATIONS = {
    "retina": Application("medical", "Fundus photograph of a healthy human retina (left eye): medical imaging, where "
                                     "the thin blood vessels are what segmentation traces and what noise or blur hides."),
    "immunohistochemistry": Application(
        "microscopy", "Microscope image of glands in colon tissue, a protein stained brown (DAB) on a blue hematoxylin "
                      "counterstain: microscopy, where the stains are told apart and cells are counted."),
    "hubble_deep_field": Application(
        "astronomy", "Hubble eXtreme Deep Field, the telescope's farthest view of the universe: astronomy, where "
                     "thousands of small, faint galaxies sit in sky noise that a denoiser must not wipe out."),
}


def sample_order() -> list[str]:
    """The builtin images for a picker: the everyday photos first, then the application samples together."""
    return [n for n in BUILTIN_IMAGES if n not in APPLICATIONS] + list(APPLICATIONS)


def sample_label(name: str) -> str:
    """'retina (application: medical)'; the other photos by their name."""
    app = APPLICATIONS.get(name)
    return f"{name} (application: {app.field})" if app else name


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
