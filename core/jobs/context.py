"""What a job handler sees: its parameters' device, a progress call that doubles as the cancel check, a log."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from db import jobs as job_rows


class Cancelled(Exception):
    """The job was cancelled or reaped while it ran; the handler stops at its next progress call."""


@dataclass
class JobContext:
    url: str
    job_id: int
    device: str
    log_path: Path
    _last_beat: float = field(default=0.0, repr=False)

    def log(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")

    def progress(self, fraction: float, message: str | None = None, force: bool = False) -> None:
        """Write progress (at most twice a second unless forced); raise Cancelled when the job was stopped."""
        now = time.monotonic()
        if not force and now - self._last_beat < 0.5:
            return
        self._last_beat = now
        if not job_rows.heartbeat(self.url, self.job_id, fraction, message):
            raise Cancelled(f"job {self.job_id} is no longer running")
