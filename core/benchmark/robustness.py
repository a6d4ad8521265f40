"""Robustness sweeps: the same models benchmarked at increasing corruption levels, one stored run per model and
level (each level is its own dataset, so its runs also rank on the Leaderboard and pair image by image).

Two axes: ImageNet-C severities 0 (clean) to 5 of one corruption (core.data.corruptions) for classification,
detection and segmentation sets; the noise σ of `photos-denoise` for denoisers (a noise-level-input model such as
FFDNet is given each level's σ, core.tasks.restoration). The "robustness" job's handler lives here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from core.benchmark.run import plan, run_benchmark
from core.data import corruptions
from core.data.datasets import canonical_spec, list_datasets
from core.engine import Engine
from core.errors import InvalidInput
from core.jobs.handlers import handler
from core.models.registry import get_spec

DENOISE_SIGMAS = (5.0, 15.0, 25.0, 35.0, 50.0, 75.0)
NOISE_AXIS = "noise_sigma"  # the restoration sweep's "corruption": photos-denoise's own noise
NOISE_SET = "photos-denoise"
MAX_LEVELS = 8
MAX_IMAGES = 20_000  # models x levels x images, bounded before anything is queued


@dataclass(frozen=True)
class Sweep:
    models: tuple[str, ...]
    dataset: dict  # the clean set's canonical spec
    corruption: str  # a core.data.corruptions name, or NOISE_AXIS
    levels: tuple[float, ...]  # severities 0-5, or noise σ

    @property
    def axis(self) -> str:
        return "noise σ (0-255)" if self.corruption == NOISE_AXIS else "severity (0 = clean)"

    @property
    def axis_name(self) -> str:
        """The level's name in a message: "noise σ", "severity"."""
        return self.axis.split(" (")[0]

    @property
    def corruption_title(self) -> str:
        return "Gaussian noise of the photos" if self.corruption == NOISE_AXIS else corruptions.get(self.corruption).title

    def dataset_at(self, level: float) -> dict:
        if self.corruption == NOISE_AXIS:
            return {**self.dataset, "sigma": float(level)}
        return {**self.dataset, "corruption": self.corruption, "severity": int(level)}

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "models": list(self.models), "levels": list(self.levels)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Sweep:
        return cls(tuple(raw["models"]), dict(raw["dataset"]), str(raw["corruption"]), tuple(raw["levels"]))


def default_levels(corruption: str) -> tuple[float, ...]:
    return DENOISE_SIGMAS if corruption == NOISE_AXIS else (0, *corruptions.SEVERITIES)


def plan_sweep(models: list[str], dataset: dict, corruption: str, levels: list[float] | None = None,
               limit: int | None = None) -> tuple[Sweep, str]:
    """Check a sweep before it is queued (models fit the set at every level, levels valid, work bounded);
    returns the sweep and its title."""
    clean = canonical_spec({k: v for k, v in dataset.items() if k not in ("corruption", "severity")})
    if clean["name"] == "upload":
        raise InvalidInput("Robustness sweeps run on the builtin sets (their corrupted copies are rebuilt at each "
                           "level); benchmark an upload at one level instead.")
    levels = sorted({float(v) for v in (levels or default_levels(corruption))})
    if not 2 <= len(levels) <= MAX_LEVELS:
        raise InvalidInput(f"A sweep takes 2 to {MAX_LEVELS} levels.")
    if corruption == NOISE_AXIS:
        if clean["name"] != NOISE_SET:
            raise InvalidInput("The noise-level sweep runs on the photos with Gaussian noise (photos-denoise).")
        if any(not 0 <= v <= 100 for v in levels):
            raise InvalidInput("Noise levels are σ from 0 to 100 (0-255 scale).")
    else:
        corruptions.get(corruption)
        info = next(d for d in list_datasets() if d.name == clean["name"])
        if not info.corruptible:
            raise InvalidInput(f"The set “{info.title}” is not corrupted: its images carry their own degradation, or "
                               "are a reference. Sweep the noise of photos-denoise, or a labelled set.")
        if any(v not in (0, *corruptions.SEVERITIES) for v in levels):
            raise InvalidInput("Severities are whole numbers from 0 (clean) to 5.")
    sweep = Sweep(tuple(models), clean, corruption, tuple(levels))
    params = {"limit": limit} if limit else None
    _, ds, _ = plan(list(models), sweep.dataset_at(levels[-1]), params)  # also checks every model fits the set
    work = len(models) * len(levels) * len(ds.samples)
    if work > MAX_IMAGES:
        raise InvalidInput(f"This sweep would score {work} images (models x levels x images); at most {MAX_IMAGES}.")
    task = get_spec(models[0]).task
    title = f"robustness of {', '.join(models[:3])}{' ...' if len(models) > 3 else ''} ({task}) to " \
            f"{sweep.corruption_title.lower()}, {len(levels)} levels"
    return sweep, title


def run_sweep(sweep: Sweep, params: dict[str, Any] | None, *, allow_random: bool = False, device: str = "cpu",
              job_id: int | None = None, progress: Callable[..., None] | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Benchmark every model at every level; returns what the job stores: the sweep, each (level, model, run)."""
    engine = Engine(device)
    report = progress or (lambda fraction, message, force=False: None)
    runs, n = [], len(sweep.levels)
    for li, level in enumerate(sweep.levels):
        words = f"level {li + 1}/{n} ({sweep.axis_name} {level:g})"

        def step(fraction: float, message: str, force: bool = False, li=li, words=words) -> None:
            report((li + fraction) / n, f"{words}: {message}", force)

        outcomes = run_benchmark(engine, list(sweep.models), sweep.dataset_at(level), params,
                                 allow_random=allow_random, job_id=job_id, progress=step, log=log)
        runs += [{"level": level, "model": o.model, "run_id": o.run_id, "error": o.error} for o in outcomes]
    ok = [r for r in runs if r["run_id"] is not None]
    if not ok:
        raise InvalidInput("No model could be benchmarked at any level: " +
                           "; ".join(f"{r['model']}: {r['error']}" for r in runs[:5]))
    errors = {f"{r['model']} at {sweep.axis_name} {r['level']:g}": r["error"] for r in runs if r["error"]}
    return {"sweep": sweep.as_json(), "runs": runs, "run_ids": [r["run_id"] for r in ok], "errors": errors}


@handler("robustness")
def run_robustness_job(job_params: dict[str, Any], ctx) -> dict[str, Any]:
    return run_sweep(Sweep.from_json(job_params["sweep"]), job_params.get("params"),
                     allow_random=bool(job_params.get("allow_random")), device=job_params.get("device", "cpu"),
                     job_id=ctx.job_id, progress=ctx.progress, log=ctx.log)
