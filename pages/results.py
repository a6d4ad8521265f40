"""Results: every stored run, filterable, with a chart of any metric per model and a run's provenance."""
import streamlit as st

from core import services
from core.charts import metric_bar
from core.errors import LabError
from core.models.registry import TASKS
from ui.state import guarded

st.title("Results")
c1, c2, c3 = st.columns([1, 2, 1])
task = c1.selectbox("Task", ["all", *TASKS], key="res_task")
task_filter = None if task == "all" else task
models = c2.multiselect("Models", guarded(services.model_names, task_filter) or [], key="res_models")
include_untrained = c3.checkbox("Include untrained models", value=True, key="res_untrained")

runs = guarded(services.runs_table, task_filter, models, include_untrained)
if runs is None:
    st.stop()
if runs.empty:
    st.info("No runs stored yet. Run a model in the Playground and it appears here.")
    st.stop()

runs = runs.assign(weights=runs["weights"].map(lambda w: "untrained (random)" if w == "random" else w))
st.caption(f"{len(runs)} most recent runs (newest first).")
st.dataframe(runs, hide_index=True, key="runs_table",
             column_config={"created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss")})

st.subheader("Compare models")
metrics = guarded(services.metric_names, task_filter) or []
if metrics:
    default = metrics.index("psnr") if "psnr" in metrics else 0
    metric = st.selectbox("Metric", metrics, index=default, key="res_metric")
    summary = guarded(services.metric_by_model, metric, task_filter, models, include_untrained)
    if summary is not None and not summary.empty:
        st.plotly_chart(metric_bar(summary, metric), key="metric_chart")
        st.dataframe(summary, hide_index=True, key="metric_summary")

st.subheader("Run details")
requested = st.query_params.get("run")
ids = runs["run_id"].tolist()
run_id = st.selectbox("Run", ids, key="res_run_id")
if requested is not None:
    try:
        detail = services.run_detail(requested)
    except LabError as exc:
        st.error(str(exc))
        detail = guarded(services.run_detail, run_id)
else:
    detail = guarded(services.run_detail, run_id)
if detail:
    st.markdown(f"**Run #{detail['run_id']}** · {detail['model']} ({detail['weights_status']}) on "
                f"`{detail['dataset']}`")
    left, right = st.columns(2)
    left.dataframe(detail["metrics"], hide_index=True, key="detail_metrics")
    if not detail["image_metrics"].empty:
        left.dataframe(detail["image_metrics"], hide_index=True, key="detail_images")
    right.json({k: detail[k] for k in ("weights_hash", "weights_origin", "num_params", "dataset_hash", "device",
                                       "dtype", "batch_size", "seed", "code_version", "versions", "params",
                                       "outputs")}, expanded=False)
