"""Inference engine: device choice, a bounded model cache, batching, AMP on CUDA, timing and memory.

One Engine is shared by every session of the app (the page side wraps it in st.cache_resource), so its
cache is guarded by a lock and a model is built at most once per (name, weights) while it stays cached.
"""
from __future__ import annotations

import contextlib
from collections import Counter
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal
from collections.abc import Callable

import numpy as np
import psutil
import torch
import torch.nn as nn

from core.config import get_settings
from core.errors import DeviceUnavailable, InvalidInput
from core.models.registry import ModelSpec, WeightsInfo, create, get_spec
from core.models.reference import find_reference
from core.models.weight_paths import mapping

log = logging.getLogger("imglab.engine")


DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # what the pages offer; "cuda:N" also works from the CLI


def pick_device(preference: str | None = None) -> torch.device:
    """cuda > mps > cpu for "auto"; an explicit choice must be available."""
    pref = (preference or get_settings().device or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError:
        raise DeviceUnavailable(f"Unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise DeviceUnavailable(f"Device {pref} was requested but CUDA is not available here.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceUnavailable("Device mps was requested but Apple MPS is not available here.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"Device type {device.type} is not supported.")
    return device


@dataclass
class LoadedModel:
    spec: ModelSpec
    module: nn.Module
    weights: WeightsInfo
    device: torch.device
    load_ms: float

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


@dataclass
class RunStats:
    """What one engine call cost. Latencies are per batch; throughput over the measured batches."""

    device: str
    dtype: str
    batch_size: int
    items: int
    batches: int
    total_ms: float
    batch_ms: list[float] = field(default_factory=list)
    peak_mem_mb: float = 0.0
    mem_kind: str = "process_rss"  # or "cuda_max_allocated"
    warmup: int = 0  # warm-up batches run (untimed) before the measured ones, each the size of the first
    oom_retries: int = 0
    batch_items: list[int] = field(default_factory=list)  # images in each measured batch, in order

    @property
    def ran(self) -> str:
        """The batch sizes that actually ran, largest first: '8x12+3x1' is twelve batches of 8 and one of 3."""
        sizes = Counter(self.batch_items)
        return "+".join(f"{size}x{sizes[size]}" for size in sorted(sizes, reverse=True))

    @property
    def ms_per_item(self) -> float:
        return self.total_ms / self.items if self.items else 0.0

    @property
    def throughput(self) -> float:
        return self.items / (self.total_ms / 1000.0) if self.total_ms > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.batch_ms, 50)) if self.batch_ms else 0.0

    @property
    def p95_ms(self) -> float:
        """Linear interpolation between closest ranks (numpy's default)."""
        return float(np.percentile(self.batch_ms, 95)) if self.batch_ms else 0.0

    def as_metrics(self) -> dict[str, float]:
        return {
            "latency_ms_per_image": self.ms_per_item,
            "latency_p50_ms": self.p50_ms,
            "latency_p95_ms": self.p95_ms,
            "throughput_img_s": self.throughput,
            "peak_mem_mb": self.peak_mem_mb,
        }


class _PeakRSS:
    """Samples this process's RSS on a thread while a CPU call runs; the peak is the reported memory."""

    def __init__(self, interval: float = 0.01):  # 2 ms cost 3-4% of a 2-core CPU run (bench.engine_overhead)
        self.interval, self.peak = interval, 0
        self._proc = psutil.Process(os.getpid())
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class Engine:
    def __init__(self, device: str | None = None, cache_size: int | None = None, amp: bool = True):
        self.device = pick_device(device)
        self.amp = amp  # autocast on CUDA for models whose spec allows it
        self.cache_size = max(1, cache_size or get_settings().model_cache_size)
        self._cache: OrderedDict[tuple[str, str, str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._build_locks: dict[tuple[str, str, str, str], threading.Lock] = {}
        self.builds = 0  # how many models were actually built (cache misses)
        cap = get_settings().max_concurrent_runs
        self._running = threading.BoundedSemaphore(max(1, cap)) if cap else contextlib.nullcontext()
        # Test hook: called with the batch size before each forward; may raise to inject faults (OOM).
        self.fault_hook: Callable[[int], None] | None = None

    # -- model cache ---------------------------------------------------------------------------------
    def load(self, name: str, weights: Literal["pretrained", "random"] = "pretrained") -> LoadedModel:

        # A weights file set on the Models page, or retrained reference weights, change the key, so the old
        # weights are not served.
        ref = find_reference(name) if weights == "pretrained" else None
        key = (name, weights, mapping().get(name, "") if weights == "pretrained" else "", ref.sha256 if ref else "")
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:  # one build per key even when sessions ask at once
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            spec = get_spec(name)
            if spec.cpu_only and self.device.type != "cpu":
                raise InvalidInput(f"{name} runs on the CPU only (its int8 kernels are CPU kernels); choose device cpu.")
            start = time.perf_counter()
            module, info = create(name, weights=weights)
            module.to(self.device).eval()
            loaded = LoadedModel(spec, module, info, self.device, (time.perf_counter() - start) * 1000)
            log.info("model built: %s (%s weights) on %s in %.0f ms", name, weights, self.device, loaded.load_ms)
            with self._lock:
                self.builds += 1
                self._cache[key] = loaded
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return loaded

    def cached(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(name, weights) for name, weights, *_ in self._cache]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- running -------------------------------------------------------------------------------------
    def _autocast(self, loaded: LoadedModel):
        if self.device.type == "cuda" and self.amp and loaded.spec.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype), str(dtype).replace("torch.", "")
        return torch.autocast(self.device.type, enabled=False), "float32"

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def _forward(self, loaded: LoadedModel, chunk: list[torch.Tensor]) -> Any:
        if self.fault_hook is not None:
            self.fault_hook(len(chunk))
        batch = torch.stack(chunk).to(self.device, non_blocking=True)
        ctx, _ = self._autocast(loaded)
        with torch.inference_mode(), ctx:
            out = loaded.module(batch)
        self._sync()
        return out

    @staticmethod
    def _to_cpu(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.float().cpu() if obj.is_floating_point() else obj.cpu()
        if isinstance(obj, dict):
            return {k: Engine._to_cpu(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(Engine._to_cpu(v) for v in obj)
        return obj

    @staticmethod
    def _split(out: Any) -> list[Any]:
        """Per-item outputs on the CPU: a batch tensor is unbound, a list (detection dicts) kept."""
        if isinstance(out, torch.Tensor):
            return list(Engine._to_cpu(out).unbind(0))
        if isinstance(out, (list, tuple)):
            return [Engine._to_cpu(item) for item in out]
        raise TypeError(f"unsupported model output type {type(out).__name__}")

    @staticmethod
    def _chunk(inputs: list[torch.Tensor], i: int, size: int) -> list[torch.Tensor]:
        """The batch starting at `i`: up to `size` neighbours of the same shape."""
        chunk = [inputs[i]]
        while len(chunk) < size and i + len(chunk) < len(inputs) and inputs[i + len(chunk)].shape == inputs[i].shape:
            chunk.append(inputs[i + len(chunk)])
        return chunk

    def run(self, loaded: LoadedModel, inputs: list[torch.Tensor], batch_size: int = 8, warmup: int = 0) -> tuple[list[Any], RunStats]:
        """Run the model over CHW tensors; same-shape neighbours are batched. OOM halves the batch. At most
        IMGLAB_MAX_CONCURRENT_RUNS runs compute at once on one engine when that is set (the others wait,
        untimed): a server short of memory trades latency for a lower peak."""
        if not inputs:
            raise InvalidInput("Nothing to run: no inputs were given.")
        if batch_size < 1:
            raise InvalidInput(f"Batch size must be at least 1, got {batch_size}.")
        with self._running:
            return self._run(loaded, inputs, batch_size, warmup)

    def _run(self, loaded: LoadedModel, inputs: list[torch.Tensor], batch_size: int, warmup: int) -> tuple[list[Any], RunStats]:
        _, dtype = self._autocast(loaded)
        for _ in range(warmup):  # a whole first batch: on CUDA its one-time costs (kernels, allocator) stay untimed
            self._forward(loaded, self._chunk(inputs, 0, batch_size))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        outputs: list[Any] = []
        batch_ms: list[float] = []
        batch_items: list[int] = []
        oom_retries, current = 0, batch_size
        sampler = _PeakRSS() if self.device.type == "cpu" else None
        total_start = time.perf_counter()
        with sampler or contextlib.nullcontext():
            i = 0
            while i < len(inputs):
                chunk = self._chunk(inputs, i, current)
                start = time.perf_counter()
                try:
                    out = self._forward(loaded, chunk)
                except Exception as exc:
                    if not is_oom(exc) or current == 1:
                        raise
                    oom_retries += 1
                    current = max(1, current // 2)
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                batch_ms.append((time.perf_counter() - start) * 1000)
                batch_items.append(len(chunk))
                outputs.extend(self._split(out))
                i += len(chunk)
        total_ms = (time.perf_counter() - total_start) * 1000
        if self.device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(self.device), "cuda_max_allocated"
        elif sampler is not None:
            peak, kind = sampler.peak, "process_rss"
        else:  # mps: no peak counter, current RSS is the best available
            peak, kind = psutil.Process(os.getpid()).memory_info().rss, "process_rss"
        stats = RunStats(
            device=str(self.device), dtype=dtype, batch_size=current, items=len(inputs), batches=len(batch_ms),
            total_ms=total_ms, batch_ms=batch_ms, peak_mem_mb=peak / 2**20, mem_kind=kind,
            warmup=warmup, oom_retries=oom_retries, batch_items=batch_items,
        )
        return outputs, stats
