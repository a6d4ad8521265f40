"""The reference weights this project ships (reference_weights/): every small net has them, they load as
"trained by this project" with their manifest's provenance, beat a threshold on a few held-out images, and a
changed file is refused."""
import json
import shutil

import pytest

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
    ref.verify()
    m = ref.manifest
    assert m["name"] == name and m["recipe"]["base"] == name and m["recipe"]["pretrained"] is False
    assert m["job"]["steps"] > 0 and m["job"]["history"], "the training job's curves are kept"
    assert m["held_out"]["metrics"] and m["held_out"]["target_met"] is not False, m["held_out"]["target"]
    avail = get_spec(name).check_weights()
    assert avail.status == "available" and avail.detail.startswith(reference.ORIGIN)
    module, info = create(name)
    assert info.status == "pretrained" and info.sha256 == m["sha256"]
    assert info.origin.startswith(reference.ORIGIN)
    assert sum(p.numel() for p in module.parameters()) > 0


def test_a_changed_reference_file_is_refused(tmp_path, monkeypatch):
    from core.errors import InvalidCheckpoint

    shutil.copytree(reference.reference_dir(), tmp_path / "ref")
    target = tmp_path / "ref" / "dncnn.safetensors"
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit in a weight: still a valid safetensors file
    target.write_bytes(bytes(data))
    monkeypatch.setenv(reference.DIR_ENV, str(tmp_path / "ref"))
    avail = get_spec("dncnn").check_weights()
    assert avail.status == "missing" and "do not match their manifest" in avail.detail
    with pytest.raises(InvalidCheckpoint, match="changed or damaged"):
        create("dncnn")
    assert str(tmp_path) not in avail.detail  # no server path in the message
    # the untouched models of that folder still load
    assert create("srcnn_x2")[1].origin.startswith(reference.ORIGIN)


def test_a_reference_manifest_that_is_not_json_means_no_reference(tmp_path, monkeypatch):
    shutil.copytree(reference.reference_dir(), tmp_path / "ref")
    (tmp_path / "ref" / "srcnn_x4.json").write_text("{not json")
    monkeypatch.setenv(reference.DIR_ENV, str(tmp_path / "ref"))
    assert reference.find_reference("srcnn_x4") is None
    assert get_spec("srcnn_x4").check_weights().status == "missing"


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
