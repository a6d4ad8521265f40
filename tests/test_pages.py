"""The pages driven through Streamlit's AppTest, as a user clicks them."""
import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import shown

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def app(db_url):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    return at


def chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_playground_classifies_sample_photos_and_stores_the_run(app):
    app.multiselect(key="cls_samples").set_value(["chelsea", "coffee"])
    app.button(key="cls_run").click().run()
    assert not app.exception and not app.error
    specs = chart_specs(app)
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert titles == ["Top-5: tiger cat", "Top-5: espresso"]
    bars = specs[0]["data"][0]
    assert len(bars["x"]) == 5 and bars["y"][-1] == "tiger cat"
    labels = {m.label: m.value for m in app.metric}
    assert labels["Device (float32)"] == "cpu" and labels["Total"].endswith(" ms")
    assert any("Stored as run #1" in c.value for c in app.caption)

    app.switch_page("pages/results.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["model"]) == ["efficientnet_lite0"] and table["weights"].iloc[0] == "pretrained"
    assert len(app.get("plotly_chart")) == 1


def test_missing_weights_are_explained_and_random_init_is_labelled(app):
    app.selectbox(key="cls_model").select_index(
        [o for o in app.selectbox(key="cls_model").options].index("ResNet-18 — weights missing")).run()
    assert any("not available" in w.value for w in app.warning)
    app.multiselect(key="cls_samples").set_value(["chelsea"])
    app.button(key="cls_run").click().run()
    assert not app.exception
    assert any("resnet18.safetensors" in shown(e.value) for e in app.error)
    app.checkbox(key="cls_random").check().run()
    app.button(key="cls_run").click().run()
    assert not app.exception
    assert any("Untrained model" in e.value for e in app.error)
    app.switch_page("pages/results.py").run()
    assert app.dataframe[0].value["weights"].iloc[0] == "untrained (random)"


def test_classify_without_images_asks_for_one(app):
    app.button(key="cls_run").click().run()
    assert not app.exception
    assert any("Upload an image" in i.value for i in app.info)


def test_denoise_shows_metrics_and_before_after(app):
    app.segmented_control(key="task").set_value("Denoise").run()
    app.selectbox(key="res_sample").set_value("camera")
    app.slider(key="res_side").set_value(128)
    app.slider(key="res_sigma").set_value(30)
    app.button(key="res_run").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    # every method with weights is preselected: the published and this project's CNNs beside the filters
    assert list(table["method"]) == ["degraded input", "FFDNet (published weights)", "Bilateral filter", "DnCNN",
                                   "Gaussian filter (σ=1)", "Median filter (3x3)", "Non-local means", "U-Net denoiser"]
    weights = dict(zip(table["method"], table["weights"]))
    assert weights["DnCNN"] == weights["U-Net denoiser"] == "trained by this project"
    assert weights["FFDNet (published weights)"] == "pretrained"
    assert weights["Non-local means"] == "none (classical method)"
    noisy = table["psnr"].iloc[0]
    assert 18 < noisy < 20 and (table["psnr"].iloc[1:] > noisy).all()
    assert table["psnr"].iloc[1] == table["psnr"].max()  # FFDNet's published weights beat the classical filters
    assert table["note"].iloc[1] == "noise level 30 (from the degradation)"  # the level FFDNet was given
    assert len(app.get("image")) == 4  # before/after composite, then clean / input / output
    app.slider(key="res_split").set_value(20).run()
    assert not app.exception

    app.switch_page("pages/results.py").run()
    app.selectbox(key="res_metric").set_value("psnr").run()
    spec = chart_specs(app)[0]
    assert spec["layout"]["title"]["text"].startswith(
        "PSNR (dB) ↑ on camera (sample photo), noise σ 30 (Playground run, not a benchmark)<br><sup>RGB, values 0-255, no border crop")
    assert set(spec["data"][0]["x"]) == {"ffdnet", "bilateral_denoise", "dncnn", "gaussian_denoise",
                                         "median_denoise", "nlm_denoise", "unet_denoise"}


def test_super_resolution_flow(app):
    app.segmented_control(key="task").set_value("Super-resolution").run()
    app.segmented_control(key="res_scale").set_value(4).run()
    app.slider(key="res_side").set_value(128)
    app.button(key="res_run").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert list(table["method"]) == ["Bicubic x4", "EDSR-lite x4", "SRCNN x4"] and 17 < table["psnr"].iloc[0] < 25
    assert table["psnr"].iloc[1] > table["psnr"].iloc[0]  # this project's EDSR-lite beats bicubic


def test_results_page_with_an_empty_store(app):
    app.switch_page("pages/results.py").run()
    assert not app.exception
    assert any("No runs stored yet" in i.value for i in app.info)


def test_results_query_param_with_a_hostile_id(app):
    app.multiselect(key="cls_samples").set_value(["coffee"])
    app.button(key="cls_run").click().run()
    app.switch_page("pages/results.py")
    app.query_params["run"] = "../../etc/passwd"
    app.run()
    assert not app.exception
    assert any("Run id must be a number" in e.value for e in app.error)


def test_detection_panel_refilters_without_rerunning(app):
    app.segmented_control(key="task").set_value("Detection").run()
    options = app.selectbox(key="det_model").options
    app.selectbox(key="det_model").select_index(options.index("SSDlite320 MobileNetV3-L — weights missing")).run()
    assert any("torch hub cache" in w.value for w in app.warning)
    app.checkbox(key="det_random").check()
    app.multiselect(key="det_samples").set_value(["astronaut"])
    app.button(key="det_run").click().run()
    assert not app.exception
    assert any("Untrained model" in e.value for e in app.error)
    assert any("Stored as run #1" in c.value for c in app.caption)
    app.slider(key="det_threshold").set_value(1.0).run()
    assert not app.exception
    assert any(": 0 detections" in (img.proto.imgs[0].caption if img.proto.imgs else "") for img in app.get("image"))


def test_segmentation_panel_with_the_watershed_baseline(app):
    app.segmented_control(key="task").set_value("Segmentation").run()
    app.radio(key="seg_kind").set_value("instance").run()
    options = app.selectbox(key="seg_instance_model").options
    app.selectbox(key="seg_instance_model").select_index(options.index("Watershed")).run()
    app.multiselect(key="seg_samples").set_value(["coins"])
    app.button(key="seg_run").click().run()
    assert not app.exception and not app.error
    instances = app.dataframe[0].value
    assert 20 <= len(instances) <= 35 and set(instances["class"]) == {"object"}


def test_deblur_and_generation_panels(app):
    app.segmented_control(key="task").set_value("Deblur").run()
    app.slider(key="res_side").set_value(128)
    app.button(key="res_run").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert list(table["method"]) == ["degraded input", "Richardson-Lucy (PSF σ=2)", "U-Net deblur", "Wiener (PSF σ=2)"]
    assert table["psnr"].iloc[2] == table["psnr"].max()  # this project's deblur U-Net beats Wiener and R-L

    app.segmented_control(key="task").set_value("Generation").run()
    assert app.selectbox(key="gen_model").value.name == "cdcgan_digits"  # reference weights: no random option
    app.button(key="gen_run").click().run()
    assert not app.exception and not app.error
    assert any("trained by this project" in c.value for c in app.caption)
    assert len(app.get("image")) == 1


def test_classification_grad_cam_toggle(app):
    app.multiselect(key="cls_samples").set_value(["coffee"])
    app.button(key="cls_run").click().run()
    app.toggle(key="cls_cam").set_value(True).run()
    assert not app.exception and not app.error
    assert len(app.get("image")) == 2  # the photo and its Grad-CAM


def test_models_page_lists_the_zoo_and_refuses_an_empty_upload(app):
    app.switch_page("pages/models.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert len(table) >= 40
    status = dict(zip(table["name"], table["weights"]))
    assert status["efficientnet_lite0"] == "available" and status["nlm_denoise"] == "parameter-free"
    assert status["fasterrcnn_resnet50_fpn"] == "missing → untrained only"
    licence = dict(zip(table["name"], table["license"]))
    assert licence["ffdnet"] == "GPL-3.0 (IPOL FFDNet weights, ffdnet 0.1.4)" and licence["mtcnn_face"] == "mit"
    app.button(key="ckpt_add").click().run()
    assert any("Choose a checkpoint file" in i.value for i in app.info)


def launch_small_training(app, name: str, epochs: int) -> None:
    """On the Fine-tune page with small_cnn_digits chosen: a few steps on 16 shapes images, launched."""
    app.selectbox(key="ft_dataset").select("shapes").run()
    app.number_input(key="ft_epochs").set_value(epochs)
    app.number_input(key="ft_steps").set_value(4)
    app.number_input(key="ft_size").set_value(16)
    app.number_input(key="ft_bs").set_value(8)
    app.text_input(key="ft_name").input(name)
    app.button(key="ft_launch").click().run()


def _wait_job_done(job_id, timeout=120):
    import time

    from core import services

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = services.job_status(job_id)
        if job.status in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError("job did not finish")


def test_benchmark_page_launches_a_job_and_shows_its_results(app):
    from core import services

    app.switch_page("pages/benchmark.py").run()
    assert not app.exception
    app.selectbox(key="bm_task").select("detection").run()
    ds = app.selectbox(key="bm_dataset")
    assert [o for o in ds.options][0].startswith("Synthetic shapes")
    app.number_input(key="bm_shapes-detect_count").set_value(12).run()
    app.multiselect(key="bm_models").set_value(["shape_regions"]).run()
    app.button(key="bm_launch").click().run()
    assert not app.exception and not app.error
    assert any("queued" in s.value for s in app.success)
    job = services.list_jobs("benchmark")[0]
    assert job.params["dataset"] == {"name": "shapes-detect", "count": 12, "seed": 0}
    assert _wait_job_done(job.id).status == "done"
    app.run()
    assert not app.exception
    assert any(f"#{job.id}" in m.value and "`done`" in m.value for m in app.markdown)
    runs = app.dataframe[0].value
    assert list(runs["model"]) == ["shape_regions"] and runs["f1"].iloc[0] > 0.8
    finished = services.job_status(job.id)
    assert runs["link"].iloc[0] == f"/results?run={finished.result['run_ids'][0]}"


def test_benchmark_page_refuses_a_hostile_archive_and_keeps_working(app):
    import io
    import zipfile

    app.switch_page("pages/benchmark.py").run()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.png", b"x")
    from core.services import upload_dataset
    from core.errors import LabError

    with pytest.raises(LabError, match="leaves its folder"):
        upload_dataset(buf.getvalue(), "evil.zip")
    app.selectbox(key="bm_task").select("restoration").run()
    assert not app.exception
    names = [o for o in app.selectbox(key="bm_dataset").options]
    assert names[0] == "skimage photos + Gaussian noise" and not any(n.startswith("uploaded") for n in names)


def test_finetune_page_trains_a_model_and_draws_its_curves(app, no_reference_weights):
    from core import services

    app.switch_page("pages/finetune.py").run()
    assert not app.exception
    assert app.selectbox(key="ft_task").value == "classification"
    assert app.selectbox(key="ft_base").value == "efficientnet_lite0"  # real weights: listed first
    assert app.radio(key="ft_start_efficientnet_lite0").value.startswith("pretrained")
    app.selectbox(key="ft_base").select("small_cnn_digits").run()
    assert app.radio(key="ft_start_small_cnn_digits").value.startswith("scratch")  # no weights: scratch preselected
    launch_small_training(app, "page-shapes-cnn", epochs=2)
    assert not app.exception and not app.error
    job = services.list_jobs("train")[0]
    assert job.params["config"]["name"] == "page-shapes-cnn" and job.params["config"]["pretrained"] is False
    assert _wait_job_done(job.id, timeout=240).status == "done"
    app.run()
    assert not app.exception
    [fig] = chart_specs(app)
    names = {trace["name"] for trace in fig["data"]}
    assert names == {f"#{job.id} adam: train_loss", f"#{job.id} adam: val_accuracy"}
    x = fig["data"][0]["x"]  # plotly 7 sends numeric arrays base64-typed
    epochs = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"]).tolist() if isinstance(x, dict) else x
    assert epochs == [1, 2]
    assert "page-shapes-cnn" in [i.name for i in services.list_model_infos("classification")]
    # the job, its test run and the model it trained belong to whoever launched it (the local user here)
    [trained] = [m for m in services.stored_models() if m.name == "page-shapes-cnn"]
    assert (job.owner, trained.owner, trained.origin) == ("local", "local", f"trained by job #{job.id}")


def test_finetune_page_refuses_a_bad_name_without_queueing(app):
    from core import services

    app.switch_page("pages/finetune.py").run()
    app.text_input(key="ft_name").input("../../etc/passwd")
    app.button(key="ft_launch").click().run()
    assert not app.exception
    assert any("lower-case letters" in shown(e.value) for e in app.error)
    assert services.list_jobs("train") == []


def test_compare_page_shows_an_optimizer_sweep_and_keeps_it_in_the_url(app):
    from core import services

    app.query_params["view"] = "sweep"
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    assert any("No sweep yet" in i.value for i in app.info)
    ids = services.submit_sweep({"base": "small_cnn_digits", "dataset": "shapes", "pretrained": False, "epochs": 2,
                                 "max_steps": 4, "train_size": 16, "batch_size": 8, "test_limit": 4})
    for job_id in ids:
        assert _wait_job_done(job_id, timeout=240).status == "done"
    app.run()
    assert not app.exception and not app.error
    [sweep] = services.sweeps()
    assert app.query_params["sweep"] == [sweep] or app.query_params["sweep"] == sweep
    table = app.dataframe[0].value
    assert list(table["optimizer"]) == ["sgd", "adam", "adagrad"] and table["test"].between(0, 1).all()
    bars, curves = chart_specs(app)
    assert [t["name"] for t in bars["data"]] == ["train", "validation", "test"]
    assert {t["name"] for t in curves["data"]} == {f"#{i} {o}: {c}" for i, o in zip(ids, ("sgd", "adam", "adagrad"))
                                                   for c in ("train_loss", "val_accuracy")}

    # a teammate opens the jobs view from a link
    shared = AppTest.from_file(APP, default_timeout=180)
    shared.query_params["jobs"] = f"{ids[1]},{ids[2]},999"
    shared.switch_page("pages/compare.py").run()
    assert not shared.exception
    assert shared.selectbox(key="cmp_view").value == "jobs"
    assert shared.multiselect(key="cmp_jobs").value == [ids[1], ids[2]]
    rows = shared.dataframe[0].value
    assert list(rows["optimizer"]) == ["adam", "adagrad"] and rows["test_run"].str.startswith("/results?run=").all()


def test_a_repeated_sweep_shows_mean_and_spread_per_optimizer(app):
    """Finished sweep jobs as the workers leave them (two random starts per optimizer): the Compare view averages
    the repeats and draws one standard deviation."""
    from core.store import ensure_store
    from db import jobs as job_rows

    url = ensure_store()
    tests = {("sgd", 0): 0.60, ("adam", 0): 0.80, ("sgd", 1): 0.70, ("adam", 1): 0.84}
    for (opt, seed), test in tests.items():
        job = job_rows.create(url, "train", f"train {opt}", {"config": {"optimizer": opt, "sweep": "ab12cd34",
                                                                        "seed": seed}}, "cpu")
        job_rows.finish(url, job, "done", "done", {"train_accuracy": test + 0.1, "val_accuracy": test, "test_top1": test},
                        from_states=("queued",))
    app.query_params["view"] = "sweep"
    app.switch_page("pages/compare.py").run()
    assert not app.exception and not app.error
    summary = next(d.value for d in app.dataframe if "repeats" in d.value.columns).set_index(["optimizer", "split"])
    assert summary.loc[("sgd", "test"), "mean"] == pytest.approx(0.65)
    assert summary.loc[("sgd", "test"), "std"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert summary.loc[("adam", "train"), "mean"] == pytest.approx(0.92) and summary.loc[("adam", "test"), "repeats"] == 2
    bars = chart_specs(app)[0]
    assert [t["name"] for t in bars["data"]] == ["train", "validation", "test"]
    assert bars["data"][2]["x"] == ["sgd", "adam"] and "error_y" in bars["data"][2]
