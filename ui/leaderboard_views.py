"""Pieces of the Leaderboard and Results pages: table headers with units and their conventions as tooltips, and
the reproduction verdict (read from the store, so it survives a reload)."""
from __future__ import annotations

import streamlit as st

from core.metrics import registry as metric_registry
from core.services import reproduce
from core.services.compare import Column, short_convention
from ui.state import guarded
from ui.text import plain

POLL_S = 2
_ARROW = {True: " ↑", False: " ↓", None: ""}

# Columns every table of runs may carry, with readable headers; widths keep "parameter-free" whole.
COMMON = {
    "rank": st.column_config.NumberColumn("#", width="small"),
    "run_id": st.column_config.NumberColumn("run", format="%d", width="small"),
    "model": st.column_config.TextColumn("model", width="medium"),
    "weights": st.column_config.TextColumn("weights", width="medium",
                                           help="pretrained, trained by this project, parameter-free (a classical "
                                                "method) or untrained (random: its numbers mean nothing)"),
    "dataset": st.column_config.TextColumn("dataset", width="large"),
    "num_params": st.column_config.NumberColumn("parameters", format="compact",
                                                help="learned parameters; parameter-free methods have 0"),
    "runs": st.column_config.NumberColumn("runs", help="runs of this model on this data; the row is the newest"),
    "created_at": st.column_config.DatetimeColumn("run at", format="YYYY-MM-DD HH:mm"),
    "owner": st.column_config.TextColumn("by", help="who ran it (a job's runs: who launched the job); empty for "
                                                    "runs stored before the app recorded users"),
    "batch_size": st.column_config.NumberColumn("batch size"),
    "code_version": st.column_config.TextColumn("code version"),
    "run": st.column_config.LinkColumn("run", display_text=r"run=(\d+)"),
}


def table_config(columns: list[Column]) -> dict:
    """Leaderboard columns: metric headers with units and arrows, the convention of each as its tooltip."""
    config = dict(COMMON)
    config.update({c.label: st.column_config.NumberColumn(c.header, format="%.4g",
                                                          help=short_convention(c.convention) or "no convention stored")
                   for c in columns})
    return config


def runs_config(metrics: list[str]) -> dict:
    """Results table: metric columns named with units; conventions differ per run, so Run details states them."""
    config = dict(COMMON)
    for name in metrics:
        higher = metric_registry.higher_is_better(name)
        better = {True: "higher is better", False: "lower is better"}.get(higher, "")
        config[name] = st.column_config.NumberColumn(
            metric_registry.title(name) + _ARROW[higher], format="%.4g",
            help=f"{better}; how each run computed it (convention) is in Run details below".lstrip("; "))
    return config


@st.fragment(run_every=POLL_S)
def reproduction_panel(run_ids: tuple[int, ...]) -> None:
    """The newest reproduction of each run, or of the run a run reproduced, each shown once."""
    seen = set()
    for run_id in run_ids:
        state = guarded(reproduce.reproduction_for, run_id)
        if state is None or state.job is None or state.job.id in seen:
            continue
        seen.add(state.job.id)
        _verdict(state)


def _verdict(state: reproduce.Reproduction) -> None:
    job = state.job
    if state.new_run_id is None:
        if job.status in ("failed", "cancelled"):
            st.error(f"Reproduction job #{job.id} {job.status}: {plain(job.message, 300)}")
        else:
            st.progress(job.progress, text=f"Reproduction job #{job.id}: {plain(job.message or job.status, 100)}")
        return
    verdict = state.verdict
    text = f"Run #{state.run_id} reproduced as run #{state.new_run_id} (job #{job.id}): **{verdict}**."
    if state.weights_changed:
        text += " The model's weights changed since the stored run, so differences are expected."
    (st.success if verdict == "numbers match" else st.warning)(text)
    st.dataframe(state.table, hide_index=True, key=f"lb_repro_{state.run_id}",
                 column_config={"match": st.column_config.CheckboxColumn("match (quality only)"),
                                "abs_diff": st.column_config.NumberColumn("difference", format="%.3g")})
