"""The Compare/Leaderboard queries on a large store: SQL aggregation vs pulling every metric row into pandas.

    python -m bench.compare_queries [--runs 50000]

Builds a synthetic store (bench/big_store.py; 20 metrics per run), then times, in one run, the leaderboard
(newest benchmark run per model, metrics pivoted in SQL) and the per-model metric summary against the same
results computed in pandas after reading all run/metric rows, and prints the ratios.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from bench.big_store import METRICS, build_store
from db import analytics
from db.session import get_engine

CONV = "rgb,range=255,crop=0"


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def pandas_leaderboard(url: str) -> pd.DataFrame:
    with get_engine(url).connect() as conn:
        runs = pd.read_sql(text("select r.id as run_id, r.model_id, r.kind, d.name as dataset from runs r "
                                "join datasets d on d.id = r.dataset_id where r.task = 'restoration'"), conn)
        metrics = pd.read_sql(text("select run_id, name, value from run_metrics"), conn)
    runs = runs[(runs["kind"] == "benchmark") & (runs["dataset"] == "set0")]
    newest = runs.groupby("model_id")["run_id"].max()
    wide = metrics[metrics["run_id"].isin(newest)].pivot(index="run_id", columns="name", values="value")
    return wide


def pandas_summary(url: str) -> pd.DataFrame:
    with get_engine(url).connect() as conn:
        df = pd.read_sql(text("select m.name as model, rm.name as metric, rm.value from run_metrics rm "
                              "join runs r on r.id = rm.run_id join models m on m.id = r.model_id"), conn)
    return df[df["metric"].isin(["m00", "m01"])].groupby(["model", "metric"])["value"].agg(["mean", "min", "max", "count"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'big.db'}"
        t = time.perf_counter()
        build_store(url, args.runs)
        print(f"store: {args.runs} runs, {args.runs * len(METRICS)} metric rows, built in {time.perf_counter() - t:.1f} s")
        cols = [(m, m, CONV) for m in METRICS]
        sql_lb = best_of(lambda: analytics.leaderboard(url, "restoration", "set0", cols))
        py_lb = best_of(lambda: pandas_leaderboard(url), 3)
        sql_sum = best_of(lambda: analytics.metrics_by_model(url, ["m00", "m01"], "restoration"))
        py_sum = best_of(lambda: pandas_summary(url), 3)
        print(f"leaderboard (20 metric columns): SQL {sql_lb * 1000:.1f} ms, pandas over all rows {py_lb * 1000:.1f} ms, "
              f"ratio {py_lb / sql_lb:.1f}x")
        print(f"per-model summary of 2 metrics:  SQL {sql_sum * 1000:.1f} ms, pandas over all rows {py_sum * 1000:.1f} ms, "
              f"ratio {py_sum / sql_sum:.1f}x")


if __name__ == "__main__":
    main()
