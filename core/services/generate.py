"""Sample images from a generator for a seed; keep the run in the store."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.utils import make_grid

from core.engine import Engine, RunStats
from core.errors import InvalidInput
from core.models.registry import WeightsInfo
from core.runs import load_for_run, save_run
from core.tasks.generation import latents


@dataclass(frozen=True)
class GenerationResult:
    model: str
    weights: WeightsInfo
    grid: np.ndarray  # HxWx3 uint8
    samples: int
    seed: int
    label: int | None
    stats: RunStats
    run_id: int


def generate(engine: Engine, model: str, *, samples: int = 16, seed: int = 0, label: int | None = None,
             allow_random: bool = False, owner: str | None = None) -> GenerationResult:
    if not 1 <= samples <= 256:
        raise InvalidInput(f"Between 1 and 256 samples, got {samples}.")
    loaded = load_for_run(engine, model, allow_random, "generation")
    spec = loaded.spec
    assert spec.latent_dim is not None  # every generation model declares its latent size
    if spec.num_classes:
        if label is None or not 0 <= label < spec.num_classes:
            raise InvalidInput(f"{model} is conditional: choose a label between 0 and {spec.num_classes - 1}.")
    else:
        label = None
    images, stats = engine.run(loaded, latents(samples, spec.latent_dim, seed, label), batch_size=64)
    nrow = int(np.ceil(np.sqrt(samples)))
    grid = make_grid(torch.stack(images).clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    grid_u8 = grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    run_id = save_run(owner=owner,
        loaded=loaded, stats=stats, task="generation", kind="playground", dataset=None,
        params={"samples": samples, "label": label, "latent": "standard normal", "allow_random": allow_random},
        outputs={"grid_shape": list(grid_u8.shape)}, metrics=[], image_metrics=[], seed=seed,
    )
    return GenerationResult(model, loaded.weights, grid_u8, samples, seed, label, stats, run_id)
