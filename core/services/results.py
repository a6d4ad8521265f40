"""Read side of the store for the Results page: the runs table (readable dataset names, quality metrics before
timing) and the model comparison, kept to one task, one dataset and one convention per column."""
from __future__ import annotations

import html
import numbers
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.errors import InvalidInput
from core.jobs import runner
from core.services import compare
from core.services.datasets import dataset_title
from core.services.jobs import public_text, scrubbed
from core.store import ensure_store
from core.users import User, acting, may_change, require
from db import jobs as job_rows
from db import repository
from db.repository import RunDetail

KINDS = ("benchmark", "playground")


def _metric_order(names: list[str]) -> list[str]:
    """Headline metrics first (in the order tasks rank by), other quality metrics, then timing and memory."""
    primary = [m for m in compare.PRIMARY if m in names]
    timing = [m for m in compare.TIMING if m in names]
    return primary + sorted(set(names) - set(primary) - set(timing)) + timing


def runs_table(task: str | None = None, models: list[str] | None = None, include_untrained: bool = True,
               limit: int = 500, run_ids: list[int] | None = None) -> pd.DataFrame:
    """Newest runs first, their metrics as columns, quality metrics before timing."""
    runs = repository.list_runs(ensure_store(), task=task or None, models=models or None,
                                include_untrained=include_untrained, limit=limit, run_ids=run_ids)
    fixed = [c for c in repository.RUN_COLUMNS if c in runs.columns]
    return runs[fixed + _metric_order([c for c in runs.columns if c not in fixed])]


def runs_view(task: str | None = None, models: list[str] | None = None, include_untrained: bool = True,
              limit: int = 500) -> pd.DataFrame:
    """The Results table: who, what and on which data first, then quality metrics, timing, and the setup."""
    runs = runs_table(task, models, include_untrained, limit)
    if runs.empty:
        return runs
    metrics = [c for c in runs.columns if c not in repository.RUN_COLUMNS]
    runs = runs.assign(dataset=[dataset_title(n, t) for n, t in zip(runs["dataset"], runs["dataset_title"])],
                       weights=runs["weights"].map(lambda w: "untrained (random)" if w == "random" else w))
    lead = ["run_id", "created_at", "owner", "task", "kind", "model", "weights", "dataset"]
    hidden = {"dataset_hash", "dataset_title"}
    return runs[lead + metrics + [c for c in repository.RUN_COLUMNS if c not in lead and c not in hidden]]


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The metric columns of a runs table, in the order shown."""
    return [c for c in runs.columns if c not in repository.RUN_COLUMNS]


def model_names(task: str | None = None) -> list[str]:
    return repository.model_names(ensure_store(), task or None)


@dataclass(frozen=True)
class ModelComparison:
    """Models side by side on one dataset: one row per model (its newest run of `kind` there), one column per
    metric and convention."""

    kind: str
    task: str
    dataset: str
    title: str
    table: pd.DataFrame  # run_id, model, weights, runs + one column per Column.label
    columns: list[compare.Column]

    def column(self, label: str) -> compare.Column:
        for c in self.columns:
            if c.label == label:
                return c
        raise InvalidInput(f"No metric {str(label)[:60]!r} was stored for these runs.")


def _playground_runs(task: str | None) -> pd.DataFrame:
    """Playground runs with `input`: the dataset name and content hash, since one name can stand for several
    inputs (two uploads called image.png, one photo at two working sizes)."""
    runs = repository.list_runs(ensure_store(), task=task or None, kinds=["playground"], limit=2000)
    return runs.assign(input=[f"{n}@{h[:16]}" for n, h in zip(runs["dataset"], runs["dataset_hash"])]) if not runs.empty \
        else runs.assign(input=[])


def comparison_datasets(kind: str, task: str | None = None) -> pd.DataFrame:
    """task, dataset, title, runs: where models can be compared. Benchmarks compare on their datasets;
    Playground runs only with other Playground runs on the same input (same image, same degradation)."""
    if kind not in KINDS:
        raise InvalidInput(f"Runs are either benchmark or playground runs, not {str(kind)[:40]!r}.")
    if kind == "benchmark":
        return compare.datasets(task)[["task", "dataset", "title", "runs"]]
    runs = _playground_runs(task)
    if runs.empty:
        return pd.DataFrame(columns=["task", "dataset", "title", "runs"])
    out = (runs.groupby(["task", "input"], sort=False)
           .agg(name=("dataset", "first"), stored=("dataset_title", "first"), runs=("run_id", "size"),
                newest=("run_id", "max"))
           .reset_index().sort_values(["task", "newest"], ascending=[True, False]))
    out["title"] = [dataset_title(n, t) for n, t in zip(out["name"], out["stored"])]
    twice = out["title"].duplicated(keep=False)  # same words, other pixels (another size or file): say which
    out.loc[twice, "title"] = [f"{t} · input {i.rsplit('@', 1)[1][:6]}" for t, i in zip(out.loc[twice, "title"],
                                                                                     out.loc[twice, "input"])]
    return out.rename(columns={"input": "dataset"})[["task", "dataset", "title", "runs"]].reset_index(drop=True)


def compare_models(kind: str, task: str, dataset: str, models: list[str] | None = None,
                   include_untrained: bool = True) -> ModelComparison:
    """The newest run of each model on the dataset, never mixing tasks, datasets, kinds or conventions."""
    known = comparison_datasets(kind, task)
    hit = known[known["dataset"] == dataset]
    if hit.empty:
        raise InvalidInput(f"No {kind} run of {task} on {dataset_title(str(dataset).split('@')[0][:80])!r} is stored.")
    if kind == "benchmark":
        board = compare.leaderboard(task, dataset, include_untrained)
        table, columns = board.table, board.columns
    else:
        runs = _playground_runs(task)
        runs = runs[(runs["input"] == dataset) & (include_untrained | (runs["weights"] != "random"))]
        counts = runs.groupby(["model", "weights"]).size().rename("runs")
        newest = runs.sort_values("run_id", ascending=False).drop_duplicates(["model", "weights"])
        if newest.empty:
            return ModelComparison(kind, task, dataset, str(hit["title"].iloc[0]), pd.DataFrame(), [])
        details = {int(r): run_detail(int(r)).metrics for r in newest["run_id"]}
        long = pd.concat([m.assign(run_id=r) for r, m in details.items()], ignore_index=True)
        long["higher_is_better"] = None
        columns = compare.columns_of(long)
        rows = []
        for _, run in newest.iterrows():
            m = details[int(run["run_id"])]
            values = {(a, b): v for a, b, v in zip(m["metric"], m["convention"], m["value"])}
            rows.append({"run_id": int(run["run_id"]), "model": run["model"], "weights": run["weights"],
                         "runs": int(counts[(run["model"], run["weights"])]),
                         **{c.label: values.get((c.metric, c.convention)) for c in columns}})
        table = pd.DataFrame(rows)
    if models:
        table = table[table["model"].isin(models)]
    return ModelComparison(kind, task, dataset, str(hit["title"].iloc[0]), table.reset_index(drop=True), columns)


def chart_title(comparison: ModelComparison, column: compare.Column) -> str:
    """Plotly title (HTML): the metric, what it was measured on, and its convention once, on a second line.
    The dataset title may be a user's upload title, so it is HTML-escaped."""
    where = html.escape(comparison.title) + ("" if comparison.kind == "benchmark" else " (Playground run, not a benchmark)")
    conv = compare.short_convention(column.convention)
    return f"{html.escape(column.header)} on {where}" + (f"<br><sup>{html.escape(conv)}</sup>" if conv else "")


MAX_RUN_ID = 2**63 - 1  # the store's integer keys are 64-bit: a larger number cannot name a run


def run_id_of(run_id: Any) -> int:
    """A run id from a link or a widget: ASCII digits only (no spaces inside, underscores or other scripts'
    digits), 1 to MAX_RUN_ID, so the database is never asked about a number it cannot hold."""
    text = run_id.strip() if isinstance(run_id, str) else None
    if isinstance(run_id, numbers.Integral) and not isinstance(run_id, bool):
        rid = int(run_id)
    elif text is not None and re.fullmatch(r"-?[0-9]+", text):
        rid = int(text) if len(text) <= 20 else MAX_RUN_ID + 1  # longer: out of range, whatever it says
    else:
        raise InvalidInput(f"Run id must be a number, got {str(run_id)[:40]!r}.")
    if not 1 <= rid <= MAX_RUN_ID:
        shown = text if text is not None else str(rid)
        raise InvalidInput(f"There is no run {shown[:40]}{'...' if len(shown) > 40 else ''}: run ids are whole "
                           f"numbers from 1 to {MAX_RUN_ID}.")
    return rid


def run_detail(run_id: Any) -> RunDetail:
    rid = run_id_of(run_id)
    detail = repository.run_detail(ensure_store(), rid)
    if detail is None:
        raise InvalidInput(f"There is no run #{rid}.")
    return detail


def detail_metrics(detail: RunDetail) -> pd.DataFrame:
    """A run's metrics as a student reads them: headline first, quality, then timing; units and conventions in words."""
    m = detail.metrics
    order = {name: i for i, name in enumerate(_metric_order(m["metric"].tolist()))}
    m = m.assign(n=m["metric"].map(order)).sort_values("n", kind="stable")
    return pd.DataFrame({"metric": [compare.metric_title(x) for x in m["metric"]], "value": m["value"].to_numpy(),
                         "convention": [compare.short_convention(c) for c in m["convention"]]})


def provenance(detail: RunDetail) -> dict[str, Any]:
    """Where a run's numbers come from; a weights file is named by its file name, never by its server path."""
    return scrubbed({
        "owner": detail.owner, "weights_hash": detail.weights_hash, "weights_origin": detail.weights_origin,
        "num_params": detail.num_params, "dataset_hash": detail.dataset_hash, "device": detail.device,
        "dtype": detail.dtype, "batch_size": detail.batch_size, "seed": detail.seed,
        "code_version": detail.code_version, "versions": detail.versions, "params": detail.params,
        "outputs": detail.outputs,
    })


def weights_words(detail: RunDetail) -> str:
    """Which weights the run used, in words: who ran it, the file (by name, never its server path) and its hash."""
    who = f"Run by {detail.owner}. " if detail.owner else ""
    if detail.weights_status == "random":
        return who + "Weights: untrained (random initialisation)."
    if detail.weights_status == "parameter-free":
        return who + "No learned weights (a classical method)."
    origin = public_text(detail.weights_origin or "unknown")
    digest = detail.weights_hash or ""
    return who + f"Weights: {origin}" + (f" (SHA-256 {digest[:12]}…)." if len(digest) == 64 else ".")


def may_delete_run(detail: RunDetail, user: User | None = None) -> bool:
    return may_change(acting(user), detail.owner)


def delete_runs(run_ids: list[Any], user: User | None = None) -> int:
    """Delete runs (their values and per-image values) when `user` owns every one or is an admin; a benchmark
    job left with no run loses its log and folder too. Returns how many were deleted."""
    user = acting(user)
    ids = sorted({run_id_of(r) for r in run_ids})
    url = ensure_store()
    found = repository.run_owners(url, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"There is no run #{missing[0]}.")
    for rid in ids:
        require(user, found[rid][0], f"delete run #{rid}")
    for job_id in repository.delete_runs(url, ids):
        job = job_rows.get(url, job_id)
        if job is not None and job.kind == "benchmark" and job_rows.delete(url, job_id):
            runner.log_path(job_id).unlink(missing_ok=True)
            runner.remove_partial(job_id)
    return len(ids)
