"""What the Compare and Leaderboard pages show, as plain tables: leaderboards per task and dataset with their
metric conventions, metric bars, per-image spread, quality-vs-cost with the Pareto front, per-class reports of
a run, and the reference tables, all read from the results store (aggregated in SQL by db.analytics)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.metrics import registry as metric_registry
from core.services.datasets import dataset_title
from core.store import ensure_store
from core.tasks import all_tasks, get_task
from core.tasks.outputs import EvaluationOutputs, row_record
from core.tuning import tag_words
from db import analytics, repository

COSTS = ("latency_ms_per_image", "latency_p50_ms", "latency_p95_ms", "peak_mem_mb", "num_params")
# Timing and cost columns (latency, throughput, memory), in the order tables show them: from the metric registry.
TIMING = tuple(m for m in metric_registry.METRICS if metric_registry.kind(m) in ("timing", "cost"))


def metric_title(metric: str) -> str:
    """A column header a student reads: 'PSNR (dB)', 'latency (ms/image)', 'peak memory (MB)' (the registry's
    title; kept for callers that reach titles through this module)."""
    return metric_registry.title(metric)


@dataclass(frozen=True)
class Column:
    """A leaderboard column: one metric under one convention (two conventions never share a column).
    `label` keys the table's data; `header` is what the user reads."""

    label: str
    metric: str
    convention: str
    higher_is_better: bool | None
    variant: str = ""  # the convention in words, when the metric has several on this dataset

    @property
    def header(self) -> str:
        arrow = {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]
        return f"{metric_title(self.metric)}{arrow}" + (f" [{self.variant}]" if self.variant else "")


@dataclass(frozen=True)
class Leaderboard:
    task: str
    dataset: str
    title: str
    table: pd.DataFrame  # run_id, model, weights, ..., untrained + one column per Column.label
    columns: list[Column]

    def column(self, label: str) -> Column:
        for c in self.columns:
            if c.label == label:
                return c
        raise InvalidInput(f"The leaderboard has no metric {label!r}.")


# runs stored before the batch sizes were recorded have no ran=, and count warm-up passes of one image
_TIMING_RE = re.compile(r"device=(?P<device>[^,]*),batch=(?P<batch>\d+),(?:ran=(?P<ran>[\dx+]+),)?p50/p95 per batch,"
                        r"warmup=(?P<warmup>\d+)(?P<unit> batch(?:es)?)?,mem=(?P<mem>\w+)"
                        r"(?:,opt=(?P<opt>[\w+]+))?(?:,clock=(?P<clock>\w+))?")
_MEMORY = {"process_rss": "peak resident memory (RSS) of the process that ran the model",
           "cuda_max_allocated": "peak CUDA memory allocated by PyTorch"}
_WORDS = [
    (re.compile(r"^y,range=([\d.]+),crop=(\d+)"), lambda m: f"Y channel (BasicSR), values 0-{m[1]}, " + _crop(m[2])),
    (re.compile(r"^rgb,range=([\d.]+),crop=(\d+)"), lambda m: f"RGB, values 0-{m[1]}, " + _crop(m[2])),
    (re.compile(r"gaussian 11/1\.5"), lambda m: "Gaussian window 11, σ 1.5"),
    (re.compile(r"mean of per-image\b"), lambda m: "mean of per-image values"),
    (re.compile(r"resize=(\S+?),crop_pct=([\d.]+),interp=(\w+)"),
     lambda m: f"resize {m[1]}, centre crop {float(m[2]):.1%}, {m[3]} interpolation"),
    (re.compile(r"ignore=(\d+)"), lambda m: f"label {m[1]} ignored"),
    (re.compile(r"n_gen=(\d+), n_ref=(\d+)"), lambda m: f"{m[1]} generated vs {m[2]} reference images"),
    (re.compile(r"zero_division=0"), lambda m: "0 where undefined"),
    (re.compile(r">="), lambda m: " ≥ "),
]


def _crop(px: str) -> str:
    return "no border crop" if px == "0" else f"{px} px border cropped"


def short_convention(convention: str | None) -> str:
    """A stored convention in words: 'y,range=255,crop=4, mean of per-image' -> 'Y channel (BasicSR), values 0-255,
    4 px border cropped, mean of per-image values'; the timing convention -> 'timing: 1 warm-up pass, then
    measured ...; memory: peak process RSS ...'."""
    text = (convention or "").strip()
    timing = _TIMING_RE.fullmatch(text)
    if timing:
        warm, memory = int(timing["warmup"]), _MEMORY.get(timing["mem"], timing["mem"])
        if timing["ran"] is None:
            first = f"{warm} warm-up pass{'es' if warm != 1 else ''}, then measured" if warm else "no warm-up pass, all measured"
            return (f"timing: {first} on {timing['device']} in batches of {timing['batch']} (median and 95th percentile "
                    f"per batch); memory: {memory}")
        first = f"{warm} warm-up batch{'es' if warm != 1 else ''}, then measured" if warm else "no warm-up, all measured"
        ran = " and ".join(f"{n} batch{'es' if n != '1' else ''} of {size}"
                           for size, n in (part.split("x") for part in timing["ran"].split("+")))
        clock = ("per batch, of the GPU time of its forward pass (CUDA events; copies overlap it)"
                 if timing["clock"] == "cuda_events" else "per batch")
        options = f"; speed options: {tag_words(timing['opt'])}" if timing["opt"] else ""
        return (f"timing: {first} on {timing['device']} in batches of up to {timing['batch']} (ran {ran}; median and "
                f"95th percentile {clock}){options}; memory: {memory}")
    for pattern, words in _WORDS:
        text = pattern.sub(words, text)
    return re.sub(r" {2,}", " ", re.sub(r",(?=\S)", ", ", text))


def ordered(columns: list[Column]) -> list[Column]:
    """Headline metric first, then the other quality metrics, then timing and memory."""
    primary = primary_metric(columns)
    quality = [c for c in columns if c.metric not in TIMING and c is not primary]
    timing = sorted((c for c in columns if c.metric in TIMING), key=lambda c: TIMING.index(c.metric))
    return ([primary] if primary is not None else []) + quality + timing


def datasets(task: str | None = None) -> pd.DataFrame:
    """Datasets with benchmark runs (task, dataset, title, runs, models, last_run), newest first per task; the
    title says what the dataset is in words (uploads keep the title they were given)."""
    out = analytics.benchmark_datasets(ensure_store(), task or None)
    out["title"] = [dataset_title(n, t) for n, t in zip(out["dataset"], out["title"])]
    return out


def _check_dataset(task: str, dataset: str) -> pd.Series:
    known = datasets(task)
    hit = known[known["dataset"] == dataset]
    if hit.empty:
        raise InvalidInput(f"No benchmark of {task} on the dataset {str(dataset)[:80]!r} is stored.")
    return hit.iloc[0]


def short_variant(convention: str | None) -> str:
    """What tells two conventions of one metric apart, short enough for a column header: 'cpu, batch 8' for
    timing (the full sentence goes in the header's tooltip), the convention in words otherwise."""
    timing = _TIMING_RE.fullmatch((convention or "").strip())
    return f"{timing['device']}, batch {timing['batch']}" if timing else short_convention(convention)


def columns_of(cols: pd.DataFrame) -> list[Column]:
    """One Column per (metric, convention) of a frame with metric, convention, higher_is_better."""
    columns: list[Column] = []
    for metric, grp in cols.groupby("metric", sort=True):
        several = grp["convention"].nunique(dropna=False) > 1
        for conv, row in grp.drop_duplicates("convention").set_index("convention").iterrows():
            variant = short_variant(conv) if several else ""
            label = f"{metric} [{variant}]" if several else metric
            hib = row["higher_is_better"]
            hib = metric_registry.higher_is_better(metric) if hib is None or pd.isna(hib) else bool(hib)
            columns.append(Column(label, metric, conv, hib, variant))
    return columns


def leaderboard(task: str, dataset: str, include_untrained: bool = True) -> Leaderboard:
    """The newest benchmark run of every model on a dataset, one column per (metric, convention)."""
    url = ensure_store()
    info = _check_dataset(task, dataset)
    columns = columns_of(analytics.metric_columns(url, task, dataset))
    table = analytics.leaderboard(url, task, dataset, [(c.label, c.metric, c.convention) for c in columns],
                                  include_untrained)
    table["untrained"] = table["weights"].eq("random")
    primary = primary_metric(columns)
    if primary is not None and not table.empty:
        table = table.sort_values(primary.label, ascending=not primary.higher_is_better, na_position="last")
    return Leaderboard(task, dataset, str(info["title"] or dataset), table.reset_index(drop=True), columns)


# The metrics boards rank by, first present wins: the tasks' headline metrics (core.tasks), in the pages' order.
PRIMARY = tuple(dict.fromkeys(m for task in all_tasks() for m in task.headline))


def primary_metric(columns: list[Column]) -> Column | None:
    """The column a leaderboard ranks by: the task's headline metric."""
    for name in PRIMARY:
        for c in columns:
            if c.metric == name:
                return c
    return next((c for c in columns if c.metric not in TIMING), None)


def metric_bars(task: str, dataset: str, metrics: list[str], models: list[str] | None = None,
                include_untrained: bool = True) -> pd.DataFrame:
    """Mean (min-max over runs) of each chosen metric per model on a dataset, aggregated in SQL."""
    if not metrics:
        raise InvalidInput("Choose at least one metric.")
    _check_dataset(task, dataset)
    out = analytics.metrics_by_model(ensure_store(), list(metrics), task, dataset, models or None, include_untrained)
    out["higher_is_better"] = [metric_registry.higher_is_better(m) if pd.isna(h) else bool(h)
                               for m, h in zip(out["metric"], out["higher_is_better"])]
    return out


def image_spread(board: Leaderboard, metric: str) -> pd.DataFrame:
    """Per-image values of `metric` for the leaderboard's runs (one run per model): run_id, model, image, value."""
    ids = board.table["run_id"].astype(int).tolist()
    values = analytics.image_values(ensure_store(), ids, metric)
    names = dict(zip(board.table["run_id"], board.table["model"]))
    untrained = dict(zip(board.table["run_id"], board.table["untrained"]))
    values["model"] = [names[r] + (" (untrained)" if untrained[r] else "") for r in values["run_id"]]
    return values


def image_metrics_of(board: Leaderboard) -> list[str]:
    return analytics.image_metric_names(ensure_store(), board.table["run_id"].astype(int).tolist())


def extremes(run_id: int, metric: str, k: int = 5, worst: bool = True) -> pd.DataFrame:
    """The k worst (or best) images of a run by a per-image metric."""
    higher = metric_registry.higher_is_better(metric)  # a count (detections) or unknown name: as if higher is better
    return analytics.image_extremes(ensure_store(), int(run_id), metric, int(k), worst, higher is not False)


def pareto_front(x: np.ndarray, y: np.ndarray, y_higher_is_better: bool = True) -> np.ndarray:
    """Mask of the points no other point beats on both axes (x is a cost: lower is better)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float) if y_higher_is_better else -np.asarray(y, float)
    keep = np.zeros(len(x), bool)
    for i in range(len(x)):
        if not (np.isfinite(x[i]) and not np.isnan(y[i])):
            continue
        better_or_equal = (x <= x[i]) & (y >= y[i])
        strictly = (x < x[i]) | (y > y[i])
        keep[i] = not np.any(better_or_equal & strictly)
    return keep


def quality_cost(board: Leaderboard, quality: str, cost: str) -> pd.DataFrame:
    """model, x (cost), y (quality), pareto; one point per model from the leaderboard's runs."""
    q = board.column(quality)
    if cost == "num_params":
        x = board.table["num_params"].astype(float)
    else:
        x = board.table[board.column(cost).label].astype(float)
    out = pd.DataFrame({"run_id": board.table["run_id"], "model": board.table["model"],
                        "untrained": board.table["untrained"], "x": x, "y": board.table[q.label].astype(float)})
    out = out[out["x"].notna() & out["y"].notna()].reset_index(drop=True)
    out["pareto"] = pareto_front(out["x"].to_numpy(), out["y"].to_numpy(), q.higher_is_better is not False)
    return out


@dataclass(frozen=True)
class RunReport:
    """What a benchmark run stored beside its metric values, for the per-class view."""

    model: str
    weights: str  # the run's weights status ("random" for an untrained model)
    per_class: pd.DataFrame  # one row per class; boxes (or classes), else instance masks
    outputs: EvaluationOutputs


def run_report(run_id: int) -> RunReport:
    """Per-class table, confusion matrix, PR curves and max-F1 point stored with a benchmark run."""
    found = analytics.run_outputs(ensure_store(), [int(run_id)])
    if int(run_id) not in found:
        raise InvalidInput(f"There is no run #{int(run_id)}.")
    info = found[int(run_id)]
    out = EvaluationOutputs.from_json(info["outputs"])
    per_class = pd.DataFrame([row_record(r) for r in out.table])
    return RunReport(info["model"], info["weights"], per_class, out)


# -- the reference tables (laid out like those of the source texts) ---------------------------------------------
def _pct(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(100.0 * float(v), 1)


def class_table(run_id: int) -> pd.DataFrame:
    """Reference table 2.5 (per class): class / precision (%) / recall (%) / F1 (%), plus the overall (micro) row."""
    report = run_report(run_id)
    per_class = report.per_class
    if per_class.empty or "precision" not in per_class:
        raise InvalidInput(f"Run #{int(run_id)} has no per-class precision/recall (it is not a detection or "
                           "classification benchmark).")
    rows = [{"class": r["class"], "precision_pct": _pct(r["precision"]), "recall_pct": _pct(r["recall"]),
             "f1_pct": _pct(r["f1"])} for _, r in per_class.iterrows()]
    detail = repository.run_detail(ensure_store(), int(run_id))
    assert detail is not None  # run_report above found this run
    metrics = detail.metrics.set_index("metric")["value"]
    if {"precision", "recall", "f1"} <= set(metrics.index):
        rows.append({"class": "overall (micro)", "precision_pct": _pct(metrics["precision"]),
                     "recall_pct": _pct(metrics["recall"]), "f1_pct": _pct(metrics["f1"])})
    elif "f1_micro" in metrics.index:
        rows.append({"class": "overall (macro)", "precision_pct": _pct(metrics.get("precision_macro")),
                     "recall_pct": _pct(metrics.get("recall_macro")), "f1_pct": _pct(metrics.get("f1_macro"))})
    return pd.DataFrame(rows)


def method_table(task: str, dataset: str, include_untrained: bool = False) -> pd.DataFrame:
    """Reference table "Method / PSNR (dB) / SSIM / FID" from the newest run per model: restoration datasets give
    PSNR/SSIM (with the degraded input as a row), generation datasets give FID, or FD in another feature space
    under its own name, never as FID."""
    board = leaderboard(task, dataset, include_untrained)
    wanted = [c for c in board.columns if c.metric in ("psnr", "ssim", "psnr_y", "ssim_y", "lpips", "fid", "kid")
              or c.metric.startswith("fd_")]
    if not wanted:
        raise InvalidInput("This dataset's runs have no PSNR/SSIM/FID to tabulate.")
    table = board.table[["model", "untrained", "run_id", *[c.label for c in wanted]]].copy()
    table.insert(0, "method", [m + (" (untrained)" if u else "") for m, u in zip(table["model"], table["untrained"])])
    table = table.drop(columns=["model", "untrained"])
    if not board.table.empty:  # restoration runs store the degraded input's own scores: a row of their own
        outputs = analytics.run_outputs(ensure_store(), [int(board.table["run_id"].iloc[0])])
        first = EvaluationOutputs.from_json(next(iter(outputs.values()))["outputs"])
        if first.input_psnr is not None:
            row = {"method": "degraded input", "run_id": None, "psnr": first.input_psnr, "ssim": first.input_ssim}
            table = pd.concat([pd.DataFrame([{k: v for k, v in row.items() if k in table.columns or k == "method"}]),
                               table], ignore_index=True)
            table["run_id"] = table["run_id"].astype("Int64")  # the input row has no run: blank, not "None"
    return table.rename(columns={c.label: c.header for c in wanted})


DEVICE_ORDER = {"cpu": 0, "mps": 1, "cuda": 2}


def speed_table(task: str, dataset: str) -> pd.DataFrame:
    """Reference table "method / quality / images per second by device and batch size": each model's headline
    metrics from its newest run, beside the throughput of the newest run that measured each (device, batch size).
    It is where a real-time claim is checked: a single-stage detector at batch 1 and 32 next to a two-stage one."""
    board = leaderboard(task, dataset)
    speeds = analytics.newest_per_convention(ensure_store(), task, dataset, "throughput_img_s")
    parsed = [_TIMING_RE.fullmatch((c or "").strip()) for c in speeds["convention"]]
    speeds = speeds.assign(device=[m["device"] if m else None for m in parsed],
                           batch=[int(m["batch"]) if m else None for m in parsed]).dropna(subset=["device", "batch"])
    if speeds.empty:
        raise InvalidInput("No run on this dataset recorded its throughput.")
    speeds = speeds.sort_values("run_id").drop_duplicates(["model", "weights", "device", "batch"], keep="last")
    settings = sorted({(d, int(b)) for d, b in zip(speeds["device"], speeds["batch"])},
                      key=lambda s: (DEVICE_ORDER.get(s[0], 9), s[0], s[1]))
    header = {s: f"images/s ({s[0]}, batch {s[1]})" for s in settings}
    wide = speeds.assign(setting=[header[(d, int(b))] for d, b in zip(speeds["device"], speeds["batch"])]).pivot(
        index=["model", "weights"], columns="setting", values="value")
    quality = [next(c for c in board.columns if c.metric == m) for m in get_task(task).headline
               if any(c.metric == m for c in board.columns)]
    table = board.table[["model", "weights", *[c.label for c in quality]]].merge(
        wide.reset_index(), on=["model", "weights"], how="outer")
    table.insert(0, "method", [m + (" (untrained)" if w == "random" else "") for m, w in zip(table["model"], table["weights"])])
    table = table.drop(columns=["model", "weights"]).rename(columns={c.label: c.header for c in quality})
    return table[["method", *[c.header for c in quality], *[header[s] for s in settings]]].reset_index(drop=True)
