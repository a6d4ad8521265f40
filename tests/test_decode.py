"""Safe decoding of user images (DESIGN.md hostile inputs 5-11)."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.data.decode import decode_image, safe_name
from core.errors import InvalidImage
from tests.conftest import encode


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares width x height (the data is a single empty IDAT)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_rgb_png_round_trips_exactly():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    out = decode_image(encode(pixels), "x.png")
    assert out.pixels.dtype == np.uint8 and out.pixels.shape == (32, 48, 3)
    np.testing.assert_array_equal(out.pixels, pixels)
    assert out.source_format == "PNG" and len(out.sha256) == 64


def test_declared_20000_square_png_is_refused_before_decode():
    data = png_header_only(20000, 20000)
    assert len(data) < 200
    with pytest.raises(InvalidImage, match="megapixels"):
        decode_image(data, "bomb.png")


def test_10000_square_is_refused_by_our_own_cap():
    # 100 MP: above our 40 MP cap but below twice Pillow's limit, so our check is the one that fires.
    with pytest.raises(InvalidImage, match="limit is 40 megapixels"):
        decode_image(png_header_only(10000, 10000), "big.png")


def test_truncated_jpeg_is_a_clear_error():
    data = encode(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8), "JPEG")
    for cut in (len(data) // 2, 300):  # inside the scan data, and inside the headers
        with pytest.raises(InvalidImage, match="corrupt or truncated"):
            decode_image(data[:cut], "cut.jpg")


def test_random_bytes_named_png():
    with pytest.raises(InvalidImage, match="not a recognised image"):
        decode_image(np.random.default_rng(1).bytes(4096), "noise.png")


@pytest.mark.parametrize("fmt", ["TIFF", "EPS", "GIF"])
def test_formats_outside_the_allowlist_are_refused(fmt):
    img = Image.new("RGB", (16, 16), (10, 20, 30))
    buf = io.BytesIO()
    img.save(buf, fmt)
    with pytest.raises(InvalidImage, match="Accepted formats"):
        decode_image(buf.getvalue(), "renamed.png")


def test_empty_file():
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"", "empty.png")


def test_one_pixel_image_is_refused_with_the_minimum():
    with pytest.raises(InvalidImage, match="smallest accepted side is 8"):
        decode_image(encode(np.zeros((1, 1, 3), np.uint8)), "dot.png")


def test_upload_over_the_byte_limit_is_refused_before_decoding(settings_env):
    settings_env(IMGLAB_MAX_UPLOAD_MB=1)
    with pytest.raises(InvalidImage, match="limit is 1 MB"):
        decode_image(b"\x89PNG" + b"\0" * (2 * 1024 * 1024), "huge.png")


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("L", (77, 77, 77)),
        ("CMYK", None),
        ("P", (255, 0, 0)),
        ("LA", (255, 255, 255)),  # fully transparent composites onto white
        ("RGBA", (255, 255, 255)),
        ("1", (255, 255, 255)),
    ],
)
def test_modes_are_converted_to_rgb(mode, expected):
    if mode == "L":
        img = Image.new("L", (16, 16), 77)
    elif mode == "CMYK":
        img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    elif mode == "P":
        img = Image.new("RGB", (16, 16), (255, 0, 0)).convert("P")
    elif mode == "LA":
        img = Image.new("LA", (16, 16), (0, 0))
    elif mode == "RGBA":
        img = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    else:
        img = Image.new("1", (16, 16), 1)
    buf = io.BytesIO()
    img.save(buf, "JPEG" if mode == "CMYK" else "PNG")
    out = decode_image(buf.getvalue(), f"{mode}.img")
    assert out.pixels.shape == (16, 16, 3) and out.pixels.dtype == np.uint8
    if expected is not None:
        assert tuple(out.pixels[0, 0]) == expected
    else:
        assert out.pixels[0, 0, 0] > 200 and out.pixels[0, 0, 1] < 60  # CMYK (0,255,255,0) is red


def test_sixteen_bit_grayscale_scales_to_eight_bit():
    arr = np.full((16, 16), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    out = decode_image(buf.getvalue(), "deep.png")
    assert tuple(out.pixels[0, 0]) == (0, 0, 0)
    assert tuple(out.pixels[5, 5]) == (255, 255, 255)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    out = decode_image(buf.getvalue(), "phone.jpg")
    assert out.pixels.shape[:2] == (40, 20)  # portrait after applying orientation
    assert out.pixels[5, 10].mean() > 200 and out.pixels[35, 10].mean() < 50  # white half is now on top


def test_script_in_metadata_and_name_is_inert():
    img = Image.new("RGB", (16, 16), (1, 2, 3))
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Description", "<script>alert(1)</script>")
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info)
    out = decode_image(buf.getvalue(), "<img src=x onerror=alert(1)>.png")
    assert "<" not in out.name and ">" not in out.name
    assert not hasattr(out, "info")  # metadata is dropped, never carried to the UI


def test_safe_name_strips_paths():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\me\\cat.png") == "cat.png"
