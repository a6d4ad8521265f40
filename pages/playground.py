"""Playground: run any registered model on your images and see output, timing and where it was stored."""
import streamlit as st

from ui import playground_panels as panels
from ui.state import device_picker, page_setup

page_setup()

TASKS = ["Classification", "Detection", "Segmentation", "Denoise", "Deblur", "Super-resolution", "Generation"]

st.title("Playground")
engine = device_picker()
task = st.segmented_control("Task", TASKS, default="Classification", key="task", required=True)
if engine is not None:
    if task == "Classification":
        panels.classification_panel(engine)
    elif task == "Detection":
        panels.detection_panel(engine)
    elif task == "Segmentation":
        panels.segmentation_panel(engine)
    elif task == "Generation":
        panels.generation_panel(engine)
    else:
        panels.restoration_panel(engine, task.lower())
