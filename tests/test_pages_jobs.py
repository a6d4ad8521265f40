"""The Benchmark and Fine-tune pages' jobs as a user follows them (AppTest): launch, live state, result, curves."""
import json
import os

from tests.test_pages import _wait_job_done, app, launch_small_training  # noqa: F401  (fixture)

TINY = {"base": "small_cnn_digits", "dataset": "shapes", "pretrained": False, "epochs": 1, "max_steps": 4,
        "train_size": 16, "batch_size": 8, "test_limit": 4}


def page_links(at) -> list[tuple[str, str]]:
    return [(e.proto.label, e.proto.page) for e in at.get("page_link")]


def test_benchmark_of_a_model_without_weights_is_refused_at_launch(app):
    from core import services

    app.switch_page("pages/benchmark.py").run()
    app.selectbox(key="bm_dataset").select_index(1).run()  # synthetic shapes, classification
    app.multiselect(key="bm_models").set_value(["resnet18"]).run()
    assert any("resnet18" in w.value for w in app.warning)
    app.button(key="bm_launch").click().run()
    assert not app.exception
    [error] = app.error
    assert error.value.replace("\\", "").startswith("No pretrained weights for resnet18 on this server, so")
    assert "Models page" in error.value and "random weights" in error.value
    assert services.list_jobs("benchmark") == [] and not app.success


def test_the_launch_notice_follows_the_job_and_never_calls_a_failed_job_queued(app):
    from core import services

    app.switch_page("pages/benchmark.py").run()
    app.selectbox(key="bm_dataset").select_index(1).run()
    app.number_input(key="bm_shapes-classify_count").set_value(8).run()
    app.multiselect(key="bm_models").set_value(["small_cnn_digits"]).run()  # digits: it cannot name shapes
    app.button(key="bm_launch").click().run()
    assert not app.exception and not app.error
    job = services.list_jobs("benchmark")[0]
    assert any(s.value.startswith(f"Job #{job.id} queued.") for s in app.success)
    assert _wait_job_done(job.id).status == "failed"
    app.run()  # the next poll of the page
    assert not app.exception
    assert not any("queued" in s.value for s in app.success)
    notice = [e.value for e in app.error if e.value.startswith(f"Job #{job.id} failed: ")]
    assert len(notice) == 1 and "does not know the dataset" in notice[0]

    app.multiselect(key="bm_models").set_value(["resnet18"]).run()  # no weights: refused at launch
    app.button(key="bm_launch").click().run()
    errors = [e.value for e in app.error]
    assert any("No pretrained weights for resnet18" in e for e in errors)
    assert not any(e.startswith(f"Job #{job.id}") for e in errors)  # the previous job's notice is gone


def test_a_finished_training_job_shows_its_model_scores_and_links_and_a_failed_one_is_explained(app):
    from core import services

    app.switch_page("pages/finetune.py").run()
    app.selectbox(key="ft_base").select("small_cnn_digits").run()
    launch_small_training(app, "panel-cnn", epochs=1)
    assert not app.exception and not app.error
    job = services.list_jobs("train")[0]
    assert job.title == "train small_cnn_digits on shapes (adam, lr 0.001, 1 epoch)"
    done = _wait_job_done(job.id, timeout=240)
    assert done.status == "done"
    app.run()
    assert not app.exception
    assert any(s.value == f"Job #{job.id} finished: model **panel\\-cnn** is registered." for s in app.success)
    assert any(m.value.startswith("Trained model: **panel\\-cnn**") for m in app.markdown)
    scores = app.table[0].value
    assert list(scores.columns) == ["held-out test score", "value"]
    values = dict(zip(scores["held-out test score"], scores["value"]))
    assert values["top-1 accuracy"] == f"{100 * done.result['test_top1']:.1f} %"
    assert "peak memory" not in values
    run = done.result["run_id"]
    links = page_links(app)
    assert (f"Test run #{run}", "results") in [(label, page.rsplit("/", 1)[-1].removesuffix(".py"))
                                                for label, page in links]
    link_protos = {e.proto.label: e.proto for e in app.get("page_link")}
    assert link_protos[f"Test run #{run}"].query_string == f"run={run}"
    assert link_protos[f"Compare job #{job.id} with other training jobs"].query_string == f"view=jobs&jobs={job.id}"

    # a one-epoch curve: accuracy on a 0-100% axis
    [fig] = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert fig["layout"]["yaxis2"]["range"] == [0, 1.05] and fig["layout"]["yaxis2"]["tickformat"] == ".0%"

    # a job that fails before its first epoch: the curve picker says so in words
    failing = services.submit_training({**TINY, "dataset": "upload", "upload_id": "no-such-upload"})
    assert _wait_job_done(failing).status == "failed"
    app.run()
    assert not app.exception
    assert app.multiselect(key="ft_curves").value == [job.id]  # kept on the job that has curves
    app.multiselect(key="ft_curves").set_value([failing, job.id]).run()
    assert any(i.value == f"Job #{failing} stored no epoch: it failed before the first epoch ended." for i in app.info)
    assert len(app.get("plotly_chart")) == 1


def test_time_left_appears_only_once_the_bar_has_moved_and_never_reads_zero(app, monkeypatch):
    from core.store import ensure_store
    from db import jobs as job_rows
    import ui.jobs_panel as panel

    url = ensure_store()
    job_id = job_rows.create(url, "benchmark", "dncnn on photos", {"models": ["dncnn"]}, "cpu-eta-test")
    assert job_rows.claim_next(url, ("cpu-eta-test",)).id == job_id
    app.switch_page("pages/benchmark.py").run()
    assert any("starting a worker process" in p.proto.text for p in app.get("progress"))
    assert job_rows.mark_running(url, job_id, os.getpid())
    clock = {"now": 1000.0}
    monkeypatch.setattr(panel, "_clock", lambda: clock["now"])

    def poll(now, progress=None, message=None):
        clock["now"] = now
        if progress is not None:
            job_rows.heartbeat(url, job_id, progress, message)
        app.run()
        assert not app.exception
        [line] = [m.value for m in app.markdown if f"**#{job_id}**" in m.value]
        return line

    assert poll(1000, 0.1, "model 1/1: DnCNN — image 1/10").endswith("`running` on cpu\\-eta\\-test")
    assert "left" not in poll(1002, 0.2, "model 1/1: DnCNN — image 2/10")
    assert poll(1012, 0.4, "model 1/1: DnCNN — image 4/10").endswith(" · about 30 s left")
    assert poll(1040).endswith(" · less than 5 s left")
    assert poll(1050).endswith("`running` on cpu\\-eta\\-test")  # overdue at 40%: no "about 0 s left"
    assert any("image 4\\/10" in p.proto.text for p in app.get("progress"))  # as plain text
    job_rows.finish(url, job_id, "cancelled", "test over")


def test_a_finished_benchmarks_results_use_readable_headers_quality_first(app):
    from core import services

    job_id = services.submit_benchmark(["gaussian_denoise", "median_denoise"],
                                       {"name": "photos-denoise", "limit": 1, "max_side": 64}, {"batch_size": 2})
    assert _wait_job_done(job_id).status == "done"
    app.switch_page("pages/benchmark.py").run()
    assert not app.exception
    [table] = [d for d in app.dataframe if "psnr" in d.value.columns]
    assert list(table.value.columns[:4]) == ["model", "weights", "psnr", "ssim"]  # quality before timing
    headers = {k: v.get("label") for k, v in json.loads(table.proto.columns).items()}
    assert headers["psnr"] == "PSNR (dB) ↑" and headers["ssim"] == "SSIM ↑"
    assert headers["latency_ms_per_image"] == "latency (ms/image) ↓"
