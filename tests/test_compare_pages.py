"""Compare and Leaderboard pages through AppTest on a store seeded with real benchmark runs (classical denoisers
on three photos, the shapes detector, an untrained digits CNN): every view, links, export, reproduce."""
import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import shown

APP = str(Path(__file__).resolve().parent.parent / "app.py")
DENOISE = {"name": "photos-denoise", "limit": 3, "max_side": 64}
DENOISERS = ["gaussian_denoise", "median_denoise", "nlm_denoise"]


@pytest.fixture
def seeded(db_url, no_reference_weights):
    from core.engine import Engine
    from core.services import compare
    from core.services.benchmark import run_benchmark

    engine = Engine("cpu")
    runs = {o.model: o for o in run_benchmark(engine, DENOISERS, DENOISE)}
    runs.update({o.model: o for o in run_benchmark(engine, ["shape_regions"], {"name": "shapes-detect", "count": 8})})
    runs.update({o.model: o for o in run_benchmark(engine, ["small_cnn_digits"], {"name": "digits"}, {"limit": 40},
                                                    allow_random=True)})
    names = compare.datasets().set_index("task")["dataset"]
    return {"runs": runs, "datasets": names.to_dict()}


def open_page(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def values(arr) -> list:
    """Plotly 7 sends numeric arrays base64-typed."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).tolist()
    return list(arr)


def qp(at, name: str) -> str:
    value = at.query_params[name]
    return value[0] if isinstance(value, list) else value


def downloads(at) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


def test_pages_on_an_empty_store_say_where_numbers_come_from(db_url):
    at = open_page("pages/leaderboard.py")
    assert any("ranked here" in i.value for i in at.info)
    at = open_page("pages/compare.py", view="cost")
    assert any("run one on the Benchmark page" in i.value for i in at.info) and not at.get("plotly_chart")


def test_leaderboard_ranks_models_with_conventions_and_links(seeded):
    at = open_page("pages/leaderboard.py", task="restoration")
    assert dict(at.query_params)["dataset"] == seeded["datasets"]["restoration"]
    table = at.dataframe[0].value
    assert list(table["model"]) == ["nlm_denoise", "gaussian_denoise", "median_denoise"]  # by PSNR, best first
    assert table["psnr"].is_monotonic_decreasing and (table["rank"] == [1, 2, 3]).all()
    assert table["run"].tolist() == [f"/results?run={seeded['runs'][m].run_id}" for m in table["model"]]
    assert table["psnr"].iloc[0] == pytest.approx(seeded["runs"]["nlm_denoise"].metrics["psnr"])
    header = " ".join(m.value for m in at.markdown)
    assert "**PSNR (dB) ↑** — RGB, values 0-255, no border crop, mean of per-image values" in header
    assert downloads(at)[:2] == ["CSV", "JSON"]

    at.text_input(key="lb_filter").input("median").run()
    assert list(at.dataframe[0].value["model"]) == ["median_denoise"]


def test_leaderboard_marks_untrained_models_and_hides_them_on_request(seeded):
    at = open_page("pages/leaderboard.py", task="classification")
    assert at.dataframe[0].value["model"].tolist() == ["small_cnn_digits  ⚠ untrained"]
    at.toggle(key="lb_untrained").set_value(False).run()
    assert not at.exception and at.dataframe[0].value.empty


def test_reproduce_reruns_with_stored_parameters_and_says_the_numbers_match(seeded):
    from core import services

    at = open_page("pages/leaderboard.py", task="restoration")
    run_id = seeded["runs"]["nlm_denoise"].run_id
    at.selectbox(key="lb_reproduce_run").set_value(run_id)
    at.button(key="lb_reproduce").click().run()
    assert any(f"Reproduction of run #{run_id} queued" in s.value for s in at.success)
    job = services.list_jobs("benchmark")[0]
    assert job.params["reproduces"] == run_id and job.params["dataset"]["limit"] == 3
    deadline = time.monotonic() + 180
    while services.job_status(job.id).status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
    at.run()
    assert not at.exception
    verdicts = [s.value for s in at.success if "reproduced as run" in s.value]
    assert verdicts and "numbers match" in verdicts[0]
    table = at.dataframe[-1].value.set_index("metric")
    assert table.loc["psnr", "match"] and table.loc["ssim", "match"] and table.loc["psnr", "abs_diff"] < 1e-9
    assert table.loc["latency_ms_per_image", "match"] is None


def test_metrics_view_grouped_bars_and_per_image_spread(seeded):
    at = open_page("pages/compare.py", view="metrics", task="restoration", metrics="psnr,ssim", plot="violin")
    bars, spread = specs(at)
    assert [t["name"] for t in bars["data"]] == ["psnr", "ssim"]
    assert set(bars["data"][0]["x"]) == set(DENOISERS)
    assert bars["layout"]["title"]["text"].startswith("skimage photos, noise σ 25")
    assert [t["type"] for t in spread["data"]] == ["violin"] * 3
    assert sorted(spread["data"][0]["text"]) == ["astronaut", "camera", "chelsea"]
    assert set(downloads(at)) == {"CSV", "JSON"}

    at = open_page("pages/compare.py", view="metrics", task="restoration", metrics="psnr", models="nlm_denoise,median_denoise")
    bars, spread = specs(at)
    assert sorted(bars["data"][0]["x"]) == ["median_denoise", "nlm_denoise"]
    assert sorted(t["name"] for t in spread["data"]) == ["median_denoise", "nlm_denoise"]


def test_cost_view_scatter_with_pareto_front(seeded):
    at = open_page("pages/compare.py", view="cost", task="restoration", y="psnr", x="num_params")
    [fig] = specs(at)
    assert fig["layout"]["title"]["text"] == "PSNR (dB) ↑ vs parameters (Pareto front in green)"
    # all three are parameter-free (0 parameters): only the best PSNR is on the front
    assert fig["data"][1]["name"] == "Pareto front" and values(fig["data"][1]["x"]) == [0.0]
    front_psnr = values(fig["data"][1]["y"])[0]
    assert front_psnr == pytest.approx(seeded["runs"]["nlm_denoise"].metrics["psnr"])
    assert qp(at, "x") == "num_params"


def test_classes_view_per_class_table_pr_curves_and_confusion(seeded):
    at = open_page("pages/compare.py", view="classes", task="detection")
    table = at.dataframe[0].value
    assert set(table["class"]) == {"circle", "square", "triangle"} and table["f1"].between(0, 1).all()
    [pr] = specs(at)
    assert pr["layout"]["title"]["text"].startswith("PR curves at IoU 0.5")
    assert {t["name"] for t in pr["data"]} == {"circle", "square", "triangle"}

    at = open_page("pages/compare.py", view="classes", task="classification")
    assert any("Untrained model" in e.value for e in at.error)
    [cm] = specs(at)
    assert cm["data"][0]["type"] == "heatmap" and len(cm["data"][0]["y"]) >= 10
    assert downloads(at) == ["CSV", "JSON", "CSV", "JSON"]  # per-class table and confusion matrix


def test_seed_tables_from_stored_runs(seeded):
    at = open_page("pages/compare.py", view="tables", table="method", task="restoration")
    table = at.dataframe[0].value
    assert table["method"].tolist() == ["degraded input", "nlm_denoise", "gaussian_denoise", "median_denoise"]
    assert list(table.columns[:4]) == ["method", "run_id", "PSNR (dB) ↑", "SSIM ↑"]
    assert (table["PSNR (dB) ↑"].iloc[1:] > table["PSNR (dB) ↑"].iloc[0]).all()

    at = open_page("pages/compare.py", view="tables", table="class", task="detection")
    table = at.dataframe[0].value
    assert table["class"].tolist()[-1] == "overall (micro)"
    f1 = seeded["runs"]["shape_regions"].metrics["f1"]
    assert table["f1_pct"].iloc[-1] == pytest.approx(round(100 * f1, 1))


def test_images_view_recomputes_outputs_and_ranks_images(seeded):
    at = open_page("pages/compare.py", view="images", task="restoration", order="worst first", rank_by="psnr")
    runs = [int(r) for r in qp(at, "runs").split(",")]
    assert runs[0] == seeded["runs"]["nlm_denoise"].run_id and len(runs) == 3 and qp(at, "image") == "astronaut"
    captions = [shown(img.proto.imgs[0].caption) for img in at.get("image")]
    assert captions[:2] == ["input", "clean"]
    first = next(c for c in captions if c.startswith("nlm_denoise"))
    value, stored = first.split("PSNR ")[1].split(" (stored ")
    assert float(value) == pytest.approx(float(stored.rstrip(")")), abs=1e-3)  # recomputed = stored
    assert len(specs(at)) == 1  # the difference map
    at.select_slider(key="cmpi_zoom").set_value(4).run()
    assert not at.exception


def test_a_shared_link_restores_the_view_and_hostile_values_are_refused(seeded):
    at = open_page("pages/compare.py", view="metrics", task="restoration", dataset="../../etc/passwd", metrics="psnr,<script>")
    assert any("not in the store" in w.value for w in at.warning)
    assert qp(at, "dataset") == seeded["datasets"]["restoration"]
    assert [t["name"] for t in specs(at)[0]["data"]] == ["psnr"]

    at = open_page("pages/compare.py", view="nonsense")
    assert any("not in the store" in w.value for w in at.warning) and at.selectbox(key="cmp_view").value == "metrics"


def test_speed_table_puts_images_per_second_by_device_and_batch_beside_quality(seeded):
    from core.engine import Engine
    from core.services.benchmark import run_benchmark

    engine, shapes = Engine("cpu"), {"name": "shapes-detect", "count": 8}
    [one] = run_benchmark(engine, ["shape_regions"], shapes, {"batch_size": 1})
    [grid] = run_benchmark(engine, ["yolo_tiny_shapes"], shapes, {"batch_size": 4}, allow_random=True)
    at = open_page("pages/compare.py", view="tables", table="speed", task="detection")
    table = at.dataframe[0].value.set_index("method")
    assert list(table.columns) == ["mAP@[.5:.95] ↑", "F1 ↑", "images/s (cpu, batch 1)", "images/s (cpu, batch 4)",
                                  "images/s (cpu, batch 8)"]
    assert table.index.tolist() == ["shape_regions", "yolo_tiny_shapes (untrained)"]
    regions, untrained = table.loc["shape_regions"], table.loc["yolo_tiny_shapes (untrained)"]
    # each column holds the newest run at that batch size; quality comes from the newest run of all
    assert regions["images/s (cpu, batch 1)"] == pytest.approx(one.metrics["throughput_img_s"])
    assert regions["images/s (cpu, batch 8)"] == pytest.approx(seeded["runs"]["shape_regions"].metrics["throughput_img_s"])
    assert np.isnan(regions["images/s (cpu, batch 4)"]) and regions["F1 ↑"] == pytest.approx(one.metrics["f1"])
    assert untrained["images/s (cpu, batch 4)"] == pytest.approx(grid.metrics["throughput_img_s"])
    assert np.isnan(untrained["images/s (cpu, batch 1)"])
    assert downloads(at)[:2] == ["CSV", "JSON"]


def test_paired_differences_against_a_reference_on_the_same_images(seeded):
    from core.metrics.paired import paired_difference
    from core.services import compare

    at = open_page("pages/compare.py", view="metrics", task="restoration", metrics="psnr", spread="psnr")
    assert qp(at, "ref") == "nlm_denoise"  # the leader by default
    table = at.dataframe[-1].value.set_index("model")
    assert sorted(table.index) == ["gaussian_denoise", "median_denoise"]
    # the numbers are those of the three photos' stored PSNR, paired by image
    board = compare.leaderboard("restoration", seeded["datasets"]["restoration"])
    values = compare.image_spread(board, "psnr").pivot(index="image", columns="model", values="value")
    expected = paired_difference(values["gaussian_denoise"].to_numpy(), values["nlm_denoise"].to_numpy())
    row = table.loc["gaussian_denoise"]
    assert row["images"] == 3 and row["difference"] == pytest.approx(expected.mean_difference)
    assert (row["95% interval low"], row["95% interval high"]) == pytest.approx((expected.ci_low, expected.ci_high))
    assert row["Wilcoxon p"] == pytest.approx(expected.p_value) and row["Wilcoxon p"] >= 0.25  # 3 pairs: never < 0.05
    assert row["verdict"] in ("borderline", "not distinguishable")
    lines = [t.value for t in at.text]
    assert any(line.startswith("gaussian_denoise − nlm_denoise on PSNR (dB) = ") and "3 images" in line for line in lines)
    assert "CSV" in downloads(at)

    at = open_page("pages/compare.py", view="metrics", task="restoration", spread="psnr", ref="median_denoise")
    assert sorted(at.dataframe[-1].value["model"]) == ["gaussian_denoise", "nlm_denoise"]

    at = open_page("pages/leaderboard.py", task="restoration", ref="gaussian_denoise")
    paired = next(d.value for d in at.dataframe if "Wilcoxon p" in d.value.columns)
    assert sorted(paired["model"]) == ["median_denoise", "nlm_denoise"]
    assert qp(at, "ref") == "gaussian_denoise"


def test_operating_point_explorer_recomputes_a_stored_detection_run(seeded):
    from core.engine import Engine
    from core.services.benchmark import run_benchmark

    run = seeded["runs"]["shape_regions"]
    at = open_page("pages/compare.py", view="operating", task="detection")
    assert qp(at, "iou") == "0.5" and qp(at, "score") == "0.5" and int(qp(at, "run")) == run.run_id
    shown_values = {m.label: float(m.value) for m in at.metric}
    # at the run's own threshold (0.5) the explorer gives the numbers the benchmark stored
    assert shown_values == pytest.approx({"precision": run.metrics["precision"], "recall": run.metrics["recall"],
                                          "F1": run.metrics["f1"]}, abs=5e-4)
    pr, cm = specs(at)
    assert [t["name"] for t in pr["data"]][0] == "all classes" and pr["data"][2]["name"] == "chosen point (score ≥ 0.50)"
    assert cm["data"][0]["x"][-1] == "missed (no detection)" and cm["data"][0]["y"][-1] == "background (no object)"
    per_class = at.dataframe[0].value.set_index("class")
    assert per_class["objects"].sum() == per_class["true positives"].sum() + per_class["missed objects"].sum()

    # a slider move equals a fresh benchmark at that threshold
    at.slider(key="cmpo_score").set_value(0.2).run()
    assert not at.exception and qp(at, "score") == "0.2"
    [fresh] = run_benchmark(Engine("cpu"), ["shape_regions"], {"name": "shapes-detect", "count": 8}, {"score_threshold": 0.2})
    shown_values = {m.label: float(m.value) for m in at.metric}
    assert shown_values == pytest.approx({"precision": fresh.metrics["precision"], "recall": fresh.metrics["recall"],
                                          "F1": fresh.metrics["f1"]}, abs=5e-4)
    at.select_slider(key="cmpo_iou").set_value(0.95).run()
    assert not at.exception and qp(at, "iou") == "0.95"
    assert float(next(m.value for m in at.metric if m.label == "recall")) <= shown_values["recall"]
    assert downloads(at).count("CSV") == 3

    # a link with a threshold that is not a step, or not a number: said so, default shown
    at = open_page("pages/compare.py", view="operating", task="detection", run=str(fresh.run_id), iou="0.52", score="<b>x")
    assert sum("Not among the choices" in w.value for w in at.warning) == 2
    assert qp(at, "iou") == "0.5" and qp(at, "score") == "0.2"  # the run's own threshold
    at = open_page("pages/compare.py", view="operating", task="detection", run=str(fresh.run_id), iou="0.50")
    assert not at.warning and qp(at, "iou") == "0.5"  # 0.50 is the step 0.5


def test_operating_point_explorer_says_when_a_run_has_no_matches(seeded):
    from core.store import ensure_store
    from db.models import RunArtifactRow
    from db.session import session_scope

    with session_scope(ensure_store()) as s:
        s.query(RunArtifactRow).delete()
    at = open_page("pages/compare.py", view="operating", task="detection")
    assert any("has no stored matches" in e.value and "benchmark the model again" in e.value for e in at.error)
