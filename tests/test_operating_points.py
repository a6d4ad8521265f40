"""The operating-point explorer's arithmetic (core.metrics.operating_points): P/R/F1 at any stored (IoU, score) equal a
fresh COCO-style evaluation at that threshold, the confusion matrix on a hand-built scene, and storage round trips."""
import numpy as np
import pytest

from core.annotations import ImagePred, ImageTruth
from core.errors import InvalidInput
from core.metrics import detection as det
from core.metrics import operating_points as op

NAMES = ("background", "circle", "square", "triangle")


def random_run(n_images: int, seed: int) -> tuple[list[ImagePred], list[ImageTruth]]:
    """Scenes of 0-4 objects; detections are jittered copies (some relabelled, some lost) plus false alarms,
    with a crowd region now and then."""
    rng = np.random.default_rng(seed)
    preds, truths = [], []
    for _ in range(n_images):
        k = int(rng.integers(0, 5))
        xy = rng.uniform(0, 80, (k, 2))
        wh = rng.uniform(8, 40, (k, 2))
        boxes = np.c_[xy, xy + wh]
        labels = rng.integers(1, 4, k)
        crowd = rng.random(k) < 0.1
        keep = rng.random(k) < 0.85
        jitter = rng.normal(0, 3, (k, 4))
        d_boxes = (boxes + jitter)[keep]
        d_labels = np.where(rng.random(k) < 0.15, rng.integers(1, 4, k), labels)[keep]
        extra = int(rng.integers(0, 3))
        exy = rng.uniform(0, 90, (extra, 2))
        d_boxes = np.r_[d_boxes, np.c_[exy, exy + rng.uniform(5, 30, (extra, 2))]]
        d_labels = np.r_[d_labels, rng.integers(1, 4, extra)]
        scores = np.round(rng.uniform(0, 1, len(d_labels)), 2)  # rounded: ties happen
        preds.append(ImagePred(d_labels, scores, d_boxes))
        truths.append(ImageTruth(labels, boxes, crowd))
    return preds, truths


@pytest.mark.parametrize("score", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_counts_at_iou_half_equal_a_fresh_evaluation(score):
    preds, truths = random_run(60, seed=1)
    table = op.build(preds, truths, NAMES)
    point = op.at(table, 0.5, score)
    fresh = det.evaluate(preds, truths, len(NAMES), score_threshold=score, area_ranges=False)
    assert point.tp.tolist() == fresh.tp.astype(int).tolist()
    assert point.fp.tolist() == fresh.fp.astype(int).tolist()
    assert point.fn.tolist() == fresh.fn.astype(int).tolist()
    assert point.micro == pytest.approx(fresh.micro())


@pytest.mark.parametrize("iou", [0.55, 0.75, 0.95])
def test_counts_at_higher_iou_equal_cocos_matching_there(iou):
    preds, truths = random_run(40, seed=2)
    table = op.build(preds, truths, NAMES)
    per_class = det._collect(preds, truths, len(NAMES), det.box_iou, det.box_area, np.array([iou]), det.AREA_RANGES["all"])
    point = op.at(table, iou, 0.4)
    for c, entry in enumerate(per_class):
        scores, matched, ignored = det._sorted(entry)
        above = (scores >= 0.4) & ~ignored[0]
        assert point.tp[c] == int((matched[0] & above).sum())
        assert point.fp[c] == int((~matched[0] & above).sum())
        assert point.fn[c] == entry.num_gt - point.tp[c]


def test_the_pr_curve_peaks_where_the_report_says():
    preds, truths = random_run(80, seed=3)
    table = op.build(preds, truths, NAMES)
    curve = op.pr_curve(table, 0.5)
    assert curve.best() == pytest.approx(det.evaluate(preds, truths, len(NAMES), area_ranges=False).max_f1())
    assert np.all(np.diff(curve.recall) >= 0) and np.all(np.diff(curve.score) < 0)
    # each point of the curve is the operating point at its own threshold
    for i in (0, len(curve.score) // 2, len(curve.score) - 1):
        p, r, _ = op.at(table, 0.5, float(curve.score[i])).micro
        assert (p, r) == pytest.approx((curve.precision[i], curve.recall[i]))


def test_confusion_on_a_hand_built_scene():
    square, circle, triangle = 2, 1, 3
    truth = ImageTruth(np.array([square, circle, triangle]),
                       np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], float))
    pred = ImagePred(np.array([square, square, triangle, circle]), np.array([0.9, 0.8, 0.6, 0.3]),
                     np.array([[0, 0, 10, 10],       # the square, found
                               [20, 20, 30, 31],     # the circle, taken for a square (IoU 0.91)
                               [80, 80, 90, 90],     # nothing there: background
                               [0, 0, 10, 10]], float))  # a second box on the square, called a circle
    table = op.build([pred], [truth], NAMES)
    point = op.at(table, 0.5, 0.5)
    cm = point.confusion  # rows: background, circle, square, triangle, "background"; columns: ..., "missed"
    assert cm[square, square] == 1 and cm[circle, square] == 1
    assert cm[4, triangle] == 1  # a detection of nothing
    assert cm[triangle, 4] == 1  # the triangle is missed
    assert cm[:4, :4].sum() == 2 and cm.sum() == 4
    assert point.tp.tolist() == [0, 0, 1, 0] and point.fp.tolist() == [0, 0, 1, 1] and point.fn.tolist() == [0, 1, 0, 1]
    # lower the threshold: the circle-called box on the square now counts, as square taken for circle
    cm = op.at(table, 0.5, 0.0).confusion
    assert cm[square, circle] == 0 and cm[4, circle] == 1  # the square is already found: that box is a false alarm
    # every object is in its row once; every detection above the threshold in its column once
    for score in (0.0, 0.5, 0.85):
        point = op.at(table, 0.5, score)
        assert point.confusion[:4].sum(axis=1)[1:].tolist() == table.num_gt()[1:].tolist()
        assert point.confusion[:, :4].sum(axis=0).tolist() == (point.tp + point.fp).tolist()


def test_rows_and_columns_add_up_on_random_runs():
    preds, truths = random_run(50, seed=4)
    table = op.build(preds, truths, NAMES)
    for iou in (0.5, 0.7, 0.9):
        for score in (0.0, 0.35, 0.8):
            point = op.at(table, iou, score)
            k = len(NAMES)
            assert point.confusion[:k].sum(axis=1).tolist() == table.num_gt().tolist()
            assert point.confusion[:, :k].sum(axis=0).tolist() == (point.tp + point.fp).tolist()
            assert np.diag(point.confusion)[:k].tolist() == point.tp.tolist()


def test_storage_round_trip_and_refusals():
    preds, truths = random_run(10, seed=5)
    table = op.build(preds, truths, NAMES)
    back = op.MatchTable.from_bytes(table.to_bytes())
    assert back.class_names == NAMES and back.num_images == 10
    assert np.array_equal(back.det_gt, table.det_gt) and np.array_equal(back.pair_iou, table.pair_iou)
    assert op.at(back, 0.65, 0.2).confusion.tolist() == op.at(table, 0.65, 0.2).confusion.tolist()
    with pytest.raises(InvalidInput, match="unreadable"):
        op.MatchTable.from_bytes(b"not an npz")
    with pytest.raises(InvalidInput, match="one of 0.50, 0.55"):
        op.at(table, 0.52, 0.5)
    empty = op.build([], [], NAMES)
    assert op.at(empty, 0.5, 0.5).micro == (0.0, 0.0, 0.0) and op.pr_curve(empty, 0.5).best() == (0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("width,iou", [(6, 0.6), (7, 0.7), (65, 0.65), (9, 0.9)])
def test_a_box_of_another_class_exactly_at_the_threshold_counts_as_confusion(width, iou):
    """Overlap exactly at the threshold: the same rule as COCO's matching (a same-class box there is a match)."""
    span = 10 if width < 10 else 100
    truth = ImageTruth(np.array([1]), np.array([[0, 0, span, 10]], float))
    other = op.at(op.build([ImagePred(np.array([2]), np.array([0.9]), np.array([[0, 0, width, 10]], float))], [truth],
                           NAMES), iou, 0.5)
    same = op.at(op.build([ImagePred(np.array([1]), np.array([0.9]), np.array([[0, 0, width, 10]], float))], [truth],
                          NAMES), iou, 0.5)
    assert same.tp[1] == 1
    assert other.confusion[1, 2] == 1 and other.confusion[1, 4] == 0 and other.confusion[4, 2] == 0


def test_damaged_stored_tables_are_refused_in_words():
    import dataclasses

    preds, truths = random_run(6, seed=6)
    good = op.build(preds, truths, NAMES).to_bytes()
    for damaged in (good[: len(good) // 2], b"", b"PK\x03\x04" + b"\x00" * 40):
        with pytest.raises(InvalidInput, match="unreadable"):
            op.MatchTable.from_bytes(damaged)
    table = op.MatchTable.from_bytes(good)
    bad = dataclasses.replace(table, det_gt=table.det_gt[:, :3])  # arrays that do not fit together
    with pytest.raises(InvalidInput, match="unreadable"):
        op.MatchTable.from_bytes(bad.to_bytes())
    assert len(table.det_class) > 0
    with pytest.raises(InvalidInput, match="unreadable"):  # classes beyond the names
        op.MatchTable.from_bytes(dataclasses.replace(table, det_class=table.det_class + 100).to_bytes())
    with pytest.raises(InvalidInput, match="one of 0.50"):
        op.at(table, float("nan"), 0.5)
