"""The views of the Compare page. Each reads and writes its selection in the URL (ui.url_state), draws charts
from core.services.compare and offers its table as CSV and JSON."""
from __future__ import annotations

import html
from dataclasses import replace

import pandas as pd
import streamlit as st

from core import services
from core.charts import degradation_curves, experiment_curve, sweep_bars, sweep_summary_bars, training_curves
from core.eval_charts import (confusion_figure, count_matrix_figure, grouped_metric_bars, operating_point_figure, pareto_scatter,
                              pr_figure, spread_figure)
from core.metrics import registry as metric_registry
from core.services import compare, experiments, operating_point, paired, robustness
from core.wording import count
from ui.state import guarded
from ui.text import plain
from ui.url_state import export_buttons, pick, pick_fraction, pick_many, pick_step


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
    runs = dict(zip(subset["dataset"], subset["runs"]))
    with c2:
        dataset = pick("Dataset", subset["dataset"].tolist(), "dataset", f"{prefix}_dataset",
                       format_func=lambda n: f"{titles.get(n) or n} ({count(int(runs.get(n, 0)), 'run')})")
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
        metrics = pick_many("Metrics", names, "metrics", "cmpm_metrics", default=[primary.metric] if primary else names[:1],
                            format_func=metric_registry.title)
    with c2:
        chosen = pick_many("Models (all when empty)", models, "models", "cmpm_models", limit=len(models))
    if chosen:
        board = replace(board, table=board.table[board.table["model"].isin(chosen)])
    if metrics:
        summary = guarded(compare.metric_bars, board.task, board.dataset, metrics, chosen)
        if summary is not None and not summary.empty:
            mixed = summary[summary["conventions"] > 1]["metric"].unique()
            if len(mixed):
                st.warning(f"{plain(', '.join(metric_registry.title(m) for m in mixed))} were stored under several conventions on this "
                           "dataset; the bars "
                           "average them — the Leaderboard shows them apart.")
            conv = "; ".join(f"{metric_registry.title(m)}: {compare.short_convention(c)}" for m, c in
                             summary.groupby("metric")["convention"].first().items() if m not in compare.TIMING)
            subtitle = f"<br><sup>{html.escape(conv)}</sup>" if conv else ""
            st.plotly_chart(grouped_metric_bars(summary, html.escape(board.title) + subtitle),
                            key="cmpm_bars")
            export_buttons(summary, f"metrics-{board.task}", "cmpm_export")
    per_image = guarded(compare.image_metrics_of, board) or []
    if not per_image:
        st.caption("These runs stored no per-image values.")
        return
    st.subheader("Per-image spread")
    c1, c2 = st.columns([2, 1])
    with c1:
        metric = pick("Per-image metric", per_image, "spread", "cmpm_spread", format_func=metric_registry.title)
    with c2:
        kind = pick("Plot", ["box", "violin"], "plot", "cmpm_plot")
    values = guarded(compare.image_spread, board, metric)
    if values is not None and not values.empty:
        st.plotly_chart(spread_figure(values, metric_registry.title(metric), kind,
                                      f"{metric_registry.title(metric)} per image — {html.escape(board.title)}"),
                        key="cmpm_spread_chart")
        export_buttons(values, f"per-image-{metric}", "cmpm_spread_export")
    paired_section(board, metric, "cmpm")


PAIRED_HEADERS = {
    "images": st.column_config.NumberColumn("images compared", help="images both models scored"),
    "left out": st.column_config.NumberColumn("images left out", help="a value missing, or infinite on both sides "
                                              "(PSNR of an exact restoration is infinite)"),
    "difference": st.column_config.NumberColumn("mean difference", format="%+.4g",
                                                help="model minus reference, averaged over the images"),
    "95% interval low": st.column_config.NumberColumn(format="%+.4g", help="bootstrap (BCa), 4000 resamples"),
    "95% interval high": st.column_config.NumberColumn(format="%+.4g", help="bootstrap (BCa), 4000 resamples"),
    "Wilcoxon p": st.column_config.NumberColumn(format="%.2g", help="two-sided Wilcoxon signed-rank test"),
    "model mean": st.column_config.NumberColumn(format="%.4g"),
    "reference mean": st.column_config.NumberColumn(format="%.4g"),
    "verdict": st.column_config.TextColumn("distinguishable from zero?"),
}


def paired_section(board, metric: str, prefix: str) -> None:
    """Each model against a reference (?ref=) on the images both scored: is the difference real?"""
    names = paired.model_names(board)
    if len(names) < 2:
        return
    st.subheader("Paired differences: is the gap real?")
    reference = pick("Reference model", names, "ref", f"{prefix}_ref")
    table = guarded(paired.against_reference, board, metric, reference)
    if table is None or table.empty:
        return
    st.caption(f"Per image: each model's {metric_registry.title(metric)} minus the reference's, on the same images. "
               "A difference is distinguishable from zero when its bootstrap 95% interval excludes zero and the "
               "Wilcoxon signed-rank test gives p < 0.05.")
    for line in table["in words"]:
        st.text(line)
    shown = table.drop(columns=["in words", "run_id", "reference_run_id", "reference"])
    st.dataframe(shown, hide_index=True, key=f"{prefix}_paired", column_config=PAIRED_HEADERS)
    export_buttons(table, f"paired-{metric}", f"{prefix}_paired_export")


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
        y = pick("Quality (y)", qualities, "y", "cmpc_y", default=qualities.index(primary.label) if primary else 0,
                 format_func=lambda c: board.column(c).header)
    with c2:
        x = pick("Cost (x)", costs, "x", "cmpc_x",
                 format_func=lambda c: metric_registry.title(c) if c == "num_params" else board.column(c).header)
    log_x = c3.toggle("log x", value=x == "num_params", key="cmpc_log")
    x_title = metric_registry.title("num_params") if x == "num_params" else board.column(x).header
    points = guarded(compare.quality_cost, board, y, x)
    if points is None:
        return
    if points.empty:
        st.info(f"No model has both {board.column(y).header} and {x_title} on this dataset.")
        return
    st.plotly_chart(pareto_scatter(points, x_title, board.column(y).header, log_x), key="cmpc_chart")
    st.caption("Pareto front: no other model is both cheaper and better. Parameter-free methods have 0 parameters.")
    export_buttons(points, f"quality-cost-{board.task}", "cmpc_export")


def _run_picker(board, key: str) -> int:
    labels = dict(zip(board.table["run_id"].astype(int), board.table["model"]))
    return pick("Run", list(labels), "run", key, format_func=lambda r: f"#{r} {labels.get(r, '')}")


def classes_view() -> None:
    """Per-class P/R/F1 of one run, its PR curves (detection) and confusion matrix (classification)."""
    board = board_picker("cmpk", services.tasks_with_table("per_class"))
    if board is None:
        return
    run_id = _run_picker(board, "cmpk_run")
    report = guarded(compare.run_report, run_id)
    if report is None:
        return
    if report.weights == "random":
        st.error("Untrained model (random weights): these numbers are not meaningful.")
    if not report.per_class.empty:
        st.dataframe(report.per_class, hide_index=True, key="cmpk_table")
        export_buttons(report.per_class, f"per-class-run-{run_id}", "cmpk_export")
    out = report.outputs
    if out.max_f1:
        m = out.max_f1
        st.caption(f"Max-F1 operating point: F1 {m.f1:.3f} (P {m.precision:.3f}, R {m.recall:.3f}) at score "
                   f"≥ {m.score_threshold:.3f}; the table's P/R/F1 are at the run's own threshold.")
    if out.pr_curves:
        st.plotly_chart(pr_figure(out.pr_curves, f"PR curves at IoU 0.5 — {html.escape(report.model)}"), key="cmpk_pr")
    if out.confusion:
        normalize = st.toggle("Row-normalised", value=True, key="cmpk_norm")
        st.plotly_chart(confusion_figure(out.confusion, f"Confusion matrix — {html.escape(report.model)}", normalize),
                        key="cmpk_cm")
        labels = list(out.confusion.labels)
        matrix = pd.DataFrame(out.confusion.matrix, index=pd.Index(labels, name="true"), columns=labels)
        export_buttons(matrix.reset_index(), f"confusion-run-{run_id}", "cmpk_cm_export")


def operating_view() -> None:
    """A detection run at any IoU and score threshold, from its stored matches: P/R/F1, the PR curve with the
    chosen and max-F1 points, per-class counts and the confusion with missed objects and background detections."""
    board = board_picker("cmpo", ("detection",))
    if board is None:
        return
    run_id = _run_picker(board, "cmpo_run")
    c1, c2 = st.columns(2)
    with c1:
        iou = pick_step("IoU threshold (a detection must overlap its object at least this much)",
                        operating_point.IOU_CHOICES, "iou", "cmpo_iou", 0.5, lambda v: f"{v:.2f}")
    with c2:
        score = pick_fraction("Score threshold (detections below it are dropped)", "score", "cmpo_score",
                              guarded(operating_point.stored_threshold, run_id) or 0.5)
    explored = guarded(operating_point.explore, run_id, iou, score)
    if explored is None:
        return
    best_f1, best_p, best_r, best_s = explored.best
    m1, m2, m3 = st.columns(3)
    m1.metric("precision", f"{explored.precision:.3f}")
    m2.metric("recall", f"{explored.recall:.3f}")
    m3.metric("F1", f"{explored.f1:.3f}", f"{explored.f1 - best_f1:+.3f} vs max F1", delta_color="off")
    st.caption(f"At IoU ≥ {explored.iou:.2f}: F1 peaks at {best_f1:.3f} (precision {best_p:.3f}, recall {best_r:.3f}) "
               f"with score ≥ {best_s:.3f}. Micro averages over all classes; recomputed from the matches stored "
               "with the run, not by running the model again.")
    st.plotly_chart(operating_point_figure(explored.curve, (explored.recall, explored.precision, explored.score),
                                           (best_r, best_p, best_s),
                                           f"PR curve at IoU {explored.iou:.2f} — {html.escape(explored.model)}"),
                    key="cmpo_pr")
    export_buttons(explored.summary(), f"operating-point-run-{run_id}", "cmpo_export")
    st.dataframe(explored.per_class, hide_index=True, key="cmpo_classes", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "F1")})
    export_buttons(explored.per_class, f"operating-point-classes-run-{run_id}", "cmpo_classes_export")
    normalize = st.toggle("Row-normalised", value=False, key="cmpo_norm")
    cm = explored.confusion
    st.plotly_chart(count_matrix_figure(cm.to_numpy(float), [str(i) for i in cm.index], [str(c) for c in cm.columns],
                                        f"Confusion at IoU {explored.iou:.2f}, score ≥ {explored.score:.2f}", normalize,
                                        "boxes"), key="cmpo_cm")
    st.caption("Rows: the true class of each object (last row: detections of no object). Columns: the class a "
               "detection gave (last column: objects no detection found). Off the diagonal: an object taken for "
               "another class.")
    export_buttons(operating_point.confusion_frame(explored), f"operating-point-confusion-run-{run_id}", "cmpo_cm_export")


def robustness_view() -> None:
    """A robustness sweep's degradation curves: the metric per model against the corruption level (?job=&metric=),
    and the area under each curve."""
    jobs = guarded(robustness.finished_sweeps) or []
    if not jobs:
        st.info("No robustness sweep yet: launch one on the Benchmark page (Robustness sweep).")
        return
    titles = {j.id: j.title for j in jobs}
    job_id = pick("Sweep", list(titles), "job", "cmpr_job", format_func=lambda i: f"#{i} {titles.get(i, '')}")
    curves = guarded(robustness.sweep_curves, job_id)  # the task's headline metric; a link may ask for another
    if curves is None:
        return
    metric = pick("Metric", curves.metrics, "metric", "cmpr_metric", default=curves.metrics.index(curves.metric),
                  format_func=metric_registry.title)
    if metric != curves.metric:
        curves = guarded(robustness.sweep_curves, job_id, metric)
        if curves is None:
            return
    title = f"{curves.y_title} under {curves.sweep.corruption_title.lower()}"
    st.plotly_chart(degradation_curves(curves.points, curves.x_title, curves.y_title, html.escape(title)),
                    key="cmpr_chart")
    st.caption("Each point is a stored benchmark run on the corrupted copy of the set (ImageNet-C's corruptions "
               "and severities; Hendrycks & Dietterich, ICLR 2019). Area under the curve: the trapezoid rule over "
               "the levels divided by their range, so it reads as the curve's average height in the metric's unit.")
    st.dataframe(curves.areas, hide_index=True, key="cmpr_areas", column_config={
        c: st.column_config.NumberColumn(format="%.4g") for c in robustness.AREA_COLUMNS[1:]})
    export_buttons(curves.areas, f"robustness-{job_id}-{metric}-areas", "cmpr_areas_export")
    export_buttons(curves.points, f"robustness-{job_id}-{metric}-points", "cmpr_points_export")


SOURCES = ("Laid out like the tables of two texts this course reads, filled with this store's own numbers: "
           "methods with PSNR, SSIM and FID as in “Advanced Deep Learning Techniques for Image Processing and "
           "Analysis”; precision, recall and F1 per class (Table 2.5) and training, validation and test accuracy "
           "per optimizer (Table 2.3) as in “Applications of Deep Learning in Image Analysis” (chapter 2, "
           "A. K. Rai).")
TABLE_HEADERS = {
    "run_id": st.column_config.NumberColumn("run", format="%d"),
    "precision_pct": st.column_config.NumberColumn("precision (%)", format="%.1f"),
    "recall_pct": st.column_config.NumberColumn("recall (%)", format="%.1f"),
    "f1_pct": st.column_config.NumberColumn("F1 (%)", format="%.1f"),
}


def tables_view() -> None:
    """Methods, per-class and optimizer tables, laid out like the source texts' tables, with this store's numbers."""
    st.caption(SOURCES)
    which = pick("Table", ["method", "class", "speed", "optimizer"], "table", "cmpt_which",
                 format_func={"method": "Methods: PSNR, SSIM, FID", "class": "Per class: precision, recall, F1",
                              "speed": "Speed: images per second by device and batch size",
                              "optimizer": "Optimizers: training, validation, test accuracy"}.get)
    if which == "optimizer":
        sweep_view()
        return
    if which == "method":
        chosen = dataset_picker("cmpt", services.tasks_with_table("methods"))
        if chosen is None:
            return
        table = guarded(compare.method_table, *chosen)
        name = f"methods-{chosen[0]}"
    elif which == "speed":
        chosen = dataset_picker("cmpt")
        if chosen is None:
            return
        st.caption("Each method's quality from its newest run, and its throughput from the newest run at each "
                   "device and batch size. Benchmark the same models at batch size 1 and 32 (Benchmark page) to "
                   "see which keep up in real time; a GPU adds its own columns.")
        table = guarded(compare.speed_table, *chosen)
        name = f"speed-{chosen[0]}"
    else:
        board = board_picker("cmpt", services.tasks_with_table("class_table"))
        if board is None:
            return
        run_id = _run_picker(board, "cmpt_run")
        table = guarded(compare.class_table, run_id)
        name = f"classes-run-{run_id}"
    if table is not None:
        config = {**TABLE_HEADERS, **{c: st.column_config.NumberColumn(c, format="%.4g") for c in table.columns
                                      if c not in TABLE_HEADERS and c not in ("method", "class")}}
        st.dataframe(table, hide_index=True, key="cmpt_table", column_config=config)
        export_buttons(table, name, "cmpt_export")


JOB_HEADERS = {
    "test_run": st.column_config.LinkColumn("test run", display_text=r"run=(\d+)"),
    "best": st.column_config.NumberColumn("best value", format="%.4g"),
    "best_epoch": st.column_config.NumberColumn("best epoch"),
    "time_to_best_s": st.column_config.NumberColumn("time to best (s)", format="%.1f"),
    "epoch_time_s": st.column_config.NumberColumn("time per epoch (s)", format="%.1f"),
    "peak_mem_mb": st.column_config.NumberColumn("peak memory (MB)", format="%.0f"),
}


def sweep_view() -> None:
    sweep_ids = guarded(services.sweeps) or []
    if not sweep_ids:
        st.info("No sweep yet: launch one on the Fine-tune page (Sweep SGD / Adam / Adagrad).")
        return
    sweep = pick("Sweep", sweep_ids, "sweep", "cmp_sweep")
    table = guarded(services.sweep_table, sweep)
    if table is None or table.empty:
        return
    repeated = table["optimizer"].duplicated().any()
    if repeated:
        summary = guarded(services.sweep_summary, table)
        if summary is not None and not summary.empty:
            st.plotly_chart(sweep_summary_bars(summary), key="cmp_sweep_chart")
            st.caption("Each optimizer trained once per random start (seed), everything else equal. The interval is "
                       "the 95% Student-t interval of the mean over the repeats.")
            st.dataframe(summary, hide_index=True, key="cmp_sweep_summary", column_config={
                "mean": st.column_config.NumberColumn("mean accuracy", format="%.4f"),
                "std": st.column_config.NumberColumn("standard deviation", format="%.4f"),
                "ci_low": st.column_config.NumberColumn("95% interval low", format="%.4f"),
                "ci_high": st.column_config.NumberColumn("95% interval high", format="%.4f")})
            export_buttons(summary, f"sweep-{sweep}-summary", "cmp_sweep_summary_export")
    else:
        st.plotly_chart(sweep_bars(table), key="cmp_sweep_chart")
    st.dataframe(table, hide_index=True, key="cmp_sweep_table",
                 column_config={**JOB_HEADERS, **{c: st.column_config.NumberColumn(
                     c, format="%.3f", help="accuracy for classifiers, else the task's headline metric")
                     for c in ("train", "validation", "test")}})
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
    st.dataframe(rows, hide_index=True, key="cmp_jobs_table", column_config=JOB_HEADERS)
    export_buttons(rows, "training-jobs", "cmp_jobs_export")


def experiments_view() -> None:
    """A finished experiment's curve (mean and 95% interval over the repeats per arm), its table, and the paired gains."""
    done = guarded(experiments.finished_experiments) or []
    if not done:
        st.info("No experiment has finished yet: launch one on the Experiments page.")
        return
    jobs = {j.id: j for j in done}
    job_id = pick("Experiment", list(jobs), "job", "cmpx_job", format_func=lambda i: f"#{i} {jobs[i].title}")
    found = guarded(experiments.experiment_curve, job_id)
    if found is None:
        return
    curve, table, gains = found
    st.plotly_chart(experiment_curve(table, curve.arms, html.escape(curve.title), curve.x_label, curve.metric,
                                     curve.log_x), key="cmpx_chart")
    st.caption("Points: mean over the repeats; bars: 95% interval of the mean (Student t); no bar for a single run.")
    shown = table.rename(columns={"arm": "method", "x": curve.x_label, "mean": f"mean {curve.metric}",
                                  "std": "standard deviation", "n": "repeats", "ci_low": "95% interval from",
                                  "ci_high": "95% interval to"})
    st.dataframe(shown, hide_index=True, key="cmpx_table",
                 column_config={c: st.column_config.NumberColumn(c, format="%.2f") for c in shown.columns
                                if c not in ("method", "repeats")})
    export_buttons(shown, f"experiment-{job_id}", "cmpx_export")
    for g in gains:
        st.markdown(f"**{plain(g['comparison'].iloc[0])}**, paired by repeat (same random start and images for both)")
        for _, row in g.iterrows():
            verdict = ("better" if row["ci_low"] > 0 else "worse") if row["clear"] else \
                "not distinguishable from zero with these repeats"
            interval = "" if pd.isna(row["ci_low"]) else f" (95% interval {row['ci_low']:+.1f} to {row['ci_high']:+.1f})"
            st.text(f"{curve.x_label} {row['x']:g}: {row['difference']:+.1f} points{interval}, {int(row['n'])} repeats: "
                    f"{verdict}")
    for note in curve.notes:
        st.caption(plain(note))
