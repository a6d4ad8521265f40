"""Benchmark: models x dataset in a background job; follow progress, cancel, read the results."""
import streamlit as st

from core import services
from core.services import robustness
from ui.identity import current_user
from ui.jobs_panel import jobs_panel, launch_status, remember_launch
from ui.ownership import quota_caption, uploads_manager
from ui.state import guarded, page_setup
from ui.text import plain
from ui.widgets import application_notes

page_setup()

st.title("Benchmark")
st.caption("Runs in a background worker: you can close the tab; results land in the store and on the Results page.")

# The builtin datasets' parameters in words: (label, help).
PARAM_WORDS = {
    "sigma": ("Noise σ (0-255)", "Standard deviation of the added white Gaussian noise, on the 0-255 pixel scale."),
    "noise_sigma": ("Added noise σ (0-255)", "Noise added after the blur, on the 0-255 pixel scale."),
    "blur_sigma": ("Blur σ (px)", "Standard deviation of the Gaussian blur, in pixels."),
    "scale": ("Scale factor", "How much smaller the low-resolution input is (2 = half the width and height)."),
    "max_side": ("Long side (px)", "Photos are shrunk so that their longer side is at most this many pixels."),
    "limit": ("Images (at most)", "Use only the first this-many images of the set."),
    "count": ("Images", "How many images are generated (or taken) for the set."),
    "seed": ("Seed", "Fixes the random noise and synthetic scenes, so a rerun sees the same images."),
    "photos": ("Photos", None),
}


def dataset_label(option) -> str:
    kind, dataset = option
    if kind == "builtin":
        return dataset.title
    return f"uploaded: {dataset.label}" + (f" by {dataset.owner}" if dataset.owner else "")


setup, jobs = st.columns([3, 2], gap="large")
FEATURE_SPACE_WORDS = {"auto": "FID, whichever Inception copy is available (recommended)",
                  "inception": "FID, Inception only (fail rather than fall back)",
                  "pytorch-fid": "FID with pytorch-fid's Inception copy", "fid-helper": "FID with the installed Inception copy",
                  "lite0": "Fréchet distance in EfficientNet-Lite0 features (not FID)"}

with setup:
    task = st.selectbox("Task", services.task_names(), key="bm_task")
    with st.expander("Upload a dataset (zip)"):
        st.markdown("ImageFolder (`class/image.png`) for classification; images + one COCO `.json` for detection and "
                    "instance masks; `images/` + `masks/` (+ `classes.txt`) for semantic segmentation; "
                    "`clean/` + `degraded/` for restoration.")
        archive = st.file_uploader("Dataset archive", type=["zip"], key="bm_zip",
                                   max_upload_size=min(services.dataset_upload_mb(), st.get_option("server.maxUploadSize")))
        op = st.selectbox("Restoration pairs are", services.SAME_SIZE_OPERATIONS, key="bm_zip_op",
                          help="Ignored for other layouts; a smaller degraded image means super-resolution.")
        if archive is not None and st.button("Add dataset", key="bm_zip_add"):
            added = guarded(services.upload_dataset, archive.getvalue(), archive.name, op, current_user())
            if added:
                st.success(f"Added {plain(added.label)}.")
                for line in added.report[:20]:
                    st.caption(plain(line))

    with st.expander("Your uploaded datasets"):
        uploads_manager("bm_own")
    quota_caption()

    builtin = services.catalog(task)
    uploads = guarded(services.uploaded, task) or []
    options = [("builtin", d) for d in builtin] + [("upload", u) for u in uploads]
    if not options:
        st.info("No dataset for this task yet: upload one above.")
        st.stop()
    kind, choice = st.selectbox("Dataset", options, key="bm_dataset", format_func=dataset_label)
    if kind == "builtin":
        st.caption(choice.description)
        spec = {"name": choice.name}
        params = list(choice.params.items())
        for row in range(0, len(params), 3):  # three per row: labels and values stay readable
            for col, (param, default) in zip(st.columns(3), params[row:row + 3]):
                label, help_text = PARAM_WORDS.get(param, (param, None))
                if isinstance(default, str):
                    spec[param] = col.selectbox(label, services.PHOTO_SETS, key=f"bm_{choice.name}_{param}",
                                                format_func=lambda s: services.PHOTO_SET_WORDS.get(s, s), help=help_text)
                    continue
                step = 1.0 if isinstance(default, float) else 1
                spec[param] = col.number_input(label, value=default, step=step, key=f"bm_{choice.name}_{param}",
                                               help=help_text)
        if spec.get("photos") == "applications":
            application_notes()
        operation = choice.operation
    else:
        spec = {"name": "upload", "id": choice.id}
        operation = services.operation_for(task, choice.task, choice.operation)

    infos = services.list_model_infos(task, operation)
    names = st.multiselect("Models", [i.name for i in infos], key="bm_models",
                           format_func=lambda n: next(i.label for i in infos if i.name == n))
    missing = [i.name for i in infos if i.name in names and i.weights_status == "missing"]
    allow_random = False
    if missing:
        st.warning(f"No pretrained weights for {plain(', '.join(missing))}: upload a checkpoint on the Models page, "
                   "or benchmark them with random weights.")
        allow_random = st.checkbox("Benchmark those with random weights (stored as **untrained**)", key="bm_random")

    params = {"batch_size": st.number_input("Batch size", 1, 256, 8, key="bm_bs")}
    options = services.benchmark_options(task, operation)
    if "score_threshold" in options:
        params["score_threshold"] = st.slider("Score threshold for P/R/F1", 0.0, 1.0, 0.5, 0.05, key="bm_thr")
    if "y_channel" in options:
        params["y_channel"] = st.checkbox("Also PSNR/SSIM on the Y channel with border crop (BasicSR profile)",
                                          value=operation == "super-resolution", key="bm_y")
    if "samples" in options:
        params["samples"] = st.number_input("Generated samples", 2, 10_000, 256, key="bm_samples")
    if "seed" in options:
        params["seed"] = st.number_input("Seed", 0, 2**31 - 1, 0, key="bm_seed")
    if "feature_space" in options:
        params["feature_space"] = st.selectbox(
            "Feature space", services.FEATURE_SPACES, key="bm_fs",
            format_func=lambda space: FEATURE_SPACE_WORDS.get(space, space),
            help="FID (with KID beside it) is defined on the 2015-12-05 Inception-v3 network. Two copies can be "
                 "used: pytorch-fid's, when its weight file is on the server, and the one installed with the app "
                 "(checked before use). The EfficientNet-Lite0 distance is not FID and gets its own column.")
    device = st.selectbox("Device", services.DEVICE_CHOICES, key="bm_device")
    if st.button("Launch benchmark", type="primary", disabled=not names, key="bm_launch"):
        job_id = guarded(services.submit_benchmark, names, spec, params, allow_random=allow_random, device=device,
                         user=current_user())
        remember_launch("bm_jobs", [job_id] if job_id else [])  # a refused launch clears the last one's notice
    launch_status("bm_jobs")

    st.subheader("Robustness sweep")
    st.caption("The same models at increasing corruption, one stored run per level: ImageNet-C's corruptions at "
               "severities 0 (clean) to 5 for classification, detection and segmentation sets; the noise σ of the "
               "photos for denoisers. Compare draws the degradation curves and the area under each.")
    sweeps = robustness.corruption_choices(choice.name) if kind == "builtin" else []
    if not sweeps:
        st.caption("Pick a builtin set of this task (for restoration: the photos with Gaussian noise) to sweep it.")
    else:
        c1, c2 = st.columns(2)
        corruption = c1.selectbox("Corruption", sweeps, key="bm_rob_corruption",
                                  format_func=lambda c: robustness.CORRUPTION_WORDS.get(c, c))
        levels = c2.multiselect("Levels", robustness.levels_for(corruption), default=robustness.levels_for(corruption),
                                key=f"bm_rob_levels_{corruption}", format_func=lambda v: f"{v:g}")
        if st.button("Launch robustness sweep", disabled=not names, key="bm_rob_launch"):
            job_id = guarded(robustness.submit_robustness, names, spec, corruption, levels, params,
                             allow_random=allow_random, device=device, user=current_user())
            remember_launch("bm_rob_jobs", [job_id] if job_id else [])
        launch_status("bm_rob_jobs")

with jobs:
    st.subheader("Jobs")
    jobs_panel("benchmark", key="bm_jobs")
    st.subheader("Robustness sweeps")
    jobs_panel("robustness", key="bm_rob_jobs")
