"""The main flows in a real headless Chromium against `streamlit run app.py` (Playwright)."""
import os
import re
import subprocess
import sys

import numpy as np

from core.data.builtin import load_builtin
from tests.browser_support import ROOT, browser, choose, page, server, settle  # noqa: F401  (fixtures)
from tests.conftest import encode


def test_upload_classify_and_see_it_in_results(page, tmp_path):
    cat = tmp_path / "chelsea.jpg"
    cat.write_bytes(encode(load_builtin("chelsea"), "JPEG", quality=92))
    bad = tmp_path / "broken.png"
    bad.write_bytes(np.random.default_rng(0).bytes(2048))
    page.locator('input[type="file"]').first.set_input_files([str(cat), str(bad)])
    page.get_by_text("chelsea.jpg").filter(visible=True).first.wait_for()
    settle(page)
    page.get_by_role("button", name="Classify").click()
    page.get_by_text("Top-5: tiger cat").wait_for()
    page.get_by_text("broken.png: not a recognised image").wait_for()  # the bad file is reported, not fatal
    page.get_by_text("Stored as run #1").wait_for()
    assert page.get_by_text("Traceback").count() == 0

    page.get_by_role("link", name="Results").click()
    page.get_by_text("Run #1 · efficientnet_lite0 (pretrained)").wait_for()
    page.get_by_text("chelsea.jpg (uploaded)").filter(visible=True).first.wait_for()


def test_denoise_a_builtin_image(page):
    page.get_by_text("Denoise", exact=True).click()
    page.get_by_text("Noise σ (0-255 scale)").wait_for()
    page.get_by_role("button", name="Restore").click()
    page.get_by_text("Quality against the clean image").wait_for()
    caption = page.get_by_text("PSNR", exact=False).filter(has_text="input | ").first
    caption.wait_for()
    psnr = float(caption.inner_text().split("PSNR ")[1].split(" dB")[0])
    assert 24 < psnr < 35
    assert page.get_by_text("Traceback").count() == 0


def test_checkpoint_upload_registers_a_model_and_refuses_a_pickle(page, tmp_path):
    import pickle

    from safetensors.torch import save

    from core.models.registry import create

    module, _ = create("small_cnn_digits", weights="random")
    good = tmp_path / "digits.safetensors"
    good.write_bytes(save(module.state_dict()))
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"w": print}))

    page.set_default_timeout(30_000)

    page.get_by_role("link", name="Models").click()
    page.get_by_text("Add a checkpoint").wait_for()
    architecture = page.get_by_role("combobox", name="Architecture")
    architecture.click()
    architecture.fill("small_cnn")
    page.get_by_role("option", name="small_cnn_digits (classification)").click()
    settle(page)
    page.get_by_role("textbox", name="New model name").fill("browser-digits")
    page.get_by_role("textbox", name="New model name").press("Enter")
    settle(page)
    page.locator('input[type="file"]').first.set_input_files(str(evil))
    page.get_by_text("evil.pt").filter(visible=True).first.wait_for()
    settle(page)
    page.get_by_role("button", name="Add model").click()
    page.get_by_text("Invalid checkpoint evil.pt").filter(visible=True).first.wait_for()

    page.locator('input[type="file"]').first.set_input_files(str(good))
    page.get_by_text("digits.safetensors").filter(visible=True).first.wait_for()
    settle(page)
    page.get_by_role("button", name="Add model").click()
    page.get_by_text("Registered browser-digits (classification)").wait_for()
    assert page.get_by_text("Traceback").count() == 0


def test_detect_the_face_in_a_sample_photo(page):
    settle(page)
    page.get_by_text("Detection", exact=True).click()
    settle(page)
    page.get_by_text("Three-stage cascade (P-Net, R-Net, O-Net)", exact=False).wait_for()
    assert page.get_by_role("combobox", name="Model").input_value() == "MTCNN face detector (bundled weights)"
    samples = page.get_by_role("combobox", name="…or sample photos (scikit-image)")
    samples.click()
    samples.fill("astronaut")
    page.get_by_role("option", name="astronaut").click()
    page.keyboard.press("Escape")
    settle(page)
    page.get_by_role("button", name="Detect").click()
    page.get_by_text("astronaut: 1 detection", exact=True).wait_for()
    assert page.get_by_text("Traceback").count() == 0


def test_benchmark_runs_in_the_background_and_reports_back(page):
    settle(page)
    page.get_by_role("link", name="Benchmark").click()
    page.get_by_role("heading", name="Benchmark").wait_for()
    settle(page)
    choose(page, "Task", "restoration")
    page.get_by_text("The 10 skimage photos").wait_for()
    limit = page.get_by_role("spinbutton", name="Images (at most)")
    limit.fill("2")
    limit.press("Enter")
    settle(page)
    choose(page, "Models", "Gaussian filter (σ=1)")
    choose(page, "Models", "Median filter (3x3)")
    page.get_by_role("button", name="Launch benchmark").click()
    page.get_by_text("queued.").filter(visible=True).first.wait_for()
    page.get_by_text("Results of job").wait_for(timeout=120_000)  # shown once the worker has finished
    page.get_by_text("on skimage photos, noise σ 25").filter(visible=True).first.wait_for()
    settle(page)
    assert page.get_by_text("Traceback").count() == 0


def test_finetune_trains_a_small_model_in_the_background(page):
    settle(page)
    page.get_by_role("link", name="Fine-tune").click()
    page.get_by_role("heading", name="Fine-tune").wait_for()
    settle(page)
    choose(page, "Base model", "Small CNN (digits)", search="CNN")
    choose(page, "Training data", "synthetic shapes: fresh scenes")
    for label, value in (("Epochs", "1"), ("Max steps (0 = no limit)", "3"), ("Training images / patches", "16"),
                         ("Batch size", "8")):
        box = page.get_by_role("spinbutton", name=label)
        box.fill(value)
        box.press("Enter")
        settle(page)
    page.get_by_role("button", name="Launch training").click()
    page.get_by_text("queued.").filter(visible=True).first.wait_for()
    page.get_by_text("Results of job").wait_for(timeout=180_000)  # the worker finished and registered the model
    page.get_by_text("train small_cnn_digits on shapes").filter(visible=True).first.wait_for()
    assert page.get_by_text("Traceback").count() == 0


def test_a_shared_compare_link_opens_the_chart_it_names(page, server):
    """A teammate's link to the quality-vs-cost view of a denoising benchmark shows that chart, Pareto front included."""
    url, data_dir = server
    env = {**os.environ, "IMGLAB_DATA_DIR": str(data_dir), "IMGLAB_DEVICE": "cpu"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "core", "bench", "--model", "gaussian_denoise", "--model", "median_denoise",
                    "--dataset", "photos-denoise", "--set", "limit=2", "--set", "max_side=64", "--json"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    page.goto(f"{url}/compare?view=cost&task=restoration&y=psnr&x=latency_ms_per_image")
    page.get_by_text("PSNR (dB) ↑ vs latency (ms/image) ↓ (Pareto front in green)").wait_for()
    page.get_by_text("Pareto front", exact=True).filter(visible=True).first.wait_for()  # the legend entry of the front
    assert page.locator(".js-plotly-plot").count() == 1
    assert page.get_by_role("combobox", name="Cost (x)").input_value() == "latency (ms/image) ↓"
    assert "view=cost" in page.url and "dataset=photos-denoise" in page.url
    assert page.get_by_text("Traceback").count() == 0
    settle(page)
    page.screenshot(path=str(ROOT / "test-artifacts" / "shared-compare-link.png"), full_page=True)

    page.goto(f"{url}/leaderboard?task=restoration")
    page.get_by_role("heading", name="Leaderboard").wait_for()
    page.get_by_text("PSNR (dB) ↑", exact=False).filter(visible=True).first.wait_for()
    page.get_by_test_id("stDataFrame").first.wait_for()
    settle(page)
    assert page.get_by_text("Traceback").count() == 0


def test_an_experiment_runs_in_the_background_and_its_curve_opens_on_compare(page):
    settle(page)
    page.get_by_role("link", name="Experiments").click()
    page.get_by_role("heading", name="Experiments").wait_for()
    settle(page)
    page.get_by_role("tab", name="Generated training data (GAN)").click()
    settle(page)
    for label, value in (("Generated images added", "20"), ("Training steps per run", "10")):
        box = page.get_by_role("spinbutton", name=label)
        box.fill(value)
        box.press("Enter")
        settle(page)
    page.get_by_role("button", name="Launch generated-data experiment").click()
    page.get_by_text("queued.").filter(visible=True).first.wait_for()
    link = page.get_by_role("link", name=re.compile(r"Curve of experiment #\d+"))
    link.wait_for(timeout=240_000)  # shown once the worker has finished
    link.click()
    page.get_by_text("paired by repeat").filter(visible=True).first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.locator(".js-plotly-plot").count() == 1 and "view=experiments" in page.url
    assert page.get_by_text("Traceback").count() == 0
