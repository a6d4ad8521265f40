"""Budgets counted before decoding (DESIGN.md hostile inputs 26-29, issue 13 items 3 and 4).

Each hostile file is built here, tiny: PNGs whose header declares a size but carry no pixel data, so a test
can prove a refusal happens from headers alone by making every decoder raise if it is reached.
"""
from __future__ import annotations

import io
import json
import math
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from core.data.archive import InvalidArchive
from core.errors import InvalidImage, InvalidInput
from tests.conftest import encode, shown
from tests.test_decode import png_header_only

MB = 2**20


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def png(color=90, size=(16, 16)) -> bytes:
    return encode(np.full((*size, 3), color, np.uint8))


@pytest.fixture
def uploads(settings_env):
    from core.data import uploads as u

    return u


@pytest.fixture
def no_decoding(monkeypatch):
    """Every pixel decoder raises: what passes under it was refused from headers alone."""
    from PIL import ImageFile

    def boom(*a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    import pycocotools.mask as mask_utils

    monkeypatch.setattr(mask_utils, "decode", boom)
    monkeypatch.setattr(mask_utils, "frPyObjects", boom)


def files_on_disk(u) -> list[str]:
    root = u.uploads_root()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def peak_mb(fn, *args, **kwargs):
    """(result or raised exception, peak traced MiB) of one call."""
    tracemalloc.start()
    try:
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the refusal is the result under test
            out = exc
        return out, tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


# -- one image: the longest side ----------------------------------------------------------------------------
def test_a_thin_strip_under_the_pixel_cap_is_refused_by_its_longest_side(settings_env, no_decoding):
    from core.data.decode import decode_image, probe_image

    strip = png_header_only(8, 4_999_000)  # 40 MP, under the 40 MP cap, 8 px wide
    for fn in (probe_image, decode_image):
        with pytest.raises(InvalidImage, match="longest accepted side is 16384 pixels"):
            fn(strip, "strip.png")
    settings_env(IMGLAB_MAX_SIDE=100)
    with pytest.raises(InvalidImage, match="longest accepted side is 100 pixels"):
        probe_image(png_header_only(8, 101), "s.png")
    assert probe_image(png_header_only(8, 100), "s.png") == (8, 100)


# -- the Playground drop ----------------------------------------------------------------------------------
class Upload:
    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def getvalue(self) -> bytes:
        return self.data


@pytest.fixture
def errors_shown(monkeypatch):
    import ui.widgets as widgets

    errors: list[str] = []
    monkeypatch.setattr(widgets.st, "error", lambda text, *a, **k: errors.append(shown(str(text))))
    return errors


def test_a_playground_drop_over_the_pixel_budget_is_refused_before_any_file_is_decoded(settings_env, no_decoding,
                                                                                        errors_shown):
    from ui.widgets import decode_uploads

    drop = [Upload(png_header_only(5000, 5000), f"big{i}.png") for i in range(40)]  # 25 MP each, 1 GP together
    (images, peak) = peak_mb(decode_uploads, drop)
    assert images == [] and peak < 5, peak
    assert len(errors_shown) == 1 and "limit for one run" in errors_shown[0] and "100 megapixels" in errors_shown[0]
    strips = [Upload(png_header_only(8, 4_999_000), f"strip{i}.png") for i in range(40)]
    errors_shown.clear()
    assert decode_uploads(strips) == [] and len(errors_shown) == 40
    assert all("longest accepted side" in e for e in errors_shown)


def test_a_playground_drop_of_too_many_files_is_refused_whole(settings_env, errors_shown):
    from ui.widgets import decode_uploads

    assert decode_uploads([Upload(b"", f"{i}.png") for i in range(65)]) == []
    assert errors_shown == ["65 images is too many for one run; the limit is 64."]


def test_a_drop_within_budget_still_decodes_and_reports_the_bad_file(settings_env, errors_shown):
    from ui.widgets import decode_uploads

    settings_env(IMGLAB_MAX_TOTAL_PIXELS=1000)
    images = decode_uploads([Upload(png(10), "a.png"), Upload(b"junk", "b.png"), Upload(png(20), "c.png")])
    assert [i.name for i in images] == ["a.png", "c.png"] and len(errors_shown) == 1 and "b.png" in errors_shown[0]
    assert decode_uploads([Upload(png(10, (32, 32)), "d.png")]) == []  # 1024 px > 1000
    assert "more than 0.001 megapixels, the limit for one run" in errors_shown[-1]


def test_detection_and_segmentation_services_bound_their_inputs(settings_env):
    from core.data.decode import DecodedImage
    from core.services.detect import detect
    from core.services.segment import segment

    strip = DecodedImage("strip.png", np.zeros((8, 20000, 3), np.uint8), "PNG", "RGB", "0" * 64)
    for run in (detect, segment):  # refused before a model or tensor exists (no engine needed)
        with pytest.raises(InvalidImage, match="longest accepted side"):
            run(None, "shape_regions", [strip])
    settings_env(IMGLAB_MAX_TOTAL_PIXELS=2000)
    square = DecodedImage("sq.png", np.zeros((32, 32, 3), np.uint8), "PNG", "RGB", "0" * 64)
    with pytest.raises(InvalidInput, match="limit for one run"):
        detect(None, "shape_regions", [square, square])


def test_shape_regions_memory_stays_near_the_image_size():
    from core.models.classical import ShapeRegionDetector

    img = np.full((1200, 1600, 3), 0.5, np.float32)  # 23 MB as float32; the old fit built ~180 MB of float64
    img[100:300, 200:500] = 0.95
    fg, peak = peak_mb(ShapeRegionDetector()._foreground, img)
    assert peak < 60, peak
    assert fg[200, 300] and not fg[600, 800] and fg.sum() == 200 * 300


# -- uploaded datasets --------------------------------------------------------------------------------------
def test_an_imagefolder_of_thin_strips_is_refused_from_headers(uploads, no_decoding):
    strips = make_zip({f"c{i % 2}/s{i}.png": png_header_only(8, 4_999_000) for i in range(40)})
    assert len(strips) < 20_000
    err, peak = peak_mb(uploads.save_upload, strips, "strips.zip")
    assert isinstance(err, InvalidInput) and "no usable images" in str(err) and "longest accepted side" in str(err)
    assert peak < 10, peak
    assert files_on_disk(uploads) == []


def test_a_dataset_over_the_pixel_or_file_budget_is_refused_before_decoding(uploads, settings_env, no_decoding):
    big = make_zip({f"c{i % 2}/{i}.png": png_header_only(5000, 5000) for i in range(12)})  # 300 MP > 250 MP
    with pytest.raises(InvalidInput, match="more than 250 megapixels, the limit for one dataset"):
        uploads.save_upload(big, "big.zip")
    settings_env(IMGLAB_MAX_DATASET_IMAGES=3)
    with pytest.raises(InvalidInput, match="4 images is too many for one dataset; the limit is 3"):
        uploads.save_upload(make_zip({f"c{i % 2}/{i}.png": png() for i in range(4)}), "four.zip")
    pairs = make_zip({"clean/p.png": png_header_only(4000, 4000), "degraded/p.png": png_header_only(2000, 2000)})
    settings_env(IMGLAB_MAX_DATASET_PIXELS=19_000_000)  # 16 + 4 MP: both images of a pair count
    with pytest.raises(InvalidInput, match="more than 19 megapixels"):
        uploads.save_upload(pairs, "pairs.zip")
    assert files_on_disk(uploads) == []


def coco_zip(annotations: list[dict], size=(16, 16)) -> bytes:
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": size[0], "height": size[1]}],
            "categories": [{"id": 7, "name": "disc"}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 7, "iscrowd": 0, **a}
                            for i, a in enumerate(annotations)]}
    return make_zip({"ann.json": json.dumps(coco).encode(), "images/a.png": png(50, size[::-1])})


def test_an_rle_declaring_a_huge_mask_is_refused_before_decoding(uploads, no_decoding):
    rle = {"size": [60000, 60000], "counts": [0, 3_600_000_000]}
    data = coco_zip([{"bbox": [1, 1, 4, 4], "segmentation": rle}])
    assert len(data) < 1000
    err, peak = peak_mb(uploads.save_upload, data, "rle.zip")
    assert isinstance(err, InvalidArchive), err
    assert "Annotation 1 of a.png: its mask declares a 60000x60000 mask for a 16x16 image" in str(err)
    assert peak < 5, peak
    assert files_on_disk(uploads) == []


@pytest.mark.parametrize("segmentation, words", [
    ({"size": [16, 16], "counts": [0, 10**9]}, "runs cover 1000000000 pixels, not the 256"),
    ({"size": [16, 16], "counts": "0" * 10}, "runs cover 0 pixels"),
    ({"size": [16, 16], "counts": [1.5, 254.5]}, "not non-negative whole numbers"),
    ({"size": ["16", 16], "counts": [256]}, "without a [height, width] size"),
    ([[0, 0, 1e9, 0, 1e9, 1e9]], "polygon reaching outside its 16x16 image"),
    ([[0, 0, "x", 0, 4, 4]], "must be a list of numbers"),
    ([[0, 0, 4]], "not 3 to 100000 x,y points"),
    ("nonsense", "neither polygons nor RLE"),
])
def test_masks_that_do_not_fit_their_image_are_refused(uploads, no_decoding, segmentation, words):
    with pytest.raises(InvalidArchive, match="Annotation 1 of a.png: its mask") as err:
        uploads.save_upload(coco_zip([{"bbox": [1, 1, 4, 4], "segmentation": segmentation}]), "m.zip")
    assert words in str(err.value)


def test_a_valid_compressed_rle_is_read_exactly():
    from pycocotools import mask as mask_utils

    from core.data.coco import decode_mask

    mask = np.zeros((16, 20), np.uint8, order="F")
    mask[3:9, 5:15] = 1
    rle = mask_utils.encode(mask)
    out = decode_mask({"size": rle["size"], "counts": rle["counts"].decode()}, 16, 20)
    np.testing.assert_array_equal(out, mask.astype(bool))


@pytest.mark.parametrize("bbox, words", [
    ([-3, 1, 4, 4], "negative value"),
    ([1, 1, -4, 4], "negative value"),
    ([1, 1, float("nan"), 4], "NaN or infinity"),
    ([1, 1, float("inf"), 4], "NaN or infinity"),
    (["1", 1, 4, 4], "must be a list of numbers"),
    ("1,1,4,4", "must be a list of numbers"),
    ([1, 1, 4], "must have 4 numbers"),
    ([10, 10, 30, 4], "reaches outside its 16x16 image"),
    (None, "must be a list of numbers"),
])
def test_coco_boxes_that_cannot_be_scored_are_refused_naming_the_annotation(uploads, bbox, words):
    good = {"bbox": [1, 1, 4, 4]}
    with pytest.raises(InvalidArchive, match="Annotation 2 of a.png: its bbox") as err:
        uploads.save_upload(coco_zip([good, {"bbox": bbox}]), "boxes.zip")
    message = str(err.value)
    assert words in message and "Fix the COCO json" in message and "Traceback" not in message
    assert files_on_disk(uploads) == []


def test_coco_boxes_on_the_edge_and_unknown_categories(uploads):
    ds = uploads.save_upload(coco_zip([{"bbox": [0, 0, 16, 16]}, {"bbox": [8.5, 8, 7.9, 8.4]}]), "edge.zip")
    assert ds.samples[0].target.geoms.tolist() == [[0, 0, 16, 16], [8.5, 8, 16.4, 16.4]]
    with pytest.raises(InvalidArchive, match="Annotation 1 of a.png has category_id '9'"):
        uploads.save_upload(coco_zip([{"bbox": [1, 1, 4, 4], "category_id": 9}]), "cat.zip")


def test_the_cli_box_reader_refuses_bad_boxes_too():
    from core.data.coco import xyxy

    assert xyxy([1, 2, 3, 4]) == [1, 2, 4, 6]
    for bad in ([math.nan, 0, 1, 1], [0, 0, -1, 1], ["a", 0, 1, 1], [True, 0, 1, 1]):
        with pytest.raises(InvalidInput):
            xyxy(bad)


# -- archives ------------------------------------------------------------------------------------------------
def zip64_declaring(entries: int) -> bytes:
    """A real two-member zip whose end records (ZIP64 form) declare `entries` entries."""
    data = make_zip({"c/a.png": png(), "c/b.png": png()})
    end = data.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", data, end + 12)
    rec64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, end, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:end] + rec64 + locator + eocd


def test_a_million_entry_zip_is_refused_from_its_end_record_before_zipfile_reads_the_index(uploads, monkeypatch):
    import core.data.archive as archive

    def no_index(*a, **k):
        raise AssertionError("zipfile parsed the index")

    data, small = zip64_declaring(1_000_000), zip64_declaring(2)
    assert len(data) < 1000
    monkeypatch.setattr(archive.zipfile, "ZipFile", no_index)
    with pytest.raises(InvalidArchive, match="holds 1000000 entries; the limit is 20000"):
        uploads.save_upload(data, "million.zip")
    assert archive.count_entries(small, 50) == 2  # the ZIP64 form itself is read right
    assert files_on_disk(uploads) == []


def test_an_end_record_understating_its_entries_is_caught_by_walking_the_directory(settings_env):
    import core.data.archive as archive

    data = bytearray(make_zip({f"c/{i}.png": b"x" for i in range(60)}))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 2, 2)  # "2 entries"
    with pytest.raises(InvalidArchive, match="more than 50 entries"):
        archive.count_entries(bytes(data), 50)
    assert archive.count_entries(make_zip({f"c/{i}.png": b"x" for i in range(50)}), 50) == 50
    with pytest.raises(InvalidArchive, match="not a readable zip"):
        archive.count_entries(b"PK\x03\x04 no end record", 50)


def test_huge_members_and_non_images_are_never_kept_on_disk(uploads, settings_env):
    settings_env(IMGLAB_MAX_UPLOAD_MB=1)
    zeros = b"\0" * (3 * MB)  # compresses to a few KB
    from safetensors.numpy import save

    data = make_zip({"pets/cat/a.png": png(10), "pets/cat/b.png": png(20), "pets/cat/zeros.bin": zeros,
                     "pets/cat/zeros.png": zeros, "pets/dog/model.safetensors": save({"w": np.ones(4, np.float32)}),
                     "pets/dog/weights.pt": b"PK fake pickle", "pets/dog/fake.png": b"not a png at all",
                     "pets/dog/c.png": png(30), "pets/dog/extra.json": b"{}"})
    assert len(data) < 100_000
    ds = uploads.save_upload(data, "pets.zip")
    assert len(ds.samples) == 3 and ds.categories == ("cat", "dog")
    kept = files_on_disk(uploads)
    names = [k.split("/", 1)[1] for k in kept]
    assert sorted(names) == [".imglab.json", "pets/cat/a.png", "pets/cat/b.png", "pets/dog/c.png"], kept
    report = " | ".join(ds.report)
    for name in ("zeros.bin", "zeros.png", "model.safetensors", "weights.pt", "fake.png"):
        assert name in report, (name, report)
    assert "larger than the 1 MiB a file may be" in report
    assert str(uploads.uploads_root()) not in report  # no server paths
    again = uploads.load_upload(ds.spec["id"])  # the job rebuilds the same dataset from what was kept
    assert again.content_hash == ds.content_hash and "zeros.bin" in " ".join(again.report)
