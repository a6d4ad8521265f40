"""Classification, detection, segmentation and Fréchet metrics against their reference implementations."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from sklearn import metrics as skm

from core.errors import InvalidInput
from core.metrics import classification as cls
from core.metrics import detection as det
from core.metrics import segmentation as seg
from core.metrics.frechet import GaussianStats, fit_gaussian, frechet_distance


# -- classification --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_and_prf_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = 6
    y_true = rng.integers(0, k, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, k - 1, 300))  # class 5 rarely predicted
    cm = cls.confusion_matrix(y_true, y_pred, k)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(k)))
    prf = cls.precision_recall_f1(cm)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(k), zero_division=0)
    np.testing.assert_allclose(prf.precision, p, atol=1e-12)
    np.testing.assert_allclose(prf.recall, r, atol=1e-12)
    np.testing.assert_allclose(prf.f1, f, atol=1e-12)
    np.testing.assert_array_equal(prf.support, s)
    for avg, got in (("macro", prf.macro), ("micro", prf.micro)):
        ref = skm.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)[:3]
        np.testing.assert_allclose(got, ref, atol=1e-12)
    assert prf.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_topk_matches_sklearn():
    rng = np.random.default_rng(3)
    scores = rng.random((200, 10))
    y = rng.integers(0, 10, 200)
    for k in (1, 5):
        assert cls.topk_correct(scores, y, k).mean() == pytest.approx(skm.top_k_accuracy_score(y, scores, k=k, labels=range(10)))


def test_tied_scores_rank_as_sklearn_ranks_them():
    """Integer scores tie often: the target counts as in the top k exactly when scikit-learn says so."""
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 3, (300, 10)).astype(float)
    y = rng.integers(0, 10, 300)
    for k in (1, 2, 5):
        assert cls.topk_correct(scores, y, k).mean() == pytest.approx(
            skm.top_k_accuracy_score(y, scores, k=k, labels=range(10)), abs=1e-12)
    # one row, all tied: sklearn ranks the highest class index first
    assert cls.topk_correct(np.zeros((1, 4)), np.array([3]), 1)[0] and not cls.topk_correct(np.zeros((1, 4)), np.array([0]), 1)[0]


def test_zero_predictions_of_a_class_give_defined_zero():
    cm = cls.confusion_matrix([0, 0, 1], [0, 0, 0], 2)
    prf = cls.precision_recall_f1(cm)
    assert prf.precision[1] == 0 and prf.recall[1] == 0 and prf.f1[1] == 0
    assert prf.accuracy == pytest.approx(2 / 3)


# -- detection against pycocotools ----------------------------------------------------------------------
def _random_case(seed: int, images: int = 10, classes: int = 3, masks: bool = False, size: int = 48):
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for _ in range(images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, size - 16, (n, 2))
        wh = rng.uniform(4, 16, (n, 2))
        boxes = np.round(np.c_[xy, xy + wh])
        labels = rng.integers(0, classes, n)
        crowd = rng.random(n) < 0.1
        # predictions: jittered copies of most gts (sometimes with the wrong class), plus false positives
        keep = rng.random(n) < 0.8
        pb = boxes[keep] + rng.normal(0, 1.0, (keep.sum(), 4))
        pl = np.where(rng.random(keep.sum()) < 0.85, labels[keep], rng.integers(0, classes, keep.sum()))
        m = int(rng.integers(0, 4))
        fxy = rng.uniform(0, size - 16, (m, 2))
        pb = np.r_[pb, np.c_[fxy, fxy + rng.uniform(4, 16, (m, 2))]]
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        pb = np.round(np.clip(pb, 0, size))
        pl = np.r_[pl, rng.integers(0, classes, m)]
        ps = np.round(rng.uniform(0.05, 1.0, len(pl)), 3)
        if masks:
            def paint(bx):
                out = np.zeros((len(bx), size, size), bool)
                for i, (x1, y1, x2, y2) in enumerate(bx.astype(int)):
                    out[i, y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)] = True
                return out
            truths.append(det.ImageTruth(labels, paint(boxes), crowd))
            preds.append(det.ImagePred(pl, ps, paint(pb)))
        else:
            truths.append(det.ImageTruth(labels, boxes, crowd))
            preds.append(det.ImagePred(pl, ps, pb))
    return truths, preds


def _coco_eval(truths, preds, classes, iou_type, size=48):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def geom(g):
        if iou_type == "bbox":
            x1, y1, x2, y2 = map(float, g)
            return {"bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
        rle = mask_utils.encode(np.asfortranarray(g.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode()
        return {"segmentation": rle, "area": float(g.sum()), "bbox": list(map(float, mask_utils.toBbox(rle)))}

    gt = {"images": [{"id": i + 1, "width": size, "height": size} for i in range(len(truths))],
          "categories": [{"id": c + 1, "name": str(c)} for c in range(classes)], "annotations": []}
    dts = []
    for i, (t, p) in enumerate(zip(truths, preds)):
        areas = t.areas if t.areas is not None else [None] * len(t.labels)
        for lab, g, c, area in zip(t.labels, t.geoms, t.crowd, areas):
            ann = {"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": int(lab) + 1,
                   "iscrowd": int(c), **geom(g)}
            if area is not None and np.isfinite(area):
                ann["area"] = float(area)  # an annotated area that differs from the geometry's
            gt["annotations"].append(ann)
        for lab, s, g in zip(p.labels, p.scores, p.geoms):
            d = geom(g)
            d.pop("area")
            if iou_type == "segm":
                d.pop("bbox")
            dts.append({"image_id": i + 1, "category_id": int(lab) + 1, "score": float(s), **d})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dts)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("seed,iou_type", [(0, "bbox"), (1, "bbox"), (2, "bbox"), (3, "segm"), (4, "segm")])
def test_map_matches_pycocotools(seed, iou_type):
    truths, preds = _random_case(seed, masks=iou_type == "segm")
    ours = det.evaluate(preds, truths, 3, iou_type=iou_type)
    ref = _coco_eval(truths, preds, 3, iou_type)
    assert ours.map == pytest.approx(ref.stats[0], abs=1e-9)
    assert ours.map50 == pytest.approx(ref.stats[1], abs=1e-9)
    assert ours.map75 == pytest.approx(ref.stats[2], abs=1e-9)
    per_class_ref = ref.eval["precision"][:, :, :, 0, 2]  # T x R x K, area all, maxDets 100
    for k in range(3):
        for t in range(10):
            valid = per_class_ref[t, :, k]
            expected = valid.mean() if (valid > -1).all() else -1
            assert ours.ap[t, k] == pytest.approx(expected, abs=1e-9)


def _sized_case(seed: int, size: int = 320):
    """Objects of every COCO size (4 to 160 px a side), some annotated areas that differ from the box's, and
    detections with a negative width or height (COCOeval ignores them as outside every area range)."""
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for _ in range(12):
        n = int(rng.integers(1, 7))
        wh = rng.uniform(4, 160, (n, 2))
        xy = rng.uniform(0, size - wh)
        boxes = np.round(np.c_[xy, xy + wh])
        labels = rng.integers(0, 3, n)
        crowd = rng.random(n) < 0.1
        areas = np.where(rng.random(n) < 0.3, (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) * 0.3, np.nan)
        keep = rng.random(n) < 0.8
        pb = np.round(boxes[keep] + rng.normal(0, 2.0, (keep.sum(), 4)))
        pl = np.where(rng.random(keep.sum()) < 0.85, labels[keep], rng.integers(0, 3, keep.sum()))
        m = int(rng.integers(0, 4))
        fwh = rng.uniform(4, 160, (m, 2))
        fxy = rng.uniform(0, size - fwh)
        fake = np.round(np.c_[fxy, fxy + fwh])
        flip = rng.random(m) < 0.5  # x2 < x1: a negative width
        fake[flip] = fake[flip][:, [2, 1, 0, 3]]
        pb, pl = np.r_[pb, fake], np.r_[pl, rng.integers(0, 3, m)]
        truths.append(det.ImageTruth(labels, boxes, crowd, areas))
        preds.append(det.ImagePred(pl, np.round(rng.uniform(0.05, 1.0, len(pl)), 3), pb))
    return truths, preds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_area_ranges_annotated_areas_and_negative_boxes_match_pycocotools(seed):
    truths, preds = _sized_case(seed)
    assert any((p.geoms[:, 2] < p.geoms[:, 0]).any() for p in preds)
    ours = det.evaluate(preds, truths, 3)
    ref = _coco_eval(truths, preds, 3, "bbox", size=320)
    got = [ours.map, ours.map50, ours.map75, ours.map_in("small"), ours.map_in("medium"), ours.map_in("large")]
    expected = [-1.0 if np.isnan(v) else v for v in got]
    assert expected == pytest.approx(list(ref.stats[:6]), abs=1e-9)


def test_a_detection_with_a_negative_width_is_no_false_positive():
    truth = [det.ImageTruth(np.array([1]), np.array([[0.0, 0.0, 10.0, 10.0]]))]
    pred = [det.ImagePred(np.array([1, 1]), np.array([0.9, 0.8]), np.array([[0.0, 0.0, 10.0, 10.0], [30.0, 0.0, 20.0, 10.0]]))]
    rep = det.evaluate(pred, truth, 2)
    assert rep.fp[1] == 0 and rep.tp[1] == 1 and rep.map == pytest.approx(1.0)
    assert np.isnan(rep.map_in("large")) and rep.map_in("small") == pytest.approx(1.0)


def test_hand_built_detection_case():
    """Five images: a hit, a miss, a false positive on an empty image, a duplicate, and nothing at all."""
    truths = [det.ImageTruth(np.array([0]), np.array([[0, 0, 10, 10]])),
              det.ImageTruth(np.array([1]), np.array([[0, 0, 10, 10]])),  # missed: no prediction
              det.ImageTruth(np.zeros(0, int), np.zeros((0, 4))),
              det.ImageTruth(np.array([0]), np.array([[20, 20, 30, 30]])),
              det.ImageTruth(np.zeros(0, int), np.zeros((0, 4)))]
    preds = [det.ImagePred(np.array([0]), np.array([0.9]), np.array([[1, 1, 10, 10]])),  # IoU 0.81
             det.ImagePred(np.zeros(0, int), np.zeros(0), np.zeros((0, 4))),
             det.ImagePred(np.array([0]), np.array([0.8]), np.array([[0, 0, 5, 5]])),  # false positive
             det.ImagePred(np.array([0, 0]), np.array([0.7, 0.6]), np.array([[20, 20, 30, 30], [21, 21, 30, 30]])),
             det.ImagePred(np.zeros(0, int), np.zeros(0), np.zeros((0, 4)))]
    rep = det.evaluate(preds, truths, 2, score_threshold=0.5)
    np.testing.assert_array_equal(rep.tp, [2, 0])
    np.testing.assert_array_equal(rep.fp, [2, 0])  # the empty-image box and the duplicate
    np.testing.assert_array_equal(rep.fn, [0, 1])
    p, r, f = rep.prf()
    assert p.tolist() == [0.5, 0.0] and r.tolist() == [1.0, 0.0] and f[0] == pytest.approx(2 / 3) and f[1] == 0
    assert rep.micro() == pytest.approx((0.5, 2 / 3, 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)))
    # class 0 at IoU .5: scores .9 TP, .8 FP, .7 TP, .6 FP -> monotone precision 1, 2/3; AP = (51*1 + 50*2/3)/101
    assert rep.ap[0, 0] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)
    assert rep.ap[0, 1] == 0.0  # ground truth but no detections
    f1, p_at, r_at, thr = rep.max_f1()  # over both classes (3 gts): best at score .9 (1/1, 1/3) or .7 (2/3, 2/3)
    assert (f1, p_at, r_at, thr) == pytest.approx((2 / 3, 2 / 3, 2 / 3, 0.7))
    empty = det.evaluate([preds[4]], [truths[4]], 2)
    assert np.isnan(empty.map) and empty.micro() == (0.0, 0.0, 0.0)


def test_detection_rejects_unknown_class():
    with pytest.raises(InvalidInput, match="Class id 7"):
        det.evaluate([det.ImagePred(np.array([7]), np.array([1.0]), np.array([[0, 0, 1, 1]]))],
                     [det.ImageTruth(np.zeros(0, int), np.zeros((0, 4)))], 3)


# -- semantic segmentation against sklearn --------------------------------------------------------------
def test_segmentation_scores_match_sklearn():
    rng = np.random.default_rng(5)
    target = rng.integers(0, 4, (40, 50))
    pred = np.where(rng.random((40, 50)) < 0.7, target, rng.integers(0, 4, (40, 50)))
    target_ign = target.copy()
    target_ign[:5] = seg.IGNORE_INDEX
    cm = seg.pixel_confusion(pred, target_ign, 4)
    keep = target_ign != seg.IGNORE_INDEX
    np.testing.assert_array_equal(cm, skm.confusion_matrix(target_ign[keep], pred[keep], labels=range(4)))
    s = seg.scores(cm)
    ref_iou = skm.jaccard_score(target_ign[keep], pred[keep], labels=range(4), average=None)
    np.testing.assert_allclose(s.iou, ref_iou, atol=1e-12)
    np.testing.assert_allclose(s.dice, skm.f1_score(target_ign[keep], pred[keep], labels=range(4), average=None), atol=1e-12)
    assert s.miou == pytest.approx(ref_iou.mean())
    assert s.pixel_accuracy == pytest.approx(skm.accuracy_score(target_ign[keep], pred[keep]))


def test_absent_class_is_left_out_of_miou():
    s = seg.scores(seg.pixel_confusion(np.array([[0, 1]]), np.array([[0, 1]]), 3))
    assert np.isnan(s.iou[2]) and s.miou == 1.0 and s.mean_dice == 1.0


# -- Fréchet distance ----------------------------------------------------------------------------------
def test_frechet_matches_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    got = frechet_distance(GaussianStats(mu1, np.diag(v1), 10), GaussianStats(mu2, np.diag(v2), 10))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_matches_pytorch_fid_on_sampled_features():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (500, 16))
    b = rng.normal(0.3, 1.2, (400, 16)) @ rng.normal(0, 0.5, (16, 16))
    sa, sb = fit_gaussian(a), fit_gaussian(b)
    assert frechet_distance(sa, sb) == pytest.approx(calculate_frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma), rel=1e-7)
    assert frechet_distance(sa, sa) == pytest.approx(0.0, abs=1e-6)


def test_an_imaginary_square_root_is_recorded_where_pytorch_fid_refuses():
    from pytorch_fid.fid_score import calculate_frechet_distance

    from core.metrics.frechet import frechet

    mu = np.zeros(2)
    a, b = GaussianStats(mu, np.diag([1.0, -1.0]), 10), GaussianStats(mu, np.eye(2), 10)  # not a covariance: sqrt(-1)
    with pytest.raises(ValueError, match="Imaginary component"):
        calculate_frechet_distance(mu, a.sigma, mu, b.sigma)
    with pytest.warns(RuntimeWarning, match="imaginary component"):
        result = frechet(a, b)
    assert result.imaginary == pytest.approx(1.0) and "pytorch-fid refuses above 0.001" in result.note
    assert result.value == pytest.approx(1.0 + 1.0 - 1.0 + 1.0 - 2 * 1.0)  # Tr(S1 + S2 - 2 Re sqrt(S1 S2))
    assert frechet(b, b).note == "" and frechet(b, b).imaginary == 0.0


def test_frechet_from_features_is_the_same_distance_without_a_d_by_d_square_root():
    """Fewer samples than dimensions (every per-epoch GAN check): the nuclear-norm form equals pytorch-fid's
    sqrtm formula, and a set against itself is 0 to rounding; with more samples it is the sqrtm path itself."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    from core.metrics.frechet import frechet_distance_features

    rng = np.random.default_rng(1)
    mix = rng.normal(0, 0.5, (256, 256))
    a = np.abs(rng.normal(0, 1, (40, 256)) @ mix)  # non-negative like pooled ReLU features
    b = np.abs(rng.normal(0.2, 1.1, (60, 256)) @ mix)
    sa, sb = fit_gaussian(a), fit_gaussian(b)
    expected = calculate_frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma)
    assert frechet_distance_features(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_features(a, b) == pytest.approx(frechet_distance_features(b, a), rel=1e-12)
    assert abs(frechet_distance_features(a, a)) <= 1e-10 * expected
    big_a, big_b = rng.normal(0, 1, (300, 8)), rng.normal(0.5, 2, (200, 8))
    assert frechet_distance_features(big_a, big_b) == frechet_distance(fit_gaussian(big_a), fit_gaussian(big_b))
    with pytest.raises(InvalidInput, match="Feature sizes differ"):
        frechet_distance_features(a, b[:, :10])


def test_frechet_refuses_fewer_than_two_samples():
    with pytest.raises(InvalidInput, match="at least 2 samples"):
        fit_gaussian(np.zeros((1, 8)))
