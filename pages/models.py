"""Models: the registry with each model's weights status, and checkpoint upload."""
import streamlit as st

from core import services
from ui.state import guarded, page_setup
from ui.text import plain

page_setup()

st.title("Models")
infos = services.list_model_infos()
task = st.segmented_control("Task", ["all", "classification", "detection", "segmentation", "restoration", "generation"],
                            default="all", key="models_task", required=True)
rows = [{"name": i.name, "task": i.task, "kind": i.operation or "", "source": i.source,
         "weights": {"missing": "missing → untrained only"}.get(i.weights_status, i.weights_status),
         "license": i.license or "", "detail": i.weights_detail} for i in infos if task == "all" or i.task == task]
st.caption(f"{len(rows)} models. Missing weights: upload a checkpoint below (it is added as a new model), or "
           "ask whoever runs the server to put the file named in the detail column in place.")
st.dataframe(rows, hide_index=True, key="models_table")

st.subheader("Add a checkpoint")
st.caption("A .safetensors file, or a .pt/.pth holding a plain state dict (read with weights_only=True), "
           "for one of the architectures below. It is checked key by key before anything is saved.")
bases = services.checkpoint_bases()
base = st.selectbox("Architecture", bases, format_func=lambda i: f"{i.name} ({i.task})", key="ckpt_base")
name = st.text_input("New model name", key="ckpt_name", help="3-60 characters: a-z, 0-9, '_' or '-'.")
file = st.file_uploader("Checkpoint", type=["safetensors", "pt", "pth", "bin"], key="ckpt_file",
                        max_upload_size=min(services.checkpoint_upload_mb(), st.get_option("server.maxUploadSize")))
if st.button("Add model", type="primary", key="ckpt_add"):
    if file is None:
        st.info("Choose a checkpoint file first.")
    else:
        added = guarded(services.add_checkpoint, file.getvalue(), file.name, base.name, name.strip())
        if added is not None:
            st.success(f"Registered {plain(added.name)} ({added.task}); it is now in the Playground's model list.")

st.subheader("Weights file of a model")
st.caption("Point a model at a weight file already on this server (safetensors, or a .pth/.pt plain state dict). "
           "It is kept only if the model loads from it.")
c1, c2 = st.columns([1, 2])
target = c1.selectbox("Model", [i.name for i in bases], key="wpath_model")
path = c2.text_input("Path on the server", key="wpath_path")
b1, b2 = st.columns(2)
if b1.button("Use this file", key="wpath_set"):
    saved = guarded(services.set_weights_path, target, path)
    if saved is not None:
        st.success(f"{plain(target)} now loads its weights from {plain(services.public_text(str(saved)))}.")
if b2.button("Forget the file", key="wpath_clear"):
    guarded(services.clear_weights_path, target)
configured = guarded(services.weights_paths) or {}
if configured:
    st.dataframe([{"model": k, "file": services.public_text(v)} for k, v in sorted(configured.items())], hide_index=True,
                 key="wpath_table", column_config={"file": st.column_config.TextColumn(
                     "file", help="Folders on the server are named by their role, not their path.")})
