"""The bundled real-weights classifier recognises real photos."""
import pytest

from core.data.builtin import builtin_image
from core.engine import Engine
from core.tasks import classification
from core.tasks.inputs import prepare

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def predictions():
    engine = Engine(device="cpu")
    loaded = engine.load("efficientnet_lite0")
    assert loaded.weights.status == "pretrained"
    images = [builtin_image("chelsea").pixels, builtin_image("coffee").pixels]
    tensors, cfg = prepare(loaded.spec, loaded.module, images)
    assert cfg["input_size"] == [3, 224, 224] and cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875
    logits, _ = engine.run(loaded, tensors)
    return classification.postprocess(logits, classification.label_names("imagenet-1k", 1000), k=5)


def test_chelsea_is_a_cat(predictions):
    top = predictions[0]
    assert top[0].index in CAT_CLASSES, top
    assert top[0].label == "tiger cat"
    assert sum(p.prob for p in top if p.index in CAT_CLASSES) > 0.8


def test_coffee_is_espresso(predictions):
    top = predictions[1]
    assert top[0].index == ESPRESSO and top[0].label == "espresso"
    assert top[0].prob > 0.9


def test_top5_is_sorted_probabilities(predictions):
    for top in predictions:
        probs = [p.prob for p in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
