"""Fine-tune: launch a training job (or an optimizer sweep), follow its curves, find the trained model."""
import streamlit as st

from core import services
from core.charts import training_curves
from core.services.training import no_curve_note
from ui.identity import current_user
from ui.jobs_panel import jobs_panel, launch_status, remember_launch
from ui.ownership import quota_caption
from ui.state import guarded, page_setup
from ui.text import plain

page_setup()

st.title("Fine-tune")
st.caption("Training runs in a background worker. The trained model is registered when the job ends, "
           "scored on its held-out benchmark set, and can be benchmarked and compared like any other.")

form, follow = st.columns([3, 2], gap="large")
with form:
    task = st.selectbox("Task", services.trainable_tasks(), key="ft_task")
    choices = services.training_choices(task)
    infos = {i.name: i for i in services.list_model_infos(task)}  # models with weights first
    order = list(infos)
    bases = sorted(services.trainable_models(task), key=lambda n: order.index(n) if n in order else len(order))
    base = st.selectbox("Base model", bases, key="ft_base", format_func=lambda n: infos[n].label if n in infos else n)
    has_weights = base in infos and infos[base].weights_status == "available"
    start = st.radio("Start from", ["pretrained weights", "scratch (random initialisation)"], horizontal=True,
                     index=0 if has_weights else 1, key=f"ft_start_{base}")
    if start.startswith("pretrained") and not has_weights:
        st.warning(f"{plain(base)} has no pretrained weights here: the job would fail. Train from scratch or provide "
                   "them on the Models page.")
    config = {"base": base, "pretrained": start.startswith("pretrained")}
    config["dataset"] = st.selectbox("Training data", choices.datasets, key="ft_dataset",
                                     format_func=choices.dataset_titles.get)
    if config["dataset"] == "upload":
        uploads = guarded(services.uploaded, "classification") or []
        if not uploads:
            st.info("Upload an ImageFolder zip on the Benchmark page first.")
            st.stop()
        config["upload_id"] = st.selectbox("Uploaded ImageFolder", uploads, format_func=lambda u: u.label,
                                           key="ft_upload").id
    c1, c2, c3 = st.columns(3)
    config["epochs"] = c1.number_input("Epochs", 1, 500, 5, key="ft_epochs")
    config["batch_size"] = c2.number_input("Batch size", 1, 1024, 32, key="ft_bs")
    max_steps = c3.number_input("Max steps (0 = no limit)", 0, 1_000_000, 0, key="ft_steps")
    config["max_steps"] = int(max_steps) or None
    c1, c2, c3 = st.columns(3)
    config["optimizer"] = c1.selectbox("Optimizer", choices.optimizers, key="ft_opt")
    config["lr"] = c2.number_input("Learning rate", 1e-6, 10.0, 1e-3, format="%.0e", key="ft_lr")
    config["schedule"] = c3.selectbox("Schedule", choices.schedules, key="ft_sched")
    c1, c2, c3 = st.columns(3)
    config["momentum"] = c1.number_input("Momentum (SGD, RMSprop)", 0.0, 0.999, 0.9, key="ft_mom")
    config["weight_decay"] = c2.number_input("Weight decay (L2)", 0.0, 1.0, 0.0, format="%.0e", key="ft_wd")
    if choices.dropout:
        dropout = c3.number_input("Dropout (-1 = model default)", -1.0, 0.95, -1.0, 0.05, key="ft_drop")
        config["dropout"] = None if dropout < 0 else dropout
    if choices.augmentations:
        config["augment"] = st.multiselect("Augmentation", choices.augmentations, key="ft_aug")
    c1, c2, c3 = st.columns(3)
    if choices.freeze_backbone:
        config["freeze_backbone"] = c1.checkbox("Freeze the backbone (train the head only)", key="ft_freeze")
    config["seed"] = c2.number_input("Seed", 0, 2**31 - 1, 0, key="ft_seed")
    patience = c3.number_input("Early stopping patience (0 = off)", 0, 100, 0, key="ft_pat")
    config["patience"] = int(patience) or None
    if config["dataset"] in choices.sized:
        config["train_size"] = st.number_input("Training images / patches", 8, 20_000, 512, key="ft_size")
    if choices.degradation:
        c1, c2 = st.columns(2)
        config["noise_sigma"] = c1.number_input("Noise sigma (denoise; added noise for deblur)", 0.0, 100.0, 25.0,
                                                key="ft_sigma")
        config["blur_sigma"] = c2.number_input("Blur sigma (deblur)", 0.3, 10.0, 2.0, key="ft_blur")
    name = st.text_input("Name of the trained model (optional)", key="ft_name",
                         help="3-60 lower-case letters, digits, '-' or '_'; default <base>-job<id>.")
    config["name"] = name.strip() or None
    device = st.selectbox("Device", services.DEVICE_CHOICES, key="ft_device")
    b1, b2, b3 = st.columns([2, 2, 1])
    repeats = b3.number_input("Sweep repeats", 1, services.MAX_SWEEP_REPEATS, 1, key="ft_repeats",
                              help="Random starts per optimizer (seed, seed+1, ...): the Compare page then shows "
                                   "each optimizer's mean and spread.")
    if b1.button("Launch training", type="primary", key="ft_launch"):
        job_id = guarded(services.submit_training, config, device, current_user())
        remember_launch("ft_jobs", [job_id] if job_id else [])  # a refused launch clears the last one's notice
    if b2.button("Sweep SGD / Adam / Adagrad", key="ft_sweep",
                 help="One job per optimizer with everything else equal (the classic SGD / Adam / Adagrad comparison)."):
        ids = guarded(services.submit_sweep, {**config, "name": None}, services.SWEEP_OPTIMIZERS, device, current_user(),
                      int(repeats))
        remember_launch("ft_jobs", ids or [])
    launch_status("ft_jobs")
    quota_caption()

with follow:
    st.subheader("Jobs")
    jobs_panel("train", key="ft_jobs")

@st.fragment(run_every=5)
def training_curves_section() -> None:
    """Polled, so a picked job that fails or ends says so without a click."""
    st.subheader("Training curves")
    jobs = {j.id: j for j in (guarded(services.list_jobs, "train", 50) or []) if j.status != "queued"}
    if not jobs:
        st.caption("Curves appear here once a training job has run an epoch.")
    else:
        every = guarded(services.curves, list(jobs))
        stored = set(every["job_id"]) if every is not None else set()
        with_points = [i for i in jobs if i in stored]
        picked = st.multiselect(
            "Jobs", list(jobs), default=with_points[:1] or list(jobs)[:1], key="ft_curves",
            format_func=lambda i: f"#{i} {jobs[i].title}" + ("" if jobs[i].status == "done" else f" ({jobs[i].status})"))
        picked = [i for i in picked if i in jobs]
        for job_id in picked:
            if job_id not in with_points:
                st.info(no_curve_note(job_id, jobs[job_id].status))
        points = every[every["job_id"].isin(picked)] if every is not None else None
        if points is not None and not points.empty:
            names = sorted(points["name"].unique())
            default = [n for n in names if n.endswith("loss") or n.startswith(("val_", "fd_", "fid"))]
            shown = st.multiselect("Curves", names, default=default, key="ft_curve_names")
            labels = {i: f"#{i} {jobs[i].params['config']['optimizer']}" for i in picked}
            st.plotly_chart(training_curves(points, shown, labels), key="ft_curve_chart")
            for note in services.curve_notes(points, shown):
                st.caption(plain(note))
        sweep_ids = guarded(services.sweeps) or []
        if sweep_ids:
            st.page_link("pages/compare.py", label=f"Compare the latest optimizer sweep ({sweep_ids[0]})",
                         icon=":material/compare_arrows:", query_params={"sweep": sweep_ids[0]})


training_curves_section()
