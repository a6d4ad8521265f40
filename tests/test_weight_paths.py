"""Per-model weight file paths (Models page): validated, confined to allowed folders, picked up by the engine."""
from pathlib import Path

import pytest
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from core import services
from core.engine import Engine
from core.errors import InvalidCheckpoint, InvalidInput
from core.models.registry import create, get_spec
from core.models.weights import file_sha256

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def resnet_file(folder: Path, offset: float = 0.25) -> Path:
    model, _ = create("resnet18", weights="random")
    state = {k: (v + offset if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"my-resnet-{offset}.safetensors"
    save_file(state, str(path))
    return path


def test_a_set_path_is_used_and_the_engine_reloads(settings_env, tmp_path):
    engine = Engine(device="cpu")
    first = resnet_file(tmp_path / "shared", 0.25)
    assert services.set_weights_path("resnet18", str(first)) == str(first)
    assert get_spec("resnet18").check_weights().status == "available"
    loaded = engine.load("resnet18")
    assert loaded.weights.sha256 == file_sha256(first)
    second = resnet_file(tmp_path / "shared", 0.5)
    services.set_weights_path("resnet18", str(second))
    reloaded = engine.load("resnet18")
    assert reloaded is not loaded and reloaded.weights.sha256 == file_sha256(second)
    assert services.weights_paths() == {"resnet18": str(second)}
    services.clear_weights_path("resnet18")
    assert services.weights_paths() == {} and get_spec("resnet18").check_weights().status == "missing"


@pytest.mark.parametrize("raw,message", [
    ("/etc/passwd", "outside the folders"),
    ("../../../../etc/hostname", "outside the folders"),
    ("", "full path"),
])
def test_paths_outside_the_allowed_folders_are_refused(settings_env, raw, message):
    with pytest.raises(InvalidInput, match=message):
        services.set_weights_path("resnet18", raw)
    assert services.weights_paths() == {}


def test_a_file_that_does_not_fit_is_refused_and_nothing_is_kept(settings_env, tmp_path):
    other, _ = create("dncnn", weights="random")
    (tmp_path / "w").mkdir()
    save_file(other.state_dict(), str(tmp_path / "w" / "dncnn.safetensors"))
    with pytest.raises(InvalidCheckpoint, match="does not fit resnet18"):
        services.set_weights_path("resnet18", str(tmp_path / "w" / "dncnn.safetensors"))
    assert services.weights_paths() == {}
    with pytest.raises(InvalidInput, match="does not take a weights file"):
        services.set_weights_path("gaussian_denoise", str(tmp_path / "w" / "dncnn.safetensors"))
    with pytest.raises(InvalidInput, match="There is no file"):
        services.set_weights_path("resnet18", str(tmp_path / "w" / "missing.safetensors"))


def test_models_page_sets_a_path(db_url, tmp_path):
    path = resnet_file(tmp_path / "shared")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/models.py").run()
    at.selectbox(key="wpath_model").set_value("resnet18")
    at.text_input(key="wpath_path").input(str(path))
    at.button(key="wpath_set").click().run()
    assert not at.exception and not at.error
    assert any("resnet18 now loads its weights from" in s.value for s in at.success)
    shown = at.dataframe[-1].value["file"].tolist()  # every user sees it: folders by role, not server paths
    assert shown == [f"<data folder>/{path.relative_to(tmp_path)}"] and str(tmp_path) not in at.success[0].value
    at.text_input(key="wpath_path").input("/etc/passwd")
    at.button(key="wpath_set").click().run()
    assert any("outside the folders" in e.value for e in at.error)
    services.clear_weights_path("resnet18")
