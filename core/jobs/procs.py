"""Is a job row's PID still its worker? A PID alone is not enough: once the worker is gone (a crash, a host
restart) the number may be handed to any other process, which must never be signalled. A row therefore also
keeps the worker's start time and a random token ("host:hex") that is on the worker's command line and in its
environment (inherited by its children). Linux reads /proc; elsewhere psutil is used when installed; a host
that can check neither never signals a job's PID."""
from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from pathlib import Path

TOKEN_ENV = "IMGLAB_WORKER_TOKEN"
_PROC = Path("/proc")
OURS, GONE, UNKNOWN = "ours", "gone", "unknown"


def new_token() -> str:
    return f"{socket.gethostname()}:{secrets.token_hex(12)}"


def on_this_host(token: str | None) -> bool:
    return bool(token and token.rpartition(":")[0] == socket.gethostname())


def _psutil():
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def _stat(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses): [state, ppid, pgrp, ...]."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def start_time(pid: int) -> float | None:
    """When the process started (clock ticks since boot, or psutil's create time); None when it is gone or a zombie."""
    if _PROC.is_dir():
        fields = _stat(pid)
        return None if fields is None or fields[0] in ("Z", "X") else float(fields[19])  # stat field 22
    psutil = _psutil()
    if psutil is None:
        return None
    try:
        proc = psutil.Process(pid)
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc.create_time()
    except psutil.Error:
        return None


def _carries(pid: int, token: str) -> bool:
    """The token is on the process's command line or in its environment."""
    if _PROC.is_dir():
        for name in ("cmdline", "environ"):
            try:
                if token.encode() in (_PROC / str(pid) / name).read_bytes():
                    return True
            except OSError:
                pass
        return False
    psutil = _psutil()
    try:
        proc = psutil.Process(pid)
        return token in proc.cmdline() or proc.environ().get(TOKEN_ENV) == token
    except psutil.Error:
        return False


def state(pid: int | None, token: str | None, started: float | None) -> str:
    """OURS: the process holding `pid` is the job's worker. GONE: no live process, or another one, holds it.
    UNKNOWN: this host cannot tell (no identity recorded, a worker on another host, no /proc nor psutil, or the
    worker is still being exec'd)."""
    if not pid or not token or started is None or not on_this_host(token) or not (_PROC.is_dir() or _psutil()):
        return UNKNOWN
    now = start_time(pid)
    if now is None or now != started:
        return GONE
    # The process with the recorded PID and start time, without the token: the worker in the middle of its exec
    # (with vfork the dispatcher resumes before the kernel has set the new command line and environment, and on
    # a loaded machine the child can stay there for milliseconds: a poll then once failed a starting job), or,
    # after a reboot, a stranger that happens to match. Either way: not proof of death, never signalled.
    return OURS if _carries(pid, token) else UNKNOWN


def _members(pgid: int, token: str | None) -> list[int]:
    """Live processes of group `pgid` that carry the token: what a dead worker left behind. The process with
    PID `pgid` itself is never one: the leader is judged by state() (start time and token) alone."""
    if not token or not on_this_host(token) or not _PROC.is_dir():
        return []
    out = []
    for entry in _PROC.iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() and entry.name != str(pgid) else None
        if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X") and _carries(int(entry.name), token):
            out.append(int(entry.name))
    return out


def _signal(pid: int, token: str | None, started: float | None, sig: int) -> bool:
    if state(pid, token, started) == OURS:  # workers lead their own process group
        try:
            os.killpg(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    hit = False
    for member in _members(pid, token):
        try:
            os.kill(member, sig)
            hit = True
        except (ProcessLookupError, PermissionError):
            pass
    return hit


def stop(pid: int | None, token: str | None, started: float | None, grace_s: float = 3.0) -> bool:
    """SIGTERM, then SIGKILL after `grace_s`, to the worker's process group, only while it is still the job's
    worker (or, its leader gone, to the members carrying its token). Whether anything was signalled."""
    if not pid or pid <= 1 or pid in (os.getpid(), os.getpgrp()):
        return False  # never init, never ourselves
    if not _signal(pid, token, started, signal.SIGTERM):
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if state(pid, token, started) != OURS and not _members(pid, token):
            return True
        time.sleep(0.05)
    _signal(pid, token, started, signal.SIGKILL)
    return True
