"""Per-model speed choices on one device: memory layout (channels_last), autocast dtype and torch.compile.

Which of them pays depends on the model and the device (bf16 autocast was slower than fp32 for EfficientNet-Lite0
at batch 64 on an H100 in one run and 1.21x faster at batch 32 in another), so they are measured on the device with
the model's own batch and the winner is kept in a JSON file: a later engine uses it without measuring again. An
option is taken only when it is at least MIN_GAIN faster than the plain model and keeps the outputs: float32
options within FP32_TOLERANCE of the plain outputs, a lower-precision autocast only for a model whose spec allows
AMP and within LOW_PRECISION_TOLERANCE.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch
import torch.nn as nn

MIN_GAIN = 1.10  # an option must make a batch at least 10% faster (compile also costs seconds and memory)
FP32_TOLERANCE = 1e-3  # largest |difference| / largest |plain output| for float32 options (layout, compile)
LOW_PRECISION_TOLERANCE = 5e-2  # the same for bf16/fp16 autocast: catches overflow and NaN, not rounding
MAX_ENTRIES = 500  # the cache file keeps the newest choices


@dataclass(frozen=True)
class Speedup:
    channels_last: bool = False
    dtype: str = "float32"  # the autocast dtype; float32 means no autocast
    compiled: bool = False

    @property
    def tag(self) -> str:
        """Short form stored in the timing convention: 'channels_last+bfloat16+compiled', 'plain'."""
        parts = (["channels_last"] if self.channels_last else []) + ([self.dtype] if self.dtype != "float32" else []) + \
            (["compiled"] if self.compiled else [])
        return "+".join(parts) or "plain"


PLAIN = Speedup()
TAG_WORDS = {"channels_last": "channels-last memory layout", "bfloat16": "bfloat16 autocast",
             "float16": "float16 autocast", "compiled": "torch.compile", "plain": "no speed options"}


def tag_words(tag: str) -> str:
    return ", ".join(TAG_WORDS.get(part, part) for part in tag.split("+"))


@dataclass(frozen=True)
class Trial:
    """One measured option: milliseconds per batch (best of the repeats) and its largest relative difference from
    the plain float32 outputs."""

    speedup: Speedup
    ms_per_batch: float
    rel_error: float
    kept: bool  # passed the tolerance (it may still lose on speed)


def candidates(device: torch.device, amp_allowed: bool, compile_allowed: bool, four_d: bool) -> list[Speedup]:
    """The options worth measuring on this device; the plain model first."""
    layouts = [False, True] if four_d else [False]
    dtypes = ["float32"]
    if device.type == "cuda" and amp_allowed:
        dtypes.append("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    eager = [Speedup(cl, dt) for dt in dtypes for cl in layouts]
    # compile needs a C++ toolchain on the CPU and pays mostly on GPUs; it is offered on CUDA only
    compiled = [Speedup(s.channels_last, s.dtype, True) for s in eager] if compile_allowed and device.type == "cuda" else []
    return eager + compiled


def prepared(module: nn.Module, speedup: Speedup) -> Callable[[torch.Tensor], Any]:
    """The callable the engine runs for `speedup` (the module itself is changed in place only by the layout)."""
    if speedup.channels_last:
        module.to(memory_format=torch.channels_last)
    else:
        module.to(memory_format=torch.contiguous_format)
    return torch.compile(module) if speedup.compiled else module


def autocast(device: torch.device, speedup: Speedup):
    if speedup.dtype == "float32" or device.type != "cuda":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast("cuda", dtype=getattr(torch, speedup.dtype))


def shaped(batch: torch.Tensor, speedup: Speedup) -> torch.Tensor:
    return batch.contiguous(memory_format=torch.channels_last) if speedup.channels_last and batch.dim() == 4 else batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(run: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, Any]:
    out = run()  # warm (compiles, picks kernels)
    out = run()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        _sync(device)
        best = min(best, (time.perf_counter() - start) * 1000)
    return best, out


def rel_error(out: Any, ref: torch.Tensor) -> float:
    if not isinstance(out, torch.Tensor) or out.shape != ref.shape:
        return float("inf")
    diff = (out.float() - ref.float()).abs().max().item()
    scale = ref.float().abs().max().item()
    return float(diff / max(scale, 1e-12)) if diff == diff else float("inf")  # NaN is never kept


def choose(module: nn.Module, batch: torch.Tensor, device: torch.device, amp_allowed: bool,
           compile_allowed: bool = False, repeats: int = 5) -> tuple[Speedup, list[Trial]]:
    """Measure every candidate on `batch` (already on `device`) and return the fastest that keeps the outputs and
    beats the plain model by MIN_GAIN (else PLAIN), with the trials. The module is left in its plain layout."""
    trials: list[Trial] = []
    reference: torch.Tensor | None = None
    for speedup in candidates(device, amp_allowed, compile_allowed, batch.dim() == 4):
        runner = prepared(module, speedup)
        x = shaped(batch, speedup)

        def run(runner=runner, x=x, speedup=speedup):
            with torch.inference_mode(), autocast(device, speedup):
                return runner(x)
        try:
            ms, out = _time(run, device, repeats)
        except Exception:  # noqa: BLE001 - an option this model or toolchain cannot take is simply not kept
            trials.append(Trial(speedup, float("inf"), float("inf"), False))
            continue
        if reference is None:
            if not isinstance(out, torch.Tensor):  # detection lists and the like: nothing to compare, keep it plain
                prepared(module, PLAIN)
                return PLAIN, [Trial(speedup, ms, 0.0, True)]
            reference = out.float().clone()
        error = rel_error(out, reference)
        limit = FP32_TOLERANCE if speedup.dtype == "float32" else LOW_PRECISION_TOLERANCE
        trials.append(Trial(speedup, ms, error, error <= limit))
    prepared(module, PLAIN)
    if not trials or not trials[0].kept:
        raise RuntimeError("the model failed to run on this batch as it is")
    plain_ms = trials[0].ms_per_batch
    best = min((t for t in trials if t.kept), key=lambda t: t.ms_per_batch)
    return (best.speedup if best.ms_per_batch * MIN_GAIN <= plain_ms else PLAIN), trials


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} {platform.machine()} {os.cpu_count()} cores"


def cache_key(model: str, weights: str, device: torch.device) -> str:
    return f"{model}|{weights}|{device_name(device)}|torch {torch.__version__}"


class ChoiceCache:
    """The choices, one JSON file shared by the processes of one server (written atomically under a lock)."""

    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Speedup | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("choice"), dict):
            return None
        try:
            return Speedup(**entry["choice"])
        except TypeError:
            return None

    def put(self, key: str, choice: Speedup, trials: list[Trial], shape: tuple[int, ...]) -> None:
        with self._lock:
            data = self._read()
            data.pop(key, None)
            data[key] = {"choice": asdict(choice), "shape": list(shape), "at": time.time(),
                         "trials": [{"option": t.speedup.tag, "ms_per_batch": t.ms_per_batch if t.ms_per_batch != float("inf") else None,
                                     "rel_error": t.rel_error if t.rel_error != float("inf") else None, "kept": t.kept}
                                    for t in trials]}
            data = dict(list(data.items())[-MAX_ENTRIES:])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tuning-")
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, self.path)
