"""The Compare/Leaderboard queries on a store of 100k+ metric rows: exact aggregates (checked against pandas over
the same rows) and query plans that use the indexes instead of scanning the metric tables."""
import re

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, text

from bench.big_store import IMAGES, METRICS, build_store
from db import analytics
from db.session import get_engine

N_RUNS = 5200


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big_store(request, tmp_path_factory):
    """40 models (every 5th untrained) x 2 datasets, 5200 runs, 20 metrics each (104k rows) + 41.6k per-image rows,
    on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
        yield (url, *build_store(url, N_RUNS))
        return
    from tests.pg_support import fresh_database

    with fresh_database(request.getfixturevalue("postgres_admin")) as url:
        yield (url, *build_store(url, N_RUNS))


def test_the_store_holds_over_100k_metric_rows(big_store):
    url = big_store[0]
    with get_engine(url).connect() as conn:
        assert conn.execute(text("select count(*) from run_metrics")).scalar() == N_RUNS * len(METRICS) >= 100_000


def test_leaderboard_takes_the_newest_benchmark_run_per_model(big_store):
    url, frame, values, _, models = big_store
    cols = [("m00", "m00", "rgb,range=255,crop=0"), ("m05", "m05", "rgb,range=255,crop=0")]
    board = analytics.leaderboard(url, "restoration", "set1", cols)
    bench = frame[frame["benchmark"] & (frame["dataset_id"] == 2)]
    newest = bench.groupby("model_id")["run_id"].max()
    counts = bench.groupby("model_id")["run_id"].count()
    assert len(board) == len(newest)
    for _, row in board.iterrows():
        model_id = int(row["model"][5:]) + 1
        assert row["run_id"] == newest[model_id] and row["runs"] == counts[model_id]
        assert row["m00"] == pytest.approx(values[row["run_id"] - 1, 0])
        assert row["m05"] == pytest.approx(values[row["run_id"] - 1, 5])
        assert row["weights"] == models[model_id - 1]["weights_status"]
    trained = analytics.leaderboard(url, "restoration", "set1", cols, include_untrained=False)
    assert len(trained) == sum(1 for m in newest.index if (m - 1) % 5) and (trained["weights"] != "random").all()


def test_metrics_by_model_matches_pandas_over_the_same_rows(big_store):
    url, frame, values, _, models = big_store
    out = analytics.metrics_by_model(url, ["m00", "m03"], "restoration", "set0").set_index(["model", "metric"])
    bench = frame[frame["benchmark"] & (frame["dataset_id"] == 1)]
    for j, metric in ((0, "m00"), (3, "m03")):
        v = pd.Series(values[bench["run_id"] - 1, j], index=bench.index)
        grouped = pd.DataFrame({"model": bench["model_id"], "v": v}).groupby("model")["v"]
        for model_id, vals in grouped:
            row = out.loc[(f"model{model_id - 1:02d}", metric)]
            finite = vals[np.isfinite(vals)]
            assert row["runs"] == len(vals) and row["infinite"] == len(vals) - len(finite)
            assert row["mean"] == pytest.approx(finite.mean()) and row["max"] == pytest.approx(finite.max())


def test_image_values_and_extremes(big_store):
    url, _, _, per_image, _ = big_store
    got = analytics.image_values(url, [10, 11], "psnr")
    assert len(got) == 2 * IMAGES
    assert got[got["run_id"] == 10]["value"].to_numpy() == pytest.approx(per_image[9])
    worst = analytics.image_extremes(url, 10, "psnr", k=3, worst_first=True, higher_is_better=True)
    order = np.argsort(per_image[9])
    assert worst["image"].tolist() == [f"img{k}" for k in order[:3]]
    best_low = analytics.image_extremes(url, 10, "psnr", k=2, worst_first=False, higher_is_better=False)
    assert best_low["image"].tolist() == [f"img{k}" for k in order[:2]]  # lower is better: best = smallest


def test_datasets_and_metric_columns(big_store):
    url, frame, _, _, _ = big_store
    ds = analytics.benchmark_datasets(url, "restoration").set_index("dataset")
    assert ds.loc["set0", "runs"] == int((frame["benchmark"] & (frame["dataset_id"] == 1)).sum())
    assert ds.loc["set1", "title"] == "Set 1"
    cols = analytics.metric_columns(url, "restoration", "set0")
    assert cols["metric"].tolist() == METRICS
    assert cols["higher_is_better"].tolist() == [j != 1 for j in range(len(METRICS))]


def _plans(url, fn) -> list[str]:
    """EXPLAIN QUERY PLAN of every SELECT `fn` runs."""
    engine = get_engine(url)
    seen: list[tuple[str, tuple]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        for statement, parameters in seen:
            plans.append("\n".join(r[-1] for r in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()))
    return plans


@pytest.mark.parametrize("query", [
    lambda url: analytics.leaderboard(url, "restoration", "set0", [("m00", "m00", "rgb,range=255,crop=0")]),
    lambda url: analytics.metric_columns(url, "restoration", "set0"),
    lambda url: analytics.metrics_by_model(url, ["m00"], "restoration", "set0"),
    lambda url: analytics.image_values(url, [10, 11], "psnr"),
    lambda url: analytics.image_extremes(url, 10, "psnr"),
], ids=["leaderboard", "metric_columns", "metrics_by_model", "image_values", "image_extremes"])
def test_queries_use_indexes_not_full_scans_of_metric_tables(big_store, query):
    url = big_store[0]
    if not url.startswith("sqlite"):
        pytest.skip("reads SQLite's EXPLAIN QUERY PLAN; PostgreSQL plans by its own statistics")
    plans = _plans(url, lambda: query(url))
    assert plans
    for plan in plans:
        # "SCAN run_metrics" without an index would read all 104k rows
        assert not re.search(r"^SCAN (run_metrics|image_metrics|runs)$", plan, re.M), plan
