"""Results: every stored run, filterable; models compared on one dataset under one convention at a time
(benchmarks apart from Playground runs); a run's metrics and provenance."""
import streamlit as st

from core import services
from core.eval_charts import model_bars
from core.services import compare, results
from core.wording import count
from ui.identity import current_user
from ui.leaderboard_views import runs_config, table_config
from ui.state import guarded, page_setup
from ui.text import plain
from ui.url_state import export_buttons

page_setup()

KIND_NAMES = {"benchmark": "Benchmarks", "playground": "Playground runs"}

st.title("Results")
c1, c2, c3 = st.columns([1, 2, 1])
task = c1.selectbox("Task", ["all", *services.task_names()], key="res_task")
task_filter = None if task == "all" else task
models = c2.multiselect("Models", guarded(services.model_names, task_filter) or [], key="res_models")
include_untrained = c3.checkbox("Include untrained models", value=True, key="res_untrained")

runs = guarded(results.runs_view, task_filter, models, include_untrained)
if runs is None:
    st.stop()
if runs.empty:
    st.info("No runs stored yet. Run a model in the Playground and it appears here.")
    st.stop()
st.caption(f"{len(runs)} most recent runs (newest first).")
st.dataframe(runs, hide_index=True, key="runs_table", column_config=runs_config(results.metric_columns(runs)))
export_buttons(runs, "runs", "res_runs_export")

st.subheader("Compare models")
st.caption("One dataset, one metric under one convention at a time, each model's newest run. Benchmark runs score "
           "a whole dataset; Playground runs score the one input you gave them, so they are not benchmark results "
           "and are compared only with Playground runs on the same input.")
benchmarks = guarded(results.comparison_datasets, "benchmark", task_filter)
k1, k2, k3 = st.columns([1, 3, 2])
kind = k1.radio("Runs", list(KIND_NAMES), format_func=KIND_NAMES.get, key="res_kind",
                index=0 if benchmarks is not None and not benchmarks.empty else 1)
places = benchmarks if kind == "benchmark" else guarded(results.comparison_datasets, kind, task_filter)
if places is None or places.empty:
    st.info("No benchmark stored yet for this task: run one on the Benchmark page." if kind == "benchmark" else
            "No Playground run stored yet for this task.")
else:
    # options are (task, dataset) pairs, so a kept choice still names the same data when the list changes
    where = {(t, d): (title, n) for t, d, title, n in places[["task", "dataset", "title", "runs"]].itertuples(index=False)}
    chosen = k2.selectbox("Dataset" if kind == "benchmark" else "Input", list(where), key=f"res_dataset_{kind}",
                          format_func=lambda p: f"{where[p][0]} ({p[0]}, {count(int(where[p][1]), 'run')})")
    comparison = guarded(results.compare_models, kind, *chosen, models, include_untrained)
    if comparison is not None and not comparison.table.empty and comparison.columns:
        columns = compare.ordered(comparison.columns)
        metric = k3.selectbox("Metric", [c.label for c in columns], key="res_metric",
                              format_func=lambda label: comparison.column(label).header)
        col = comparison.column(metric)
        title = results.chart_title(comparison, col)
        st.plotly_chart(model_bars(comparison.table, metric, col.header, title, col.higher_is_better), key="metric_chart")
        summary = comparison.table[["model", *[c.label for c in columns], "weights", "runs", "run_id"]]
        st.dataframe(summary, hide_index=True, key="metric_summary", column_config=table_config(comparison.columns))
        export_buttons(summary, f"models-{kind}-{task}", "res_compare_export")
    elif comparison is not None:
        st.info("None of the chosen models has a run here.")

st.subheader("Run details")
requested = st.query_params.get("run")
ids = runs["run_id"].tolist()
run_id = st.selectbox("Run", ids, key="res_run_id")
# a link's ?run= is anything a user typed: refused with its reason (guarded), then the chosen run is shown
detail = guarded(services.run_detail, requested) if requested is not None else None
if detail is None:
    detail = guarded(services.run_detail, run_id)
if detail is not None:
    st.markdown(f"**Run #{detail.run_id}** · {plain(detail.model)} "
                f"({'untrained (random)' if detail.weights_status == 'random' else detail.weights_status}) on "
                f"{plain(results.dataset_title(detail.dataset, detail.dataset_title))}")
    left, right = st.columns(2)
    left.dataframe(results.detail_metrics(detail), hide_index=True, key="detail_metrics",
                   column_config={"metric": st.column_config.TextColumn("metric", width="medium"),
                                  "value": st.column_config.NumberColumn("value", format="%.4g"),
                                  "convention": st.column_config.TextColumn("how it was computed", width="large")})
    if not detail.image_metrics.empty:
        left.dataframe(detail.image_metrics, hide_index=True, key="detail_images")
    right.caption(plain(results.weights_words(detail)))
    right.json(results.provenance(detail), expanded=False)
    if services.may_delete_run(detail, current_user()):
        if right.button(f"Delete run #{detail.run_id}", key="res_delete", icon=":material/delete:"):
            st.session_state["res_confirm"] = detail.run_id
        if st.session_state.get("res_confirm") == detail.run_id:
            right.warning(f"Delete run #{detail.run_id} with its per-image values? This cannot be undone.")
            if right.button("Yes, delete it", key="res_delete_yes", type="primary"):
                st.session_state.pop("res_confirm", None)
                if guarded(services.delete_runs, [detail.run_id], current_user()):
                    st.query_params.pop("run", None)
                    st.rerun()
