"""Per-model speed options (core/tuning.py): measured, kept only when faster and output-preserving, cached for the
next engine; the GPU path overlaps copies and times batches with CUDA events."""
import json
import time

import pytest
import torch
import torch.nn as nn

from core.engine import Engine
from core.runs import engine_metrics
from core.tuning import PLAIN, ChoiceCache, Speedup, cache_key, choose

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class LayoutSensitive(nn.Module):
    """Slow on a contiguous batch; on a channels-last batch fast, and (when `changes`) with different outputs."""

    def __init__(self, changes: bool):
        super().__init__()
        self.conv, self.changes = nn.Conv2d(3, 4, 3), changes

    def forward(self, x):
        if x.is_contiguous():
            time.sleep(0.02)
            return self.conv(x)
        return self.conv(x) * (2 if self.changes else 1)


def test_a_faster_option_that_keeps_the_outputs_is_chosen():
    batch = torch.rand(2, 3, 16, 16)
    choice, trials = choose(LayoutSensitive(changes=False), batch, torch.device("cpu"), amp_allowed=True, repeats=2)
    assert [t.speedup for t in trials] == [PLAIN, Speedup(channels_last=True)]  # no autocast or compile on the CPU
    assert choice == Speedup(channels_last=True)
    assert trials[0].ms_per_batch >= 20 > trials[1].ms_per_batch and trials[1].rel_error < 1e-6


def test_an_option_that_changes_the_outputs_is_not_kept_however_fast():
    choice, trials = choose(LayoutSensitive(changes=True), torch.rand(2, 3, 16, 16), torch.device("cpu"), True, repeats=2)
    assert choice == PLAIN and not trials[1].kept and trials[1].rel_error == pytest.approx(1.0, rel=1e-6)


class Steady(nn.Module):
    """20 ms whatever the layout: no option can meet the 10% margin."""

    def forward(self, x):
        time.sleep(0.02)
        return x.flatten(1)


def test_an_option_no_faster_than_the_plain_model_is_not_taken():
    choice, trials = choose(Steady(), torch.rand(2, 3, 8, 8), torch.device("cpu"), True, repeats=3)
    assert choice == PLAIN and all(t.kept for t in trials)


def test_the_choice_is_cached_and_a_new_engine_uses_it(settings_env):
    engine = Engine(device="cpu")
    loaded = engine.load("resnet18", "random")
    assert not loaded.tuned and loaded.speedup == PLAIN
    x = [torch.rand(3, 32, 32) for _ in range(2)]
    trials = engine.tune(loaded, x)
    assert [t.speedup.channels_last for t in trials] == [False, True] and all(t.ms_per_batch > 0 for t in trials)
    stored = json.loads((engine.choices.path).read_text())
    entry = stored[cache_key("resnet18", loaded.weights_key, torch.device("cpu"))]
    assert entry["shape"] == [2, 3, 32, 32] and [t["option"] for t in entry["trials"]] == ["plain", "channels_last"]
    again = Engine(device="cpu").load("resnet18", "random")
    assert again.tuned and again.speedup == loaded.speedup
    outputs, stats = Engine(device="cpu").run(again, x, batch_size=2)
    with torch.inference_mode():
        direct = again.module.to(memory_format=torch.contiguous_format)(torch.stack(x))
    assert torch.allclose(torch.stack(outputs), direct, atol=1e-4)
    assert stats.speedup == again.speedup.tag


class Broken(nn.Module):
    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory")


def test_measuring_a_model_that_cannot_run_the_batch_is_an_error_not_a_choice():
    with pytest.raises(RuntimeError, match="failed to run"):
        choose(Broken(), torch.rand(1, 3, 8, 8), torch.device("cpu"), True, repeats=1)


def test_a_failed_measurement_keeps_the_default_options_and_is_not_retried(settings_env, monkeypatch):
    import core.engine as engine_module

    engine = Engine(device="cpu")
    loaded = engine.load("gaussian_denoise")
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("out of memory")
    monkeypatch.setattr(engine_module, "choose", failing)
    engine._tune_once(loaded, [torch.rand(3, 8, 8)])
    engine._tune_once(loaded, [torch.rand(3, 8, 8)])
    assert calls == [1] and loaded.tune_failed and not loaded.tuned and not engine.choices.path.exists()


def test_a_damaged_cache_file_is_ignored(tmp_path):
    path = tmp_path / "tuning.json"
    cache = ChoiceCache(path)
    for text in ("{not json", "[1, 2]", json.dumps({"k": {"choice": {"warp": 9}}}), json.dumps({"k": "x"})):
        path.write_text(text)
        assert cache.get("k") is None
    cache.put("k", Speedup(channels_last=True), [], (1, 3, 8, 8))
    assert cache.get("k") == Speedup(channels_last=True)


def test_the_cache_keeps_the_newest_entries(tmp_path, monkeypatch):
    import core.tuning as tuning

    monkeypatch.setattr(tuning, "MAX_ENTRIES", 3)
    cache = ChoiceCache(tmp_path / "tuning.json")
    for i in range(5):
        cache.put(f"m{i}", PLAIN, [], (1,))
    assert list(json.loads(cache.path.read_text())) == ["m2", "m3", "m4"]


def test_stored_timings_name_the_speed_options_and_the_clock(settings_env):
    engine = Engine(device="cpu")
    loaded = engine.load("gaussian_denoise")
    _, stats = engine.run(loaded, [torch.rand(3, 8, 8)], batch_size=1)
    stats.speedup, stats.clock = "channels_last+bfloat16", "cuda_events"
    assert engine_metrics(stats)[0].convention.endswith(",mem=process_rss,opt=channels_last+bfloat16,clock=cuda_events")


@needs_cuda
def test_the_gpu_path_overlaps_copies_and_keeps_outputs_and_per_batch_times(settings_env):
    settings_env(IMGLAB_TUNE=0)
    engine = Engine(device="cuda")
    loaded = engine.load("efficientnet_lite0")
    inputs = [torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(i)) for i in range(70)]
    outputs, stats = engine.run(loaded, inputs, batch_size=32, warmup=1)
    assert stats.clock == "cuda_events" and stats.batch_items == [32, 32, 6] and len(stats.batch_ms) == 3
    assert all(0 < ms < stats.total_ms for ms in stats.batch_ms)
    assert all(o.device.type == "cpu" and o.dtype == torch.float32 for o in outputs)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        direct = loaded.module(torch.stack(inputs[:32]).cuda()).float().cpu()
    assert torch.equal(torch.stack(outputs[:32]).argmax(1), direct.argmax(1))


@needs_cuda
def test_tuning_on_the_gpu_measures_layout_and_autocast(settings_env):
    engine = Engine(device="cuda")
    loaded = engine.load("efficientnet_lite0")
    trials = engine.tune(loaded, [torch.rand(3, 224, 224) for _ in range(32)])
    assert {t.speedup.tag for t in trials} >= {"plain", "channels_last", "bfloat16", "channels_last+bfloat16"}
    assert loaded.tuned and all(t.rel_error < 0.05 for t in trials if t.speedup.dtype == "float32")
