"""MTCNN with the real weights of the facenet-pytorch package, on real photos."""
import pytest
import torch
from torchvision.ops import box_iou

from core import services
from core.data.builtin import builtin_image
from core.engine import Engine

# Hand-drawn face boxes (x1, y1, x2, y2) on the scikit-image photos.
FACES = {"astronaut": [178.0, 58.0, 270.0, 175.0], "camera": [196.0, 115.0, 256.0, 195.0]}


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_finds_the_one_face(engine, db_url, name):
    result = services.detect(engine, "mtcnn_face", [builtin_image(name)], score_threshold=0.9)
    assert result.weights.status == "pretrained"
    faces = result.above(0.9)[0]
    assert len(faces) == 1 and faces[0].name == "face" and faces[0].score > 0.99
    iou = box_iou(torch.tensor([faces[0].box]), torch.tensor([FACES[name]]))
    assert float(iou) > 0.75


@pytest.mark.parametrize("name", ["chelsea", "coffee", "coins"])
def test_no_face_where_there_is_none(engine, db_url, name):
    result = services.detect(engine, "mtcnn_face", [builtin_image(name)], score_threshold=0.9)
    assert result.above(0.9) == [[]]


def test_landmarks_sit_inside_the_face(engine):
    loaded = engine.load("mtcnn_face")
    from core.tasks.detection import to_tensor

    outputs, _ = engine.run(loaded, [to_tensor(builtin_image("astronaut").pixels)])
    (x1, y1, x2, y2), points = outputs[0]["boxes"][0].tolist(), outputs[0]["keypoints"][0]
    assert points.shape == (5, 2)
    assert all(x1 < x < x2 and y1 < y < y2 for x, y in points.tolist())
    left_eye, right_eye, nose, mouth_left, mouth_right = points.tolist()
    assert left_eye[0] < nose[0] < right_eye[0] and max(left_eye[1], right_eye[1]) < nose[1] < mouth_left[1]


def test_landmarks_are_drawn_and_stored_with_the_run(engine, db_url):
    from core.tasks.detection import KEYPOINT_COLOR, draw

    image = builtin_image("astronaut")
    result = services.detect(engine, "mtcnn_face", [image], score_threshold=0.9)
    face = result.above(0.9)[0][0]
    assert len(face.keypoints) == 5
    drawn = draw(image.pixels, [face])
    x, y = (round(v) for v in face.keypoints[2])  # the nose
    assert tuple(drawn[y, x]) == KEYPOINT_COLOR
    stored = services.run_detail(result.run_id).outputs["detections"][0]["boxes"][0]
    assert stored["name"] == "face" and len(stored["keypoints"]) == 5
