"""What a job handler sees: its parameters' device, a progress call that doubles as the cancel check, a log."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

from db import jobs as job_rows
from db.session import is_busy


class Cancelled(Exception):
    """The job was cancelled or reaped while it ran; the handler stops at its next progress call."""


@dataclass
class JobContext:
    url: str
    job_id: int
    device: str
    log_path: Path
    work_dir: Path | None = None  # partial files (removed when the job is cancelled or fails)
    owner: str | None = None  # who submitted the job: owns what it makes (trained models)
    _last_beat: float = field(default=0.0, repr=False)
    _pending: list = field(default_factory=list, repr=False)  # curve points a busy store has not taken yet
    _busy_since: float | None = field(default=None, repr=False)

    def metrics(self, epoch: int, step: int, values: dict, conventions: dict[str, str] | None = None) -> None:
        """A point of the job's curves (numbers only), each value with how it was measured (`conventions`). While
        the store is busy points wait and go with the next."""
        numeric = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._pending.append((epoch, step, numeric, conventions or {}))
        self.flush_metrics(strict=False)

    def flush_metrics(self, strict: bool = True) -> None:
        """Write the waiting curve points; a busy store keeps them waiting unless `strict`."""
        while self._pending:
            epoch, step, numeric, conventions = self._pending[0]
            try:
                job_rows.add_metrics(self.url, self.job_id, epoch, step, numeric, conventions)
            except Exception as exc:
                if strict or not is_busy(exc):
                    raise
                self.log(f"the results store is busy; {len(self._pending)} curve point(s) wait for the next write")
                return
            self._pending.pop(0)

    def save_partial(self, state: dict) -> None:
        """The best weights so far, atomically replaced; inspected on failure, deleted on cancel."""
        from safetensors.torch import save_file

        if self.work_dir is None:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.work_dir / "best.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        tmp.replace(self.work_dir / "best.safetensors")

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
        try:
            running = job_rows.heartbeat(self.url, self.job_id, fraction, message)
        except Exception as exc:
            if not is_busy(exc):
                raise
            if self._busy_since is None:  # once per busy spell, not at every call
                self._busy_since = now
                self.log("the results store is busy; progress is not saved meanwhile, the job goes on")
            return
        if self._busy_since is not None:
            self.log(f"the results store took progress again after {now - self._busy_since:.0f} s")
            self._busy_since = None
        if not running:
            raise Cancelled(f"job {self.job_id} is no longer running")


@dataclass
class LocalContext:
    """The same calls for code run in this process without a job row (scripts, tests): log lines are kept and
    passed to `echo` when given; progress, curves and partial weights go nowhere."""

    echo: Callable[[str], None] | None = None
    job_id: int = 0
    owner: str | None = None
    lines: list[str] = field(default_factory=list)

    def log(self, line: str) -> None:
        self.lines.append(line)
        if self.echo is not None:
            self.echo(line)

    def progress(self, fraction: float, message: str | None = None, force: bool = False) -> None:
        pass

    def metrics(self, epoch: int, step: int, values: dict, conventions: dict[str, str] | None = None) -> None:
        pass

    def save_partial(self, state: dict) -> None:
        pass


class Stage:
    """One part of a job's bar: the part's own progress (0 to 1) is drawn between `start` and `end` of the whole,
    its messages get `prefix`; logs, curves and partial weights go to the job as they are."""

    def __init__(self, ctx, start: float, end: float, prefix: str = ""):
        self._ctx, self.start, self.end, self.prefix = ctx, start, end, prefix

    def progress(self, fraction: float, message: str | None = None, force: bool = False) -> None:
        part = max(0.0, min(1.0, float(fraction)))
        self._ctx.progress(self.start + (self.end - self.start) * part,
                           None if message is None else self.prefix + message, force)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._ctx, name)
