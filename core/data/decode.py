"""Safe decoding of user images: size and format checks before decode, EXIF orientation, RGB out.

Pillow is asked to try only the allowlisted formats, the header's pixel count is checked against our
own cap before any pixel is decoded, and every decoder failure becomes an InvalidImage message.
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import get_settings
from core.errors import InvalidImage

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
UPLOAD_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "bmp"]
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True)
class DecodedImage:
    name: str  # sanitised display name
    pixels: np.ndarray  # HxWx3 uint8 RGB
    source_format: str
    source_mode: str
    sha256: str  # of the uploaded bytes

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]


def safe_name(name: str) -> str:
    """A file name safe to show anywhere: no path, no markup characters, bounded length."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE_NAME.sub("_", base).strip() or "image"
    return cleaned[:80]


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        raise InvalidImage("32-bit floating-point images are not supported; save the image as 8- or 16-bit.")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def decode_image(data: bytes, name: str = "image") -> DecodedImage:
    """Decode untrusted bytes into an RGB array, or raise InvalidImage with a clear reason."""
    settings = get_settings()
    display = safe_name(name)
    if not data:
        raise InvalidImage(f"{display}: the file is empty.")
    if len(data) > settings.max_upload_bytes:
        raise InvalidImage(
            f"{display}: the file is {len(data) / 1e6:.1f} MB; the limit is "
            f"{settings.max_upload_bytes / 1e6:.0f} MB."
        )
    try:
        with warnings.catch_warnings():
            # Our own cap (below Pillow's) is checked right after open; Pillow's hard limit still raises.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise InvalidImage(
            f"{display}: not a recognised image. Accepted formats: {', '.join(ALLOWED_FORMATS)}."
        ) from None
    except Image.DecompressionBombError:
        raise InvalidImage(
            f"{display}: the image declares too many pixels to decode safely "
            f"(limit {settings.max_pixels / 1e6:.0f} megapixels)."
        ) from None
    except Exception as exc:  # any other decoder failure on hostile headers
        raise InvalidImage(
            f"{display}: the file is corrupt or truncated and could not be read ({type(exc).__name__})."
        ) from None

    with img:
        width, height = img.size
        if width * height > settings.max_pixels:
            raise InvalidImage(
                f"{display}: {width}x{height} is {width * height / 1e6:.0f} megapixels; the limit is "
                f"{settings.max_pixels / 1e6:.0f} megapixels. Downscale it first."
            )
        if min(width, height) < settings.min_side:
            raise InvalidImage(
                f"{display}: {width}x{height} is too small; the smallest accepted side is "
                f"{settings.min_side} pixels."
            )
        source_format, source_mode = img.format or "?", img.mode
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            pixels = _to_rgb(img)
        except InvalidImage:
            raise
        except Exception as exc:  # truncated data, corrupt chunks, bad EXIF
            raise InvalidImage(
                f"{display}: the image data is corrupt or truncated ({type(exc).__name__})."
            ) from None
    return DecodedImage(
        name=display,
        pixels=pixels,
        source_format=source_format,
        source_mode=source_mode,
        sha256=hashlib.sha256(data).hexdigest(),
    )
