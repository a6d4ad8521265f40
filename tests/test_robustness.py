"""Robustness sweeps: the corruptions (ImageNet-C's kinds and severities), corrupted dataset specs, the sweep's
plan and refusals, the area under a degradation curve, a sweep launched from the Benchmark page and drawn on
Compare, and the CLI sweep of denoisers whose noise level follows the level."""
import numpy as np
import pytest

from core.data import corruptions
from core.errors import InvalidInput


def photo() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut()[::4, ::4])  # 128 x 128


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


@pytest.mark.parametrize("name", list(corruptions.CORRUPTIONS))
def test_each_corruption_gets_worse_with_severity_and_is_deterministic(name):
    img = photo()
    out = [corruptions.corrupt(img, name, s, seed=3) for s in corruptions.SEVERITIES]
    distances = [psnr(img, o) for o in out]
    assert all(a > b for a, b in zip(distances, distances[1:])), distances  # farther from the clean image each step
    assert np.array_equal(corruptions.corrupt(img, name, 2, seed=3), out[1])
    assert corruptions.corrupt(img, name, 0) is img


def test_corruption_formulas_on_hand_built_images():
    flat = np.full((8, 8, 3), 100, np.uint8)
    flat[:4] = 200  # two halves: mean 150 per channel
    low = corruptions.corrupt(flat, "contrast", 1)  # c = 0.4: 150 +/- 50 * 0.4
    assert set(np.unique(low).tolist()) == {130, 170}
    gray = np.full((4, 4, 3), 100, np.uint8)  # HSV value 100/255; +0.1 -> 125.5, rounds to 126 (np.rint)
    assert np.unique(corruptions.corrupt(gray, "brightness", 1)).tolist() == [126]
    noisy = corruptions.corrupt(np.full((64, 64, 3), 128, np.uint8), "gaussian_noise", 1, seed=0)
    assert np.std(noisy.astype(float)) == pytest.approx(0.08 * 255, rel=0.05)  # σ 20.4: almost nothing clipped
    with pytest.raises(InvalidInput, match="Unknown corruption"):
        corruptions.corrupt(gray, "fog", 1)
    with pytest.raises(InvalidInput, match="0 \\(clean\\) to 5"):
        corruptions.corrupt(gray, "jpeg", 6)


def test_corrupted_dataset_specs_name_their_level_and_keep_the_targets():
    from core.data.datasets import canonical_spec, load_dataset

    clean = load_dataset({"name": "digits", "limit": 12})
    assert canonical_spec({"name": "digits", "limit": 12, "corruption": "jpeg", "severity": 0}) == clean.spec
    hit = load_dataset({"name": "digits", "limit": 12, "corruption": "gaussian_blur", "severity": 4})
    assert hit.name == "digits(corruption=gaussian_blur,limit=12,severity=4)"
    assert hit.title.endswith("Gaussian blur, severity 4 (σ in px 4)")
    assert [s.target for s in hit.samples] == [s.target for s in clean.samples]
    assert not np.array_equal(hit.samples[0].image, clean.samples[0].image)
    assert hit.content_hash != clean.content_hash
    with pytest.raises(InvalidInput, match="no parameter corruption"):
        canonical_spec({"name": "photos-denoise", "corruption": "jpeg", "severity": 2})
    with pytest.raises(InvalidInput, match="needs a corruption"):
        canonical_spec({"name": "digits", "severity": 2})
    with pytest.raises(InvalidInput, match="between 0 and 5"):
        canonical_spec({"name": "digits", "corruption": "jpeg", "severity": 9})
    for bad in (3.7, True, "2; rm", -1):
        with pytest.raises(InvalidInput, match="whole number from 0"):
            canonical_spec({"name": "digits", "corruption": "jpeg", "severity": bad})
    assert canonical_spec({"name": "digits", "corruption": "jpeg", "severity": "3"})["severity"] == 3
    with pytest.raises(InvalidInput, match="Uploaded datasets are not corrupted"):
        canonical_spec({"name": "upload", "id": "abc", "corruption": "jpeg", "severity": 3})


def test_photos_with_imagenet_labels_match_the_model_vocabulary():
    from core.data.datasets import LABELLED_PHOTOS, load_dataset
    from core.models.registry import get_spec
    from core.tasks.evaluation import category_map, label_names

    ds = load_dataset({"name": "photos-classify", "views": 3})
    assert len(ds.samples) == 15 and ds.samples[0].key == "camera-view0"
    spec = get_spec("efficientnet_lite0")
    names = label_names(spec.labels, 1000)
    cmap = category_map(ds.categories, names, "classes")  # every label is one of ImageNet's, spelled as the model's
    assert [names[i] for i in cmap] == list(dict.fromkeys(LABELLED_PHOTOS.values()))
    views = {s.key: s.image.shape for s in ds.samples}
    assert views["chelsea-view1"] != views["chelsea-view0"]  # a crop, not the whole photo


def test_area_under_the_curve_by_hand():
    import pandas as pd

    from core.services.robustness import area_table

    points = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 2, "level": [0, 1, 3] * 2 + [0, 1],
                           "value": [0.9, 0.7, 0.3, 0.8, 0.8, 0.8, 1.0, 0.5], "run_id": range(8)})
    table = area_table(points, True).set_index("model")
    # a: trapezoids (0.9+0.7)/2*1 + (0.7+0.3)/2*2 = 1.8 over a range of 3
    assert table.loc["a", "area under the curve"] == pytest.approx(1.8 / 3)
    assert table.loc["a", "mean over the corrupted levels"] == pytest.approx(0.5)
    assert table.loc["a", "kept (mean corrupted ÷ clean)"] == pytest.approx(0.5 / 0.9)
    assert table.loc["b", "area under the curve"] == pytest.approx(0.8)
    assert pd.isna(table.loc["c", "area under the curve"])  # missing a level: no area to compare
    assert list(table.index) == ["b", "a", "c"]
    assert pd.isna(area_table(points, False).set_index("model").loc["a", "kept (mean corrupted ÷ clean)"])


def test_sweeps_are_refused_before_anything_is_queued(db_url):
    from core import services
    from core.models.registry import list_models
    from core.services.robustness import submit_robustness

    with pytest.raises(InvalidInput, match="2 to 8 levels"):
        submit_robustness(["small_cnn_digits"], {"name": "digits"}, "jpeg", [3])
    with pytest.raises(InvalidInput, match="whole numbers from 0"):
        submit_robustness(["small_cnn_digits"], {"name": "digits"}, "jpeg", [0, 2.5])
    with pytest.raises(InvalidInput, match="photos-denoise"):
        submit_robustness(["small_cnn_digits"], {"name": "digits"}, "noise_sigma", [5, 25])
    with pytest.raises(InvalidInput, match="not corrupted"):
        submit_robustness(["gaussian_denoise"], {"name": "photos-deblur"}, "jpeg")
    with pytest.raises(InvalidInput, match="builtin sets"):
        submit_robustness(["small_cnn_digits"], {"name": "upload", "id": "x"}, "jpeg")
    every = [s.name for s in list_models("classification")]
    with pytest.raises(InvalidInput, match="at most 20000"):  # 10 models x 6 levels x 360 digits
        submit_robustness(every, {"name": "digits"}, "jpeg", allow_random=True)
    with pytest.raises(InvalidInput, match="cannot be scored"):
        submit_robustness(["gaussian_denoise"], {"name": "digits"}, "jpeg")
    assert services.list_jobs("robustness") == []


def test_a_sweep_launched_from_the_benchmark_page_is_drawn_on_compare(db_url):
    from streamlit.testing.v1 import AppTest

    from core import services
    from core.engine import Engine
    from core.services.benchmark import run_benchmark
    from tests.test_pages import APP, _wait_job_done, chart_specs

    app = AppTest.from_file(APP, default_timeout=180)
    app.switch_page("pages/benchmark.py").run()
    app.selectbox(key="bm_task").select("classification").run()
    assert app.selectbox(key="bm_dataset").value[1].name == "digits"
    app.number_input(key="bm_digits_limit").set_value(24).run()
    app.multiselect(key="bm_models").set_value(["small_cnn_digits"]).run()
    app.selectbox(key="bm_rob_corruption").set_value("gaussian_noise").run()
    app.multiselect(key="bm_rob_levels_gaussian_noise").set_value([0, 5]).run()
    app.button(key="bm_rob_launch").click().run()
    assert not app.exception and not app.error
    [job] = services.list_jobs("robustness")
    assert job.params["sweep"]["levels"] == [0, 5] and job.params["sweep"]["dataset"]["limit"] == 24
    assert _wait_job_done(job.id, timeout=240).status == "done"
    runs = services.job_status(job.id).result["runs"]
    assert [(r["level"], r["model"]) for r in runs] == [(0, "small_cnn_digits"), (5, "small_cnn_digits")]

    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["view"] = "robustness"
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error
    [curve] = chart_specs(at)
    assert curve["data"][0]["name"] == "small_cnn_digits" and curve["layout"]["xaxis"]["title"]["text"] == "severity (0 = clean)"
    areas = at.dataframe[0].value.set_index("model")
    # level 0 is the clean set: the same top-1 as a plain benchmark of those 24 digits
    [clean] = run_benchmark(Engine("cpu"), ["small_cnn_digits"], {"name": "digits", "limit": 24})
    assert areas.loc["small_cnn_digits", "clean or lowest level"] == pytest.approx(clean.metrics["top1"])
    worst = areas.loc["small_cnn_digits", "highest level"]
    assert worst < clean.metrics["top1"]  # σ 97 noise on 32 px digits
    assert areas.loc["small_cnn_digits", "area under the curve"] == pytest.approx((clean.metrics["top1"] + worst) / 2)
    assert at.query_params["job"] in (str(job.id), [str(job.id)])

    for metric, title in (("top5", "top-5 accuracy"), ("<script>", "top-1 accuracy")):  # a teammate's links
        shared = AppTest.from_file(APP, default_timeout=180)
        shared.query_params.update({"view": "robustness", "job": str(job.id), "metric": metric})
        shared.switch_page("pages/compare.py").run()
        assert not shared.exception
        assert chart_specs(shared)[0]["layout"]["yaxis"]["title"]["text"] == title
    assert any("Not among the choices" in w.value for w in shared.warning)


def test_denoisers_over_noise_levels_from_the_cli_with_ffdnet_told_each_level(settings_env, capsys):
    import json

    from core.__main__ import main
    from core.services.compare import run_report

    code = main(["robustness", "--model", "gaussian_denoise", "--model", "ffdnet", "--dataset", "photos-denoise",
                 "--set", "max_side=64", "--limit", "2", "--corruption", "noise_sigma", "--levels", "5,50", "--json",
                 "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["metric"] == "psnr" and out["axis"] == "noise σ (0-255)"
    points = {(p["model"], p["level"]): p for p in out["points"]}
    assert set(points) == {(m, lv) for m in ("gaussian_denoise", "ffdnet", "degraded input (no method)") for lv in (5, 50)}
    for level in (5, 50):  # FFDNet is given the sweep's σ, not an estimate
        report = run_report(points[("ffdnet", level)]["run_id"])
        assert report.outputs.noise_level == f"noise level {level} (from the degradation)"
    assert points[("ffdnet", 50)]["value"] > points[("degraded input (no method)", 50)]["value"] + 5
    assert out["areas"][0]["model"] == "ffdnet"  # the largest area under the PSNR curve

    code = main(["robustness", "--model", "gaussian_denoise", "--model", "median_denoise", "--dataset", "photos-denoise",
                 "--set", "max_side=48", "--limit", "2", "--corruption", "noise_sigma", "--levels", "5,50", "--metric",
                 "ssim", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    floor = [p for p in out["points"] if p["model"] == "degraded input (no method)"]
    assert code == 0 and out["metric"] == "ssim" and [p["level"] for p in floor] == [5, 50]  # once per level
    assert floor[0]["value"] > floor[1]["value"]  # the input's own SSIM, not a method's

    code = main(["robustness", "--model", "gaussian_denoise", "--dataset", "photos-denoise", "--corruption", "fog"])
    assert code == 2 and "Unknown corruption" in capsys.readouterr().err


def test_the_real_imagenet_model_loses_accuracy_under_blur(db_url):
    from core.services.robustness import run_here

    curves = run_here(["efficientnet_lite0"], {"name": "photos-classify", "views": 2}, "gaussian_blur", [0, 5])
    values = curves.points.set_index("level")["value"]
    assert values[0] >= 0.6 and values[5] <= values[0] - 0.3  # 10 images: whole photos and one crop each
