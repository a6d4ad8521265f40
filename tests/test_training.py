"""Fine-tuning jobs: a tiny job of every trainable task in real worker processes, its model registered and
benchmarked; OOM halving through the fault hook; cancel removes partial files; the optimizer sweep."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInput
from tests.test_jobs import wait_for

TINY = {"epochs": 1, "max_steps": 2, "train_size": 16, "batch_size": 8, "pretrained": False, "test_limit": 4}


@pytest.fixture
def jobs(settings_env):
    from core import services
    from core.jobs import runner
    from core.models import registry

    registry.list_models()
    before = set(registry._REGISTRY)
    yield services
    for job in runner.list_jobs():
        if job.active or job.status == "queued":
            runner.cancel(job.id)
    for name in set(registry._REGISTRY) - before:
        registry.unregister_model(name)


def finished(services, job_id, timeout=240):
    job = wait_for(lambda: (j := services.job_status(job_id)).status in ("done", "failed", "cancelled") and j,
                   timeout=timeout, interval=0.5)
    assert job.status == "done", (job.message, services.job_logs(job_id)[-3000:])
    return job


def test_a_tiny_job_of_every_trainable_task_registers_its_model(jobs):
    from core.models.registry import get_spec

    configs = [
        {"base": "small_cnn_digits", "dataset": "shapes", "augment": ["flip", "crop", "color", "noise"]},
        {"base": "dncnn", "dataset": "patches", "patch": 32},
        {"base": "unet_shapes", "dataset": "shapes"},
        {"base": "dcgan_shapes", "dataset": "shapes"},
        {"base": "fasterrcnn_mobilenet_v3_large_fpn", "dataset": "shapes", "max_steps": 1, "train_size": 8,
         "batch_size": 2, "test_limit": 2},
    ]
    ids = [jobs.submit_training({**TINY, **c}) for c in configs]
    for job_id, cfg in zip(ids, configs):
        job = finished(jobs, job_id)
        r = job.result
        spec = get_spec(r["model"])
        assert spec.source == "checkpoint" and spec.base == cfg["base"] and r["model"].endswith(f"job{job_id}")
        assert r["steps"] == cfg.get("max_steps", 2) and r["epochs_run"] == 1 and r["run_id"] is not None
        assert r["epoch_time_s"] > 0 and r["peak_mem_mb"] > 0 and r["time_to_best_s"] >= 0
        detail = jobs.run_detail(r["run_id"])
        assert detail.model == r["model"] and detail.kind == "benchmark" and detail.weights_status == "pretrained"
        curves = jobs.curves([job_id])
        assert r["metric"] in set(curves["name"]) and set(curves["epoch"]) == {1}
        assert curves["convention"].notna().all()  # every point says how it was measured
        notes = jobs.curve_notes(curves, [r["metric"], "lr"])
        assert len(notes) == 2 and notes[1] == "lr: learning rate at the end of the epoch"
        if cfg["base"] == "dcgan_shapes":  # the per-epoch FD: few samples, biased, and said so
            assert "n_gen=64" in notes[0] and "compare epochs of this job only" in notes[0]
    classifier = get_spec(jobs.job_status(ids[0]).result["model"])
    assert classifier.categories == ("circle", "square", "triangle")  # its own head, not the digits' 10 classes


def test_oom_halves_the_batch_and_the_job_still_finishes(jobs, monkeypatch):
    from core.config import get_settings
    from core.jobs import runner
    from core.jobs.context import JobContext
    from core.training import loops
    from core.training.run import run_training_job
    from db import jobs as rows

    monkeypatch.setenv(loops.FAULT_ENV, "8")
    get_settings.cache_clear()  # settings are read once; this test's hook is read afresh
    url = jobs.ensure_store()
    job_id = rows.create(url, "train", "oom", {}, "cpu")
    rows.claim_next(url)
    rows.mark_running(url, job_id, 2**22 + 4321)  # no such process: nothing to kill at teardown
    ctx = JobContext(url, job_id, "cpu", runner.log_path(job_id))
    result = run_training_job({"config": {**TINY, "base": "small_cnn_digits", "dataset": "shapes", "batch_size": 32, "train_size": 64,
                                          "max_steps": 3}, "device": "cpu"}, ctx)
    assert result["final_batch_size"] == 8 and result["oom_halvings"] == 2 and result["steps"] == 3
    assert "batch size halved to 8" in jobs.job_logs(job_id)
    rows.finish(url, job_id, "done", "ok", result)


def test_cancel_removes_the_jobs_partial_files(jobs):
    from core.jobs import runner

    job_id = runner.submit("sleep", {"seconds": 60, "partial": True}, title="partial")
    wait_for(lambda: (runner.work_dir(job_id) / "partial.bin").exists())
    assert jobs.cancel_job(job_id)
    assert not runner.work_dir(job_id).exists()


def test_sweep_launches_one_job_per_optimizer_and_tabulates_them(jobs, capsys):
    import json

    from scipy import stats

    from core.__main__ import main

    ids = jobs.submit_sweep({**TINY, "base": "small_cnn_digits", "dataset": "shapes", "seed": 5}, ("sgd", "adam"),
                            repeats=2)
    for job_id in ids:
        finished(jobs, job_id)
    [sweep] = jobs.sweeps()
    table = jobs.sweep_table(sweep)
    assert list(table["optimizer"]) == ["sgd", "adam", "sgd", "adam"] and list(table["seed"]) == [5, 5, 6, 6]
    for col in ("train", "validation", "test"):
        assert table[col].between(0, 1).all()
    summary = jobs.sweep_summary(table).set_index(["optimizer", "split"])
    assert list(summary.index.get_level_values("optimizer").unique()) == ["sgd", "adam"]
    for opt in ("sgd", "adam"):
        test = table.loc[table["optimizer"] == opt, "test"].to_numpy(float)
        row = summary.loc[(opt, "test")]
        assert row["repeats"] == 2 and row["mean"] == pytest.approx(test.mean())
        assert row["std"] == pytest.approx(test.std(ddof=1))
        half = stats.t.ppf(0.975, 1) * test.std(ddof=1) / np.sqrt(2)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((test.mean() - half, test.mean() + half))
    capsys.readouterr()
    assert main(["sweep", "--json"]) == 0  # the same tables for a script
    out = json.loads(capsys.readouterr().out)
    assert out["sweep"] == sweep and [j["job"] for j in out["jobs"]] == ids
    assert {(r["optimizer"], r["split"]): r["mean"] for r in out["summary"]}[("adam", "test")] == pytest.approx(
        summary.loc[("adam", "test"), "mean"])
    assert main(["sweep", "--id", "../x"]) == 2


def test_bad_training_requests_are_refused(jobs, no_reference_weights):
    with pytest.raises(InvalidInput, match="cannot be trained"):
        jobs.submit_training({"base": "gaussian_denoise", "dataset": "patches"})
    with pytest.raises(InvalidInput, match="trains on digits, shapes, upload"):
        jobs.submit_training({"base": "small_cnn_digits", "dataset": "patches", "pretrained": False})
    with pytest.raises(InvalidInput, match="Unknown training parameter"):
        jobs.submit_training({"base": "small_cnn_digits", "dataset": "digits", "rm": 1})
    with pytest.raises(InvalidInput, match="no pretrained weights here"):
        jobs.submit_training({"base": "small_cnn_digits", "dataset": "digits", "pretrained": True})
    with pytest.raises(InvalidInput, match="learning rate"):
        jobs.submit_training({"base": "small_cnn_digits", "dataset": "digits", "lr": -1, "pretrained": False})
    with pytest.raises(InvalidInput, match="Sweep optimizers"):
        jobs.submit_sweep({"base": "small_cnn_digits", "dataset": "digits"}, ("lbfgs",))
    for repeats in (0, 6, True, 2.5):
        with pytest.raises(InvalidInput, match="1 to 5 times"):
            jobs.submit_sweep({"base": "small_cnn_digits", "dataset": "digits", "pretrained": False}, repeats=repeats)
    assert jobs.list_jobs("train") == []


def test_transfer_learning_on_an_uploaded_imagefolder(jobs):
    """An ImageFolder zip (two classes) trains a classifier whose head has the folders' classes."""
    from core.jobs import runner
    from core.jobs.context import JobContext
    from core.models.registry import get_spec
    from core.training.run import run_training_job
    from db import jobs as rows
    from tests.conftest import shapes_imagefolder

    upload = jobs.upload_dataset(shapes_imagefolder(24), "shapes.zip")
    url = jobs.ensure_store()
    job_id = rows.create(url, "train", "upload", {}, "cpu")
    rows.claim_next(url)
    rows.mark_running(url, job_id, 2**22 + 4322)
    ctx = JobContext(url, job_id, "cpu", runner.log_path(job_id))
    result = run_training_job({"config": {**TINY, "base": "small_cnn_digits", "dataset": "upload",
                                          "upload_id": upload.id, "freeze_backbone": True}, "device": "cpu"}, ctx)
    rows.finish(url, job_id, "done", "ok", result)
    assert get_spec(result["model"]).categories == ("angular", "round")
    assert 0 <= result["val_accuracy"] <= 1 and "run_id" not in result  # no held-out benchmark for an upload


def test_trainable_models_include_those_without_pretrained_weights(jobs):
    names = jobs.trainable_models("classification")
    assert {"efficientnet_lite0", "small_cnn_digits", "resnet18"} <= set(names)
    assert "efficientnet_lite0_int8" not in names and "efficientnet_lite0_pruned30" not in names
    assert jobs.trainable_models("segmentation") == ["unet_shapes"]
