"""Where a job's files live: its log and its work folder (partial weights) under DATA_DIR/jobs."""
from __future__ import annotations

import shutil
from pathlib import Path

from core.config import get_settings


def jobs_dir() -> Path:
    path = get_settings().data_dir / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(job_id: int) -> Path:
    return jobs_dir() / f"{int(job_id)}.log"


def work_dir(job_id: int) -> Path:
    return jobs_dir() / str(int(job_id))


def remove_partial(job_id: int) -> None:
    shutil.rmtree(work_dir(job_id), ignore_errors=True)
