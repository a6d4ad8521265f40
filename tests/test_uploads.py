"""Uploaded dataset archives: the four layouts, and the hostile cases of DESIGN.md 12-16."""
from __future__ import annotations

import io
import json
import stat
import zipfile

import numpy as np
import pytest

from core.data.archive import InvalidArchive
from core.errors import InvalidInput
from tests.conftest import encode


def make_zip(entries: dict[str, bytes], **zinfo) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def png(color, size=(16, 16)) -> bytes:
    return encode(np.full((*size, 3), color, np.uint8))


@pytest.fixture
def uploads(settings_env):
    from core.data import uploads as u

    return u


def tree(u):
    root = u.uploads_root()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_imagefolder_zip_reports_empty_classes_and_non_images(uploads):
    data = make_zip({"pets/cat/a.png": png(10), "pets/cat/b.png": png(20), "pets/dog/c.png": png(30),
                     "pets/dog/notes.txt": b"hello", "pets/empty/readme.md": b"x", "pets/dog/bad.png": b"not a png"})
    ds = uploads.save_upload(data, "pets.zip")
    assert ds.task == "classification" and ds.categories == ("cat", "dog")
    assert [s.target for s in ds.samples] == [0, 0, 1]
    report = " | ".join(ds.report)
    assert "'empty' has no usable images" in report and "notes.txt" in report and "bad.png" in report
    assert uploads.list_uploads()[0]["layout"] == "imagefolder"
    again = uploads.load_upload(ds.spec["id"])  # the job process rebuilds it from the id
    assert again.content_hash == ds.content_hash


def test_coco_zip_gives_boxes_and_masks(uploads):
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 16},
                       {"id": 2, "file_name": "missing.png", "width": 16, "height": 16}],
            "categories": [{"id": 7, "name": "disc"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 5, 4], "iscrowd": 0,
                             "area": 20, "segmentation": [[2, 3, 7, 3, 7, 7, 2, 7]]}]}
    ds = uploads.save_upload(make_zip({"ann.json": json.dumps(coco).encode(), "images/a.png": png(50)}), "c.zip")
    assert ds.task == "detection" and ds.categories == ("background", "disc")
    (s,) = ds.samples
    assert s.target.labels.tolist() == [1] and s.target.geoms.tolist() == [[2, 3, 7, 7]]
    assert s.masks.geoms.shape == (1, 16, 16) and 15 <= s.masks.geoms.sum() <= 30
    assert any("missing.png" in line for line in ds.report)


def test_mask_pairs_and_restoration_pairs(uploads):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 2
    mask[0, 0] = 255
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, "PNG")
    ds = uploads.save_upload(make_zip({"images/x.png": png(90), "masks/x.png": buf.getvalue(), "images/y.png": png(9),
                                       "classes.txt": b"bg\nthing\nother\n"}), "m.zip")
    assert ds.task == "segmentation" and ds.operation == "semantic" and ds.categories == ("bg", "thing", "other")
    assert len(ds.samples) == 1 and ds.samples[0].target[5, 5] == 2 and any("y.png" in r for r in ds.report)
    from tests.test_decode import png_header_only

    bomb = uploads.save_upload(make_zip({"images/z.png": png(90), "masks/z.png": png_header_only(20000, 20000),
                                         "images/x.png": png(90), "masks/x.png": buf.getvalue()}), "b.zip")
    assert [s.key for s in bomb.samples] == ["x.png"]  # the mask declaring 20000x20000 is never decoded
    assert any(r.startswith("skipped z.png") for r in bomb.report), bomb.report
    sr = uploads.save_upload(make_zip({"clean/p.png": png(100, (32, 32)), "degraded/p.png": png(100, (16, 16))}), "s.zip")
    assert sr.task == "restoration" and sr.operation == "super-resolution" and sr.scale == 2
    dn = uploads.save_upload(make_zip({"clean/p.png": png(100), "degraded/p.png": png(104)}), "d.zip", "deblur")
    assert dn.operation == "deblur" and dn.scale is None


@pytest.mark.parametrize("member", ["../../escape.png", "/abs/escape.png", "ok/../../escape.png", "C:/win.png"])
def test_traversal_and_absolute_members_are_refused_and_nothing_is_written(uploads, member, tmp_path):
    data = make_zip({"cls/a.png": png(1), member: png(2)})
    with pytest.raises(InvalidArchive, match="absolute path|leaves its folder"):
        uploads.save_upload(data, "evil.zip")
    assert tree(uploads) == [] and not (tmp_path / "escape.png").exists() and not (tmp_path.parent / "escape.png").exists()


def test_symlink_member_is_refused(uploads):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("cls/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(InvalidArchive, match="symbolic link"):
        uploads.save_upload(buf.getvalue(), "link.zip")
    assert tree(uploads) == []


def test_zip_bomb_is_stopped_at_the_byte_cap_and_the_partial_folder_removed(uploads, settings_env):
    settings_env(IMGLAB_MAX_EXTRACT_MB=1)
    bomb = make_zip({"cls/zeros.png": b"\0" * (8 * 1024 * 1024)})  # 8 MiB of zeros compress to ~8 KiB
    assert len(bomb) < 100_000
    with pytest.raises(InvalidArchive, match="expands beyond 1 MiB"):
        uploads.save_upload(bomb, "bomb.zip")
    assert tree(uploads) == []


def test_too_many_entries_not_a_zip_encrypted_and_oversize(uploads, settings_env):
    settings_env(IMGLAB_MAX_ARCHIVE_ENTRIES=50)
    with pytest.raises(InvalidArchive, match="51 entries"):
        uploads.save_upload(make_zip({f"c/{i}.png": b"" for i in range(51)}), "many.zip")
    with pytest.raises(InvalidArchive, match="not a readable zip"):
        uploads.save_upload(b"PK\x03\x04 definitely not a zip", "fake.zip")
    encrypted = bytearray(make_zip({"c/a.png": png(1)}))
    # set the "encrypted" flag bit in the central directory entry (what zipfile reads)
    cd = encrypted.rfind(b"PK\x01\x02")
    encrypted[cd + 8] |= 0x1
    with pytest.raises(InvalidArchive, match="encrypted"):
        uploads.save_upload(bytes(encrypted), "enc.zip")
    settings_env(IMGLAB_MAX_DATASET_MB=1)
    with pytest.raises(InvalidArchive, match="limit is 1 MiB"):
        uploads.save_upload(b"\0" * (2 * 1024 * 1024), "huge.zip")
    assert tree(uploads) == []


def test_archive_without_usable_images_is_reported(uploads):
    with pytest.raises(InvalidInput, match="no usable images"):
        uploads.save_upload(make_zip({"a/x.txt": b"text", "b/y.png": b"garbage"}), "junk.zip")
    with pytest.raises(InvalidInput, match="one folder per class"):
        uploads.save_upload(make_zip({"loose.png": png(3)}), "flat.zip")
    assert tree(uploads) == []


def test_unknown_upload_ids_are_refused_without_reading_files(uploads):
    for bad in ("../../etc", "0123", "../" * 5, "zzzzzzzzzzzzzzzz"):
        with pytest.raises(InvalidInput, match="Unknown uploaded dataset id"):
            uploads.load_upload(bad)


def test_listing_uploads_reads_manifests_only(uploads, monkeypatch):
    from core.services import uploaded

    uploads.save_upload(make_zip({"a/x.png": png(1), "b/y.png": png(2)}), "two.zip")
    monkeypatch.setattr(uploads, "load_upload", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    [summary] = uploaded("classification")
    assert summary.items == 2 and summary.categories == ("a", "b") and summary.label.startswith("two.zip (2 images")
    assert uploaded("restoration") == []
