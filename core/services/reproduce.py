"""Re-run a stored benchmark run with its stored parameters (a background job) and say whether the numbers match.

Quality metrics must agree to a relative 1e-6 (the same code, data and weights are deterministic on one device);
timing and memory are shown side by side but never decide the verdict. A change of weights since the stored
run (a different SHA-256) is reported, since then a mismatch is expected."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from core.errors import InvalidInput
from core.services.benchmark import submit_benchmark
from core.tasks.base import BenchmarkParams
from core.users import User
from core.services.compare import TIMING
from core.services.jobs import public_job
from core.services.results import run_detail
from core.store import ensure_store
from db import jobs as job_rows
from db.jobs import JobInfo

REL_TOL = 1e-6


@dataclass(frozen=True)
class Reproduction:
    run_id: int
    job: JobInfo | None
    new_run_id: int | None
    table: pd.DataFrame  # metric, stored, reproduced, abs_diff, match (None for timing)
    weights_changed: bool

    @property
    def verdict(self) -> str:
        if self.job is None:
            return "not reproduced yet"
        if self.new_run_id is None:
            return f"job #{self.job.id} {self.job.status}"
        checked = self.table[self.table["match"].notna()]
        if checked.empty:
            return "no quality metric to compare"
        return "numbers match" if bool(checked["match"].all()) else "numbers differ"


def _same(a: float | None, b: float | None) -> bool:
    """NaN is stored as None; inf equals only inf."""
    if a is None or b is None:
        return a is None and b is None
    return a == b or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=REL_TOL)


def reproduce(run_id: int, device: str | None = None, user: User | None = None) -> int:
    """Queue a benchmark job with the run's model, dataset spec and parameters, on the run's device unless
    another is named; returns the job id."""
    detail = run_detail(run_id)
    if detail.kind != "benchmark":
        raise InvalidInput(f"Run #{detail.run_id} is a {detail.kind} run; only benchmark runs can be reproduced.")
    params = detail.params
    dataset = {k: v for k, v in params.get("dataset", {}).items() if k != "first"}  # 'first' comes from limit
    known = BenchmarkParams().as_dict()
    bench = {k: v for k, v in params.get("benchmark", {}).items() if k in known}
    allow_random = bool(params.get("allow_random")) or detail.weights_status == "random"
    return submit_benchmark([detail.model], dataset, bench, allow_random=allow_random, device=device or detail.device,
                            reproduces=detail.run_id, user=user)


def reproduced_from(run_id: int, recent_jobs: int = 200) -> int | None:
    """The run that `run_id` reproduces, when a reproduction job among the recent benchmark jobs made it."""
    for job in job_rows.list_jobs(ensure_store(), recent_jobs, ("benchmark",)):
        origin = job.params.get("reproduces")
        if origin is not None and job.status == "done" and int(run_id) in (job.result.get("run_ids") or []):
            return int(origin)
    return None


def reproduction_for(run_id: int) -> Reproduction:
    """The verdict to show beside a run, from the store: its own newest reproduction or, when the run is itself a
    reproduction (after one, the leaderboard lists the new run), that of the run it reproduced."""
    own = reproduction(run_id)
    if own.job is not None:
        return own
    origin = reproduced_from(own.run_id)
    return reproduction(origin) if origin is not None else own


def reproduction(run_id: int) -> Reproduction:
    """The newest reproduction job of a run and, once it is done, the metric-by-metric comparison."""
    detail = run_detail(run_id)
    job = job_rows.latest_with_param(ensure_store(), "benchmark", "reproduces", detail.run_id)
    job = public_job(job) if job is not None else None  # its message is shown: no server paths
    empty = pd.DataFrame(columns=["metric", "stored", "reproduced", "abs_diff", "match"])
    new_ids = (job.result.get("run_ids") or []) if job is not None and job.status == "done" else []
    if not new_ids:
        return Reproduction(detail.run_id, job, None, empty, False)
    new = run_detail(new_ids[0])
    stored = dict(zip(detail.metrics["metric"], detail.metrics["value"]))
    again = dict(zip(new.metrics["metric"], new.metrics["value"]))
    rows = []
    for name in sorted(set(stored) | set(again)):
        a, b = stored.get(name), again.get(name)
        diff = abs(a - b) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b) else None
        rows.append({"metric": name, "stored": a, "reproduced": b, "abs_diff": diff,
                     "match": None if name in TIMING else _same(a, b)})
    return Reproduction(detail.run_id, job, new.run_id, pd.DataFrame(rows),
                        new.weights_hash != detail.weights_hash)
