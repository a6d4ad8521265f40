"""Compare view: one dataset image through several runs' models side by side, a before/after slider, zoom, a
difference map, and the worst/best images of a run by a per-image metric (?runs=&image=)."""
from __future__ import annotations

import streamlit as st

from core.services import compare, viewer
from core.tasks import restoration
from ui.compare_views import board_picker
from ui.state import get_engine, guarded
from ui.text import plain
from ui.url_state import export_buttons, pick, pick_many


@st.cache_data(max_entries=8, show_spinner="Running the models on this image…")
def _view(run_ids: tuple[int, ...], key: str, device: str) -> viewer.ImageView:
    return viewer.view_image(get_engine(device), list(run_ids), key)


def _order(board, run_id: int) -> tuple[list[str], str]:
    """The reference run's images, worst first / best first / dataset order by its per-image metric."""
    metrics = guarded(compare.image_metrics_of, board) or []
    metric = pick("Rank images by", metrics, "rank_by", "cmpi_rank_by") if metrics else None
    order = pick("Order", ["worst first", "best first", "dataset order"], "order", "cmpi_order")
    if metric is None or order == "dataset order":
        return guarded(viewer.image_keys, run_id) or [], ""
    ranked = guarded(compare.extremes, run_id, metric, 10_000, order == "worst first")
    if ranked is None or ranked.empty:
        return [], metric
    export_buttons(ranked.head(20), f"{order.split()[0]}-images-run-{run_id}", "cmpi_rank_export")
    return ranked["image"].tolist(), metric


def images_view() -> None:
    board = board_picker("cmpi", viewer.viewable())
    if board is None:
        return
    labels = dict(zip(board.table["run_id"].astype(int), board.table["model"]))
    runs = pick_many("Runs (one per model)", list(labels), "runs", "cmpi_runs", default=list(labels)[:3],
                     format_func=lambda r: f"#{r} {labels[r]}", limit=6)
    if not runs:
        return
    c1, c2, c3 = st.columns([2, 2, 3])
    with c1:
        keys, metric = _order(board, runs[0])
    if not keys:
        st.info("The first run stored no per-image values to list its images by.")
        return
    with c3:
        key = pick("Image" + (f" (by {metric} of run #{runs[0]})" if metric else ""), keys, "image", "cmpi_image")
    view = guarded(_view, tuple(runs), key, st.session_state.get("device", "auto")) if key else None
    if view is None:
        return
    for run_id, err in view.errors.items():
        st.warning(f"Run #{run_id}: {plain(err)}")
    panels = [("input", view.input)] + ([("clean", view.target)] if view.target is not None else [])
    panels += [(o.label, o.image) for o in view.outputs]
    zoom_col, cx_col, cy_col = st.columns(3)
    factor = zoom_col.select_slider("Zoom", [1, 2, 4, 8], value=1, key="cmpi_zoom")
    cx = cx_col.slider("Zoom centre x", 0.0, 1.0, 0.5, key="cmpi_cx", disabled=factor == 1)
    cy = cy_col.slider("Zoom centre y", 0.0, 1.0, 0.5, key="cmpi_cy", disabled=factor == 1)
    reference = panels[-1][1]
    cols = st.columns(len(panels))
    for col, (name, img) in zip(cols, panels):
        caption = plain(name)
        for o in view.outputs:
            if o.label == name and o.value is not None:
                stored = f" (stored {o.stored:.4g})" if o.stored is not None else ""
                caption += f": {o.value_label} {o.value:.4g}{stored}" + (f" · {plain(o.note)}" if o.note else "")
        col.image(restoration.zoom(restoration.same_size(img, reference), cx, cy, factor), caption=caption, width="stretch")

    st.subheader("Before / after")
    names = [n for n, _ in panels]
    by_name = dict(panels)
    b1, b2, b3 = st.columns([2, 2, 3])
    left = b1.selectbox("Left", names, index=0, key="cmpi_left")
    right = b2.selectbox("Right", names, index=len(names) - 1, key="cmpi_right")
    split = b3.slider("Split", 0, 100, 50, key="cmpi_split")
    after = by_name[right]
    before = restoration.same_size(by_name[left], after)
    if before.shape == after.shape:
        st.image(restoration.zoom(restoration.before_after(before, after, split / 100), cx, cy, factor),
                 caption=f"{plain(left)} | {plain(right)}", width="stretch")
        base = view.target if view.target is not None else before
        base = restoration.same_size(base, after)
        what = "clean" if view.target is not None else left
        st.plotly_chart(restoration.error_figure(restoration.zoom(restoration.error_map(after, base), cx, cy, factor),
                                                 f"|{right} − {what}| (0-255)"), key="cmpi_error", theme=None)
