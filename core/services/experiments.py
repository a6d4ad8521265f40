"""Experiments as jobs: launch a label-efficiency or a generated-data study, list them, read back their curves."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import pandas as pd

from core.engine import pick_device
from core.errors import InvalidInput
from core.experiments import label_efficiency, synthetic_data
from core.experiments.curves import Curve, gain, summary
from core.jobs import runner
from core.models.registry import get_spec
from core.services.datasets import uploaded
from core.services.jobs import job_status, public_job
from core.users import User, acting
from core.wording import count

EXPERIMENT_KINDS = {"label_efficiency": "Label efficiency: self-supervised start vs from scratch vs ImageNet transfer",
                    "synthetic_data": "Generated training data: real digits with and without conditional-DCGAN samples"}
SSL_SOURCES = label_efficiency.SOURCES
# the pair each kind's "gain" table compares: (better arm, base arm)
GAINS = {"label_efficiency": [(label_efficiency.ARMS[1], label_efficiency.ARMS[0]),
                              (label_efficiency.ARMS[2], label_efficiency.ARMS[0])],
         "synthetic_data": [(synthetic_data.ARMS[1], synthetic_data.ARMS[0])]}


def _require_weights(name: str, why: str) -> None:
    status = get_spec(name).check_weights()
    if status.status == "missing":
        raise InvalidInput(f"{why} needs the weights of {name}, which are not on this server ({status.detail}).")


def submit_label_efficiency(params: dict[str, Any], device: str = "cpu", user: User | None = None) -> int:
    user = acting(user)
    p = label_efficiency.LabelEfficiencyParams.from_dict(params)
    if p.source == "upload" and p.upload_id not in {u.id for u in uploaded("classification")}:
        raise InvalidInput("That upload is not an ImageFolder classification set here; choose one from the list.")
    if p.transfer:
        _require_weights(label_efficiency.TRANSFER, "The ImageNet-transfer arm")
    slot = str(pick_device(device))
    runs = len(p.fractions) * p.seeds * (3 if p.transfer else 2)
    title = (f"label efficiency on {p.source}: {p.pretrain_epochs} pretraining epochs, {count(runs, 'fine-tuning run')} "
             f"of {p.steps} steps")
    return runner.submit("label_efficiency", {"experiment": p.as_dict(), "device": slot}, title=title, device=slot,
                         owner=user.name)


def submit_synthetic_data(params: dict[str, Any], device: str = "cpu", user: User | None = None) -> int:
    user = acting(user)
    p = synthetic_data.SyntheticDataParams.from_dict(params)
    _require_weights(synthetic_data.GENERATOR, "This experiment")
    slot = str(pick_device(device))
    title = (f"generated data: {p.synthetic} conditional-DCGAN digits added to {count(len(p.sizes), 'real-set size')}, "
             f"{count(p.seeds, 'repeat')}")
    return runner.submit("synthetic_data", {"experiment": p.as_dict(), "device": slot}, title=title, device=slot,
                         owner=user.name)


def finished_experiments(limit: int = 50) -> list:
    """Done experiment jobs, newest first."""
    return [public_job(j) for j in runner.list_jobs(limit, tuple(EXPERIMENT_KINDS)) if j.status == "done"]


def experiment_curve(job_id: int) -> tuple[Curve, pd.DataFrame, list[pd.DataFrame]]:
    """A finished experiment's curve, its summary per arm and x, and its paired-gain tables."""
    job = job_status(int(job_id))
    if job.kind not in EXPERIMENT_KINDS:
        raise InvalidInput(f"Job #{job.id} is not an experiment.")
    if job.status != "done" or "curve" not in (job.result or {}):
        raise InvalidInput(f"Experiment #{job.id} has not finished ({job.status}).")
    curve = Curve.from_json(job.result["curve"])
    gains = [gain(curve, better, base).assign(comparison=f"{better} − {base}") for better, base in GAINS[job.kind]]
    return curve, summary(curve), [g for g in gains if not g.empty]


@lru_cache(maxsize=4)
def generated_preview(per_digit: int = 2, seed: int = 0) -> tuple[list, list[int]]:
    """A few of the images the generated-data experiment adds (seed `seed`), with the digit each was asked for."""
    if not 1 <= per_digit <= 10:
        raise InvalidInput("Show 1 to 10 generated images per digit.")
    images, labels = synthetic_data.generated_digits(10 * per_digit, seed)
    order = sorted(range(len(labels)), key=lambda i: (labels[i], i))
    return [images[i] for i in order], [int(labels[i]) for i in order]
