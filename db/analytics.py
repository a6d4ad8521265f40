"""Read-side queries of the Compare and Leaderboard pages. Every aggregation runs in SQL (GROUP BY, conditional
aggregation for the wide tables) over the indexes of migration 0004, so a page never pulls all metric rows of
the store into Python; only per-image rows of a few chosen runs, and one run's JSON outputs, are fetched whole."""
from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Integer, and_, case, cast, func, select

from db.models import DatasetRow, ImageMetricRow, ModelRow, RunMetricRow, RunRow
from db.session import session_scope

FINITE = (-1e308, 1e308)  # +/-inf (PSNR of identical images) are counted, never averaged


def _frame(url: str, stmt, columns: list[str]) -> pd.DataFrame:
    with session_scope(url) as s:
        return pd.DataFrame([tuple(r) for r in s.execute(stmt)], columns=columns)


def benchmark_datasets(url: str, task: str | None = None) -> pd.DataFrame:
    """Datasets with benchmark runs: task, dataset name, title, runs, models, newest run id."""
    stmt = (
        select(RunRow.task, DatasetRow.name, func.max(DatasetRow.meta["title"].as_string()), func.count(RunRow.id),
               func.count(RunRow.model_id.distinct()), func.max(RunRow.id))
        .join(DatasetRow, RunRow.dataset_id == DatasetRow.id)
        .where(RunRow.kind == "benchmark")
        .group_by(RunRow.task, DatasetRow.name)
        .order_by(RunRow.task, func.max(RunRow.id).desc())
    )
    if task:
        stmt = stmt.where(RunRow.task == task)
    return _frame(url, stmt, ["task", "dataset", "title", "runs", "models", "last_run"])


def _latest_runs(task: str, dataset: str, include_untrained: bool = True):
    """Subquery: the newest benchmark run of each model (name + weights) on the dataset."""
    stmt = (
        select(func.max(RunRow.id).label("run_id"), func.count(RunRow.id).label("runs"))
        .join(DatasetRow, RunRow.dataset_id == DatasetRow.id)
        .where(RunRow.task == task, RunRow.kind == "benchmark", DatasetRow.name == dataset)
        .group_by(RunRow.model_id)
    )
    if not include_untrained:
        stmt = stmt.join(ModelRow, RunRow.model_id == ModelRow.id).where(ModelRow.weights_status != "random")
    return stmt.subquery()


def metric_columns(url: str, task: str, dataset: str) -> pd.DataFrame:
    """(metric, convention, higher_is_better, runs) of the newest run per model on the dataset."""
    latest = _latest_runs(task, dataset)
    stmt = (
        select(RunMetricRow.name, RunMetricRow.convention, func.max(cast(RunMetricRow.higher_is_better, Integer)),
               func.count(RunMetricRow.id))
        .join(latest, RunMetricRow.run_id == latest.c.run_id)
        .group_by(RunMetricRow.name, RunMetricRow.convention)
        .order_by(RunMetricRow.name, func.count(RunMetricRow.id).desc())
    )
    out = _frame(url, stmt, ["metric", "convention", "higher_is_better", "runs"])
    out["higher_is_better"] = out["higher_is_better"].map(lambda v: None if pd.isna(v) else bool(v))
    return out


def leaderboard(url: str, task: str, dataset: str, columns: list[tuple[str, str, str]],
                include_untrained: bool = True) -> pd.DataFrame:
    """One row per model (name + weights): its newest benchmark run on the dataset, with one column per
    (metric, convention) pivoted in SQL. `columns` is [(column label, metric, convention)]."""
    latest = _latest_runs(task, dataset, include_untrained)
    pivots = [func.max(case((and_(RunMetricRow.name == metric, RunMetricRow.convention == conv), RunMetricRow.value)))
              .label(f"c{i}") for i, (_, metric, conv) in enumerate(columns)]
    wide = (select(RunMetricRow.run_id, *pivots).join(latest, RunMetricRow.run_id == latest.c.run_id)
            .group_by(RunMetricRow.run_id).subquery())
    stmt = (
        select(RunRow.id, ModelRow.name, ModelRow.weights_status, ModelRow.weights_hash, ModelRow.num_params,
               ModelRow.meta["title"].as_string(), latest.c.runs, RunRow.device, RunRow.created_at,
               *[wide.c[f"c{i}"] for i in range(len(columns))])
        .join(latest, RunRow.id == latest.c.run_id)
        .join(ModelRow, RunRow.model_id == ModelRow.id)
        .outerjoin(wide, wide.c.run_id == RunRow.id)
        .order_by(ModelRow.name)
    )
    return _frame(url, stmt, ["run_id", "model", "weights", "weights_hash", "num_params", "title", "runs", "device",
                              "created_at", *[label for label, _, _ in columns]])


def metrics_by_model(url: str, metrics: list[str], task: str | None = None, dataset: str | None = None,
                     models: list[str] | None = None, include_untrained: bool = True) -> pd.DataFrame:
    """Mean/min/max over runs of several aggregate metrics per (model, weights status), grouped in SQL.
    Infinite values are counted in `infinite` and left out of the mean."""
    finite = RunMetricRow.value.between(*FINITE)
    stmt = (
        select(ModelRow.name, ModelRow.weights_status, RunMetricRow.name,
               func.avg(RunMetricRow.value).filter(finite), func.min(RunMetricRow.value).filter(finite),
               func.max(RunMetricRow.value).filter(finite), func.count(RunMetricRow.id),
               func.count(RunMetricRow.id).filter(~finite), func.max(RunMetricRow.convention),
               func.count(RunMetricRow.convention.distinct()), func.max(cast(RunMetricRow.higher_is_better, Integer)))
        .join(RunRow, RunMetricRow.run_id == RunRow.id)
        .join(ModelRow, RunRow.model_id == ModelRow.id)
        .where(RunMetricRow.name.in_(metrics), RunMetricRow.value.is_not(None))
        .group_by(ModelRow.name, ModelRow.weights_status, RunMetricRow.name)
        .order_by(ModelRow.name, RunMetricRow.name)
    )
    if task:
        stmt = stmt.where(RunRow.task == task)
    if dataset:
        stmt = stmt.join(DatasetRow, RunRow.dataset_id == DatasetRow.id).where(DatasetRow.name == dataset,
                                                                              RunRow.kind == "benchmark")
    if models:
        stmt = stmt.where(ModelRow.name.in_(models))
    if not include_untrained:
        stmt = stmt.where(ModelRow.weights_status != "random")
    return _frame(url, stmt, ["model", "weights", "metric", "mean", "min", "max", "runs", "infinite", "convention",
                              "conventions", "higher_is_better"])


def image_values(url: str, run_ids: list[int], metric: str, limit_per_run: int = 20_000) -> pd.DataFrame:
    """Per-image values of one metric for a few runs (box/violin plots); at most `limit_per_run` each."""
    ids = [int(r) for r in run_ids][:50]
    ranked = (select(ImageMetricRow.run_id, ImageMetricRow.image_key, ImageMetricRow.value,
                     func.row_number().over(partition_by=ImageMetricRow.run_id, order_by=ImageMetricRow.id).label("n"))
              .where(ImageMetricRow.run_id.in_(ids), ImageMetricRow.name == metric).subquery())
    stmt = select(ranked.c.run_id, ranked.c.image_key, ranked.c.value).where(ranked.c.n <= limit_per_run)
    return _frame(url, stmt, ["run_id", "image", "value"])


def image_extremes(url: str, run_id: int, metric: str, k: int = 5, worst_first: bool = True,
                   higher_is_better: bool = True) -> pd.DataFrame:
    """The k worst (or best) images of a run by a per-image metric, sorted in SQL on the (run, name, value) index."""
    low_first = worst_first == higher_is_better
    order = ImageMetricRow.value.asc() if low_first else ImageMetricRow.value.desc()
    stmt = (select(ImageMetricRow.image_key, ImageMetricRow.value)
            .where(ImageMetricRow.run_id == int(run_id), ImageMetricRow.name == metric, ImageMetricRow.value.is_not(None))
            .order_by(order, ImageMetricRow.image_key).limit(int(k)))
    return _frame(url, stmt, ["image", "value"])


def image_metric_names(url: str, run_ids: list[int]) -> list[str]:
    stmt = (select(ImageMetricRow.name).distinct().where(ImageMetricRow.run_id.in_([int(r) for r in run_ids]))
            .order_by(ImageMetricRow.name))
    with session_scope(url) as s:
        return list(s.scalars(stmt))


def run_outputs(url: str, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The JSON outputs (per-class tables, confusion matrix, PR curves) and identity of a few runs."""
    stmt = (select(RunRow.id, ModelRow.name, ModelRow.weights_status, RunRow.outputs, RunRow.params)
            .join(ModelRow, RunRow.model_id == ModelRow.id).where(RunRow.id.in_([int(r) for r in run_ids][:50])))
    with session_scope(url) as s:
        return {rid: {"model": name, "weights": status, "outputs": dict(out or {}), "params": dict(params or {})}
                for rid, name, status, out, params in s.execute(stmt)}


def run_metric_values(url: str, run_ids: list[int]) -> pd.DataFrame:
    """Every aggregate value of a few runs (a robustness sweep's): run_id, model, metric, value, convention."""
    stmt = (select(RunMetricRow.run_id, ModelRow.name, RunMetricRow.name, RunMetricRow.value, RunMetricRow.convention)
            .join(RunRow, RunRow.id == RunMetricRow.run_id).join(ModelRow, ModelRow.id == RunRow.model_id)
            .where(RunMetricRow.run_id.in_([int(r) for r in run_ids][:2000])).order_by(RunMetricRow.run_id, RunMetricRow.id))
    return _frame(url, stmt, ["run_id", "model", "metric", "value", "convention"])


def metric_by_model(url: str, metric: str, task: str | None = None, models: list[str] | None = None,
                    include_untrained: bool = True) -> pd.DataFrame:
    """Mean/min/max/count of one aggregate metric per (model, weights status), grouped in SQL.
    Infinite values (PSNR of identical images) are counted separately and left out of the mean."""
    out = metrics_by_model(url, [metric], task, models=models, include_untrained=include_untrained)
    return out.drop(columns=["metric", "conventions"]).reset_index(drop=True)


def newest_per_convention(url: str, task: str, dataset: str, metric: str) -> pd.DataFrame:
    """One metric on a dataset's benchmark runs: the newest value of each model (name + weights) under each of its
    conventions (the timing ones name the device and batch size), grouped in SQL. Columns: model, weights,
    convention, value, run_id."""
    newest = (
        select(RunRow.model_id, RunMetricRow.convention, func.max(RunRow.id).label("run_id"))
        .join(RunMetricRow, RunMetricRow.run_id == RunRow.id)
        .join(DatasetRow, RunRow.dataset_id == DatasetRow.id)
        .where(RunRow.task == task, RunRow.kind == "benchmark", DatasetRow.name == dataset, RunMetricRow.name == metric)
        .group_by(RunRow.model_id, RunMetricRow.convention)
        .subquery()
    )
    stmt = (
        select(ModelRow.name, ModelRow.weights_status, newest.c.convention, func.max(RunMetricRow.value), newest.c.run_id)
        .select_from(newest)
        .join(RunMetricRow, and_(RunMetricRow.run_id == newest.c.run_id, RunMetricRow.name == metric,
                                 RunMetricRow.convention == newest.c.convention))
        .join(ModelRow, ModelRow.id == newest.c.model_id)
        .group_by(ModelRow.name, ModelRow.weights_status, newest.c.convention, newest.c.run_id)
        .order_by(ModelRow.name, newest.c.run_id)
    )
    return _frame(url, stmt, ["model", "weights", "convention", "value", "run_id"])
