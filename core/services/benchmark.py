"""Benchmarks as the pages and the CLI see them: plan and run (core.benchmark), or queue as a background job."""
from __future__ import annotations

from typing import Any

from core.benchmark.run import (MAX_MODELS, ModelOutcome, WeightsMissing, plan, require_weights,  # noqa: F401
                                run_benchmark)
from core.data.datasets import canonical_spec
from core.engine import pick_device
from core.jobs import runner
from core.users import User, acting


def submit_benchmark(models: list[str], dataset: dict, params: dict[str, Any] | None = None, *,
                     allow_random: bool = False, device: str = "cpu", reproduces: int | None = None,
                     user: User | None = None) -> int:
    """Queue a benchmark job; `reproduces` names the stored run it re-runs (the Leaderboard's reproduce action)."""
    owner = acting(user).name
    runner.check_job_room(owner)  # before the dataset is loaded to check the plan
    require_weights(models, allow_random)  # first: refusing must not cost a dataset load
    p, ds, title = plan(models, dataset, params)
    slot = str(pick_device(device))
    job: dict[str, Any] = {"models": list(models), "dataset": canonical_spec(dataset), "params": params or {},
                           "allow_random": allow_random, "device": slot}
    if reproduces is not None:
        job["reproduces"] = int(reproduces)
        title = f"reproduce run #{int(reproduces)}: {title}"
    return runner.submit("benchmark", job, title=title, device=slot, owner=owner)
