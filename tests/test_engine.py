"""Engine: device choice, bounded shared cache, batching, timing, OOM back-off."""
import threading

import pytest
import torch

from core.engine import Engine, RunStats, pick_device
from core.errors import DeviceUnavailable, InvalidInput

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_device_prefers_cuda_then_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type in (expected, "mps")
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only behaviour")
def test_requesting_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceUnavailable, match="CUDA is not available"):
        pick_device("cuda")
    with pytest.raises(DeviceUnavailable, match="Unknown device"):
        pick_device("tpu9")


def test_cache_is_bounded_lru_and_builds_once():
    engine = Engine(device="cpu", cache_size=2)
    a = engine.load("gaussian_denoise")
    assert engine.load("gaussian_denoise") is a and engine.builds == 1
    engine.load("median_denoise")
    engine.load("gaussian_denoise")  # refresh: median is now least recently used
    engine.load("bicubic_x2")
    assert engine.cached() == [("gaussian_denoise", "pretrained"), ("bicubic_x2", "pretrained")]
    assert engine.builds == 3


def test_concurrent_loads_build_the_model_once():
    engine = Engine(device="cpu")
    results = []
    threads = [threading.Thread(target=lambda: results.append(engine.load("resnet18", "random"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.builds == 1 and all(r is results[0] for r in results)


def test_run_batches_same_shapes_and_reports_stats():
    engine = Engine(device="cpu")
    loaded = engine.load("bicubic_x2")
    inputs = [torch.rand(3, 8, 8) for _ in range(5)] + [torch.rand(3, 10, 12)]
    outputs, stats = engine.run(loaded, inputs, batch_size=2)
    assert [tuple(o.shape) for o in outputs] == [(3, 16, 16)] * 5 + [(3, 20, 24)]
    assert stats.batches == 4  # 2 + 2 + 1 of 8x8, then the 10x12 alone
    assert stats.items == 6 and stats.device == "cpu" and stats.dtype == "float32"
    assert stats.total_ms > 0 and stats.throughput > 0 and stats.peak_mem_mb > 10
    assert stats.mem_kind == "process_rss"
    assert 0 < stats.p50_ms <= stats.p95_ms <= stats.total_ms
    assert not outputs[0].requires_grad


def test_outputs_are_exactly_the_modules_outputs():
    engine = Engine(device="cpu")
    loaded = engine.load("resnet18", "random")
    x = [torch.rand(3, 32, 32) for _ in range(3)]
    outputs, _ = engine.run(loaded, x, batch_size=3)
    with torch.inference_mode():
        direct = loaded.module(torch.stack(x))
    assert torch.allclose(torch.stack(outputs), direct, atol=1e-5)


def test_out_of_memory_halves_the_batch_and_succeeds():
    engine = Engine(device="cpu")
    loaded = engine.load("gaussian_denoise")
    seen = []

    def fake_oom(batch):
        seen.append(batch)
        if batch > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    engine.fault_hook = fake_oom
    outputs, stats = engine.run(loaded, [torch.rand(3, 16, 16) for _ in range(7)], batch_size=8)
    assert len(outputs) == 7
    assert seen[:3] == [7, 4, 2] and stats.batch_size == 2 and stats.oom_retries == 2
    assert stats.batch_items == [2, 2, 2, 1] and stats.ran == "2x3+1x1"  # what ran, not what was asked for


def test_warm_up_runs_a_whole_first_batch_and_stored_timings_say_what_ran():
    from core.runs import engine_metrics
    from core.tasks.evaluation import run_chunked

    engine = Engine(device="cpu")
    loaded = engine.load("gaussian_denoise")
    seen = []
    engine.fault_hook = seen.append
    inputs = [torch.rand(3, 16, 16) for _ in range(9)] + [torch.rand(3, 8, 8)]
    _, stats = run_chunked(engine, loaded, inputs, batch_size=8, progress=None, chunk=4)
    assert seen[0] == 8 and stats.warmup == 1  # the warm-up is the first batch as it runs
    # a slice holds whole batches (chunk 4 rounds up to 8), so the batch asked for is the batch that ran
    assert stats.batch_items == [8, 1, 1] and stats.batches == 3
    conv = engine_metrics(stats)[0].convention
    assert conv == "device=cpu,batch=8,ran=8x1+1x2,p50/p95 per batch,warmup=1 batch,mem=process_rss"


def test_oom_at_batch_one_is_raised():
    engine = Engine(device="cpu")
    loaded = engine.load("gaussian_denoise")

    def always(batch):
        raise torch.OutOfMemoryError("out of memory")

    engine.fault_hook = always
    with pytest.raises(torch.OutOfMemoryError):
        engine.run(loaded, [torch.rand(3, 16, 16)], batch_size=4)


def test_bad_requests_are_refused():
    engine = Engine(device="cpu")
    loaded = engine.load("gaussian_denoise")
    with pytest.raises(InvalidInput):
        engine.run(loaded, [], batch_size=1)
    with pytest.raises(InvalidInput):
        engine.run(loaded, [torch.rand(3, 8, 8)], batch_size=0)


def test_percentiles():
    stats = RunStats("cpu", "float32", 1, 20, 20, 100.0, batch_ms=[float(i) for i in range(1, 21)])
    assert stats.p50_ms == pytest.approx(10.5) and stats.p95_ms == pytest.approx(19.05)


@needs_cuda
def test_cuda_run_uses_amp_and_reports_gpu_memory():
    engine = Engine(device="cuda")
    loaded = engine.load("efficientnet_lite0")
    outputs, stats = engine.run(loaded, [torch.rand(3, 224, 224) for _ in range(4)], batch_size=4)
    assert stats.dtype in ("bfloat16", "float16") and stats.mem_kind == "cuda_max_allocated"
    assert stats.peak_mem_mb > 1 and outputs[0].device.type == "cpu" and outputs[0].dtype == torch.float32
    cpu_out, _ = Engine(device="cpu").run(Engine(device="cpu").load("efficientnet_lite0"), [torch.zeros(3, 224, 224)])
    gpu_out, _ = engine.run(loaded, [torch.zeros(3, 224, 224)])
    assert int(cpu_out[0].argmax()) == int(gpu_out[0].argmax())


def test_at_most_the_configured_runs_compute_at_once_and_waiting_is_not_timed(settings_env):
    """Six sessions asking at once on a server configured for two concurrent runs: never more than two compute,
    all six finish, and a run's latency is its own compute, not its wait."""
    import time

    settings_env(IMGLAB_MAX_CONCURRENT_RUNS=2)
    engine = Engine(device="cpu")
    loaded = engine.load("gaussian_denoise")
    lock, now, peak = threading.Lock(), [0], [0]

    def slow(batch):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.15)
        with lock:
            now[0] -= 1

    engine.fault_hook = slow
    stats: list[RunStats] = []

    def session():
        stats.append(engine.run(loaded, [torch.rand(3, 8, 8)], batch_size=1)[1])

    threads = [threading.Thread(target=session) for _ in range(6)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wall = time.perf_counter() - start
    assert len(stats) == 6 and peak[0] == 2
    assert wall >= 3 * 0.15  # three rounds of two
    assert max(s.total_ms for s in stats) < 0.15 * 1000 * 2  # each timed its own batch only (0.15 s), never a wait
