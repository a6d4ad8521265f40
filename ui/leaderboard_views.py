"""Pieces of the Leaderboard page: column headers with their conventions, and the live reproduction verdict."""
from __future__ import annotations

import streamlit as st

from core.services import reproduce
from core.services.compare import Column, short_convention
from ui.state import guarded

POLL_S = 2


def table_config(columns: list[Column]) -> dict:
    config = {c.label: st.column_config.NumberColumn(c.header, help=short_convention(c.convention) or None,
                                                     format="%.4g") for c in columns}
    config.update({
        "rank": st.column_config.NumberColumn("#", width="small"),
        "num_params": st.column_config.NumberColumn("parameters", format="compact"),
        "created_at": st.column_config.DatetimeColumn("run at", format="YYYY-MM-DD HH:mm"),
        "run": st.column_config.LinkColumn("run", display_text=r"run=(\d+)"),
    })
    return config


@st.fragment(run_every=POLL_S)
def reproduction_panel(run_id: int) -> None:
    state = guarded(reproduce.reproduction, run_id)
    if state is None or state.job is None:
        return
    job = state.job
    if state.new_run_id is None:
        if job.status in ("failed", "cancelled"):
            st.error(f"Reproduction job #{job.id} {job.status}: {job.message[:300]}")
        else:
            st.progress(job.progress, text=f"Reproduction job #{job.id}: {job.message[:100] or job.status}")
        return
    verdict = state.verdict
    text = f"Run #{run_id} reproduced as run #{state.new_run_id} (job #{job.id}): **{verdict}**."
    if state.weights_changed:
        text += " The model's weights changed since the stored run, so differences are expected."
    (st.success if verdict == "numbers match" else st.warning)(text)
    st.dataframe(state.table, hide_index=True, key=f"lb_repro_{run_id}",
                 column_config={"match": st.column_config.CheckboxColumn("match (quality only)")})
