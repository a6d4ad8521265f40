"""What each user may still store and queue on a shared server (IMGLAB_USER_JOBS, IMGLAB_USER_UPLOAD_MB,
IMGLAB_USER_CHECKPOINT_MB), counted from what is on disk and in the job table."""
from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

from core.config import get_settings
from core.data import uploads
from core.errors import InvalidInput
from core.models import checkpoints
from core.store import ensure_store
from core.users import User, acting
from db import jobs as job_rows


@dataclass(frozen=True)
class Usage:
    """What a user holds against their limits (None: no limit)."""

    jobs: int
    jobs_limit: int | None
    upload_bytes: int
    upload_limit: int | None
    checkpoint_bytes: int
    checkpoint_limit: int | None

    def words(self) -> str:
        return (f"Jobs queued or running: {self.jobs}{_of(self.jobs_limit, '')}. Dataset storage: "
                f"{self.upload_bytes / 2**20:.1f}{_of(self.upload_limit, ' MB', 2**20)}. Checkpoint storage: "
                f"{self.checkpoint_bytes / 2**20:.1f}{_of(self.checkpoint_limit, ' MB', 2**20)}.")


def _of(limit: int | None, unit: str, scale: int = 1) -> str:
    return f" of {limit / scale:.0f}{unit}" if limit is not None else f"{unit} (no limit)"


_STORING: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def storing(user: User) -> threading.Lock:
    """Held while one of the user's uploads is checked against their room and stored, so two uploads at once
    (two tabs) cannot both fit into the same room. Uploads are stored by the app's own process."""
    return _STORING[user.name]


def usage(user: User | None = None) -> Usage:
    name = acting(user).name
    s = get_settings()
    return Usage(job_rows.open_count(ensure_store(), name), s.user_jobs, uploads.owner_bytes(name), s.user_upload_bytes,
                 checkpoints.owner_bytes(name), s.user_checkpoint_bytes)


def upload_room(user: User | None = None) -> int | None:
    """Bytes of datasets the user may still store (None: no limit)."""
    limit = get_settings().user_upload_bytes
    return None if limit is None else max(0, limit - uploads.owner_bytes(acting(user).name))


def checkpoint_room(user: User | None = None) -> int | None:
    limit = get_settings().user_checkpoint_bytes
    return None if limit is None else max(0, limit - checkpoints.owner_bytes(acting(user).name))


def require_checkpoint_room(user: User | None = None) -> None:
    """A training job registers a model: refused up front when the owner's checkpoint storage is full."""
    room = checkpoint_room(user)
    if room is not None and room <= 0:
        raise InvalidInput("Your checkpoint storage is full, and a training job stores the model it trains. Delete "
                           "one of your models first (Models page, Your models).")
