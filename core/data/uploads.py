"""Uploaded datasets: a zip in one of four layouts, extracted safely, parsed with a report of what was skipped.

    classification   ImageFolder: <class>/<image>            (one optional wrapping folder)
    detection /      images + one COCO json (boxes; polygons or RLE masks give instance segmentation)
    instance seg.
    semantic seg.    images/<stem>.png + masks/<stem>.png (pixel value = class id, 255 = ignore)
                     and optionally classes.txt (one name per line)
    restoration      clean/<stem>.* + degraded/<stem>.* (a smaller degraded image means super-resolution)

Every image goes through core.data.decode (format allowlist, pixel cap); a bad file is reported and skipped.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from core.config import get_settings
from core.data import coco as coco_json
from core.data.archive import InvalidArchive, extract_zip
from core.data.datasets import Dataset, Sample
from core.data.decode import UPLOAD_EXTENSIONS, decode_image, safe_name
from core.errors import InvalidImage, InvalidInput
from core.metrics.detection import ImageTruth

MANIFEST = ".imglab.json"
LAYOUTS = ("imagefolder", "coco", "masks", "pairs")
OPERATIONS = ("denoise", "deblur", "super-resolution")
_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_ITEMS = 5000


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


def save_upload(data: bytes, filename: str, operation: str | None = None) -> Dataset:
    """Extract, detect the layout, parse once to validate; returns the dataset (spec {"name": "upload", ...})."""
    if operation is not None and operation not in OPERATIONS:
        raise InvalidInput(f"Unknown restoration operation {operation!r}.")
    digest = hashlib.sha256(data).hexdigest()[:16]
    root = extract_zip(data, uploads_root(), digest)
    inner = _unwrap(root)
    manifest = {"title": safe_name(filename), "layout": detect_layout(inner), "operation": operation,
                "inner": str(inner.relative_to(root))}
    (root / MANIFEST).write_text(json.dumps(manifest))
    try:
        ds = load_upload(digest)
    except Exception:
        shutil.rmtree(root, ignore_errors=True)  # an archive we cannot use is not kept
        raise
    # what listings show, so pages never decode a whole dataset to draw a select box
    manifest.update(task=ds.task, operation=ds.operation, items=len(ds.samples), categories=list(ds.categories or ()),
                    has_masks=any(s.masks is not None for s in ds.samples[:1]), report=list(ds.report[:50]))
    (root / MANIFEST).write_text(json.dumps(manifest))
    return ds


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
    report: list[str] = []
    ds = parser(inner, manifest, report)
    if not ds["samples"]:
        raise InvalidInput("The uploaded dataset holds no usable images. " + " ".join(report[:5]))
    spec = {"name": "upload", "id": upload_id}
    return Dataset(spec, manifest["title"], ds["task"], "upload", ds["samples"], ds.get("categories"),
                   operation=ds.get("operation"), scale=ds.get("scale"), meta={"layout": manifest["layout"]},
                   report=tuple(report))


def _decode(path: Path, root: Path, report: list[str]) -> np.ndarray | None:
    try:
        return decode_image(path.read_bytes(), path.name).pixels
    except InvalidImage as exc:
        report.append(f"skipped {path.relative_to(root)}: {exc}")
        return None


def _imagefolder(root: Path, manifest: dict, report: list[str]) -> dict:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    if not classes:
        raise InvalidArchive("An ImageFolder zip needs one folder per class, each holding that class's images.")
    for stray in (p for p in root.iterdir() if p.is_file() and p.name != MANIFEST):
        report.append(f"ignored {stray.name}: not inside a class folder")
    samples, kept = [], []
    for name in classes:
        files = _images_in(root / name)
        others = [p for p in (root / name).rglob("*") if p.is_file() and p not in files]
        report += [f"skipped {p.relative_to(root)}: not an accepted image type" for p in others[:20]]
        count = 0
        for path in files[: MAX_ITEMS - len(samples)]:
            pixels = _decode(path, root, report)
            if pixels is not None:
                count += 1
                samples.append(Sample(str(path.relative_to(root)), pixels, len(kept)))
        if count == 0:
            report.append(f"class {safe_name(name)!r} has no usable images and was left out")
            continue
        kept.append(safe_name(name))
    return {"task": "classification", "samples": samples, "categories": tuple(kept)}


def _coco(root: Path, manifest: dict, report: list[str]) -> dict:
    jsons = [p for p in root.iterdir() if p.suffix.lower() == ".json" and p.name != MANIFEST]
    if len(jsons) != 1:
        raise InvalidArchive(f"A COCO dataset needs exactly one .json file at its top level, found {len(jsons)}.")
    try:
        coco = json.loads(jsons[0].read_text())
        images, anns = list(coco["images"]), list(coco.get("annotations", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArchive(f"{jsons[0].name} is not COCO json ({type(exc).__name__}).") from None
    index, names = coco_json.categories(coco)
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        if isinstance(a, dict) and "image_id" in a:
            by_image.setdefault(a["image_id"], []).append(a)
    has_masks = any("segmentation" in a for a in anns if isinstance(a, dict))
    samples = []
    for img in images[:MAX_ITEMS]:
        rel = Path(str(img.get("file_name", ""))) if isinstance(img, dict) else Path("")
        candidates = [root / rel, root / "images" / rel.name, root / rel.name]
        path = next((c for c in candidates if str(rel) not in ("", ".") and c.is_file()
                     and c.resolve().is_relative_to(root.resolve())), None)
        if path is None:
            report.append(f"skipped {safe_name(str(rel))}: file not in the archive")
            continue
        pixels = _decode(path, root, report)
        if pixels is None:
            continue
        h, w = pixels.shape[:2]
        labels, boxes, masks, crowd = [], [], [], []
        for a in by_image.get(img.get("id"), []):
            try:
                box, label = coco_json.xyxy(a["bbox"]), index[int(a["category_id"])]
            except (KeyError, TypeError, ValueError):
                report.append(f"skipped an annotation of {path.name} without a valid bbox or category")
                continue
            if has_masks:
                try:
                    masks.append(coco_json.decode_mask(a.get("segmentation"), h, w))
                except Exception:
                    report.append(f"skipped an annotation of {path.name}: its mask could not be read")
                    continue
            labels.append(label)
            boxes.append(box)
            crowd.append(bool(a.get("iscrowd", 0)))
        lab, flags = np.array(labels, np.int64), np.array(crowd, bool)
        mask_truth = ImageTruth(lab, np.array(masks, bool).reshape(-1, h, w), flags) if has_masks else None
        samples.append(Sample(str(path.relative_to(root)), pixels,
                              ImageTruth(lab, np.array(boxes, np.float64).reshape(-1, 4), flags), mask_truth))
    return {"task": "detection", "samples": samples, "categories": names}


def _masks(root: Path, manifest: dict, report: list[str]) -> dict:
    masks = {p.stem: p for p in _images_in(root / "masks")}
    samples, max_id = [], 0
    for path in _images_in(root / "images")[:MAX_ITEMS]:
        mpath = masks.get(path.stem)
        if mpath is None:
            report.append(f"skipped {path.name}: no mask named {path.stem}.png")
            continue
        pixels = _decode(path, root, report)
        if pixels is None:
            continue
        try:
            with Image.open(mpath, formats=("PNG", "BMP")) as m:
                if m.size != (pixels.shape[1], pixels.shape[0]):  # checked before any mask pixel is decoded
                    report.append(f"skipped {path.name}: mask {m.size} differs from image {pixels.shape[1::-1]}")
                    continue
                mask = np.asarray(m if m.mode in ("L", "P") else m.convert("L")).astype(np.uint8)
        except Exception as exc:
            report.append(f"skipped {mpath.name}: unreadable mask ({type(exc).__name__})")
            continue
        max_id = max(max_id, int(mask[mask != 255].max(initial=0)))
        samples.append(Sample(path.name, pixels, mask))
    names_file = root / "classes.txt"
    if names_file.is_file():
        names = tuple(safe_name(line.strip()) for line in names_file.read_text().splitlines() if line.strip())
        if len(names) <= max_id:
            raise InvalidArchive(f"classes.txt names {len(names)} classes but the masks use class id {max_id}.")
    else:
        names = tuple(f"class {i}" for i in range(max_id + 1))
    return {"task": "segmentation", "operation": "semantic", "samples": samples, "categories": names}


def _pairs(root: Path, manifest: dict, report: list[str]) -> dict:
    clean = {p.stem: p for p in _images_in(root / "clean")}
    samples, scales = [], set()
    for path in _images_in(root / "degraded")[:MAX_ITEMS]:
        ref = clean.get(path.stem)
        if ref is None:
            report.append(f"skipped degraded/{path.name}: no clean image with the same name")
            continue
        low, high = _decode(path, root, report), _decode(ref, root, report)
        if low is None or high is None:
            continue
        ratio = high.shape[0] / low.shape[0]
        if low.shape == high.shape:
            scales.add(1)
        elif ratio in (2, 3, 4) and high.shape[1] == low.shape[1] * ratio:
            scales.add(int(ratio))
        else:
            report.append(f"skipped {path.name}: degraded {low.shape[1::-1]} vs clean {high.shape[1::-1]} is not 1x, 2x, 3x or 4x")
            continue
        samples.append(Sample(path.name, low, high))
    if len(scales) > 1:
        raise InvalidArchive(f"The pairs mix scale factors {sorted(scales)}; upload one factor per dataset.")
    scale = scales.pop() if scales else 1
    operation = "super-resolution" if scale > 1 else (manifest.get("operation") or "denoise")
    if operation == "super-resolution" and scale == 1:
        raise InvalidArchive("Super-resolution pairs need degraded images smaller than the clean ones.")
    return {"task": "restoration", "operation": operation, "scale": scale if scale > 1 else None, "samples": samples}
