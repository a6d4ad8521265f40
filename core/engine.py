"""Inference engine: device choice, a bounded model cache, batching, AMP on CUDA, timing and memory.

One Engine is shared by every session of the app (the page side wraps it in st.cache_resource), so its
cache is guarded by a lock and a model is built at most once per (name, weights) while it stays cached.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter, OrderedDict, deque
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
from core.tuning import PLAIN, ChoiceCache, Speedup, Trial, autocast, cache_key, choose, prepared, shaped

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
    weights_key: str = ""  # what tells this build's weights apart (the tuning cache's key)
    speedup: Speedup = PLAIN  # the speed options in use (core.tuning)
    tuned: bool = False  # a measured or cached choice applies; otherwise the engine's default autocast
    tune_failed: bool = False  # measuring failed once (not retried for this build)
    runner: Callable[[torch.Tensor], Any] | None = None  # what runs a batch: the module, or its compiled form

    def __call__(self, batch: torch.Tensor) -> Any:
        return (self.runner or self.module)(shaped(batch, self.speedup))

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
    speedup: str = "plain"  # the speed options that ran (core.tuning.Speedup.tag)
    clock: str = "wall"  # how a batch's time was taken: wall clock, or CUDA events around the forward pass

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
        settings = get_settings()
        self.choices = ChoiceCache(settings.data_dir / "tuning.json")
        self.tune_on_gpu, self.compile_allowed = settings.tune_on_gpu, settings.compile_models
        self._tune_lock = threading.Lock()

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
            loaded = LoadedModel(spec, module, info, self.device, (time.perf_counter() - start) * 1000,
                                 weights_key="|".join(key[1:]))
            choice = self.choices.get(cache_key(name, loaded.weights_key, self.device))
            if choice is not None:
                self._apply(loaded, choice)
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

    # -- speed options -------------------------------------------------------------------------------
    def _apply(self, loaded: LoadedModel, choice: Speedup) -> None:
        if choice.dtype != "float32" and not (self.amp and loaded.spec.amp):
            choice = Speedup(choice.channels_last, "float32", choice.compiled)
        loaded.runner = prepared(loaded.module, choice)
        loaded.speedup, loaded.tuned = choice, True

    def tune(self, loaded: LoadedModel, chunk: list[torch.Tensor]) -> list[Trial]:
        """Measure the speed options on one batch of this model's inputs, keep the winner for this model, weights
        and device (core.tuning), and use it from now on. Returns the trials."""
        batch = torch.stack(chunk).to(self.device)
        choice, trials = choose(loaded.module, batch, self.device, self.amp and loaded.spec.amp, self.compile_allowed)
        self.choices.put(cache_key(loaded.spec.name, loaded.weights_key, self.device), choice, trials, tuple(batch.shape))
        self._apply(loaded, choice)
        log.info("speed options for %s on %s: %s", loaded.spec.name, self.device, choice.tag)
        return trials

    def _tune_once(self, loaded: LoadedModel, chunk: list[torch.Tensor]) -> None:
        """At a model's first GPU run (then cached): one session measures while the others wait, since measuring
        changes the shared module's layout. A failure (out of memory at this batch) keeps the default options."""
        with self._tune_lock:
            if loaded.tuned or loaded.tune_failed:
                return
            try:
                self.tune(loaded, chunk)
            except Exception as exc:  # noqa: BLE001 - the run itself goes on (and halves its batch on OOM)
                loaded.tune_failed = True
                log.warning("speed options for %s not measured: %s", loaded.spec.name, exc)

    # -- running -------------------------------------------------------------------------------------
    def _autocast(self, loaded: LoadedModel):
        if loaded.tuned:
            return autocast(self.device, loaded.speedup), loaded.speedup.dtype if self.device.type == "cuda" else "float32"
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
            out = loaded(batch)
        self._sync()
        return out

    @staticmethod
    def _to_cpu(obj: Any, non_blocking: bool = False) -> Any:
        """Outputs on the CPU, floats as float32. non_blocking (CUDA): the copies land in pinned memory and are
        readable once the batch's `done` event has passed."""
        if isinstance(obj, torch.Tensor):
            return (obj.float() if obj.is_floating_point() else obj).to("cpu", non_blocking=non_blocking)
        if isinstance(obj, dict):
            return {k: Engine._to_cpu(v, non_blocking) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(Engine._to_cpu(v, non_blocking) for v in obj)
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
        if self.device.type == "cuda" and self.tune_on_gpu and not loaded.tuned:
            self._tune_once(loaded, self._chunk(inputs, 0, batch_size))
        _, dtype = self._autocast(loaded)
        for _ in range(warmup):  # a whole first batch: on CUDA its one-time costs (kernels, allocator) stay untimed
            self._forward(loaded, self._chunk(inputs, 0, batch_size))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        sampler = _PeakRSS() if self.device.type == "cpu" else None
        total_start = time.perf_counter()
        with sampler or contextlib.nullcontext():
            run = self._pipelined if self.device.type == "cuda" else self._one_by_one
            outputs, batch_ms, batch_items, oom_retries, current = run(loaded, inputs, batch_size)
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
            warmup=warmup, oom_retries=oom_retries, batch_items=batch_items, speedup=loaded.speedup.tag,
            clock="cuda_events" if self.device.type == "cuda" else "wall",
        )
        return outputs, stats

    def _halve(self, exc: Exception, current: int) -> int:
        """The batch size after an out-of-memory error; anything else (or OOM at batch 1) is re-raised."""
        if not is_oom(exc) or current == 1:
            raise exc
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return max(1, current // 2)

    def _one_by_one(self, loaded: LoadedModel, inputs: list[torch.Tensor], batch_size: int) -> _Ran:
        """CPU and MPS: each batch is timed on the wall clock, its outputs ready when its forward returns."""
        outputs: list[Any] = []
        batch_ms: list[float] = []
        batch_items: list[int] = []
        oom_retries, current, i = 0, batch_size, 0
        while i < len(inputs):
            chunk = self._chunk(inputs, i, current)
            start = time.perf_counter()
            try:
                out = self._forward(loaded, chunk)
            except Exception as exc:
                current, oom_retries = self._halve(exc, current), oom_retries + 1
                continue
            batch_ms.append((time.perf_counter() - start) * 1000)
            batch_items.append(len(chunk))
            outputs.extend(self._split(out))
            i += len(chunk)
        return outputs, batch_ms, batch_items, oom_retries, current

    def _pipelined(self, loaded: LoadedModel, inputs: list[torch.Tensor], batch_size: int) -> _Ran:
        """CUDA without a synchronisation per batch: each batch is stacked into pinned memory and copied on a side
        stream (overlapping the previous batch's compute), its forward is timed by CUDA events, its outputs come
        back by non-blocking copies; at most IN_FLIGHT batches are queued before the oldest is collected."""
        copy_stream = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)
        ctx, _ = self._autocast(loaded)
        outputs: list[Any] = []
        batch_ms: list[float] = []
        batch_items: list[int] = []
        pending: deque[_InFlight] = deque()

        def collect(item: _InFlight) -> None:
            item.done.synchronize()
            batch_ms.append(item.start.elapsed_time(item.end))
            batch_items.append(item.items)
            outputs.extend(self._split(item.out))

        oom_retries, current, i = 0, batch_size, 0
        while i < len(inputs):
            chunk = self._chunk(inputs, i, current)
            try:
                if self.fault_hook is not None:
                    self.fault_hook(len(chunk))
                host = torch.empty((len(chunk), *chunk[0].shape), dtype=chunk[0].dtype, pin_memory=True)
                torch.stack(chunk, out=host)
                with torch.cuda.stream(copy_stream):
                    batch = host.to(self.device, non_blocking=True)
                compute.wait_stream(copy_stream)
                batch.record_stream(compute)  # allocated on the copy stream, freed after the compute stream's use
                item = _InFlight(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True),
                                 torch.cuda.Event(), len(chunk))
                item.start.record(compute)
                with torch.inference_mode(), ctx:
                    out = loaded(batch)
                item.end.record(compute)
                item.out = self._to_cpu(out, non_blocking=True)
                item.done.record(compute)
            except Exception as exc:
                current, oom_retries = self._halve(exc, current), oom_retries + 1
                continue
            pending.append(item)
            i += len(chunk)
            while len(pending) > IN_FLIGHT:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
        return outputs, batch_ms, batch_items, oom_retries, current


IN_FLIGHT = 2  # batches queued on the GPU before the engine waits for the oldest: bounds GPU and pinned memory
_Ran = tuple[list[Any], list[float], list[int], int, int]  # outputs, batch ms, batch sizes, OOM retries, last batch size


@dataclass
class _InFlight:
    start: Any  # torch.cuda.Event
    end: Any
    done: Any
    items: int
    out: Any = None
