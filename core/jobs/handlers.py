"""Job kinds -> the function that does the work in the worker process."""
from __future__ import annotations

from typing import Any, Callable

from core.jobs.context import JobContext

Handler = Callable[[dict[str, Any], JobContext], dict[str, Any]]


def _benchmark(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from core.services.benchmark import run_benchmark_job

    return run_benchmark_job(params, ctx)


def _train(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from core.training.run import run_training_job

    return run_training_job(params, ctx)


def _sleep(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A job that only waits and beats: used by tests of the runner (kill, cancel, restart)."""
    import time

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


HANDLERS: dict[str, Handler] = {"benchmark": _benchmark, "train": _train, "sleep": _sleep}
