"""Restoration demo: degrade a clean image with a known degradation, restore it with chosen methods,
score each against the clean image, keep one run per method in the store."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data.uploads import OPERATIONS
from core.data.degrade import add_gaussian_noise, crop_to_multiple, downscale_bicubic, gaussian_blur, limit_side
from core.engine import Engine, RunStats
from core.errors import InvalidInput
from core.metrics.image_quality import RGB, Convention, psnr_ssim
from core.runs import content_hash, load_for_run, save_run
from core.tasks.restoration import known_noise_sigma, model_inputs, noise_level_record, to_uint8
from core.tasks.base import measured
from core.tasks.outputs import EvaluationOutputs
from db.repository import DatasetRef, ImageMetric



@dataclass(frozen=True)
class MethodResult:
    method: str
    title: str
    output: np.ndarray
    psnr: float
    ssim: float
    stats: RunStats
    run_id: int
    trained: bool
    note: str = ""  # e.g. the noise level FFDNet was given: "noise level 25 (from the degradation)"
    weights: str = ""  # where the weights come from, e.g. "trained by this project"


@dataclass(frozen=True)
class RestorationResult:
    operation: str
    target: np.ndarray  # clean reference (cropped for SR)
    degraded: np.ndarray  # what the methods received
    degraded_psnr: float | None  # the input's own score (denoise only)
    degraded_ssim: float | None
    methods: list[MethodResult]
    convention: str


def restore(engine: Engine, clean: np.ndarray, *, source_name: str, source_hash: str, source_kind: str,
            operation: str, methods: list[str], sigma: float = 25.0, scale: int = 2, seed: int = 0,
            blur_sigma: float = 2.0, max_side: int = 512, allow_random: bool = False, owner: str | None = None,
            warmup: int = 0) -> RestorationResult:
    """`sigma` is the noise level (0-255 scale) for denoise and the added noise for deblur."""
    if operation not in OPERATIONS:
        raise InvalidInput(f"Unknown restoration operation {operation!r}; choose one of {', '.join(OPERATIONS)}.")
    if not methods:
        raise InvalidInput("Choose at least one method.")
    if not 32 <= max_side <= 4096:
        raise InvalidInput("The working size must be between 32 and 4096 pixels.")
    clean = limit_side(np.asarray(clean, dtype=np.uint8), max_side)
    deg_psnr: float | None  # the degraded input's scores; None for super-resolution (sizes differ)
    deg_ssim: float | None
    if operation == "denoise":
        target = clean
        degraded = add_gaussian_noise(clean, sigma, seed)
        degradation = {"type": "gaussian_noise", "sigma": sigma, "seed": seed, "scale_0_255": True}
        deg_psnr, deg_ssim = psnr_ssim(degraded, target)
        extra_conv: Convention | None = None
    elif operation == "deblur":
        target = clean
        degraded = gaussian_blur(clean, blur_sigma, sigma, seed)
        degradation = {"type": "gaussian_blur", "blur_sigma": blur_sigma, "noise_sigma": sigma, "seed": seed}
        deg_psnr, deg_ssim = psnr_ssim(degraded, target)
        extra_conv = None
    else:
        target = crop_to_multiple(clean, scale)
        degraded = downscale_bicubic(target, scale)
        degradation = {"type": "bicubic_downscale", "scale": scale, "library": "PIL"}
        deg_psnr = deg_ssim = None
        extra_conv = Convention(channel="y", crop_border=scale)  # BasicSR super-resolution profile
    degradation["working_size"] = list(target.shape[:2])
    dataset = DatasetRef(
        name=f"{source_kind}:{source_name}|" + ",".join(f"{k}={v}" for k, v in degradation.items() if k != "working_size"),
        kind=source_kind, content_hash=content_hash([source_hash, repr(sorted(degradation.items()))]), num_items=1,
        meta={"source": source_name, "degradation": degradation},
    )
    results = []
    for name in methods:
        loaded = load_for_run(engine, name, allow_random, "restoration")
        spec = loaded.spec
        if spec.operation != operation:
            raise InvalidInput(f"{name} does not do {operation}.")
        if operation == "super-resolution" and spec.scale != scale:
            raise InvalidInput(f"{name} upscales x{spec.scale}, but the input was downscaled x{scale}.")
        inputs, levels = model_inputs(spec, [degraded], known_noise_sigma(degradation))
        outputs, stats = engine.run(loaded, inputs, batch_size=1, warmup=warmup)
        restored = to_uint8(outputs[0])
        if restored.shape != target.shape:
            raise InvalidInput(f"{name} returned {restored.shape}, expected {target.shape}.")
        p, s = psnr_ssim(restored, target, RGB)
        metrics = [measured("psnr", p, str(RGB)), measured("ssim", s, str(RGB))]
        per_image = [ImageMetric(source_name, "psnr", p, str(RGB)), ImageMetric(source_name, "ssim", s, str(RGB))]
        if extra_conv is not None:
            py, sy = psnr_ssim(restored, target, extra_conv)
            metrics += [measured("psnr_y", py, str(extra_conv)), measured("ssim_y", sy, str(extra_conv))]
            per_image += [ImageMetric(source_name, "psnr_y", py, str(extra_conv)),
                          ImageMetric(source_name, "ssim_y", sy, str(extra_conv))]
        params: dict[str, Any] = {"operation": operation, "degradation": degradation,
                                  "method_description": spec.description, "allow_random": allow_random}
        note = ""
        if levels is not None:
            params["noise_level"] = noise_level_record(levels, [source_name])
            note = params["noise_level"]["text"]
        run_outputs = EvaluationOutputs(input_psnr=deg_psnr, input_ssim=deg_ssim, noise_level=note or None).as_json()
        run_id = save_run(owner=owner,
            loaded=loaded, stats=stats, task="restoration", kind="playground", dataset=dataset,
            params=params, outputs=run_outputs, metrics=metrics, image_metrics=per_image,
            seed=seed if operation != "super-resolution" else None,
        )
        results.append(MethodResult(name, spec.title or name, restored, p, s, stats, run_id, loaded.weights.trained, note,
                                     loaded.weights.label))
    return RestorationResult(operation, target, degraded, deg_psnr, deg_ssim, results, str(RGB))
