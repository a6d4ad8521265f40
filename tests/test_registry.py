"""Registry: every model builds and runs; weights come from real files or fail with a clear message."""
import pickle

import pytest
import torch
from safetensors.torch import save_file

from core.errors import DuplicateModel, InvalidCheckpoint, ModelNotFound, WeightsUnavailable
from core.models import registry
from core.models.registry import create, get_spec, list_models, register_model
from tests.conftest import PickleExploit

ALL = [spec.name for spec in list_models()]


def test_registry_covers_all_five_tasks():
    names = set(ALL)
    assert {"efficientnet_lite0", "resnet18", "efficientnet_b0", "vgg11", "vit_tiny_patch16_224",
            "mobilenetv3_large_100", "small_cnn_digits"} <= names
    assert {"fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn",
            "ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "fcos_resnet50_fpn"} <= names
    assert {"deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large", "maskrcnn_resnet50_fpn",
            "unet_shapes", "otsu_segment", "watershed_instances"} <= names
    assert {"gaussian_denoise", "median_denoise", "nlm_denoise", "bilateral_denoise", "wiener_deblur",
            "richardson_lucy_deblur", "bicubic_x2", "bicubic_x4", "dncnn", "unet_denoise", "srcnn_x2",
            "edsr_lite_x4"} <= names
    assert {"dcgan_shapes", "cdcgan_digits", "efficientnet_lite0_int8", "efficientnet_lite0_pruned30"} <= names
    assert {s.task for s in list_models()} == {"classification", "detection", "segmentation", "restoration",
                                               "generation"}
    assert all(s.operation == "denoise" for s in list_models("restoration", "denoise"))
    assert get_spec("deeplabv3_resnet50").categories[15] == "person"  # VOC labels from the enum, offline
    assert get_spec("fasterrcnn_resnet50_fpn").categories[17] == "cat"  # COCO labels


def _forward(spec, module):
    torch.manual_seed(0)
    with torch.inference_mode():
        if spec.task == "classification":
            side = spec.input_size[1] if spec.input_size and spec.name.startswith(("vit", "small")) else 64
            return module(torch.rand(2, 3, side, side))
        if spec.task == "generation":
            z = torch.randn(2, spec.latent_dim)
            if spec.num_classes:
                z = torch.cat([z, torch.tensor([[1.0], [7.0]])], 1)
            return module(z)
        if spec.preprocessing == "imagenet":
            return module(torch.randn(1, 3, 48, 64))
        return module(torch.rand(1, 3, 48, 64))


@pytest.mark.parametrize("name", ALL)
def test_every_registered_model_builds_and_runs_on_cpu(name):
    spec = get_spec(name)
    weights = "pretrained" if spec.check_weights().status != "missing" else "random"
    module, info = create(name, weights=weights)
    assert not module.training
    assert info.status == ("parameter-free" if spec.source == "classical" else weights)
    out = _forward(spec, module)
    if spec.task == "classification":
        assert out.shape == (2, len(spec.categories) if spec.categories else 1000) and torch.isfinite(out).all()
    elif spec.task == "detection" or spec.operation == "instance":
        assert isinstance(out, list) and len(out) == 1
        assert out[0]["boxes"].shape[1:] == (4,) and out[0]["scores"].shape == out[0]["labels"].shape
        if spec.operation == "instance":
            assert out[0]["masks"].shape[1:] == (1, 48, 64)
    elif spec.task == "segmentation":
        assert out.shape == (1, len(spec.categories), 48, 64)
    elif spec.task == "generation":
        assert out.shape == (2, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1
    else:
        scale = spec.scale or 1
        assert out.shape == (1, 3, 48 * scale, 64 * scale)
        assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelNotFound, match="Did you mean: resnet18"):
        get_spec("resnet-18")


def test_duplicate_names_are_refused():
    with pytest.raises(DuplicateModel):
        register_model("resnet18", task="classification", source="timm")(lambda pretrained: None)


def test_random_init_is_reproducible_and_labelled():
    a, info = create("resnet18", weights="random")
    b, _ = create("resnet18", weights="random")
    assert info.status == "random" and not info.trained and info.sha256 is None
    assert torch.equal(a.conv1.weight, b.conv1.weight)


def test_missing_timm_weights_raise_with_the_file_to_provide(settings_env):
    spec = get_spec("resnet18")
    assert spec.check_weights().status == "missing"
    with pytest.raises(WeightsUnavailable) as err:
        create("resnet18")
    msg = str(err.value)
    assert "resnet18.safetensors" in msg and "timm/resnet18" in msg and "untrained" in msg


def test_local_safetensors_file_provides_timm_weights(settings_env, tmp_path):
    reference, _ = create("resnet18", weights="random")
    state = {k: v.clone() + 0.5 for k, v in reference.state_dict().items() if v.is_floating_point()}
    state.update({k: v for k, v in reference.state_dict().items() if not v.is_floating_point()})
    (tmp_path / "weights").mkdir()
    save_file(state, str(tmp_path / "weights" / "resnet18.safetensors"))
    assert get_spec("resnet18").check_weights().status == "available"
    model, info = create("resnet18")
    assert info.status == "pretrained" and len(info.sha256) == 64
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_local_file_with_wrong_shapes_is_refused(settings_env, tmp_path):
    other, _ = create("efficientnet_lite0", weights="random")
    (tmp_path / "weights").mkdir()
    save_file(other.state_dict(), str(tmp_path / "weights" / "resnet18.safetensors"))
    with pytest.raises(InvalidCheckpoint, match="does not fit resnet18: keys"):
        create("resnet18")


def test_truncated_safetensors_is_an_invalid_checkpoint(settings_env, tmp_path):
    model, _ = create("resnet18", weights="random")
    (tmp_path / "weights").mkdir()
    path = tmp_path / "weights" / "resnet18.safetensors"
    save_file(model.state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InvalidCheckpoint, match="Invalid checkpoint"):
        create("resnet18")
    assert "resnet18" in ALL and get_spec("resnet18").source == "timm"  # registry unchanged


def test_pickle_payload_in_pth_never_runs(settings_env, tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "weights").mkdir()
    with open(tmp_path / "weights" / "resnet18.pth", "wb") as fh:
        pickle.dump({"conv1.weight": PickleExploit(marker)}, fh)
    with pytest.raises(InvalidCheckpoint, match="weights_only"):
        create("resnet18")
    assert not marker.exists()


def test_checkpoint_needing_full_unpickling_is_refused(settings_env, tmp_path):
    (tmp_path / "weights").mkdir()
    torch.save({"conv1.weight": torch.zeros(1), "optimizer": torch.optim.SGD}, tmp_path / "weights" / "resnet18.pt")
    with pytest.raises(InvalidCheckpoint):
        create("resnet18")


def test_unregister_for_temporary_entries():
    register_model("tmp_test_model", task="restoration", source="test", operation="denoise")(
        lambda pretrained: (torch.nn.Identity(), registry.WeightsInfo("parameter-free", None, "test")))
    try:
        assert create("tmp_test_model")[1].origin == "test"
    finally:
        registry.unregister_model("tmp_test_model")
    with pytest.raises(ModelNotFound):
        get_spec("tmp_test_model")


def test_hugging_face_cache_provides_timm_weights(settings_env, tmp_path, monkeypatch):
    """The real hub-cache layout (refs/main -> snapshots/<rev>/model.safetensors) is found offline."""
    from huggingface_hub import constants

    reference, _ = create("resnet18", weights="random")
    repo = tmp_path / "hub" / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file(reference.state_dict(), str(snapshot / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    availability = get_spec("resnet18").check_weights()
    assert availability.status == "available" and "timm/resnet18.a1_in1k" in availability.detail
    model, info = create("resnet18")
    assert info.status == "pretrained" and info.origin.endswith("model.safetensors")
    assert torch.equal(model.fc.weight, reference.fc.weight)


def test_unreachable_hub_is_detected_without_waiting_for_retries(settings_env, monkeypatch):
    import time

    from huggingface_hub import constants

    from core.models import weights

    settings_env(IMGLAB_OFFLINE=0)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    weights._PROBE.clear()
    start = time.monotonic()
    assert weights.hub_download("timm/resnet18.a1_in1k", ("model.safetensors",)) is None
    assert time.monotonic() - start < 5
    assert weights._PROBE["127.0.0.1"][1] is False
