"""Benchmark datasets: builtin real images, deterministic synthetic sets with exact ground truth, uploads.

A dataset is named by a small JSON-able spec (so a background job can rebuild it from its parameters):
    {"name": "digits"}                                   sklearn digits, held-out 20%
    {"name": "shapes-detect", "count": 64, "seed": 0}    synthetic shapes with boxes
    {"name": "photos-denoise", "sigma": 25, "seed": 0}   skimage photos + known noise
    {"name": "upload", "id": "<folder>"}                 an uploaded archive (core.data.uploads)
Samples are (key, image, target); the target's type depends on the task (see Sample).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable

import numpy as np
from PIL import Image

from core.data import corruptions
from core.data.builtin import APPLICATIONS, BUILTIN_IMAGES, load_builtin
from core.data.degrade import add_gaussian_noise, crop_to_multiple, downscale_bicubic, gaussian_blur, limit_side
from core.data.synthetic import SHAPE_NAMES, scene
from core.errors import InvalidInput
from core.annotations import ImageTruth
from core.annotations import DIGITS_CATEGORIES, SHAPES_CATEGORIES


@dataclass(frozen=True)
class Sample:
    """target: classification int class id | detection ImageTruth of xyxy boxes | semantic HxW uint8 mask |
    restoration clean HxWx3 uint8 image | generation None (the image itself is the reference).
    masks: instance masks (ImageTruth of N x H x W booleans) where the dataset has them."""

    key: str
    image: np.ndarray
    target: Any = None
    masks: ImageTruth | None = None


@dataclass(frozen=True)
class Dataset:
    spec: dict
    title: str
    task: str
    kind: str  # builtin | synthetic | upload
    samples: list[Sample]
    categories: tuple[str, ...] | None = None
    operation: str | None = None  # restoration: denoise | deblur | super-resolution; segmentation: semantic | instance
    scale: int | None = None
    meta: dict = field(default_factory=dict)
    report: tuple[str, ...] = ()  # what was skipped while reading it (uploads)

    def __post_init__(self) -> None:
        """Builtin and synthetic sets are titled from their spec and size, so a subset names its own size."""
        if self.kind != "upload" and self.spec.get("name") in _BUILDERS:
            object.__setattr__(self, "title", describe(self.spec, len(self.samples)))

    @property
    def name(self) -> str:
        """The store's dataset name: the spec, canonical."""
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.spec.items()) if k != "name")
        return f"{self.spec['name']}({extra})" if extra else self.spec["name"]

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode())
        for s in self.samples:
            h.update(s.key.encode())
            h.update(np.ascontiguousarray(s.image).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    task: str
    operation: str | None
    description: str
    params: dict  # parameter -> default
    corruptible: bool = False  # images may be corrupted ({"corruption", "severity"}) with the targets unchanged


_BUILDERS: dict[str, tuple[DatasetInfo, Callable[..., Dataset]]] = {}
_UPLOADS: list[Callable[[str], Dataset]] = []  # core.data.uploads registers its loader (core/data/__init__.py)


def register_upload_loader(load: Callable[[str], Dataset]) -> None:
    """How {"name": "upload", "id": ...} specs are read: uploads build Dataset objects, so they import this
    module, never the other way round."""
    _UPLOADS[:] = [load]


def _register(name, title, task, description, operation=None, corruptible=False, **params):
    def wrap(fn):
        _BUILDERS[name] = (DatasetInfo(name, title, task, operation, description, params, corruptible), fn)
        return fn
    return wrap


def list_datasets(task: str | None = None) -> list[DatasetInfo]:
    return [info for info, _ in _BUILDERS.values() if task is None or info.task == task]


def spec_from_name(name: str) -> dict | None:
    """The spec behind a store name such as 'photos-denoise(limit=10,sigma=25.0)' (values as text), or None."""
    m = re.fullmatch(r"([\w-]+)(?:\((.*)\))?", str(name or ""))
    if m is None or m.group(1) not in _BUILDERS:
        return None
    pairs = [p.split("=", 1) for p in (m.group(2) or "").split(",") if p]
    if any(len(p) != 2 for p in pairs):
        return None
    return {"name": m.group(1), **dict(pairs)}


def number_text(value: Any) -> str:
    """25.0 -> '25', '0.50' -> '0.5'; anything that is not a number as it is."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def degradation_words(kind: str, params: dict) -> str | None:
    """'noise σ 25', 'blur σ 2 + noise σ 1', 'bicubic downscale ×2'; None for an unknown kind or missing values.
    Used for the builtin sets' titles and for Playground inputs (whose params come back as strings)."""
    try:
        if kind == "gaussian_noise":
            return f"noise σ {number_text(params['sigma'])}"
        if kind == "gaussian_blur":
            noise = params.get("noise_sigma", 0)
            return f"blur σ {number_text(params['blur_sigma'])}" + (
                f" + noise σ {number_text(noise)}" if float(noise) else "")
        if kind == "bicubic_downscale":
            return f"bicubic downscale ×{number_text(params['scale'])}"
    except (KeyError, TypeError, ValueError):
        return None
    return None


_PHOTOS = {"skimage": ("skimage photos", len(BUILTIN_IMAGES)), "sklearn": ("sklearn photos", 2),
           "applications": ("application photos (medical, microscopy, astronomy)", len(APPLICATIONS))}
_SHAPES = {"shapes-classify": "synthetic shapes, one per image", "shapes-detect": "synthetic shapes with boxes",
           "shapes-semantic": "synthetic shapes with class masks", "shapes-instance": "synthetic shapes with instance masks",
           "shapes-real": "synthetic shapes (reference for generators)"}


def describe(spec: dict, count: int | None = None) -> str:
    """A builtin or synthetic dataset in words, e.g. 'skimage photos, noise σ 25, 10 images, long side 256 px'.
    `count` is the number of images when known; otherwise it follows from the spec."""
    name = spec.get("name")
    if name not in _BUILDERS:
        return str(name)
    defaults = _BUILDERS[name][0].params
    value = {**defaults, **{k: v for k, v in spec.items() if k != "name"}}
    limits = [int(float(value[k])) for k in ("limit", "first", "count") if k in value]
    if name.startswith("photos-") and name != "photos-classify":
        what, pool = _PHOTOS.get(str(value["photos"]), (f"{value['photos']} photos", 10))
        limits.append(pool)
        kind = {"photos-denoise": "gaussian_noise", "photos-deblur": "gaussian_blur", "photos-sr": "bicubic_downscale"}[name]
        words = degradation_words(kind, value) or kind
        parts = [what, words]
    elif name == "photos-classify":
        parts = [f"photos with ImageNet labels ({len(LABELLED_PHOTOS)} photos x {value['views']} views)"]
    elif name == "digits":
        parts = ["sklearn digits, test split"]
    elif name == "digits-real":
        parts = ["sklearn digits (reference for generators)"]
    else:
        parts = [_SHAPES.get(name, name)]
    n = count if count is not None else (min(limits) if limits else None)
    if n is not None:
        parts.append(f"{n} image" + ("s" if n != 1 else ""))
    if "max_side" in value:
        parts.append(f"long side {value['max_side']} px")
    if "seed" in value and str(value["seed"]) != "0":
        parts.append(f"seed {value['seed']}")
    if value.get("corruption") in corruptions.CORRUPTIONS and str(value.get("severity", "0")) in ("1", "2", "3", "4", "5"):
        parts.append(corruptions.CORRUPTIONS[str(value["corruption"])].words(int(value["severity"])))
    return ", ".join(parts)


def _int(spec: dict, key: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(spec.get(key, default))
    except (TypeError, ValueError):
        raise InvalidInput(f"Dataset parameter {key} must be an integer.") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"Dataset parameter {key} must be between {lo} and {hi}, got {value}.")
    return value


def _float(spec: dict, key: str, default: float, lo: float, hi: float) -> float:
    try:
        value = float(spec.get(key, default))
    except (TypeError, ValueError):
        raise InvalidInput(f"Dataset parameter {key} must be a number.") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"Dataset parameter {key} must be between {lo:g} and {hi:g}, got {value:g}.")
    return value


def canonical_spec(spec: dict) -> dict:
    """Defaults filled in, unknown keys refused: the same data always gets the same name and hash."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise InvalidInput("A dataset is chosen by name.")
    name = spec["name"]
    if name == "upload":
        if any(k in spec for k in CORRUPTION_KEYS):
            raise InvalidInput("Uploaded datasets are not corrupted; benchmark a builtin set at a corruption level.")
        return {"name": "upload", "id": str(spec.get("id", ""))}
    if name not in _BUILDERS:
        raise InvalidInput(f"Unknown dataset {name!r}; choose one of {', '.join(_BUILDERS)} or an upload.")
    info = _BUILDERS[name][0]
    unknown = set(spec) - set(info.params) - {"name"} - (set(CORRUPTION_KEYS) if info.corruptible else set())
    if unknown:
        raise InvalidInput(f"Dataset {name} has no parameter {', '.join(sorted(unknown))}.")
    try:
        out = {"name": name, **{k: type(v)(spec.get(k, v)) for k, v in info.params.items()}}
    except (TypeError, ValueError):
        raise InvalidInput(f"A parameter of dataset {name} has the wrong type.") from None
    return out | (_corruption_keys(spec) if info.corruptible else {})


# Labelled sets may be corrupted ({"corruption": "jpeg", "severity": 3}) with their targets unchanged (registered
# corruptible=True); restoration sets carry their own degradation, and generation sets are references.
CORRUPTION_KEYS = ("corruption", "severity")


def _corruption_keys(spec: dict) -> dict:
    """{"corruption", "severity"} checked; {} for the clean set (severity 0 or none), so it keeps its plain name."""
    raw = spec.get("severity", 0)
    if isinstance(raw, bool) or not re.fullmatch(r"\d+(\.0*)?", str(raw).strip()):
        raise InvalidInput("Dataset parameter severity must be a whole number from 0 (clean) to 5.")
    severity = _int({"severity": int(float(raw))}, "severity", 0, 0, len(corruptions.SEVERITIES))
    if severity == 0:
        return {}
    if "corruption" not in spec:
        raise InvalidInput("A severity needs a corruption to apply.")
    return {"corruption": corruptions.get(str(spec["corruption"])).name, "severity": severity}


def load_dataset(spec: dict) -> Dataset:
    spec = canonical_spec(spec)
    if spec["name"] == "upload":
        return _UPLOADS[0](spec["id"])
    ds = _BUILDERS[spec["name"]][1]({k: v for k, v in spec.items() if k not in CORRUPTION_KEYS})
    if "corruption" not in spec:
        return ds
    samples = [replace(s, image=corruptions.corrupt(s.image, spec["corruption"], spec["severity"], seed=i))
               for i, s in enumerate(ds.samples)]
    return replace(ds, spec=spec, samples=samples)


# -- builtin: sklearn digits -----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def digits_image(values: np.ndarray, size: int = 32) -> np.ndarray:
    """An 8x8 digit (0-16) as a size x size RGB uint8 image, bilinear upsampled."""
    gray = Image.fromarray(np.clip(values * (255.0 / 16.0), 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    return np.repeat(np.asarray(gray)[..., None], 3, axis=2)


def digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of the 1797 digits: first 80% train, last 20% test (sklearn's order)."""
    images, target = _digits()
    cut = int(len(images) * 0.8)
    return (images[:cut], target[:cut]) if split == "train" else (images[cut:], target[cut:])


@_register("digits", "sklearn digits (test split, 360 images)", "classification",
           "The last 20% of sklearn's 1797 8x8 handwritten digits, upsampled to 32x32 RGB.", corruptible=True, limit=360)
def _build_digits(spec):
    images, target = digits_split("test")
    n = _int(spec, "limit", 360, 1, len(images))
    samples = [Sample(f"digit-{1437 + i}", digits_image(images[i]), int(target[i])) for i in range(n)]
    return Dataset(spec, describe(spec), "classification", "builtin", samples, DIGITS_CATEGORIES)


@_register("digits-real", "sklearn digits as generation reference", "generation",
           "Real 32x32 digits, the reference set for FID/FD of generators.", count=360)
def _build_digits_real(spec):
    images, _ = digits_split("test")
    n = _int(spec, "count", 360, 2, len(images))
    return Dataset(spec, describe(spec), "generation", "builtin",
                   [Sample(f"digit-{1437 + i}", digits_image(images[i])) for i in range(n)])


# -- synthetic shapes ----------------------------------------------------------------------------------
def _shape_scenes(spec, size=64, **kw):
    n = _int(spec, "count", 64, 1, 5000)
    seed = _int(spec, "seed", 0, 0, 2**31 - 1)
    return [(f"shape-{seed}-{i}", scene(seed * 100_003 + i, size=size, **kw)) for i in range(n)]


@_register("shapes-classify", "Synthetic shapes, one per image", "classification",
           "64x64 images holding one circle, square or triangle; the label is its shape.", corruptible=True, count=120, seed=0)
def _build_shapes_classify(spec):
    samples = [Sample(k, s.image, int(s.labels[0]) - 1) for k, s in _shape_scenes(spec, max_shapes=1)]
    return Dataset(spec, describe(spec), "classification", "synthetic", samples, SHAPE_NAMES)


@_register("shapes-detect", "Synthetic shapes with boxes", "detection",
           "64x64 images with 1-3 shapes; boxes exact from the drawn masks.", corruptible=True, count=64, seed=0)
def _build_shapes_detect(spec):
    samples = [Sample(k, s.image, ImageTruth(s.labels, s.boxes)) for k, s in _shape_scenes(spec)]
    return Dataset(spec, describe(spec), "detection", "synthetic", samples, SHAPES_CATEGORIES)


@_register("shapes-semantic", "Synthetic shapes with class masks", "segmentation",
           "64x64 images with 1-3 shapes; per-pixel class ids (0 background).", operation="semantic", corruptible=True, count=64, seed=0)
def _build_shapes_semantic(spec):
    samples = [Sample(k, s.image, s.semantic) for k, s in _shape_scenes(spec)]
    return Dataset(spec, describe(spec), "segmentation", "synthetic", samples, SHAPES_CATEGORIES,
                   operation="semantic")


@_register("shapes-instance", "Synthetic shapes with instance masks", "segmentation",
           "64x64 images with 1-3 shapes; one exact mask per shape.", operation="instance", corruptible=True, count=64, seed=0)
def _build_shapes_instance(spec):
    samples = [Sample(k, s.image, ImageTruth(s.labels, s.boxes), ImageTruth(s.labels, s.masks)) for k, s in _shape_scenes(spec)]
    return Dataset(spec, describe(spec), "segmentation", "synthetic", samples, SHAPES_CATEGORIES,
                   operation="instance")


@_register("shapes-real", "Synthetic shapes as generation reference", "generation",
           "32x32 shapes scenes, the reference set for generators trained on shapes.", count=256, seed=0)
def _build_shapes_real(spec):
    samples = [Sample(k, s.image) for k, s in _shape_scenes(spec, size=32)]
    return Dataset(spec, describe(spec), "generation", "synthetic", samples)


# -- builtin photos with a known degradation ---------------------------------------------------------------
@lru_cache(maxsize=1)
def sklearn_photos() -> tuple[tuple[str, np.ndarray], ...]:
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    names = [n.rsplit("/", 1)[-1].rsplit(".", 1)[0] for n in bunch.filenames]
    return tuple(zip(names, bunch.images))


# Photos that restoration nets train on: sklearn's two samples plus scikit-image photos and textures that are
# not among the ten benchmark photos (BUILTIN_IMAGES); grey ones are used as RGB with equal channels.
TRAINING_SKIMAGE = ("stereo_motorcycle", "brick", "grass", "gravel", "moon", "clock", "cell")


@lru_cache(maxsize=1)
def training_photos() -> tuple[tuple[str, np.ndarray], ...]:
    from skimage import data

    out = list(sklearn_photos())
    for name in TRAINING_SKIMAGE:
        img = getattr(data, name)()
        img = np.asarray(img[0] if isinstance(img, tuple) else img, dtype=np.uint8)
        out.append((name, np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3])))
    return tuple(out)


PHOTO_SETS = ("skimage", "sklearn", "applications")
# The photo sets as a picker shows them.
PHOTO_SET_WORDS = {"skimage": f"scikit-image photos ({len(BUILTIN_IMAGES)})", "sklearn": "scikit-learn photos (2)",
                   "applications": f"applications: medical, microscopy, astronomy ({len(APPLICATIONS)})"}


def _photos(spec) -> list[tuple[str, np.ndarray]]:
    """`photos`: "skimage" (10 photos), "sklearn" (china, flower) or "applications" (retina, immunohistochemistry,
    hubble_deep_field: see core.data.builtin.APPLICATIONS)."""
    max_side = _int(spec, "max_side", 256, 32, 1024)
    source = spec.get("photos", "skimage")
    if source == "sklearn":
        pool = list(sklearn_photos())
    elif source == "skimage":
        pool = [(name, load_builtin(name)) for name in BUILTIN_IMAGES]
    elif source == "applications":
        pool = [(name, load_builtin(name)) for name in APPLICATIONS]
    else:
        raise InvalidInput("Dataset parameter photos must be skimage, sklearn or applications.")
    n = _int(spec, "limit", len(pool), 1, len(BUILTIN_IMAGES))
    return [(name, limit_side(np.ascontiguousarray(img), max_side)) for name, img in pool[:n]]


# Photos whose subject is an ImageNet class, with that class (the model's label text). One label each, so top-1 is
# strict: ImageNet has three near-identical striped cats (tabby, tiger cat, Egyptian cat) and Chelsea is a tabby,
# which EfficientNet-Lite0 ranks third (top-5 counts it). Checked by eye against the photos; `views` adds crops.
LABELLED_PHOTOS = {"camera": "tripod", "chelsea": "tabby, tabby cat", "coffee": "espresso", "rocket": "missile",
                   "china": "palace"}


@_register("photos-classify", "Photos with ImageNet labels", "classification",
           "Five real photos whose subject is an ImageNet class (camera on a tripod, Chelsea the tabby cat, an "
           "espresso, a rocket launch, a Chinese palace), each as the whole photo plus views-1 random crops "
           "(35-100% of the area, some mirrored), long side <= max_side.",
           corruptible=True, views=8, seed=0, max_side=256)
def _build_photos_classify(spec):
    views = _int(spec, "views", 8, 1, 32)
    seed = _int(spec, "seed", 0, 0, 2**31 - 1)
    max_side = _int(spec, "max_side", 256, 64, 1024)
    pool = {**{n: load_builtin(n) for n in LABELLED_PHOTOS if n in BUILTIN_IMAGES}, **dict(sklearn_photos())}
    categories = tuple(dict.fromkeys(LABELLED_PHOTOS.values()))
    samples = []
    for p, (name, label) in enumerate(LABELLED_PHOTOS.items()):
        img = np.ascontiguousarray(pool[name])
        rng = np.random.default_rng([seed, p])
        for v in range(views):
            view = img if v == 0 else _random_view(img, rng)
            samples.append(Sample(f"{name}-view{v}", limit_side(view, max_side), categories.index(label)))
    return Dataset(spec, describe(spec), "classification", "builtin", samples, categories)


def _random_view(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop of 35-100% of the area with aspect 3:4 to 4:3 (torchvision's RandomResizedCrop ranges, narrower),
    mirrored half the time."""
    h, w = img.shape[:2]
    area = rng.uniform(0.35, 1.0) * h * w
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    ch, cw = min(h, int(round(np.sqrt(area / aspect)))), min(w, int(round(np.sqrt(area * aspect))))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = img[y:y + ch, x:x + cw]
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


@_register("photos-denoise", "skimage photos + Gaussian noise", "restoration",
           "The 10 skimage photos (or the 2 sklearn ones, or the 3 application images: retina, "
           "immunohistochemistry, Hubble deep field), long side <= max_side, with white Gaussian noise "
           "of sigma (0-255 scale).",
           operation="denoise", photos="skimage", sigma=25.0, seed=0, max_side=256, limit=len(BUILTIN_IMAGES))
def _build_photos_denoise(spec):
    sigma = _float(spec, "sigma", 25.0, 0.0, 100.0)
    seed = _int(spec, "seed", 0, 0, 2**31 - 1)
    samples = [Sample(n, add_gaussian_noise(img, sigma, seed + i), img) for i, (n, img) in enumerate(_photos(spec))]
    return Dataset(spec, describe(spec), "restoration", "builtin", samples,
                   operation="denoise", meta={"degradation": {"type": "gaussian_noise", "sigma": sigma, "seed": seed}})


@_register("photos-deblur", "skimage photos + Gaussian blur", "restoration",
           "The skimage photos blurred by a Gaussian PSF of blur_sigma px, plus optional noise.",
           operation="deblur", photos="skimage", blur_sigma=2.0, noise_sigma=0.0, seed=0, max_side=256, limit=len(BUILTIN_IMAGES))
def _build_photos_deblur(spec):
    blur = _float(spec, "blur_sigma", 2.0, 0.3, 10.0)
    noise = _float(spec, "noise_sigma", 0.0, 0.0, 50.0)
    seed = _int(spec, "seed", 0, 0, 2**31 - 1)
    samples = [Sample(n, gaussian_blur(img, blur, noise, seed + i), img) for i, (n, img) in enumerate(_photos(spec))]
    return Dataset(spec, describe(spec), "restoration", "builtin", samples, operation="deblur",
                   meta={"degradation": {"type": "gaussian_blur", "blur_sigma": blur, "noise_sigma": noise, "seed": seed}})


@_register("photos-sr", "skimage photos, bicubic downscale", "restoration",
           "The skimage photos cropped to a multiple of scale and downscaled with PIL bicubic.",
           operation="super-resolution", photos="skimage", scale=2, max_side=256, limit=len(BUILTIN_IMAGES))
def _build_photos_sr(spec):
    scale = _int(spec, "scale", 2, 2, 4)
    samples = []
    for n, img in _photos(spec):
        hr = crop_to_multiple(img, scale)
        samples.append(Sample(n, downscale_bicubic(hr, scale), hr))
    return Dataset(spec, describe(spec), "restoration", "builtin", samples,
                   operation="super-resolution", scale=scale,
                   meta={"degradation": {"type": "bicubic_downscale", "scale": scale, "library": "PIL"}})
