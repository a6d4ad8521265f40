"""The vertical slices through services: classify and restore, each stored with provenance."""
import math

import numpy as np
import pytest

from core import services
from core.data.builtin import builtin_image, load_builtin
from core.data.decode import decode_image
from core.engine import Engine
from core.errors import InvalidInput, WeightsUnavailable
from core.models.weights import file_sha256
from core.models.classifiers import _lite0_file
from core.provenance import library_versions
from tests.conftest import encode


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


def test_classify_upload_stores_run_with_provenance(engine, db_url):
    upload = decode_image(encode(load_builtin("chelsea"), "JPEG", quality=95), "my cat.jpg")
    result = services.classify(engine, "efficientnet_lite0", [upload, builtin_image("coffee")], top_k=5)
    assert [p.top[0].label for p in result.predictions] == ["tiger cat", "espresso"]
    assert result.stats.items == 2 and result.stats.warmup == 1

    detail = services.run_detail(result.run_id)
    assert detail.model == "efficientnet_lite0" and detail.weights_status == "pretrained"
    assert detail.weights_hash == file_sha256(_lite0_file())
    assert detail.versions["torch"] == library_versions()["torch"]
    assert detail.versions["timm"] == library_versions()["timm"]
    assert detail.params["preprocess"]["crop_pct"] == 0.875
    assert detail.outputs["predictions"][0]["top"][0][1] == "tiger cat"
    assert detail.dataset == "upload:my cat.jpg+1" and len(detail.dataset_hash) == 64
    metrics = detail.metrics.set_index("metric")["value"]
    assert metrics["latency_ms_per_image"] > 0 and metrics["throughput_img_s"] > 0 and metrics["peak_mem_mb"] > 0
    top1 = detail.image_metrics.set_index("image")["value"]
    assert top1["my cat.jpg"] == pytest.approx(result.predictions[0].top[0].prob)

    runs = services.runs_table()
    assert runs.iloc[0]["run_id"] == result.run_id and runs.iloc[0]["model"] == "efficientnet_lite0"


def test_classify_without_weights_refuses_unless_random_is_asked(engine, db_url):
    image = builtin_image("chelsea")
    with pytest.raises(WeightsUnavailable):
        services.classify(engine, "resnet18", [image])
    result = services.classify(engine, "resnet18", [image], allow_random=True)
    assert not result.weights.trained
    assert services.run_detail(result.run_id).weights_status == "random"
    assert services.runs_table().set_index("model").loc["resnet18", "weights"] == "random"


def test_classify_refuses_empty_and_wrong_task(engine, db_url):
    with pytest.raises(InvalidInput, match="at least one image"):
        services.classify(engine, "efficientnet_lite0", [])
    with pytest.raises(InvalidInput, match="not a classification model"):
        services.classify(engine, "gaussian_denoise", [builtin_image("coffee")])


def test_denoise_demo_beats_the_noisy_input_and_is_stored(engine, db_url):
    result = services.restore(engine, load_builtin("astronaut"), source_name="astronaut", source_hash="h",
                              source_kind="builtin", operation="denoise",
                              methods=["gaussian_denoise", "median_denoise", "nlm_denoise"], sigma=25, seed=0,
                              max_side=256)
    assert result.target.shape == (256, 256, 3)
    assert 20 < result.degraded_psnr < 21.5
    by = {m.method: m for m in result.methods}
    assert all(m.psnr > result.degraded_psnr + 3 and m.ssim > result.degraded_ssim for m in result.methods)
    assert by["nlm_denoise"].psnr > by["gaussian_denoise"].psnr  # the stronger classical method wins
    detail = services.run_detail(by["nlm_denoise"].run_id)
    assert detail.params["degradation"] == {"type": "gaussian_noise", "sigma": 25, "seed": 0,
                                               "scale_0_255": True, "working_size": [256, 256]}
    stored = detail.metrics.set_index("metric")
    assert stored.loc["psnr", "value"] == pytest.approx(by["nlm_denoise"].psnr)
    assert stored.loc["psnr", "convention"] == "rgb,range=255,crop=0"
    assert detail.seed == 0 and detail.weights_status == "parameter-free"


def test_same_seed_same_numbers(engine, db_url):
    kwargs = dict(source_name="camera", source_hash="h", source_kind="builtin", operation="denoise",
                  methods=["median_denoise"], sigma=15, seed=4, max_side=128)
    a = services.restore(engine, load_builtin("camera"), **kwargs)
    b = services.restore(engine, load_builtin("camera"), **kwargs)
    assert a.methods[0].psnr == b.methods[0].psnr
    np.testing.assert_array_equal(a.degraded, b.degraded)


def test_zero_noise_gives_infinite_input_psnr(engine, db_url):
    result = services.restore(engine, load_builtin("coffee"), source_name="coffee", source_hash="h",
                              source_kind="builtin", operation="denoise", methods=["gaussian_denoise"],
                              sigma=0, max_side=96)
    assert math.isinf(result.degraded_psnr)


def test_super_resolution_stores_rgb_and_basicsr_y_metrics(engine, db_url):
    result = services.restore(engine, load_builtin("astronaut"), source_name="astronaut", source_hash="h",
                              source_kind="builtin", operation="super-resolution", methods=["bicubic_x4"],
                              scale=4, max_side=255)
    assert result.target.shape == (252, 252, 3) and result.degraded.shape == (63, 63, 3)
    assert 20 < result.methods[0].psnr < 30
    stored = services.run_detail(result.methods[0].run_id).metrics.set_index("metric")
    assert stored.loc["psnr_y", "convention"] == "y,range=255,crop=4"
    with pytest.raises(InvalidInput, match="upscales x2"):
        services.restore(engine, load_builtin("astronaut"), source_name="a", source_hash="h", source_kind="builtin",
                         operation="super-resolution", methods=["bicubic_x2"], scale=4)


def test_run_detail_rejects_hostile_ids(db_url):
    for bad in ("../..", "1; DROP TABLE runs", None, "9999999"):
        with pytest.raises(InvalidInput):
            services.run_detail(bad)


def test_model_catalog_marks_availability():
    infos = {i.name: i for i in services.list_model_infos()}
    assert infos["efficientnet_lite0"].weights_status == "available"
    assert infos["resnet18"].weights_status == "missing" and infos["resnet18"].label.endswith("weights missing")
    assert infos["nlm_denoise"].weights_status == "parameter-free"
    assert services.list_model_infos("classification")[0].name == "efficientnet_lite0"


def test_ensure_store_migrates_a_fresh_database_url(settings_env, tmp_path):
    from db import migrate

    url = f"sqlite:///{tmp_path / 'elsewhere' / 'team.db'}"
    settings_env(DATABASE_URL=url)
    assert services.ensure_store() == url
    assert migrate.current_revision(url) == migrate.head_revision()
    assert services.runs_table().empty
