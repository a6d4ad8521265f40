"""Ray backend: the same jobs, run by the same worker code inside a Ray task, for teams that outgrow one
machine. Selected with IMGLAB_JOB_BACKEND=ray; the cluster is RAY_ADDRESS (a local instance otherwise).
The worker writes state, heartbeats, curves and results to the same store (DATABASE_URL must therefore be
reachable from the cluster: PostgreSQL for a real cluster, the SQLite file for a local instance).

Ray's token authentication is required (RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH):
without it anyone who can reach the cluster port could run code there, so no job is submitted.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from core.config import REPO_ROOT, get_settings
from core.errors import LabError

_LOCK = threading.Lock()
_REFS: dict[int, object] = {}  # job id -> ObjectRef, for cancel from this driver


class RayUnavailable(LabError):
    pass


def check_auth() -> None:
    s = get_settings()
    if s.ray_auth_mode != "token":
        raise RayUnavailable("The Ray backend needs token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                             "(or RAY_AUTH_TOKEN_PATH) for the app and the cluster.")
    has_token = s.ray_auth_token_set or (s.ray_auth_token_path and s.ray_auth_token_path.is_file()) or (
        Path.home() / ".ray" / "auth_token").is_file()
    if not has_token:
        raise RayUnavailable("RAY_AUTH_MODE=token is set but no token was found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
                             "or ~/.ray/auth_token).")


def _connect():
    check_auth()
    try:
        import ray
    except ImportError:
        raise RayUnavailable("The Ray backend needs the ray package (pip install ray).") from None
    with _LOCK:
        if not ray.is_initialized():
            address = get_settings().ray_address
            try:
                # the cluster's nodes import this code: a local instance from this checkout, a remote
                # cluster from the same path on its nodes (same image or checkout)
                ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                         runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
            except Exception as exc:
                raise RayUnavailable(f"Could not connect to the Ray cluster {address or '(local)'}: {exc}") from None
    return ray


def _run_worker(work: Callable[[int], int], job_id: int, env: dict[str, str]) -> int:
    """Runs inside a Ray worker process: the same code as a local worker (`work` is core.jobs.runner.work, which
    Ray imports there by name; the cluster's PYTHONPATH holds this checkout)."""
    os.environ.update(env)
    get_settings.cache_clear()  # this process's settings come from `env`
    return work(job_id)


def submit(job, work: Callable[[int], int]) -> None:
    """Run `work(job.id)` as a Ray task (the runner hands its own worker entry point)."""
    ray = _connect()
    settings = get_settings()
    env = {"DATABASE_URL": settings.database_url, "IMGLAB_DATA_DIR": str(settings.data_dir),
           "IMGLAB_DEVICE": job.device,
           **{k: v for k, v in os.environ.items()
              if k.startswith("IMGLAB_") and k not in ("IMGLAB_DATA_DIR", "IMGLAB_WORKER_TOKEN")}}
    gpus = 1 if job.device.startswith("cuda") else 0
    task = ray.remote(_run_worker).options(num_cpus=1, num_gpus=gpus, max_retries=0, name=f"imglab-job-{job.id}")
    ref = task.remote(work, job.id, env)
    with _LOCK:
        _REFS[job.id] = ref


def cancel(job_id: int) -> None:
    """Force-cancel the Ray task when this process submitted it; otherwise the worker notices the cancelled
    state at its next heartbeat or progress call and stops."""
    with _LOCK:
        ref = _REFS.pop(job_id, None)
    if ref is not None:
        import ray

        try:
            ray.cancel(ref, force=True)
        except Exception:
            pass
