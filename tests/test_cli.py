"""python -m core: the headless commands, on the same store as the app."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.__main__ import main
from tests.conftest import encode


def run_cli(capsys, *argv) -> tuple[int, object, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv and code == 0 else out), err


def test_models_json_in_a_real_process(settings_env):
    proc = subprocess.run([sys.executable, "-m", "core", "models", "--task", "restoration", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["bicubic_x2"]["weights_status"] == "parameter-free" and rows["dncnn"]["weights_status"] == "available"
    assert rows["dncnn"]["weights"].startswith("trained by this project: held-out psnr")  # the shipped reference
    assert {r["task"] for r in rows.values()} == {"restoration"}


def test_bench_stores_runs_that_export_finds(settings_env, capsys):
    code, out, _ = run_cli(capsys, "bench", "--model", "gaussian_denoise", "--model", "median_denoise", "--dataset",
                           "photos-denoise", "--set", "max_side=64", "--set", "sigma=15", "--limit", "2", "--json", "--quiet")
    assert code == 0 and [o["model"] for o in out] == ["gaussian_denoise", "median_denoise"]
    assert all(o["error"] is None and 20 < o["metrics"]["psnr"] < 45 for o in out)
    code, rows, _ = run_cli(capsys, "export", "--format", "json", "--json")
    assert code == 0
    code, text, _ = run_cli(capsys, "export", "--format", "csv")
    header, *lines = text.strip().splitlines()
    assert "psnr" in header.split(",") and len(lines) == 2
    assert "photos-denoise(first=2,limit=10,max_side=64,photos=skimage,seed=0,sigma=15.0)" in text


def test_metrics_on_two_folders_matches_skimage(settings_env, capsys, tmp_path):
    from skimage.data import astronaut, coffee
    from skimage.metrics import peak_signal_noise_ratio

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    rng = np.random.default_rng(0)
    refs = {"astro.png": astronaut()[:128, :128], "coffee.png": coffee()[:128, :128]}
    for name, img in refs.items():
        noisy = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        (tmp_path / "a" / name).write_bytes(encode(noisy))
        (tmp_path / "b" / name).write_bytes(encode(img))
    (tmp_path / "b" / "extra.png").write_bytes(encode(refs["astro.png"]))
    code, out, _ = run_cli(capsys, "metrics", "--pred", str(tmp_path / "a"), "--target", str(tmp_path / "b"), "--json")
    assert code == 0 and out["unmatched"] == ["extra.png"] and out["convention"] == "rgb,range=255,crop=0"
    from PIL import Image

    for row in out["images"]:
        a = np.asarray(Image.open(tmp_path / "a" / row["image"]))
        b = np.asarray(Image.open(tmp_path / "b" / row["image"]))
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-6)
    code, same, _ = run_cli(capsys, "metrics", "--pred", str(tmp_path / "b" / "astro.png"), "--target",
                            str(tmp_path / "b" / "extra.png"), "--json")
    assert same["psnr"] == "inf"  # identical images: infinite PSNR, written as such


def test_eval_detections_matches_pycocotools(settings_env, capsys, tmp_path):
    from tests.test_metrics_reference import _coco_eval, _random_case

    truths, preds = _random_case(7)
    ref = _coco_eval(truths, preds, 3, "bbox")
    gt = {"images": [{"id": i + 1, "width": 48, "height": 48} for i in range(len(truths))],
          "categories": [{"id": 10 + c, "name": f"c{c}"} for c in range(3)], "annotations": []}
    dts = []
    for i, (t, p) in enumerate(zip(truths, preds)):
        for lab, (x1, y1, x2, y2), crowd in zip(t.labels, t.geoms, t.crowd):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": 10 + int(lab),
                                      "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                      "iscrowd": int(crowd)})
        for lab, s, (x1, y1, x2, y2) in zip(p.labels, p.scores, p.geoms):
            dts.append({"image_id": i + 1, "category_id": 10 + int(lab), "score": float(s),
                        "bbox": [x1, y1, x2 - x1, y2 - y1]})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(dts))
    code, out, _ = run_cli(capsys, "eval-detections", "--pred", str(tmp_path / "pred.json"), "--gt",
                           str(tmp_path / "gt.json"), "--json")
    assert code == 0
    assert out["map"] == pytest.approx(ref.stats[0], abs=1e-9) and out["map50"] == pytest.approx(ref.stats[1], abs=1e-9)
    assert {r["class"] for r in out["per_class"]} <= {"c0", "c1", "c2"}
    # every object here is small: AP by size as COCOeval, and the sizes without objects say so instead of -1
    assert out["map_small"] == pytest.approx(ref.stats[3], abs=1e-9) and ref.stats[4] == ref.stats[5] == -1
    assert out["map_medium"] is None and out["map_large"] is None
    assert "No medium objects in the ground truth: mAP_medium is undefined (null)." in out["notes"]

    # detections only of a class without ground truth: no AP for it, and no mAP at all, in words
    only = [d for d in dts if d["category_id"] == 11][:3] + [{"image_id": 1, "category_id": 11, "score": 0.9,
                                                             "bbox": [1, 1, 5, 5]}]
    gt["annotations"] = []
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(only))
    code, out, _ = run_cli(capsys, "eval-detections", "--pred", str(tmp_path / "pred.json"), "--gt",
                           str(tmp_path / "gt.json"), "--json")
    assert code == 0 and out["map"] is None and out["per_class"][0]["ap"] is None
    assert out["notes"][0] == "No class has ground truth in these images: mAP is undefined (null)."
    assert out["precision"] == 0.0 and out["per_class"][0]["fp"] == sum(d["score"] >= 0.5 for d in only)  # at the threshold


def test_bad_inputs_exit_2_with_a_reason(settings_env, capsys, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    code, _, err = run_cli(capsys, "eval-detections", "--pred", str(tmp_path / "bad.json"), "--gt", str(tmp_path / "bad.json"))
    assert code == 2 and "not valid JSON" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "bench", "--model", "nope", "--dataset", "digits")
    assert code == 2 and "nope" in err
    code, _, err = run_cli(capsys, "bench", "--model", "bicubic_x2", "--dataset", "photos-sr", "--set", "../x=1")
    assert code == 2 and "has no parameter" in err


def test_paired_and_operating_point_commands(settings_env, capsys):
    from core.services import compare

    code, out, _ = run_cli(capsys, "bench", "--model", "gaussian_denoise", "--model", "median_denoise", "--dataset",
                           "photos-denoise", "--set", "max_side=48", "--limit", "3", "--json", "--quiet")
    assert code == 0
    [dataset] = compare.datasets("restoration")["dataset"]
    code, rows, _ = run_cli(capsys, "paired", "--task", "restoration", "--dataset", dataset, "--reference",
                            "median_denoise", "--json")
    assert code == 0 and [r["model"] for r in rows] == ["gaussian_denoise"]
    assert rows[0]["images"] == 3 and rows[0]["metric"] == "PSNR (dB)" and rows[0]["verdict"] in (
        "borderline", "not distinguishable", "distinguishable")
    code, text, _ = run_cli(capsys, "paired", "--task", "restoration", "--dataset", dataset, "--metric", "ssim")
    assert code == 0 and text.startswith(("gaussian_denoise", "median_denoise")) and "on SSIM" in text

    code, out, _ = run_cli(capsys, "bench", "--model", "shape_regions", "--dataset", "shapes-detect", "--set", "count=6",
                           "--json", "--quiet")
    run_id, f1 = out[0]["run_id"], out[0]["metrics"]["f1"]
    code, point, _ = run_cli(capsys, "operating-point", "--run", str(run_id), "--json")
    assert code == 0 and point["points"][0]["F1"] == pytest.approx(f1)
    assert point["confusion"][-1]["true class"] == "background (no object)"
    code, _, err = run_cli(capsys, "operating-point", "--run", str(run_id), "--iou", "0.42")
    assert code == 2 and "one of 0.50" in err
    code, _, err = run_cli(capsys, "paired", "--task", "restoration", "--dataset", "../../etc")
    assert code == 2 and "Traceback" not in err
