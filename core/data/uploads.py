"""Uploaded datasets: a zip in one of four layouts, extracted safely, parsed with a report of what was skipped.

    classification   ImageFolder: <class>/<image>            (one optional wrapping folder)
    detection /      images + one COCO json (boxes; polygons or RLE masks give instance segmentation)
    instance seg.
    semantic seg.    images/<stem>.png + masks/<stem>.png (pixel value = class id, 255 = ignore)
                     and optionally classes.txt (one name per line)
    restoration      clean/<stem>.* + degraded/<stem>.* (a smaller degraded image means super-resolution)

Every image goes through core.data.decode (format allowlist, pixel cap, longest side); a bad file is reported
and skipped. Each parser reads headers first: the dataset's image count and total pixels (and a COCO set's
masks, checked against their image's size) are within budget before any pixel is decoded. Only accepted
files are extracted, and after the first parse every file it did not use is deleted.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from core.config import get_settings
from core.data import coco as coco_json
from core.data.archive import InvalidArchive, extract_zip
from core.data.datasets import Dataset, Sample, register_upload_loader
from core.data.decode import UPLOAD_EXTENSIONS, PixelBudget, decode_image, probe_image, safe_name
from core.errors import InvalidImage, InvalidInput
from core.annotations import ImageTruth

MANIFEST = ".imglab.json"
LAYOUTS = ("imagefolder", "coco", "masks", "pairs")
OPERATIONS = ("denoise", "deblur", "super-resolution")
SAME_SIZE_OPERATIONS = ("denoise", "deblur")  # an upload names one of these; a smaller degraded image is super-resolution
_ID = re.compile(r"^[0-9a-f]{16}$")


def uploads_root() -> Path:
    return get_settings().data_dir / "datasets"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in UPLOAD_EXTENSIONS)


def _unwrap(root: Path) -> Path:
    """Zips made by right-clicking a folder hold that folder; look inside it."""
    entries = [p for p in root.iterdir() if p.name not in (MANIFEST, "__MACOSX") and not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else root


def detect_layout(root: Path) -> str:
    names = {p.name.lower() for p in root.iterdir()}
    if any(n.endswith(".json") for n in names if n != MANIFEST):
        return "coco"
    if {"images", "masks"} <= names:
        return "masks"
    if {"clean", "degraded"} <= names:
        return "pairs"
    return "imagefolder"


def _accept(rel: PurePosixPath) -> int | None:
    """A member's byte cap, or None: only images and annotations are ever extracted (no weights, no junk)."""
    settings = get_settings()
    if rel.parts[0] == "__MACOSX" or rel.name.startswith("."):
        return None
    if rel.suffix.lower().lstrip(".") in UPLOAD_EXTENSIONS:
        return settings.max_upload_bytes
    if rel.suffix.lower() == ".json" or rel.name.lower() == "classes.txt":
        return settings.max_annotation_bytes
    return None


def upload_id(data: bytes, owner: str | None) -> str:
    """Per owner: the same archive uploaded by two people is two datasets, so neither can relabel or delete
    the other's by uploading it again."""
    return hashlib.sha256((owner or "").encode() + b"\0" + data).hexdigest()[:16]


def save_upload(data: bytes, filename: str, operation: str | None = None, owner: str | None = None,
                room_bytes: int | None = None) -> Dataset:
    """Extract, detect the layout, parse once to validate; returns the dataset (spec {"name": "upload", ...}).
    `room_bytes`: what the owner may still store; the archive is refused when it (or what it expands to) is more."""
    if operation is not None and operation not in OPERATIONS:
        raise InvalidInput(f"Unknown restoration operation {operation!r}.")
    digest = upload_id(data, owner)
    existing = folder_bytes(uploads_root() / digest)  # uploading the same archive again replaces it
    if room_bytes is not None and len(data) > room_bytes + existing:
        raise InvalidInput(_over_quota(room_bytes + existing))
    root, left_out = extract_zip(data, uploads_root(), digest, _accept)
    if not left_out and (root / MANIFEST).is_file():  # the same archive again: keep what its first upload left out
        left_out = list(json.loads((root / MANIFEST).read_text()).get("skipped", []))
    inner = _unwrap(root)
    manifest: dict[str, object] = {
        "title": safe_name(filename), "layout": detect_layout(inner), "operation": operation,
        "inner": str(inner.relative_to(root)), "skipped": left_out[:50], "owner": owner}
    (root / MANIFEST).write_text(json.dumps(manifest))
    used: set[Path] = set()
    try:
        ds = _load(digest, used)
    except Exception:
        shutil.rmtree(root, ignore_errors=True)  # an archive we cannot use is not kept
        raise
    _prune(root, used)
    stored = folder_bytes(root)
    if room_bytes is not None and stored > room_bytes + existing:
        shutil.rmtree(root, ignore_errors=True)
        raise InvalidInput(_over_quota(room_bytes + existing, stored))
    # what listings show, so pages never decode a whole dataset to draw a select box
    manifest.update(task=ds.task, operation=ds.operation, items=len(ds.samples), categories=list(ds.categories or ()),
                    bytes=stored,
                    has_masks=any(s.masks is not None for s in ds.samples[:1]), report=list(ds.report[:50]))
    (root / MANIFEST).write_text(json.dumps(manifest))
    return ds


def _over_quota(room: int, stored: int | None = None) -> str:
    what = f"expands to {stored / 2**20:.0f} MB" if stored is not None else "is larger than that"
    return (f"You have {max(room, 0) / 2**20:.0f} MB of dataset storage left and this archive {what}. Delete one "
            "of your uploaded datasets first (Benchmark page, Your uploaded datasets).")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def owner_bytes(owner: str) -> int:
    """Disk used by the owner's uploaded datasets (as recorded when each was stored; walked when not)."""
    return sum(int(e["bytes"]) if isinstance(e.get("bytes"), int) else folder_bytes(uploads_root() / e["id"])
               for e in list_uploads() if e.get("owner") == owner)


def _folder(upload_id: str) -> Path:
    if not isinstance(upload_id, str) or not _ID.match(upload_id):
        raise InvalidInput("Unknown uploaded dataset id.")
    root = uploads_root() / upload_id
    if not (root / MANIFEST).is_file():
        raise InvalidInput("That uploaded dataset does not exist (any more).")
    return root


def manifest_of(upload_id: str) -> dict:
    return json.loads((_folder(upload_id) / MANIFEST).read_text())


def delete_upload(upload_id: str) -> None:
    shutil.rmtree(_folder(upload_id))


def rename_upload(upload_id: str, title: str) -> None:
    root = _folder(upload_id)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["title"] = safe_name(title)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest))
    tmp.replace(root / MANIFEST)


def _prune(root: Path, used: set[Path]) -> None:
    """Delete every file the parse did not use (undecodable 'images', stray json): nothing else stays on disk."""
    for path in list(root.rglob("*")):
        if path.is_file() and path.name != MANIFEST and path.resolve() not in used:
            path.unlink()


def list_uploads() -> list[dict]:
    root = uploads_root()
    out = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            manifest = folder / MANIFEST
            if _ID.match(folder.name) and manifest.is_file():
                out.append({"id": folder.name, **json.loads(manifest.read_text())})
    return out


def load_upload(upload_id: str) -> Dataset:
    return _load(upload_id, set())


register_upload_loader(load_upload)


def _load(upload_id: str, used: set[Path]) -> Dataset:
    if not isinstance(upload_id, str) or not _ID.match(upload_id):
        raise InvalidInput("Unknown uploaded dataset id.")
    root = uploads_root() / upload_id
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise InvalidInput(f"Uploaded dataset {upload_id} was not found; upload it again.")
    manifest = json.loads(manifest_path.read_text())
    inner = (root / manifest.get("inner", ".")).resolve()
    if not inner.is_relative_to(root.resolve()):
        raise InvalidInput("The dataset manifest is corrupt.")
    parser = {"imagefolder": _imagefolder, "coco": _coco, "masks": _masks, "pairs": _pairs}[manifest["layout"]]
    reader = _Reader(inner, list(manifest.get("skipped", [])), used)
    ds = parser(inner, manifest, reader)
    report = reader.report
    if not ds["samples"]:
        raise InvalidInput("The uploaded dataset holds no usable images. " + " ".join(report[:5]))
    spec = {"name": "upload", "id": upload_id}
    return Dataset(spec, manifest["title"], ds["task"], "upload", ds["samples"], ds.get("categories"),
                   operation=ds.get("operation"), scale=ds.get("scale"), meta={"layout": manifest["layout"]},
                   report=tuple(report))


class _Reader:
    """One parse: its report, the files it used, and the dataset's budget, counted from headers (probe) before
    any image is decoded (decode)."""

    def __init__(self, root: Path, report: list[str], used: set[Path]):
        settings = get_settings()
        self.root, self.report, self.used = root, report, used
        self.budget = PixelBudget("one dataset", settings.max_dataset_images, settings.max_dataset_pixels,
                                  "Upload fewer or smaller images, or split the dataset.")

    def use(self, path: Path) -> None:
        self.used.add(path.resolve())

    def probe(self, path: Path) -> tuple[int, int] | None:
        try:
            return probe_image(path.read_bytes(), path.name)
        except InvalidImage as exc:
            self.report.append(f"skipped {path.relative_to(self.root)}: {exc}")
            return None

    def count(self, path: Path) -> tuple[int, int] | None:
        """probe, then add to the budget (which refuses the dataset when over)."""
        size = self.probe(path)
        if size is not None:
            self.budget.add(*size)
        return size

    def decode(self, path: Path) -> np.ndarray | None:
        try:
            pixels = decode_image(path.read_bytes(), path.name).pixels
        except InvalidImage as exc:
            self.report.append(f"skipped {path.relative_to(self.root)}: {exc}")
            return None
        self.use(path)
        return pixels


def _imagefolder(root: Path, manifest: dict, reader: _Reader) -> dict:
    report = reader.report
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    if not classes:
        raise InvalidArchive("An ImageFolder zip needs one folder per class, each holding that class's images.")
    for stray in (p for p in root.iterdir() if p.is_file() and p.name != MANIFEST):
        report.append(f"ignored {stray.name}: not inside a class folder")
    files = {name: _images_in(root / name) for name in classes}
    reader.budget.count(sum(len(f) for f in files.values()))
    for name in classes:  # headers first: the whole dataset is within budget before anything is decoded
        files[name] = [p for p in files[name] if reader.count(p)]
    samples: list[Sample] = []
    kept: list[str] = []
    for name in classes:
        count = 0
        for path in files[name]:
            pixels = reader.decode(path)
            if pixels is not None:
                count += 1
                samples.append(Sample(str(path.relative_to(root)), pixels, len(kept)))
        if count == 0:
            report.append(f"class {safe_name(name)!r} has no usable images and was left out")
            continue
        kept.append(safe_name(name))
    return {"task": "classification", "samples": samples, "categories": tuple(kept)}


def _coco(root: Path, manifest: dict, reader: _Reader) -> dict:
    report = reader.report
    jsons = [p for p in root.iterdir() if p.suffix.lower() == ".json" and p.name != MANIFEST]
    if len(jsons) != 1:
        raise InvalidArchive(f"A COCO dataset needs exactly one .json file at its top level, found {len(jsons)}.")
    try:
        coco = json.loads(jsons[0].read_text())
        images, anns = list(coco["images"]), list(coco.get("annotations", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArchive(f"{jsons[0].name} is not COCO json ({type(exc).__name__}).") from None
    reader.use(jsons[0])
    index, names = coco_json.categories(coco)
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        if isinstance(a, dict) and isinstance(a.get("image_id"), (int, str)):
            by_image.setdefault(a["image_id"], []).append(a)
    has_masks = any("segmentation" in a for a in anns if isinstance(a, dict))
    reader.budget.count(len(images))
    plan, mask_pixels, mask_cap = [], 0, get_settings().max_mask_pixels
    for img in images:  # headers and annotations first: refused before any image or mask is decoded
        rel = Path(str(img.get("file_name", ""))) if isinstance(img, dict) else Path("")
        candidates = [root / rel, root / "images" / rel.name, root / rel.name]
        path = next((c for c in candidates if str(rel) not in ("", ".") and c.is_file()
                     and c.resolve().is_relative_to(root.resolve())), None)
        if path is None:
            report.append(f"skipped {safe_name(str(rel))}: file not in the archive")
            continue
        size = reader.probe(path)
        if size is None:
            continue
        w, h = size
        declared = (img.get("width"), img.get("height"))
        if all(isinstance(v, int) for v in declared) and declared != size:  # its boxes and masks are in other units
            report.append(f"skipped {path.name}: the json says {declared[0]}x{declared[1]}, the file is {w}x{h}")
            continue
        reader.budget.add(w, h)
        own = by_image.get(img["id"], []) if isinstance(img.get("id"), (int, str)) else []
        checked = [_annotation(a, i, path.name, w, h, index, has_masks) for i, a in enumerate(own)]
        mask_pixels += len(checked) * w * h if has_masks else 0
        if mask_pixels > mask_cap:
            raise InvalidArchive(f"The dataset's instance masks add up to more than {mask_cap / 1e6:.0f} megapixels "
                                 "(one image size per mask). Upload fewer or smaller images.")
        plan.append((path, checked))
    samples = []
    for path, checked in plan:
        pixels = reader.decode(path)
        if pixels is None:
            continue
        h, w = pixels.shape[:2]
        labels = np.array([c[0] for c in checked], np.int64)
        flags = np.array([c[2] for c in checked], bool)
        areas = np.array([c[5] for c in checked], np.float64)  # COCO's `area` (AP by object size), NaN: none given
        boxes = np.array([c[1] for c in checked], np.float64).reshape(-1, 4)
        mask_truth = None
        if has_masks:
            masks = [coco_json.decode_mask(c[3], h, w, c[4]) for c in checked]
            mask_truth = ImageTruth(labels, np.array(masks, bool).reshape(-1, h, w), flags, areas)
        samples.append(Sample(str(path.relative_to(root)), pixels, ImageTruth(labels, boxes, flags, areas), mask_truth))
    return {"task": "detection", "samples": samples, "categories": names}


def _annotation(a, i: int, image: str, w: int, h: int, index: dict[int, int], has_masks: bool) -> tuple:
    """(label, xyxy box, crowd, segmentation, name, COCO area or NaN) of one annotation, checked against its image's size; a bad
    box, category or mask refuses the dataset (it would be scored wrongly), naming the annotation."""
    what = f"Annotation {a.get('id', i + 1)!s:.20} of {safe_name(image)}"
    try:
        label = index[int(a["category_id"])]
    except (KeyError, TypeError, ValueError):
        raise InvalidArchive(f"{what} has category_id {str(a.get('category_id'))[:20]!r}, which is not in the "
                             "json's categories. Fix the COCO json and upload again.") from None
    try:
        box = coco_json.xyxy(a.get("bbox"), w, h, f"{what}: its bbox")
        if has_masks:
            coco_json.check_mask(a.get("segmentation"), h, w, f"{what}: its mask")
    except InvalidInput as exc:
        raise InvalidArchive(f"{exc} Fix the COCO json and upload again.") from None
    area = a.get("area")
    area = float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) and math.isfinite(area) else math.nan
    return label, box, bool(a.get("iscrowd", 0)), a.get("segmentation"), what, area


def _masks(root: Path, manifest: dict, reader: _Reader) -> dict:
    report = reader.report
    masks = {p.stem: p for p in _images_in(root / "masks")}
    images = _images_in(root / "images")
    reader.budget.count(len(images))
    plan = []
    for path in images:
        mpath = masks.get(path.stem)
        if mpath is None:
            report.append(f"skipped {path.name}: no mask named {path.stem}.png")
            continue
        size = reader.probe(path)
        if size is None:
            continue
        try:
            with Image.open(mpath, formats=("PNG", "BMP")) as m:
                msize = m.size
        except Exception as exc:
            report.append(f"skipped {mpath.name}: unreadable mask ({type(exc).__name__})")
            continue
        if msize != size:  # checked before any mask pixel is decoded
            report.append(f"skipped {path.name}: mask {msize} differs from image {size}")
            continue
        reader.budget.add(*size)
        plan.append((path, mpath))
    samples, max_id = [], 0
    for path, mpath in plan:
        pixels = reader.decode(path)
        if pixels is None:
            continue
        try:
            with Image.open(mpath, formats=("PNG", "BMP")) as m:
                mask = np.asarray(m if m.mode in ("L", "P") else m.convert("L")).astype(np.uint8)
        except Exception as exc:
            report.append(f"skipped {mpath.name}: unreadable mask ({type(exc).__name__})")
            continue
        if mask.shape != pixels.shape[:2]:  # EXIF turned the image: the mask no longer lines up
            report.append(f"skipped {path.name}: mask {mask.shape[::-1]} differs from image {pixels.shape[1::-1]}")
            continue
        reader.use(mpath)
        max_id = max(max_id, int(mask[mask != 255].max(initial=0)))
        samples.append(Sample(path.name, pixels, mask))
    names_file = root / "classes.txt"
    if names_file.is_file():
        reader.use(names_file)
        names = tuple(safe_name(line.strip()) for line in names_file.read_text().splitlines() if line.strip())
        if len(names) <= max_id:
            raise InvalidArchive(f"classes.txt names {len(names)} classes but the masks use class id {max_id}.")
    else:
        names = tuple(f"class {i}" for i in range(max_id + 1))
    return {"task": "segmentation", "operation": "semantic", "samples": samples, "categories": names}


def _pairs(root: Path, manifest: dict, reader: _Reader) -> dict:
    report = reader.report
    clean = {p.stem: p for p in _images_in(root / "clean")}
    degraded = _images_in(root / "degraded")
    reader.budget.count(2 * len(degraded))
    plan, scales = [], set()
    for path in degraded:  # sizes and scale factors from the headers, both images counted in the budget
        ref = clean.get(path.stem)
        if ref is None:
            report.append(f"skipped degraded/{path.name}: no clean image with the same name")
            continue
        low, high = reader.probe(path), reader.probe(ref)
        if low is None or high is None:
            continue
        ratio = high[1] / low[1]
        if low == high:
            scale = 1
        elif ratio in (2, 3, 4) and high[0] == low[0] * ratio:
            scale = int(ratio)
        else:
            report.append(f"skipped {path.name}: degraded {low} vs clean {high} is not 1x, 2x, 3x or 4x")
            continue
        reader.budget.add(*low)
        reader.budget.add(*high)
        plan.append((path, ref, scale))
    samples = []
    for path, ref, scale in plan:
        low_px, high_px = reader.decode(path), reader.decode(ref)
        if low_px is None or high_px is None:
            continue
        if high_px.shape[:2] != (low_px.shape[0] * scale, low_px.shape[1] * scale):  # EXIF turned one of them
            report.append(f"skipped {path.name}: degraded {low_px.shape[1::-1]} vs clean {high_px.shape[1::-1]} do not line up")
            continue
        scales.add(scale)
        samples.append(Sample(path.name, low_px, high_px))
    if len(scales) > 1:
        raise InvalidArchive(f"The pairs mix scale factors {sorted(scales)}; upload one factor per dataset.")
    scale = scales.pop() if scales else 1
    operation = "super-resolution" if scale > 1 else (manifest.get("operation") or "denoise")
    if operation == "super-resolution" and scale == 1:
        raise InvalidArchive("Super-resolution pairs need degraded images smaller than the clean ones.")
    return {"task": "restoration", "operation": operation, "scale": scale if scale > 1 else None, "samples": samples}
