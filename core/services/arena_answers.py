"""The arena's side-by-side answers: one image, up to MAX_MODELS models of one kind (classification top-5, detection
boxes, segmentation overlays, restoration outputs), each model run on it and stored as a run like any Playground
run. Each model's latency is timed after one untimed warm-up pass on the same image, so a model's first call
(its kernels' set-up) does not pass for its speed. Kinds dispatch through a table, not a chain over task names."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from collections.abc import Callable

import numpy as np

from core.data.builtin import array_sha256
from core.data.decode import DecodedImage
from core.data.degrade import limit_side
from core.engine import Engine
from core.errors import InvalidInput, WeightsUnavailable
from core.metrics import perceptual
from core.services.catalog import list_model_infos
from core.services.classify import classify
from core.services.detect import detect
from core.services.restore import restore
from core.services.segment import segment
from core.tasks import detection
from core.wording import count

MAX_MODELS = 6
MIN_SIDE, MAX_SIDE = 64, 512


@dataclass(frozen=True)
class Kind:
    """What the arena can show: the task and operation it runs, and whether its answers are pictures (those can
    be voted on blind)."""

    title: str
    task: str
    operation: str | None
    pictures: bool
    threshold: bool = False  # answers depend on a score threshold
    reference: bool = False  # a clean reference exists, so outputs get PSNR/SSIM/LPIPS


KINDS = {
    "denoise": Kind("Denoise", "restoration", "denoise", True, reference=True),
    "deblur": Kind("Deblur", "restoration", "deblur", True, reference=True),
    "super-resolution": Kind("Super-resolution", "restoration", "super-resolution", True, reference=True),
    "semantic": Kind("Semantic segmentation", "segmentation", "semantic", True),
    "instance": Kind("Instance segmentation", "segmentation", "instance", True, threshold=True),
    "detection": Kind("Detection", "detection", None, True, threshold=True),
    "classification": Kind("Classification (top-5)", "classification", None, False),
}
VOTABLE = [k for k, v in KINDS.items() if v.pictures]


@dataclass(frozen=True)
class Settings:
    """The kind's parameters, stored with every round and vote: the degradation for restoration, the score
    threshold for detection and instances, the working size for all."""

    sigma: float = 25.0  # denoise noise, or deblur's added noise (0-255 scale)
    blur_sigma: float = 2.0
    scale: int = 2
    seed: int = 0
    score_threshold: float = 0.5
    max_side: int = 256

    def check(self) -> None:
        if not MIN_SIDE <= self.max_side <= MAX_SIDE:
            raise InvalidInput(f"The working size must be between {MIN_SIDE} and {MAX_SIDE} pixels.")
        if not 0 <= self.sigma <= 100 or not 0.1 <= self.blur_sigma <= 10 or self.scale not in (2, 3, 4):
            raise InvalidInput("Noise σ must be 0-100, blur σ 0.1-10 px and the scale 2, 3 or 4.")
        if not 0 < self.score_threshold <= 1:
            raise InvalidInput("The score threshold must be above 0 and at most 1.")

    def words(self, kind: str, seed: bool = True) -> str:
        """The settings in words; a round's are shown without its (secret) noise seed."""
        op = KINDS[kind].operation
        size = f"working size {self.max_side} px"
        drawn = f" (seed {self.seed})" if seed else ""
        if op == "denoise":
            return f"Gaussian noise σ {self.sigma:g}{drawn}, {size}"
        if op == "deblur":
            return f"Gaussian blur σ {self.blur_sigma:g} px + noise σ {self.sigma:g}{drawn}, {size}"
        if op == "super-resolution":
            return f"bicubic downscale ×{self.scale}, {size}"
        if KINDS[kind].threshold:
            return f"score threshold {self.score_threshold:g}, {size}"
        return size


@dataclass(frozen=True)
class Answer:
    model: str
    title: str
    latency_ms: float
    run_id: int
    trained: bool
    picture: np.ndarray | None = None  # what the model made, to show (None: classification)
    top: list[tuple[str, float]] = field(default_factory=list)  # classification: (label, probability)
    scores: dict[str, float | None] = field(default_factory=dict)  # restoration: psnr, ssim, lpips
    note: str = ""


@dataclass(frozen=True)
class SideBySide:
    kind: str
    image: DecodedImage  # at working size
    input: np.ndarray  # what the models received (degraded, for restoration)
    reference: np.ndarray | None  # restoration: the clean image the scores compare against
    answers: list[Answer]
    input_scores: dict[str, float | None] = field(default_factory=dict)  # restoration: the input's own PSNR/SSIM
    lpips_note: str = ""  # why there is no LPIPS, when there is none


def check_models(kind: str, models: list[str]) -> Kind:
    if kind not in KINDS:
        raise InvalidInput(f"Unknown arena task {kind!r}; choose one of {', '.join(KINDS)}.")
    if not models:
        raise InvalidInput("Choose at least one model.")
    if len(models) > MAX_MODELS:
        raise InvalidInput(f"Choose at most {MAX_MODELS} models; {len(models)} were chosen.")
    if len(set(models)) != len(models):
        raise InvalidInput("Each model can be chosen once.")
    spec = KINDS[kind]
    known = model_titles(spec)  # once: it checks every registered model's weights
    foreign = [m for m in models if m not in known]
    if foreign:
        raise InvalidInput(f"Not a {spec.title.lower()} model: {', '.join(foreign)}.")
    return spec


def working(image: DecodedImage, max_side: int) -> DecodedImage:
    pixels = limit_side(image.pixels, max_side)
    if pixels is image.pixels:
        return image
    return DecodedImage(image.name, pixels, image.source_format, image.source_mode, array_sha256(pixels))


def _classification(engine, kind, image, models, s, allow_random, owner):
    answers = []
    for name in models:
        r = classify(engine, name, [image], allow_random=allow_random, top_k=5, batch_size=1, owner=owner)
        answers.append(Answer(name, name, r.stats.total_ms, r.run_id, r.weights.trained,
                              top=[(p.label, p.prob) for p in r.predictions[0].top]))
    return image.pixels, None, answers, {}


def _detection(engine, kind, image, models, s, allow_random, owner):
    answers = []
    for name in models:
        r = detect(engine, name, [image], score_threshold=s.score_threshold, allow_random=allow_random, batch_size=1,
                   owner=owner, warmup=1)
        dets = r.above(s.score_threshold)[0]
        answers.append(Answer(name, name, r.stats.total_ms, r.run_id, r.weights.trained,
                              picture=detection.draw(image.pixels, dets), note=count(len(dets), "detection")))
    return image.pixels, None, answers, {}


def _segmentation(engine, kind, image, models, s, allow_random, owner):
    answers = []
    for name in models:
        r = segment(engine, name, [image], allow_random=allow_random, score_threshold=s.score_threshold,
                    max_side=s.max_side, owner=owner, warmup=1)
        if r.operation != KINDS[kind].operation:
            raise InvalidInput(f"{name} does not do {KINDS[kind].title.lower()}.")
        item = r.images[0]
        note = count(len(item.instances), "instance") if r.operation == "instance" else ""
        answers.append(Answer(name, name, r.stats.total_ms, r.run_id, r.weights.trained, picture=item.overlay,
                              note=note))
    return image.pixels, None, answers, {}


def _restoration(engine, kind, image, models, s, allow_random, owner):
    kind_ = "builtin" if image.source_format == "skimage" else "upload"
    r = restore(engine, image.pixels, source_name=image.name, source_hash=image.sha256, source_kind=kind_,
                operation=str(KINDS[kind].operation), methods=models, sigma=s.sigma, scale=s.scale, seed=s.seed,
                blur_sigma=s.blur_sigma, max_side=s.max_side, allow_random=allow_random, owner=owner, warmup=1)
    answers = [Answer(m.method, m.title, m.stats.total_ms, m.run_id, m.trained, picture=m.output,
                      scores={"psnr": m.psnr, "ssim": m.ssim}, note=m.note) for m in r.methods]
    return r.degraded, r.target, answers, {"psnr": r.degraded_psnr, "ssim": r.degraded_ssim}


_ANSWER: dict[str, Callable[..., Any]] = {"restoration": _restoration, "segmentation": _segmentation,
                                          "detection": _detection, "classification": _classification}


def with_lpips(engine: Engine, answers: list[Answer], reference: np.ndarray) -> tuple[list[Answer], str]:
    """Each restoration answer with its LPIPS against the reference, or the answers as they are and why not."""
    try:
        net = perceptual.lpips_model(engine.device)
    except WeightsUnavailable as exc:
        return answers, str(exc)
    out = []
    for a in answers:
        assert a.picture is not None
        scores = {**a.scores, "lpips": perceptual.lpips_distance(net, a.picture, reference)}
        out.append(replace(a, scores=scores))
    return out, ""


def side_by_side(engine: Engine, kind: str, image: DecodedImage, models: list[str], settings: Settings = Settings(),
                 *, allow_random: bool = False, owner: str | None = None) -> SideBySide:
    """Every chosen model's answer to one image at the working size, with its latency; each is stored as a run."""
    spec = check_models(kind, models)
    settings.check()
    small = working(image, settings.max_side)
    shown, reference, answers, input_scores = _ANSWER[spec.task](engine, kind, small, models, settings, allow_random,
                                                                 owner)
    titles = model_titles(spec)
    answers = [replace(a, title=titles.get(a.model, a.title)) for a in answers]
    note = ""
    if reference is not None:
        answers, note = with_lpips(engine, answers, reference)
    return SideBySide(kind, small, shown, reference, answers, input_scores, note)


def model_titles(spec: Kind) -> dict[str, str]:
    return {i.name: i.title or i.name for i in list_model_infos(spec.task, spec.operation)}
