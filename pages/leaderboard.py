"""Leaderboard: one table per task and dataset (the newest benchmark run of each model), headline metric first,
conventions as column tooltips, untrained models marked, links to the runs, and a reproduce action that re-runs one
with its stored parameters and says whether the numbers match (the verdict is read back from the store).
?task=&dataset= in the URL."""
import streamlit as st

from core.services import compare, paired, reproduce
from ui.compare_views import dataset_picker, paired_section
from ui.identity import current_user
from ui.leaderboard_views import reproduction_panel, table_config
from ui.state import guarded, page_setup
from ui.text import plain
from ui.url_state import export_buttons, keep_only

page_setup()

st.title("Leaderboard")
keep_only(("task", "dataset", "ref"))
chosen = dataset_picker("lb", empty="No benchmark stored yet: run one on the Benchmark page and it is ranked here.")
if chosen is None:
    st.stop()
task, dataset = chosen
f1, f2 = st.columns([3, 1])
text = f1.text_input("Filter models", key="lb_filter", placeholder="part of a model name")
include_untrained = f2.toggle("Show untrained models", value=True, key="lb_untrained")

board = guarded(compare.leaderboard, task, dataset, include_untrained)
if board is None:
    st.stop()
table = board.table
if text:
    table = table[table["model"].str.contains(text, case=False, regex=False)]
columns = compare.ordered(board.columns)
primary = compare.primary_metric(board.columns)
st.subheader(f"{task} · {plain(board.title)}")
quality = [c for c in columns if c.metric not in compare.TIMING]
timing = [c for c in columns if c.metric in compare.TIMING]
st.markdown("  \n".join(f"**{c.header}** — {compare.short_convention(c.convention) or 'no convention stored'}"
                        for c in quality))
if timing:
    words = compare.short_convention(timing[0].convention) or "timing: no convention stored"
    st.caption(words[:1].upper() + words[1:])
if primary is not None:
    st.caption(f"Ranked by {primary.header}; one row per model and weights (its newest run on this dataset). "
               "Point at a column header for how it was computed; click it to sort.")

shown = table.assign(rank=range(1, len(table) + 1),
                     model=[m + ("  ⚠ untrained" if u else "") for m, u in zip(table["model"], table["untrained"])],
                     run=[f"/results?run={r}" for r in table["run_id"]])
order = ["rank", "model", *[c.label for c in columns], "num_params", "weights", "runs", "device", "created_at", "run"]
st.dataframe(shown[order], hide_index=True, key="lb_table", column_config=table_config(board.columns))
export_buttons(shown[order].drop(columns=["run"]).assign(run_id=table["run_id"].to_numpy()),
               f"leaderboard-{task}", "lb_export")

metric = guarded(paired.default_metric, board)
if metric:
    paired_section(board, metric, "lb")

st.subheader("Reproduce a run")
st.caption("Re-runs the model on the same dataset spec with the stored parameters, as a background job, and "
           "compares every quality metric (to 1e-6 relative); timing is shown but never decides.")
labels = dict(zip(table["run_id"], table["model"]))
if labels:
    run_id = st.selectbox("Run", list(labels), key="lb_reproduce_run", format_func=lambda r: f"#{r} {labels[r]}")
    if st.button("Reproduce", key="lb_reproduce", icon=":material/replay:"):
        job_id = guarded(reproduce.reproduce, run_id, None, current_user())
        if job_id:
            st.success(f"Reproduction of run #{run_id} queued as job #{job_id}.")
            st.session_state["lb_reproducing"] = (task, dataset, run_id)
    # once done, the reproduction is the model's newest run: keep the asked run's verdict, on its own dataset only
    asked = st.session_state.get("lb_reproducing")
    extra = [asked[2]] if asked is not None and asked[:2] == (task, dataset) else []
    reproduction_panel(tuple(dict.fromkeys(int(r) for r in [run_id, *extra])))
