"""Uploaded checkpoints: round trip into the registry, and the hostile cases of DESIGN.md 1-4."""
import io
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from core import services
from core.errors import InvalidCheckpoint, InvalidInput, ModelNotFound
from core.models import checkpoints, registry
from core.models.registry import create, get_spec
from tests.conftest import PickleExploit


@pytest.fixture
def clean_registry(settings_env):
    registry.list_models()  # the builtin entries are loaded before the snapshot, so teardown keeps them
    before = set(registry._REGISTRY)
    yield
    for name in set(registry._REGISTRY) - before:
        registry.unregister_model(name)


def digits_state(offset: float = 1.0) -> dict:
    module, _ = create("small_cnn_digits", weights="random")
    return {k: (v + offset if v.is_floating_point() else v) for k, v in module.state_dict().items()}


def stored_files(tmp_path) -> list[str]:
    folder = tmp_path / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_safetensors_checkpoint_registers_and_survives_a_restart(clean_registry, tmp_path):
    state = digits_state()
    info = services.add_checkpoint(save(state), "digits.safetensors", "small_cnn_digits", "my-digits", "Mine")
    assert info.name == "my-digits" and info.task == "classification" and info.source == "checkpoint"
    assert info.weights_status == "available"
    model, weights = create("my-digits")
    assert weights.status == "pretrained" and torch.equal(model.head[3].weight, state["head.3.weight"])
    assert get_spec("my-digits").base == "small_cnn_digits"
    assert stored_files(tmp_path) == ["my-digits.json", "my-digits.safetensors"]

    registry.unregister_model("my-digits")  # a restart: the registry is rebuilt from the manifests
    checkpoints.sync()
    assert torch.equal(create("my-digits")[0].head[3].weight, state["head.3.weight"])


def test_plain_state_dict_pt_is_accepted_and_stored_as_safetensors(clean_registry, tmp_path):
    buf = io.BytesIO()
    torch.save({"state_dict": digits_state(2.0)}, buf)
    services.add_checkpoint(buf.getvalue(), "run.pt", "small_cnn_digits", "from-pt")
    assert stored_files(tmp_path) == ["from-pt.json", "from-pt.safetensors"]


def test_pickle_payload_is_refused_and_never_runs(clean_registry, tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"head.3.weight": PickleExploit(marker)})
    with pytest.raises(InvalidCheckpoint, match="Invalid checkpoint evil.pt: .*weights_only"):
        services.add_checkpoint(data, "evil.pt", "small_cnn_digits", "evil")
    assert not marker.exists() and "evil" not in registry._REGISTRY
    assert stored_files(tmp_path) == []


def test_checkpoint_needing_full_unpickling_is_refused(clean_registry, tmp_path):
    buf = io.BytesIO()
    torch.save({"model": torch.nn.Linear(2, 2)}, buf)  # a whole module object, not a state dict
    with pytest.raises(InvalidCheckpoint):
        services.add_checkpoint(buf.getvalue(), "module.pt", "small_cnn_digits", "whole-module")
    assert "whole-module" not in registry._REGISTRY and stored_files(tmp_path) == []


def test_truncated_safetensors_is_invalid_and_registry_unchanged(clean_registry, tmp_path):
    before = sorted(registry._REGISTRY)
    data = save(digits_state())
    with pytest.raises(InvalidCheckpoint, match="Invalid checkpoint"):
        services.add_checkpoint(data[: len(data) // 2], "cut.safetensors", "small_cnn_digits", "cut")
    assert sorted(registry._REGISTRY) == before and stored_files(tmp_path) == []


def test_wrong_keys_or_shapes_are_refused(clean_registry, tmp_path):
    wrong_shape = digits_state()
    wrong_shape["head.3.weight"] = torch.zeros(5, 128)
    with pytest.raises(InvalidCheckpoint, match="wrong shape"):
        services.add_checkpoint(save(wrong_shape), "a.safetensors", "small_cnn_digits", "bad-shape")
    other, _ = create("dncnn", weights="random")
    with pytest.raises(InvalidCheckpoint, match="missing"):
        services.add_checkpoint(save(other.state_dict()), "b.safetensors", "small_cnn_digits", "bad-keys")
    assert "bad-shape" not in registry._REGISTRY and "bad-keys" not in registry._REGISTRY
    assert stored_files(tmp_path) == []


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "../../etc"}, "name must be"),
    ({"name": "resnet18"}, "already exists"),
    ({"filename": "x.pkl"}, "must end in"),
    ({"base": "gaussian_denoise"}, "cannot take a checkpoint"),
])
def test_bad_requests_are_refused(clean_registry, kwargs, message):
    args = {"data": save(digits_state()), "filename": "x.safetensors", "base": "small_cnn_digits", "name": "ok-name"}
    args.update(kwargs)
    with pytest.raises((InvalidInput, InvalidCheckpoint), match=message):
        services.add_checkpoint(args["data"], args["filename"], args["base"], args["name"])


def test_a_lookup_does_not_list_the_checkpoint_folder_but_finds_what_another_process_stored(clean_registry, tmp_path,
                                                                                             monkeypatch):
    """get_spec used to re-read the folder on every call (22.6 ms a lookup with 300 checkpoints): now a lookup of
    a known model touches no file, and one that misses syncs once (a training job in another process stored it)."""
    services.add_checkpoint(save(digits_state()), "digits.safetensors", "small_cnn_digits", "known-digits")
    listings = []
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: listings.append(str(self)) or real_glob(self, pattern))
    for _ in range(50):
        assert get_spec("known-digits").base == "small_cnn_digits"
        assert get_spec("efficientnet_lite0").task == "classification"
    assert listings == []
    # another process writes a checkpoint: this registry learns of it at the first lookup that misses
    folder = tmp_path / "checkpoints"
    (folder / "other-digits.safetensors").write_bytes((folder / "known-digits.safetensors").read_bytes())
    manifest = json.loads((folder / "known-digits.json").read_text())
    (folder / "other-digits.json").write_text(json.dumps({**manifest, "name": "other-digits"}))
    assert get_spec("other-digits").base == "small_cnn_digits" and len(listings) == 2  # safetensors + manifests
    with pytest.raises(ModelNotFound):
        get_spec("no-such-digits")
