"""The live list of background jobs: progress bars polled with st.fragment, cancel, logs, results; and the live
word on the job a page just launched."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core import services
from core.jobs import eta
from core.services.results import metric_columns
from core.services.training import training_outcome
from ui.leaderboard_views import runs_config
from ui.identity import current_user
from ui.state import guarded
from ui.text import plain

POLL_S = 2
STATUS_ICON = {"queued": ":material/schedule:", "starting": ":material/rocket_launch:", "running": ":material/play_circle:",
               "done": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:"}
STARTING = "starting a worker process (loading PyTorch)"


def _clock() -> float:
    return time.monotonic()


def _progress_text(job) -> str:
    """What the job is doing now, in words (the bar's label)."""
    if job.status == "queued":
        return f"waiting for the jobs before it on {job.device} to finish"
    if job.status == "starting" or job.message in ("", "starting"):
        return STARTING
    if job.message == "running":  # the worker started and is loading the job's code
        return "loading PyTorch and the job's code"
    return job.message


def _eta(job) -> str:
    """Time left from the progress this session watched (core.jobs.eta), '' while there is no fair estimate."""
    tracks = st.session_state.setdefault("_job_eta_tracks", {})
    if job.status != "running":
        tracks.pop(job.id, None)
        return ""
    now = _clock()
    tracks[job.id] = eta.observe(tracks.get(job.id), now, job.progress)
    words = eta.describe(tracks[job.id], now, job.progress)
    return f" · {words}" if words else ""


def _job_row(job, key: str) -> None:
    by = f" · by {plain(job.owner)}" if job.owner else ""
    st.markdown(f"{STATUS_ICON.get(job.status, '')} **#{job.id}** {plain(job.title)}  \n"
                f"`{job.status}` on {plain(job.device)}{by}{_eta(job)}")
    if job.active or job.status == "queued":
        st.progress(job.progress, text=plain(_progress_text(job), 120))
        user = current_user()
        if services.may_manage_job(job, user) and st.button("Cancel", key=f"{key}_cancel_{job.id}", icon=":material/stop:"):
            if guarded(services.cancel_job, job.id, user):
                st.toast(f"Job #{job.id} cancelled")
    elif job.status == "failed":
        st.error(plain(job.message, 600))
    elif job.status == "done" and job.result.get("errors"):
        for model, err in job.result["errors"].items():
            st.warning(plain(f"{model}: {err}"))


def run_ids(result: dict) -> list[int]:
    """The runs a job stored: a benchmark keeps `run_ids`, a training job the `run_id` of its test benchmark."""
    ids = list(result.get("run_ids") or [])
    if not ids and result.get("run_id") is not None:
        ids = [result["run_id"]]
    return [int(r) for r in ids]


def _runs_table(job, key: str) -> None:
    table = guarded(services.runs_table, None, None, True, 100, run_ids(job.result))
    if table is not None and not table.empty:
        table = table.assign(link=[f"/results?run={r}" for r in table["run_id"]],
                             weights=table["weights"].replace({"random": "untrained (random)"}))
        metrics = [c for c in metric_columns(table) if c != "link"]
        shown = ["model", "weights", *metrics, "link"]
        st.dataframe(table[shown], hide_index=True, key=f"{key}_runs_{job.id}",
                     column_config={**runs_config(metrics),
                                    "link": st.column_config.LinkColumn("run", display_text=r"run=(\d+)")})


def _training_result(job, key: str) -> None:
    """The model a training job registered, its held-out test scores and links to the test run and to Compare."""
    out = training_outcome(job.id, job.result)
    if out.model:
        st.markdown(f"Trained model: **{plain(out.model)}** (now listed on the Models, Playground and Benchmark pages)")
    if out.best:
        st.caption(plain(out.best))
    if out.scores:
        st.table(pd.DataFrame(out.scores, columns=["held-out test score", "value"]), hide_index=True)
    elif out.test_error:
        st.warning("The held-out test did not run: " + plain(out.test_error, 400))
    if out.test_run is not None:
        st.page_link("pages/results.py", label=f"Test run #{out.test_run}", icon=":material/table_view:",
                     query_params={"run": out.test_run})
    st.page_link("pages/compare.py", label=f"Compare job #{job.id} with other training jobs",
                 icon=":material/compare_arrows:", query_params={"view": "jobs", "jobs": job.id})


@st.fragment(run_every=POLL_S)
def jobs_panel(kind: str, key: str = "jobs") -> None:
    jobs = guarded(services.list_jobs, kind, 15)
    if not jobs:
        st.caption("No jobs yet.")
        return
    for job in jobs:
        _job_row(job, key)
    finished = {j.id: j for j in jobs if j.status == "done"}
    if finished:
        chosen = finished[st.selectbox("Results of job", list(finished), key=f"{key}_pick",
                                       format_func=lambda i: f"#{i} {finished[i].title}")]
        if chosen.kind == "train":
            _training_result(chosen, key)
        elif chosen.kind in services.EXPERIMENT_KINDS:
            st.page_link("pages/compare.py", label=f"Curve of experiment #{chosen.id}", icon=":material/show_chart:",
                         query_params={"view": "experiments", "job": chosen.id})
        elif chosen.kind == "robustness":
            st.page_link("pages/compare.py", label=f"Degradation curves of sweep #{chosen.id}",
                         icon=":material/show_chart:", query_params={"view": "robustness", "job": chosen.id})
        else:
            _runs_table(chosen, key)
    user = current_user()
    readable = {j.id: j for j in jobs if services.may_manage_job(j, user)}  # a log is its owner's (or an admin's)
    if readable:
        with st.expander("Logs of your jobs" if not user.admin else "Logs"):
            picked = st.selectbox("Job", list(readable), format_func=lambda i: f"#{i} {readable[i].title}",
                                  key=f"{key}_log_pick")
            st.code(guarded(services.job_logs, picked, user) or "(empty)", language=None)


# -- the job a page just launched ---------------------------------------------------------------------------
def remember_launch(key: str, job_ids: list[int]) -> None:
    """Keep the ids of the jobs a Launch click queued, so `launch_status` follows them."""
    st.session_state[f"{key}_launched"] = [int(i) for i in job_ids]


def _launch_line(job) -> None:
    name = f"Job #{job.id}"
    if job.status == "queued":
        st.success(f"{name} queued. It starts when the jobs before it on {plain(job.device)} have finished.")
    elif job.status == "starting":
        st.success(f"{name} queued. Its worker is starting (loading PyTorch).")
    elif job.status == "running":
        st.success(f"{name} is running ({job.progress:.0%}): {plain(_progress_text(job), 120)}")
    elif job.status == "done":
        model = job.result.get("model") if job.kind == "train" else None
        st.success(f"{name} finished" + (f": model **{plain(model)}** is registered." if model else "."))
    elif job.status == "failed":
        st.error(f"{name} failed: {plain(job.message, 400)}")
    else:
        st.warning(f"{name} was cancelled.")


@st.fragment(run_every=POLL_S)
def launch_status(key: str) -> None:
    """The live state of the last launched job(s), never a stale 'queued'."""
    for job_id in st.session_state.get(f"{key}_launched", []):
        job = guarded(services.job_status, job_id)
        if job is not None:
            _launch_line(job)
