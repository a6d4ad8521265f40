"""Results, Leaderboard and Compare tables as a new user reads them (AppTest on a store seeded with real runs):
the model comparison keeps tasks, datasets, conventions and Playground runs apart; tables lead with the headline
metric under readable headers; datasets and conventions are named in words; the reproduce verdict survives a reload."""
import base64
import json
import time

import numpy as np
import pytest

from tests.test_compare_pages import open_page
from ui.text import plain

DENOISE = {"name": "photos-denoise", "limit": 2, "max_side": 64}
SR = {"name": "photos-sr", "limit": 2, "max_side": 64}
DENOISE_TITLE = "skimage photos, noise σ 25, 2 images, long side 64 px"


@pytest.fixture
def seeded(db_url, no_reference_weights):
    """Two denoisers and a x2 upscaler benchmarked, and one denoiser run once in the Playground on another image."""
    from core.data.builtin import load_builtin
    from core.engine import Engine
    from core.services import restore
    from core.services.benchmark import run_benchmark

    engine = Engine("cpu")
    runs = {o.model: o for o in run_benchmark(engine, ["gaussian_denoise", "median_denoise"], DENOISE)}
    runs.update({o.model: o for o in run_benchmark(engine, ["bicubic_x2"], SR)})
    played = restore(engine, load_builtin("coins"), source_name="coins", source_hash="coins-sha", source_kind="builtin",
                     operation="denoise", methods=["gaussian_denoise"], sigma=50, max_side=64)
    from core.services import compare

    names = compare.datasets("restoration")["dataset"]
    denoise = next(n for n in names if n.startswith("photos-denoise("))
    return {"runs": runs, "playground": played.methods[0], "denoise": denoise}


def values(arr) -> list:
    """Plotly 7 sends numeric arrays base64-typed."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).tolist()
    return list(arr)


def headers(frame) -> dict[str, dict]:
    """The column configs a st.dataframe sends: data column -> {label, help, width, ...}."""
    return json.loads(frame.proto.columns)


def test_results_compares_benchmarks_per_dataset_and_keeps_playground_runs_apart(seeded):
    at = open_page("pages/results.py")
    assert at.radio(key="res_kind").value == "benchmark"
    places = at.selectbox(key="res_dataset_benchmark")
    shown = places.options  # as the user reads them
    assert any(s.startswith(DENOISE_TITLE + " (restoration") for s in shown)
    assert any(s.startswith("skimage photos, bicubic downscale ×2, 2 images, long side 64 px") for s in shown)
    places.select_index(next(i for i, s in enumerate(shown) if s.startswith(DENOISE_TITLE))).run()
    assert not at.exception
    # the runs and the comparison download as CSV/JSON (the tables' own download is off: .streamlit/config.toml)
    assert [b.proto.label for b in at.get("download_button")] == ["CSV", "JSON", "CSV", "JSON"]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    # only the two denoisers' benchmark runs: no upscaler on the same axis, no Playground run averaged in
    bars = dict(zip(spec["data"][0]["x"], values(spec["data"][0]["y"])))
    assert set(bars) == {"gaussian_denoise", "median_denoise"}
    assert bars["gaussian_denoise"] == pytest.approx(seeded["runs"]["gaussian_denoise"].metrics["psnr"])
    title = spec["layout"]["title"]["text"]
    assert title == (f"PSNR (dB) ↑ on {DENOISE_TITLE}"
                     "<br><sup>RGB, values 0-255, no border crop, mean of per-image values</sup>")
    assert any("not benchmark results" in c.value for c in at.caption)

    at.radio(key="res_kind").set_value("playground").run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert list(spec["data"][0]["x"]) == ["gaussian_denoise"]
    assert values(spec["data"][0]["y"])[0] == pytest.approx(seeded["playground"].psnr)
    assert spec["layout"]["title"]["text"].startswith(
        "PSNR (dB) ↑ on coins (sample photo), noise σ 50 (Playground run, not a benchmark)<br><sup>RGB")

    # the same photo and noise at another working size is another input: never on the same axis
    from core.data.builtin import load_builtin
    from core.engine import Engine
    from core.services import restore

    restore(Engine("cpu"), load_builtin("coins"), source_name="coins", source_hash="coins-sha", source_kind="builtin",
            operation="denoise", methods=["median_denoise"], sigma=50, max_side=48)
    at.run()
    inputs = at.selectbox(key="res_dataset_playground").options
    assert len(inputs) == 2 and all(o.startswith("coins (sample photo), noise σ 50 · input ") for o in inputs)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["data"][0]["x"]) == 1


def test_tables_lead_with_the_headline_metric_under_readable_headers(seeded):
    at = open_page("pages/leaderboard.py", task="restoration", dataset=seeded["denoise"])
    table = at.dataframe[0].value
    assert list(table.columns[:5]) == ["rank", "model", "psnr", "ssim", "latency_ms_per_image"]
    assert list(table.columns).index("peak_mem_mb") < list(table.columns).index("weights")
    assert set(table["weights"]) == {"parameter-free"}
    config = headers(at.dataframe[0])
    assert config["psnr"]["label"] == "PSNR (dB) ↑"
    assert config["psnr"]["help"] == "RGB, values 0-255, no border crop, mean of per-image values"
    assert config["latency_ms_per_image"]["label"] == "latency (ms/image) ↓"
    assert config["latency_ms_per_image"]["help"].startswith("timing: 1 warm-up batch, then measured on cpu in batches of up to")
    assert config["peak_mem_mb"]["label"] == "peak memory (MB) ↓"
    assert config["num_params"]["label"] == "parameters"
    assert config["weights"]["width"] == "medium"  # "parameter-free" is not cut
    assert [s.value for s in at.subheader][0] == "restoration · " + plain(DENOISE_TITLE)
    caption = " ".join(c.value for c in at.caption)
    assert "memory: peak resident memory (RSS)" in caption and "mem=process_rss" not in caption and "warmup" not in caption

    at = open_page("pages/results.py", task="restoration")
    runs = at.dataframe[0].value
    cols = list(runs.columns)
    assert cols.index("psnr") < cols.index("ssim") < cols.index("latency_ms_per_image") < cols.index("device")
    assert DENOISE_TITLE in set(runs["dataset"]) and "coins (sample photo), noise σ 50" in set(runs["dataset"])
    assert headers(at.dataframe[0])["psnr"]["label"] == "PSNR (dB) ↑"
    # Run details of the newest run (the Playground one): its metrics, then its per-image values
    detail = next(f.value for f in at.dataframe if list(f.value.columns) == ["metric", "value", "convention"])
    assert detail["metric"].tolist()[:2] == ["PSNR (dB)", "SSIM"] and detail["metric"].iloc[-1] == "peak memory (MB)"
    assert detail["convention"].iloc[0] == "RGB, values 0-255, no border crop"


def test_compare_reference_tables_are_named_by_what_they_compare_and_cite_their_sources(seeded):
    at = open_page("pages/compare.py", view="tables", table="method", task="restoration",
                   dataset=seeded["denoise"])
    assert at.subheader[0].value == "Reference tables: methods, per class, optimizers"
    cite = " ".join(c.value for c in at.caption)
    assert "“Advanced Deep Learning Techniques for Image Processing and Analysis”" in cite
    assert "“Applications of Deep Learning in Image Analysis”" in cite and "Table 2.5" in cite
    words = " ".join(e.value for e in [*at.markdown, *at.caption, *at.subheader, *at.info])
    assert "seed" not in words.lower()
    picker = at.selectbox(key="cmpt_dataset")
    assert picker.value == seeded["denoise"] and picker.options[picker.index] == DENOISE_TITLE + " (2 runs)"
    table = at.dataframe[0].value
    assert table["method"].tolist()[0] == "degraded input"
    assert headers(at.dataframe[0])["run_id"]["label"] == "run"
    assert list(table.columns[2:4]) == ["PSNR (dB) ↑", "SSIM ↑"]


def test_the_reproduce_verdict_is_still_shown_after_a_reload(seeded):
    from core import services
    from core.services import reproduce

    at = open_page("pages/leaderboard.py", task="restoration", dataset=seeded["denoise"])
    first = int(at.dataframe[0].value["run"].iloc[0].split("=")[1])
    job_id = reproduce.reproduce(first)
    deadline = time.monotonic() + 180
    while services.job_status(job_id).status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert services.job_status(job_id).status == "done"
    new_run = services.job_status(job_id).result["run_ids"][0]

    at = open_page("pages/leaderboard.py", task="restoration")  # a reload: a new session, nothing remembered
    assert at.selectbox(key="lb_reproduce_run").value == new_run  # the leaderboard now lists the reproduction
    verdicts = [s.value for s in at.success if "reproduced as run" in s.value]
    assert verdicts == [f"Run #{first} reproduced as run #{new_run} (job #{job_id}): **numbers match**."]
