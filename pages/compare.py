"""Compare: training jobs side by side (curves overlaid, results table) and the optimizer sweep as the seeds'
table. The selection lives in the URL (?jobs=3,4,5 or ?sweep=<id>) so a link reproduces the view."""
import streamlit as st

from core import services
from core.charts import sweep_bars, training_curves
from ui.state import guarded

st.title("Compare")

jobs = [j for j in (guarded(services.list_jobs, "train", 200) or []) if j.status == "done"]
sweep_ids = guarded(services.sweeps) or []
view = st.radio("View", ["Optimizer sweep", "Training jobs"], horizontal=True, key="cmp_view",
                index=1 if "jobs" in st.query_params and "sweep" not in st.query_params else 0)

if view == "Optimizer sweep":
    if not sweep_ids:
        st.info("No sweep yet: launch one on the Fine-tune page (Sweep SGD / Adam / Adagrad).")
        st.stop()
    wanted = st.query_params.get("sweep")
    if wanted is not None and wanted not in sweep_ids:
        st.error("The sweep in this link is not in the store.")
    sweep = st.selectbox("Sweep", sweep_ids, key="cmp_sweep",
                         index=sweep_ids.index(wanted) if wanted in sweep_ids else 0)
    st.query_params.update({"sweep": sweep})
    st.query_params.pop("jobs", None)
    table = guarded(services.sweep_table, sweep)
    if table is not None and not table.empty:
        st.plotly_chart(sweep_bars(table), key="cmp_sweep_chart")
        st.dataframe(table, hide_index=True, key="cmp_sweep_table",
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("train", "validation", "test")})
        st.download_button("Download CSV", table.to_csv(index=False), f"sweep-{sweep}.csv", "text/csv", key="cmp_sweep_csv")
        points = guarded(services.curves, table["job"].tolist())
        if points is not None and not points.empty:
            labels = {int(j): f"#{j} {o}" for j, o in zip(table["job"], table["optimizer"])}
            st.plotly_chart(training_curves(points, ["train_loss", "val_accuracy"], labels), key="cmp_sweep_curves")
else:
    if not jobs:
        st.info("No finished training job yet: launch one on the Fine-tune page.")
        st.stop()
    by_id = {j.id: j for j in jobs}
    raw = st.query_params.get("jobs", "")
    requested = [int(x) for x in raw.split(",") if x.strip().isdigit() and int(x) in by_id][:12]
    if raw and not requested:
        st.error("None of the jobs in this link is in the store.")
    picked = st.multiselect("Jobs", list(by_id), default=requested or list(by_id)[:3], key="cmp_jobs",
                            format_func=lambda i: f"#{i} {by_id[i].title}")
    st.query_params.update({"jobs": ",".join(map(str, picked))})
    st.query_params.pop("sweep", None)
    if picked:
        points = guarded(services.curves, picked)
        if points is not None and not points.empty:
            names = sorted(points["name"].unique())
            shown = st.multiselect("Curves", names, key="cmp_curve_names",
                                   default=[n for n in names if n.endswith("loss") or n.startswith(("val_", "fd_", "fid"))])
            labels = {i: f"#{i} {by_id[i].params['config']['base']}" for i in picked}
            st.plotly_chart(training_curves(points, shown, labels), key="cmp_job_curves")
        rows = [{"job": i, "model": by_id[i].result.get("model"), "base": by_id[i].params["config"]["base"],
                 "optimizer": by_id[i].params["config"]["optimizer"], "metric": by_id[i].result.get("metric"),
                 "best": by_id[i].result.get("best_value"), "best_epoch": by_id[i].result.get("best_epoch"),
                 "time_to_best_s": by_id[i].result.get("time_to_best_s"),
                 "epoch_time_s": by_id[i].result.get("epoch_time_s"), "peak_mem_mb": by_id[i].result.get("peak_mem_mb"),
                 "test_run": f"/results?run={by_id[i].result['run_id']}" if by_id[i].result.get("run_id") else None}
                for i in picked]
        st.dataframe(rows, hide_index=True, key="cmp_jobs_table",
                     column_config={"test_run": st.column_config.LinkColumn("test run", display_text=r"run=(\d+)")})
