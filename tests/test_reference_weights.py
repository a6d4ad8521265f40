"""The reference weights this project ships (reference_weights/): every small net has them, they load as
"trained by this project" with their manifest's provenance, beat a threshold on a few held-out images, and a
changed file is refused."""
import json
import shutil

import pytest

from core.config import get_settings
from core.models import reference
from core.models.registry import create, get_spec, list_models

SMALL_NETS = sorted(s.name for s in list_models() if s.source == "small-net")


def test_every_small_net_ships_reference_weights_within_budget():
    folder = reference.reference_dir()
    shipped = sorted(p.stem for p in folder.glob("*.safetensors"))
    assert SMALL_NETS and shipped == SMALL_NETS
    total = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert total < 40 * 2**20, f"{total / 2**20:.1f} MB of reference weights"


@pytest.mark.parametrize("name", SMALL_NETS)
def test_reference_weights_load_with_their_provenance(name):
    ref = reference.find_reference(name)
    assert ref is not None
    assert ref.problem() is None
    m = ref.manifest
    assert m["name"] == name and m["recipe"]["base"] == name and m["recipe"]["pretrained"] is False
    assert m["job"]["steps"] > 0 and m["job"]["history"], "the training job's curves are kept"
    assert m["held_out"]["metrics"] and m["held_out"]["target_met"] is True, m["held_out"]["target"]
    avail = get_spec(name).check_weights()
    assert avail.status == "available" and avail.detail.startswith(reference.ORIGIN)
    module, info = create(name)
    assert info.status == "pretrained" and info.sha256 == m["sha256"]
    assert info.origin.startswith(reference.ORIGIN)
    assert sum(p.numel() for p in module.parameters()) > 0


def _flip_a_weight(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit in a weight: still a valid safetensors file of the same size
    return bytes(data)


def test_a_changed_reference_file_is_refused(tmp_path, monkeypatch, db_url):
    from core.engine import Engine
    from core.errors import WeightsUnavailable
    from core.runs import load_for_run

    shutil.copytree(reference.reference_dir(), tmp_path / "ref")
    target = tmp_path / "ref" / "dncnn.safetensors"
    target.write_bytes(_flip_a_weight(target))
    monkeypatch.setenv(reference.DIR_ENV, str(tmp_path / "ref"))
    get_settings.cache_clear()
    avail = get_spec("dncnn").check_weights()
    assert avail.status == "missing" and "do not match their manifest" in avail.detail
    assert str(tmp_path) not in avail.detail  # no server path in the message
    with pytest.raises(WeightsUnavailable, match="changed or damaged"):
        create("dncnn")
    # the user may still run it untrained, labelled so; the untouched models of that folder still load
    assert load_for_run(Engine("cpu"), "dncnn", True, "restoration").weights.status == "random"
    assert create("srcnn_x2")[1].origin.startswith(reference.ORIGIN)


def test_a_file_changed_in_place_with_its_timestamp_restored_is_still_refused(tmp_path, monkeypatch):
    """The listing may use a hash cached by path, size and time; loading hashes the bytes it loads."""
    import os

    from core.errors import WeightsUnavailable

    shutil.copytree(reference.reference_dir(), tmp_path / "ref")
    monkeypatch.setenv(reference.DIR_ENV, str(tmp_path / "ref"))
    get_settings.cache_clear()
    target = tmp_path / "ref" / "srcnn_x4.safetensors"
    assert get_spec("srcnn_x4").check_weights().status == "available"  # the hash is now cached
    st = target.stat()
    target.write_bytes(_flip_a_weight(target))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(WeightsUnavailable, match="changed or damaged"):
        create("srcnn_x4")


def test_a_reference_manifest_that_is_not_json_means_no_reference(tmp_path, monkeypatch):
    shutil.copytree(reference.reference_dir(), tmp_path / "ref")
    (tmp_path / "ref" / "srcnn_x4.json").write_text("{not json")
    (tmp_path / "ref" / "edsr_lite_x4.json").write_text('{"sha256": "00", "held_out": []}')
    monkeypatch.setenv(reference.DIR_ENV, str(tmp_path / "ref"))
    get_settings.cache_clear()
    for name in ("srcnn_x4", "edsr_lite_x4"):
        assert reference.find_reference(name) is None
        assert get_spec(name).check_weights().status == "missing"
    assert get_spec("srcnn_x2").check_weights().status == "available"
    assert reference.find_reference("../reference_weights/srcnn_x2") is None  # names never walk folders


def test_a_local_file_still_takes_precedence(settings_env, tmp_path):
    from safetensors.torch import save_file

    module, _ = create("srcnn_x2", weights="random")
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights / "srcnn_x2.safetensors"))
    settings_env(IMGLAB_WEIGHTS_DIR=str(weights))
    _, info = create("srcnn_x2")
    assert info.origin.endswith("srcnn_x2.safetensors") and not info.origin.startswith(reference.ORIGIN)


def test_training_photos_never_include_the_benchmark_photos():
    from core.data.builtin import BUILTIN_IMAGES
    from core.data.datasets import TRAINING_SKIMAGE, training_photos

    assert not set(TRAINING_SKIMAGE) & set(BUILTIN_IMAGES)
    names = [n for n, _ in training_photos()]
    assert names[:2] == ["china", "flower"] and len(names) == 2 + len(TRAINING_SKIMAGE)
    assert all(img.ndim == 3 and img.shape[2] == 3 and img.dtype.name == "uint8" for _, img in training_photos())


def test_manifests_are_plain_json_with_the_recipe():
    for path in reference.reference_dir().glob("*.json"):
        m = json.loads(path.read_text())
        assert {"sha256", "recipe", "job", "held_out", "device", "torch", "trained_with"} <= set(m), path.name


# -- each shipped net beats a threshold on a few held-out images (the benchmark sets they never trained on) ------
def _bench(models: list[str], dataset: dict, params: dict | None = None) -> dict[str, dict]:
    from core.engine import Engine
    from core.services.benchmark import run_benchmark

    outcomes = run_benchmark(Engine("cpu"), models, dataset, params or {})
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
    return {o.model: o.metrics for o in outcomes}


PHOTOS = {"limit": 3, "max_side": 128}  # astronaut, camera, chelsea at 128 px
# Margins below what the shipped files measured on these sets (2-core CPU): U-Net denoiser 28.74 dB vs NLM 27.26;
# EDSR-lite x2 28.45 vs bicubic 27.10; digits CNN 98.3% on 120 digits; deblur U-Net 24.67 vs Wiener 22.23.
UNET_DENOISE_MARGIN_DB = 1.0
DNCNN_MARGIN_DB = 1.0  # DnCNN 29.34 dB vs NLM 27.26 on these three photos
SR_MARGIN_DB = {2: 0.8, 4: 0.3}  # EDSR-lite x4 23.45 vs bicubic 22.73
DIGITS_TOP1 = 0.96
GAN_FD_RATIO = 0.8  # dcgan_shapes: 199.6 trained vs 310.5 untrained


def test_reference_denoisers_beat_non_local_means(db_url):
    m = _bench(["unet_denoise", "dncnn", "nlm_denoise"], {"name": "photos-denoise", "sigma": 25.0, **PHOTOS})
    assert m["unet_denoise"]["psnr"] > m["nlm_denoise"]["psnr"] + UNET_DENOISE_MARGIN_DB, m
    assert m["dncnn"]["psnr"] > m["nlm_denoise"]["psnr"] + DNCNN_MARGIN_DB, m


def test_reference_deblur_unet_beats_wiener_and_richardson_lucy(db_url):
    m = _bench(["unet_deblur", "wiener_deblur", "richardson_lucy_deblur"],
               {"name": "photos-deblur", "blur_sigma": 2.0, "noise_sigma": 1.0, **PHOTOS})
    assert m["unet_deblur"]["psnr"] > max(m["wiener_deblur"]["psnr"], m["richardson_lucy_deblur"]["psnr"]) + 0.5, m


@pytest.mark.parametrize("scale", [2, 4])
def test_reference_super_resolution_beats_bicubic(db_url, scale):
    m = _bench([f"edsr_lite_x{scale}", f"srcnn_x{scale}", f"bicubic_x{scale}"],
               {"name": "photos-sr", "scale": scale, **PHOTOS})
    bicubic = m[f"bicubic_x{scale}"]["psnr"]
    assert m[f"edsr_lite_x{scale}"]["psnr"] > bicubic + SR_MARGIN_DB[scale], m
    assert m[f"srcnn_x{scale}"]["psnr"] > bicubic, m


def test_reference_digits_cnn_and_shapes_unet(db_url):
    assert _bench(["small_cnn_digits"], {"name": "digits", "limit": 120})["small_cnn_digits"]["top1"] >= DIGITS_TOP1
    assert _bench(["unet_shapes"], {"name": "shapes-semantic", "count": 8, "seed": 0})["unet_shapes"]["miou"] >= 0.85


def test_reference_shapes_detectors_find_the_shapes(db_url):
    m = _bench(["fasterrcnn_tiny_shapes", "yolo_tiny_shapes"], {"name": "shapes-detect", "count": 16, "seed": 1},
               {"score_threshold": 0.5})
    assert m["fasterrcnn_tiny_shapes"]["map50"] >= 0.9 and m["fasterrcnn_tiny_shapes"]["f1"] >= 0.9, m
    assert m["yolo_tiny_shapes"]["map50"] >= 0.9 and m["yolo_tiny_shapes"]["f1"] >= 0.9, m


@pytest.mark.parametrize("name,dataset", [("dcgan_shapes", {"name": "shapes-real", "count": 64, "seed": 0}),
                                          ("cdcgan_digits", {"name": "digits-real", "count": 64})])
def test_reference_generators_are_far_closer_to_real_images_than_untrained(db_url, name, dataset):
    """Fréchet distance in EfficientNet-Lite0 features (cheaper than Inception on a CI CPU) of 64 samples."""
    from core.tasks.generation import evaluate_generation
    from core.data.datasets import load_dataset
    from core.engine import Engine

    engine, ds = Engine("cpu"), load_dataset(dataset)
    fd = {w: evaluate_generation(engine, engine.load(name, w), ds, 64, None, samples=64,
                                 feature_space="lite0").metrics[0].value for w in ("pretrained", "random")}
    assert fd["pretrained"] < GAN_FD_RATIO * fd["random"], fd


def test_retrained_reference_weights_are_not_served_from_the_model_cache(tmp_path, monkeypatch):
    import hashlib

    from safetensors.torch import save

    from core.engine import Engine

    shutil.copytree(reference.reference_dir(), tmp_path / "ref")
    monkeypatch.setenv(reference.DIR_ENV, str(tmp_path / "ref"))
    get_settings.cache_clear()
    engine = Engine("cpu")
    first = engine.load("srcnn_x2")
    assert engine.load("srcnn_x2") is first  # cached
    module, _ = create("srcnn_x2", weights="random")  # "retrained": other weights, a manifest that matches
    data = save({k: v.contiguous() for k, v in module.state_dict().items()})
    (tmp_path / "ref" / "srcnn_x2.safetensors").write_bytes(data)
    manifest = json.loads((tmp_path / "ref" / "srcnn_x2.json").read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    (tmp_path / "ref" / "srcnn_x2.json").write_text(json.dumps(manifest))
    second = engine.load("srcnn_x2")
    assert second is not first and second.weights.sha256 == manifest["sha256"] != first.weights.sha256
