"""Job kinds -> the function that does the work in the worker process, by registration.

The runner never imports the kinds of work (benchmarks, training): the module that does the work registers its
handler with @handler("kind") when it is imported; the job's row records that module, and the worker process
imports it before running the job. So the jobs layer sits below everything it runs.
"""
from __future__ import annotations

import importlib
import time
from typing import Any
from collections.abc import Callable

from core.errors import InvalidInput
from core.jobs.context import JobContext

Handler = Callable[[dict[str, Any], JobContext], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register `fn` as the work of jobs of `kind`; a kind is registered once (a second, different one is a bug)."""
    def wrap(fn: Handler) -> Handler:
        known = HANDLERS.get(kind)
        if known is not None and (known.__module__, known.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"job kind {kind!r} is already handled by {known.__module__}.{known.__qualname__}")
        HANDLERS[kind] = fn
        return fn
    return wrap


def module_of(kind: str) -> str:
    """The module that registered `kind` (recorded with the job so its worker can import it)."""
    if kind not in HANDLERS:
        raise InvalidInput(f"Unknown job kind {kind!r}.")
    return HANDLERS[kind].__module__


def resolve(kind: str, module: str | None) -> Handler:
    """The handler of a job in a fresh worker process: imports the module recorded with the job first (only a
    module of this project: the row is data, never a licence to import anything)."""
    if kind not in HANDLERS and module and module.startswith("core.") and module.replace(".", "").replace("_", "").isalnum():
        importlib.import_module(module)
    if kind not in HANDLERS:
        raise InvalidInput(f"No handler is registered for jobs of kind {kind!r}; launch the job again.")
    return HANDLERS[kind]


@handler("sleep")
def _sleep(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A job that only waits and beats: used by tests of the runner (kill, cancel, restart)."""
    seconds = float(params.get("seconds", 1.0))
    if params.get("partial") and ctx.work_dir is not None:  # leaves a partial file, as training does
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        (ctx.work_dir / "partial.bin").write_bytes(b"\0" * 1024)
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        ctx.progress(elapsed / seconds, f"slept {elapsed:.1f}s", force=True)
        time.sleep(0.2)
    if params.get("fail"):
        raise RuntimeError("asked to fail")
    return {"slept": seconds}
