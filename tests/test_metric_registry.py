"""The metric registry: one table of what each stored metric is called, which way is better, its unit and kind."""
import ast
from pathlib import Path

import pytest

from core.metrics import registry

ROOT = Path(__file__).resolve().parent.parent

# The table of screen titles as it stood in core/metrics/names.py before the registry: pages and tests read these.
OLD_TITLES = {
    "psnr": "PSNR (dB)", "psnr_y": "PSNR on Y (dB)", "ssim": "SSIM", "ssim_y": "SSIM on Y", "lpips": "LPIPS",
    "top1": "top-1 accuracy", "top5": "top-5 accuracy", "top1_prob": "top-1 probability",
    "precision": "precision", "recall": "recall", "f1": "F1", "f1_micro": "F1 (micro average)",
    "f1_macro": "F1 (macro average)", "f1_max": "F1 at best threshold", "precision_macro": "precision (macro average)",
    "recall_macro": "recall (macro average)", "map": "mAP@[.5:.95]", "map50": "mAP@0.5", "map75": "mAP@0.75",
    "mask_map": "mask mAP@[.5:.95]", "mask_map50": "mask mAP@0.5", "mask_map75": "mask mAP@0.75",
    "miou": "mean IoU", "dice": "Dice", "pixel_accuracy": "pixel accuracy", "fid": "FID", "kid": "KID",
    "fd_efficientnet_lite0": "Fréchet distance (EfficientNet-Lite0 features)", "fd": "Fréchet distance",
    "latency_ms_per_image": "latency (ms/image)", "latency_p50_ms": "latency, median (ms/batch)",
    "latency_p95_ms": "latency, 95th percentile (ms/batch)", "throughput_img_s": "throughput (images/s)",
    "peak_mem_mb": "peak memory (MB)", "num_params": "parameters",
    "val_accuracy": "validation accuracy", "train_accuracy": "training accuracy", "val_psnr": "validation PSNR (dB)",
    "val_miou": "validation mean IoU", "val_map": "validation mAP@[.5:.95]", "val_map50": "validation mAP@0.5",
}
# The directions core/services/store.py stored with engine timings and charts oriented their axes by.
OLD_HIGHER_IS_BETTER = {
    "psnr": True, "ssim": True, "psnr_y": True, "ssim_y": True, "top1_prob": True, "top1": True, "top5": True,
    "precision": True, "recall": True, "f1": True, "f1_macro": True, "f1_micro": True, "f1_max": True,
    "precision_macro": True, "recall_macro": True, "map": True, "map50": True, "map75": True, "mask_map": True,
    "mask_map50": True, "mask_map75": True, "miou": True, "dice": True, "pixel_accuracy": True, "fid": False,
    "kid": False, "fd_efficientnet_lite0": False, "lpips": False,
    "latency_ms_per_image": False, "latency_p50_ms": False, "latency_p95_ms": False,
    "throughput_img_s": True, "peak_mem_mb": False,
}
OLD_FRACTIONS = ("accuracy", "top1", "top5", "precision", "recall", "f1", "miou", "dice", "map", "ssim")


def old_is_fraction(metric: str) -> bool:
    """The name-part rule every page and chart used before the registry (the oracle for stored rows)."""
    return any(part in metric for part in OLD_FRACTIONS) and "prob" not in metric


def _calls(path: Path, func: str) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == func or getattr(n.func, "attr", None) == func)]


def _name_arg(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    if len(call.args) > index:
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def stored_metric_names() -> set[str]:
    """Every metric name code under core/ writes to the store: literal names of MetricValue(...) and
    ImageMetric(...), f"{prefix}map"-style names under the prefixes used ("" and "mask_"), RunStats.as_metrics'
    keys, the feature extractors' columns ("fid", "fd_<space>") and what training jobs report ("val_...")."""
    found: set[str] = set()
    for path in (ROOT / "core").rglob("*.py"):
        for func, index, keyword in (("MetricValue", 0, "name"), ("measured", 0, "name"), ("ImageMetric", 1, "name"),
                                     ("Extractor", 1, "metric")):
            for call in _calls(path, func):
                arg = _name_arg(call, index, keyword)
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[-1], ast.Constant):
                    tail = arg.values[-1].value
                    found |= {tail, "mask_" + tail}
    engine = ast.parse((ROOT / "core" / "engine.py").read_text())
    [as_metrics] = [n for n in ast.walk(engine) if isinstance(n, ast.FunctionDef) and n.name == "as_metrics"]
    found |= {k.value for n in ast.walk(as_metrics) if isinstance(n, ast.Dict) for k in n.keys}
    for path in (ROOT / "core").rglob("*.py"):  # training code: core/training, core/tasks
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                found |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                          and (k.value.startswith("val_") or k.value.endswith("_accuracy"))}
    return found


def test_the_scan_finds_what_evaluations_store():
    names = stored_metric_names()
    assert {"psnr", "ssim_y", "top1", "f1_macro", "map50", "mask_map75", "miou", "kid", "fid", "fd_efficientnet_lite0",
            "latency_p50_ms", "throughput_img_s", "peak_mem_mb", "correct", "target_prob", "detections",
            "val_accuracy", "train_accuracy", "val_psnr", "val_map50"} <= names


def test_every_stored_metric_is_registered():
    assert sorted(stored_metric_names() - set(registry.METRICS)) == []


def test_every_metric_once_titled_or_directed_is_registered():
    assert sorted((set(OLD_TITLES) | set(OLD_HIGHER_IS_BETTER)) - set(registry.METRICS)) == []


def test_titles_are_the_strings_pages_show():
    assert {name: registry.title(name) for name in OLD_TITLES} == OLD_TITLES
    assert registry.title("psnr") == "PSNR (dB)" and registry.title("latency_ms_per_image") == "latency (ms/image)"
    assert registry.title("map50") == "mAP@0.5" and registry.title("num_params") == "parameters"


def test_unknown_names_keep_their_words():
    assert registry.get("my_new_score") is None
    assert registry.title("my_new_score") == "my new score"
    assert registry.higher_is_better("my_new_score") is None and registry.kind("my_new_score") is None


def test_directions_agree_with_what_was_stored():
    assert {name: registry.higher_is_better(name) for name in OLD_HIGHER_IS_BETTER} == OLD_HIGHER_IS_BETTER


def test_facts_of_headline_metrics():
    psnr = registry.get("psnr")
    assert psnr.higher_is_better is True and psnr.unit == "dB" and psnr.kind == "quality" and not psnr.fraction
    p50 = registry.get("latency_p50_ms")
    assert p50.higher_is_better is False and p50.kind == "timing" and p50.unit == "ms"
    assert registry.get("throughput_img_s").unit == "images/s" and registry.higher_is_better("throughput_img_s")
    assert registry.kind("peak_mem_mb") == "cost" and registry.get("peak_mem_mb").unit == "MB"
    assert registry.kind("num_params") == "cost" and registry.get("num_params").unit == "parameters"
    assert registry.higher_is_better("fid") is False and registry.higher_is_better("lpips") is False
    assert registry.higher_is_better("detections") is None  # a count, not a score
    assert registry.get("top1").bounds == (0.0, 1.0) and registry.get("top1").fraction


def test_kinds_partition_the_registry():
    assert set(registry.names("timing")) == {"latency_ms_per_image", "latency_p50_ms", "latency_p95_ms",
                                             "throughput_img_s"}
    assert set(registry.names("cost")) == {"peak_mem_mb", "num_params"}
    by_kind = [n for k in registry.KINDS for n in registry.names(k)]
    assert sorted(by_kind) == sorted(registry.names()) == sorted(registry.METRICS)
    with pytest.raises(ValueError):
        registry.names("speed")


@pytest.mark.parametrize("name", sorted(OLD_TITLES))
def test_fractions_follow_the_old_rule(name):
    assert registry.is_fraction(name) is old_is_fraction(name)


def test_fraction_examples_and_the_fallback_for_unknown_names():
    assert registry.is_fraction("ssim") and registry.is_fraction("val_accuracy") and registry.is_fraction("mask_map")
    assert not registry.is_fraction("top1_prob") and not registry.is_fraction("psnr")
    for unknown in ("val_top5", "test_accuracy", "box_map90", "top1_probability", "loss"):
        assert registry.get(unknown) is None and registry.is_fraction(unknown) is old_is_fraction(unknown)


def test_a_fraction_is_bounded_by_zero_and_one():
    for m in registry.METRICS.values():
        assert m.name and m.kind in registry.KINDS
        assert not m.fraction or m.bounds == (0.0, 1.0), m.name
    with pytest.raises(ValueError):
        registry.Metric("x", "x", True, (0.0, None), "", "quality", percent=True)
    with pytest.raises(ValueError):
        registry.Metric("x", "x", True, (0.0, 1.0), "", "speed")


def test_the_registry_imports_only_the_standard_library():
    import sys

    tree = ast.parse((ROOT / "core" / "metrics" / "registry.py").read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}, roots


def direction_tables(path: Path) -> list[int]:
    """Lines of dict literals that map metric names (one of them "psnr") to True/False."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict) and node.values and any(
                isinstance(k, ast.Constant) and k.value == "psnr" for k in node.keys) and all(
                isinstance(v, ast.Constant) and isinstance(v.value, bool) for v in node.values):
            lines.append(node.lineno)
    return lines


def test_the_scan_recognises_a_direction_table(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('HIB = {"psnr": True, "fid": False}\nOTHER = {"psnr": [], "ssim": []}\n')
    assert direction_tables(sample) == [1]


def test_no_other_module_keeps_a_table_of_directions():
    found = {}
    for package in ("core", "ui", "pages"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "core/metrics/registry.py":
                continue
            if lines := direction_tables(path):
                found[rel] = lines
    assert found == {}


def test_no_stored_value_states_its_own_direction():
    """Evaluations store values through core.tasks.base.measured (direction from the registry), never with a
    literal True/False of their own."""
    literal = []
    for path in (ROOT / "core").rglob("*.py"):
        for call in _calls(path, "MetricValue"):
            hib = _name_arg(call, 3, "higher_is_better")
            if isinstance(hib, ast.Constant) and isinstance(hib.value, bool):
                literal.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert literal == []
