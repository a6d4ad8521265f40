"""Detection, segmentation, deblurring and generation through the services, stored with provenance."""
import numpy as np
import pytest
import torch

from core import services
from core.data.builtin import builtin_image, load_builtin
from core.engine import Engine
from core.errors import InvalidInput, WeightsUnavailable
from core.models.registry import get_spec
from core.tasks import detection


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


def test_detector_without_weights_is_refused_then_runs_untrained(engine, db_url):
    image = builtin_image("astronaut")
    with pytest.raises(WeightsUnavailable, match="fasterrcnn_mobilenet_v3_large_fpn"):
        services.detect(engine, "fasterrcnn_mobilenet_v3_large_fpn", [image])
    result = services.detect(engine, "fasterrcnn_mobilenet_v3_large_fpn", [image], allow_random=True,
                             score_threshold=0.3)
    assert not result.weights.trained and result.names == ["astronaut"]
    dets = result.detections[0]
    assert all(d.score >= 0.05 for d in dets) and [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    assert result.above(1.01) == [[]]
    detail = services.run_detail(result.run_id)
    assert detail.weights_status == "random" and detail.params["score_threshold"] == 0.3
    assert detail.image_metrics["value"].iloc[0] == len(result.above(0.3)[0])


def test_boxes_are_drawn_in_their_class_colour():
    img = np.zeros((40, 60, 3), np.uint8)
    dets = [detection.Detection((5.0, 5.0, 30.0, 30.0), 17, "cat", 0.9)]
    drawn = detection.draw(img, dets, width=2)
    assert tuple(drawn[5, 15]) == detection.color_for(17) and tuple(drawn[20, 20]) == (0, 0, 0)
    assert drawn.shape == img.shape and detection.draw(img, []).sum() == 0
    records = detection.postprocess({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]]),
                                     "scores": torch.tensor([0.7, 0.2]), "labels": torch.tensor([17, 3])},
                                    ("bg",) * 17 + ("cat",), 0.5)
    assert records == [detection.Detection((1.0, 2.0, 3.0, 4.0), 17, "cat", pytest.approx(0.7))]


def test_otsu_and_watershed_on_the_coins_photo(engine, db_url):
    coins = builtin_image("coins")
    semantic = services.segment(engine, "otsu_segment", [coins])
    areas = {a.name: a.fraction for a in semantic.images[0].areas}
    assert set(areas) == {"background", "foreground"} and 0.25 < areas["foreground"] < 0.5
    overlay = semantic.images[0].overlay
    assert overlay.shape == coins.pixels.shape and not np.array_equal(overlay, coins.pixels)
    instances = services.segment(engine, "watershed_instances", [coins])
    assert 20 <= len(instances.images[0].instances) <= 35  # the photo holds 24 coins
    detail = services.run_detail(instances.run_id)
    assert detail.params["operation"] == "instance" and detail.weights_status == "parameter-free"


def test_semantic_torchvision_model_labels_every_pixel(engine, db_url):
    result = services.segment(engine, "lraspp_mobilenet_v3_large", [builtin_image("chelsea")], allow_random=True,
                              max_side=160)
    item = result.images[0]
    assert item.image.shape[:2] == (106, 160) and item.overlay.shape == item.image.shape
    assert sum(a.fraction for a in item.areas) == pytest.approx(1.0)
    voc = get_spec("lraspp_mobilenet_v3_large").categories
    assert all(a.name == voc[a.label] for a in item.areas)


def test_deblur_classical_methods_beat_the_blurred_input_in_ssim(engine, db_url, no_reference_weights):
    result = services.restore(engine, load_builtin("astronaut"), source_name="astronaut", source_hash="h",
                              source_kind="builtin", operation="deblur",
                              methods=["wiener_deblur", "richardson_lucy_deblur"], blur_sigma=2.0, sigma=1.0,
                              max_side=256)
    assert 21 < result.degraded_psnr < 23
    wiener = result.methods[0]
    assert wiener.psnr > result.degraded_psnr and wiener.ssim > result.degraded_ssim
    assert result.methods[1].ssim > result.degraded_ssim
    with pytest.raises(WeightsUnavailable):
        services.restore(engine, load_builtin("astronaut"), source_name="a", source_hash="h", source_kind="builtin",
                         operation="deblur", methods=["unet_deblur"], max_side=64)
    untrained = services.restore(engine, load_builtin("astronaut"), source_name="a", source_hash="h",
                                 source_kind="builtin", operation="deblur", methods=["unet_deblur"], max_side=64,
                                 allow_random=True)
    assert not untrained.methods[0].trained
    assert services.run_detail(untrained.methods[0].run_id).weights_status == "random"


def test_generation_is_deterministic_per_seed(engine, db_url):
    a = services.generate(engine, "cdcgan_digits", samples=9, seed=3, label=4, allow_random=True)
    b = services.generate(engine, "cdcgan_digits", samples=9, seed=3, label=4, allow_random=True)
    c = services.generate(engine, "cdcgan_digits", samples=9, seed=4, label=4, allow_random=True)
    assert a.grid.shape == (3 * 34 + 2, 3 * 34 + 2, 3)
    np.testing.assert_array_equal(a.grid, b.grid)
    assert not np.array_equal(a.grid, c.grid)
    assert services.run_detail(a.run_id).seed == 3
    with pytest.raises(InvalidInput, match="conditional"):
        services.generate(engine, "cdcgan_digits", label=None, allow_random=True)
    with pytest.raises(InvalidInput, match="Between 1 and 256"):
        services.generate(engine, "dcgan_shapes", samples=0, allow_random=True)
