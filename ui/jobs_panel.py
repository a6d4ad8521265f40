"""The live list of background jobs: progress bars polled with st.fragment, cancel, logs, results."""
from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from core import services
from ui.state import guarded

POLL_S = 2
STATUS_ICON = {"queued": ":material/schedule:", "starting": ":material/rocket_launch:", "running": ":material/play_circle:",
               "done": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:"}


def _eta(job) -> str:
    if job.status != "running" or not job.started_at or job.progress <= 0.02:
        return ""
    elapsed = (datetime.now(timezone.utc) - job.started_at).total_seconds()
    left = elapsed * (1 - job.progress) / job.progress
    return f" · about {left:.0f} s left" if left < 120 else f" · about {left / 60:.0f} min left"


def _job_row(job, key: str) -> None:
    st.markdown(f"{STATUS_ICON.get(job.status, '')} **#{job.id}** {job.title}  \n"
                f"`{job.status}` on {job.device}{_eta(job)}")
    if job.active or job.status == "queued":
        st.progress(job.progress, text=job.message[:120] or job.status)
        if st.button("Cancel", key=f"{key}_cancel_{job.id}", icon=":material/stop:"):
            if guarded(services.cancel_job, job.id):
                st.toast(f"Job #{job.id} cancelled")
    elif job.status == "failed":
        st.error(job.message[:600])
    elif job.status == "done" and job.result.get("errors"):
        for model, err in job.result["errors"].items():
            st.warning(f"{model}: {err}")


@st.fragment(run_every=POLL_S)
def jobs_panel(kind: str, key: str = "jobs") -> None:
    jobs = guarded(services.list_jobs, kind, 15)
    if not jobs:
        st.caption("No jobs yet.")
        return
    for job in jobs:
        _job_row(job, key)
    finished = [j for j in jobs if j.status == "done"]
    if finished:
        chosen = st.selectbox("Results of job", finished, format_func=lambda j: f"#{j.id} {j.title}", key=f"{key}_pick")
        table = guarded(services.runs_table, None, None, True, 100, chosen.result.get("run_ids", []))
        if table is not None and not table.empty:
            table = table.assign(link=[f"/results?run={r}" for r in table["run_id"]])
            meta = {"run_id", "created_at", "task", "kind", "model", "weights", "dataset", "device", "dtype",
                    "code_version", "seed", "batch_size", "link"}
            shown = ["model", "weights", *[c for c in table.columns if c not in meta], "link"]
            st.dataframe(table[shown], hide_index=True, key=f"{key}_runs_{chosen.id}",
                         column_config={"link": st.column_config.LinkColumn("run", display_text=r"run=(\d+)")})
    with st.expander("Logs"):
        picked = st.selectbox("Job", jobs, format_func=lambda j: f"#{j.id} {j.title}", key=f"{key}_log_pick")
        st.code(guarded(services.job_logs, picked.id) or "(empty)", language=None)
