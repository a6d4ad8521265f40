"""Compare: methods side by side from the results store. Every view keeps its selection in the URL
(?view=...&task=...&dataset=...), so a copied link reproduces it for a teammate."""
import streamlit as st

from ui.compare_views import (classes_view, cost_view, experiments_view, jobs_view, metrics_view, operating_view,
                              robustness_view, sweep_view, tables_view)
from ui.image_viewer import images_view
from ui.state import page_setup
from ui.url_state import keep_only, pick

page_setup()

VIEWS = {
    "metrics": ("Metrics per model", metrics_view, ("task", "dataset", "metrics", "models", "spread", "plot", "ref")),
    "cost": ("Quality vs cost", cost_view, ("task", "dataset", "y", "x")),
    "classes": ("Per class, PR, confusion", classes_view, ("task", "dataset", "run")),
    "operating": ("Detection operating point: any IoU and score threshold", operating_view,
                  ("task", "dataset", "run", "iou", "score")),
    "robustness": ("Robustness: metric against corruption level", robustness_view, ("job", "metric")),
    "images": ("Images", images_view, ("task", "dataset", "runs", "rank_by", "order", "image")),
    "tables": ("Reference tables: methods, per class, optimizers", tables_view, ("table", "task", "dataset", "run", "sweep")),
    "jobs": ("Training jobs", jobs_view, ("jobs",)),
    "sweep": ("Optimizer sweep", sweep_view, ("sweep",)),
    "experiments": ("Experiments: label efficiency, generated data", experiments_view, ("job",)),
}

st.title("Compare")
if "view" not in st.query_params:  # links of the first Compare page: ?sweep=<id> or ?jobs=3,4
    st.query_params["view"] = "jobs" if "jobs" in st.query_params else "sweep" if "sweep" in st.query_params else "metrics"
view = pick("View", list(VIEWS), "view", "cmp_view", format_func=lambda v: VIEWS[v][0])
title, draw, params = VIEWS[view]
keep_only(("view", *params))
st.subheader(title)
draw()
