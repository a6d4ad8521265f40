"""The Ray backend on a local Ray instance: the same job runs in a Ray worker and writes to the same store;
without Ray's token authentication nothing is submitted."""
from __future__ import annotations

import importlib.util
import os
import secrets

import pytest

from core.config import get_settings
from core.errors import LabError
from tests.test_jobs import wait_for

if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed", allow_module_level=True)

# Ray's core library reads its auth settings from the environment when it is loaded: set them before
# `import ray` (the app gets them from its environment at start, as a deployment would set them).
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))


@pytest.fixture
def ray_env(settings_env, monkeypatch):
    import ray

    monkeypatch.setenv("IMGLAB_JOB_BACKEND", "ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    get_settings.cache_clear()
    yield ray
    if ray.is_initialized():
        ray.shutdown()


def test_benchmark_job_runs_on_a_local_ray_instance(ray_env, store_url):
    """On SQLite and on PostgreSQL (the store a real cluster shares): the Ray worker writes there."""
    from core import services

    ray = ray_env
    job_id = services.submit_benchmark(["gaussian_denoise"], {"name": "photos-denoise", "limit": 1, "max_side": 64})
    job = wait_for(lambda: (j := services.job_status(job_id)).status in ("done", "failed") and j, timeout=180)
    assert job.status == "done", (job.message, services.job_logs(job_id))
    assert job.backend == "ray" and job.pid not in (None, os.getpid())
    detail = services.run_detail(job.result["run_ids"][0])
    assert detail.model == "gaussian_denoise" and 20 < detail.metrics.set_index("metric").loc["psnr", "value"] < 40
    assert ray.is_initialized() and ray.get_runtime_context().gcs_address
    from db import repository

    assert repository.list_runs(store_url)["run_id"].tolist() == job.result["run_ids"]  # in this very store


def test_cancel_stops_a_ray_job(ray_env):
    from core.jobs import runner

    job_id = runner.submit("sleep", {"seconds": 120}, title="long on ray")
    wait_for(lambda: runner.status(job_id).status == "running", timeout=120)
    assert runner.cancel(job_id) and runner.status(job_id).status == "cancelled"


def test_ray_backend_refuses_to_submit_without_token_auth(settings_env, monkeypatch):
    from core.jobs import runner

    monkeypatch.setenv("IMGLAB_JOB_BACKEND", "ray")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    get_settings.cache_clear()
    with pytest.raises(LabError, match="token authentication"):
        runner.submit("sleep", {"seconds": 1}, title="x")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/nonexistent/token")
    monkeypatch.setenv("HOME", "/nonexistent")
    get_settings.cache_clear()
    with pytest.raises(LabError, match="no token was found"):
        runner.submit("sleep", {"seconds": 1}, title="x")
    assert runner.list_jobs() == []  # nothing queued
