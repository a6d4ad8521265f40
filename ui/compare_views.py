"""The views of the Compare page. Each reads and writes its selection in the URL (ui.url_state), draws charts
from core.services.compare and offers its table as CSV and JSON."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from core import services
from core.charts import sweep_bars, training_curves
from core.eval_charts import confusion_figure, grouped_metric_bars, pareto_scatter, pr_figure, spread_figure
from core.services import compare
from ui.state import guarded
from ui.url_state import export_buttons, pick, pick_many


def dataset_picker(prefix: str, tasks: tuple[str, ...] | None = None,
                   empty: str = "No benchmark of this kind stored yet: run one on the Benchmark page.") -> tuple[str, str] | None:
    """Task and dataset among those with stored benchmarks (?task=&dataset=)."""
    known = guarded(compare.datasets)
    if known is None:
        return None
    if tasks:
        known = known[known["task"].isin(tasks)]
    if known.empty:
        st.info(empty)
        return None
    c1, c2 = st.columns([1, 3])
    with c1:
        task = pick("Task", sorted(known["task"].unique()), "task", f"{prefix}_task")
    subset = known[known["task"] == task]
    titles = dict(zip(subset["dataset"], subset["title"]))
    with c2:
        dataset = pick("Dataset", subset["dataset"].tolist(), "dataset", f"{prefix}_dataset",
                       format_func=lambda n: f"{titles.get(n) or n}  ·  {n}")
    return task, dataset


def board_picker(prefix: str, tasks: tuple[str, ...] | None = None):
    chosen = dataset_picker(prefix, tasks)
    if chosen is None:
        return None
    board = guarded(compare.leaderboard, *chosen)
    if board is not None and board.table.empty:
        st.info("No runs of this dataset are left to compare.")
        return None
    return board


def metrics_view() -> None:
    """Grouped bars of chosen metrics per model, then the per-image spread as box or violin plots."""
    board = board_picker("cmpm")
    if board is None:
        return
    names = sorted({c.metric for c in board.columns})
    primary = compare.primary_metric(board.columns)
    models = sorted(board.table["model"].unique())
    c1, c2 = st.columns(2)
    with c1:
        metrics = pick_many("Metrics", names, "metrics", "cmpm_metrics", default=[primary.metric] if primary else names[:1])
    with c2:
        chosen = pick_many("Models (all when empty)", models, "models", "cmpm_models", limit=len(models))
    if chosen:
        board = replace(board, table=board.table[board.table["model"].isin(chosen)])
    if metrics:
        summary = guarded(compare.metric_bars, board.task, board.dataset, metrics, chosen)
        if summary is not None and not summary.empty:
            mixed = summary[summary["conventions"] > 1]["metric"].unique()
            if len(mixed):
                st.warning(f"{', '.join(mixed)} were stored under several conventions on this dataset; the bars "
                           "average them — the Leaderboard shows them apart.")
            conv = "; ".join(f"{m}: {compare.short_convention(c)}" for m, c in
                             summary.groupby("metric")["convention"].first().items() if m not in compare.TIMING)
            st.plotly_chart(grouped_metric_bars(summary, f"{board.title}" + (f" — {conv}" if conv else "")),
                            key="cmpm_bars")
            export_buttons(summary, f"metrics-{board.task}", "cmpm_export")
    per_image = guarded(compare.image_metrics_of, board) or []
    if not per_image:
        st.caption("These runs stored no per-image values.")
        return
    st.subheader("Per-image spread")
    c1, c2 = st.columns([2, 1])
    with c1:
        metric = pick("Per-image metric", per_image, "spread", "cmpm_spread")
    with c2:
        kind = pick("Plot", ["box", "violin"], "plot", "cmpm_plot")
    values = guarded(compare.image_spread, board, metric)
    if values is not None and not values.empty:
        st.plotly_chart(spread_figure(values, metric, kind, f"{metric} per image — {board.title}"), key="cmpm_spread_chart")
        export_buttons(values, f"per-image-{metric}", "cmpm_spread_export")


def cost_view() -> None:
    """Quality against latency, memory or parameter count, with the Pareto front."""
    board = board_picker("cmpc")
    if board is None:
        return
    qualities = [c.label for c in board.columns if c.metric not in compare.TIMING]
    costs = [c.label for c in board.columns if c.metric in compare.COSTS] + ["num_params"]
    if not qualities:
        st.info("These runs have no quality metric.")
        return
    primary = compare.primary_metric(board.columns)
    c1, c2, c3 = st.columns([2, 2, 1])
    with c1:
        y = pick("Quality (y)", qualities, "y", "cmpc_y", default=qualities.index(primary.label) if primary else 0)
    with c2:
        x = pick("Cost (x)", costs, "x", "cmpc_x")
    log_x = c3.toggle("log x", value=x == "num_params", key="cmpc_log")
    points = guarded(compare.quality_cost, board, y, x)
    if points is None:
        return
    if points.empty:
        st.info(f"No model has both {y} and {x} on this dataset.")
        return
    st.plotly_chart(pareto_scatter(points, x, board.column(y).header, log_x), key="cmpc_chart")
    st.caption("Pareto front: no other model is both cheaper and better. Parameter-free methods have 0 parameters.")
    export_buttons(points, f"quality-cost-{board.task}", "cmpc_export")


def _run_picker(board, key: str) -> int:
    labels = dict(zip(board.table["run_id"].astype(int), board.table["model"]))
    return pick("Run", list(labels), "run", key, format_func=lambda r: f"#{r} {labels.get(r, '')}")


def classes_view() -> None:
    """Per-class P/R/F1 of one run, its PR curves (detection) and confusion matrix (classification)."""
    board = board_picker("cmpk", ("classification", "detection", "segmentation"))
    if board is None:
        return
    run_id = _run_picker(board, "cmpk_run")
    report = guarded(compare.run_report, run_id)
    if report is None:
        return
    if report["weights"] == "random":
        st.error("Untrained model (random weights): these numbers are not meaningful.")
    if not report["per_class"].empty:
        st.dataframe(report["per_class"], hide_index=True, key="cmpk_table")
        export_buttons(report["per_class"], f"per-class-run-{run_id}", "cmpk_export")
    if report["max_f1"]:
        m = report["max_f1"]
        st.caption(f"Max-F1 operating point: F1 {m['f1']:.3f} (P {m['precision']:.3f}, R {m['recall']:.3f}) at score "
                   f"≥ {m['score_threshold']:.3f}; the table's P/R/F1 are at the run's own threshold.")
    if report["pr_curves"]:
        st.plotly_chart(pr_figure(report["pr_curves"], f"PR curves at IoU 0.5 — {report['model']}"), key="cmpk_pr")
    if report["confusion"]:
        normalize = st.toggle("Row-normalised", value=True, key="cmpk_norm")
        st.plotly_chart(confusion_figure(report["confusion"], f"Confusion matrix — {report['model']}", normalize),
                        key="cmpk_cm")
        labels = report["confusion"]["labels"]
        matrix = pd.DataFrame(report["confusion"]["matrix"], index=pd.Index(labels, name="true"), columns=labels)
        export_buttons(matrix.reset_index(), f"confusion-run-{run_id}", "cmpk_cm_export")


def tables_view() -> None:
    """The method / class / optimizer comparison tables, with this store's numbers."""
    which = pick("Table", ["method", "class", "optimizer"], "table", "cmpt_which",
                 format_func={"method": "Method / PSNR / SSIM / FID", "class": "Class / precision / recall / F1",
                              "optimizer": "Optimizer / train / validation / test"}.get)
    if which == "optimizer":
        sweep_view()
        return
    if which == "method":
        chosen = dataset_picker("cmpt", ("restoration", "generation"))
        if chosen is None:
            return
        table = guarded(compare.method_table, *chosen)
        name = f"methods-{chosen[0]}"
    else:
        board = board_picker("cmpt", ("detection", "classification"))
        if board is None:
            return
        run_id = _run_picker(board, "cmpt_run")
        table = guarded(compare.class_table, run_id)
        name = f"classes-run-{run_id}"
    if table is not None:
        st.dataframe(table, hide_index=True, key="cmpt_table")
        export_buttons(table, name, "cmpt_export")


def sweep_view() -> None:
    sweep_ids = guarded(services.sweeps) or []
    if not sweep_ids:
        st.info("No sweep yet: launch one on the Fine-tune page (Sweep SGD / Adam / Adagrad).")
        return
    sweep = pick("Sweep", sweep_ids, "sweep", "cmp_sweep")
    table = guarded(services.sweep_table, sweep)
    if table is None or table.empty:
        return
    st.plotly_chart(sweep_bars(table), key="cmp_sweep_chart")
    st.dataframe(table, hide_index=True, key="cmp_sweep_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("train", "validation", "test")})
    export_buttons(table, f"sweep-{sweep}", "cmp_sweep_export")
    points = guarded(services.curves, table["job"].tolist())
    if points is not None and not points.empty:
        labels = {int(j): f"#{j} {o}" for j, o in zip(table["job"], table["optimizer"])}
        st.plotly_chart(training_curves(points, ["train_loss", "val_accuracy"], labels), key="cmp_sweep_curves")


def jobs_view() -> None:
    """Finished training jobs side by side: curves overlaid and their results (?jobs=3,4)."""
    jobs = [j for j in (guarded(services.list_jobs, "train", 200) or []) if j.status == "done"]
    if not jobs:
        st.info("No finished training job yet: launch one on the Fine-tune page.")
        return
    by_id = {j.id: j for j in jobs}
    picked = pick_many("Jobs", list(by_id), "jobs", "cmp_jobs", default=list(by_id)[:3],
                       format_func=lambda i: f"#{i} {by_id[i].title}")
    if not picked:
        return
    points = guarded(services.curves, picked)
    if points is not None and not points.empty:
        names = sorted(points["name"].unique())
        shown = st.multiselect("Curves", names, key="cmp_curve_names",
                               default=[n for n in names if n.endswith("loss") or n.startswith(("val_", "fd_", "fid"))])
        labels = {i: f"#{i} {by_id[i].params['config']['base']}" for i in picked}
        st.plotly_chart(training_curves(points, shown, labels), key="cmp_job_curves")
    rows = pd.DataFrame([{
        "job": i, "model": by_id[i].result.get("model"), "base": by_id[i].params["config"]["base"],
        "optimizer": by_id[i].params["config"]["optimizer"], "metric": by_id[i].result.get("metric"),
        "best": by_id[i].result.get("best_value"), "best_epoch": by_id[i].result.get("best_epoch"),
        "time_to_best_s": by_id[i].result.get("time_to_best_s"), "epoch_time_s": by_id[i].result.get("epoch_time_s"),
        "peak_mem_mb": by_id[i].result.get("peak_mem_mb"),
        "test_run": f"/results?run={by_id[i].result['run_id']}" if by_id[i].result.get("run_id") else None}
        for i in picked])
    st.dataframe(rows, hide_index=True, key="cmp_jobs_table",
                 column_config={"test_run": st.column_config.LinkColumn("test run", display_text=r"run=(\d+)")})
    export_buttons(rows, "training-jobs", "cmp_jobs_export")
