"""Models: the registry with each model's weights status and source, checkpoint upload, your models, and (admins)
the weights file of a shared model."""
import streamlit as st

from core import services
from ui.identity import current_user
from ui.ownership import models_manager, quota_caption
from ui.state import guarded, page_setup
from ui.text import plain

page_setup()

st.title("Models")
user = current_user()
infos = services.list_model_infos()
task = st.segmented_control("Task", ["all", *services.task_names()],
                            default="all", key="models_task", required=True)
rows = [{"name": i.name, "task": i.task, "kind": i.operation or "", "source": i.source,
         "weights": {"missing": "missing → untrained only"}.get(i.weights_status, i.weights_status),
         "license": i.license or "", "detail": i.weights_detail} for i in infos if task == "all" or i.task == task]
st.caption(f"{len(rows)} models. Missing weights: upload a checkpoint below (it is added as a new model), or "
           "ask whoever runs the server to put the file named in the detail column in place.")
st.dataframe(rows, hide_index=True, key="models_table",
             column_config={"detail": st.column_config.TextColumn("where the weights come from", width="large")})
quota_caption()

st.subheader("Add a checkpoint")
st.caption("A .safetensors file, or a .pt/.pth holding a plain state dict (read with weights_only=True), "
           "for one of the architectures below. It is checked key by key before anything is saved; it is yours: "
           "only you (or an admin) can rename or delete it.")
bases = services.checkpoint_bases()
base = st.selectbox("Architecture", bases, format_func=lambda i: f"{i.name} ({i.task})", key="ckpt_base")
name = st.text_input("New model name", key="ckpt_name", help="3-60 characters: a-z, 0-9, '_' or '-'.")
file = st.file_uploader("Checkpoint", type=["safetensors", "pt", "pth", "bin"], key="ckpt_file",
                        max_upload_size=min(services.checkpoint_upload_mb(), st.get_option("server.maxUploadSize")))
if st.button("Add model", type="primary", key="ckpt_add"):
    if file is None:
        st.info("Choose a checkpoint file first.")
    else:
        added = guarded(services.add_checkpoint, file.getvalue(), file.name, base.name, name.strip(), "", user)
        if added is not None:
            st.success(f"Registered {plain(added.name)} ({plain(added.task)}); it is now in the Playground's model list.")

st.subheader("Your models" if not user.admin else "Added models")
st.caption("Checkpoints you uploaded and models your training jobs made." if not user.admin else
           "Every uploaded checkpoint and trained model (you are an admin).")
models_manager("own_models")

st.subheader("Weights file of a shared model")
if not user.admin:
    st.caption("The registry's models are shared by everyone: only an admin can point them at another weights file. "
               "To try your own weights, add them as a checkpoint above.")
else:
    st.caption("Point a shared model at a weight file an administrator put on this server (safetensors, or a .pth/.pt "
               "plain state dict). It is kept only if the model loads from it; files in the folders users upload "
               "into are refused.")
    c1, c2 = st.columns([1, 2])
    target = c1.selectbox("Model", [i.name for i in bases], key="wpath_model")
    path = c2.text_input("Path on the server", key="wpath_path")
    b1, b2 = st.columns(2)
    if b1.button("Use this file", key="wpath_set"):
        saved = guarded(services.set_weights_path, target, path, user)
        if saved is not None:
            st.success(f"{plain(target)} now loads its weights from {plain(services.public_text(str(saved)))}.")
    if b2.button("Forget the file", key="wpath_clear"):
        guarded(services.clear_weights_path, target, user)
sources = guarded(services.weights_sources) or []
if sources:
    st.dataframe([{"model": s["model"], "file": services.public_text(s["path"]), "set by": s["owner"] or "—",
                   "set at (UTC)": s["set_at"].replace("T", " ")[:16]} for s in sources], hide_index=True,
                 key="wpath_table", column_config={"file": st.column_config.TextColumn(
                     "file", help="Folders on the server are named by their role, not their path.")})
