"""Typed evaluation outputs: what each task reports beside its metrics is stored as JSON under the keys runs have
always used, and reads back to the same values (runs stored before the types existed included)."""
from dataclasses import replace

import numpy as np
import pytest

from core.metrics import detection as det_metrics
from core.tasks.outputs import (ClassificationRow, ConfusionMatrix, DetectionRow, DetectionTables, EvaluationOutputs,
                                KernelDistanceSpread, SegmentationRow)


def _report():
    truth = [det_metrics.ImageTruth(np.array([1, 2]), np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float))]
    pred = [det_metrics.ImagePred(np.array([1, 2, 2]), np.array([0.9, 0.8, 0.3]),
                                  np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], float))]
    return det_metrics.evaluate(pred, truth, 3, score_threshold=0.5)


def test_detection_tables_hold_the_reports_numbers():
    tables = DetectionTables.of(_report(), ("background", "circle", "square"))
    circle, square = tables.per_class
    assert circle.ap50 == pytest.approx(1.0) and circle.ap == pytest.approx(1.0)
    assert replace(circle, ap50=1.0, ap=1.0) == DetectionRow("circle", 1.0, 1.0, 1.0, 1.0, 1.0, 1, 1, 0, 0)
    # square: a false positive at 0.8 above the threshold, its true box only at 0.3 (below it)
    assert (square.name, square.tp, square.fp, square.fn, square.precision, square.recall) == ("square", 0, 1, 1, 0.0, 0.0)
    assert tables.pr_curves["square"].score == (0.8, 0.3) and tables.pr_curves["square"].recall == (0.0, 1.0)
    assert tables.max_f1.score_threshold == 0.3 and round(tables.max_f1.f1, 4) == 0.8


def test_outputs_round_trip_through_the_stored_json_with_the_old_keys():
    boxes = DetectionTables.of(_report(), ("background", "circle", "square"))
    detection = EvaluationOutputs.of_detection(boxes, masks=boxes)
    stored = detection.as_json()
    assert set(stored) == {"per_class", "pr_curves", "max_f1", "mask_per_class", "mask_pr_curves", "mask_max_f1"}
    assert list(stored["per_class"][0]) == ["class", "ap50", "ap", "precision", "recall", "f1", "gt", "tp", "fp", "fn"]
    assert stored["per_class"][1]["class"] == "square" and stored["per_class"][1]["fp"] == 1
    assert EvaluationOutputs.from_json(stored) == detection

    classification = EvaluationOutputs(per_class=(ClassificationRow("cat", 0.5, 1.0, 2 / 3, 1),),
                                       confusion=ConfusionMatrix(("cat", "dog"), ((1, 0), (1, 0))))
    assert classification.as_json()["confusion"] == {"labels": ["cat", "dog"], "matrix": [[1, 0], [1, 0]]}
    assert EvaluationOutputs.from_json(classification.as_json()) == classification

    segmentation = EvaluationOutputs(per_class=(SegmentationRow("background", 0.9, 0.95), SegmentationRow("cat", None, None)))
    assert segmentation.as_json() == {"per_class": [{"class": "background", "iou": 0.9, "dice": 0.95},
                                                    {"class": "cat", "iou": None, "dice": None}]}
    assert EvaluationOutputs.from_json(segmentation.as_json()) == segmentation

    restoration = EvaluationOutputs(input_psnr=20.5, input_ssim=None, lpips="computed", noise_level="noise level 25")
    assert restoration.as_json() == {"input_psnr": 20.5, "input_ssim": None, "lpips": "computed",
                                     "noise_level": "noise level 25"}
    generation = EvaluationOutputs(feature_space="inception", kid=KernelDistanceSpread(0.01, 10, 50))
    assert generation.as_json() == {"feature_space": "inception", "kid_std": 0.01, "kid_subsets": 10, "kid_subset_size": 50}
    for out in (restoration, generation):
        assert EvaluationOutputs.from_json(out.as_json()) == out


def test_a_playground_runs_outputs_read_as_no_tables():
    out = EvaluationOutputs.from_json({"predictions": [{"image": "a.png", "top": [[281, "tabby", 0.9]]}]})
    assert out == EvaluationOutputs() and out.table == ()
