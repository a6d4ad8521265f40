"""Safe decoding of user images: size and format checks before decode, EXIF orientation, RGB out.

Pillow is asked to try only the allowlisted formats, the header's pixel count is checked against our
own cap (and a longest-side bound) before any pixel is decoded, and every decoder failure becomes an
InvalidImage message. PixelBudget counts a whole request or dataset from headers alone, before decoding.
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
from core.errors import InvalidImage, InvalidInput

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


def _open(data: bytes, display: str) -> Image.Image:
    """Open lazily (headers only) and check bytes, format and size; no pixel is decoded here."""
    settings = get_settings()
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
    try:
        check_size(*img.size, display)
    except InvalidImage:
        img.close()
        raise
    return img


def check_size(width: int, height: int, display: str = "image") -> None:
    """One image's own limits: pixel cap, smallest side, longest side (a 8 x 4,999,000 strip is refused here)."""
    settings = get_settings()
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
    if max(width, height) > settings.max_side:
        raise InvalidImage(
            f"{display}: {width}x{height} is too long and thin; the longest accepted side is "
            f"{settings.max_side} pixels. Crop or downscale it first."
        )


def probe_image(data: bytes, name: str = "image") -> tuple[int, int]:
    """(width, height) from the header alone, with every per-image check: what budgets are counted from."""
    with _open(data, safe_name(name)) as img:
        return img.size


class PixelBudget:
    """Images and pixels of one request or dataset, counted from headers so the whole lot is refused before
    anything is decoded (each image may be under its own cap while many together exhaust memory)."""

    def __init__(self, what: str, max_images: int, max_pixels: int, hint: str = "Use fewer or smaller images."):
        self.what, self.max_images, self.max_pixels, self.hint = what, max_images, max_pixels, hint
        self.images = self.pixels = 0

    def count(self, n: int) -> None:
        if n > self.max_images:
            raise InvalidInput(f"{n} images is too many for {self.what}; the limit is {self.max_images}.")

    def add(self, width: int, height: int) -> None:
        self.images += 1
        self.pixels += int(width) * int(height)
        self.count(self.images)
        if self.pixels > self.max_pixels:
            raise InvalidInput(
                f"The images add up to more than {self.max_pixels / 1e6:g} megapixels, the limit for {self.what}. "
                + self.hint)


def request_budget() -> PixelBudget:
    s = get_settings()
    return PixelBudget("one run", s.max_request_images, s.max_request_pixels)


def check_request(images: list[DecodedImage]) -> None:
    """The same bounds for images already decoded (services can be called without the uploader): each image's
    size and the run's total pixels, before any model or tensor is built."""
    budget = request_budget()
    budget.count(len(images))
    for img in images:
        check_size(*img.size, img.name)
        budget.add(*img.size)


def decode_batch(items: list[tuple[bytes, str]]) -> tuple[list[DecodedImage], list[str]]:
    """Decode a Playground drop: count and total pixels checked from the headers first (InvalidInput refuses
    the whole drop); then each file is decoded, a bad one reported and skipped while the good ones still run."""
    budget = request_budget()
    budget.count(len(items))
    errors, ok = [], []
    for data, name in items:
        try:
            budget.add(*probe_image(data, name))
            ok.append((data, name))
        except InvalidImage as exc:
            errors.append(str(exc))
    images = []
    for data, name in ok:
        try:
            images.append(decode_image(data, name))
        except InvalidImage as exc:
            errors.append(str(exc))
    return images, errors


def decode_image(data: bytes, name: str = "image") -> DecodedImage:
    """Decode untrusted bytes into an RGB array, or raise InvalidImage with a clear reason."""
    display = safe_name(name)
    with _open(data, display) as img:
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
